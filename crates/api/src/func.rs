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
//! # Where the time of a typed call goes
//!
//! Measured with `cargo xtask bench` on a shared 2-core AMD EPYC
//! (2026-11-21): `TypedFunc::call` of `(func (param i32) (result i32))`
//! costs 4.0-4.4 ns; Wasmtime 48's costs 18.7-23.4 ns (ratio 0.17-0.23
//! across runs). At about 3 GHz that is a dozen cycles, spent as follows
//! (from `perf annotate` of the benchmark loop, with `call` inlined into
//! it, and from an experiment that skipped the bookkeeping):
//!
//! * **The call itself, 3.4 ns.** With `call_wasm`'s bookkeeping skipped
//!   (the experiment, not a mode), the loop runs at 3.37 ns: the store-id
//!   check, the host's indirect call of `native_call`, the native-to-wasm
//!   trampoline (`push rbp`, a direct call, `pop rbp`, `ret`), the body,
//!   and the loop around it. Nothing here saves registers or touches
//!   memory besides return addresses and frame pointers; arguments and the
//!   result stay in registers end to end (the return area for several
//!   results is left uninitialised, and `Result<i32>` comes back in
//!   registers once `call` is inlined).
//! * **Entry bookkeeping, about 0.6 ns** (`call_wasm` in `kiln-runtime`):
//!   one thread-local byte (does this thread have an alternate signal
//!   stack?); the store's entry depth, loaded, compared, incremented and
//!   restored, which is what tells an outermost entry from a nested one;
//!   for the outermost entry, `rsp` and the installed stack limit compared
//!   with those of the previous entry (equal in a loop, so nothing is
//!   written); and after the call one thread-local word, the pending
//!   trap, compared with null. Most of `perf`'s samples land on the use of
//!   the depth, at the end of a chain of two dependent loads (store, then
//!   its limits).
//!
//! What is *not* there, and why it is safe: no `setjmp` and no activation
//! record (a trap rewrites the signal context to resume right after the
//! host's call, restoring the callee-saved registers the skipped frames
//! had saved, from each module's frame table; see `traphandlers.rs`), and
//! no write of the stack limit per call (see "The stack limit" there). The
//! previous design spent 11-12 ns here: 3 ns in `setjmp` and its callee
//! saves, 4.5 ns pushing and popping an activation record, and the rest in
//! the closure moved through memory and a call frame of its own.

use crate::engine::HostTrampolines;
use crate::error::HostError;
use crate::store::StoreInner;
use crate::{AsContext, AsContextMut, Engine, Error, Extern, Result, StoreContextMut, Val};
use kiln_environ::{FuncType, VMOffsets, ValType, VM_HOST_FUNC_MAGIC};
use kiln_runtime::{
    call_wasm, host_call_failed, StoreOpaque, TrapReason, TrapRecord, VMArrayCallFunction,
    VMContext, VMFuncRef, VMHostFuncContext, ValRaw,
};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// A function in a store: exported by an instance or defined by the host.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Func {
    pub(crate) store: u64,
    pub(crate) index: usize,
}

/// A host function's context, shareable between stores of one engine.
#[doc(hidden)]
pub struct HostFunc {
    ctx: Box<VMHostFuncContext>,
    ty: FuncType,
    /// The engine's trampolines `ctx.func_ref` points at, if any.
    _trampolines: Option<Arc<HostTrampolines>>,
    engine: Engine,
}

// SAFETY: the raw pointers inside point at the context itself (boxed, so
// it never moves) and at code kept alive by `_trampolines`; the closure in
// the context is `Send + Sync`; nothing is mutable after `HostFunc::new`
// returns (the funcref is never patched: see `kiln_runtime::VMFuncRef`),
// so moving or sharing it between threads cannot race.
unsafe impl Send for HostFunc {}
// SAFETY: see `Send`: shared access only ever reads.
unsafe impl Sync for HostFunc {}

impl HostFunc {
    fn new(
        engine: &Engine,
        ty: FuncType,
        array_call: *const u8,
        native_call: Option<*const u8>,
        state: Box<dyn std::any::Any + Send + Sync>,
    ) -> Result<HostFunc> {
        let type_index = engine.inner.types.register(&ty);
        let (native_call, wasm_call, tramps) = match native_call {
            Some(n) => (n, std::ptr::null(), None),
            None => {
                let t = engine.host_trampolines(&ty)?;
                (t.native_to_array, t.wasm_to_array, Some(t))
            }
        };
        let mut ctx = Box::new(VMHostFuncContext {
            magic: VM_HOST_FUNC_MAGIC,
            func_ref: VMFuncRef {
                array_call,
                native_call,
                wasm_call,
                type_index,
                vmctx: std::ptr::null_mut(),
            },
            host_state: state,
        });
        ctx.func_ref.vmctx = (&mut *ctx as *mut VMHostFuncContext).cast();
        Ok(HostFunc {
            ctx,
            ty,
            _trampolines: tramps,
            engine: engine.clone(),
        })
    }

    pub(crate) fn func_ref(&self) -> *const VMFuncRef {
        &self.ctx.func_ref
    }

    pub(crate) fn ty(&self) -> &FuncType {
        &self.ty
    }

    /// The function in `store`, adding it the first time (a linker's host
    /// functions are added by every instantiation that uses them; the store
    /// keeps one entry each).
    pub(crate) fn into_func<T>(self: Arc<Self>, store: &mut StoreInner<T>) -> Func {
        let known = store.func_by_ref.contains_key(&(self.func_ref() as usize));
        let f = store.push_func(self.func_ref(), self.ty.clone());
        if !known {
            store.host_funcs.push(self);
        }
        f
    }
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
    let coredump = store.engine.inner.config.coredump_on_trap;
    // `Config::wasm_backtrace(false)`: no backtrace on the error.
    let shown = match store.engine.inner.config.wasm_backtrace {
        true => frames.clone(),
        false => Vec::new(),
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
    if coredump {
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

pub(crate) fn new_dynamic_host_func<T: 'static, F>(
    engine: &Engine,
    ty: FuncType,
    f: F,
) -> Result<HostFunc>
where
    F: Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
{
    struct Dyn<T, F> {
        f: F,
        ty: FuncType,
        _m: PhantomData<fn(T)>,
    }
    unsafe extern "C" fn array_shim<T: 'static, F>(
        callee: *mut VMContext,
        caller: *mut VMContext,
        values: *mut ValRaw,
        len: usize,
    ) where
        F: Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    {
        let r = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: `callee` is this function's host context (set up in
            // `HostFunc::new`), `caller` a live context of the calling
            // store, and `values` holds `len` slots.
            unsafe {
                let state = host_state::<Dyn<T, F>>(callee);
                let store = caller_store::<T>(caller);
                store.call_hook(crate::CallHook::CallingHost)?;
                let values = std::slice::from_raw_parts_mut(values, len);
                // One buffer per store, reused across calls: params first,
                // then results. A nested call finds it taken and allocates.
                let mut vals = std::mem::take(&mut store.hostcall_vals);
                vals.clear();
                let np = state.ty.params().len();
                for (t, v) in state.ty.params().iter().zip(values.iter()) {
                    vals.push(Val::from_raw(store, *v, *t));
                }
                vals.extend(state.ty.results().iter().map(|t| Val::default_for(*t)));
                let (params, results) = vals.split_at_mut(np);
                (state.f)(Caller::new(store, caller), params, results)?;
                store.call_hook(crate::CallHook::ReturningFromHost)?;
                for (i, (r, t)) in results.iter().zip(state.ty.results()).enumerate() {
                    if r.wasm_ty() != *t {
                        return Err(Error::msg(format!(
                            "host function result {i} is {}, expected {t}",
                            r.wasm_ty()
                        )));
                    }
                    values[i] = r.to_raw(store)?;
                }
                store.hostcall_vals = vals;
                Ok(())
            }
        }));
        finish_host_call(caller, r)
    }
    let state = Dyn {
        f,
        ty: ty.clone(),
        _m: PhantomData::<fn(T)>,
    };
    HostFunc::new(
        engine,
        ty,
        array_shim::<T, F> as *const u8,
        None,
        Box::new(state),
    )
}

/// Ends a host call: returns the result on success; otherwise reports the
/// error or panic as a trap (see `host_call_failed` in `kiln-runtime`) and
/// returns zeroes, which no caller reads. Every Rust value of the shim is
/// gone by now. Inlined, with the failure out of line, so a successful
/// call pays one branch.
#[inline(always)]
fn finish_host_call<R: Copy>(caller: *mut VMContext, r: std::thread::Result<Result<R>>) -> R {
    match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => host_failed(caller, TrapReason::Host(Box::new(HostError(e)))),
        Err(p) => host_failed(caller, TrapReason::Panic(p)),
    }
}

#[cold]
#[inline(never)]
fn host_failed<R: Copy>(caller: *mut VMContext, reason: TrapReason) -> R {
    // SAFETY: `caller` is the context the shim was called with, and the
    // shim returns right after this.
    unsafe { host_call_failed(caller, reason) };
    // SAFETY: every native return type (integers, floats, vectors, raw
    // pointers; see `WasmTy`) is valid as all-zero bytes.
    unsafe { std::mem::zeroed() }
}

/// The closure state of a host function.
///
/// # Safety
///
/// `vmctx` must be a `VMHostFuncContext` whose state is an `S`.
unsafe fn host_state<'a, S: 'static>(vmctx: *mut VMContext) -> &'a S {
    // SAFETY: per the contract, the context is a host function context.
    let ctx = unsafe { &*(vmctx as *const VMHostFuncContext) };
    debug_assert_eq!(ctx.magic, VM_HOST_FUNC_MAGIC);
    // SAFETY: per the contract, the state has type `S`.
    unsafe { &*(&*ctx.host_state as *const (dyn std::any::Any + Send + Sync) as *const S) }
}

/// The store behind a caller's context.
///
/// # Safety
///
/// `vmctx` must be a live context of a `Store<T>`.
unsafe fn caller_store<'a, T>(vmctx: *mut VMContext) -> &'a mut StoreInner<T> {
    // SAFETY: per the contract.
    unsafe { &mut *(StoreOpaque::store_ptr_from_vmctx(vmctx) as *mut StoreInner<T>) }
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

/// A Rust type that maps to one Wasm value type in typed calls.
///
/// # Safety
///
/// `Abi` must be passed in the C ABI exactly as Cranelift passes
/// `valtype()`'s Cranelift type, and all-zero bytes must be a valid `Abi`
/// (what a failed host function returns).
pub unsafe trait WasmTy: Sized + 'static {
    /// The C ABI representation.
    type Abi: Copy;
    /// The Wasm type.
    fn valtype() -> ValType;
    #[doc(hidden)]
    fn into_abi<T>(self, store: &mut StoreInner<T>) -> Result<Self::Abi>;
    #[doc(hidden)]
    fn from_abi<T>(abi: Self::Abi, store: &mut StoreInner<T>) -> Self;
    #[doc(hidden)]
    fn into_raw<T>(self, store: &mut StoreInner<T>) -> Result<ValRaw>;
    #[doc(hidden)]
    fn from_raw<T>(raw: ValRaw, store: &mut StoreInner<T>) -> Self;
}

macro_rules! scalar_wasm_ty {
    ($($t:ty => $vt:ident, $into_raw:expr, $from_raw:expr;)*) => {$(
        // SAFETY: these scalar types are passed in the C ABI as Cranelift
        // passes the corresponding Wasm type.
        unsafe impl WasmTy for $t {
            type Abi = $t;
            fn valtype() -> ValType { ValType::$vt }
            fn into_abi<T>(self, _: &mut StoreInner<T>) -> Result<$t> { Ok(self) }
            fn from_abi<T>(abi: $t, _: &mut StoreInner<T>) -> $t { abi }
            fn into_raw<T>(self, _: &mut StoreInner<T>) -> Result<ValRaw> { Ok(($into_raw)(self)) }
            fn from_raw<T>(raw: ValRaw, _: &mut StoreInner<T>) -> $t { ($from_raw)(raw) }
        }
    )*};
}

scalar_wasm_ty! {
    i32 => I32, |v: i32| ValRaw::i32(v), |r: ValRaw| r.get_i32();
    u32 => I32, |v: u32| ValRaw::i32(v as i32), |r: ValRaw| r.get_i32() as u32;
    i64 => I64, |v: i64| ValRaw::i64(v), |r: ValRaw| r.get_i64();
    u64 => I64, |v: u64| ValRaw::i64(v as i64), |r: ValRaw| r.get_i64() as u64;
    f32 => F32, |v: f32| ValRaw::f32(v.to_bits()), |r: ValRaw| f32::from_bits(r.get_f32());
    f64 => F64, |v: f64| ValRaw::f64(v.to_bits()), |r: ValRaw| f64::from_bits(r.get_f64());
}

// SAFETY: a funcref is a pointer (`*const VMFuncRef`, null for `None`).
unsafe impl WasmTy for Option<Func> {
    type Abi = usize;
    fn valtype() -> ValType {
        ValType::FuncRef
    }
    fn into_abi<T>(self, store: &mut StoreInner<T>) -> Result<usize> {
        Ok(match self {
            Some(f) => f.to_raw(store)? as usize,
            None => 0,
        })
    }
    fn from_abi<T>(abi: usize, store: &mut StoreInner<T>) -> Self {
        (abi != 0).then(|| store.func_from_raw(abi as *const VMFuncRef))
    }
    fn into_raw<T>(self, store: &mut StoreInner<T>) -> Result<ValRaw> {
        Ok(ValRaw::ptr(self.into_abi(store)?))
    }
    fn from_raw<T>(raw: ValRaw, store: &mut StoreInner<T>) -> Self {
        Self::from_abi(raw.get_ptr(), store)
    }
}

// SAFETY: an externref is a pointer (null for `None`).
unsafe impl WasmTy for Option<crate::Rooted<crate::ExternRef>> {
    type Abi = usize;
    fn valtype() -> ValType {
        ValType::ExternRef
    }
    fn into_abi<T>(self, store: &mut StoreInner<T>) -> Result<usize> {
        Ok(Val::ExternRef(self).to_raw(store)?.get_ptr())
    }
    fn from_abi<T>(abi: usize, store: &mut StoreInner<T>) -> Self {
        match Val::from_raw(store, ValRaw::ptr(abi), ValType::ExternRef) {
            Val::ExternRef(e) => e,
            _ => None,
        }
    }
    fn into_raw<T>(self, store: &mut StoreInner<T>) -> Result<ValRaw> {
        Ok(ValRaw::ptr(self.into_abi(store)?))
    }
    fn from_raw<T>(raw: ValRaw, store: &mut StoreInner<T>) -> Self {
        Self::from_abi(raw.get_ptr(), store)
    }
}

/// Parameters of a typed call: a [`WasmTy`] or a tuple of them.
///
/// # Safety
///
/// `invoke` must call a native entry of matching type.
pub unsafe trait WasmParams: Sized {
    /// The parameters in their C ABI representation.
    type Abis: Copy;
    /// The Wasm parameter types.
    fn types() -> Vec<ValType>;
    #[doc(hidden)]
    fn into_abis<T>(self, store: &mut StoreInner<T>) -> Result<Self::Abis>;
    /// Calls native entry `f`, with a return area for several results.
    ///
    /// # Safety
    ///
    /// `f` must be a native entry for these parameters and `R`'s results.
    #[doc(hidden)]
    unsafe fn invoke<R: WasmResults>(
        abis: Self::Abis,
        f: *const u8,
        callee: *mut VMContext,
        caller: *mut VMContext,
        retptr: *mut ValRaw,
    ) -> R::Abi;
}

/// Results of a typed call: `()`, a [`WasmTy`] or a tuple of them.
///
/// # Safety
///
/// `Abi` must match the native convention's return for these results.
pub unsafe trait WasmResults: Sized {
    /// What the native entry returns: `()` for none or several results
    /// (which come through the return pointer).
    type Abi: Copy;
    /// The Wasm result types.
    fn types() -> Vec<ValType>;
    /// From a native return and the return area.
    ///
    /// # Safety
    ///
    /// With several results, `retptr` must hold one initialised slot each.
    #[doc(hidden)]
    unsafe fn from_native<T>(
        abi: Self::Abi,
        retptr: *const ValRaw,
        store: &mut StoreInner<T>,
    ) -> Self;
    /// To a native return, writing extra results through `retptr`.
    ///
    /// # Safety
    ///
    /// `retptr` must be valid for as many slots as there are results when
    /// there is more than one.
    #[doc(hidden)]
    unsafe fn into_native<T>(
        self,
        retptr: *mut ValRaw,
        store: &mut StoreInner<T>,
    ) -> Result<Self::Abi>;
    #[doc(hidden)]
    fn into_raw_slots<T>(self, out: &mut [ValRaw], store: &mut StoreInner<T>) -> Result<()>;
}

// SAFETY: no results: the native entry returns nothing.
unsafe impl WasmResults for () {
    type Abi = ();
    fn types() -> Vec<ValType> {
        Vec::new()
    }
    unsafe fn from_native<T>(_: (), _: *const ValRaw, _: &mut StoreInner<T>) {}
    unsafe fn into_native<T>(self, _: *mut ValRaw, _: &mut StoreInner<T>) -> Result<()> {
        Ok(())
    }
    fn into_raw_slots<T>(self, _: &mut [ValRaw], _: &mut StoreInner<T>) -> Result<()> {
        Ok(())
    }
}

// SAFETY: one result is returned directly in the C ABI.
unsafe impl<A: WasmTy> WasmResults for A {
    type Abi = A::Abi;
    fn types() -> Vec<ValType> {
        vec![A::valtype()]
    }
    unsafe fn from_native<T>(abi: A::Abi, _: *const ValRaw, store: &mut StoreInner<T>) -> A {
        A::from_abi(abi, store)
    }
    unsafe fn into_native<T>(self, _: *mut ValRaw, store: &mut StoreInner<T>) -> Result<A::Abi> {
        self.into_abi(store)
    }
    fn into_raw_slots<T>(self, out: &mut [ValRaw], store: &mut StoreInner<T>) -> Result<()> {
        out[0] = self.into_raw(store)?;
        Ok(())
    }
}

// SAFETY: a single parameter, passed after the two contexts.
unsafe impl<A: WasmTy> WasmParams for A {
    type Abis = (A::Abi,);
    fn types() -> Vec<ValType> {
        vec![A::valtype()]
    }
    fn into_abis<T>(self, store: &mut StoreInner<T>) -> Result<(A::Abi,)> {
        Ok((self.into_abi(store)?,))
    }
    unsafe fn invoke<R: WasmResults>(
        abis: (A::Abi,),
        f: *const u8,
        callee: *mut VMContext,
        caller: *mut VMContext,
        retptr: *mut ValRaw,
    ) -> R::Abi {
        // SAFETY: forwarded contract.
        unsafe { <(A,) as WasmParams>::invoke::<R>(abis, f, callee, caller, retptr) }
    }
}

macro_rules! tuples {
    ($(($($a:ident)*);)*) => {$(
        // SAFETY: parameters are passed in order after the two contexts,
        // followed by the return pointer (ignored by entries that return
        // at most one result).
        #[allow(non_snake_case, unused_variables, clippy::unused_unit)]
        unsafe impl<$($a: WasmTy,)*> WasmParams for ($($a,)*) {
            type Abis = ($($a::Abi,)*);
            fn types() -> Vec<ValType> {
                vec![$($a::valtype(),)*]
            }
            fn into_abis<T>(self, store: &mut StoreInner<T>) -> Result<Self::Abis> {
                let ($($a,)*) = self;
                Ok(($($a.into_abi(store)?,)*))
            }
            unsafe fn invoke<R: WasmResults>(
                abis: Self::Abis,
                f: *const u8,
                callee: *mut VMContext,
                caller: *mut VMContext,
                retptr: *mut ValRaw,
            ) -> R::Abi {
                let ($($a,)*) = abis;
                type Native<R, $($a,)*> = unsafe extern "C" fn(*mut VMContext, *mut VMContext, $($a,)* *mut ValRaw) -> R;
                // SAFETY: per the trait contract, `f` has this signature.
                let f = unsafe { std::mem::transmute::<*const u8, Native<R::Abi, $($a::Abi,)*>>(f) };
                // SAFETY: see above.
                unsafe { f(callee, caller, $($a,)* retptr) }
            }
        }

        tuples!(@results $($a)*);

        #[allow(non_snake_case, unused_variables, unused_mut)]
        impl<T: 'static, Func, $($a: WasmTy,)* R: IntoResult> IntoFunc<T, ($($a,)*), R> for Func
        where
            Func: Fn($($a),*) -> R + Send + Sync + 'static,
        {
            fn into_host_func(self, engine: &Engine) -> HostFunc {
                let f = move |_: Caller<'_, T>, $($a: $a),*| self($($a),*);
                let shims = wrapped_shims!(T, R, &f; $($a)*);
                host_func_from::<_, ($($a,)*), R>(engine, f, shims)
            }
        }

        #[allow(non_snake_case, unused_variables, unused_mut)]
        impl<T: 'static, Func, $($a: WasmTy,)* R: IntoResult> IntoFunc<T, (Caller<'static, T>, $($a,)*), R> for Func
        where
            Func: Fn(Caller<'_, T>, $($a),*) -> R + Send + Sync + 'static,
        {
            fn into_host_func(self, engine: &Engine) -> HostFunc {
                let shims = wrapped_shims!(T, R, &self; $($a)*);
                host_func_from::<_, ($($a,)*), R>(engine, self, shims)
            }
        }
    )*};
    (@results) => {};
    (@results $a0:ident) => {};
    (@results $($a:ident)*) => {
        // SAFETY: several results travel through the return pointer, in
        // 16-byte slots.
        #[allow(non_snake_case)]
        unsafe impl<$($a: WasmTy,)*> WasmResults for ($($a,)*) {
            type Abi = ();
            fn types() -> Vec<ValType> {
                vec![$($a::valtype(),)*]
            }
            unsafe fn from_native<T>(_: (), ret: *const ValRaw, store: &mut StoreInner<T>) -> Self {
                let mut i = 0;
                // SAFETY: per the contract, a slot per result is initialised.
                ($({ let v = $a::from_raw(unsafe { *ret.add(i) }, store); i += 1; let _ = i; v },)*)
            }
            unsafe fn into_native<T>(self, retptr: *mut ValRaw, store: &mut StoreInner<T>) -> Result<()> {
                let ($($a,)*) = self;
                let mut i = 0;
                // SAFETY: per the contract, `retptr` has a slot per result.
                $( let v = $a.into_raw(store)?; unsafe { *retptr.add(i) = v; } i += 1; )*
                let _ = i;
                Ok(())
            }
            fn into_raw_slots<T>(self, out: &mut [ValRaw], store: &mut StoreInner<T>) -> Result<()> {
                let ($($a,)*) = self;
                let mut i = 0;
                $( out[i] = $a.into_raw(store)?; i += 1; )*
                let _ = i;
                Ok(())
            }
        }
    };
}

/// The two shims of a wrapped closure with parameters `$a` and result `R`.
macro_rules! wrapped_shims {
    ($t:ident, $r:ident, $g:expr; $($a:ident)*) => {{
        #[allow(non_snake_case)]
        unsafe extern "C" fn native_shim<$t: 'static, G, $($a: WasmTy,)* $r: IntoResult>(
            callee: *mut VMContext,
            caller: *mut VMContext,
            $($a: $a::Abi,)*
            retptr: *mut ValRaw,
        ) -> <$r::Ok as WasmResults>::Abi
        where
            G: Fn(Caller<'_, $t>, $($a),*) -> $r + Send + Sync + 'static,
        {
            let r = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: `callee` is this function's host context with
                // state `G`, `caller` a live context of a `Store<T>`.
                let (g, store) = unsafe { (host_state::<G>(callee), caller_store::<$t>(caller)) };
                store.call_hook(crate::CallHook::CallingHost)?;
                $( let $a = $a::from_abi($a, store); )*
                let r = g(Caller::new(store, caller), $($a),*).into_result()?;
                // SAFETY: as above; the `Caller` borrowing it is gone.
                let store = unsafe { caller_store::<$t>(caller) };
                store.call_hook(crate::CallHook::ReturningFromHost)?;
                // SAFETY: the wasm-to-native trampoline passes a return
                // area with a slot per result when there are several.
                unsafe { r.into_native(retptr, store) }
            }));
            finish_host_call(caller, r)
        }
        #[allow(non_snake_case, unused_mut, unused_variables, unused_assignments)]
        unsafe extern "C" fn array_shim<$t: 'static, G, $($a: WasmTy,)* $r: IntoResult>(
            callee: *mut VMContext,
            caller: *mut VMContext,
            values: *mut ValRaw,
            len: usize,
        ) where
            G: Fn(Caller<'_, $t>, $($a),*) -> $r + Send + Sync + 'static,
        {
            let r = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: as in `native_shim`; `values` holds `len` slots.
                let (g, store, values) = unsafe {
                    (
                        host_state::<G>(callee),
                        caller_store::<$t>(caller),
                        std::slice::from_raw_parts_mut(values, len),
                    )
                };
                store.call_hook(crate::CallHook::CallingHost)?;
                let mut i = 0;
                $( let $a = $a::from_raw(values[i], store); i += 1; )*
                let r = g(Caller::new(store, caller), $($a),*).into_result()?;
                // SAFETY: as above.
                let store = unsafe { caller_store::<$t>(caller) };
                store.call_hook(crate::CallHook::ReturningFromHost)?;
                r.into_raw_slots(values, store)
            }));
            finish_host_call(caller, r)
        }
        fn ptrs<$t: 'static, G, $($a: WasmTy,)* $r: IntoResult>(_: &G) -> (*const u8, *const u8)
        where
            G: Fn(Caller<'_, $t>, $($a),*) -> $r + Send + Sync + 'static,
        {
            (
                native_shim::<$t, G, $($a,)* $r> as *const u8,
                array_shim::<$t, G, $($a,)* $r> as *const u8,
            )
        }
        ptrs::<$t, _, $($a,)* $r>($g)
    }};
}

fn host_func_from<G, P: WasmParams, R: IntoResult>(
    engine: &Engine,
    g: G,
    shims: (*const u8, *const u8),
) -> HostFunc
where
    G: Send + Sync + 'static,
{
    let ty = FuncType::new(P::types(), R::Ok::types());
    HostFunc::new(engine, ty, shims.1, Some(shims.0), Box::new(g))
        .expect("host functions with a native entry need no compilation")
}

tuples! {
    ();
    (A1);
    (A1 A2);
    (A1 A2 A3);
    (A1 A2 A3 A4);
    (A1 A2 A3 A4 A5);
    (A1 A2 A3 A4 A5 A6);
    (A1 A2 A3 A4 A5 A6 A7);
    (A1 A2 A3 A4 A5 A6 A7 A8);
    (A1 A2 A3 A4 A5 A6 A7 A8 A9);
    (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10);
    (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11);
    (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12);
    (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13);
    (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13 A14);
    (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13 A14 A15);
    (A1 A2 A3 A4 A5 A6 A7 A8 A9 A10 A11 A12 A13 A14 A15 A16);
}

/// A host function's return value: results, or a `Result` of them.
pub trait IntoResult: 'static {
    /// The results.
    type Ok: WasmResults;
    /// Converts.
    fn into_result(self) -> Result<Self::Ok>;
}

impl<R: WasmResults + 'static> IntoResult for R {
    type Ok = R;
    fn into_result(self) -> Result<R> {
        Ok(self)
    }
}

impl<R: WasmResults + 'static> IntoResult for Result<R> {
    type Ok = R;
    fn into_result(self) -> Result<R> {
        self
    }
}

/// Closures usable with [`Func::wrap`] and `Linker::func_wrap`.
pub trait IntoFunc<T, Params, Results>: Send + Sync + 'static {
    #[doc(hidden)]
    fn into_host_func(self, engine: &Engine) -> HostFunc;
}

/// A function with a static type, called through its native entry.
pub struct TypedFunc<Params, Results> {
    func: Func,
    /// The function's `native_call` entry and context, read once from
    /// its `VMFuncRef` (they never change).
    native_call: *const u8,
    callee: *mut VMContext,
    _marker: PhantomData<fn(Params) -> Results>,
}

impl<P, R> Clone for TypedFunc<P, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P, R> Copy for TypedFunc<P, R> {}

// SAFETY: a `TypedFunc` is a handle: a store id and raw pointers into that
// store. It never dereferences them on its own: `call` first checks that
// the store it is given is the one the handle came from, and that store
// is borrowed `&mut` for the call. So a handle on another thread can only
// be used with the store, which only one thread can hold at a time.
unsafe impl<P, R> Send for TypedFunc<P, R> {}
// SAFETY: see `Send`: `&TypedFunc` gives no more than a copy of it does.
unsafe impl<P, R> Sync for TypedFunc<P, R> {}

impl<Params: WasmParams, Results: WasmResults> TypedFunc<Params, Results> {
    /// The untyped function.
    pub fn func(&self) -> &Func {
        &self.func
    }

    /// Calls the function.
    ///
    /// Inlined into the caller: the whole host side of the call is a
    /// handful of loads and compares (see the module docs), and a call
    /// frame of its own would cost as much again.
    #[inline]
    pub fn call(&self, mut store: impl AsContextMut, params: Params) -> Result<Results> {
        let s = store.as_context_mut().0;
        self.func.check(s)?;
        let abis = params.into_abis(s)?;
        let (native_call, callee) = (self.native_call, self.callee);
        let caller = s.opaque.host_vmctx();
        // The return area for several results, written by the trampoline;
        // left uninitialised, as most calls return at most one value.
        let mut ret = std::mem::MaybeUninit::<[ValRaw; 16]>::uninit();
        let retptr = ret.as_mut_ptr().cast::<ValRaw>();
        let abi = enter_wasm(s, move || {
            // SAFETY: the type was checked in `Func::typed`; `ret` has a
            // slot per result.
            unsafe { Params::invoke::<Results>(abis, native_call, callee, caller, retptr) }
        })?;
        // SAFETY: the native entry wrote a slot per result when there are
        // several (see `kiln_trampolines::native_to_wasm`).
        Ok(unsafe { Results::from_native(abi, retptr, s) })
    }
}

impl HostFunc {
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }
}

const _: () = assert!(VMOffsets::HOST_FUNC_FUNC_REF == 8);
