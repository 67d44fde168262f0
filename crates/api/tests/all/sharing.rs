//! A `Linker`'s host functions are shared by every store and thread that
//! instantiates through it. Linking one into a module must never change
//! it: each importing instance gets its own `wasm_call` (the importing
//! module's trampoline, in the instance's own import slot or in a copy of
//! the function reference that the store owns), so a module that is
//! dropped can never leave another instance calling into its freed code.

use kiln::*;
use std::sync::{Arc, Barrier};

/// A module importing `env::f`, calling it directly and, when `escapes`,
/// through its own table too (the import escapes into an element segment).
fn importer(engine: &Engine, k: i32, escapes: bool) -> Module {
    let table = if escapes {
        r#"(table 1 funcref) (elem (i32.const 0) $f)
           (func (export "indirect") (param i32) (result i32)
             (call_indirect (param i32) (result i32) (local.get 0) (i32.const 0)))"#
    } else {
        ""
    };
    Module::new(
        engine,
        format!(
            r#"(module
              (import "env" "f" (func $f (param i32) (result i32)))
              {table}
              (func (export "direct") (param i32) (result i32)
                (i32.add (call $f (local.get 0)) (i32.const {k}))))"#
        ),
    )
    .unwrap()
}

#[test]
fn two_threads_link_one_host_function_into_two_modules() {
    let engine = Engine::default();
    for round in 0..200 {
        let escapes = round % 2 == 0;
        let mut linker = Linker::<()>::new(&engine);
        linker.func_wrap("env", "f", |x: i32| x * 2).unwrap();
        let linker = Arc::new(linker);
        let modules = [importer(&engine, 1, escapes), importer(&engine, 2, escapes)];
        let barrier = Arc::new(Barrier::new(2));
        let [ma, mb] = modules;
        // Thread A links and drops its module at once; thread B keeps
        // calling through its instance afterwards.
        let ta = {
            let (linker, barrier, engine) = (linker.clone(), barrier.clone(), engine.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut store = Store::new(&engine, ());
                let i = linker.instantiate(&mut store, &ma).unwrap();
                let f = i.get_typed_func::<i32, i32>(&mut store, "direct").unwrap();
                assert_eq!(f.call(&mut store, 5).unwrap(), 11);
                drop((store, ma));
            })
        };
        let tb = {
            let (linker, barrier, engine) = (linker.clone(), barrier.clone(), engine.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut store = Store::new(&engine, ());
                let i = linker.instantiate(&mut store, &mb).unwrap();
                (store, i, mb)
            })
        };
        ta.join().unwrap();
        let (mut store, i, _mb) = tb.join().unwrap();
        // Module A and everything of it is gone now.
        let f = i.get_typed_func::<i32, i32>(&mut store, "direct").unwrap();
        assert_eq!(f.call(&mut store, 5).unwrap(), 12);
        if escapes {
            let g = i
                .get_typed_func::<i32, i32>(&mut store, "indirect")
                .unwrap();
            assert_eq!(g.call(&mut store, 7).unwrap(), 14);
        }
    }
}

#[test]
fn host_function_reaching_wasm_through_a_table_outlives_the_linking_module() {
    // The host function enters a table from the host (not as an import)
    // after the module that first linked it was dropped.
    let engine = Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    linker.func_wrap("env", "f", |x: i32| x + 100).unwrap();
    let mut store = Store::new(&engine, ());
    {
        let m = importer(&engine, 0, true);
        let i = linker.instantiate(&mut store, &m).unwrap();
        let f = i.get_typed_func::<i32, i32>(&mut store, "direct").unwrap();
        assert_eq!(f.call(&mut store, 1).unwrap(), 101);
    }
    let caller = Module::new(
        &engine,
        r#"(module
          (table (export "t") 1 funcref)
          (func (export "call0") (param i32) (result i32)
            (call_indirect (param i32) (result i32) (local.get 0) (i32.const 0))))"#,
    )
    .unwrap();
    let i = Instance::new(&mut store, &caller, &[]).unwrap();
    let host = linker.get(&mut store, "env", "f").unwrap();
    let t = i.get_table(&mut store, "t").unwrap();
    t.set(&mut store, 0, Ref::Func(host.into_func())).unwrap();
    let call0 = i.get_typed_func::<i32, i32>(&mut store, "call0").unwrap();
    assert_eq!(call0.call(&mut store, 5).unwrap(), 105);
    // Reading the table back gives the same function.
    let back = t.get(&mut store, 0).unwrap();
    let Ref::Func(Some(back)) = back else {
        panic!("not a funcref: {back:?}")
    };
    let typed = back.typed::<i32, i32>(&store).unwrap();
    assert_eq!(typed.call(&mut store, 1).unwrap(), 101);
}

/// What may cross threads: shared objects (`Engine`, `Module`, `Linker`,
/// `InstancePre`) are `Send + Sync`; a `Store` is `Send` and moves with
/// everything it owns; handles (`Func`, `TypedFunc`, `Instance`, ...) are
/// `Send + Sync` because they are useless without their store, which
/// checks that a handle is its own before following its pointers.
#[test]
fn what_crosses_threads_and_how_handles_stay_tied_to_their_store() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Engine>();
    send_sync::<Module>();
    send_sync::<Linker<()>>();
    send_sync::<InstancePre<()>>();
    send_sync::<InterruptHandle>();
    send::<Store<()>>();
    send_sync::<Func>();
    send_sync::<TypedFunc<i32, i32>>();
    send_sync::<Instance>();
    send_sync::<Memory>();
    send_sync::<Table>();
    send_sync::<Global>();

    let engine = Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    linker.func_wrap("env", "f", |x: i32| x * 3).unwrap();
    let module = importer(&engine, 1, true);
    let mut store = Store::new(&engine, ());
    let i = linker.instantiate(&mut store, &module).unwrap();
    let f = i
        .get_typed_func::<i32, i32>(&mut store, "indirect")
        .unwrap();
    // The store and a handle move to another thread and work there.
    let (mut store, f) = std::thread::spawn(move || {
        assert_eq!(f.call(&mut store, 2).unwrap(), 6);
        (store, f)
    })
    .join()
    .unwrap();
    assert_eq!(f.call(&mut store, 3).unwrap(), 9);
    // A handle used with another store is refused, not followed.
    let mut other = Store::new(&engine, ());
    assert!(f.call(&mut other, 1).is_err());
}
