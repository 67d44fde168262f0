use crate::instantiate;
use kiln::*;

#[test]
fn add_typed_and_untyped() {
    let (mut store, i) = instantiate(
        r#"(module (func (export "add") (param i32 i32) (result i32)
              local.get 0 local.get 1 i32.add))"#,
    );
    let add = i
        .get_typed_func::<(i32, i32), i32>(&mut store, "add")
        .unwrap();
    assert_eq!(add.call(&mut store, (2, 40)).unwrap(), 42);
    let f = i.get_func(&mut store, "add").unwrap();
    let mut r = [Val::I32(0)];
    f.call(&mut store, &[Val::I32(1), Val::I32(2)], &mut r)
        .unwrap();
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
    let div = i
        .get_typed_func::<(i32, i32), i32>(&mut store, "div")
        .unwrap();
    let e = div.call(&mut store, (1, 0)).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>().copied(),
        Some(Trap::IntegerDivisionByZero)
    );
    assert_eq!(div.call(&mut store, (9, 3)).unwrap(), 3);
}

#[test]
fn indirect_calls_and_their_traps() {
    let (mut store, i) = instantiate(include_str!("../../../../examples/indirect.wat"));
    let apply = i
        .get_typed_func::<(i32, i32), i32>(&mut store, "apply")
        .unwrap();
    assert_eq!(apply.call(&mut store, (2, 7)).unwrap(), 49);
    assert_eq!(apply.call(&mut store, (1, 7)).unwrap(), 14);
    let e = apply.call(&mut store, (99, 7)).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>().copied(),
        Some(Trap::TableOutOfBounds)
    );

    let (mut store, i) = instantiate(
        r#"(module
             (type $ii (func (param i32) (result i32)))
             (table 3 funcref)
             (elem (i32.const 0) $f $g)
             (func $f (param i32) (result i32) local.get 0)
             (func $g (result i64) i64.const 1)
             (func (export "call") (param i32) (result i32)
               i32.const 5 local.get 0 call_indirect (type $ii)))"#,
    );
    let call = i.get_typed_func::<i32, i32>(&mut store, "call").unwrap();
    assert_eq!(call.call(&mut store, 0).unwrap(), 5);
    assert_eq!(
        call.call(&mut store, 1)
            .unwrap_err()
            .downcast_ref::<Trap>()
            .copied(),
        Some(Trap::BadSignature)
    );
    assert_eq!(
        call.call(&mut store, 2)
            .unwrap_err()
            .downcast_ref::<Trap>()
            .copied(),
        Some(Trap::IndirectCallToNull)
    );
}

#[test]
fn multi_value_results() {
    let (mut store, i) = instantiate(
        r#"(module
             (func $swap (param i32 i64) (result i64 i32) local.get 1 local.get 0)
             (func (export "swap") (param i32 i64) (result i64 i32)
               local.get 0 local.get 1 call $swap))"#,
    );
    let f = i
        .get_typed_func::<(i32, i64), (i64, i32)>(&mut store, "swap")
        .unwrap();
    assert_eq!(f.call(&mut store, (1, 2)).unwrap(), (2, 1));
    let g = i.get_func(&mut store, "swap").unwrap();
    let mut r = [Val::I64(0), Val::I32(0)];
    g.call(&mut store, &[Val::I32(3), Val::I64(4)], &mut r)
        .unwrap();
    assert_eq!((r[0].i64(), r[1].i32()), (Some(4), Some(3)));
}

#[test]
fn floats_and_globals() {
    let (mut store, i) = instantiate(
        r#"(module
             (global $g (export "g") (mut f64) (f64.const 1.5))
             (func (export "scale") (param f32) (result f64)
               local.get 0 f64.promote_f32 global.get $g f64.mul
               global.set $g global.get $g))"#,
    );
    let f = i.get_typed_func::<f32, f64>(&mut store, "scale").unwrap();
    assert_eq!(f.call(&mut store, 2.0).unwrap(), 3.0);
    let g = i.get_global(&mut store, "g").unwrap();
    assert_eq!(g.get(&mut store).f64(), Some(3.0));
    g.set(&mut store, Val::F64(10f64.to_bits())).unwrap();
    assert_eq!(f.call(&mut store, 0.5).unwrap(), 5.0);
}

#[test]
fn start_function_and_exported_global() {
    let (mut store, i) = instantiate(include_str!("../../../../examples/hello.wat"));
    if let Some(start) = i.get_func(&mut store, "_start") {
        start.call(&mut store, &[], &mut []).unwrap();
    }
    let total = i.get_global(&mut store, "total").unwrap();
    assert_eq!(total.get(&mut store).i32(), Some(5050));

    let (mut store, i) = instantiate(
        r#"(module (global $x (export "x") (mut i32) (i32.const 0))
             (func $init i32.const 7 global.set $x) (start $init))"#,
    );
    let x = i.get_global(&mut store, "x").unwrap();
    assert_eq!(x.get(&mut store).i32(), Some(7));
}

#[test]
fn thread_safety_of_public_types() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Engine>();
    send_sync::<Module>();
    send_sync::<Linker<u32>>();
    send_sync::<InstancePre<u32>>();
    send_sync::<Func>();
    send_sync::<TypedFunc<i32, i32>>();
    send_sync::<Memory>();
    send_sync::<Table>();
    send_sync::<Global>();
    send_sync::<Instance>();
    send_sync::<InterruptHandle>();
    send_sync::<Error>();
    send::<Store<u32>>();
}

#[test]
fn a_store_moves_between_threads() {
    let (mut store, i) = instantiate(include_str!("../../../../examples/fib.wat"));
    let fib = i.get_typed_func::<i32, i64>(&mut store, "fib").unwrap();
    assert_eq!(fib.call(&mut store, 10).unwrap(), 55);
    let (store, r) = std::thread::spawn(move || {
        let r = fib.call(&mut store, 15).unwrap();
        (store, r)
    })
    .join()
    .unwrap();
    assert_eq!(r, 610);
    let mut store = store;
    assert_eq!(fib.call(&mut store, 20).unwrap(), 6765);
}
