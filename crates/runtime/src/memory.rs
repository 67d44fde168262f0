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

use crate::limits::{BoxError, GrowFailure, Limiter};
use crate::pool::{ImageKey, MemoryCache, Pool, PoolError, Slot};
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
    /// The store's limiter refused the memory's minimum size.
    #[error("memory minimum size of {0} pages exceeds memory limits")]
    Denied(u64),
    /// The store's limiter failed.
    #[error("{0}")]
    Limiter(BoxError),
    /// The pooling allocator could not serve the memory.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Where a memory's reservation comes from.
#[derive(Copy, Clone)]
pub enum Allocator<'a> {
    /// A fresh mapping, or one from the cache if given.
    OnDemand(Option<&'a std::sync::Arc<MemoryCache>>),
    /// A slot of the pool.
    Pool(&'a std::sync::Arc<Pool>),
}

/// A linear memory.
pub struct LinearMemory {
    def: Box<VMMemoryDefinition>,
    /// Bytes from `base` that may ever become accessible.
    reservation: usize,
    maximum_pages: u64,
    ty: MemoryType,
    /// The pool slot this memory lives in, or `None` for its own mapping
    /// (of `mapping` bytes).
    slot: Option<Slot>,
    mapping: usize,
    /// Where an own mapping goes when the memory drops: back to this
    /// cache, or (`None`) to the kernel.
    cache: Option<std::sync::Arc<MemoryCache>>,
    /// The memory image mapped at the start, if any.
    image: Option<ImageKey>,
}

// SAFETY: the raw base names this memory's own reservation, a process-wide
// mapping with no tie to the thread that made it; the memory is owned by
// one store and moves with it, and all access goes through that store
// (`&mut` for writes). Not `Sync`: generated code writes the memory through
// the same pointer without synchronization.
unsafe impl Send for LinearMemory {}

impl LinearMemory {
    /// Reserves and initialises a memory of type `ty`, once `limiter` (if
    /// any) allowed its minimum size.
    pub fn new(
        ty: MemoryType,
        tunables: &Tunables,
        limiter: Option<&mut dyn Limiter>,
    ) -> Result<LinearMemory, MemoryError> {
        LinearMemory::allocate(ty, tunables, limiter, Allocator::OnDemand(None), None)
    }

    /// As [`LinearMemory::new`], from `alloc`: in a slot of a pool, the
    /// memory may grow to the pool's `max_memory_size` at most, and its
    /// slot goes back to the pool, reset, when it drops; on demand with a
    /// cache, the reservation comes from the cache if it has one and goes
    /// back to it. A memory from a slot or a cached reservation may start
    /// with `image` mapped (see [`LinearMemory::has_image`]), usually
    /// without a system call, since both prefer a reservation that still
    /// maps it; otherwise the caller maps it with
    /// [`LinearMemory::map_image`] once segments are applied.
    pub fn allocate(
        ty: MemoryType,
        tunables: &Tunables,
        limiter: Option<&mut dyn Limiter>,
        alloc: Allocator<'_>,
        image: Option<&MemoryImage>,
    ) -> Result<LinearMemory, MemoryError> {
        let (pool, cache) = match alloc {
            Allocator::Pool(p) => (Some(p), None),
            Allocator::OnDemand(c) => (None, c),
        };
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
        let min = usize::try_from(ty.minimum * WASM_PAGE_SIZE)
            .map_err(|_| MemoryError::TooLarge(ty.minimum))?;
        let pool_max = pool.map(|p| p.memory_max());
        if let Some(l) = limiter {
            let max = max_bytes(&ty, pool_max);
            if !l
                .memory_growing(0, min, max)
                .map_err(MemoryError::Limiter)?
            {
                return Err(MemoryError::Denied(ty.minimum));
            }
        }
        if let Some(pool) = pool {
            let max = pool.memory_max();
            if min > max {
                return Err(PoolError::MemorySize(ty.minimum, max).into());
            }
            let image = image.filter(|i| i.len <= min);
            let (index, base) = pool.take_memory(min, image)?;
            return Ok(LinearMemory {
                def: Box::new(VMMemoryDefinition {
                    base,
                    current_length: min.into(),
                }),
                reservation: max,
                maximum_pages,
                ty,
                slot: Some(Slot {
                    pool: pool.clone(),
                    index,
                }),
                mapping: 0,
                cache: None,
                image: image.map(MemoryImage::key),
            });
        }
        let reservation =
            (tunables.static_memory_reservation + tunables.memory_guard_size) as usize;
        let image = image.filter(|i| i.len <= min);
        if let Some(c) = cache.filter(|c| c.reservation() == reservation) {
            if let Some(base) = c.take(min, image) {
                return Ok(LinearMemory {
                    def: Box::new(VMMemoryDefinition {
                        base,
                        current_length: min.into(),
                    }),
                    reservation,
                    maximum_pages,
                    ty,
                    slot: None,
                    mapping: reservation,
                    cache: Some(c.clone()),
                    image: image.map(MemoryImage::key),
                });
            }
        }
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
            slot: None,
            mapping: reservation,
            cache: cache.filter(|c| c.reservation() == reservation).cloned(),
            image: None,
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

    /// Grows by `delta` pages without asking a limiter; returns the old
    /// size in pages, or `None` if the memory cannot grow that far.
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        self.grow_limited(delta, None).ok().flatten()
    }

    /// The largest size in bytes this memory may reach, as the limiter is
    /// told: the declared maximum, or the pool's if smaller; `None` if
    /// neither bounds it.
    pub fn maximum_byte_size(&self) -> Option<usize> {
        max_bytes(&self.ty, self.slot.as_ref().map(|_| self.reservation))
    }

    /// Grows by `delta` pages, asking `limiter` first (see `limits.rs` for
    /// the order of questions): the old size in pages, `Ok(None)` if the
    /// memory did not grow, `Err` if the limiter wants a trap.
    pub fn grow_limited(
        &mut self,
        delta: u64,
        mut limiter: Option<&mut dyn Limiter>,
    ) -> Result<Option<u64>, BoxError> {
        let old_pages = self.pages();
        if delta == 0 {
            return Ok(Some(old_pages));
        }
        let old = self.byte_size();
        let new = delta
            .checked_mul(WASM_PAGE_SIZE)
            .and_then(|d| d.checked_add(old as u64))
            .and_then(|n| usize::try_from(n).ok());
        let Some(new) = new else {
            if let Some(l) = limiter {
                l.memory_grow_failed(GrowFailure::Overflow.into())?;
            }
            return Ok(None);
        };
        if let Some(l) = limiter.as_deref_mut() {
            if !l.memory_growing(old, new, self.maximum_byte_size())? {
                return Ok(None);
            }
        }
        match self.grow_to(new) {
            Ok(()) => Ok(Some(old_pages)),
            Err(f) => {
                if let Some(l) = limiter {
                    l.memory_grow_failed(f.into())?;
                }
                Ok(None)
            }
        }
    }

    /// Makes the first `new` bytes accessible (`new` above the current size).
    fn grow_to(&mut self, new: usize) -> Result<(), GrowFailure> {
        let max_bytes = self.maximum_pages.saturating_mul(WASM_PAGE_SIZE);
        if new as u64 > max_bytes {
            return Err(GrowFailure::MemoryMaximum);
        }
        if new > self.reservation {
            return Err(GrowFailure::MemoryMaximum);
        }
        let old = self.byte_size();
        // SAFETY: the range lies inside our reservation, past every byte
        // anything may have a reference to (they are all below `old`).
        unsafe {
            rustix::mm::mprotect(
                self.def.base.add(old).cast(),
                new - old,
                rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
            )
        }
        .map_err(|e| GrowFailure::Protect(e.into()))?;
        self.def.current_length.store(new, Ordering::Relaxed);
        Ok(())
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

/// The maximum of `ty` in bytes, lowered to `pool_max` if given; `None`
/// if unbounded.
fn max_bytes(ty: &MemoryType, pool_max: Option<usize>) -> Option<usize> {
    let declared = ty
        .maximum
        .and_then(|p| p.checked_mul(WASM_PAGE_SIZE))
        .and_then(|b| usize::try_from(b).ok());
    match (declared, pool_max) {
        (Some(d), Some(p)) => Some(d.min(p)),
        (d, p) => d.or(p),
    }
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        match self.slot.take() {
            // The pool resets the slot (see `pool.rs`): nothing refers to
            // the memory any more.
            Some(s) => s.pool.put_memory(s.index, self.byte_size(), self.image),
            None => match &self.cache {
                // SAFETY: the mapping belongs to this memory, is
                // `reservation` bytes long as the cache's are (checked at
                // creation), and nothing refers to it any more.
                Some(c) => unsafe { c.put(self.def.base, self.byte_size(), self.image) },
                // SAFETY: the mapping belongs to this memory.
                None => unsafe {
                    let _ = rustix::mm::munmap(self.def.base.cast(), self.mapping);
                },
            },
        }
    }
}

/// The initial contents of a defined memory, prepared once per module in a
/// memfd and mapped copy-on-write into each instance's memory.
///
/// Instantiating then costs one `mmap` however much data the module has:
/// pages are shared with the image until an instance writes them, and
/// untouched pages are never copied at all. A memory gets an image only
/// when every active data segment for it has a constant offset and fits in
/// its minimum size (empty segments included), so its own segments cannot
/// trap; otherwise the segments are copied as before, with the spec's
/// trap-and-partial-write behaviour.
///
/// An image stands for *all* of its memory's segments at once, but the
/// spec applies segments one by one, after every element segment, and a
/// trap stops the rest. So instantiation maps images only once every
/// element and data segment has been applied without a trap; if one
/// traps, an imaged memory gets by copying exactly its segments that came
/// before the trapping one (see `StoreOpaque::instantiate`). Functions
/// that an earlier element segment stored into an imported table, and
/// that stay callable after the failed instantiation, then see the same
/// memory on either path.
pub struct MemoryImage {
    fd: rustix::fd::OwnedFd,
    len: usize,
    /// Unique in the process, so that a pool slot can tell whether it
    /// still maps this image (see `pool.rs`).
    id: u64,
}

static NEXT_IMAGE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for MemoryImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryImage")
            .field("len", &self.len)
            .finish()
    }
}

impl MemoryImage {
    /// Builds the image of `segments` ((offset, bytes), applied in order),
    /// or `None` if there is nothing to map or the image would not fit in
    /// `minimum_bytes`.
    pub fn new(segments: &[(u64, &[u8])], minimum_bytes: u64) -> Option<MemoryImage> {
        // Every segment must fit, empty ones too: an empty segment past the
        // end traps at instantiation, which the copy path reports.
        let fits = segments.iter().all(|(o, d)| {
            o.checked_add(d.len() as u64)
                .is_some_and(|e| e <= minimum_bytes)
        });
        let end = segments
            .iter()
            .map(|(o, d)| if d.is_empty() { 0 } else { o + d.len() as u64 })
            .max()
            .unwrap_or(0);
        if !fits || end == 0 {
            return None;
        }
        let page = rustix::param::page_size() as u64;
        let len = end.next_multiple_of(page);
        let fd =
            rustix::fs::memfd_create("kiln-memory-image", rustix::fs::MemfdFlags::CLOEXEC).ok()?;
        rustix::fs::ftruncate(&fd, len).ok()?;
        for (offset, data) in segments {
            let mut written = 0;
            while written < data.len() {
                let n = rustix::io::pwrite(&fd, &data[written..], offset + written as u64).ok()?;
                if n == 0 {
                    return None;
                }
                written += n;
            }
        }
        Some(MemoryImage {
            fd,
            len: len as usize,
            id: NEXT_IMAGE_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The image's length in bytes (a multiple of the page size).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the image is empty (never: empty images are not built).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn key(&self) -> ImageKey {
        ImageKey {
            id: self.id,
            len: self.len,
        }
    }

    /// Maps the image copy-on-write over the `len` bytes at `base`.
    ///
    /// # Safety
    ///
    /// The range is read+write memory of the caller's that nothing refers
    /// to; `MAP_FIXED` replaces exactly those pages, with the same
    /// protection.
    pub(crate) unsafe fn map_at(&self, base: *mut u8) -> std::io::Result<()> {
        // SAFETY: forwarded contract.
        unsafe {
            rustix::mm::mmap(
                base.cast(),
                self.len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::FIXED,
                &self.fd,
                0,
            )
        }
        .map(|_| ())
        .map_err(Into::into)
    }
}

impl LinearMemory {
    /// Maps `image` copy-on-write over the start of this memory.
    ///
    /// Must be called right after creation, before anything was written.
    pub fn map_image(&mut self, image: &MemoryImage) -> Result<(), MemoryError> {
        if image.len > self.byte_size() {
            return Err(MemoryError::TooLarge(self.pages()));
        }
        // SAFETY: the range lies at the start of this memory's own
        // reservation and is accessible (within `byte_size`).
        unsafe { image.map_at(self.def.base) }.map_err(|e| MemoryError::Reserve(image.len, e))?;
        self.image = Some(image.key());
        Ok(())
    }

    /// Whether a memory image is mapped at the start of this memory (a
    /// pooled memory created with one).
    pub fn has_image(&self) -> bool {
        self.image.is_some()
    }

    /// Replaces the mapped image, if any, with zero pages, as if the
    /// memory had been created without it. Must be called before anything
    /// was written.
    pub fn clear_image(&mut self) -> Result<(), MemoryError> {
        let Some(image) = self.image.take() else {
            return Ok(());
        };
        // SAFETY: the image's range lies at the start of this memory's
        // own, accessible reservation, and nothing refers into it yet.
        let r = unsafe {
            rustix::mm::mmap_anonymous(
                self.def.base.cast(),
                image.len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE
                    | rustix::mm::MapFlags::FIXED
                    | rustix::mm::MapFlags::NORESERVE,
            )
        };
        r.map(|_| ())
            .map_err(|e| MemoryError::Reserve(image.len, e.into()))
    }
}
