//! `kiln-instantiate-loop MODULE.wat|small|imports-table100 [pooling]
//! [threads=T] [phases] [N]`: instantiates one module N times in a loop with Kiln
//! alone (as the `instantiate/*` workloads do; with `threads=T`, N times
//! on each of T threads; with `phases`, timing creating the store,
//! instantiating and dropping the store apart), for profiling a breakdown of where an
//! instantiation's time goes (`perf record` on this binary), and prints
//! the wall-clock time and the CPU time (user and system, from
//! `/proc/self/stat`, which other processes on a loaded machine do
//! not inflate) per instantiation.

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
    let threads: u64 = args
        .iter()
        .find_map(|a| a.strip_prefix("threads=")?.parse().ok())
        .unwrap_or(1);
    if args.iter().any(|a| a == "phases") {
        // The three phases of one iteration timed apart (the clock reads
        // add some 20 ns to each).
        let (mut new, mut inst, mut drop_t) = (0u128, 0u128, 0u128);
        for _ in 0..n {
            let t0 = Instant::now();
            let mut store = Store::new(&engine, ());
            let t1 = Instant::now();
            black_box(pre.instantiate(&mut store).expect("instantiate"));
            let t2 = Instant::now();
            drop(store);
            let t3 = Instant::now();
            new += (t1 - t0).as_nanos();
            inst += (t2 - t1).as_nanos();
            drop_t += (t3 - t2).as_nanos();
        }
        let per = |t: u128| t as f64 / n as f64;
        println!(
            "{which} pooling={pooling}: Store::new {:.0} ns, InstancePre::instantiate {:.0} ns, \
             dropping the store {:.0} ns",
            per(new),
            per(inst),
            per(drop_t)
        );
        return;
    }
    let cpu0 = cpu_time();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..n {
                    let mut store = Store::new(&engine, ());
                    black_box(pre.instantiate(&mut store).expect("instantiate"));
                    drop(store);
                }
            });
        }
    });
    let wall = start.elapsed().as_nanos() as f64;
    let cpu1 = cpu_time();
    let cpu = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    let total = (n * threads) as f64;
    println!(
        "{which} pooling={pooling} threads={threads}: {:.0} ns wall per instantiation \
         ({:.0} ns per instantiation per thread), {:.0} ns CPU per instantiation \
         ({:.0} user, {:.0} system)",
        wall / total,
        wall / n as f64,
        (cpu.0 + cpu.1) / total,
        cpu.0 / total,
        cpu.1 / total
    );
}

/// (user, system) CPU time of the process so far, in nanoseconds.
fn cpu_time() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/stat").expect("stat");
    // Fields after the command name (which is in parentheses): utime is
    // the 12th, stime the 13th, in clock ticks.
    let rest = &s[s.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 1e9 / 100.0;
    let parse = |i: usize| f[i].parse::<f64>().expect("ticks") * tick;
    (parse(11), parse(12))
}
