//! Tables: growable arrays of references (`*const VMFuncRef` for funcref,
//! an externref pointer for externref; 0 is null).
//!
//! A table's elements live in a vector of its own, or in a slot of the
//! pooling allocator (see `pool.rs`) that holds up to `table_elements`
//! and never moves.
//!
//! **Invariant:** `def.base` and `def.current_elements` always describe
//! the elements; every method that can reallocate or resize updates them,
//! because generated code reads the definition, not the storage.

use crate::limits::{BoxError, GrowFailure, Limiter};
use crate::pool::{Pool, PoolError, Slot};
use crate::vmcontext::VMTableDefinition;
use kiln_environ::TableType;

/// A table.
pub struct Table {
    storage: Storage,
    def: Box<VMTableDefinition>,
    ty: TableType,
}

enum Storage {
    Heap(Vec<usize>),
    /// `len` elements in use at `base`, a pool slot of `capacity`.
    Pooled {
        slot: Slot,
        base: *mut usize,
        len: usize,
        capacity: usize,
    },
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Storage::Pooled { slot, len, .. } = &self.storage {
            // The pool zeroes the elements in use (see `pool.rs`).
            slot.pool.put_table(slot.index, *len);
        }
    }
}

// SAFETY: the elements are raw references (funcrefs, externrefs) to data
// the same store owns; the table moves between threads only with its
// store, and is accessed only through it. Not `Sync`: generated code
// writes elements without synchronization.
unsafe impl Send for Table {}

/// An error creating a table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The minimum exceeds what Kiln supports.
    #[error("table of {0} elements is too large")]
    TooLarge(u32),
    /// The store's limiter refused the table's minimum size.
    #[error("table minimum size of {0} elements exceeds table limits")]
    Denied(u32),
    /// The store's limiter failed.
    #[error("{0}")]
    Limiter(BoxError),
    /// The pooling allocator could not serve the table.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Tables larger than this many elements are refused.
pub const MAX_TABLE_ELEMENTS: u32 = 10_000_000;

impl Table {
    /// A table of type `ty` filled with `init`, once `limiter` (if any)
    /// allowed its minimum size.
    pub fn new(
        ty: TableType,
        init: usize,
        limiter: Option<&mut dyn Limiter>,
    ) -> Result<Table, TableError> {
        Table::allocate(ty, init, limiter, None)
    }

    /// As [`Table::new`], in a slot of `pool` when one is given: the table
    /// may then grow to the pool's `table_elements` at most, and its slot
    /// goes back to the pool, zeroed, when it drops.
    pub fn allocate(
        ty: TableType,
        init: usize,
        limiter: Option<&mut dyn Limiter>,
        pool: Option<&std::sync::Arc<Pool>>,
    ) -> Result<Table, TableError> {
        if ty.minimum > MAX_TABLE_ELEMENTS {
            return Err(TableError::TooLarge(ty.minimum));
        }
        let pool_max = pool.map(|p| p.table_elements());
        if let Some(l) = limiter {
            let max = match (ty.maximum.map(|m| m as usize), pool_max) {
                (Some(d), Some(p)) => Some(d.min(p)),
                (d, p) => d.or(p),
            };
            if !l
                .table_growing(0, ty.minimum as usize, max)
                .map_err(TableError::Limiter)?
            {
                return Err(TableError::Denied(ty.minimum));
            }
        }
        let storage = match pool {
            None => Storage::Heap(vec![init; ty.minimum as usize]),
            Some(pool) => {
                let capacity = pool.table_elements();
                let len = ty.minimum as usize;
                if len > capacity {
                    return Err(PoolError::TableSize(ty.minimum, capacity).into());
                }
                let (index, base) = pool.take_table()?;
                if init != 0 {
                    // SAFETY: the slot is ours and holds `capacity` elements.
                    unsafe { std::slice::from_raw_parts_mut(base, len) }.fill(init);
                }
                Storage::Pooled {
                    slot: Slot {
                        pool: pool.clone(),
                        index,
                    },
                    base,
                    len,
                    capacity,
                }
            }
        };
        let mut t = Table {
            storage,
            def: Box::new(VMTableDefinition {
                base: std::ptr::null_mut(),
                current_elements: 0,
            }),
            ty,
        };
        t.sync();
        Ok(t)
    }

    fn sync(&mut self) {
        let e = self.elements_mut();
        let (base, len) = (e.as_mut_ptr(), e.len());
        self.def.base = base;
        self.def.current_elements = len;
    }

    /// The type with the current size as minimum.
    pub fn ty(&self) -> TableType {
        TableType {
            minimum: self.size(),
            ..self.ty
        }
    }

    /// The declared type.
    pub fn declared_ty(&self) -> TableType {
        self.ty
    }

    /// The definition generated code reads.
    pub fn vmtable(&self) -> *mut VMTableDefinition {
        &*self.def as *const VMTableDefinition as *mut VMTableDefinition
    }

    /// Number of elements.
    pub fn size(&self) -> u32 {
        self.elements().len() as u32
    }

    /// Element `i`.
    pub fn get(&self, i: u32) -> Option<usize> {
        self.elements().get(i as usize).copied()
    }

    /// Sets element `i`; `None` if out of bounds.
    pub fn set(&mut self, i: u32, v: usize) -> Option<()> {
        *self.elements_mut().get_mut(i as usize)? = v;
        Some(())
    }

    /// Grows by `delta` elements of `init` without asking a limiter;
    /// returns the old size.
    pub fn grow(&mut self, delta: u32, init: usize) -> Option<u32> {
        self.grow_limited(delta, init, None).ok().flatten()
    }

    /// The largest size this table may reach, as the limiter is told: the
    /// declared maximum, or `None` without one.
    pub fn maximum(&self) -> Option<usize> {
        let declared = self.ty.maximum.map(|m| m as usize);
        match &self.storage {
            Storage::Heap(_) => declared,
            Storage::Pooled { capacity, .. } => {
                Some(declared.map_or(*capacity, |d| d.min(*capacity)))
            }
        }
    }

    /// Grows by `delta` elements of `init`, asking `limiter` first (see
    /// `limits.rs`): the old size, `Ok(None)` if the table did not grow,
    /// `Err` if the limiter wants a trap.
    pub fn grow_limited(
        &mut self,
        delta: u32,
        init: usize,
        mut limiter: Option<&mut dyn Limiter>,
    ) -> Result<Option<u32>, BoxError> {
        let old = self.size();
        if delta == 0 {
            return Ok(Some(old));
        }
        let Some(new) = old.checked_add(delta) else {
            if let Some(l) = limiter {
                l.table_grow_failed(GrowFailure::Overflow.into())?;
            }
            return Ok(None);
        };
        if let Some(l) = limiter.as_deref_mut() {
            if !l.table_growing(old as usize, new as usize, self.maximum())? {
                return Ok(None);
            }
        }
        let fits = match &self.storage {
            Storage::Heap(_) => true,
            Storage::Pooled { capacity, .. } => new as usize <= *capacity,
        };
        if !fits || new > self.ty.maximum.unwrap_or(u32::MAX) || new > MAX_TABLE_ELEMENTS {
            if let Some(l) = limiter {
                l.table_grow_failed(GrowFailure::TableMaximum.into())?;
            }
            return Ok(None);
        }
        match &mut self.storage {
            Storage::Heap(v) => v.resize(new as usize, init),
            Storage::Pooled { base, len, .. } => {
                // SAFETY: `new` fits the slot (checked above), and the new
                // elements are past every reference anything holds.
                unsafe { std::slice::from_raw_parts_mut(base.add(*len), new as usize - *len) }
                    .fill(init);
                *len = new as usize;
            }
        }
        self.sync();
        Ok(Some(old))
    }

    /// Fills `len` elements from `dst` with `v`.
    pub fn fill(&mut self, dst: u32, v: usize, len: u32) -> Option<()> {
        let end = dst.checked_add(len)?;
        self.elements_mut()
            .get_mut(dst as usize..end as usize)?
            .fill(v);
        Some(())
    }

    /// The elements.
    pub fn elements(&self) -> &[usize] {
        match &self.storage {
            Storage::Heap(v) => v,
            // SAFETY: the slot is ours, and its first `len` elements are
            // initialised.
            Storage::Pooled { base, len, .. } => unsafe { std::slice::from_raw_parts(*base, *len) },
        }
    }

    /// The elements, mutably (the length cannot change through this).
    pub fn elements_mut(&mut self) -> &mut [usize] {
        match &mut self.storage {
            Storage::Heap(v) => v,
            // SAFETY: as in `elements`, with `&mut self` for exclusivity.
            Storage::Pooled { base, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(*base, *len)
            },
        }
    }
}
