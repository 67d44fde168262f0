//! Embedder code written for Wasmtime 48, compiled against Kiln under
//! Wasmtime's name (`use kiln as wasmtime`, what renaming the dependency
//! does). Each test is ordinary Wasmtime-style code; it checks its output.
//!
//! This covers the parts of Wasmtime's API Kiln has so far: errors and
//! traps, host state through `Caller`, memories, fuel, epochs (with
//! deadline callbacks), core dumps, values,
//! the type objects (`FuncType::new(&engine, ..)`, `ValType::Ref`, module
//! imports and exports), dynamic host functions, and the `Linker`'s
//! `module`, `alias`, `get_default` and `define_unknown_imports_as_traps`.

use kiln as wasmtime;
use wasmtime::*;

#[test]
fn hello_with_host_state_through_caller() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "host" "hello" (func $hello (param i32)))
             (func (export "run") (call $hello (i32.const 3)) (call $hello (i32.const 4))))"#,
    )?;
    let mut store = Store::new(&engine, Vec::<i32>::new());
    let hello = Func::wrap(&mut store, |mut caller: Caller<'_, Vec<i32>>, x: i32| {
        caller.data_mut().push(x);
    });
    let instance = Instance::new(&mut store, &module, &[hello.into()])?;
    let run = instance.get_typed_func::<(), ()>(&mut store, "run")?;
    run.call(&mut store, ())?;
    assert_eq!(store.data(), &[3, 4]);
    assert_eq!(store.into_data(), vec![3, 4]);
    Ok(())
}

#[derive(Debug)]
struct MyError(u32);

impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "my error {}", self.0)
    }
}

impl std::error::Error for MyError {}

#[test]
fn errors_cross_host_functions_and_traps_downcast() -> Result<()> {
    let mut store = Store::<()>::default();
    let module = Module::new(
        store.engine(),
        r#"(module
             (import "" "fail" (func $fail (param i32)))
             (func (export "run") (param i32) (call $fail (local.get 0)))
             (func (export "div") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0))))"#,
    )?;
    let fail = Func::wrap(&mut store, |x: i32| -> Result<()> {
        ensure!(x != 1, "one is not allowed");
        if x == 2 {
            // `?` on an arbitrary error.
            Err(MyError(2))?;
        }
        if x == 3 {
            bail!("three: {}", x);
        }
        Ok(())
    });
    let instance = Instance::new(&mut store, &module, &[fail.into()])?;
    let run = instance.get_typed_func::<i32, ()>(&mut store, "run")?;
    run.call(&mut store, 0)?;
    let e = run.call(&mut store, 1).unwrap_err();
    assert_eq!(e.root_cause().to_string(), "one is not allowed");
    let e = run.call(&mut store, 2).unwrap_err();
    assert_eq!(e.downcast_ref::<MyError>().map(|m| m.0), Some(2));
    assert!(e.downcast_ref::<WasmBacktrace>().is_some());
    let e = run.call(&mut store, 3).unwrap_err();
    assert!(format!("{e:?}").contains("three: 3"));

    let div = instance.get_typed_func::<i32, i32>(&mut store, "div")?;
    let e = div.call(&mut store, 0).unwrap_err();
    assert_eq!(
        e.to_string().lines().next(),
        Some("error while executing at wasm backtrace:")
    );
    let trap = e.downcast::<Trap>()?;
    assert_eq!(trap, Trap::IntegerDivisionByZero);
    assert_eq!(trap.to_string(), "wasm trap: integer divide by zero");
    let e: Error = format_err!("made with {}", "format_err");
    assert_eq!(e.to_string(), "made with format_err");
    let e = Err::<(), _>(MyError(7))
        .context("while testing")
        .unwrap_err();
    assert_eq!(format!("{e:#}"), "while testing: my error 7");
    Ok(())
}

#[test]
fn memory_fuel_and_values() -> Result<()> {
    let mut config = Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config)?;
    let mut store = Store::new(&engine, ());
    store.set_fuel(10_000)?;
    let memory = Memory::new(&mut store, MemoryType::new(1, Some(2)))?;
    assert_eq!(memory.ty(&store).minimum(), 1);
    assert_eq!(memory.ty(&store).maximum(), Some(2));
    memory.write(&mut store, 10, b"kiln")?;
    let module = Module::new(
        &engine,
        r#"(module (import "" "m" (memory 1))
             (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
             (func (export "spin") (loop br 0)))"#,
    )?;
    let instance = Instance::new(&mut store, &module, &[memory.into()])?;
    let load = instance.get_func(&mut store, "load").unwrap();
    let mut out = [Val::I32(0)];
    load.call(&mut store, &[Val::I32(11)], &mut out)?;
    assert_eq!(out[0].unwrap_i32(), i32::from(b'i'));
    assert!(out[0].i64().is_none());
    let spin = instance.get_typed_func::<(), ()>(&mut store, "spin")?;
    let e = spin.call(&mut store, ()).unwrap_err();
    assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::OutOfFuel));
    assert_eq!(store.get_fuel()?, 0);
    Ok(())
}

#[test]
fn epochs_trap_at_the_deadline() -> Result<()> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, r#"(module (func (export "spin") (loop br 0)))"#)?;
    let mut store = Store::new(&engine, ());
    store.epoch_deadline_trap();
    store.set_epoch_deadline(1);
    let instance = Instance::new(&mut store, &module, &[])?;
    let spin = instance.get_typed_func::<(), ()>(&mut store, "spin")?;
    let ticker = {
        let engine = engine.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            engine.increment_epoch();
        })
    };
    let e = spin.call(&mut store, ()).unwrap_err();
    ticker.join().unwrap();
    assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::Interrupt));
    Ok(())
}

/// A loop that advances the epoch itself through a host function, so the
/// deadline passes at a known iteration.
const TICKING_LOOP: &str = r#"(module
     (import "host" "tick" (func $tick))
     (global $n (export "n") (mut i32) (i32.const 0))
     (func (export "run")
       (loop $l
         (global.set $n (i32.add (global.get $n) (i32.const 1)))
         (call $tick)
         (br $l))))"#;

#[test]
fn epoch_deadline_callbacks_extend_then_interrupt() -> Result<()> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, TICKING_LOOP)?;
    let mut store = Store::new(&engine, Vec::<u32>::new());
    store.set_epoch_deadline(3);
    store.epoch_deadline_callback(|mut cx| {
        let calls = cx.data().len() as u64;
        cx.data_mut().push(0);
        if calls < 4 {
            Ok(UpdateDeadline::Continue(2))
        } else {
            Ok(UpdateDeadline::Interrupt)
        }
    });
    let ticker = engine.clone();
    let tick = Func::wrap(&mut store, move || ticker.increment_epoch());
    let instance = Instance::new(&mut store, &module, &[tick.into()])?;
    let run = instance.get_typed_func::<(), ()>(&mut store, "run")?;
    let e = run.call(&mut store, ()).unwrap_err();
    assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::Interrupt));
    // The deadline passed at epoch 3, then every 2 ticks: the fifth call
    // (at epoch 11) interrupted. The epoch moves once per iteration, and
    // the loop header checks before the iteration's increment.
    assert_eq!(store.data().len(), 5);
    let n = instance
        .get_global(&mut store, "n")
        .unwrap()
        .get(&mut store);
    assert_eq!(n.unwrap_i32(), 11);

    // An error from the callback is the call's error, as itself.
    store.epoch_deadline_callback(|_| Err(MyError(7).into()));
    store.set_epoch_deadline(1);
    let e = run.call(&mut store, ()).unwrap_err();
    assert_eq!(e.downcast_ref::<MyError>().map(|e| e.0), Some(7));

    // A callback that turns itself off: the next deadline traps at once.
    store.epoch_deadline_callback(|mut cx| {
        cx.epoch_deadline_trap();
        Ok(UpdateDeadline::Continue(1))
    });
    store.set_epoch_deadline(1);
    let before = instance
        .get_global(&mut store, "n")
        .unwrap()
        .get(&mut store)
        .unwrap_i32();
    let e = run.call(&mut store, ()).unwrap_err();
    assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::Interrupt));
    let after = instance
        .get_global(&mut store, "n")
        .unwrap()
        .get(&mut store)
        .unwrap_i32();
    assert_eq!(after - before, 2);
    Ok(())
}

#[test]
fn epoch_deadline_callbacks_may_use_the_whole_store() -> Result<()> {
    let mut config = Config::new();
    config.epoch_interruption(true).consume_fuel(true);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, TICKING_LOOP)?;
    let mut store = Store::new(&engine, ());
    store.set_fuel(1_000_000)?;
    store.set_epoch_deadline(1);
    // The callback sets the fuel low; the loop then runs out of fuel, so
    // the new fuel is what the running Wasm sees.
    store.epoch_deadline_callback(|mut cx| {
        cx.set_fuel(20)?;
        Ok(UpdateDeadline::Continue(1_000))
    });
    let ticker = engine.clone();
    let tick = Func::wrap(&mut store, move || ticker.increment_epoch());
    let instance = Instance::new(&mut store, &module, &[tick.into()])?;
    let run = instance.get_typed_func::<(), ()>(&mut store, "run")?;
    let e = run.call(&mut store, ()).unwrap_err();
    assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::OutOfFuel));
    assert_eq!(store.get_fuel()?, 0);
    let n = instance
        .get_global(&mut store, "n")
        .unwrap()
        .get(&mut store)
        .unwrap_i32();
    assert!((2..10).contains(&n), "{n} iterations");
    Ok(())
}

#[test]
fn config_knobs_work_or_refuse_by_name() -> Result<()> {
    let mut config = Config::new();
    config
        .strategy(Strategy::Cranelift)
        .cranelift_opt_level(OptLevel::SpeedAndSize)
        .parallel_compilation(false)
        .signals_based_traps(true)
        .memory_reservation(1 << 32)
        .memory_guard_size(2 << 30)
        .memory_reservation_for_growth(1 << 31)
        .max_wasm_stack(1 << 20)
        .wasm_simd(true)
        .wasm_bulk_memory(true)
        .wasm_multi_value(true)
        .wasm_reference_types(true)
        .wasm_threads(false)
        .coredump_on_trap(false);
    // SAFETY: a plain optimisation setting.
    unsafe { config.cranelift_flag_set("opt_level", "speed") };
    let engine = Engine::new(&config)?;
    let module = Module::new(
        &engine,
        r#"(module (func (export "f") (result i32) i32.const 7))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    assert_eq!(
        i.get_typed_func::<(), i32>(&mut store, "f")?
            .call(&mut store, ())?,
        7
    );

    let refused = |f: &dyn Fn(&mut Config), what: &str| {
        let mut c = Config::new();
        f(&mut c);
        let e = Engine::new(&c).expect_err(what);
        assert!(e.to_string().contains(what), "{what}: {e}");
    };
    refused(
        &|c| {
            c.wasm_threads(true);
        },
        "threads",
    );
    refused(
        &|c| {
            c.wasm_memory64(true);
        },
        "memory64",
    );
    refused(
        &|c| {
            c.wasm_gc(true);
        },
        "gc",
    );
    refused(
        &|c| {
            c.wasm_exceptions(true);
        },
        "exceptions",
    );
    refused(
        &|c| {
            c.wasm_relaxed_simd(true);
        },
        "relaxed-simd",
    );
    refused(
        &|c| {
            c.wasm_function_references(true);
        },
        "function-references",
    );
    refused(
        &|c| {
            c.wasm_component_model(true);
        },
        "component-model",
    );
    refused(
        &|c| {
            c.strategy(Strategy::Winch);
        },
        "Winch",
    );
    refused(
        &|c| {
            c.signals_based_traps(false);
        },
        "signals-based traps",
    );
    refused(
        &|c| {
            c.memory_reservation(1 << 20);
        },
        "memory_reservation",
    );
    refused(
        &|c| {
            c.memory_guard_size(32 << 20);
        },
        "memory_guard_size",
    );
    refused(
        &|c| {
            // SAFETY: refused before anything is compiled.
            unsafe { c.cranelift_flag_set("opt_level", "fastest") };
        },
        "opt_level",
    );

    // A feature switched off is enforced by validation.
    let mut c = Config::new();
    c.wasm_simd(false);
    let engine = Engine::new(&c)?;
    assert!(Module::new(&engine, r#"(module (func (param v128)))"#).is_err());
    Ok(())
}

#[test]
fn types_and_dynamic_host_functions() -> Result<()> {
    let engine = Engine::default();
    let mut store = Store::new(&engine, 0u32);
    let ty = FuncType::new(&engine, [ValType::I32, ValType::I64], [ValType::I64]);
    assert_eq!(ty.params().len(), 2);
    assert_eq!(ty.results().next(), Some(ValType::I64));
    let add = Func::new(&mut store, ty.clone(), |mut caller, params, results| {
        *caller.data_mut() += 1;
        results[0] = Val::I64(i64::from(params[0].unwrap_i32()) + params[1].unwrap_i64());
        Ok(())
    });
    assert!(FuncType::eq(&add.ty(&store), &ty));
    let module = Module::new(
        &engine,
        r#"(module
             (import "host" "add" (func $add (param i32 i64) (result i64)))
             (import "host" "table" (table 1 funcref))
             (global (export "g") (mut externref) (ref.null extern))
             (func (export "run") (param i32) (result i64)
               (call $add (local.get 0) (i64.const 40))))"#,
    )?;
    let imports: Vec<(String, String, ExternType)> = module
        .imports()
        .map(|i| (i.module().to_string(), i.name().to_string(), i.ty()))
        .collect();
    assert_eq!(imports.len(), 2);
    assert!(imports[0].2.func().is_some_and(|f| f.matches(&ty)));
    let table_ty = imports[1].2.unwrap_table();
    assert_eq!(table_ty.element(), &RefType::FUNCREF);
    assert!(table_ty.element().heap_type() == &HeapType::Func);
    let g = module
        .exports()
        .find(|e| e.name() == "g")
        .map(|e| e.ty())
        .unwrap();
    let g = g.unwrap_global();
    assert_eq!(g.content(), &ValType::EXTERNREF);
    assert_eq!(g.mutability(), Mutability::Var);

    let table = Table::new(
        &mut store,
        TableType::new(RefType::FUNCREF, 1, None),
        Val::FuncRef(None),
    )?;
    let instance = Instance::new(&mut store, &module, &[add.into(), table.into()])?;
    let run = instance.get_typed_func::<i32, i64>(&mut store, "run")?;
    assert_eq!(run.call(&mut store, 2)?, 42);
    assert_eq!(*store.data(), 1);
    let v = Val::I64(5);
    assert_eq!(v.ty(&store)?, ValType::I64);
    assert!(Val::FuncRef(None).matches_ty(&store, &ValType::FUNCREF)?);
    assert!(Val::default_for_ty(&ValType::EXTERNREF)
        .is_some_and(|v| matches!(v.externref(), Some(None))));
    Ok(())
}

#[test]
fn linker_modules_aliases_and_defaults() -> Result<()> {
    let engine = Engine::default();
    let mut linker = Linker::<Vec<i32>>::new(&engine);
    linker.func_wrap("host", "log", |mut c: Caller<'_, Vec<i32>>, x: i32| {
        c.data_mut().push(x)
    })?;
    linker.alias("host", "log", "env", "print")?;
    linker.alias_module("host", "host2")?;
    let mut store = Store::new(&engine, Vec::new());

    // A reactor: instantiated once, `_initialize` first.
    let reactor = Module::new(
        &engine,
        r#"(module
             (import "env" "print" (func $print (param i32)))
             (global $n (mut i32) (i32.const 0))
             (func (export "_initialize") (global.set $n (i32.const 100)))
             (func (export "next") (result i32)
               (global.set $n (i32.add (global.get $n) (i32.const 1)))
               (call $print (global.get $n))
               (global.get $n)))"#,
    )?;
    linker.module(&mut store, "counter", &reactor)?;
    // A command: a fresh instance for every call.
    let command = Module::new(
        &engine,
        r#"(module
             (import "host2" "log" (func $log (param i32)))
             (global $n (mut i32) (i32.const 0))
             (func (export "_start"))
             (func (export "bump") (result i32)
               (global.set $n (i32.add (global.get $n) (i32.const 1)))
               (call $log (i32.const -1))
               (global.get $n)))"#,
    )?;
    linker.module(&mut store, "cmd", &command)?;
    let user = Module::new(
        &engine,
        r#"(module
             (import "counter" "next" (func $next (result i32)))
             (import "cmd" "bump" (func $bump (result i32)))
             (func (export "") (result i32)
               (drop (call $next))
               (i32.add (i32.mul (call $next) (i32.const 10)) (i32.add (call $bump) (call $bump)))))"#,
    )?;
    linker.module(&mut store, "user", &user)?;
    let run = linker.get_default(&mut store, "user")?;
    let run = run.typed::<(), i32>(&store)?;
    // 102 * 10 + 1 + 1: the command's global starts afresh each call.
    assert_eq!(run.call(&mut store, ())?, 1022);
    assert_eq!(store.data(), &[101, 102, -1, -1]);
    // A module name without "" or `_start` has a do-nothing default.
    linker
        .get_default(&mut store, "nothing")?
        .typed::<(), ()>(&store)?
        .call(&mut store, ())?;
    Ok(())
}

#[test]
fn unknown_imports_become_traps() -> Result<()> {
    let engine = Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    linker.func_wrap("env", "known", || 7i32)?;
    let module = Module::new(
        &engine,
        r#"(module
             (import "env" "known" (func $known (result i32)))
             (import "env" "missing" (func $missing (param i32)))
             (func (export "ok") (result i32) (call $known))
             (func (export "bad") (call $missing (i32.const 1))))"#,
    )?;
    let mut store = Store::new(&engine, ());
    assert!(linker.instantiate(&mut store, &module).is_err());
    linker.define_unknown_imports_as_traps(&module)?;
    let instance = linker.instantiate(&mut store, &module)?;
    let ok = instance.get_typed_func::<(), i32>(&mut store, "ok")?;
    assert_eq!(ok.call(&mut store, ())?, 7);
    let bad = instance.get_typed_func::<(), ()>(&mut store, "bad")?;
    let e = bad.call(&mut store, ()).unwrap_err();
    assert!(format!("{e:?}").contains("env::missing"), "{e:?}");
    // Only functions can be defined as traps.
    let memory_import = Module::new(&engine, r#"(module (import "env" "mem" (memory 1)))"#)?;
    let e = linker
        .define_unknown_imports_as_traps(&memory_import)
        .unwrap_err();
    assert!(e.to_string().contains("env::mem"), "{e}");
    Ok(())
}

#[test]
fn call_hooks_see_every_crossing() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "host" "f" (func $f (param i32) (result i32)))
             (func (export "run") (param i32) (result i32) (call $f (local.get 0))))"#,
    )?;
    let mut store = Store::new(&engine, Vec::<CallHook>::new());
    store.call_hook(|mut cx, hook| {
        cx.data_mut().push(hook);
        if hook == CallHook::CallingHost && cx.data().len() > 5 {
            bail!("hook refused");
        }
        Ok(())
    });
    let f = Func::wrap(&mut store, |x: i32| x + 1);
    let instance = Instance::new(&mut store, &module, &[f.into()])?;
    let run = instance.get_typed_func::<i32, i32>(&mut store, "run")?;
    store.data_mut().clear();
    assert_eq!(run.call(&mut store, 1)?, 2);
    assert_eq!(
        store.data(),
        &[
            CallHook::CallingWasm,
            CallHook::CallingHost,
            CallHook::ReturningFromHost,
            CallHook::ReturningFromWasm
        ]
    );
    assert!(CallHook::CallingHost.entering_host() && CallHook::CallingWasm.exiting_host());
    // The hook's error fails the call, as a host function's error would.
    let e = run.call(&mut store, 1).unwrap_err();
    assert_eq!(e.root_cause().to_string(), "hook refused");
    Ok(())
}

/// Counts drops of the host values behind externrefs.
struct Counted(std::sync::Arc<std::sync::atomic::AtomicUsize>, u32);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn externrefs_are_rooted_and_live_until_the_store_drops() -> Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let drops = std::sync::Arc::new(AtomicUsize::new(0));
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "host" "bump" (func $bump (param externref) (result i32)))
             (table $t 4 externref)
             (func (export "bump") (result i32) (call $bump (table.get $t (i32.const 0))))
             (func (export "keep") (param externref) (table.set $t (i32.const 0) (local.get 0)))
             (func (export "get") (result externref) (table.get $t (i32.const 0))))"#,
    )?;
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::new(&engine);
    linker.func_wrap(
        "host",
        "bump",
        |mut caller: Caller<'_, ()>, r: Option<Rooted<ExternRef>>| -> Result<u32> {
            let r = r.ok_or_else(|| format_err!("null"))?;
            let c = r
                .data_mut(&mut caller)?
                .and_then(|d| d.downcast_mut::<Counted>())
                .ok_or_else(|| format_err!("not a Counted"))?;
            c.1 += 1;
            Ok(c.1)
        },
    )?;
    let instance = linker.instantiate(&mut store, &module)?;
    let keep = instance.get_typed_func::<Option<Rooted<ExternRef>>, ()>(&mut store, "keep")?;
    let get = instance.get_typed_func::<(), Option<Rooted<ExternRef>>>(&mut store, "get")?;
    {
        let mut scope = RootScope::new(&mut store);
        let r = ExternRef::new(&mut scope, Counted(drops.clone(), 41))?;
        keep.call(&mut scope, Some(r))?;
        let manual = r.to_manually_rooted(&mut scope)?;
        manual.unroot(&mut scope);
        // The scope ends here: in Wasmtime that unroots `r`; the table
        // still holds the reference either way.
    }
    for _ in 0..1000 {
        // References nobody holds: they still live until the store drops.
        ExternRef::new(&mut store, Counted(drops.clone(), 0))?;
    }
    // A collection frees nothing either: there is no collector yet.
    store.gc(None)?;
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    let bump = instance.get_typed_func::<(), u32>(&mut store, "bump")?;
    assert_eq!(bump.call(&mut store, ())?, 42);
    let back = get.call(&mut store, ())?.expect("the table keeps it");
    let value = back
        .data(&store)?
        .and_then(|d| d.downcast_ref::<Counted>())
        .map(|c| c.1);
    assert_eq!(value, Some(42));
    let other = ExternRef::new(&mut store, Counted(drops.clone(), 1))?;
    assert!(Rooted::ref_eq(&store, &back, &back)?);
    assert!(!Rooted::ref_eq(&store, &back, &other)?);
    // A reference from another store is refused, not read.
    let mut store2 = Store::new(&engine, ());
    assert!(back.data(&store2).is_err());
    assert!(back.data_mut(&mut store2).is_err());
    drop(store2);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(store);
    assert_eq!(drops.load(Ordering::SeqCst), 1002);
    Ok(())
}

#[test]
fn core_dumps_describe_the_store_at_the_trap() -> Result<()> {
    let wat = r#"(module $crashy
         (memory (export "mem") 1)
         (global $g (export "g") (mut i32) (i32.const 0))
         (global $h f64 (f64.const 1.5))
         (func $inner
           (global.set $g (i32.const 42))
           (i32.store (i32.const 8) (i32.const 0x11223344))
           unreachable)
         (func (export "run") (call $inner)))"#;
    let mut config = Config::new();
    config.coredump_on_trap(true);
    let engine = Engine::new(&config)?;
    let module = Module::new(&engine, wat)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    let run = instance.get_typed_func::<(), ()>(&mut store, "run")?;
    let e = run.call(&mut store, ()).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>(),
        Some(&Trap::UnreachableCodeReached)
    );
    assert!(e.downcast_ref::<WasmBacktrace>().is_some());
    let dump = e.downcast_ref::<WasmCoreDump>().expect("a core dump");
    let frames: Vec<_> = dump
        .frames()
        .iter()
        .map(|f| (f.func_index(), f.func_name().map(str::to_string)))
        .collect();
    assert_eq!(frames, [(0, Some("inner".to_string())), (1, None)]);
    assert_eq!(dump.frames()[0].module().name(), Some("crashy"));
    assert_eq!(dump.modules().len(), 1);
    assert_eq!(dump.instances().len(), 1);
    assert_eq!(dump.memories().len(), 1);
    assert_eq!(dump.globals().len(), 2);
    assert!(dump.to_string().contains("wasm coredump generated"));

    // The serialized dump is a valid Wasm module holding the state.
    let bytes = dump.serialize(&mut store, "crashy.wasm");
    wasmparser::Validator::new().validate_all(&bytes)?;
    let (mut customs, mut segment, mut globals) = (Vec::new(), None, Vec::new());
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload? {
            wasmparser::Payload::CustomSection(c) => customs.push(c.name().to_string()),
            wasmparser::Payload::DataSection(r) => {
                for d in r {
                    let d = d?;
                    if let wasmparser::DataKind::Active { offset_expr, .. } = d.kind {
                        let mut ops = offset_expr.get_operators_reader();
                        if let wasmparser::Operator::I32Const { value } = ops.read()? {
                            segment = Some((value, d.data.to_vec()));
                        }
                    }
                }
            }
            wasmparser::Payload::GlobalSection(r) => {
                for g in r {
                    let mut ops = g?.init_expr.get_operators_reader();
                    globals.push(format!("{:?}", ops.read()?));
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        customs,
        ["core", "coremodules", "coreinstances", "corestack"]
    );
    assert_eq!(segment, Some((8, vec![0x44, 0x33, 0x22, 0x11])));
    assert_eq!(globals.len(), 2);
    assert!(globals[0].contains("I32Const { value: 42 }"), "{globals:?}");

    // Without the option, no dump.
    let engine = Engine::default();
    let module = Module::new(&engine, wat)?;
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    let run = instance.get_typed_func::<(), ()>(&mut store, "run")?;
    let e = run.call(&mut store, ()).unwrap_err();
    assert!(e.downcast_ref::<WasmCoreDump>().is_none());
    Ok(())
}

#[test]
fn host_functions_reach_memory_through_caller() -> Result<()> {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "host" "upper" (func $upper (param i32 i32)))
             (memory (export "memory") 1)
             (data (i32.const 0) "kiln")
             (func (export "run") (call $upper (i32.const 0) (i32.const 4))))"#,
    )?;
    let mut store = Store::new(&engine, 0usize);
    let mut linker = Linker::new(&engine);
    linker.func_wrap(
        "host",
        "upper",
        |mut caller: Caller<'_, usize>, ptr: i32, len: i32| -> Result<()> {
            let mem = caller
                .get_export("memory")
                .and_then(Extern::into_memory)
                .ok_or_else(|| format_err!("no memory"))?;
            let range = ptr as usize..(ptr + len) as usize;
            mem.data_mut(&mut caller)[range.clone()].make_ascii_uppercase();
            let (bytes, seen) = mem.data_and_store_mut(caller.as_context_mut());
            *seen += bytes[range].len();
            Ok(())
        },
    )?;
    let instance = linker.instantiate(&mut store, &module)?;
    instance
        .get_typed_func::<(), ()>(&mut store, "run")?
        .call(&mut store, ())?;
    let memory = instance.get_memory(&mut store, "memory").expect("exported");
    assert_eq!(&memory.data(&store)[..4], b"KILN");
    assert_eq!(*store.data(), 4);
    Ok(())
}
