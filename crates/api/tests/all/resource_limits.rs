//! `Store::limiter`, `ResourceLimiter` and `StoreLimits`.

use kiln::*;

struct State {
    limits: StoreLimits,
}

fn store_with(engine: &Engine, limits: StoreLimits) -> Store<State> {
    let mut store = Store::new(engine, State { limits });
    store.limiter(|s| &mut s.limits);
    store
}

const GROW: &str = r#"(module
  (memory (export "mem") 1)
  (table (export "tab") 1 funcref)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
  (func (export "size") (result i32) memory.size)
  (func (export "tgrow") (param i32) (result i32)
    ref.null func local.get 0 table.grow 0))"#;

#[test]
fn denied_memory_grow_returns_minus_one() {
    let engine = Engine::default();
    let module = Module::new(&engine, GROW).unwrap();
    let mut store = store_with(
        &engine,
        StoreLimitsBuilder::new().memory_size(3 << 16).build(),
    );
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let size = i.get_typed_func::<(), i32>(&mut store, "size").unwrap();
    assert_eq!(grow.call(&mut store, 2).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
    assert_eq!(size.call(&mut store, ()).unwrap(), 3);
    // Growing by zero asks nothing and succeeds.
    assert_eq!(grow.call(&mut store, 0).unwrap(), 3);
    // From the host, the same limit gives an error.
    let mem = i.get_memory(&mut store, "mem").unwrap();
    assert!(mem.grow(&mut store, 1).is_err());
    assert_eq!(mem.size(&store), 3);
}

#[test]
fn denied_table_grow_returns_minus_one() {
    let engine = Engine::default();
    let module = Module::new(&engine, GROW).unwrap();
    let mut store = store_with(&engine, StoreLimitsBuilder::new().table_elements(5).build());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let tgrow = i.get_typed_func::<i32, i32>(&mut store, "tgrow").unwrap();
    assert_eq!(tgrow.call(&mut store, 4).unwrap(), 1);
    assert_eq!(tgrow.call(&mut store, 1).unwrap(), -1);
    let tab = i.get_table(&mut store, "tab").unwrap();
    assert_eq!(tab.size(&store), 5);
    assert!(tab.grow(&mut store, 1, Ref::Func(None)).is_err());
    assert_eq!(tab.size(&store), 5);
}

#[test]
fn trap_on_grow_failure_traps_with_the_limiters_error() {
    let engine = Engine::default();
    let module = Module::new(&engine, GROW).unwrap();
    let mut store = store_with(
        &engine,
        StoreLimitsBuilder::new()
            .memory_size(2 << 16)
            .table_elements(2)
            .trap_on_grow_failure(true)
            .build(),
    );
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let e = grow.call(&mut store, 5).unwrap_err();
    assert!(
        format!("{e:?}").contains("forcing trap when growing memory to 393216 bytes"),
        "{e:?}"
    );
    let bt = e.downcast_ref::<WasmBacktrace>().expect("a backtrace");
    assert_eq!(bt.frames().len(), 1);
    // The store still works, and an allowed growth still succeeds.
    assert_eq!(grow.call(&mut store, 1).unwrap(), 1);
    let tgrow = i.get_typed_func::<i32, i32>(&mut store, "tgrow").unwrap();
    let e = tgrow.call(&mut store, 2).unwrap_err();
    assert!(
        format!("{e:?}").contains("growing table to 3 elements"),
        "{e:?}"
    );
    assert_eq!(tgrow.call(&mut store, 1).unwrap(), 1);
}

/// A limiter that records every question and answers from a budget.
#[derive(Default)]
struct Recorder {
    calls: Vec<String>,
    max_bytes: usize,
    fail_with_error: bool,
}

#[derive(Debug)]
struct MyError;
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my limiter error")
    }
}
impl std::error::Error for MyError {}

impl ResourceLimiter for Recorder {
    fn memory_growing(&mut self, cur: usize, desired: usize, max: Option<usize>) -> Result<bool> {
        self.calls.push(format!("memory {cur} {desired} {max:?}"));
        if self.fail_with_error {
            return Err(MyError.into());
        }
        Ok(desired <= self.max_bytes)
    }
    fn memory_grow_failed(&mut self, error: Error) -> Result<()> {
        self.calls.push(format!("memory failed: {error}"));
        Ok(())
    }
    fn table_growing(&mut self, cur: usize, desired: usize, max: Option<usize>) -> Result<bool> {
        self.calls.push(format!("table {cur} {desired} {max:?}"));
        Ok(true)
    }
    fn table_grow_failed(&mut self, error: Error) -> Result<()> {
        self.calls.push(format!("table failed: {error}"));
        Ok(())
    }
}

#[test]
fn limiter_is_asked_at_instantiation_and_every_grow() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
             (memory 1 4)
             (table 2 3 funcref)
             (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
             (func (export "tgrow") (param i32) (result i32)
               ref.null func local.get 0 table.grow 0))"#,
    )
    .unwrap();
    let mut store = Store::new(
        &engine,
        Recorder {
            max_bytes: 10 << 16,
            ..Recorder::default()
        },
    );
    store.limiter(|r| r);
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let tgrow = i.get_typed_func::<i32, i32>(&mut store, "tgrow").unwrap();
    assert_eq!(grow.call(&mut store, 1).unwrap(), 1);
    // Allowed by the limiter, refused by the maximum: the limiter hears why.
    assert_eq!(grow.call(&mut store, 3).unwrap(), -1);
    assert_eq!(tgrow.call(&mut store, 1).unwrap(), 2);
    assert_eq!(tgrow.call(&mut store, 1).unwrap(), -1);
    assert_eq!(
        store.data().calls,
        [
            "memory 0 65536 Some(262144)",
            "table 0 2 Some(3)",
            "memory 65536 131072 Some(262144)",
            "memory 131072 327680 Some(262144)",
            "memory failed: memory maximum size exceeded",
            "table 2 3 Some(3)",
            "table 3 4 Some(3)",
            "table failed: table maximum size exceeded",
        ]
    );
    // A limiter's error is a trap carrying that very error.
    store.data_mut().fail_with_error = true;
    let e = grow.call(&mut store, 1).unwrap_err();
    assert!(e.downcast_ref::<MyError>().is_some(), "{e:?}");
    assert!(e.downcast_ref::<WasmBacktrace>().is_some());
    // And an error at instantiation, the instantiation's error.
    let e = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(e.downcast_ref::<MyError>().is_some(), "{e:?}");
}

#[test]
fn limiter_panic_is_resumed_on_the_host() {
    struct Panicky;
    impl ResourceLimiter for Panicky {
        fn memory_growing(&mut self, cur: usize, _: usize, _: Option<usize>) -> Result<bool> {
            if cur > 0 {
                panic!("limiter panicked");
            }
            Ok(true)
        }
        fn table_growing(&mut self, _: usize, _: usize, _: Option<usize>) -> Result<bool> {
            Ok(true)
        }
    }
    let engine = Engine::default();
    let module = Module::new(&engine, GROW).unwrap();
    let mut store = Store::new(&engine, Panicky);
    store.limiter(|p| p);
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| grow.call(&mut store, 1)));
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"limiter panicked"));
}

#[test]
fn minimum_sizes_over_the_limit_fail_instantiation() {
    let engine = Engine::default();
    let big_mem = Module::new(&engine, "(module (memory 5))").unwrap();
    let big_tab = Module::new(&engine, "(module (table 50 funcref))").unwrap();
    let limits = StoreLimitsBuilder::new()
        .memory_size(4 << 16)
        .table_elements(10)
        .build();
    let mut store = store_with(&engine, limits.clone());
    let e = Instance::new(&mut store, &big_mem, &[]).unwrap_err();
    assert!(e.to_string().contains("exceeds memory limits"), "{e}");
    let e = Instance::new(&mut store, &big_tab, &[]).unwrap_err();
    assert!(e.to_string().contains("exceeds table limits"), "{e}");
    // The host's own memories and tables are limited too.
    assert!(Memory::new(&mut store, MemoryType::new(5, None)).is_err());
    assert!(Memory::new(&mut store, MemoryType::new(4, None)).is_ok());
    let ty = TableType::new(RefType::FUNCREF, 11, None);
    assert!(Table::new(&mut store, ty, Ref::Func(None)).is_err());
}

#[test]
fn counts_of_instances_memories_and_tables_are_limited() {
    let engine = Engine::default();
    let m = Module::new(&engine, "(module (memory 1) (table 1 funcref))").unwrap();
    let empty = Module::new(&engine, "(module)").unwrap();
    let mut store = store_with(&engine, StoreLimitsBuilder::new().instances(3).build());
    for _ in 0..3 {
        Instance::new(&mut store, &empty, &[]).unwrap();
    }
    let e = Instance::new(&mut store, &empty, &[]).unwrap_err();
    assert!(
        e.to_string()
            .contains("resource limit exceeded: instance count too high at 4"),
        "{e}"
    );
    let mut store = store_with(&engine, StoreLimitsBuilder::new().memories(1).build());
    Instance::new(&mut store, &m, &[]).unwrap();
    let e = Instance::new(&mut store, &m, &[]).unwrap_err();
    assert!(e.to_string().contains("memory count too high at 2"), "{e}");
    let mut store = store_with(&engine, StoreLimitsBuilder::new().tables(1).build());
    Instance::new(&mut store, &m, &[]).unwrap();
    let e = Instance::new(&mut store, &m, &[]).unwrap_err();
    assert!(e.to_string().contains("table count too high at 2"), "{e}");
    // Without a limiter, Wasmtime's default of 10,000 instances applies.
    let mut store = Store::new(&engine, ());
    for _ in 0..DEFAULT_INSTANCE_LIMIT {
        Instance::new(&mut store, &empty, &[]).unwrap();
    }
    assert!(Instance::new(&mut store, &empty, &[]).is_err());
}
