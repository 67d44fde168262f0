//! [`Memory`], [`Table`], [`Global`] and [`Extern`].

use crate::limits::from_box;
use crate::store::StoreInner;
use crate::{AsContext, AsContextMut, Error, Func, Result, Val};
use crate::{GlobalType, MemoryType, TableType};
use kiln_environ::ValType as WasmType;
use kiln_runtime::{LinearMemory, MemoryError, Table as RtTable, TableError, VMGlobalDefinition};

/// Anything an instance can import or export.
#[derive(Clone, Debug)]
pub enum Extern {
    /// A function.
    Func(Func),
    /// A table.
    Table(Table),
    /// A memory.
    Memory(Memory),
    /// A global.
    Global(Global),
}

impl Extern {
    /// The function, if this is one.
    pub fn into_func(self) -> Option<Func> {
        match self {
            Extern::Func(f) => Some(f),
            _ => None,
        }
    }
    /// The memory, if this is one.
    pub fn into_memory(self) -> Option<Memory> {
        match self {
            Extern::Memory(m) => Some(m),
            _ => None,
        }
    }
    /// The table, if this is one.
    pub fn into_table(self) -> Option<Table> {
        match self {
            Extern::Table(t) => Some(t),
            _ => None,
        }
    }
    /// The global, if this is one.
    pub fn into_global(self) -> Option<Global> {
        match self {
            Extern::Global(g) => Some(g),
            _ => None,
        }
    }
    /// The type of this item.
    pub fn ty(&self, store: impl AsContext) -> crate::ExternType {
        match self {
            Extern::Func(f) => crate::ExternType::Func(f.ty(&store)),
            Extern::Table(t) => crate::ExternType::Table(t.ty(&store)),
            Extern::Memory(m) => crate::ExternType::Memory(m.ty(&store)),
            Extern::Global(g) => crate::ExternType::Global(g.ty(&store)),
        }
    }
}

impl From<Func> for Extern {
    fn from(f: Func) -> Extern {
        Extern::Func(f)
    }
}
impl From<Memory> for Extern {
    fn from(m: Memory) -> Extern {
        Extern::Memory(m)
    }
}
impl From<Table> for Extern {
    fn from(t: Table) -> Extern {
        Extern::Table(t)
    }
}
impl From<Global> for Extern {
    fn from(g: Global) -> Extern {
        Extern::Global(g)
    }
}

/// A linear memory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Memory {
    pub(crate) store: u64,
    pub(crate) ptr: usize,
}

impl Memory {
    /// A new memory of type `ty` owned by the host.
    pub fn new(mut store: impl AsContextMut, ty: MemoryType) -> Result<Memory> {
        let s = store.as_context_mut().0;
        let (opaque, mut limiter) = s.opaque_and_limiter();
        let lim = limiter
            .as_mut()
            .map(|l| l as &mut dyn kiln_runtime::Limiter);
        let m = LinearMemory::new(ty, &opaque.tunables, lim).map_err(|e| match e {
            MemoryError::Limiter(e) => from_box(e),
            e => Error::msg(e.to_string()),
        })?;
        s.opaque.memories.push(Box::new(m));
        let ptr =
            &mut **s.opaque.memories.last_mut().expect("pushed") as *mut LinearMemory as usize;
        Ok(Memory { store: s.id, ptr })
    }

    fn get<'a, T>(&self, s: &'a StoreInner<T>) -> &'a LinearMemory {
        assert_eq!(self.store, s.id, "memory used with the wrong store");
        // SAFETY: memories are boxed in their store and live as long as it;
        // the store is borrowed for 'a.
        unsafe { &*(self.ptr as *const LinearMemory) }
    }

    fn get_mut<'a, T>(&self, s: &'a mut StoreInner<T>) -> &'a mut LinearMemory {
        assert_eq!(self.store, s.id, "memory used with the wrong store");
        // SAFETY: as in `get`; the store is borrowed mutably for 'a, and
        // everything reachable from it is owned by it.
        unsafe { &mut *(self.ptr as *mut LinearMemory) }
    }

    /// The memory's type, with its current size as minimum.
    pub fn ty(&self, store: impl AsContext) -> MemoryType {
        self.get(store.as_context().0).ty()
    }

    /// The memory's contents.
    pub fn data<'a, T: 'a>(&self, store: impl Into<crate::StoreRef<'a, T>>) -> &'a [u8] {
        self.get(store.into().0).data()
    }

    /// The memory's contents, mutably.
    pub fn data_mut<'a, T: 'a>(
        &self,
        store: impl Into<crate::StoreContextMut<'a, T>>,
    ) -> &'a mut [u8] {
        self.get_mut(store.into().0).data_mut()
    }

    /// The memory's contents and the store's data, borrowed together: what
    /// a host function needs to move bytes between guest memory and its
    /// own state (a file table, say) without copying through a buffer.
    pub fn data_and_store_mut<'a, T: 'a>(
        &self,
        store: impl Into<crate::StoreContextMut<'a, T>>,
    ) -> (&'a mut [u8], &'a mut T) {
        let s = store.into().0;
        assert_eq!(self.store, s.id, "memory used with the wrong store");
        // SAFETY: as in `get_mut`: the memory is owned by the store, which
        // is borrowed mutably for 'a. The memory is a separate allocation
        // (boxed in the store or in an instance), never part of the
        // embedder's `data`, so the two borrows returned do not overlap.
        let m = unsafe { &mut *(self.ptr as *mut LinearMemory) };
        (m.data_mut(), &mut s.data)
    }

    /// Current size in pages.
    pub fn size(&self, store: impl AsContext) -> u64 {
        self.get(store.as_context().0).pages()
    }

    /// Current size in bytes.
    pub fn data_size(&self, store: impl AsContext) -> usize {
        self.get(store.as_context().0).byte_size()
    }

    /// Grows by `delta` pages, returning the old size in pages.
    ///
    /// The store's [`ResourceLimiter`](crate::ResourceLimiter) is asked
    /// first; a denied or failed growth is an error.
    pub fn grow(&self, mut store: impl AsContextMut, delta: u64) -> Result<u64> {
        let s = store.as_context_mut().0;
        assert_eq!(self.store, s.id, "memory used with the wrong store");
        let (_, mut limiter) = s.opaque_and_limiter();
        // SAFETY: as in `get_mut`; the memory lives in its own box, apart
        // from the embedder's data and the limiter borrowed alongside.
        let m = unsafe { &mut *(self.ptr as *mut LinearMemory) };
        m.grow_limited(
            delta,
            limiter
                .as_mut()
                .map(|l| l as &mut dyn kiln_runtime::Limiter),
        )
        .map_err(from_box)?
        .ok_or_else(|| Error::msg(format!("failed to grow memory by {delta} pages")))
    }

    /// Reads `buf.len()` bytes at `offset`.
    pub fn read(&self, store: impl AsContext, offset: usize, buf: &mut [u8]) -> Result<()> {
        let m = self.get(store.as_context().0);
        let src = offset
            .checked_add(buf.len())
            .and_then(|end| m.data().get(offset..end))
            .ok_or_else(|| Error::msg("out of bounds memory read"))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    /// Writes `buf` at `offset`.
    pub fn write(&self, mut store: impl AsContextMut, offset: usize, buf: &[u8]) -> Result<()> {
        let m = self.get_mut(store.as_context_mut().0);
        let dst = offset
            .checked_add(buf.len())
            .and_then(|end| m.data_mut().get_mut(offset..end))
            .ok_or_else(|| Error::msg("out of bounds memory write"))?;
        dst.copy_from_slice(buf);
        Ok(())
    }
}

/// A table of references.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub(crate) store: u64,
    pub(crate) ptr: usize,
}

impl Table {
    /// A new table of type `ty` filled with `init`.
    pub fn new(mut store: impl AsContextMut, ty: TableType, init: Val) -> Result<Table> {
        let s = store.as_context_mut().0;
        let ty = ty.inner;
        let raw = ref_to_raw(s, &init, ty.element)?;
        let (_, mut limiter) = s.opaque_and_limiter();
        let lim = limiter
            .as_mut()
            .map(|l| l as &mut dyn kiln_runtime::Limiter);
        let t = RtTable::new(ty, raw, lim).map_err(|e| match e {
            TableError::Limiter(e) => from_box(e),
            e => Error::msg(e.to_string()),
        })?;
        s.opaque.tables.push(Box::new(t));
        let ptr = &mut **s.opaque.tables.last_mut().expect("pushed") as *mut RtTable as usize;
        Ok(Table { store: s.id, ptr })
    }

    fn get_rt<'a, T>(&self, s: &'a StoreInner<T>) -> &'a RtTable {
        assert_eq!(self.store, s.id, "table used with the wrong store");
        // SAFETY: tables are boxed in their store and live as long as it.
        unsafe { &*(self.ptr as *const RtTable) }
    }

    fn get_rt_mut<'a, T>(&self, s: &'a mut StoreInner<T>) -> &'a mut RtTable {
        assert_eq!(self.store, s.id, "table used with the wrong store");
        // SAFETY: as in `get_rt`, with the store borrowed mutably.
        unsafe { &mut *(self.ptr as *mut RtTable) }
    }

    /// The table's type, with its current size as minimum.
    pub fn ty(&self, store: impl AsContext) -> TableType {
        TableType::from_wasm(self.get_rt(store.as_context().0).ty())
    }

    /// Current size.
    pub fn size(&self, store: impl AsContext) -> u32 {
        self.get_rt(store.as_context().0).size()
    }

    /// Element `i`, or `None` if out of bounds.
    pub fn get(&self, mut store: impl AsContextMut, i: u32) -> Option<Val> {
        let s = store.as_context_mut().0;
        let t = self.get_rt(s);
        let raw = t.get(i)?;
        let ty = t.declared_ty().element;
        Some(Val::from_raw(s, kiln_runtime::ValRaw::ptr(raw), ty))
    }

    /// Sets element `i`.
    pub fn set(&self, mut store: impl AsContextMut, i: u32, v: Val) -> Result<()> {
        let s = store.as_context_mut().0;
        let ty = self.get_rt(s).declared_ty().element;
        let raw = ref_to_raw(s, &v, ty)?;
        self.get_rt_mut(s)
            .set(i, raw)
            .ok_or_else(|| Error::msg(format!("table index {i} out of bounds")))
    }

    /// Grows by `delta` elements of `init`, returning the old size.
    ///
    /// The store's [`ResourceLimiter`](crate::ResourceLimiter) is asked
    /// first; a denied or failed growth is an error.
    pub fn grow(&self, mut store: impl AsContextMut, delta: u32, init: Val) -> Result<u32> {
        let s = store.as_context_mut().0;
        let ty = self.get_rt(s).declared_ty().element;
        let raw = ref_to_raw(s, &init, ty)?;
        assert_eq!(self.store, s.id, "table used with the wrong store");
        let (_, mut limiter) = s.opaque_and_limiter();
        // SAFETY: as in `get_rt_mut`; the table lives in its own box, apart
        // from the embedder's data and the limiter borrowed alongside.
        let t = unsafe { &mut *(self.ptr as *mut RtTable) };
        t.grow_limited(
            delta,
            raw,
            limiter
                .as_mut()
                .map(|l| l as &mut dyn kiln_runtime::Limiter),
        )
        .map_err(from_box)?
        .ok_or_else(|| Error::msg(format!("failed to grow table by {delta}")))
    }
}

fn ref_to_raw<T>(s: &mut StoreInner<T>, v: &Val, ty: WasmType) -> Result<usize> {
    if v.wasm_ty() != ty {
        return Err(Error::msg(format!("table of {ty} given a {}", v.wasm_ty())));
    }
    Ok(v.to_raw(s)?.get_ptr())
}

/// A global variable.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Global {
    pub(crate) store: u64,
    pub(crate) def: usize,
    pub(crate) ty: kiln_environ::GlobalType,
}

impl Global {
    /// A new global of type `ty` holding `val`.
    pub fn new(mut store: impl AsContextMut, ty: GlobalType, val: Val) -> Result<Global> {
        let s = store.as_context_mut().0;
        let ty = ty.inner;
        if val.wasm_ty() != ty.ty {
            return Err(Error::msg(format!(
                "global of {} given a {}",
                ty.ty,
                val.wasm_ty()
            )));
        }
        let raw = val.to_raw(s)?;
        let def = Box::new(VMGlobalDefinition::default());
        def.set(raw);
        s.opaque.globals.push(def);
        let p = &**s.opaque.globals.last().expect("pushed") as *const VMGlobalDefinition as usize;
        Ok(Global {
            store: s.id,
            def: p,
            ty,
        })
    }

    /// The global's type.
    pub fn ty(&self, _store: impl AsContext) -> GlobalType {
        GlobalType::from_wasm(self.ty)
    }

    fn def(&self) -> &VMGlobalDefinition {
        // SAFETY: global definitions live in their store (boxed or inside an
        // instance context) as long as the store.
        unsafe { &*(self.def as *const VMGlobalDefinition) }
    }

    /// The current value.
    pub fn get(&self, mut store: impl AsContextMut) -> Val {
        let s = store.as_context_mut().0;
        assert_eq!(self.store, s.id, "global used with the wrong store");
        Val::from_raw(s, self.def().get(), self.ty.ty)
    }

    /// Sets the value of a mutable global.
    pub fn set(&self, mut store: impl AsContextMut, val: Val) -> Result<()> {
        let s = store.as_context_mut().0;
        if self.store != s.id {
            return Err(Error::msg("object used with the wrong store"));
        }
        if !self.ty.mutable {
            return Err(Error::msg("global is immutable"));
        }
        if val.wasm_ty() != self.ty.ty {
            return Err(Error::msg(format!(
                "global of {} given a {}",
                self.ty.ty,
                val.wasm_ty()
            )));
        }
        let raw = val.to_raw(s)?;
        self.def().set(raw);
        Ok(())
    }
}
