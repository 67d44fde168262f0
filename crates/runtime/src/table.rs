//! Tables: growable arrays of references (`*const VMFuncRef` for funcref,
//! an externref pointer for externref; 0 is null).
//!
//! **Invariant:** `def.base` and `def.current_elements` always describe
//! `elements`; every method that can reallocate updates them, because
//! generated code reads the definition, not the vector.

use crate::limits::{BoxError, GrowFailure, Limiter};
use crate::vmcontext::VMTableDefinition;
use kiln_environ::TableType;

/// A table.
pub struct Table {
    elements: Vec<usize>,
    def: Box<VMTableDefinition>,
    ty: TableType,
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
        if ty.minimum > MAX_TABLE_ELEMENTS {
            return Err(TableError::TooLarge(ty.minimum));
        }
        if let Some(l) = limiter {
            let max = ty.maximum.map(|m| m as usize);
            if !l
                .table_growing(0, ty.minimum as usize, max)
                .map_err(TableError::Limiter)?
            {
                return Err(TableError::Denied(ty.minimum));
            }
        }
        let mut t = Table {
            elements: vec![init; ty.minimum as usize],
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
        self.def.base = self.elements.as_mut_ptr();
        self.def.current_elements = self.elements.len();
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
        self.elements.len() as u32
    }

    /// Element `i`.
    pub fn get(&self, i: u32) -> Option<usize> {
        self.elements.get(i as usize).copied()
    }

    /// Sets element `i`; `None` if out of bounds.
    pub fn set(&mut self, i: u32, v: usize) -> Option<()> {
        *self.elements.get_mut(i as usize)? = v;
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
        self.ty.maximum.map(|m| m as usize)
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
        if new > self.ty.maximum.unwrap_or(u32::MAX) || new > MAX_TABLE_ELEMENTS {
            if let Some(l) = limiter {
                l.table_grow_failed(GrowFailure::TableMaximum.into())?;
            }
            return Ok(None);
        }
        self.elements.resize(new as usize, init);
        self.sync();
        Ok(Some(old))
    }

    /// Fills `len` elements from `dst` with `v`.
    pub fn fill(&mut self, dst: u32, v: usize, len: u32) -> Option<()> {
        let end = dst.checked_add(len)?;
        self.elements.get_mut(dst as usize..end as usize)?.fill(v);
        Some(())
    }

    /// The elements.
    pub fn elements(&self) -> &[usize] {
        &self.elements
    }

    /// The elements, mutably (the length cannot change through this).
    pub fn elements_mut(&mut self) -> &mut [usize] {
        &mut self.elements
    }
}
