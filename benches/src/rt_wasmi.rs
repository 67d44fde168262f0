//! wasmi, an interpreter, as a reference point for calls and for the
//! compute and program workloads. Compile, load, instantiation and size
//! workloads do not apply: wasmi translates lazily and has no artifact.

use crate::runtime::{expect_count, expect_same, loop_count, OrMsg, Prepared, Runtime};
use crate::workloads::{self, Kind};
use std::hint::black_box;
use std::time::Instant;
use wasmi::{Engine, FuncType, Linker, Module, Store, Val, ValType};

pub struct Wasmi {
    engine: Engine,
}

impl Wasmi {
    pub fn new() -> Wasmi {
        Wasmi {
            engine: Engine::default(),
        }
    }
}

impl Runtime for Wasmi {
    fn name(&self) -> &'static str {
        "wasmi"
    }

    fn version(&self) -> String {
        crate::runtime::locked_version("wasmi")
    }

    fn prepare(&self, kind: &Kind) -> Result<Prepared, String> {
        let engine = &self.engine;
        match kind {
            Kind::HostToWasm { typed } => {
                let module = Module::new(engine, &workloads::calls_wasm()[..]).msg("compile")?;
                let mut store = Store::new(engine, ());
                let mut linker = Linker::<()>::new(engine);
                linker
                    .func_wrap("host", "inc", |x: i32| x + 1)
                    .msg("func_wrap")?;
                let instance = linker
                    .instantiate_and_start(&mut store, &module)
                    .msg("instantiate")?;
                if *typed {
                    let f = instance
                        .get_typed_func::<i32, i32>(&store, "inc")
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
                    let f = instance.get_func(&store, "inc").msg("get_func")?;
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
                let mut linker = Linker::<()>::new(engine);
                if *typed {
                    linker
                        .func_wrap("host", "inc", |x: i32| x + 1)
                        .msg("func_wrap")?;
                } else {
                    let ty = FuncType::new([ValType::I32], [ValType::I32]);
                    linker
                        .func_new("host", "inc", ty, |_caller, params, results| {
                            let Val::I32(x) = params[0] else {
                                return Err(wasmi::Error::new("expected an i32"));
                            };
                            results[0] = Val::I32(x + 1);
                            Ok(())
                        })
                        .msg("func_new")?;
                }
                let instance = linker
                    .instantiate_and_start(&mut store, &module)
                    .msg("instantiate")?;
                let f = instance
                    .get_typed_func::<i32, i32>(&store, "call_host")
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
                let mut linker = Linker::<()>::new(engine);
                let ia = linker
                    .instantiate_and_start(&mut store, &a)
                    .msg("instantiate A")?;
                let inc = ia.get_func(&store, "inc").msg("A's inc")?;
                linker.define("a", "inc", inc).msg("define A")?;
                let ib = linker
                    .instantiate_and_start(&mut store, &b)
                    .msg("instantiate B")?;
                let f = ib
                    .get_typed_func::<i32, i32>(&store, "call_import")
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
                budget: crate::workloads::Budget::Fuel | crate::workloads::Budget::Epoch,
                ..
            } => Ok(Prepared::NotApplicable),
            Kind::Compute {
                wasm, init, arg, ..
            } => {
                let module = Module::new(engine, &wasm[..]).msg("compile")?;
                let mut store = Store::new(engine, ());
                let instance = Linker::<()>::new(engine)
                    .instantiate_and_start(&mut store, &module)
                    .msg("instantiate")?;
                if let Some(n) = init {
                    instance
                        .get_typed_func::<i32, ()>(&store, "init")
                        .msg("get init")?
                        .call(&mut store, *n)
                        .msg("init")?;
                }
                let f = instance
                    .get_typed_func::<i32, i64>(&store, "run")
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
            Kind::Compile { .. }
            | Kind::Load { .. }
            | Kind::Instantiate { .. }
            | Kind::Size { .. }
            | Kind::Wasi { .. } => Ok(Prepared::NotApplicable),
        }
    }
}
