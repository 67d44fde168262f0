use kiln::*;

#[test]
fn malformed_invalid_and_unlinkable_modules_are_errors() {
    let engine = Engine::default();
    assert!(matches!(
        Module::new(&engine, b"\0asm\x02\0\0\0"),
        Err(Error::Wasm(_))
    ));
    assert!(matches!(
        Module::new(&engine, "(module (func (result i32)))"),
        Err(Error::Wasm(_))
    ));
    assert!(matches!(
        Module::new(&engine, "(module (func"),
        Err(Error::Wat(_))
    ));
    let m = Module::new(&engine, r#"(module (import "a" "b" (func)))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let e = Linker::new(&engine)
        .instantiate(&mut store, &m)
        .unwrap_err();
    assert!(matches!(e, Error::UnknownImport { .. }), "{e}");
    let mut linker = Linker::new(&engine);
    linker.func_wrap("a", "b", |_: i32| {}).unwrap();
    let e = linker.instantiate(&mut store, &m).unwrap_err();
    assert!(matches!(e, Error::IncompatibleImport { .. }), "{e}");
}

#[test]
fn wrong_arguments_are_errors() {
    let (mut store, i) =
        crate::instantiate(r#"(module (func (export "f") (param i32) (result i32) local.get 0))"#);
    let f = i.get_func(&mut store, "f").unwrap();
    let mut r = [Val::I32(0)];
    assert!(matches!(
        f.call(&mut store, &[], &mut r),
        Err(Error::TypeMismatch(_))
    ));
    assert!(matches!(
        f.call(&mut store, &[Val::I64(1)], &mut r),
        Err(Error::TypeMismatch(_))
    ));
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
    assert_eq!(e.trap_code(), Some(TrapCode::MemoryOutOfBounds));
}
