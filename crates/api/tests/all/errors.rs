use kiln::*;

#[test]
fn malformed_invalid_and_unlinkable_modules_are_errors() {
    let engine = Engine::default();
    // Lower layers' typed errors stay reachable by downcasting.
    let e = Module::new(&engine, b"\0asm\x02\0\0\0").unwrap_err();
    assert!(e.is::<kiln_environ::WasmError>(), "{e:?}");
    let e = Module::new(&engine, "(module (func (result i32)))").unwrap_err();
    assert!(e.is::<kiln_environ::WasmError>(), "{e:?}");
    let e = Module::new(&engine, "(module (func").unwrap_err();
    assert!(e.is::<wat::Error>(), "{e:?}");
    let m = Module::new(&engine, r#"(module (import "a" "b" (func)))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let e = Linker::new(&engine)
        .instantiate(&mut store, &m)
        .unwrap_err();
    assert!(e.to_string().contains("unknown import: `a::b`"), "{e}");
    let mut linker = Linker::new(&engine);
    linker.func_wrap("a", "b", |_: i32| {}).unwrap();
    let e = linker.instantiate(&mut store, &m).unwrap_err();
    assert!(
        e.to_string()
            .contains("incompatible import type for `a::b`"),
        "{e}"
    );
}

#[test]
fn wrong_arguments_are_errors() {
    let (mut store, i) =
        crate::instantiate(r#"(module (func (export "f") (param i32) (result i32) local.get 0))"#);
    let f = i.get_func(&mut store, "f").unwrap();
    let mut r = [Val::I32(0)];
    let e = f.call(&mut store, &[], &mut r).unwrap_err();
    assert!(e.to_string().contains("expected 1 arguments"), "{e}");
    let e = f.call(&mut store, &[Val::I64(1)], &mut r).unwrap_err();
    assert!(
        e.to_string().contains("argument 0 is i64, expected i32"),
        "{e}"
    );
    assert!(f.typed::<i64, i32>(&store).is_err());
    assert!(i.get_typed_func::<i32, i32>(&mut store, "nope").is_err());
}

#[test]
fn segment_out_of_bounds_is_an_instantiation_trap() {
    let engine = Engine::default();
    let m = Module::new(
        &engine,
        r#"(module (memory 1) (data (i32.const 65535) "ab"))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let e = Instance::new(&mut store, &m, &[]).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>().copied(),
        Some(Trap::MemoryOutOfBounds)
    );
}
