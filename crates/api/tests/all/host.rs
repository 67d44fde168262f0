use kiln::*;

#[test]
fn wrap_with_caller_and_state() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "env" "bump" (func $bump (param i32) (result i32)))
             (func (export "run") (param i32) (result i32)
               local.get 0 call $bump local.get 0 call $bump i32.add))"#,
    )
    .unwrap();
    let mut linker = Linker::<u32>::new(&engine);
    linker
        .func_wrap("env", "bump", |mut c: Caller<'_, u32>, x: i32| {
            *c.data_mut() += 1;
            x + *c.data() as i32
        })
        .unwrap();
    let mut store = Store::new(&engine, 0u32);
    let i = linker.instantiate(&mut store, &module).unwrap();
    let run = i.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    assert_eq!(run.call(&mut store, 10).unwrap(), 11 + 12);
    assert_eq!(*store.data(), 2);
}

#[test]
fn host_errors_and_panics_cross_wasm_cleanly() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "env" "fail" (func $fail (param i32)))
             (func (export "run") (param i32) local.get 0 call $fail))"#,
    )
    .unwrap();
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_wrap("env", "fail", |x: i32| -> Result<()> {
            if x == 1 {
                panic!("host panic {x}");
            }
            if x == 2 {
                return Err(Error::msg("host says no"));
            }
            Ok(())
        })
        .unwrap();
    let mut store = Store::new(&engine, ());
    let i = linker.instantiate(&mut store, &module).unwrap();
    let run = i.get_typed_func::<i32, ()>(&mut store, "run").unwrap();
    run.call(&mut store, 0).unwrap();
    let e = run.call(&mut store, 2).unwrap_err();
    assert_eq!(e.to_string(), "host says no");
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.call(&mut store, 1)));
    assert!(p.is_err(), "the panic resumes in the host caller");
    run.call(&mut store, 0)
        .expect("store usable after a host panic");
}

#[test]
fn dynamic_host_function_and_multi_value() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (import "env" "divmod" (func $dm (param i32 i32) (result i32 i32)))
             (func (export "run") (param i32 i32) (result i32)
               local.get 0 local.get 1 call $dm i32.sub))"#,
    )
    .unwrap();
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_new(
            "env",
            "divmod",
            FuncType::new([ValType::I32, ValType::I32], [ValType::I32, ValType::I32]),
            |_c, args, results| {
                let (a, b) = (args[0].i32().unwrap(), args[1].i32().unwrap());
                results[0] = Val::I32(a / b);
                results[1] = Val::I32(a % b);
                Ok(())
            },
        )
        .unwrap();
    let mut store = Store::new(&engine, ());
    let i = linker.instantiate(&mut store, &module).unwrap();
    let run = i
        .get_typed_func::<(i32, i32), i32>(&mut store, "run")
        .unwrap();
    assert_eq!(run.call(&mut store, (17, 5)).unwrap(), 3 - 2);

    // The same host function called directly from the host, both ways.
    let dm = linker
        .get(&mut store, "env", "divmod")
        .unwrap()
        .into_func()
        .unwrap();
    let typed = dm.typed::<(i32, i32), (i32, i32)>(&store).unwrap();
    assert_eq!(typed.call(&mut store, (9, 4)).unwrap(), (2, 1));
}

#[test]
fn wrapped_multi_value_and_many_params() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let f = Func::wrap(&mut store, |a: i32, b: i64, c: f32, d: f64| (d, c, b, a));
    let typed = f
        .typed::<(i32, i64, f32, f64), (f64, f32, i64, i32)>(&store)
        .unwrap();
    assert_eq!(
        typed.call(&mut store, (1, 2, 3.0, 4.0)).unwrap(),
        (4.0, 3.0, 2, 1)
    );
    let sum = Func::wrap(
        &mut store,
        |a: i32,
         b: i32,
         c: i32,
         d: i32,
         e: i32,
         f: i32,
         g: i32,
         h: i32,
         i: i64,
         j: i64,
         k: f64,
         l: f64| { (a + b + c + d + e + f + g + h) as i64 + i + j + (k + l) as i64 },
    );
    let module = Module::new(
        &engine,
        r#"(module
             (import "" "sum" (func $s (param i32 i32 i32 i32 i32 i32 i32 i32 i64 i64 f64 f64) (result i64)))
             (func (export "run") (result i64)
               i32.const 1 i32.const 2 i32.const 3 i32.const 4 i32.const 5 i32.const 6
               i32.const 7 i32.const 8 i64.const 9 i64.const 10 f64.const 11 f64.const 12
               call $s))"#,
    )
    .unwrap();
    let i = Instance::new(&mut store, &module, &[sum.into()]).unwrap();
    let run = i.get_typed_func::<(), i64>(&mut store, "run").unwrap();
    assert_eq!(run.call(&mut store, ()).unwrap(), 78);
}

#[test]
fn host_function_through_a_table() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let double = Func::wrap(&mut store, |x: i32| x * 2);
    let module = Module::new(
        &engine,
        r#"(module
             (type $t (func (param i32) (result i32)))
             (table (export "t") 1 funcref)
             (func (export "call") (param i32) (result i32)
               local.get 0 i32.const 0 call_indirect (type $t)))"#,
    )
    .unwrap();
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let t = i.get_table(&mut store, "t").unwrap();
    t.set(&mut store, 0, Val::FuncRef(Some(double))).unwrap();
    let call = i.get_typed_func::<i32, i32>(&mut store, "call").unwrap();
    assert_eq!(call.call(&mut store, 21).unwrap(), 42);
}
