//! [`Ref`]: a reference value, what tables hold (Wasmtime's shape).
//!
//! A [`Val`] is any Wasm value; a `Ref` is one of its reference kinds,
//! each variant carrying its own nullability, so that a null reference
//! still says which type hierarchy it belongs to. Tables take and give
//! `Ref`s; `Val::FuncRef(f)` and `Ref::Func(f)` convert both ways.

use crate::{AsContext, ExternRef, Func, HeapType, RefType, Result, Rooted, Val};

/// A reference: to a function, or to host data, possibly null.
#[derive(Clone, Debug)]
pub enum Ref {
    /// A function reference (`None` is null).
    Func(Option<Func>),
    /// An external reference (`None` is null).
    Extern(Option<Rooted<ExternRef>>),
}

impl Ref {
    /// The null reference of `heap_type`.
    pub fn null(heap_type: &HeapType) -> Ref {
        match heap_type {
            HeapType::Func => Ref::Func(None),
            HeapType::Extern => Ref::Extern(None),
        }
    }

    /// Whether this is a null reference.
    pub fn is_null(&self) -> bool {
        matches!(self, Ref::Func(None) | Ref::Extern(None))
    }

    /// Whether this is a non-null reference.
    pub fn is_non_null(&self) -> bool {
        !self.is_null()
    }

    /// Whether this is an `externref` (null or not).
    pub fn is_extern(&self) -> bool {
        matches!(self, Ref::Extern(_))
    }

    /// The external reference (`Some(None)` for null), if this is one.
    pub fn as_extern(&self) -> Option<Option<&Rooted<ExternRef>>> {
        match self {
            Ref::Extern(e) => Some(e.as_ref()),
            Ref::Func(_) => None,
        }
    }

    /// The external reference (`None` for null).
    ///
    /// # Panics
    ///
    /// If this is not an `externref`.
    pub fn unwrap_extern(&self) -> Option<&Rooted<ExternRef>> {
        self.as_extern()
            .expect("Ref::unwrap_extern on a non-extern reference")
    }

    /// Whether this is a `funcref` (null or not).
    pub fn is_func(&self) -> bool {
        matches!(self, Ref::Func(_))
    }

    /// The function reference (`Some(None)` for null), if this is one.
    pub fn as_func(&self) -> Option<Option<&Func>> {
        match self {
            Ref::Func(f) => Some(f.as_ref()),
            Ref::Extern(_) => None,
        }
    }

    /// The function reference (`None` for null).
    ///
    /// # Panics
    ///
    /// If this is not a `funcref`.
    pub fn unwrap_func(&self) -> Option<&Func> {
        self.as_func()
            .expect("Ref::unwrap_func on a non-func reference")
    }

    /// The reference's type. (Kiln's reference types are all nullable
    /// and abstract, so this never fails.)
    pub fn ty(&self, store: impl AsContext) -> Result<RefType> {
        let _ = store;
        Ok(match self {
            Ref::Func(_) => RefType::FUNCREF,
            Ref::Extern(_) => RefType::EXTERNREF,
        })
    }

    /// Whether this reference is of type `ty`.
    pub fn matches_ty(&self, store: impl AsContext, ty: &RefType) -> Result<bool> {
        Ok(self.ty(store)?.matches(ty))
    }
}

impl From<Func> for Ref {
    fn from(f: Func) -> Ref {
        Ref::Func(Some(f))
    }
}

impl From<Option<Func>> for Ref {
    fn from(f: Option<Func>) -> Ref {
        Ref::Func(f)
    }
}

impl From<Rooted<ExternRef>> for Ref {
    fn from(e: Rooted<ExternRef>) -> Ref {
        Ref::Extern(Some(e))
    }
}

impl From<Option<Rooted<ExternRef>>> for Ref {
    fn from(e: Option<Rooted<ExternRef>>) -> Ref {
        Ref::Extern(e)
    }
}

impl From<Ref> for Val {
    fn from(r: Ref) -> Val {
        match r {
            Ref::Func(f) => Val::FuncRef(f),
            Ref::Extern(e) => Val::ExternRef(e),
        }
    }
}

impl Val {
    /// The reference, if this value is one.
    pub fn ref_(self) -> Option<Ref> {
        match self {
            Val::FuncRef(f) => Some(Ref::Func(f)),
            Val::ExternRef(e) => Some(Ref::Extern(e)),
            _ => None,
        }
    }
}
