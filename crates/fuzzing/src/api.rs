//! Random sequences of API operations, mirrored in wasmi.
//!
//! An input first generates up to two modules (wasm-smith, imports drawn
//! from the host environment below), then a sequence of operations on up
//! to three pairs of stores (one Kiln store, one wasmi store): create and
//! drop stores, instantiate, call any function (exported or host) with
//! random arguments, grow, read and write memories, grow, read and write
//! tables, read and write globals, drop instance and module handles. Every
//! operation's outcome in Kiln must agree with wasmi's.
//!
//! The host environment, the same in both engines and per store: functions
//! `host.inc (i32) -> i32`, `host.mix (i64 f32 f64) -> f64` (bit operations
//! only, so no NaN question arises), `host.ext (externref) -> externref`
//! (the identity), `host.is_func (funcref) -> i32`, `host.make_ext (i32) ->
//! externref` (a new reference holding its argument), `host.trap (i32)`
//! (fails for odd arguments), and a global `host.g`, a memory `host.mem`
//! and a table `host.tab` created by the host. Externrefs are compared by
//! the number they hold, funcrefs by null-ness.

use crate::oracle::{self, Outcome, Value};
use crate::smith;
use arbitrary::Unstructured;

/// The imports a generated module may use (wasm-smith's `available_imports`).
const HOST_IMPORTS: &str = r#"(module
    (import "host" "inc" (func (param i32) (result i32)))
    (import "host" "mix" (func (param i64 f32 f64) (result f64)))
    (import "host" "ext" (func (param externref) (result externref)))
    (import "host" "is_func" (func (param funcref) (result i32)))
    (import "host" "make_ext" (func (param i32) (result externref)))
    (import "host" "trap" (func (param i32)))
    (import "host" "g" (global (mut i32)))
    (import "host" "mem" (memory 1 4))
    (import "host" "tab" (table 2 10 funcref)))"#;

/// The most operations one input runs.
const MAX_OPS: usize = 64;

/// One store of each engine, and what the host holds in them.
struct Stores {
    kiln: kiln::Store<()>,
    wasmi: wasmi::Store<()>,
    kiln_linker: kiln::Linker<()>,
    wasmi_linker: wasmi::Linker<()>,
    funcs: Vec<(kiln::Func, wasmi::Func)>,
    memories: Vec<(kiln::Memory, wasmi::Memory)>,
    tables: Vec<(kiln::Table, wasmi::Table)>,
    globals: Vec<(kiln::Global, wasmi::Global)>,
    instances: Vec<(kiln::Instance, wasmi::Instance)>,
    /// A stack overflow happened: the engines' states may differ from here
    /// on (one engine's call got further than the other's).
    diverged: bool,
}

/// Runs one input; panics when the engines disagree.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let features = smith::Features::WASM2;
    let kiln_engine = smith::kiln_engine(features, false);
    let wasmi_engine = smith::wasmi_engine(features);
    let available = wat::parse_str(HOST_IMPORTS).expect("the host imports parse");

    let mut modules: Vec<Option<(kiln::Module, wasmi::Module)>> = Vec::new();
    for _ in 0..2 {
        let mut config = smith::config(features);
        config.available_imports = Some(available.clone());
        config.export_everything = true;
        config.max_funcs = 8;
        config.max_tables = 2;
        let Some(wasm) = smith::module(config, &mut u) else {
            break;
        };
        let k = kiln::Module::from_binary(&kiln_engine, &wasm)
            .unwrap_or_else(|e| panic!("Kiln rejects a generated module: {e}"));
        let w = wasmi::Module::new(&wasmi_engine, &wasm)
            .unwrap_or_else(|e| panic!("wasmi rejects a generated module: {e}"));
        modules.push(Some((k, w)));
    }
    if modules.is_empty() {
        return;
    }

    let mut stores: Vec<Option<Stores>> = vec![Some(Stores::new(&kiln_engine, &wasmi_engine))];
    for step in 0..MAX_OPS {
        let Ok(op) = u.int_in_range(0..=12u8) else {
            return;
        };
        let Ok(si) = u.choose_index(stores.len()) else {
            return;
        };
        if op == 0 {
            if stores.len() < 3 {
                stores.push(Some(Stores::new(&kiln_engine, &wasmi_engine)));
            }
            continue;
        }
        if op == 1 {
            stores[si] = None;
            continue;
        }
        if op == 2 {
            if let Ok(mi) = u.choose_index(modules.len()) {
                modules[mi] = None;
            }
            continue;
        }
        let Some(s) = stores[si].as_mut() else {
            continue;
        };
        if s.diverged {
            continue;
        }
        let r = match op {
            3 => {
                let Ok(mi) = u.choose_index(modules.len()) else {
                    return;
                };
                let Some((km, wm)) = &modules[mi] else {
                    continue;
                };
                s.instantiate(km, wm)
            }
            4..=6 => match s.call(&mut u) {
                Ok(r) => r,
                Err(_) => return,
            },
            _ => match s.resource_op(op, &mut u) {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        if let Some((what, k, w)) = r {
            if k.is_stack_overflow() || w.is_stack_overflow() {
                s.diverged = true;
                continue;
            }
            oracle::assert_agree(&format!("step {step}: {what}"), &k, &w);
        }
    }
}

type Compared = Option<(String, Outcome<Vec<Value>>, Outcome<Vec<Value>>)>;

impl Stores {
    fn new(ke: &kiln::Engine, we: &wasmi::Engine) -> Stores {
        let mut kiln = kiln::Store::new(ke, ());
        let mut wasmi = wasmi::Store::new(we, ());
        let mut kl = kiln::Linker::new(ke);
        let mut wl = wasmi::Linker::new(we);
        define_host_funcs(&mut kl, &mut wl, &mut wasmi);

        let kg = kiln::Global::new(
            &mut kiln,
            kiln::GlobalType::new(kiln::ValType::I32, kiln::Mutability::Var),
            kiln::Val::I32(100),
        )
        .expect("a host global");
        let wg = wasmi::Global::new(&mut wasmi, wasmi::Val::I32(100), wasmi::Mutability::Var);
        let km = kiln::Memory::new(
            &mut kiln,
            kiln::MemoryType {
                minimum: 1,
                maximum: Some(4),
                shared: false,
                memory64: false,
            },
        )
        .expect("a host memory");
        let mut ty = wasmi::MemoryType::builder();
        ty.min(1).max(Some(4));
        let wm = wasmi::Memory::new(&mut wasmi, ty.build().expect("a memory type"))
            .expect("a host memory");
        let kt = kiln::Table::new(
            &mut kiln,
            kiln::TableType::new(kiln::RefType::FUNCREF, 2, Some(10)),
            kiln::Ref::Func(None),
        )
        .expect("a host table");
        let wt = wasmi::Table::new(
            &mut wasmi,
            wasmi::TableType::new(wasmi::RefType::Func, 2, Some(10)),
            wasmi::Ref::Func(wasmi::Nullable::Null),
        )
        .expect("a host table");
        kl.define("host", "g", kg).expect("define");
        kl.define("host", "mem", km).expect("define");
        kl.define("host", "tab", kt).expect("define");
        wl.define("host", "g", wg).expect("define");
        wl.define("host", "mem", wm).expect("define");
        wl.define("host", "tab", wt).expect("define");

        let mut funcs = Vec::new();
        for name in ["inc", "mix", "ext", "is_func", "make_ext", "trap"] {
            let kf = kl
                .get(&mut kiln, "host", name)
                .and_then(|e| e.into_func())
                .expect("host function");
            let wf = wl
                .get(&wasmi, "host", name)
                .and_then(|e| e.into_func())
                .expect("host function");
            funcs.push((kf, wf));
        }
        Stores {
            kiln,
            wasmi,
            kiln_linker: kl,
            wasmi_linker: wl,
            funcs,
            memories: vec![(km, wm)],
            tables: vec![(kt, wt)],
            globals: vec![(kg, wg)],
            instances: Vec::new(),
            diverged: false,
        }
    }

    fn instantiate(&mut self, km: &kiln::Module, wm: &wasmi::Module) -> Compared {
        let k = oracle::kiln_outcome(self.kiln_linker.instantiate(&mut self.kiln, km));
        let w = oracle::wasmi_outcome(self.wasmi_linker.instantiate_and_start(&mut self.wasmi, wm));
        match (k, w) {
            (Outcome::Ok(ki), Outcome::Ok(wi)) => {
                let exports: Vec<(String, kiln::Extern)> = ki
                    .exports(&mut self.kiln)
                    .map(|e| (e.name().to_string(), e.into_extern()))
                    .collect();
                for (name, e) in exports {
                    let we = wi.get_export(&self.wasmi, &name).expect("same exports");
                    match e {
                        kiln::Extern::Func(f) => {
                            self.funcs.push((f, we.into_func().expect("func")))
                        }
                        kiln::Extern::Memory(m) => {
                            self.memories.push((m, we.into_memory().expect("memory")))
                        }
                        kiln::Extern::Table(t) => {
                            self.tables.push((t, we.into_table().expect("table")))
                        }
                        kiln::Extern::Global(g) => {
                            self.globals.push((g, we.into_global().expect("global")))
                        }
                    }
                }
                self.instances.push((ki, wi));
                None
            }
            (k, w) => Some((
                "instantiation".to_string(),
                k.map_unit_vec(),
                w.map_unit_vec(),
            )),
        }
    }

    fn call(&mut self, u: &mut Unstructured<'_>) -> arbitrary::Result<Compared> {
        if self.funcs.is_empty() {
            return Ok(None);
        }
        let (kf, wf) = self.funcs[u.choose_index(self.funcs.len())?];
        let ty = kf.ty(&self.kiln).to_wasm().clone();
        let mut args = Vec::new();
        for t in ty.params() {
            args.push(match t {
                kiln_environ::ValType::ExternRef => {
                    Value::ExternRef(u.arbitrary::<Option<u8>>()?.map(u32::from))
                }
                t => oracle::arbitrary_arg(u, *t)?,
            });
        }
        let kargs: Vec<kiln::Val> = args
            .iter()
            .map(|a| oracle::to_kiln(a, &mut self.kiln))
            .collect();
        let mut kres: Vec<kiln::Val> = ty
            .results()
            .iter()
            .map(|t| oracle::kiln_default(*t))
            .collect();
        let k = oracle::kiln_outcome(kf.call(&mut self.kiln, &kargs, &mut kres)).map_vec(|| {
            kres.iter()
                .map(|v| oracle::kiln_value(v, &self.kiln))
                .collect()
        });
        let wargs: Vec<wasmi::Val> = args
            .iter()
            .map(|a| oracle::to_wasmi(a, &mut self.wasmi))
            .collect();
        let mut wres: Vec<wasmi::Val> = ty
            .results()
            .iter()
            .map(|t| oracle::wasmi_default(*t))
            .collect();
        let w = oracle::wasmi_outcome(wf.call(&mut self.wasmi, &wargs, &mut wres)).map_vec(|| {
            wres.iter()
                .map(|v| oracle::wasmi_value(v, &self.wasmi))
                .collect()
        });
        Ok(Some((format!("call with {args:?}"), k, w)))
    }

    fn resource_op(&mut self, op: u8, u: &mut Unstructured<'_>) -> arbitrary::Result<Compared> {
        let (ks, ws) = (&mut self.kiln, &mut self.wasmi);
        Ok(Some(match op {
            7 => {
                let (km, wm) = self.memories[u.choose_index(self.memories.len())?];
                let delta = u.int_in_range(0..=3u64)?;
                let k = oracle::kiln_outcome(km.grow(&mut *ks, delta))
                    .map_vec1(|p| Value::I64(p as i64));
                let w = wm
                    .grow(&mut *ws, delta)
                    .map_or(Outcome::Error("grow".into()), |p| {
                        Outcome::Ok(vec![Value::I64(p as i64)])
                    });
                (format!("memory.grow {delta}"), k, w)
            }
            8 => {
                let (km, wm) = self.memories[u.choose_index(self.memories.len())?];
                let offset = u.int_in_range(0..=(5u32 << 16))? as usize;
                let mut kb = vec![0; u.int_in_range(0..=64)?];
                let mut wb = kb.clone();
                let k = oracle::kiln_outcome(km.read(&*ks, offset, &mut kb))
                    .map_vec(|| kb.iter().map(|b| Value::I32(i32::from(*b))).collect());
                let w = wm
                    .read(&*ws, offset, &mut wb)
                    .map_or(Outcome::Error("read".into()), |()| {
                        Outcome::Ok(wb.iter().map(|b| Value::I32(i32::from(*b))).collect())
                    });
                (format!("memory read at {offset}"), k, w)
            }
            9 => {
                let (km, wm) = self.memories[u.choose_index(self.memories.len())?];
                let offset = u.int_in_range(0..=(5u32 << 16))? as usize;
                let bytes: Vec<u8> = (0..u.int_in_range(0..=64)?)
                    .map(|_| u.arbitrary())
                    .collect::<arbitrary::Result<_>>()?;
                let k = oracle::kiln_outcome(km.write(&mut *ks, offset, &bytes)).map_vec(Vec::new);
                let w = wm
                    .write(&mut *ws, offset, &bytes)
                    .map_or(Outcome::Error("write".into()), |()| Outcome::Ok(Vec::new()));
                (format!("memory write at {offset}"), k, w)
            }
            10 => {
                let (kt, wt) = self.tables[u.choose_index(self.tables.len())?];
                let delta = u.int_in_range(0..=3u32)?;
                let is_func = kt.ty(&*ks).element() == &kiln::RefType::FUNCREF;
                let (kinit, winit) = if is_func {
                    (
                        kiln::Ref::Func(None),
                        wasmi::Ref::Func(wasmi::Nullable::Null),
                    )
                } else {
                    (
                        kiln::Ref::Extern(None),
                        wasmi::Ref::Extern(wasmi::Nullable::Null),
                    )
                };
                let k = oracle::kiln_outcome(kt.grow(&mut *ks, u64::from(delta), kinit))
                    .map_vec1(|p| Value::I64(p as i64));
                let w = wt
                    .grow(&mut *ws, u64::from(delta), winit)
                    .map_or(Outcome::Error("grow".into()), |p| {
                        Outcome::Ok(vec![Value::I64(p as i64)])
                    });
                (format!("table.grow {delta}"), k, w)
            }
            11 => {
                let (kt, wt) = self.tables[u.choose_index(self.tables.len())?];
                let i = u.int_in_range(0..=12u32)?;
                let set = u.arbitrary::<bool>()?;
                let is_func = kt.ty(&*ks).element() == &kiln::RefType::FUNCREF;
                if set && is_func && !self.funcs.is_empty() {
                    let (kf, wf) = self.funcs[u.choose_index(self.funcs.len())?];
                    let k = oracle::kiln_outcome(kt.set(
                        &mut *ks,
                        u64::from(i),
                        kiln::Ref::Func(Some(kf)),
                    ))
                    .map_vec(Vec::new);
                    let w = wt
                        .set(
                            &mut *ws,
                            u64::from(i),
                            wasmi::Ref::Func(wasmi::Nullable::Val(wf)),
                        )
                        .map_or(Outcome::Error("set".into()), |()| Outcome::Ok(Vec::new()));
                    (format!("table.set {i}"), k, w)
                } else {
                    let k = kt
                        .get(&mut *ks, u64::from(i))
                        .map_or(Outcome::Error("get".into()), |r| {
                            Outcome::Ok(vec![oracle::kiln_value(&kiln::Val::from(r), ks)])
                        });
                    let w = wt
                        .get(&*ws, u64::from(i))
                        .map_or(Outcome::Error("get".into()), |r| {
                            Outcome::Ok(vec![oracle::wasmi_ref(&r, ws)])
                        });
                    (format!("table.get {i}"), k, w)
                }
            }
            _ => {
                let (kg, wg) = self.globals[u.choose_index(self.globals.len())?];
                let ty = kg.ty(&*ks).content().to_wasm();
                if u.arbitrary::<bool>()? {
                    let v = match ty {
                        kiln_environ::ValType::ExternRef => {
                            Value::ExternRef(u.arbitrary::<Option<u8>>()?.map(u32::from))
                        }
                        t => oracle::arbitrary_arg(u, t)?,
                    };
                    let kv = oracle::to_kiln(&v, ks);
                    let wv = oracle::to_wasmi(&v, ws);
                    let k = oracle::kiln_outcome(kg.set(&mut *ks, kv)).map_vec(Vec::new);
                    let w = wg
                        .set(&mut *ws, wv)
                        .map_or(Outcome::Error("set".into()), |()| Outcome::Ok(Vec::new()));
                    (format!("global.set {v:?}"), k, w)
                } else {
                    let k = Outcome::Ok(vec![oracle::kiln_value(&kg.get(&mut *ks), ks)]);
                    let w = Outcome::Ok(vec![oracle::wasmi_value(&wg.get(&*ws), ws)]);
                    ("global.get".to_string(), k, w)
                }
            }
        }))
    }
}

fn define_host_funcs(
    kl: &mut kiln::Linker<()>,
    wl: &mut wasmi::Linker<()>,
    ws: &mut wasmi::Store<()>,
) {
    use kiln::ValType as K;
    use wasmi::ValType as W;
    let engine = kl.engine().clone();
    let kty = |p: &[K], r: &[K]| kiln::FuncType::new(&engine, p.to_vec(), r.to_vec());
    let wty = |p: &[W], r: &[W]| wasmi::FuncType::new(p.to_vec(), r.to_vec());

    kl.func_wrap("host", "inc", |x: i32| x.wrapping_mul(3).wrapping_add(1))
        .expect("define");
    wl.define(
        "host",
        "inc",
        wasmi::Func::wrap(&mut *ws, |x: i32| x.wrapping_mul(3).wrapping_add(1)),
    )
    .expect("define");

    let mix = |a: i64, b: u32, c: u64| (a as u64) ^ u64::from(b).rotate_left(17) ^ c;
    kl.func_wrap("host", "mix", move |a: i64, b: f32, c: f64| {
        f64::from_bits(mix(a, b.to_bits(), c.to_bits()))
    })
    .expect("define");
    wl.define(
        "host",
        "mix",
        wasmi::Func::wrap(&mut *ws, move |a: i64, b: f32, c: f64| {
            f64::from_bits(mix(a, b.to_bits(), c.to_bits()))
        }),
    )
    .expect("define");

    kl.func_new(
        "host",
        "ext",
        kty(&[K::EXTERNREF], &[K::EXTERNREF]),
        |_, p, r| {
            r[0] = p[0].clone();
            Ok(())
        },
    )
    .expect("define");
    wl.define(
        "host",
        "ext",
        wasmi::Func::new(
            &mut *ws,
            wty(&[W::ExternRef], &[W::ExternRef]),
            |_, p, r| {
                r[0] = p[0].clone();
                Ok(())
            },
        ),
    )
    .expect("define");

    kl.func_new(
        "host",
        "is_func",
        kty(&[K::FUNCREF], &[K::I32]),
        |_, p, r| {
            r[0] = kiln::Val::I32(matches!(p[0], kiln::Val::FuncRef(Some(_))) as i32);
            Ok(())
        },
    )
    .expect("define");
    wl.define(
        "host",
        "is_func",
        wasmi::Func::new(&mut *ws, wty(&[W::FuncRef], &[W::I32]), |_, p, r| {
            r[0] = wasmi::Val::I32(matches!(&p[0], wasmi::Val::FuncRef(f) if !f.is_null()) as i32);
            Ok(())
        }),
    )
    .expect("define");

    kl.func_new(
        "host",
        "make_ext",
        kty(&[K::I32], &[K::EXTERNREF]),
        |mut c, p, r| {
            let x = p[0].i32().expect("an i32") as u32;
            r[0] = kiln::Val::ExternRef(Some(kiln::ExternRef::new(&mut c, x)?));
            Ok(())
        },
    )
    .expect("define");
    wl.define(
        "host",
        "make_ext",
        wasmi::Func::new(&mut *ws, wty(&[W::I32], &[W::ExternRef]), |mut c, p, r| {
            let wasmi::Val::I32(x) = p[0] else {
                unreachable!("typed by the signature")
            };
            r[0] = wasmi::Val::ExternRef(wasmi::Nullable::Val(wasmi::ExternRef::new(
                &mut c, x as u32,
            )));
            Ok(())
        }),
    )
    .expect("define");

    kl.func_wrap("host", "trap", |x: i32| -> kiln::Result<()> {
        if x & 1 == 1 {
            Err(kiln::Error::new(crate::oracle::HostFailure))
        } else {
            Ok(())
        }
    })
    .expect("define");
    wl.define(
        "host",
        "trap",
        wasmi::Func::wrap(&mut *ws, |x: i32| -> Result<(), wasmi::Error> {
            if x & 1 == 1 {
                Err(wasmi::Error::new("odd"))
            } else {
                Ok(())
            }
        }),
    )
    .expect("define");
}

impl Outcome<()> {
    fn map_vec(self, f: impl FnOnce() -> Vec<Value>) -> Outcome<Vec<Value>> {
        match self {
            Outcome::Ok(()) => Outcome::Ok(f()),
            Outcome::Trap(t) => Outcome::Trap(t),
            Outcome::Error(e) => Outcome::Error(e),
        }
    }
}

impl<T> Outcome<T> {
    fn map_vec1(self, f: impl FnOnce(T) -> Value) -> Outcome<Vec<Value>> {
        match self {
            Outcome::Ok(v) => Outcome::Ok(vec![f(v)]),
            Outcome::Trap(t) => Outcome::Trap(t),
            Outcome::Error(e) => Outcome::Error(e),
        }
    }

    fn map_unit_vec(self) -> Outcome<Vec<Value>> {
        self.map_vec1(|_| Value::I32(0)).map_ok_empty()
    }
}

impl Outcome<Vec<Value>> {
    fn map_ok_empty(self) -> Outcome<Vec<Value>> {
        match self {
            Outcome::Ok(_) => Outcome::Ok(Vec::new()),
            other => other,
        }
    }
}
