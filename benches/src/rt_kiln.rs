//! Kiln, through its public API (`crates/api`), default configuration, and
//! for `*-pooling` the pooling instance allocator sized as Wasmtime's.

use crate::elf;
use crate::runtime::{
    expect_count, expect_same, loop_count, run_on_threads, OrMsg, Prepared, Runtime,
};
use crate::workloads::Budget;
use crate::workloads::{self, Kind, ScratchDir, SizePart};
use kiln::{
    Config, Engine, FuncType, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig,
    Store, Val, ValType,
};
use kiln_wasi::pipe::MemoryOutputPipe;
use kiln_wasi::{DirPerms, FilePerms, WasiCtxBuilder};
use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

pub struct Kiln {
    engine: Engine,
    pooling: OnceLock<Result<Engine, String>>,
}

impl Kiln {
    pub fn new() -> Kiln {
        Kiln {
            engine: Engine::default(),
            pooling: OnceLock::new(),
        }
    }

    /// An engine with the pooling allocator, sized exactly as Wasmtime's
    /// in `rt_wasmtime.rs` (100 slots, memories up to 128 MiB).
    fn pooling_engine(&self) -> Result<Engine, String> {
        self.pooling
            .get_or_init(|| {
                let mut pool = PoolingAllocationConfig::default();
                pool.total_core_instances(100)
                    .total_memories(100)
                    .total_tables(100)
                    .max_memory_size(128 << 20);
                let mut config = Config::new();
                config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
                Engine::new(&config).msg("kiln pooling engine")
            })
            .clone()
    }
}

impl Runtime for Kiln {
    fn name(&self) -> &'static str {
        "kiln"
    }

    fn version(&self) -> String {
        format!("{} (this tree)", crate::runtime::locked_version("kiln"))
    }

    fn prepare(&self, kind: &Kind) -> Result<Prepared, String> {
        let engine = &self.engine;
        match kind {
            Kind::HostToWasm { typed } => {
                let module = Module::new(engine, &workloads::calls_wasm()[..]).msg("compile")?;
                let mut store = Store::new(engine, ());
                let mut linker = Linker::new(engine);
                linker
                    .func_wrap("host", "inc", |x: i32| x + 1)
                    .msg("func_wrap")?;
                let instance = linker.instantiate(&mut store, &module).msg("instantiate")?;
                if *typed {
                    let f = instance
                        .get_typed_func::<i32, i32>(&mut store, "inc")
                        .msg("get_typed_func")?;
                    let check = f.call(&mut store, 41).msg("call")? as i64;
                    Ok(Prepared::Timed {
                        check: Some(check),
                        run: Box::new(move |iters| {
                            let mut x = 0i32;
                            let start = Instant::now();
                            for _ in 0..iters {
                                x = f.call(&mut store, x).msg("call")?;
                            }
                            let t = start.elapsed();
                            expect_count(x, iters)?;
                            Ok(t)
                        }),
                    })
                } else {
                    let f = instance.get_func(&mut store, "inc").msg("get_func")?;
                    let mut results = [Val::I32(0)];
                    f.call(&mut store, &[Val::I32(41)], &mut results)
                        .msg("call")?;
                    let check = results[0].i32().msg("result")? as i64;
                    Ok(Prepared::Timed {
                        check: Some(check),
                        run: Box::new(move |iters| {
                            let mut x = 0i32;
                            let mut results = [Val::I32(0)];
                            let start = Instant::now();
                            for _ in 0..iters {
                                f.call(&mut store, &[Val::I32(x)], &mut results)
                                    .msg("call")?;
                                x = match results[0] {
                                    Val::I32(v) => v,
                                    _ => return Err("wrong result type".into()),
                                };
                            }
                            let t = start.elapsed();
                            expect_count(x, iters)?;
                            Ok(t)
                        }),
                    })
                }
            }
            Kind::WasmToHost { typed } => {
                let module = Module::new(engine, &workloads::calls_wasm()[..]).msg("compile")?;
                let mut store = Store::new(engine, ());
                let mut linker = Linker::new(engine);
                if *typed {
                    linker
                        .func_wrap("host", "inc", |x: i32| x + 1)
                        .msg("func_wrap")?;
                } else {
                    let ty = FuncType::new(engine, [ValType::I32], [ValType::I32]);
                    linker
                        .func_new("host", "inc", ty, |_caller, params, results| {
                            let Val::I32(x) = params[0] else {
                                return Err(kiln::Error::msg("expected an i32"));
                            };
                            results[0] = Val::I32(x + 1);
                            Ok(())
                        })
                        .msg("func_new")?;
                }
                let instance = linker.instantiate(&mut store, &module).msg("instantiate")?;
                let f = instance
                    .get_typed_func::<i32, i32>(&mut store, "call_host")
                    .msg("get_typed_func")?;
                let check = f.call(&mut store, 1000).msg("call")? as i64;
                Ok(Prepared::Timed {
                    check: Some(check),
                    run: Box::new(move |iters| {
                        let n = loop_count(iters)?;
                        let start = Instant::now();
                        let x = f.call(&mut store, n).msg("call")?;
                        let t = start.elapsed();
                        expect_count(x, iters)?;
                        Ok(t)
                    }),
                })
            }
            Kind::WasmToWasm => {
                let a = Module::new(engine, &workloads::callee_wasm()[..]).msg("compile A")?;
                let b = Module::new(engine, &workloads::caller_wasm()[..]).msg("compile B")?;
                let mut store = Store::new(engine, ());
                let mut linker = Linker::new(engine);
                let ia = linker.instantiate(&mut store, &a).msg("instantiate A")?;
                linker.instance(&mut store, "a", ia).msg("define A")?;
                let ib = linker.instantiate(&mut store, &b).msg("instantiate B")?;
                let f = ib
                    .get_typed_func::<i32, i32>(&mut store, "call_import")
                    .msg("get_typed_func")?;
                let check = f.call(&mut store, 1000).msg("call")? as i64;
                Ok(Prepared::Timed {
                    check: Some(check),
                    run: Box::new(move |iters| {
                        let n = loop_count(iters)?;
                        let start = Instant::now();
                        let x = f.call(&mut store, n).msg("call")?;
                        let t = start.elapsed();
                        expect_count(x, iters)?;
                        Ok(t)
                    }),
                })
            }
            Kind::Compute {
                wasm,
                init,
                arg,
                budget,
                ..
            } => {
                let budget_engine;
                let engine = match budget {
                    Budget::Off => engine,
                    Budget::Fuel | Budget::Epoch => {
                        let mut c = kiln::Config::new();
                        c.consume_fuel(*budget == Budget::Fuel);
                        c.epoch_interruption(*budget == Budget::Epoch);
                        budget_engine = Engine::new(&c).msg("engine")?;
                        &budget_engine
                    }
                };
                let module = Module::new(engine, &wasm[..]).msg("compile")?;
                let mut store = Store::new(engine, ());
                match budget {
                    Budget::Off => {}
                    Budget::Fuel => store.set_fuel(u64::MAX / 2).msg("set_fuel")?,
                    Budget::Epoch => store.set_epoch_deadline(u64::MAX / 2),
                }
                let instance = Linker::new(engine)
                    .instantiate(&mut store, &module)
                    .msg("instantiate")?;
                if let Some(n) = init {
                    instance
                        .get_typed_func::<i32, ()>(&mut store, "init")
                        .msg("get init")?
                        .call(&mut store, *n)
                        .msg("init")?;
                }
                let f = instance
                    .get_typed_func::<i32, i64>(&mut store, "run")
                    .msg("get run")?;
                let arg = *arg;
                let check = f.call(&mut store, arg).msg("run")?;
                Ok(Prepared::Timed {
                    check: Some(check),
                    run: Box::new(move |iters| {
                        let mut r = check;
                        let start = Instant::now();
                        for _ in 0..iters {
                            r = black_box(f.call(&mut store, black_box(arg)).msg("run")?);
                        }
                        let t = start.elapsed();
                        expect_same(r, check)?;
                        Ok(t)
                    }),
                })
            }
            Kind::Compile { wasm } => {
                let wasm = wasm.clone();
                let engine = engine.clone();
                Ok(Prepared::Timed {
                    check: None,
                    run: Box::new(move |iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            black_box(Module::new(&engine, &wasm[..]).msg("compile")?);
                        }
                        Ok(start.elapsed())
                    }),
                })
            }
            Kind::Load { wasm, from_file } => {
                let bytes = Module::new(engine, &wasm[..])
                    .msg("compile")?
                    .serialize()
                    .msg("serialize")?;
                let path = std::env::temp_dir().join(format!(
                    "kiln-bench-{}-{}-{}.cwasm",
                    std::process::id(),
                    "kiln",
                    bytes.len()
                ));
                if *from_file {
                    std::fs::write(&path, &bytes)
                        .map_err(|e| format!("writing {}: {e}", path.display()))?;
                }
                let from_file = *from_file;
                let engine = engine.clone();
                Ok(Prepared::Timed {
                    check: None,
                    run: Box::new(move |iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            // SAFETY: `bytes` (and the file holding them)
                            // came from `serialize` on this engine's
                            // configuration, just above.
                            let m = if from_file {
                                unsafe { Module::deserialize_file(&engine, &path) }
                            } else {
                                unsafe { Module::deserialize(&engine, &bytes[..]) }
                            };
                            black_box(m.msg("deserialize")?);
                        }
                        Ok(start.elapsed())
                    }),
                })
            }
            Kind::Instantiate {
                wasm,
                pooling,
                probes,
                threads,
            } => {
                let engine = if *pooling {
                    self.pooling_engine()?
                } else {
                    engine.clone()
                };
                let module = Module::new(&engine, &wasm[..]).msg("compile")?;
                let mut linker = Linker::new(&engine);
                linker
                    .func_wrap("host", "f1", |x: i32| x + 1)
                    .msg("func_wrap")?;
                linker
                    .func_wrap("host", "f2", |_: i64| {})
                    .msg("func_wrap")?;
                let pre = linker.instantiate_pre(&module).msg("instantiate_pre")?;
                let check = {
                    let mut store = Store::new(&engine, ());
                    let instance = pre.instantiate(&mut store).msg("instantiate")?;
                    let memory = instance.get_memory(&mut store, "memory").msg("memory")?;
                    let data = memory.data(&store);
                    probes
                        .iter()
                        .map(|&p| data.get(p).copied().unwrap_or(0) as i64)
                        .sum()
                };
                let threads = *threads;
                Ok(Prepared::Timed {
                    check: Some(check),
                    run: Box::new(move |iters| {
                        run_on_threads(iters, threads, |n| {
                            for _ in 0..n {
                                let mut store = Store::new(&engine, ());
                                black_box(pre.instantiate(&mut store).msg("instantiate")?);
                                drop(store);
                            }
                            Ok(())
                        })
                    }),
                })
            }
            Kind::Wasi {
                wasm,
                dir,
                end_to_end,
                stdout,
            } => prepare_wasi(engine, wasm, dir.clone(), *end_to_end, *stdout),
            Kind::Size { wasm, part } => {
                let module = Module::new(engine, &wasm[..]).msg("compile")?;
                let n = match part {
                    SizePart::Text => module.text().len() as u64,
                    SizePart::Total => module.object().len() as u64,
                    SizePart::Unwind => {
                        match elf::section_size(module.object(), ".eh_frame").msg("kiln object")? {
                            Some(n) => n,
                            None => {
                                let names: Vec<String> = elf::sections(module.object())?
                                    .into_iter()
                                    .filter(|(n, _)| !n.is_empty())
                                    .map(|(n, size)| format!("{n} {size} B"))
                                    .collect();
                                return Ok(Prepared::NotImplemented(format!(
                                    "the object has no .eh_frame section (sections: {})",
                                    names.join(", ")
                                )));
                            }
                        }
                    }
                };
                Ok(Prepared::Bytes(n))
            }
        }
    }
}

/// The store data of a WASI workload.
struct WasiState {
    wasi: kiln_wasi::WasiCtx,
}

/// `Kind::Wasi` on Kiln: `kiln-wasi` through its public API.
fn prepare_wasi(
    engine: &Engine,
    wasm: &workloads::Wasm,
    dir: Option<Arc<ScratchDir>>,
    end_to_end: bool,
    stdout: Option<&'static str>,
) -> Result<Prepared, String> {
    let serialized = Module::new(engine, &wasm[..])
        .msg("compile")?
        .serialize()
        .msg("serialize")?;
    let path = std::env::temp_dir().join(format!(
        "kiln-bench-{}-kiln-wasi-{}.cwasm",
        std::process::id(),
        serialized.len()
    ));
    std::fs::write(&path, &serialized).map_err(|e| format!("writing {}: {e}", path.display()))?;
    let engine = engine.clone();
    let load = move |engine: &Engine| -> Result<Module, String> {
        // SAFETY: the file holds what `serialize` wrote just above, for
        // this engine's configuration.
        unsafe { Module::deserialize_file(engine, &path) }.msg("deserialize")
    };
    let link = |engine: &Engine| -> Result<Linker<WasiState>, String> {
        let mut linker = Linker::new(engine);
        kiln_wasi::add_to_linker(&mut linker, |s: &mut WasiState| &mut s.wasi)
            .msg("add_to_linker")?;
        Ok(linker)
    };
    // One run: context, store, instantiation, `_start`; returns stdout.
    let run_once = move |engine: &Engine,
                         linker: &Linker<WasiState>,
                         module: &Module|
          -> Result<Vec<u8>, String> {
        let out = MemoryOutputPipe::new(1 << 20);
        let mut b = WasiCtxBuilder::new();
        b.arg("prog").stdout(out.clone());
        if let Some(d) = &dir {
            b.preopened_dir(&d.0, "/sandbox", DirPerms::all(), FilePerms::all())
                .msg("preopen")?;
        }
        let mut store = Store::new(engine, WasiState { wasi: b.build() });
        let instance = linker.instantiate(&mut store, module).msg("instantiate")?;
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .msg("_start")?;
        match start.call(&mut store, ()) {
            Ok(()) => {}
            Err(e) => match kiln_wasi::exit_code(&e) {
                Some(0) => {}
                Some(code) => return Err(format!("exit status {code}")),
                None => return Err(format!("_start: {e:#}")),
            },
        }
        Ok(out.contents())
    };
    let module = load(&engine)?;
    let linker = link(&engine)?;
    let check = workloads::wasi_check(&run_once(&engine, &linker, &module)?, stdout)?;
    Ok(Prepared::Timed {
        check: Some(check),
        run: Box::new(move |iters| {
            let mut last = Vec::new();
            let start = Instant::now();
            for _ in 0..iters {
                last = if end_to_end {
                    let module = load(&engine)?;
                    let linker = link(&engine)?;
                    run_once(&engine, &linker, &module)?
                } else {
                    run_once(&engine, &linker, &module)?
                };
            }
            let t = start.elapsed();
            expect_same(workloads::wasi_check(&last, stdout)?, check)?;
            Ok(t)
        }),
    })
}
