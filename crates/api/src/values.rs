//! [`Val`] and references.

use crate::store::StoreInner;
use crate::ValType;
use crate::{AsContext, ExternRef, Func, Result, Rooted, V128};
use kiln_environ::ValType as WasmType;
use kiln_runtime::ValRaw;

/// A WebAssembly value.
#[derive(Clone, Debug)]
pub enum Val {
    /// An i32.
    I32(i32),
    /// An i64.
    I64(i64),
    /// An f32, as its bits.
    F32(u32),
    /// An f64, as its bits.
    F64(u64),
    /// A v128.
    V128(V128),
    /// A function reference (`None` is null).
    FuncRef(Option<Func>),
    /// An external reference (`None` is null).
    ExternRef(Option<Rooted<ExternRef>>),
}

impl Val {
    /// The value's type. (`store` is there for Wasmtime's signature, where
    /// a reference's type can depend on the store; Kiln's never fails.)
    pub fn ty(&self, store: impl AsContext) -> Result<ValType> {
        let _ = store;
        Ok(ValType::from_wasm(self.wasm_ty()))
    }

    /// Whether this value is of type `ty`.
    pub fn matches_ty(&self, store: impl AsContext, ty: &ValType) -> Result<bool> {
        let _ = store;
        Ok(self.wasm_ty() == ty.to_wasm())
    }

    /// The value's type as the runtime sees it.
    pub(crate) fn wasm_ty(&self) -> WasmType {
        match self {
            Val::I32(_) => WasmType::I32,
            Val::I64(_) => WasmType::I64,
            Val::F32(_) => WasmType::F32,
            Val::F64(_) => WasmType::F64,
            Val::V128(_) => WasmType::V128,
            Val::FuncRef(_) => WasmType::FuncRef,
            Val::ExternRef(_) => WasmType::ExternRef,
        }
    }

    /// The zero (or null) value of `ty`; `None` for a type without a
    /// default (a non-nullable reference, which Kiln's types cannot name
    /// yet, so never).
    pub fn default_for_ty(ty: &ValType) -> Option<Val> {
        Some(Val::default_for(ty.to_wasm()))
    }

    /// The zero (or null) value of a runtime type.
    pub(crate) fn default_for(ty: WasmType) -> Val {
        match ty {
            WasmType::I32 => Val::I32(0),
            WasmType::I64 => Val::I64(0),
            WasmType::F32 => Val::F32(0),
            WasmType::F64 => Val::F64(0),
            WasmType::V128 => Val::V128(V128::default()),
            WasmType::FuncRef => Val::FuncRef(None),
            WasmType::ExternRef => Val::ExternRef(None),
        }
    }

    /// The i32, if this is one.
    pub fn i32(&self) -> Option<i32> {
        match self {
            Val::I32(v) => Some(*v),
            _ => None,
        }
    }

    /// The i64, if this is one.
    pub fn i64(&self) -> Option<i64> {
        match self {
            Val::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// The f32, if this is one.
    pub fn f32(&self) -> Option<f32> {
        match self {
            Val::F32(v) => Some(f32::from_bits(*v)),
            _ => None,
        }
    }

    /// The f64, if this is one.
    pub fn f64(&self) -> Option<f64> {
        match self {
            Val::F64(v) => Some(f64::from_bits(*v)),
            _ => None,
        }
    }

    /// The v128, if this is one.
    pub fn v128(&self) -> Option<V128> {
        match self {
            Val::V128(v) => Some(*v),
            _ => None,
        }
    }

    /// The function reference (`Some(None)` for null), if this is one.
    pub fn funcref(&self) -> Option<Option<&Func>> {
        match self {
            Val::FuncRef(f) => Some(f.as_ref()),
            _ => None,
        }
    }

    /// The external reference (`Some(None)` for null), if this is one.
    pub fn externref(&self) -> Option<Option<&Rooted<ExternRef>>> {
        match self {
            Val::ExternRef(e) => Some(e.as_ref()),
            _ => None,
        }
    }

    /// A null `funcref`.
    pub const fn null_func_ref() -> Val {
        Val::FuncRef(None)
    }

    /// A null `externref`.
    pub const fn null_extern_ref() -> Val {
        Val::ExternRef(None)
    }

    /// The i32.
    ///
    /// # Panics
    ///
    /// If this is not an i32.
    pub fn unwrap_i32(&self) -> i32 {
        self.i32().unwrap_or_else(|| self.wrong("i32"))
    }

    /// The i64.
    ///
    /// # Panics
    ///
    /// If this is not an i64.
    pub fn unwrap_i64(&self) -> i64 {
        self.i64().unwrap_or_else(|| self.wrong("i64"))
    }

    /// The f32.
    ///
    /// # Panics
    ///
    /// If this is not an f32.
    pub fn unwrap_f32(&self) -> f32 {
        self.f32().unwrap_or_else(|| self.wrong("f32"))
    }

    /// The f64.
    ///
    /// # Panics
    ///
    /// If this is not an f64.
    pub fn unwrap_f64(&self) -> f64 {
        self.f64().unwrap_or_else(|| self.wrong("f64"))
    }

    /// The v128.
    ///
    /// # Panics
    ///
    /// If this is not a v128.
    pub fn unwrap_v128(&self) -> V128 {
        self.v128().unwrap_or_else(|| self.wrong("v128"))
    }

    /// The function reference (`None` for null).
    ///
    /// # Panics
    ///
    /// If this is not a `funcref`.
    pub fn unwrap_funcref(&self) -> Option<&Func> {
        self.funcref().unwrap_or_else(|| self.wrong("funcref"))
    }

    /// The external reference (`None` for null).
    ///
    /// # Panics
    ///
    /// If this is not an `externref`.
    pub fn unwrap_externref(&self) -> Option<&Rooted<ExternRef>> {
        self.externref().unwrap_or_else(|| self.wrong("externref"))
    }

    #[cold]
    fn wrong(&self, expected: &str) -> ! {
        panic!("expected {expected}, found {}", self.wasm_ty())
    }

    pub(crate) fn to_raw<T>(&self, store: &mut StoreInner<T>) -> Result<ValRaw> {
        Ok(match self {
            Val::I32(v) => ValRaw::i32(*v),
            Val::I64(v) => ValRaw::i64(*v),
            Val::F32(v) => ValRaw::f32(*v),
            Val::F64(v) => ValRaw::f64(*v),
            Val::V128(v) => ValRaw::u128(v.as_u128()),
            Val::FuncRef(None) | Val::ExternRef(None) => ValRaw::ptr(0),
            Val::FuncRef(Some(f)) => ValRaw::ptr(f.to_raw(store)? as usize),
            Val::ExternRef(Some(e)) => ValRaw::ptr(e.to_raw(store)?),
        })
    }

    pub(crate) fn from_raw<T>(store: &mut StoreInner<T>, raw: ValRaw, ty: WasmType) -> Val {
        match ty {
            WasmType::I32 => Val::I32(raw.get_i32()),
            WasmType::I64 => Val::I64(raw.get_i64()),
            WasmType::F32 => Val::F32(raw.get_f32()),
            WasmType::F64 => Val::F64(raw.get_f64()),
            WasmType::V128 => Val::V128(V128::from(raw.get_u128())),
            WasmType::FuncRef => match raw.get_ptr() {
                0 => Val::FuncRef(None),
                p => Val::FuncRef(Some(store.func_from_raw(p as *const _))),
            },
            WasmType::ExternRef => match raw.get_ptr() {
                0 => Val::ExternRef(None),
                p => Val::ExternRef(Some(ExternRef::from_raw(store, p))),
            },
        }
    }
}

impl From<i32> for Val {
    fn from(v: i32) -> Val {
        Val::I32(v)
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I64(v)
    }
}
impl From<f32> for Val {
    fn from(v: f32) -> Val {
        Val::F32(v.to_bits())
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Val {
        Val::F64(v.to_bits())
    }
}
impl From<V128> for Val {
    fn from(v: V128) -> Val {
        Val::V128(v)
    }
}
impl From<Func> for Val {
    fn from(f: Func) -> Val {
        Val::FuncRef(Some(f))
    }
}
impl From<Option<Func>> for Val {
    fn from(f: Option<Func>) -> Val {
        Val::FuncRef(f)
    }
}
impl From<Rooted<ExternRef>> for Val {
    fn from(e: Rooted<ExternRef>) -> Val {
        Val::ExternRef(Some(e))
    }
}
impl From<Option<Rooted<ExternRef>>> for Val {
    fn from(e: Option<Rooted<ExternRef>>) -> Val {
        Val::ExternRef(e)
    }
}

/// A shared borrow of a store, accepted where only reading is needed.
pub struct StoreRef<'a, T>(pub(crate) &'a StoreInner<T>);

impl<'a, T> From<&'a crate::Store<T>> for StoreRef<'a, T> {
    fn from(s: &'a crate::Store<T>) -> Self {
        StoreRef(s.as_context().0)
    }
}
impl<'a, T> From<&'a mut crate::Store<T>> for StoreRef<'a, T> {
    fn from(s: &'a mut crate::Store<T>) -> Self {
        let s: &'a crate::Store<T> = s;
        StoreRef(s.as_context().0)
    }
}
impl<'a, T> From<&'a crate::Caller<'_, T>> for StoreRef<'a, T> {
    fn from(c: &'a crate::Caller<'_, T>) -> Self {
        StoreRef(c.as_context().0)
    }
}
impl<'a, T> From<&'a mut crate::Caller<'_, T>> for StoreRef<'a, T> {
    fn from(c: &'a mut crate::Caller<'_, T>) -> Self {
        let c: &'a crate::Caller<'_, T> = c;
        StoreRef(c.as_context().0)
    }
}
impl<'a, T> From<&'a crate::StoreContextMut<'_, T>> for StoreRef<'a, T> {
    fn from(c: &'a crate::StoreContextMut<'_, T>) -> Self {
        StoreRef(c.0)
    }
}
impl<'a, T> From<&'a mut crate::StoreContextMut<'_, T>> for StoreRef<'a, T> {
    fn from(c: &'a mut crate::StoreContextMut<'_, T>) -> Self {
        StoreRef(c.0)
    }
}
impl<'a, T> From<crate::StoreContext<'a, T>> for StoreRef<'a, T> {
    fn from(c: crate::StoreContext<'a, T>) -> Self {
        StoreRef(c.0)
    }
}
