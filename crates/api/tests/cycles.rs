//! 100,000 instantiate/drop cycles of one module in each allocation
//! strategy, with resident memory flat. A binary of its own so no other
//! test's allocations move the process's resident set meanwhile.

use kiln::*;

/// The process's resident set in bytes, from `/proc/self/statm`.
fn resident() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * page_size()
}

/// The kernel's page size, from the first mapping in `/proc/self/smaps`.
fn page_size() -> usize {
    let s = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    s.lines()
        .find_map(|l| l.strip_prefix("KernelPageSize:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .expect("KernelPageSize")
        * 1024
}

const MODULE: &str = r#"(module
  (memory 1)
  (table 10 funcref)
  (global (mut i64) (i64.const 1))
  (data (i32.const 0) "some data")
  (func $f (result i32) i32.const 1)
  (elem (i32.const 0) $f $f $f)
  (func (export "touch")
    (i32.store (i32.const 4096) (i32.const 1))
    (i32.store (i32.const 40000) (i32.const 1))
    (drop (memory.grow (i32.const 1)))
    (i32.store (i32.const 70000) (i32.const 1))))"#;

fn cycles(config: &Config) -> (usize, usize) {
    let engine = Engine::new(config).unwrap();
    let module = Module::new(&engine, MODULE).unwrap();
    let pre = Linker::<()>::new(&engine).instantiate_pre(&module).unwrap();
    let run = |n: usize| {
        for _ in 0..n {
            let mut store = Store::new(&engine, ());
            let i = pre.instantiate(&mut store).unwrap();
            let touch = i.get_typed_func::<(), ()>(&mut store, "touch").unwrap();
            touch.call(&mut store, ()).unwrap();
        }
    };
    run(10_000);
    let before = resident();
    run(90_000);
    (before, resident())
}

#[test]
fn hundred_thousand_cycles_keep_resident_memory_flat() {
    let mut pooling = PoolingAllocationConfig::new();
    pooling
        .total_core_instances(10)
        .total_memories(10)
        .total_tables(10);
    let mut pooled = Config::new();
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    for (name, config) in [("on demand", Config::new()), ("pooled", pooled)] {
        let t = std::time::Instant::now();
        let (before, after) = cycles(&config);
        eprintln!(
            "{name}: 100,000 cycles in {:?}, resident {before} -> {after} bytes",
            t.elapsed()
        );
        // Each cycle touches four pages of memory; a leak of one page per
        // cycle would add 350 MiB.
        assert!(
            after < before + (8 << 20),
            "{name}: resident memory grew from {before} to {after} bytes"
        );
    }
}
