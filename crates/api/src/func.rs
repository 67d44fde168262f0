//! [`Func`], [`TypedFunc`], host functions and [`Caller`].
//!
//! # The host boundary
//!
//! A host function defined with [`Func::wrap`] is a Rust closure plus two
//! monomorphised `extern "C"` shims: `native_shim` (the `native_call`
//! entry: the Wasm arguments arrive as C arguments) and `array_shim` (the
//! `array_call` entry). Neither needs a compiler. Its `wasm_call` entry is
//! the importing module's wasm-to-native trampoline for its type, which
//! each importing instance writes into its own import slot (and into a
//! store-owned copy of the funcref when the import escapes); a host
//! function that reaches Wasm any other way (a table, an argument) gets a
//! store-owned copy with the engine's per-type trampoline. The function's
//! own funcref, shared by every store and thread of a `Linker`, is never
//! written after it is created (see `kiln_runtime::VMFuncRef`).
//!
//! [`Func::new`] closures take `&[Val]`, so they only have the array
//! entry; the engine compiles (once per type) a native-to-array and a
//! wasm-to-array trampoline for them.
//!
//! Each shim catches panics and errors of the closure and, *after* every
//! Rust value in its frame is gone, reports them with `host_call_failed`
//! (in `kiln-runtime`) and returns normally. Called from Wasm, that makes
//! the Wasm caller trap as the call returns; called from the host, the
//! host's entry finds the trap waiting. No Rust frame is ever jumped over.
//! A panic is resumed in the host caller by [`Func::call`] /
//! [`TypedFunc::call`].
//!
//! What is *not* there, and why it is safe: no `setjmp` and no activation
//! record (a trap rewrites the signal context to resume right after the
//! host's call, restoring the callee-saved registers the skipped frames
//! had saved, from each module's frame table; see `traphandlers.rs`), and
//! no write of the stack limit per call (see "The stack limit" there).
//! Where the remaining nanoseconds of a typed call go is measured in
//! `benches/README.md`.
//!
//! # Layout
//!
//! This file has [`Func`], its calls, [`Caller`] and the host's entry
//! into Wasm (`enter_wasm`, `trap_to_error`). `func/typed.rs` has the
//! static types of typed calls ([`WasmTy`], [`WasmParams`],
//! [`WasmResults`]) and [`TypedFunc`]; `func/host.rs` has host functions:
//! `HostFunc`, the shims, [`IntoFunc`] and [`IntoResult`].

mod host;
mod typed;

pub(crate) use host::new_dynamic_host_func;
pub use host::{HostFunc, IntoFunc, IntoResult};
pub use typed::{TypedFunc, WasmParams, WasmResults, WasmTy};

use crate::error::HostError;
use crate::store::StoreInner;
use crate::{AsContext, AsContextMut, Engine, Error, Extern, Result, StoreContextMut, Val};
use kiln_environ::FuncType;
use kiln_runtime::{
    call_wasm, TrapReason, TrapRecord, VMArrayCallFunction, VMContext, VMFuncRef, ValRaw,
};
use std::marker::PhantomData;
use std::sync::Arc;

/// A function in a store: exported by an instance or defined by the host.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Func {
    pub(crate) store: u64,
    pub(crate) index: usize,
}
/// Converts a trap record into the error returned to the host, resuming
/// panics.
#[expect(
    clippy::boxed_local,
    reason = "trap records travel boxed from the runtime"
)]
pub(crate) fn trap_to_error<T>(t: Box<TrapRecord>, store: &mut StoreInner<T>) -> Error {
    let TrapRecord {
        reason,
        backtrace,
        backtrace_truncated,
    } = *t;
    let frames: Vec<crate::FrameInfo> = backtrace
        .into_iter()
        .filter_map(|f| crate::FrameInfo::new(f, &store.engine, store.opaque.modules()))
        .collect();
    let config = &store.engine.inner.config;
    // A copy only for a core dump, which keeps the frames even with
    // `Config::wasm_backtrace(false)` (then the error shows none).
    let dumped = config.coredump_on_trap.then(|| frames.clone());
    let shown = if config.wasm_backtrace {
        frames
    } else {
        Vec::new()
    };
    let err = match reason {
        TrapReason::Wasm(code) => crate::error::trap_error(code, shown, backtrace_truncated),
        TrapReason::Panic(p) => std::panic::resume_unwind(p),
        TrapReason::Host(e) => {
            let e = match e.downcast::<HostError>() {
                Ok(h) => h.0,
                Err(e) => Error::from_boxed(e),
            };
            crate::error::with_backtrace(e, shown, backtrace_truncated)
        }
    };
    if let Some(frames) = dumped {
        let bt = crate::WasmBacktrace::new(frames, backtrace_truncated);
        err.context(crate::WasmCoreDump::new(store, bt))
    } else {
        err
    }
}

/// Runs `f`, a call of a `native_call` or `array_call` entry, as a call
/// from the host: a trap inside comes back as `Err`.
#[inline(always)]
pub(crate) fn enter_wasm<T, R>(store: &mut StoreInner<T>, f: impl FnOnce() -> R) -> Result<R> {
    store.call_hook(crate::CallHook::CallingWasm)?;
    let limits = Arc::as_ptr(&store.opaque.limits);
    // SAFETY: the limits belong to the store, which outlives the call; the
    // callers' closures only call entry points, which do not unwind.
    let r = unsafe { call_wasm(limits, f) }.map_err(|t| trap_to_error(t, store));
    let returned = store.call_hook(crate::CallHook::ReturningFromWasm);
    let r = r?;
    returned?;
    Ok(r)
}

impl Func {
    pub(crate) fn check<T>(&self, store: &StoreInner<T>) -> Result<()> {
        if self.store != store.id {
            return Err(Error::msg("object used with the wrong store"));
        }
        Ok(())
    }

    /// The raw funcref, without filling in a missing `wasm_call`.
    pub(crate) fn to_raw_unpatched<T>(self, store: &StoreInner<T>) -> Result<*const VMFuncRef> {
        self.check(store)?;
        Ok(store.funcs[self.index].func_ref)
    }

    /// The raw funcref for Wasm: one with a `wasm_call` entry (for a host
    /// function without one, the store's own copy with the engine's
    /// per-type trampoline; see [`StoreInner::own_func_ref`]).
    pub(crate) fn to_raw<T>(self, store: &mut StoreInner<T>) -> Result<*const VMFuncRef> {
        self.check(store)?;
        let engine = store.engine.clone();
        let ty = store.funcs[self.index].ty.clone();
        store.own_func_ref(self.index, || {
            Ok((engine.host_trampolines(&ty)?.wasm_to_native, None))
        })
    }

    /// A host function with a dynamic type: `f` receives the arguments as
    /// [`Val`]s and writes the results.
    ///
    /// # Panics
    ///
    /// If Cranelift fails to compile the trampolines for `ty` (an internal
    /// error: every function type Kiln can express compiles).
    /// [`Linker::func_new`](crate::Linker::func_new) returns that as an
    /// error instead.
    pub fn new<T: 'static>(
        mut store: impl AsContextMut<Data = T>,
        ty: crate::FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Func {
        let s = store.as_context_mut().0;
        let h = new_dynamic_host_func(&s.engine, ty.inner, f)
            .unwrap_or_else(|e| panic!("compiling the trampolines of a host function: {e:#}"));
        Arc::new(h).into_func(s)
    }

    /// A host function from a Rust closure; its Wasm type follows from the
    /// closure's parameter and result types. The closure may take a
    /// [`Caller`] first, and may return a `Result` to trap.
    pub fn wrap<T: 'static, Params, Results>(
        mut store: impl AsContextMut<Data = T>,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Func {
        let s = store.as_context_mut().0;
        let h = f.into_host_func(&s.engine);
        Arc::new(h).into_func(s)
    }

    /// The function's type.
    pub fn ty(&self, store: impl AsContext) -> crate::FuncType {
        crate::FuncType::from_wasm(store.as_context().0.funcs[self.index].ty.clone())
    }

    /// Calls the function with dynamically typed arguments, through its
    /// array entry point.
    pub fn call(
        &self,
        mut store: impl AsContextMut,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<()> {
        let s = store.as_context_mut().0;
        self.check(s)?;
        let ty = s.funcs[self.index].ty.clone();
        if params.len() != ty.params().len() {
            return Err(Error::msg(format!(
                "expected {} arguments, got {}",
                ty.params().len(),
                params.len()
            )));
        }
        if results.len() != ty.results().len() {
            return Err(Error::msg(format!(
                "expected {} results, got {}",
                ty.results().len(),
                results.len()
            )));
        }
        // Up to 8 slots live on the stack; only wide signatures allocate.
        let n = params.len().max(results.len()).max(1);
        let mut small = [ValRaw::default(); 8];
        let mut big = Vec::new();
        let values: &mut [ValRaw] = if n <= small.len() {
            &mut small[..n]
        } else {
            big.resize(n, ValRaw::default());
            &mut big
        };
        for (i, (p, t)) in params.iter().zip(ty.params()).enumerate() {
            if p.wasm_ty() != *t {
                return Err(Error::msg(format!(
                    "argument {i} is {}, expected {t}",
                    p.wasm_ty()
                )));
            }
            values[i] = p.to_raw(s)?;
        }
        let fr = s.funcs[self.index].func_ref;
        let caller = s.opaque.host_vmctx();
        let (ptr, len) = (values.as_mut_ptr(), values.len());
        // SAFETY: `fr` is a live funcref of this store (checked above), and
        // its array entry has the array convention.
        let (array_call, callee) = unsafe {
            let f: VMArrayCallFunction = std::mem::transmute((*fr).array_call);
            (f, (*fr).vmctx)
        };
        enter_wasm(s, move || {
            // SAFETY: `values` holds `len` slots; see above for the entry.
            unsafe { array_call(callee, caller, ptr, len) }
        })?;
        for (i, t) in ty.results().iter().enumerate() {
            results[i] = Val::from_raw(s, values[i], *t);
        }
        Ok(())
    }

    /// A statically typed view of the function, checked against its type.
    pub fn typed<Params: WasmParams, Results: WasmResults>(
        &self,
        store: impl AsContext,
    ) -> Result<TypedFunc<Params, Results>> {
        let s = store.as_context().0;
        self.check(s)?;
        let ty = &s.funcs[self.index].ty;
        if ty.params() != Params::types().as_slice() || ty.results() != Results::types().as_slice()
        {
            return Err(Error::msg(format!(
                "function has type {ty}, not {}",
                FuncType::new(Params::types(), Results::types())
            )));
        }
        let fr = s.funcs[self.index].func_ref;
        // SAFETY: funcrefs registered in the store are live; a funcref's
        // native entry and context never change after it is created (only
        // a host function's `wasm_call` is filled in later).
        let (native_call, callee) = unsafe { ((*fr).native_call, (*fr).vmctx) };
        Ok(TypedFunc {
            func: *self,
            native_call,
            callee,
            _marker: PhantomData,
        })
    }
}

/// Access to the store and calling instance from inside a host function.
pub struct Caller<'a, T> {
    store: &'a mut StoreInner<T>,
    caller: *mut VMContext,
}

impl<'a, T> Caller<'a, T> {
    fn new(store: &'a mut StoreInner<T>, caller: *mut VMContext) -> Self {
        Caller { store, caller }
    }

    /// The store's data.
    pub fn data(&self) -> &T {
        &self.store.data
    }

    /// The store's data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.store.data
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.store.engine
    }

    /// The fuel left: see [`Store::get_fuel`](crate::Store::get_fuel).
    pub fn get_fuel(&self) -> Result<u64> {
        self.store.get_fuel()
    }

    /// Sets the fuel left: see [`Store::set_fuel`](crate::Store::set_fuel).
    pub fn set_fuel(&mut self, fuel: u64) -> Result<()> {
        self.store.set_fuel(fuel)
    }

    /// Performs a garbage collection: see [`Store::gc`](crate::Store::gc).
    pub fn gc(&mut self, why: Option<&crate::GcHeapOutOfMemory<()>>) -> Result<()> {
        let _ = why;
        Ok(())
    }

    /// An export of the calling instance (for example its memory), if the
    /// caller is a Wasm instance.
    pub fn get_export(&mut self, name: &str) -> Option<Extern> {
        let idx = self
            .store
            .instances
            .iter()
            .position(|i| i.vmctx == self.caller)?;
        crate::Instance {
            store: self.store.id,
            index: idx,
        }
        .get_export(StoreContextMut(self.store), name)
    }
}

impl<T> crate::AsContext for Caller<'_, T> {
    type Data = T;
    fn as_context(&self) -> crate::StoreContext<'_, T> {
        crate::StoreContext(self.store)
    }
}
impl<T> crate::AsContextMut for Caller<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(self.store)
    }
}
