//! `InstancePre`: the context template computed once (host functions,
//! funcrefs, globals, tables filled by element segments) gives every
//! instance, in every store and strategy, what instantiating from scratch
//! gives.

use kiln::*;

const LINKED: &str = r#"(module
  (import "host" "double" (func $double (param i32) (result i32)))
  (import "host" "seen" (func $seen (param i64)))
  (import "env" "base" (global $base i32))
  (type $i2i (func (param i32) (result i32)))
  (table (export "t") 8 funcref)
  (global $g32 (export "g32") (mut i32) (i32.const 5))
  (global (export "g64") i64 (i64.const -6))
  (global (export "gf32") f32 (f32.const 1.5))
  (global (export "gf64") f64 (f64.const 2.5))
  (global (export "gfr") funcref (ref.func $inc))
  (global (export "gbase") i32 (global.get $base))
  (elem (i32.const 1) func $double $inc $inc)
  (elem (i32.const 5) funcref (ref.func $double) (ref.null func))
  (func $inc (param i32) (result i32) local.get 0 i32.const 1 i32.add)
  (func (export "call") (param i32 i32) (result i32)
    local.get 1 local.get 0 call_indirect (type $i2i))
  (func (export "bump") (global.set $g32 (i32.add (global.get $g32) (i32.const 1))))
  (func (export "see") (call $seen (i64.const 3))))"#;

fn check(config: &Config) {
    let engine = Engine::new(config).unwrap();
    let module = Module::new(&engine, LINKED).unwrap();
    let linker = || {
        let mut linker = Linker::<u64>::new(&engine);
        linker.func_wrap("host", "double", |x: i32| x * 2).unwrap();
        linker
            .func_wrap("host", "seen", |mut c: Caller<'_, u64>, x: i64| {
                *c.data_mut() += x as u64
            })
            .unwrap();
        linker
    };
    let mut base_store = Store::new(&engine, 0);
    let base = Global::new(
        &mut base_store,
        GlobalType::new(ValType::I32, Mutability::Const),
        Val::I32(40),
    )
    .unwrap();
    // Host functions only: the store-bound global comes per store below.
    for round in 0..3 {
        let mut store = Store::new(&engine, 0);
        let base = Global::new(
            &mut store,
            GlobalType::new(ValType::I32, Mutability::Const),
            Val::I32(40 + round),
        )
        .unwrap();
        let mut l = linker();
        l.define("env", "base", base).unwrap();
        let pre = l.instantiate_pre(&module).unwrap();
        for _ in 0..2 {
            let i = pre.instantiate(&mut store).unwrap();
            let call = i
                .get_typed_func::<(i32, i32), i32>(&mut store, "call")
                .unwrap();
            assert_eq!(
                call.call(&mut store, (1, 21)).unwrap(),
                42,
                "host import in a table"
            );
            assert_eq!(call.call(&mut store, (2, 41)).unwrap(), 42, "own function");
            assert_eq!(
                call.call(&mut store, (5, 4)).unwrap(),
                8,
                "ref.func expression"
            );
            let e = call.call(&mut store, (6, 0)).unwrap_err();
            assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::IndirectCallToNull));
            let t = i.get_table(&mut store, "t").unwrap();
            assert!(t.get(&mut store, 0).unwrap().unwrap_func().is_none());
            let f = t.get(&mut store, 1).unwrap();
            let f = f.unwrap_func().unwrap().typed::<i32, i32>(&store).unwrap();
            assert_eq!(
                f.call(&mut store, 7).unwrap(),
                14,
                "host import from the host"
            );
            let g = |s: &mut Store<u64>, n: &str| i.get_global(&mut *s, n).unwrap().get(&mut *s);
            assert_eq!(g(&mut store, "g32").i32(), Some(5));
            assert_eq!(g(&mut store, "g64").i64(), Some(-6));
            assert_eq!(g(&mut store, "gf32").f32(), Some(1.5));
            assert_eq!(g(&mut store, "gf64").f64(), Some(2.5));
            assert_eq!(g(&mut store, "gbase").i32(), Some(40 + round));
            let gfr = g(&mut store, "gfr");
            let inc = gfr
                .unwrap_funcref()
                .unwrap()
                .typed::<i32, i32>(&store)
                .unwrap();
            assert_eq!(inc.call(&mut store, 1).unwrap(), 2);
            i.get_typed_func::<(), ()>(&mut store, "bump")
                .unwrap()
                .call(&mut store, ())
                .unwrap();
            assert_eq!(
                g(&mut store, "g32").i32(),
                Some(6),
                "globals are per instance"
            );
            i.get_typed_func::<(), ()>(&mut store, "see")
                .unwrap()
                .call(&mut store, ())
                .unwrap();
        }
        assert_eq!(*store.data(), 6, "the host function saw its own store");
    }
    // A global of another store is refused at instantiation.
    let mut l = linker();
    l.define("env", "base", base).unwrap();
    let pre = l.instantiate_pre(&module).unwrap();
    let mut store = Store::new(&engine, 0);
    assert!(pre.instantiate(&mut store).is_err());
}

#[test]
fn instances_from_a_template_match_in_both_strategies() {
    check(&Config::new());
    let mut p = PoolingAllocationConfig::new();
    p.total_core_instances(10)
        .total_memories(10)
        .total_tables(10);
    let mut c = Config::new();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    check(&c);
}
