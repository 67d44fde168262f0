//! `kiln-instantiate-loop MODULE.wat|small|imports-table100 [pooling] [N]`:
//! instantiates one module N times in a loop with Kiln alone (as the
//! `instantiate/*` workloads do), for profiling a breakdown of where an
//! instantiation's time goes (`perf record` on this binary), and prints
//! the time per iteration.

use kiln::{Config, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig};
use kiln::Store;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("small");
    let pooling = args.iter().any(|a| a == "pooling");
    let n: u64 = args
        .iter()
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let text = match which {
        "small" => include_str!("../workloads/small.wat").to_string(),
        "imports-table100" => include_str!("../workloads/imports_table100.wat").to_string(),
        path => std::fs::read_to_string(path).expect("read the module"),
    };
    let mut config = Config::new();
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(100)
            .total_memories(100)
            .total_tables(100)
            .max_memory_size(128 << 20);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    let engine = Engine::new(&config).expect("engine");
    let module = Module::new(&engine, wat::parse_str(&text).expect("wat")).expect("compile");
    let mut linker = Linker::new(&engine);
    linker.func_wrap("host", "f1", |x: i32| x + 1).expect("f1");
    linker.func_wrap("host", "f2", |_: i64| {}).expect("f2");
    let pre = linker.instantiate_pre(&module).expect("instantiate_pre");
    let start = Instant::now();
    for _ in 0..n {
        let mut store = Store::new(&engine, ());
        black_box(pre.instantiate(&mut store).expect("instantiate"));
        drop(store);
    }
    let t = start.elapsed();
    println!("{which} pooling={pooling}: {:.0} ns per instantiation", t.as_nanos() as f64 / n as f64);
}
