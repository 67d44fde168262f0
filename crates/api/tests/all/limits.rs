use kiln::*;

const RECURSE: &str = r#"(module
  (func $r (export "r") (param i32) (result i32)
    local.get 0 i32.const 1 i32.add call $r)
  (func (export "ok") (result i32) i32.const 1))"#;

#[test]
fn unbounded_recursion_traps_and_store_stays_usable() {
    let (mut store, i) = crate::instantiate(RECURSE);
    let r = i.get_typed_func::<i32, i32>(&mut store, "r").unwrap();
    for _ in 0..3 {
        let e = r.call(&mut store, 0).unwrap_err();
        assert_eq!(
            e.downcast_ref::<Trap>().copied(),
            Some(Trap::StackOverflow),
            "{e}"
        );
    }
    let ok = i.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
    assert_eq!(ok.call(&mut store, ()).unwrap(), 1);
}

#[test]
fn interrupt_an_infinite_loop_from_another_thread() {
    let (mut store, i) = crate::instantiate(r#"(module (func (export "spin") (loop br 0)))"#);
    let spin = i.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
    let h = store.interrupt_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        h.interrupt();
    });
    let e = spin.call(&mut store, ()).unwrap_err();
    t.join().unwrap();
    assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::Interrupt));
    // The interrupt was consumed; the store runs again.
    let (mut store2, i2) = crate::instantiate(RECURSE);
    let ok = i2.get_typed_func::<(), i32>(&mut store2, "ok").unwrap();
    assert_eq!(ok.call(&mut store2, ()).unwrap(), 1);
}

#[test]
fn interrupt_before_entry_takes_effect_at_next_call() {
    let (mut store, i) = crate::instantiate(RECURSE);
    let r = i.get_typed_func::<i32, i32>(&mut store, "r").unwrap();
    store.interrupt_handle().interrupt();
    let e = r.call(&mut store, 0).unwrap_err();
    assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::Interrupt));
    let e = r.call(&mut store, 0).unwrap_err();
    assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::StackOverflow));
}

#[test]
fn traps_carry_a_backtrace_with_names() {
    let (mut store, i) = crate::instantiate(
        r#"(module $m
             (func $inner unreachable)
             (func $outer (export "outer") call $inner))"#,
    );
    let f = i.get_typed_func::<(), ()>(&mut store, "outer").unwrap();
    let e = f.call(&mut store, ()).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>(),
        Some(&Trap::UnreachableCodeReached)
    );
    let t = e.downcast_ref::<WasmBacktrace>().expect("a backtrace");
    let names: Vec<_> = t
        .frames()
        .iter()
        .map(|f| f.func_name().map(str::to_string))
        .collect();
    assert_eq!(
        names,
        [Some("inner".to_string()), Some("outer".to_string())]
    );
}

#[test]
fn threads_trap_in_parallel() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (func (export "div") (param i32) (result i32) i32.const 1 local.get 0 i32.div_u))"#,
    )
    .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (engine, module) = (engine.clone(), module.clone());
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, ());
                let i = Instance::new(&mut store, &module, &[]).unwrap();
                let f = i.get_typed_func::<i32, i32>(&mut store, "div").unwrap();
                for n in 0..2000 {
                    let e = f.call(&mut store, 0).unwrap_err();
                    assert_eq!(
                        e.downcast_ref::<Trap>().copied(),
                        Some(Trap::IntegerDivisionByZero)
                    );
                    assert_eq!(f.call(&mut store, 1).unwrap(), 1, "iteration {n}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

const COUNT: &str = r#"(module
  (func (export "count") (param i32)
    (loop $l
      local.get 0 i32.const 1 i32.sub local.tee 0
      br_if $l)))"#;

fn with_config(c: &Config, wat: &str) -> (Store<()>, Instance) {
    let engine = Engine::new(c).unwrap();
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    (store, i)
}

#[test]
fn fuel_is_consumed_deterministically_and_runs_out() {
    let mut c = Config::new();
    c.consume_fuel(true);
    let (mut store, i) = with_config(&c, COUNT);
    let count = i.get_typed_func::<i32, ()>(&mut store, "count").unwrap();
    store.set_fuel(1_000_000).unwrap();
    count.call(&mut store, 100).unwrap();
    let used = 1_000_000 - store.get_fuel().unwrap();
    // Five operators per iteration (local.get, const, sub, tee, br_if).
    assert_eq!(used, 500);
    store.set_fuel(1_000_000).unwrap();
    count.call(&mut store, 100).unwrap();
    assert_eq!(1_000_000 - store.get_fuel().unwrap(), used, "deterministic");
    store.set_fuel(250).unwrap();
    let e = count.call(&mut store, 100).unwrap_err();
    assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::OutOfFuel));
    assert_eq!(store.get_fuel().unwrap(), 0);
}

#[test]
fn fuel_requires_the_setting() {
    let (mut store, _) = crate::instantiate(COUNT);
    assert!(store.set_fuel(10).is_err());
}

#[test]
fn epoch_deadline_interrupts_a_loop() {
    let mut c = Config::new();
    c.epoch_interruption(true);
    let (mut store, i) = with_config(&c, r#"(module (func (export "spin") (loop br 0)))"#);
    let spin = i.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
    store.set_epoch_deadline(1);
    let engine = store.engine().clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(30));
        engine.increment_epoch();
    });
    let e = spin.call(&mut store, ()).unwrap_err();
    t.join().unwrap();
    assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::Interrupt));
}

#[test]
fn recursion_depth_scales_with_max_wasm_stack() {
    let wat = r#"(module
      (global $d (export "depth") (mut i32) (i32.const 0))
      (func $r (export "r")
        global.get $d i32.const 1 i32.add global.set $d
        call $r))"#;
    let mut depths = Vec::new();
    for kib in [64, 256] {
        let mut c = Config::new();
        c.max_wasm_stack(kib * 1024);
        let (mut store, i) = with_config(&c, wat);
        let r = i.get_typed_func::<(), ()>(&mut store, "r").unwrap();
        let e = r.call(&mut store, ()).unwrap_err();
        assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::StackOverflow));
        let d = i
            .get_global(&mut store, "depth")
            .unwrap()
            .get(&mut store)
            .i32()
            .unwrap();
        depths.push(d);
    }
    assert!(depths[1] > depths[0] * 3, "{depths:?}");
}

#[test]
fn nested_host_and_wasm_calls() {
    // host -> wasm -> host -> wasm, many levels deep, then a trap from the
    // innermost level unwinds every level cleanly.
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "env" "down" (func $down (param i32) (result i32)))
             (func (export "f") (param i32) (result i32)
               local.get 0 i32.eqz
               if (result i32) i32.const 1 i32.const 0 i32.div_u
               else local.get 0 i32.const 1 i32.sub call $down i32.const 1 i32.add end))"#,
    )
    .unwrap();
    let mut linker = Linker::<Option<Func>>::new(&engine);
    linker
        .func_wrap(
            "env",
            "down",
            |mut c: Caller<'_, Option<Func>>, n: i32| -> Result<i32> {
                let f = c.data().expect("set");
                let f = f.typed::<i32, i32>(&c)?;
                f.call(&mut c, n)
            },
        )
        .unwrap();
    let mut store = Store::new(&engine, None);
    let i = linker.instantiate(&mut store, &module).unwrap();
    let f = i.get_func(&mut store, "f").unwrap();
    *store.data_mut() = Some(f);
    let typed = f.typed::<i32, i32>(&store).unwrap();
    let e = typed.call(&mut store, 50).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>().copied(),
        Some(Trap::IntegerDivisionByZero)
    );
    // And the store still works.
    let e = typed.call(&mut store, 1).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>().copied(),
        Some(Trap::IntegerDivisionByZero)
    );
}

#[test]
fn epoch_deadline_already_passed_traps_at_entry() {
    let mut c = Config::new();
    c.epoch_interruption(true);
    let (mut store, i) = with_config(&c, r#"(module (func (export "f")))"#);
    let f = i.get_typed_func::<(), ()>(&mut store, "f").unwrap();
    store.set_epoch_deadline(0);
    let e = f.call(&mut store, ()).unwrap_err();
    assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::Interrupt));
    store.set_epoch_deadline(5);
    f.call(&mut store, ()).unwrap();
}

#[test]
fn interrupt_reaches_a_second_loop() {
    // Two loops in one function: the check in the second must not be
    // merged with the first's.
    let (mut store, i) = crate::instantiate(
        r#"(module (func (export "spin") (param i32)
             (loop $a local.get 0 i32.const 1 i32.sub local.tee 0 br_if $a)
             (loop $b br $b)))"#,
    );
    let spin = i.get_typed_func::<i32, ()>(&mut store, "spin").unwrap();
    let h = store.interrupt_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        h.interrupt();
    });
    let e = spin.call(&mut store, 10).unwrap_err();
    t.join().unwrap();
    assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::Interrupt));
}

/// A crash in host code is not Wasm's business: Kiln's handler forwards it
/// and the process dies of the signal as it would without Kiln. Runs the
/// crash in a child process (this test binary, re-executed).
#[test]
fn host_segfault_still_kills_the_process() {
    const ENV: &str = "KILN_TEST_CRASH_MODE";
    if let Ok(mode) = std::env::var(ENV) {
        let (mut store, i) = crate::instantiate(COUNT);
        let count = i.get_typed_func::<i32, ()>(&mut store, "count").unwrap();
        count.call(&mut store, 10).unwrap();
        if mode == "in-host-function" {
            let engine = store.engine().clone();
            let m = Module::new(
                &engine,
                r#"(module (import "" "crash" (func $c)) (func (export "run") call $c))"#,
            )
            .unwrap();
            let crash = Func::wrap(&mut store, || {
                // SAFETY: deliberately not safe: this child process must die.
                unsafe { std::ptr::read_volatile(std::ptr::null::<u64>()) };
            });
            let i = Instance::new(&mut store, &m, &[crash.into()]).unwrap();
            let _ = i
                .get_typed_func::<(), ()>(&mut store, "run")
                .unwrap()
                .call(&mut store, ());
        } else {
            if mode == "while-others-load-and-trap" {
                // Other threads load, drop, run and trap in modules the
                // whole time: the handler must forward this crash without
                // waiting on anything they hold.
                let engine = store.engine().clone();
                for _ in 0..2 {
                    let engine = engine.clone();
                    std::thread::spawn(move || loop {
                        let m = Module::new(&engine, r#"(module (func (export "t") unreachable))"#)
                            .unwrap();
                        let mut s = Store::new(&engine, ());
                        let i = Instance::new(&mut s, &m, &[]).unwrap();
                        let t = i.get_typed_func::<(), ()>(&mut s, "t").unwrap();
                        assert!(t.call(&mut s, ()).is_err());
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            // SAFETY: deliberately not safe, as above.
            unsafe { std::ptr::read_volatile(std::ptr::null::<u64>()) };
        }
        std::process::exit(0);
    }
    use std::os::unix::process::ExitStatusExt;
    for mode in [
        "outside-wasm",
        "in-host-function",
        "while-others-load-and-trap",
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "limits::host_segfault_still_kills_the_process",
                "--test-threads=1",
            ])
            .env(ENV, mode)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(libc_sigsegv()),
            "{mode}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn libc_sigsegv() -> i32 {
    11
}

#[test]
fn many_threads_trap_many_times() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (memory 1)
             (func (export "oob") (param i32) (result i32) local.get 0 i32.load))"#,
    )
    .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (engine, module) = (engine.clone(), module.clone());
            std::thread::spawn(move || {
                let mut store = Store::new(&engine, ());
                let i = Instance::new(&mut store, &module, &[]).unwrap();
                let f = i.get_typed_func::<i32, i32>(&mut store, "oob").unwrap();
                for _ in 0..10_000 {
                    let e = f.call(&mut store, 70_000).unwrap_err();
                    assert_eq!(
                        e.downcast_ref::<Trap>().copied(),
                        Some(Trap::MemoryOutOfBounds)
                    );
                }
                assert_eq!(f.call(&mut store, 0).unwrap(), 0);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn interrupt_infinite_recursion_with_a_big_stack() {
    // Recursion that would take seconds to exhaust a 1 MiB stack (each
    // level spins 100,000 times first) is stopped by an interrupt from
    // another thread long before.
    let mut c = Config::new();
    c.max_wasm_stack(1 << 20);
    let (mut store, i) = with_config(
        &c,
        r#"(module (func $r (export "r") (local i32)
             i32.const 100000 local.set 0
             (loop local.get 0 i32.const 1 i32.sub local.tee 0 br_if 0)
             call $r))"#,
    );
    let r = i.get_typed_func::<(), ()>(&mut store, "r").unwrap();
    let h = store.interrupt_handle();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(30));
        h.interrupt();
    });
    let e = r.call(&mut store, ()).unwrap_err();
    t.join().unwrap();
    assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::Interrupt));
    // Usually deep in the recursion; on a loaded machine the interrupt may
    // land before the first frame, so only require a Wasm frame.
    let t = e.downcast_ref::<WasmBacktrace>().expect("a backtrace");
    assert!(!t.frames().is_empty());
}

#[test]
fn max_wasm_stack_larger_than_the_thread_still_traps_cleanly() {
    // A 4 MiB Wasm stack allowed on a thread that only has 512 KiB: the
    // limit is clamped to the thread's real stack, so unbounded recursion
    // traps instead of faulting on the thread's guard page.
    let t = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(|| {
            let mut c = Config::new();
            c.max_wasm_stack(4 << 20);
            let (mut store, i) = with_config(&c, RECURSE);
            let r = i.get_typed_func::<i32, i32>(&mut store, "r").unwrap();
            let e = r.call(&mut store, 0).unwrap_err();
            assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::StackOverflow));
            let ok = i.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
            assert_eq!(ok.call(&mut store, ()).unwrap(), 1);
        })
        .unwrap();
    t.join().unwrap();
}

#[test]
fn a_backtrace_deeper_than_its_capacity_is_truncated_and_says_so() {
    // The handler records at most `kiln_runtime::FRAME_CAPACITY` (32 Ki)
    // raw frames into a buffer allocated before the call; a 4 MiB Wasm
    // stack holds far more frames of `$r`. The trap still resumes the
    // host, and the backtrace keeps the innermost frames and says so.
    let t = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(|| {
            let mut c = Config::new();
            c.max_wasm_stack(4 << 20);
            let (mut store, i) = with_config(&c, RECURSE);
            let r = i.get_typed_func::<i32, i32>(&mut store, "r").unwrap();
            for _ in 0..2 {
                let e = r.call(&mut store, 0).unwrap_err();
                assert_eq!(e.downcast_ref::<Trap>().copied(), Some(Trap::StackOverflow));
                let bt = e.downcast_ref::<WasmBacktrace>().expect("a backtrace");
                assert!(bt.truncated());
                assert_eq!(bt.frames().len(), 32 * 1024);
                assert!(bt.frames().iter().all(|f| f.func_index() == 0));
                assert!(bt.to_string().contains("older frames not recorded"), "{bt}");
            }
            // A shallow trap right after is complete again.
            let (mut store, i) = with_config(
                &c,
                r#"(module (func $a (export "a") call $b) (func $b unreachable))"#,
            );
            let a = i.get_typed_func::<(), ()>(&mut store, "a").unwrap();
            let e = a.call(&mut store, ()).unwrap_err();
            let bt = e.downcast_ref::<WasmBacktrace>().expect("a backtrace");
            assert!(!bt.truncated());
            assert_eq!(bt.frames().len(), 2);
            assert!(!bt.to_string().contains("older frames"), "{bt}");
        })
        .unwrap();
    t.join().unwrap();
}
