//! Differential execution: one generated module in Kiln and in wasmi.
//!
//! The module comes from wasm-smith for exactly the features Kiln supports
//! (see `smith.rs`), with every function exported (and every memory, table
//! and global), no imports, and a termination guarantee (a fuel global
//! decremented at loop headers and function entries). Both engines
//! instantiate it, which runs the start function and the segment
//! initializers; their outcomes (success or the trap) must agree. Then the
//! exported functions are called in export order, each with the same
//! arguments drawn from the input, and after each call the results or the
//! trap must agree, and so must every exported global, memory (size and
//! bytes) and table (size and each element's null-ness).
//!
//! A stack overflow on either side ends the comparison: the engines' stacks
//! differ in size, so where one overflows and the other does not is not a
//! bug. Kiln may also run with its fuel metering compiled in (and fuel that
//! never runs out), chosen by the input, which exercises the metered code
//! against the same reference.

use crate::oracle::{self, Outcome, Value};
use crate::smith;
use arbitrary::Unstructured;

/// The feature set of a differential run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Features {
    /// WebAssembly 2.0, SIMD included (Kiln's default).
    Wasm2,
    /// WebAssembly 2.0 plus every optional feature Kiln supports: tail
    /// calls, multi-memory and extended constant expressions.
    All,
}

impl Features {
    fn smith(self) -> smith::Features {
        match self {
            Features::Wasm2 => smith::Features::WASM2,
            Features::All => smith::Features::ALL,
        }
    }
}

/// The most calls one input makes.
const MAX_CALLS: usize = 40;

/// Runs one input; panics when the engines disagree.
pub fn run(data: &[u8], features: Features) {
    let mut u = Unstructured::new(data);
    let Ok(kiln_fuel) = u.arbitrary::<bool>() else {
        return;
    };
    let mut config = smith::config(features.smith());
    config.export_everything = true;
    config.max_imports = 0;
    config.min_funcs = 1;
    let Some(wasm) = smith::module(config, &mut u) else {
        return;
    };
    run_module(&wasm, features, kiln_fuel, &mut u);
}

/// Compares the engines on `wasm` (which must be valid for `features`),
/// with arguments from `u`.
fn run_module(wasm: &[u8], features: Features, kiln_fuel: bool, u: &mut Unstructured<'_>) {
    let f = features.smith();
    let kiln_engine = smith::kiln_engine(f, kiln_fuel);
    let kiln_module = kiln::Module::from_binary(&kiln_engine, wasm)
        .unwrap_or_else(|e| panic!("Kiln rejects a module valid for {features:?}: {e}"));
    let wasmi_engine = smith::wasmi_engine(f);
    let wasmi_module = wasmi::Module::new(&wasmi_engine, wasm)
        .unwrap_or_else(|e| panic!("wasmi rejects a module valid for {features:?}: {e}"));

    let mut ks = kiln::Store::new(&kiln_engine, ());
    if kiln_fuel {
        ks.set_fuel(u64::MAX / 4).expect("fuel is enabled");
    }
    let mut ws = wasmi::Store::new(&wasmi_engine, ());

    let ki = oracle::kiln_outcome(kiln::Instance::new(&mut ks, &kiln_module, &[]));
    let wi = oracle::wasmi_outcome(
        wasmi::Linker::<()>::new(&wasmi_engine).instantiate_and_start(&mut ws, &wasmi_module),
    );
    let (ki, wi) = match (ki, wi) {
        (Outcome::Ok(k), Outcome::Ok(w)) => (k, w),
        (k, w) => {
            if k.is_stack_overflow() || w.is_stack_overflow() {
                return;
            }
            oracle::assert_agree(&"instantiation", &k.map_unit(), &w.map_unit());
            return;
        }
    };

    let exports: Vec<(String, kiln::Extern)> = ki
        .exports(&mut ks)
        .map(|e| (e.name().to_string(), e.into_extern()))
        .collect();
    let funcs: Vec<(String, kiln::Func)> = exports
        .iter()
        .filter_map(|(n, e)| e.clone().into_func().map(|f| (n.clone(), f)))
        .collect();
    compare_state(&exports, &mut ks, &ki, &ws, &wi, "instantiation");

    for (i, (name, kf)) in funcs
        .iter()
        .cycle()
        .take(MAX_CALLS.min(funcs.len() * 3))
        .enumerate()
    {
        let ty = kf.ty(&ks).to_wasm().clone();
        let Ok(args) = ty
            .params()
            .iter()
            .map(|t| oracle::arbitrary_arg(u, *t))
            .collect::<arbitrary::Result<Vec<Value>>>()
        else {
            return;
        };
        let kargs: Vec<kiln::Val> = args.iter().map(|a| oracle::to_kiln(a, &mut ks)).collect();
        let mut kres: Vec<kiln::Val> = ty
            .results()
            .iter()
            .map(|t| oracle::kiln_default(*t))
            .collect();
        let kout = oracle::kiln_outcome(kf.call(&mut ks, &kargs, &mut kres)).map(|()| {
            kres.iter()
                .map(|v| oracle::kiln_value(v, &ks))
                .collect::<Vec<_>>()
        });

        let wf = wi
            .get_func(&ws, name)
            .unwrap_or_else(|| panic!("wasmi has no exported function {name:?}"));
        let wargs: Vec<wasmi::Val> = args.iter().map(|a| oracle::to_wasmi(a, &mut ws)).collect();
        let mut wres: Vec<wasmi::Val> = ty
            .results()
            .iter()
            .map(|t| oracle::wasmi_default(*t))
            .collect();
        let wout = oracle::wasmi_outcome(wf.call(&mut ws, &wargs, &mut wres)).map(|()| {
            wres.iter()
                .map(|v| oracle::wasmi_value(v, &ws))
                .collect::<Vec<_>>()
        });

        if kout.is_stack_overflow() || wout.is_stack_overflow() {
            return;
        }
        let what = format!("call {i} of {name:?} with {args:?}");
        oracle::assert_agree(&what, &kout, &wout);
        compare_state(&exports, &mut ks, &ki, &ws, &wi, &what);
    }
}

/// Compares every exported global, memory and table.
fn compare_state(
    exports: &[(String, kiln::Extern)],
    ks: &mut kiln::Store<()>,
    _ki: &kiln::Instance,
    ws: &wasmi::Store<()>,
    wi: &wasmi::Instance,
    after: &str,
) {
    for (name, e) in exports {
        let we = wi
            .get_export(ws, name)
            .unwrap_or_else(|| panic!("wasmi has no export {name:?}"));
        match e {
            kiln::Extern::Func(_) => {}
            kiln::Extern::Global(g) => {
                let k = oracle::kiln_value(&g.get(&mut *ks), ks);
                let w = oracle::wasmi_value(&we.into_global().expect("a global").get(ws), ws);
                assert!(
                    k == w,
                    "global {name:?} after {after}: kiln {k:?}, wasmi {w:?}"
                );
            }
            kiln::Extern::Memory(m) => {
                let wm = we.into_memory().expect("a memory");
                let (k, w) = (m.data(&*ks), wm.data(ws));
                if k != w {
                    let at = k.iter().zip(w).position(|(a, b)| a != b);
                    panic!(
                        "memory {name:?} after {after}: kiln {} bytes, wasmi {} bytes, first \
                         difference at {at:?}",
                        k.len(),
                        w.len()
                    );
                }
            }
            kiln::Extern::Table(t) => {
                let wt = we.into_table().expect("a table");
                let (kn, wn) = (t.size(&*ks), wt.size(ws));
                assert_eq!(kn, wn, "size of table {name:?} after {after}");
                for i in 0..kn {
                    let k = t
                        .get(&mut *ks, i)
                        .map(|r| oracle::kiln_value(&kiln::Val::from(r), ks));
                    let w = wt.get(ws, i).map(|r| oracle::wasmi_ref(&r, ws));
                    assert!(
                        k == w,
                        "table {name:?}[{i}] after {after}: kiln {k:?}, wasmi {w:?}"
                    );
                }
            }
        }
    }
}

impl<T> Outcome<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Ok(v) => Outcome::Ok(f(v)),
            Outcome::Trap(t) => Outcome::Trap(t),
            Outcome::Error(e) => Outcome::Error(e),
        }
    }

    fn map_unit(self) -> Outcome<()> {
        self.map(|_| ())
    }
}
