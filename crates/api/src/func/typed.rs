//! The static side of typed calls: [`WasmTy`] (a Rust type for one Wasm
//! value type), [`WasmParams`] and [`WasmResults`] (tuples of them, and
//! how each travels in the native calling convention), and [`TypedFunc`],
//! which calls a function's `native_call` entry with them.
//!
//! The traits are `unsafe`: the native entry is called through a
//! transmuted function pointer whose signature follows from these types,
//! so each impl promises that its `Abi` is passed exactly as Cranelift
//! passes the Wasm type (see `kiln_trampolines::native_to_wasm`).

use super::{enter_wasm, Func};
use crate::store::StoreInner;
use crate::{AsContextMut, Result, Val};
use kiln_environ::ValType;
use kiln_runtime::{VMContext, VMFuncRef, ValRaw};
use std::marker::PhantomData;

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

/// A function with a static type, called through its native entry.
pub struct TypedFunc<Params, Results> {
    pub(super) func: Func,
    /// The function's `native_call` entry and context, read once from
    /// its `VMFuncRef` (they never change).
    pub(super) native_call: *const u8,
    pub(super) callee: *mut VMContext,
    pub(super) _marker: PhantomData<fn(Params) -> Results>,
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
