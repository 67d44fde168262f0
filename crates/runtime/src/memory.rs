//! Linear memories: a reservation of address space whose accessible
//! prefix grows.
//!
//! A 32-bit memory reserves `static_memory_reservation` (4 GiB by default)
//! plus `memory_guard_size` bytes up front, all inaccessible, then makes
//! the first `minimum` pages read+write. Growing makes more pages
//! accessible in place: the base never moves, which is why generated code
//! may treat it as read-only and why any 32-bit address plus a static
//! offset below the guard size either hits accessible memory or faults.
//!
//! **Invariant:** `def.current_length` bytes from `def.base` are readable
//! and writable; every byte after them, up to the end of the reservation,
//! faults.

use crate::vmcontext::VMMemoryDefinition;
use kiln_environ::{MemoryType, Tunables, WASM_PAGE_SIZE};
use std::sync::atomic::Ordering;

/// An error creating a memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The reservation failed.
    #[error("failed to reserve {0} bytes of address space: {1}")]
    Reserve(usize, std::io::Error),
    /// The minimum exceeds what Kiln supports.
    #[error("memory minimum of {0} pages is too large")]
    TooLarge(u64),
}

/// A linear memory.
pub struct LinearMemory {
    def: Box<VMMemoryDefinition>,
    reservation: usize,
    maximum_pages: u64,
    ty: MemoryType,
}

// SAFETY: the memory is owned by one store and accessed from the thread
// that owns it.
unsafe impl Send for LinearMemory {}
// SAFETY: see `Send`.
unsafe impl Sync for LinearMemory {}

impl LinearMemory {
    /// Reserves and initialises a memory of type `ty`.
    pub fn new(ty: MemoryType, tunables: &Tunables) -> Result<LinearMemory, MemoryError> {
        let absolute_max = if ty.memory64 {
            // Without 64-bit bounds checks against a reservation, a 64-bit
            // memory reserves its maximum (capped) and checks dynamically.
            (tunables.static_memory_reservation / WASM_PAGE_SIZE).max(1)
        } else {
            kiln_environ::WASM32_MAX_PAGES
        };
        let maximum_pages = ty.maximum.unwrap_or(absolute_max).min(absolute_max);
        if ty.minimum > maximum_pages {
            return Err(MemoryError::TooLarge(ty.minimum));
        }
        let reservation =
            (tunables.static_memory_reservation + tunables.memory_guard_size) as usize;
        // SAFETY: a fresh anonymous, inaccessible, unreserved mapping.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                reservation,
                rustix::mm::ProtFlags::empty(),
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .map_err(|e| MemoryError::Reserve(reservation, e.into()))?
        .cast::<u8>();
        let mut m = LinearMemory {
            def: Box::new(VMMemoryDefinition {
                base,
                current_length: 0.into(),
            }),
            reservation,
            maximum_pages,
            ty,
        };
        if ty.minimum > 0 && m.grow(ty.minimum).is_none() {
            return Err(MemoryError::TooLarge(ty.minimum));
        }
        Ok(m)
    }

    /// The memory's type with its current minimum.
    pub fn ty(&self) -> MemoryType {
        MemoryType {
            minimum: self.pages(),
            ..self.ty
        }
    }

    /// The declared type.
    pub fn declared_ty(&self) -> MemoryType {
        self.ty
    }

    /// Current size in bytes.
    pub fn byte_size(&self) -> usize {
        self.def.current_length.load(Ordering::Relaxed)
    }

    /// Current size in pages.
    pub fn pages(&self) -> u64 {
        self.byte_size() as u64 / WASM_PAGE_SIZE
    }

    /// The definition generated code reads.
    pub fn vmmemory(&self) -> *mut VMMemoryDefinition {
        &*self.def as *const VMMemoryDefinition as *mut VMMemoryDefinition
    }

    /// Grows by `delta` pages; returns the old size in pages, or `None` if
    /// the maximum would be exceeded.
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.pages();
        let new = old.checked_add(delta)?;
        if new > self.maximum_pages {
            return None;
        }
        let new_bytes = usize::try_from(new.checked_mul(WASM_PAGE_SIZE)?).ok()?;
        if new_bytes > self.reservation {
            return None;
        }
        let old_bytes = self.byte_size();
        if new_bytes > old_bytes {
            // SAFETY: the range lies inside our reservation.
            let r = unsafe {
                rustix::mm::mprotect(
                    self.def.base.add(old_bytes).cast(),
                    new_bytes - old_bytes,
                    rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
                )
            };
            r.ok()?;
        }
        self.def.current_length.store(new_bytes, Ordering::Relaxed);
        Some(old)
    }

    /// The accessible bytes.
    pub fn data(&self) -> &[u8] {
        // SAFETY: `current_length` bytes from `base` are accessible.
        unsafe { std::slice::from_raw_parts(self.def.base, self.byte_size()) }
    }

    /// The accessible bytes, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and `&mut self` gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.def.base, self.byte_size()) }
    }
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        // SAFETY: the reservation belongs to this memory.
        unsafe {
            let _ = rustix::mm::munmap(self.def.base.cast(), self.reservation);
        }
    }
}
