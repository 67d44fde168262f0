//! The pooling instance allocator: slots for contexts, memories and
//! tables, reserved once per engine and reused.
//!
//! # How it works
//!
//! [`Pool::new`] makes three anonymous mappings, each one reservation for
//! all slots of its kind:
//!
//! * **memories**: `total_memories` slots of one memory stride each (the
//!   4 GiB a 32-bit memory may address plus the 2 GiB guard, see
//!   `memory.rs`: pooled memories keep the layout generated code relies
//!   on), mapped inaccessible and without swap reservation;
//! * **tables**: `total_tables` slots of `table_elements` pointers each,
//!   read+write;
//! * **contexts**: `total_core_instances` slots of
//!   `max_core_instance_size` bytes, read+write, for `VMContext`s.
//!
//! Each kind has a free list under a mutex (the only lock, held for a push
//! or a pop), used last-in first-out so a hot slot is reused while its
//! pages are still resident; a memory is taken preferably from one of the
//! last `AFFINITY_SEARCH` slots returned that still maps the wanted
//! image (see below). Taking a slot from an empty list is an error that
//! names the limit ([`PoolError`]), never an abort.
//!
//! # What a free slot looks like (the invariants)
//!
//! * **Context slot:** every byte is zero.
//! * **Table slot:** every element is zero (null).
//! * **Memory slot:** the first `accessible` bytes (recorded with the slot
//!   in the free list, `MemoryState`) are read+write; every byte after
//!   them is inaccessible. The first `image.len` of them map a module's
//!   memory image copy-on-write, with none of its pages written (they
//!   read as the image); the others read as zero, backed by anonymous
//!   memory. `image.len <= accessible`.
//!
//! # Taking a memory slot
//!
//! A memory of `minimum` bytes with image `I` (or none) is made from a
//! free slot in at most three steps, each skipped when the slot already
//! is as wanted (`prepare_memory`):
//!
//! 1. if the slot maps another image than `I` (or one when none is
//!    wanted), fresh anonymous pages are mapped over that image's range,
//!    which then reads as zero (one `mmap`);
//! 2. the protection of exactly the pages between `accessible` and
//!    `minimum` changes (one `mprotect`), so the memory starts with
//!    `minimum` bytes accessible and everything after faulting, as an
//!    on-demand memory does;
//! 3. `I` is mapped over the start (one `mmap`) unless step 1 kept it.
//!
//! The same module instantiated again gets its own last slot back: no
//! system call at all.
//!
//! # Returning a slot
//!
//! Returning a slot restores the invariants before the slot is pushed:
//!
//! * a context is zeroed over the size its module used;
//! * a table is zeroed over the elements it had: the first
//!   `table_keep_resident` bytes with `memset`, the rest of its pages with
//!   `madvise(MADV_DONTNEED)`, which gives them back to the kernel;
//! * a memory gets one `madvise(MADV_DONTNEED)` over everything it had
//!   accessible (`reset_memory`): that drops the instance's private
//!   copies of image pages, which read as the image again, and makes
//!   anonymous pages read as zero; the image stays mapped for the next
//!   user. Anonymous bytes within the first `linear_memory_keep_resident`
//!   are zeroed with `memset` instead, and stay resident. The cost is
//!   proportional to what the instance had accessible, and pages it never
//!   touched cost nothing but their page-table walk.
//!
//! So nothing of one instance (memory bytes, table entries, globals and
//! everything else in its context) is visible to the next user of a slot:
//! what a reused memory shows before its own segments apply is its own
//! image or zeros, never a byte the last user wrote. A slot whose reset
//! fails (a failing `mmap` or `madvise`) is never reused.
//!
//! [`MemoryCache`] applies the same steps to the reservations of dropped
//! on-demand memories.

use kiln_environ::{Module, WASM_PAGE_SIZE};
use std::sync::Mutex;

/// The pooling allocator's limits (Wasmtime's `PoolingAllocationConfig`
/// knobs, with its defaults).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolingConfig {
    /// Core instances alive at once, across every store of the engine.
    pub total_core_instances: u32,
    /// Defined linear memories alive at once.
    pub total_memories: u32,
    /// Defined tables alive at once.
    pub total_tables: u32,
    /// The most bytes one instance's `VMContext` may take.
    pub max_core_instance_size: usize,
    /// The most bytes one pooled memory may grow to.
    pub max_memory_size: usize,
    /// The most elements one pooled table may grow to.
    pub table_elements: usize,
    /// Bytes at the start of each memory reset with `memset` (and kept
    /// resident) instead of `madvise`.
    pub linear_memory_keep_resident: usize,
    /// Bytes at the start of each table reset with `memset` instead of
    /// `madvise`.
    pub table_keep_resident: usize,
    /// Defined memories per module.
    pub max_memories_per_module: u32,
    /// Defined tables per module.
    pub max_tables_per_module: u32,
}

impl Default for PoolingConfig {
    fn default() -> PoolingConfig {
        PoolingConfig {
            total_core_instances: 1000,
            total_memories: 1000,
            total_tables: 1000,
            max_core_instance_size: 1 << 20,
            max_memory_size: 1 << 32,
            table_elements: 20_000,
            linear_memory_keep_resident: 0,
            table_keep_resident: 0,
            max_memories_per_module: 1,
            max_tables_per_module: 1,
        }
    }
}

/// Why the pool could not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool's reservation failed.
    #[error("failed to reserve {0} bytes of address space for the pooling allocator: {1}")]
    Reserve(usize, std::io::Error),
    /// The configuration asks for more address space than exists.
    #[error("the pooling allocator's configuration needs more address space than exists")]
    TooLarge,
    /// Every context slot is taken.
    #[error("maximum concurrent core instance limit of {0} reached")]
    Instances(u32),
    /// Every memory slot is taken.
    #[error("maximum concurrent memory limit of {0} reached")]
    Memories(u32),
    /// Every table slot is taken.
    #[error("maximum concurrent table limit of {0} reached")]
    Tables(u32),
    /// The module defines more memories than `max_memories_per_module`.
    #[error("defined memories count of {0} exceeds the per-instance limit of {1}")]
    MemoriesPerModule(usize, u32),
    /// The module defines more tables than `max_tables_per_module`.
    #[error("defined tables count of {0} exceeds the per-instance limit of {1}")]
    TablesPerModule(usize, u32),
    /// The module's context is larger than `max_core_instance_size`.
    #[error(
        "instance allocation for this module requires {0} bytes which exceeds the \
         configured maximum of {1} bytes"
    )]
    InstanceSize(usize, usize),
    /// A memory's minimum is larger than `max_memory_size`.
    #[error("memory minimum size of {0} pages exceeds the pooling allocator's limit of {1} bytes")]
    MemorySize(u64, usize),
    /// A table's minimum is larger than `table_elements`.
    #[error("table minimum size of {0} elements exceeds the pooling allocator's limit of {1}")]
    TableSize(u32, usize),
    /// Changing a slot's protection failed.
    #[error("failed to change a pool slot's protection: {0}")]
    Protect(std::io::Error),
}

/// One anonymous mapping, unmapped on drop.
struct Region {
    base: *mut u8,
    len: usize,
}

impl Region {
    fn new(len: usize, accessible: bool) -> Result<Region, PoolError> {
        if len == 0 {
            return Ok(Region {
                base: std::ptr::null_mut(),
                len: 0,
            });
        }
        let prot = if accessible {
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE
        } else {
            rustix::mm::ProtFlags::empty()
        };
        // SAFETY: a fresh anonymous mapping at an address of the kernel's
        // choosing; nothing else refers to it.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                prot,
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .map_err(|e| PoolError::Reserve(len, e.into()))?;
        Ok(Region {
            base: base.cast(),
            len,
        })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping is this region's own, and the pool that
            // owns the region is dropped only once every slot is back (each
            // slot holds an `Arc` of it).
            unsafe {
                let _ = rustix::mm::munmap(self.base.cast(), self.len);
            }
        }
    }
}

/// How many of the most recently freed memory slots a take searches for
/// one that already maps the wanted image.
const AFFINITY_SEARCH: usize = 16;

/// What a free memory slot holds (see the module docs): its first
/// `accessible` bytes are read+write, and the first `image.len` of them
/// map that image copy-on-write (`image.len <= accessible`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct MemoryState {
    accessible: usize,
    image: Option<ImageKey>,
}

/// A memory image as a slot remembers it: its engine-unique id and length.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImageKey {
    pub(crate) id: u64,
    pub(crate) len: usize,
}

/// Slots and pool of one kind.
struct Slots<S> {
    region: Region,
    stride: usize,
    /// Free slots with their state, used last-in first-out.
    free: Mutex<Vec<(u32, S)>>,
    total: u32,
}

impl<S: Copy> Slots<S> {
    fn new(total: u32, stride: usize, accessible: bool, state: S) -> Result<Slots<S>, PoolError> {
        let len = stride
            .checked_mul(total as usize)
            .ok_or(PoolError::TooLarge)?;
        Ok(Slots {
            region: Region::new(len, accessible)?,
            stride,
            // Reversed, so slot 0 comes first.
            free: Mutex::new((0..total).rev().map(|i| (i, state)).collect()),
            total,
        })
    }

    fn take(&self) -> Option<(u32, S)> {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Takes the most recently returned free slot among the last
    /// [`AFFINITY_SEARCH`] whose state satisfies `prefer`, or else the most
    /// recently returned one.
    fn take_preferring(&self, prefer: impl Fn(&S) -> bool) -> Option<(u32, S)> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let n = free.len();
        let hit = free
            .iter()
            .rev()
            .take(AFFINITY_SEARCH)
            .position(|(_, st)| prefer(st));
        match hit {
            Some(k) => Some(free.remove(n - 1 - k)),
            None => free.pop(),
        }
    }

    fn put(&self, i: u32, state: S) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((i, state));
    }

    fn base(&self, i: u32) -> *mut u8 {
        // SAFETY: `i < total`, so the slot lies inside the region.
        unsafe { self.region.base.add(i as usize * self.stride) }
    }

    fn available(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The pooling allocator of one engine (see the module docs).
pub struct Pool {
    config: PoolingConfig,
    /// Context slots; no state.
    instances: Slots<()>,
    /// Memory slots, with what each free one holds.
    memories: Slots<MemoryState>,
    /// Table slots; no state.
    tables: Slots<()>,
    /// What one memory slot may make accessible.
    memory_max: usize,
}

// SAFETY: the regions are process-wide mappings with no tie to a thread;
// the free lists are behind mutexes, and a slot's contents are touched
// only by the one owner that took it (a context, memory or table of one
// store) or, while it is free, by nobody.
unsafe impl Send for Pool {}
// SAFETY: see `Send`: `&Pool` only reaches the free lists (locked) and
// immutable configuration.
unsafe impl Sync for Pool {}

fn page() -> usize {
    rustix::param::page_size()
}

impl Pool {
    /// Reserves every slot of `config`, for memories whose slot (the
    /// reservation plus guard a memory needs) is `memory_stride` bytes.
    pub fn new(config: &PoolingConfig, memory_stride: usize) -> Result<Pool, PoolError> {
        let instance_stride = config
            .max_core_instance_size
            .checked_next_multiple_of(64)
            .ok_or(PoolError::TooLarge)?;
        let table_stride = config
            .table_elements
            .checked_mul(std::mem::size_of::<usize>())
            .and_then(|b| b.checked_next_multiple_of(page()))
            .ok_or(PoolError::TooLarge)?;
        let memory_stride = memory_stride
            .checked_next_multiple_of(page())
            .ok_or(PoolError::TooLarge)?;
        let memory_max = (config.max_memory_size / WASM_PAGE_SIZE as usize
            * WASM_PAGE_SIZE as usize)
            .min(memory_stride);
        Ok(Pool {
            instances: Slots::new(config.total_core_instances, instance_stride, true, ())?,
            memories: Slots::new(
                config.total_memories,
                memory_stride,
                false,
                MemoryState {
                    accessible: 0,
                    image: None,
                },
            )?,
            tables: Slots::new(config.total_tables, table_stride, true, ())?,
            memory_max,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PoolingConfig {
        &self.config
    }

    /// Free slots: (contexts, memories, tables).
    pub fn available(&self) -> (usize, usize, usize) {
        (
            self.instances.available(),
            self.memories.available(),
            self.tables.available(),
        )
    }

    /// Whether an instance of `m`, whose context takes `vmctx_size` bytes,
    /// fits the pool's per-instance limits. Checked before anything is
    /// allocated.
    pub fn check_module(&self, m: &Module, vmctx_size: usize) -> Result<(), PoolError> {
        let c = &self.config;
        let memories = m.memories.len() - m.num_imported_memories;
        if memories > c.max_memories_per_module as usize {
            return Err(PoolError::MemoriesPerModule(
                memories,
                c.max_memories_per_module,
            ));
        }
        let tables = m.tables.len() - m.num_imported_tables;
        if tables > c.max_tables_per_module as usize {
            return Err(PoolError::TablesPerModule(tables, c.max_tables_per_module));
        }
        if vmctx_size > c.max_core_instance_size {
            return Err(PoolError::InstanceSize(
                vmctx_size,
                c.max_core_instance_size,
            ));
        }
        for (_, ty) in m.memories.iter().skip(m.num_imported_memories) {
            if ty.minimum.saturating_mul(WASM_PAGE_SIZE) > self.memory_max as u64 {
                return Err(PoolError::MemorySize(ty.minimum, self.memory_max));
            }
        }
        for (_, ty) in m.tables.iter().skip(m.num_imported_tables) {
            if ty.minimum as usize > c.table_elements {
                return Err(PoolError::TableSize(ty.minimum, c.table_elements));
            }
        }
        Ok(())
    }

    /// Takes a context slot: `max_core_instance_size` zero bytes, 64-byte
    /// aligned.
    pub(crate) fn take_instance(&self) -> Result<(u32, *mut u8), PoolError> {
        let (i, ()) = self
            .instances
            .take()
            .ok_or(PoolError::Instances(self.instances.total))?;
        Ok((i, self.instances.base(i)))
    }

    /// Returns context slot `i`, of which the first `used` bytes may have
    /// been written.
    pub(crate) fn put_instance(&self, i: u32, used: usize) {
        let base = self.instances.base(i);
        // SAFETY: the slot is this caller's, nobody else refers to it any
        // more, and `used` is at most the stride (checked at allocation).
        unsafe { std::ptr::write_bytes(base, 0, used.min(self.instances.stride)) };
        self.instances.put(i, ());
    }

    /// The most bytes a pooled memory may make accessible.
    pub(crate) fn memory_max(&self) -> usize {
        self.memory_max
    }

    /// Takes a memory slot and makes exactly its first `bytes` accessible
    /// (at most [`Pool::memory_max`]), mapping `image` (whose length is at
    /// most `bytes`) over its start if one is given: its index and base.
    /// A slot that already maps `image` is preferred, which makes the
    /// common case (the same module instantiated again) cost no system
    /// call at all.
    pub(crate) fn take_memory(
        &self,
        bytes: usize,
        image: Option<&crate::MemoryImage>,
    ) -> Result<(u32, *mut u8), PoolError> {
        let want = image.map(|i| i.key());
        debug_assert!(want.is_none_or(|w| w.len <= bytes));
        let (i, mut state) = self
            .memories
            .take_preferring(|st| want.is_some() && st.image == want)
            .ok_or(PoolError::Memories(self.memories.total))?;
        let base = self.memories.base(i);
        // SAFETY: the slot is ours, nothing refers to it yet, and every
        // range below lies inside it; the slot's state says what it holds.
        let r = unsafe { prepare_memory(base, &mut state, bytes, image) };
        if let Err(e) = r {
            // `prepare_memory` left the state describing the slot.
            self.memories.put(i, state);
            return Err(e);
        }
        Ok((i, base))
    }

    /// Returns memory slot `i`, which had its first `len` bytes accessible,
    /// the first `image.len` of them mapped from `image`.
    pub(crate) fn put_memory(&self, i: u32, len: usize, image: Option<ImageKey>) {
        let base = self.memories.base(i);
        let image_len = image.map_or(0, |k| k.len);
        debug_assert!(image_len <= len);
        // SAFETY: the slot is this caller's and nothing refers to it any
        // more; every range below lies within its accessible prefix.
        let ok = unsafe {
            reset_memory(
                base,
                len,
                image_len,
                self.config.linear_memory_keep_resident,
            )
        };
        if ok {
            self.memories.put(
                i,
                MemoryState {
                    accessible: len,
                    image,
                },
            );
        }
    }

    /// Takes a table slot of `table_elements` null elements.
    pub(crate) fn take_table(&self) -> Result<(u32, *mut usize), PoolError> {
        let (i, ()) = self
            .tables
            .take()
            .ok_or(PoolError::Tables(self.tables.total))?;
        Ok((i, self.tables.base(i).cast()))
    }

    /// The capacity of a table slot.
    pub(crate) fn table_elements(&self) -> usize {
        self.config.table_elements
    }

    /// Returns table slot `i`, of which the first `len` elements may have
    /// been written.
    pub(crate) fn put_table(&self, i: u32, len: usize) {
        let base = self.tables.base(i);
        let bytes = (len * std::mem::size_of::<usize>()).min(self.tables.stride);
        // SAFETY: as in `put_memory`; the range lies inside the slot.
        let ok = unsafe { reset(base, bytes, self.config.table_keep_resident) };
        if ok {
            self.tables.put(i, ());
        }
    }
}

/// Zeroes `len` read+write bytes at `base` (page-aligned): the first
/// `keep_resident` by `memset`, the rest of the pages by `madvise`.
/// `false` if the kernel refused.
///
/// # Safety
///
/// The range must be a private anonymous read+write mapping nothing else
/// refers to.
unsafe fn reset(base: *mut u8, len: usize, keep_resident: usize) -> bool {
    let page = page();
    // What `madvise` cannot do, a partial page, is done by `memset`.
    let memset_end = keep_resident.next_multiple_of(page).min(len);
    let memset_end = if len - memset_end < page {
        len
    } else {
        memset_end
    };
    // SAFETY: forwarded contract.
    unsafe {
        std::ptr::write_bytes(base, 0, memset_end);
        if memset_end < len {
            let end = len.next_multiple_of(page);
            let r = rustix::mm::madvise(
                base.add(memset_end).cast(),
                end - memset_end,
                rustix::mm::Advice::LinuxDontNeed,
            );
            if r.is_err() {
                return false;
            }
        }
    }
    true
}

/// Makes a free memory slot (or cached reservation) described by `state` hold exactly `bytes`
/// accessible bytes with `image` mapped at its start, updating `state`
/// as it goes (so that on an error it still describes the slot).
///
/// # Safety
///
/// `base` is a memory slot (of a pool or a [`MemoryCache`]) that nothing
/// refers to, and `state` describes it.
unsafe fn prepare_memory(
    base: *mut u8,
    state: &mut MemoryState,
    bytes: usize,
    image: Option<&crate::MemoryImage>,
) -> Result<(), PoolError> {
    let want = image.map(|i| i.key());
    if let Some(old) = state.image.filter(|_| state.image != want) {
        // Another image (or none wanted): fresh anonymous pages over
        // the old image's range, which is accessible (`old.len <=
        // accessible`), so the slot reads as zeros again.
        // SAFETY: the range lies inside the slot (contract).
        unsafe { map_anonymous(base, old.len) }?;
        state.image = None;
    }
    let (start, len, prot) = if state.accessible > bytes {
        (
            bytes,
            state.accessible - bytes,
            rustix::mm::MprotectFlags::empty(),
        )
    } else {
        (
            state.accessible,
            bytes - state.accessible,
            rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE,
        )
    };
    if len > 0 {
        // SAFETY: the range lies inside the slot (contract).
        unsafe { rustix::mm::mprotect(base.add(start).cast(), len, prot) }
            .map_err(|e| PoolError::Protect(e.into()))?;
        state.accessible = bytes;
    }
    if let (Some(image), None) = (image, state.image) {
        // SAFETY: the image's range lies inside the accessible prefix,
        // which reads as zeros and which nothing refers to.
        unsafe { image.map_at(base) }.map_err(PoolError::Protect)?;
        state.image = want;
    }
    Ok(())
}

/// On demand, the reservations of dropped memories, kept for the next
/// memories of the engine instead of being unmapped (see `pooling.rs` in
/// `kiln` for why): at most `capacity` of them, each reset exactly as a
/// pool's memory slot is, with what it holds recorded, so that the next
/// memory of the same module usually needs no system call at all.
///
/// A cached reservation is address space only: its pages were given back
/// with `madvise(MADV_DONTNEED)`, and the kernel reclaims the page cache
/// of an image it still maps as it would any file's.
pub struct MemoryCache {
    free: Mutex<Vec<(usize, MemoryState)>>,
    capacity: usize,
    /// The length of each reservation.
    reservation: usize,
}

impl MemoryCache {
    /// A cache of at most `capacity` reservations of `reservation` bytes.
    pub fn new(capacity: usize, reservation: usize) -> MemoryCache {
        MemoryCache {
            free: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
            reservation,
        }
    }

    /// The length of each reservation.
    pub(crate) fn reservation(&self) -> usize {
        self.reservation
    }

    /// A cached reservation prepared as [`Pool::take_memory`] prepares a
    /// slot (preferring one that maps `image`), or `None` if there is none
    /// or preparing one failed (it is then unmapped).
    pub(crate) fn take(&self, bytes: usize, image: Option<&crate::MemoryImage>) -> Option<*mut u8> {
        let want = image.map(|i| i.key());
        let (base, mut state) = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let n = free.len();
            let hit = free
                .iter()
                .rev()
                .position(|(_, st)| want.is_some() && st.image == want);
            match hit {
                Some(k) => free.remove(n - 1 - k),
                None => free.pop()?,
            }
        };
        let base = base as *mut u8;
        // SAFETY: a cached reservation is ours alone once taken, and its
        // state describes it.
        if unsafe { prepare_memory(base, &mut state, bytes, image) }.is_err() {
            // SAFETY: the reservation is ours and nothing refers to it.
            unsafe {
                let _ = rustix::mm::munmap(base.cast(), self.reservation);
            }
            return None;
        }
        Some(base)
    }

    /// Takes back the reservation at `base` of a dropped memory, which had
    /// its first `len` bytes accessible, the first `image.len` of them
    /// mapped from `image`; or unmaps it if the cache is full or the reset
    /// fails.
    ///
    /// # Safety
    ///
    /// `base` is a reservation of `self.reservation` bytes that nothing
    /// refers to any more, laid out as described.
    pub(crate) unsafe fn put(&self, base: *mut u8, len: usize, image: Option<ImageKey>) {
        let full = || self.free.lock().unwrap_or_else(|e| e.into_inner()).len() >= self.capacity;
        let image_len = image.map_or(0, |k| k.len);
        // Reset outside the lock, so that threads dropping memories at
        // once do not wait for each other's `madvise`.
        // SAFETY: forwarded contract.
        if !full() && unsafe { reset_memory(base, len, image_len, 0) } {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            if free.len() < self.capacity {
                free.push((
                    base as usize,
                    MemoryState {
                        accessible: len,
                        image,
                    },
                ));
                return;
            }
        }
        // SAFETY: forwarded contract.
        unsafe {
            let _ = rustix::mm::munmap(base.cast(), self.reservation);
        }
    }
}

impl Drop for MemoryCache {
    fn drop(&mut self) {
        let free = self.free.get_mut().unwrap_or_else(|e| e.into_inner());
        for (base, _) in free.drain(..) {
            // SAFETY: every cached reservation is the cache's own.
            unsafe {
                let _ = rustix::mm::munmap(base as *mut _, self.reservation);
            }
        }
    }
}

/// Resets a memory slot's accessible prefix of `len` bytes, the first
/// `image_len` mapped copy-on-write from an image, which stays mapped (see
/// the module docs): `madvise(MADV_DONTNEED)` drops the instance's private
/// copies of the image's pages, which then read as the image again, and
/// makes anonymous pages read as zero. The anonymous pages within the
/// first `keep_resident` bytes are zeroed with `memset` instead. With
/// nothing to `memset`, that is one system call for the whole prefix.
///
/// # Safety
///
/// As for [`reset`], except that the first `image_len` bytes may be a
/// private file mapping.
unsafe fn reset_memory(base: *mut u8, len: usize, image_len: usize, keep_resident: usize) -> bool {
    let page = page();
    let memset_end = keep_resident.next_multiple_of(page).clamp(image_len, len);
    if memset_end == image_len {
        // SAFETY: the whole prefix is ours (contract).
        return unsafe { dontneed(base, len) };
    }
    // SAFETY: as above; `reset` handles the anonymous rest.
    unsafe {
        dontneed(base, image_len)
            && reset(
                base.add(image_len),
                len - image_len,
                keep_resident.saturating_sub(image_len),
            )
    }
}

/// `madvise(MADV_DONTNEED)` over `len` bytes at `base` (page-aligned);
/// `false` if the kernel refused.
///
/// # Safety
///
/// The range is a private mapping of the caller's that nothing refers to.
unsafe fn dontneed(base: *mut u8, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    let len = len.next_multiple_of(page());
    // SAFETY: forwarded contract.
    unsafe { rustix::mm::madvise(base.cast(), len, rustix::mm::Advice::LinuxDontNeed) }.is_ok()
}

/// Replaces `len` bytes at `base` (page-aligned) with fresh read+write
/// anonymous pages, without swap reservation.
///
/// # Safety
///
/// The range is part of a mapping of the caller's that nothing refers to.
unsafe fn map_anonymous(base: *mut u8, len: usize) -> Result<(), PoolError> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: MAP_FIXED replaces exactly those pages (contract).
    unsafe {
        rustix::mm::mmap_anonymous(
            base.cast(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::PRIVATE
                | rustix::mm::MapFlags::FIXED
                | rustix::mm::MapFlags::NORESERVE,
        )
    }
    .map(|_| ())
    .map_err(|e| PoolError::Protect(e.into()))
}

/// A pooled slot (of a memory, table or context), returned to the pool
/// when its owner drops.
pub(crate) struct Slot {
    pub(crate) pool: std::sync::Arc<Pool>,
    pub(crate) index: u32,
}
