//! The pooling allocator: slot reuse, isolation between a dropped and a
//! reused instance, the pool's limits, and instantiation from threads.

use kiln::*;

fn pooled(f: impl FnOnce(&mut PoolingAllocationConfig)) -> Config {
    let mut p = PoolingAllocationConfig::new();
    p.total_core_instances(2)
        .total_memories(2)
        .total_tables(2)
        .max_memory_size(16 << 16)
        .table_elements(100);
    f(&mut p);
    let mut c = Config::new();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    c
}

const DIRTY: &str = r#"(module
  (memory (export "mem") 1)
  (table (export "tab") 2 funcref)
  (global $g (export "g") (mut i32) (i32.const 7))
  (data (i32.const 16) "hello")
  (func $f (result i32) i32.const 42)
  (elem declare func $f)
  (func (export "dirty")
    (i32.store (i32.const 0) (i32.const -1))
    (i32.store8 (i32.const 16) (i32.const 88))
    (i32.store (i32.const 65532) (i32.const -1))
    (drop (memory.grow (i32.const 2)))
    (i32.store (i32.const 131072) (i32.const -1))
    (i32.store (i32.const 196604) (i32.const -1))
    (table.set (i32.const 1) (ref.func $f))
    (drop (table.grow (ref.func $f) (i32.const 3)))
    (global.set $g (i32.const 99)))
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "size") (result i32) memory.size)
  (func (export "tsize") (result i32) table.size)
  (func (export "tgrow") (param i32) (result i32) ref.null func local.get 0 table.grow 0)
  (func (export "tnull") (param i32) (result i32) local.get 0 table.get 0 ref.is_null))"#;

/// Dirties an instance of `DIRTY`, drops it, and checks that the next
/// instance (in the same slots: the pool has two and uses the last one
/// returned first) sees a fresh instance.
fn check_isolation(config: &Config) {
    let engine = Engine::new(config).unwrap();
    let module = Module::new(&engine, DIRTY).unwrap();
    for round in 0..3 {
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
        let size = i.get_typed_func::<(), i32>(&mut store, "size").unwrap();
        let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
        let tsize = i.get_typed_func::<(), i32>(&mut store, "tsize").unwrap();
        let tgrow = i.get_typed_func::<i32, i32>(&mut store, "tgrow").unwrap();
        let tnull = i.get_typed_func::<i32, i32>(&mut store, "tnull").unwrap();
        let g = i.get_global(&mut store, "g").unwrap();
        assert_eq!(size.call(&mut store, ()).unwrap(), 1, "round {round}");
        assert_eq!(load.call(&mut store, 0).unwrap(), 0);
        assert_eq!(
            load.call(&mut store, 16).unwrap(),
            i32::from_le_bytes(*b"hell")
        );
        assert_eq!(load.call(&mut store, 65532).unwrap(), 0);
        // Exactly the minimum is accessible again.
        let e = load.call(&mut store, 65536).unwrap_err();
        assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
        assert_eq!(tsize.call(&mut store, ()).unwrap(), 2);
        assert_eq!(tnull.call(&mut store, 1).unwrap(), 1);
        assert_eq!(g.get(&mut store).i32(), Some(7));
        // The pages and elements the last instance grew into are clean.
        assert_eq!(grow.call(&mut store, 2).unwrap(), 1);
        assert_eq!(load.call(&mut store, 131072).unwrap(), 0);
        assert_eq!(load.call(&mut store, 196604).unwrap(), 0);
        assert_eq!(tgrow.call(&mut store, 3).unwrap(), 2);
        for e in 2..5 {
            assert_eq!(tnull.call(&mut store, e).unwrap(), 1);
        }
        // Now dirty everything, for the next round. (The instance grew
        // itself above; dirty grows again.)
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        let dirty = i.get_typed_func::<(), ()>(&mut store, "dirty").unwrap();
        dirty.call(&mut store, ()).unwrap();
        let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
        assert_eq!(load.call(&mut store, 196604).unwrap(), -1);
        let g = i.get_global(&mut store, "g").unwrap();
        assert_eq!(g.get(&mut store).i32(), Some(99));
    }
}

#[test]
fn reused_slots_show_nothing_of_the_last_instance() {
    check_isolation(&pooled(|_| {}));
}

#[test]
fn reused_slots_are_clean_without_images() {
    let mut c = pooled(|_| {});
    c.memory_init_cow(false);
    check_isolation(&c);
}

#[test]
fn reused_slots_are_clean_with_keep_resident() {
    check_isolation(&pooled(|p| {
        p.linear_memory_keep_resident(2 << 16)
            .table_keep_resident(4096);
    }));
    check_isolation(&pooled(|p| {
        p.linear_memory_keep_resident(100 << 16)
            .table_keep_resident(1 << 20);
    }));
}

/// On demand, dropped memories' reservations are reused too (see
/// `kiln::pooling`): the same isolation holds.
#[test]
fn reused_on_demand_reservations_show_nothing_of_the_last_instance() {
    check_isolation(&Config::new());
    let mut c = Config::new();
    c.memory_init_cow(false);
    check_isolation(&c);
}

/// A slot or cached reservation keeps the image of its last user mapped;
/// one reused by a module with another image, or none, shows only its
/// own data, however often the users alternate.
#[test]
fn reservations_switch_between_images_cleanly() {
    let a = r#"(module (memory 2) (data (i32.const 100) "AAAA") (data (i32.const 70000) "aa")
         (func (export "load") (param i32) (result i32) local.get 0 i32.load)
         (func (export "dirty") (i32.store (i32.const 100) (i32.const -1))
                                (i32.store (i32.const 200) (i32.const -1))))"#;
    let b = r#"(module (memory 1) (data (i32.const 200) "BBBB")
         (func (export "load") (param i32) (result i32) local.get 0 i32.load)
         (func (export "dirty") (i32.store (i32.const 100) (i32.const -1))
                                (i32.store (i32.const 200) (i32.const -1))))"#;
    let c = r#"(module (memory 2)
         (func (export "load") (param i32) (result i32) local.get 0 i32.load)
         (func (export "dirty") (i32.store (i32.const 100) (i32.const -1))
                                (i32.store (i32.const 70000) (i32.const -1))))"#;
    let word = |s: &[u8; 4]| i32::from_le_bytes(*s);
    let expect: [(&str, [(i32, i32); 3]); 3] = [
        (
            a,
            [
                (100, word(b"AAAA")),
                (200, 0),
                (70000, i32::from(u16::from_le_bytes(*b"aa"))),
            ],
        ),
        (b, [(100, 0), (200, word(b"BBBB")), (60000, 0)]),
        (c, [(100, 0), (200, 0), (70000, 0)]),
    ];
    for config in [
        pooled(|p| {
            p.total_memories(1);
        }),
        Config::new(),
    ] {
        let engine = Engine::new(&config).unwrap();
        let modules: Vec<Module> = expect
            .iter()
            .map(|(wat, _)| Module::new(&engine, wat).unwrap())
            .collect();
        for round in [0, 1, 0, 2, 1, 1, 2, 0, 0] {
            let mut store = Store::new(&engine, ());
            let i = Instance::new(&mut store, &modules[round], &[]).unwrap();
            let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
            for (addr, want) in expect[round].1 {
                assert_eq!(
                    load.call(&mut store, addr).unwrap(),
                    want,
                    "module {round} at {addr}"
                );
            }
            let dirty = i.get_typed_func::<(), ()>(&mut store, "dirty").unwrap();
            dirty.call(&mut store, ()).unwrap();
        }
    }
}

#[test]
fn a_slot_imaged_by_one_module_is_clean_for_another() {
    let engine = Engine::new(&pooled(|p| {
        p.total_memories(1);
    }))
    .unwrap();
    let with_data = Module::new(
        &engine,
        r#"(module (memory 2) (data (i32.const 100) "secret")
             (func (export "w") (i32.store (i32.const 70000) (i32.const 5))))"#,
    )
    .unwrap();
    let without = Module::new(
        &engine,
        r#"(module (memory 1)
             (func (export "load") (param i32) (result i32) local.get 0 i32.load))"#,
    )
    .unwrap();
    {
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &with_data, &[]).unwrap();
        let w = i.get_typed_func::<(), ()>(&mut store, "w").unwrap();
        w.call(&mut store, ()).unwrap();
    }
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &without, &[]).unwrap();
    let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
    assert_eq!(load.call(&mut store, 100).unwrap(), 0);
    assert_eq!(load.call(&mut store, 104).unwrap(), 0);
    // The second page the last user had is inaccessible again.
    let e = load.call(&mut store, 70000).unwrap_err();
    assert_eq!(e.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
}

#[test]
fn exhausting_the_pool_is_an_error_until_a_slot_returns() {
    let engine = Engine::new(&pooled(|_| {})).unwrap();
    let module = Module::new(&engine, "(module (memory 1) (table 1 funcref))").unwrap();
    let no_mem = Module::new(&engine, "(module)").unwrap();
    let mut stores: Vec<Store<()>> = Vec::new();
    for _ in 0..2 {
        let mut s = Store::new(&engine, ());
        Instance::new(&mut s, &module, &[]).unwrap();
        stores.push(s);
    }
    let mut s = Store::new(&engine, ());
    let e = Instance::new(&mut s, &no_mem, &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("maximum concurrent core instance limit of 2 reached"),
        "{e}"
    );
    stores.pop();
    Instance::new(&mut s, &module, &[]).unwrap();
    // Memories and tables run out on their own.
    let engine = Engine::new(&pooled(|p| {
        p.total_core_instances(10).total_memories(1);
    }))
    .unwrap();
    let module = Module::new(&engine, "(module (memory 1))").unwrap();
    let mut s = Store::new(&engine, ());
    Instance::new(&mut s, &module, &[]).unwrap();
    let e = Instance::new(&mut s, &module, &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("maximum concurrent memory limit of 1 reached"),
        "{e}"
    );
    let engine = Engine::new(&pooled(|p| {
        p.total_core_instances(10).total_tables(1);
    }))
    .unwrap();
    let module = Module::new(&engine, "(module (table 1 funcref))").unwrap();
    let mut s = Store::new(&engine, ());
    Instance::new(&mut s, &module, &[]).unwrap();
    let e = Instance::new(&mut s, &module, &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("maximum concurrent table limit of 1 reached"),
        "{e}"
    );
}

#[test]
fn per_module_limits_are_checked_before_allocating() {
    let mut c = pooled(|p| {
        p.max_core_instance_size(4096);
    });
    c.wasm_multi_memory(true);
    let engine = Engine::new(&c).unwrap();
    let mut s = Store::new(&engine, ());
    let cases = [
        (
            "(module (memory 1) (memory 1))",
            "defined memories count of 2 exceeds the per-instance limit of 1",
        ),
        (
            "(module (table 1 funcref) (table 1 funcref))",
            "defined tables count of 2 exceeds the per-instance limit of 1",
        ),
        ("(module (memory 17))", "memory minimum size of 17 pages"),
        ("(module (table 101 funcref))", "table minimum size of 101"),
    ];
    for (wat, msg) in cases {
        let m = Module::new(&engine, wat).unwrap();
        let e = Instance::new(&mut s, &m, &[]).unwrap_err();
        assert!(e.to_string().contains(msg), "{wat}: {e}");
    }
    let globals: String = (0..600)
        .map(|_| "(global (mut i64) (i64.const 0))")
        .collect();
    let big = Module::new(&engine, format!("(module {globals})")).unwrap();
    let e = Instance::new(&mut s, &big, &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("exceeds the configured maximum of 4096 bytes"),
        "{e}"
    );
    // None of that took a slot: both are still there.
    let ok = Module::new(&engine, "(module (memory 1) (table 1 funcref))").unwrap();
    Instance::new(&mut s, &ok, &[]).unwrap();
    Instance::new(&mut s, &ok, &[]).unwrap();
}

#[test]
fn growth_stops_at_the_pools_maximum() {
    let engine = Engine::new(&pooled(|_| {})).unwrap();
    let module = Module::new(&engine, DIRTY).unwrap();
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let tgrow = i.get_typed_func::<i32, i32>(&mut store, "tgrow").unwrap();
    assert_eq!(grow.call(&mut store, 15).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
    assert_eq!(tgrow.call(&mut store, 98).unwrap(), 2);
    assert_eq!(tgrow.call(&mut store, 1).unwrap(), -1);
    let mem = i.get_memory(&mut store, "mem").unwrap();
    assert!(mem.grow(&mut store, 1).is_err());
    // A limiter hears the pool's maximum.
    struct Max(Vec<Option<usize>>);
    impl ResourceLimiter for Max {
        fn memory_growing(&mut self, _: usize, _: usize, max: Option<usize>) -> Result<bool> {
            self.0.push(max);
            Ok(true)
        }
        fn table_growing(&mut self, _: usize, _: usize, max: Option<usize>) -> Result<bool> {
            self.0.push(max);
            Ok(true)
        }
    }
    let mut store = Store::new(&engine, Max(Vec::new()));
    store.limiter(|m| m);
    Instance::new(&mut store, &module, &[]).unwrap();
    assert_eq!(store.data().0, [Some(16 << 16), Some(100)]);
}

#[test]
fn memory_protection_keys_are_refused() {
    let mut p = PoolingAllocationConfig::new();
    p.memory_protection_keys(MpkEnabled::Enable);
    let mut c = Config::new();
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    let e = Engine::new(&c).unwrap_err();
    assert!(e.to_string().contains("memory protection keys"), "{e}");
}

#[test]
fn two_threads_instantiate_from_one_pool() {
    let engine = Engine::new(&pooled(|p| {
        p.total_core_instances(4).total_memories(4).total_tables(4);
    }))
    .unwrap();
    let module = Module::new(&engine, DIRTY).unwrap();
    let pre = Linker::<()>::new(&engine).instantiate_pre(&module).unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..2000 {
                    let mut store = Store::new(&engine, ());
                    let i = pre.instantiate(&mut store).unwrap();
                    let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
                    assert_eq!(load.call(&mut store, 0).unwrap(), 0);
                    let dirty = i.get_typed_func::<(), ()>(&mut store, "dirty").unwrap();
                    dirty.call(&mut store, ()).unwrap();
                }
            });
        }
    });
}
