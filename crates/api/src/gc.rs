//! `externref` in Wasmtime's shape: [`ExternRef`] values handed out as
//! [`Rooted<ExternRef>`], with [`ManuallyRooted`] and [`RootScope`].
//!
//! # Lifetime of references: until the store drops
//!
//! Kiln has no garbage collector yet. An `ExternRef`'s host value is boxed
//! in its store (`StoreOpaque::externrefs`) when it is created and freed
//! when the store is dropped, never earlier: Wasm may have copied the
//! reference anywhere (tables, globals, other instances' locals), and
//! nothing traces those copies. This is what Wasmtime's *null collector*
//! does. The rooting types exist so that Wasmtime code compiles and means
//! the same thing: rooting is always sufficient, so [`RootScope`] and
//! [`ManuallyRooted::unroot`] release nothing, and a reference stays valid
//! (and its value alive) for the whole life of its store. A store that
//! keeps creating references grows without bound; create them per store
//! that lives for one task.
//!
//! # Invariant
//!
//! An `ExternRef` is `(store id, address of the boxed value)`. The box is
//! owned by the store whose id it names and is never moved or freed while
//! that store lives (`externrefs` only grows), so the address is valid for
//! as long as a store with that id exists; every access checks the id
//! against the store it is given first ([`ExternRef::check`]).

use crate::store::StoreInner;
use crate::{AsContext, AsContextMut, Error, Result, StoreContext, StoreContextMut, StoreRef};
use std::any::Any;
use std::ops::Deref;

/// A reference to host data that Wasm can hold but not look into.
#[derive(Copy, Clone, Debug)]
pub struct ExternRef {
    store: u64,
    ptr: usize,
}

impl ExternRef {
    /// Wraps `value` in a new reference owned by `store`. The value lives
    /// until the store is dropped (see the module docs).
    pub fn new<T>(
        mut store: impl AsContextMut<Data = T>,
        value: impl Any + Send + Sync,
    ) -> Result<Rooted<ExternRef>> {
        let s = store.as_context_mut().0;
        let boxed: Box<kiln_runtime::ExternData> = Box::new(Box::new(value));
        let ptr = &*boxed as *const kiln_runtime::ExternData as usize;
        s.opaque.externrefs.push(boxed);
        Ok(Rooted {
            inner: ExternRef { store: s.id, ptr },
        })
    }

    /// Fails unless this reference belongs to `store`.
    ///
    /// Maintains the module invariant for every access below.
    fn check<T>(&self, store: &StoreInner<T>) -> Result<()> {
        if store.id != self.store {
            return Err(Error::msg("object used with the wrong store"));
        }
        Ok(())
    }

    /// The host value. (`None` is for references without host data, which
    /// Wasmtime has for `anyref` conversions; Kiln's always have some.)
    pub fn data<'a, T: 'a>(
        &self,
        store: impl Into<StoreRef<'a, T>>,
    ) -> Result<Option<&'a (dyn Any + Send + Sync)>> {
        let s = store.into().0;
        self.check(s)?;
        // SAFETY: `check` passed, so `ptr` is a boxed value the store owns
        // and keeps in place while it lives, and the store is borrowed for
        // 'a (module invariant). Shared access: no `&mut` to the value can
        // exist while the store is borrowed shared.
        Ok(Some(unsafe {
            &**(self.ptr as *const kiln_runtime::ExternData)
        }))
    }

    /// The host value, mutably.
    pub fn data_mut<'a, T: 'a>(
        &self,
        store: impl Into<StoreContextMut<'a, T>>,
    ) -> Result<Option<&'a mut (dyn Any + Send + Sync)>> {
        let s = store.into().0;
        self.check(s)?;
        // SAFETY: as in `data`; the store is borrowed mutably for 'a, so
        // this is the only access to anything it owns for that long.
        Ok(Some(unsafe {
            &mut **(self.ptr as *mut kiln_runtime::ExternData)
        }))
    }

    /// Whether `a` and `b`, both of `store`, are the same reference.
    fn same(store: impl AsContext, a: &ExternRef, b: &ExternRef) -> Result<bool> {
        let s = store.as_context().0;
        a.check(s)?;
        b.check(s)?;
        Ok(a.ptr == b.ptr)
    }

    /// The raw pointer Wasm holds for this reference.
    pub(crate) fn to_raw<T>(self, store: &StoreInner<T>) -> Result<usize> {
        self.check(store)?;
        Ok(self.ptr)
    }

    /// The reference for a non-null raw pointer from Wasm in `store`.
    pub(crate) fn from_raw<T>(store: &StoreInner<T>, ptr: usize) -> Rooted<ExternRef> {
        Rooted {
            inner: ExternRef {
                store: store.id,
                ptr,
            },
        }
    }
}

/// A reference that stays valid while it is rooted: in Kiln, for the life
/// of its store (see the module docs). Dereferences to the reference.
#[derive(Copy, Clone, Debug)]
pub struct Rooted<T> {
    inner: T,
}

impl<T> Deref for Rooted<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl Rooted<ExternRef> {
    /// Whether `a` and `b` are the same reference.
    pub fn ref_eq(
        store: impl AsContext,
        a: &Rooted<ExternRef>,
        b: &Rooted<ExternRef>,
    ) -> Result<bool> {
        ExternRef::same(store, a, b)
    }

    /// A root that outlives any [`RootScope`] until unrooted.
    pub fn to_manually_rooted(
        &self,
        store: impl AsContextMut,
    ) -> Result<ManuallyRooted<ExternRef>> {
        let mut store = store;
        self.check(store.as_context_mut().0)?;
        Ok(ManuallyRooted { inner: self.inner })
    }
}

/// A root the embedder releases explicitly with [`ManuallyRooted::unroot`].
/// In Kiln, rooting and unrooting do not change how long the reference
/// lives (the life of its store; see the module docs).
#[derive(Debug)]
pub struct ManuallyRooted<T> {
    inner: T,
}

impl<T> Deref for ManuallyRooted<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl ManuallyRooted<ExternRef> {
    /// Another root of the same reference.
    pub fn clone(&self, store: impl AsContextMut) -> ManuallyRooted<ExternRef> {
        let _ = store;
        ManuallyRooted { inner: self.inner }
    }

    /// The reference as a [`Rooted`].
    pub fn to_rooted(&self, store: impl AsContextMut) -> Rooted<ExternRef> {
        let _ = store;
        Rooted { inner: self.inner }
    }

    /// Releases this root.
    pub fn unroot(self, store: impl AsContextMut) {
        let _ = store;
    }

    /// Whether `a` and `b` are the same reference.
    pub fn ref_eq(
        store: impl AsContext,
        a: &ManuallyRooted<ExternRef>,
        b: &ManuallyRooted<ExternRef>,
    ) -> Result<bool> {
        ExternRef::same(store, a, b)
    }
}

/// A scope for [`Rooted`] references made through it: in Wasmtime, they
/// are unrooted when it drops. In Kiln references live as long as their
/// store (see the module docs), so the scope only passes the store
/// through.
pub struct RootScope<C: AsContextMut> {
    store: C,
}

impl<C: AsContextMut> RootScope<C> {
    /// A scope over `store`.
    pub fn new(store: C) -> RootScope<C> {
        RootScope { store }
    }

    /// Makes room for `additional` roots (nothing to do in Kiln).
    pub fn reserve(&mut self, additional: usize) {
        let _ = additional;
    }
}

impl<C: AsContextMut> AsContext for RootScope<C> {
    type Data = C::Data;
    fn as_context(&self) -> StoreContext<'_, C::Data> {
        self.store.as_context()
    }
}

impl<C: AsContextMut> AsContextMut for RootScope<C> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, C::Data> {
        self.store.as_context_mut()
    }
}

/// The error of an allocation that found the GC heap full, carrying what
/// was to be stored (Wasmtime's shape; `T` is `()` for objects other than
/// `externref`s).
///
/// Kiln's references are boxed in their store and never run out of a heap
/// of fixed capacity, so Kiln itself never returns this error; the type is
/// here so that Wasmtime code that handles it, or passes it to
/// [`Store::gc`](crate::Store::gc), compiles and means the same.
pub struct GcHeapOutOfMemory<T> {
    inner: T,
    bytes_needed: u64,
}

impl<T> GcHeapOutOfMemory<T> {
    /// The value that could not be allocated.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// Takes back the value that could not be allocated.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> std::fmt::Display for GcHeapOutOfMemory<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GC heap out of memory: no capacity for allocation of {} bytes",
            self.bytes_needed
        )
    }
}

impl<T> std::fmt::Debug for GcHeapOutOfMemory<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl<T> std::error::Error for GcHeapOutOfMemory<T> {}

impl<T> crate::Store<T> {
    /// Performs a garbage collection (Wasmtime's `Store::gc`).
    ///
    /// Kiln has no collector yet (see the module docs): every reference
    /// lives until its store drops, so there is nothing to free and this
    /// returns at once, whatever `why` says. It never fails.
    pub fn gc(&mut self, why: Option<&GcHeapOutOfMemory<()>>) -> Result<()> {
        self.as_context_mut().gc(why)
    }
}

impl<T> StoreContextMut<'_, T> {
    /// Performs a garbage collection: see [`Store::gc`](crate::Store::gc).
    pub fn gc(&mut self, why: Option<&GcHeapOutOfMemory<()>>) -> Result<()> {
        let _ = why;
        Ok(())
    }
}
