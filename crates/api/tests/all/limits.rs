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
        assert_eq!(e.trap_code(), Some(TrapCode::StackOverflow), "{e}");
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
    assert_eq!(e.trap_code(), Some(TrapCode::Interrupt));
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
    assert_eq!(e.trap_code(), Some(TrapCode::Interrupt));
    let e = r.call(&mut store, 0).unwrap_err();
    assert_eq!(e.trap_code(), Some(TrapCode::StackOverflow));
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
    let Error::Trap(t) = e else {
        panic!("not a trap")
    };
    let names: Vec<_> = t.backtrace().iter().map(|f| f.func_name.clone()).collect();
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
                    assert_eq!(e.trap_code(), Some(TrapCode::IntegerDivisionByZero));
                    assert_eq!(f.call(&mut store, 1).unwrap(), 1, "iteration {n}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
