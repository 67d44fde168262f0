//! Host functions: a Rust closure behind a `VMFuncRef` that Wasm can call.
//!
//! A closure wrapped with [`Func::wrap`](crate::Func::wrap) gets two
//! monomorphised shims (`wrapped_shims!`), one per calling convention it
//! can be entered by; a [`Func::new`](crate::Func::new) closure gets one
//! array shim and engine-compiled trampolines for the other two (see the
//! module docs of `func.rs` for the whole boundary). Every shim catches
//! the closure's panics and errors and reports them only once its own Rust
//! values are gone, so no Rust frame is ever jumped over.

use super::typed::{WasmParams, WasmResults, WasmTy};
use super::{Caller, Func};
use crate::engine::HostTrampolines;
use crate::error::HostError;
use crate::store::StoreInner;
use crate::{Engine, Error, Result, Val};
use kiln_environ::{FuncType, VMOffsets, VM_HOST_FUNC_MAGIC};
use kiln_runtime::{
    host_call_failed, StoreOpaque, TrapReason, VMContext, VMFuncRef, VMHostFuncContext, ValRaw,
};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

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
/// The [`IntoFunc`] impls for closures with parameters `$a`, with and
/// without a leading [`Caller`].
macro_rules! into_func {
    ($(($($a:ident)*);)*) => {$(
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
}

into_func! {
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
impl HostFunc {
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }
}

const _: () = assert!(VMOffsets::HOST_FUNC_FUNC_REF == 8);
