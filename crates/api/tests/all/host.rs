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
    // The host's own error comes back, with the Wasm frames it crossed
    // as context (as in Wasmtime).
    assert_eq!(e.root_cause().to_string(), "host says no");
    assert!(e.downcast_ref::<Trap>().is_none());
    let bt = e.downcast_ref::<WasmBacktrace>().expect("a backtrace");
    assert!(!bt.frames().is_empty());
    assert!(
        format!("{e:?}").contains("Caused by:\n    host says no"),
        "{e:?}"
    );
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
            FuncType::new(
                &engine,
                [ValType::I32, ValType::I32],
                [ValType::I32, ValType::I32],
            ),
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
    t.set(&mut store, 0, Ref::Func(Some(double))).unwrap();
    let call = i.get_typed_func::<i32, i32>(&mut store, "call").unwrap();
    assert_eq!(call.call(&mut store, 21).unwrap(), 42);
}

/// Every value type, every direction: host -> Wasm (typed and untyped),
/// Wasm -> host (typed `Func::wrap` and dynamic `Func::new`), with 16
/// parameters and multi-value results mixing all of them.
#[test]
fn all_value_types_in_every_direction() {
    type P = (
        i32,
        i64,
        f32,
        f64,
        V128,
        Option<Rooted<ExternRef>>,
        Option<Func>,
        i32,
        i64,
        f32,
        f64,
        V128,
        Option<Rooted<ExternRef>>,
        Option<Func>,
        i32,
        i64,
    );
    type R = (i64, V128, Option<Rooted<ExternRef>>, Option<Func>, f64);
    let sig = "(param i32 i64 f32 f64 v128 externref funcref i32 i64 f32 f64 v128 externref funcref i32 i64)
               (result i64 v128 externref funcref f64)";
    let wat = format!(
        r#"(module
             (import "env" "typed" (func $typed {sig}))
             (import "env" "dynamic" (func $dynamic {sig}))
             (func $pass (export "pass") {sig}
               local.get 0 local.get 1 local.get 2 local.get 3 local.get 4 local.get 5
               local.get 6 local.get 7 local.get 8 local.get 9 local.get 10 local.get 11
               local.get 12 local.get 13 local.get 14 local.get 15
               call $typed
               drop drop drop drop drop
               local.get 0 local.get 1 local.get 2 local.get 3 local.get 4 local.get 5
               local.get 6 local.get 7 local.get 8 local.get 9 local.get 10 local.get 11
               local.get 12 local.get 13 local.get 14 local.get 15
               call $dynamic)
             (elem declare func $pass))"#
    );
    let engine = Engine::default();
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, 0u32);
    // The host returns, in order: the sum of the integer args, the second
    // v128, the first externref, the second funcref, the sum of the floats.
    let typed = Func::wrap(
        &mut store,
        |mut c: Caller<'_, u32>,
         a: i32,
         b: i64,
         f1: f32,
         f2: f64,
         _v1: V128,
         e1: Option<Rooted<ExternRef>>,
         _g1: Option<Func>,
         c2: i32,
         d: i64,
         f3: f32,
         f4: f64,
         v2: V128,
         _e2: Option<Rooted<ExternRef>>,
         g2: Option<Func>,
         e: i32,
         f: i64|
         -> R {
            *c.data_mut() += 1;
            (
                i64::from(a) + b + i64::from(c2) + d + i64::from(e) + f,
                v2,
                e1,
                g2,
                f64::from(f1) + f2 + f64::from(f3) + f4,
            )
        },
    );
    let ty = typed.ty(&store);
    let dynamic = Func::new(&mut store, ty.clone(), |mut c, args, results| {
        *c.data_mut() += 10;
        let int = |v: &Val| v.i32().map(i64::from).or(v.i64()).unwrap();
        results[0] = Val::I64([0, 1, 7, 8, 14, 15].iter().map(|i| int(&args[*i])).sum());
        results[1] = args[11].clone();
        results[2] = args[5].clone();
        results[3] = args[13].clone();
        let fl = |v: &Val| v.f32().map(f64::from).or(v.f64()).unwrap();
        results[4] = Val::F64(
            [2, 3, 9, 10]
                .iter()
                .map(|i| fl(&args[*i]))
                .sum::<f64>()
                .to_bits(),
        );
        Ok(())
    });
    let i = Instance::new(&mut store, &module, &[typed.into(), dynamic.into()]).unwrap();
    let pass = i.get_func(&mut store, "pass").unwrap();
    let ext1 = ExternRef::new(&mut store, "first").unwrap();
    let ext2 = ExternRef::new(&mut store, "second").unwrap();
    let params: P = (
        1,
        2,
        3.5,
        4.25,
        V128::from(0x1111),
        Some(ext1),
        Some(typed),
        5,
        6,
        7.5,
        8.0,
        V128::from(0xfeed_beef_u128 << 64),
        Some(ext2),
        Some(pass),
        9,
        10,
    );
    let check = |store: &mut Store<u32>, r: R| {
        assert_eq!(r.0, 1 + 2 + 5 + 6 + 9 + 10);
        assert_eq!(r.1, V128::from(0xfeed_beef_u128 << 64));
        let e = r.2.unwrap();
        assert_eq!(
            e.data(&*store).unwrap().unwrap().downcast_ref::<&str>(),
            Some(&"first")
        );
        assert_eq!(r.3, Some(pass));
        assert_eq!(r.4, 3.5 + 4.25 + 7.5 + 8.0);
    };
    // Host -> Wasm, typed (native entry) ...
    let typed_pass = pass.typed::<P, R>(&store).unwrap();
    let r = typed_pass.call(&mut store, params).unwrap();
    check(&mut store, r);
    assert_eq!(*store.data(), 11, "both host functions ran");
    // ... and untyped (array entry).
    let args = [
        Val::I32(1),
        Val::I64(2),
        Val::F32(3.5f32.to_bits()),
        Val::F64(4.25f64.to_bits()),
        Val::V128(0x1111.into()),
        Val::ExternRef(Some(ext1)),
        Val::FuncRef(Some(typed)),
        Val::I32(5),
        Val::I64(6),
        Val::F32(7.5f32.to_bits()),
        Val::F64(8.0f64.to_bits()),
        Val::V128((0xfeed_beef_u128 << 64).into()),
        Val::ExternRef(Some(ext2)),
        Val::FuncRef(Some(pass)),
        Val::I32(9),
        Val::I64(10),
    ];
    let mut results: Vec<Val> = ty
        .results()
        .map(|t| Val::default_for_ty(&t).unwrap())
        .collect();
    pass.call(&mut store, &args, &mut results).unwrap();
    assert_eq!(results[0].i64(), Some(33));
    assert!(matches!(results[1], Val::V128(v) if v.as_u128() == 0xfeed_beef_u128 << 64));
    assert!(matches!(results[3], Val::FuncRef(Some(f)) if f == pass));
    // The host functions called directly from the host, both entries.
    let r = typed
        .typed::<P, R>(&store)
        .unwrap()
        .call(&mut store, params)
        .unwrap();
    check(&mut store, r);
    let r = dynamic
        .typed::<P, R>(&store)
        .unwrap()
        .call(&mut store, params)
        .unwrap();
    check(&mut store, r);
    dynamic.call(&mut store, &args, &mut results).unwrap();
    assert_eq!(results[0].i64(), Some(33));
    assert_eq!(*store.data(), 11 + 11 + 1 + 10 + 10);
}

#[test]
fn host_function_passed_as_funcref_between_modules() {
    // A host function first seen by module A (as an import) is handed, as
    // a funcref, to module B, which calls it through a table.
    let engine = Engine::default();
    let a = Module::new(
        &engine,
        r#"(module (import "" "h" (func $h (param i32) (result i32)))
             (func (export "get") (result funcref) ref.func $h)
             (elem declare func $h))"#,
    )
    .unwrap();
    let b = Module::new(
        &engine,
        r#"(module (type $t (func (param i32) (result i32))) (table 1 funcref)
             (func (export "call") (param funcref i32) (result i32)
               i32.const 0 local.get 0 table.set
               local.get 1 i32.const 0 call_indirect (type $t)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let h = Func::wrap(&mut store, |x: i32| x + 100);
    let ia = Instance::new(&mut store, &a, &[h.into()]).unwrap();
    let ib = Instance::new(&mut store, &b, &[]).unwrap();
    let get = ia
        .get_typed_func::<(), Option<Func>>(&mut store, "get")
        .unwrap();
    let f = get.call(&mut store, ()).unwrap();
    assert_eq!(f, Some(h));
    let call = ib
        .get_typed_func::<(Option<Func>, i32), i32>(&mut store, "call")
        .unwrap();
    assert_eq!(call.call(&mut store, (f, 1)).unwrap(), 101);
    // A host function never imported anywhere works through a table too.
    let g = Func::wrap(&mut store, |x: i32| x * 3);
    assert_eq!(call.call(&mut store, (Some(g), 5)).unwrap(), 15);
}

/// With `.eh_frame` registered, the system unwinder walks from a host
/// function through the Wasm frames back into the Rust caller.
#[test]
#[inline(never)]
fn system_unwinder_walks_through_wasm_frames() {
    fn frames_seen(config: &Config) -> String {
        let engine = Engine::new(config).unwrap();
        let module = Module::new(
            &engine,
            r#"(module (import "" "bt" (func $bt)) (func (export "run") call $bt))"#,
        )
        .unwrap();
        let mut store = Store::new(&engine, String::new());
        let bt = Func::wrap(&mut store, |mut c: Caller<'_, String>| {
            *c.data_mut() = std::backtrace::Backtrace::force_capture().to_string();
        });
        let i = Instance::new(&mut store, &module, &[bt.into()]).unwrap();
        i.get_typed_func::<(), ()>(&mut store, "run")
            .unwrap()
            .call(&mut store, ())
            .unwrap();
        store.into_data()
    }
    // The caller's own frame (not the host closure defined inside it).
    let reaches_caller = |bt: &str| bt.lines().any(|l| l.trim_end().ends_with("::frames_seen"));
    let with = frames_seen(&Config::new());
    assert!(reaches_caller(&with), "unwound into the caller:\n{with}");
    let mut c = Config::new();
    c.native_unwind_info(false);
    let without = frames_seen(&c);
    assert!(
        !reaches_caller(&without),
        "stops at Wasm without unwind info:\n{without}"
    );
}
