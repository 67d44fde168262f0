use kiln::*;

fn instantiate(wat: &str) -> (Store<()>, Instance) {
    let engine = Engine::default();
    let module = Module::new(&engine, wat).expect("compiles");
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).expect("instantiates");
    (store, instance)
}

#[test]
fn add_typed_and_untyped() {
    let (mut store, i) = instantiate(
        r#"(module (func (export "add") (param i32 i32) (result i32)
              local.get 0 local.get 1 i32.add))"#,
    );
    let add = i.get_typed_func::<(i32, i32), i32>(&mut store, "add").unwrap();
    assert_eq!(add.call(&mut store, (2, 40)).unwrap(), 42);
    let f = i.get_func(&mut store, "add").unwrap();
    let mut r = [Val::I32(0)];
    f.call(&mut store, &[Val::I32(1), Val::I32(2)], &mut r).unwrap();
    assert_eq!(r[0].i32(), Some(3));
}

#[test]
fn fib_recursion() {
    let (mut store, i) = instantiate(include_str!("../../../../examples/fib.wat"));
    let fib = i.get_typed_func::<i32, i64>(&mut store, "fib").unwrap();
    assert_eq!(fib.call(&mut store, 20).unwrap(), 6765);
}

#[test]
fn trap_divide_by_zero_then_store_still_usable() {
    let (mut store, i) = instantiate(
        r#"(module (func (export "div") (param i32 i32) (result i32)
              local.get 0 local.get 1 i32.div_s))"#,
    );
    let div = i.get_typed_func::<(i32, i32), i32>(&mut store, "div").unwrap();
    let e = div.call(&mut store, (1, 0)).unwrap_err();
    assert_eq!(e.trap_code(), Some(TrapCode::IntegerDivisionByZero));
    assert_eq!(div.call(&mut store, (9, 3)).unwrap(), 3);
}
