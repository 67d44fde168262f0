//! [`InstanceAllocationStrategy`] and [`PoolingAllocationConfig`]:
//! Wasmtime's way of choosing how instances are allocated.
//!
//! On demand (the default), each instantiation allocates its `VMContext`
//! on the heap and gives each defined memory a reservation of its own.
//! With [`InstanceAllocationStrategy::Pooling`], [`Engine::new`](crate::Engine::new)
//! reserves every slot once (one mapping each for contexts, memories and
//! tables; see `kiln_runtime`'s `pool.rs` for the slot layout and how a
//! slot is reset) and instantiation takes slots from free lists; a slot
//! goes back, reset so that nothing of its last instance is visible,
//! when the store that owns it drops. A pool whose slots are all taken
//! makes instantiation fail with an error naming the limit.
//!
//! # Why on-demand memories are cached
//!
//! A fresh reservation costs an `mmap` of 6 GiB, an `mprotect` of its
//! minimum size and an `mmap` of its image, and giving it back a `munmap`:
//! four system calls that change the process's address space, about
//! 90% of an on-demand instantiation of a small module. So an on-demand
//! engine keeps the reservations of up to `CACHED_MEMORY_RESERVATIONS` (8)
//! dropped memories (`kiln_runtime::MemoryCache`), reset exactly as a
//! pooled memory slot is (one `madvise(MADV_DONTNEED)`, which gives their
//! pages back: a cached reservation is address space, not memory), and
//! the next memory takes one, preferably one that still maps its image.
//! Nothing else changes: there are no limits to configure, a memory the
//! cache cannot serve gets a fresh reservation, and a dropped memory the
//! cache has no room for is unmapped.
//!
//! # Where a pooled instantiation's time goes
//!
//! Measured on `instantiate/small-pooling` (`benches/src/workloads/small.wat`:
//! two imported host functions, a one-page memory with a data segment, a
//! 16-slot table with an element segment, three globals; a 256-byte
//! context) with `benches/src/bin/kiln-instantiate-loop.rs` on the
//! benchmark machine (2 cores of an AMD EPYC, Linux 6.18, shared with
//! other work: load 4.5 to 6 during the runs). One iteration (create a
//! store, instantiate, drop the store) took 2.2 µs of CPU time, 1.3 µs of
//! it in the kernel; `perf record --call-graph dwarf` split it as below
//! (`benches/perf-buckets.py`; 4,025 samples, so each line is good to a
//! few nanoseconds, and the whole to the machine's noise).
//!
//! | part | CPU time | what it is |
//! |------|----------|------------|
//! | **creating the store** | **127 ns** | |
//! | &nbsp; allocations | 29 ns | the store's box, its runtime limits (an `Arc`), its host context |
//! | &nbsp; the rest | 98 ns | initialising them, the store id, the engine's pool and cache handles |
//! | **`InstancePre::instantiate`** | **501 ns** | |
//! | &nbsp; the context | 224 ns | `StoreOpaque::instantiate` itself: the template's `memcpy` and the per-instance pointer writes (limits, store, instance, table and memory definitions, two funcrefs' `vmctx`), the table filled from the template, bookkeeping |
//! | &nbsp; allocations | 116 ns | `malloc`s of the `Instance`, the memory's and the table's boxes and definitions, the store's lists |
//! | &nbsp; memory slot | 39 ns | a free-list pop (uncontended mutex) that finds the slot already mapping the module's image and with the right size accessible: no system call |
//! | &nbsp; table slot | 20 ns | a free-list pop |
//! | &nbsp; API side | 39 ns | engine check, the (empty) loop over store-bound imports, recording the instance |
//! | &nbsp; keeping the template | 19 ns | `StoreInner::keep_pre` |
//! | &nbsp; the store's code list | 19 ns | `StoreCode::insert`: adding the module to the new store's list |
//! | &nbsp; `memcpy`/`memset` calls | 10 ns | |
//! | &nbsp; resource counts and pool checks | 15 ns | |
//! | **dropping the store** | **1,542 ns** | |
//! | &nbsp; memory reset | 1,198 ns | one `madvise(MADV_DONTNEED)` over the 64 KiB memory: the kernel walks its two mappings (the image's page and the anonymous rest), though the loop touched none of it |
//! | &nbsp; frees | 184 ns | about fifteen `free`s |
//! | &nbsp; other drops | 119 ns | lists, `Arc` counts, the store's code list |
//! | &nbsp; context and table | 41 ns | returning both slots, `memset` of the context and of the 16 elements |
//! | other | 30 ns | the loop itself |
//!
//! So the kernel's reset of the memory is more than half of a pooled
//! instantiation, as in Wasmtime; everything Kiln does itself takes under
//! 1 µs. `instantiate/imports-table100-pooling` (100 table slots filled by
//! an element segment, a global of every type: a 640-byte context) spends
//! 436 ns in the context part instead of 224 ns, most of the difference
//! filling the table from the template, and is otherwise the same.

use crate::{bail, Result};
use kiln_environ::Tunables;
use kiln_runtime::{MemoryCache, Pool, PoolingConfig};
use std::sync::Arc;

/// How an engine allocates instances (Wasmtime's
/// `InstanceAllocationStrategy`).
#[derive(Clone, Debug, Default)]
pub enum InstanceAllocationStrategy {
    /// Allocate each instance, memory and table when it is created.
    #[default]
    OnDemand,
    /// Take them from pools reserved when the engine is created.
    Pooling(PoolingAllocationConfig),
}

impl InstanceAllocationStrategy {
    /// The pooling strategy with the default limits.
    pub fn pooling() -> InstanceAllocationStrategy {
        InstanceAllocationStrategy::Pooling(PoolingAllocationConfig::default())
    }

    pub(crate) fn check(&self) -> Result<()> {
        if let InstanceAllocationStrategy::Pooling(c) = self {
            if c.mpk == MpkEnabled::Enable {
                bail!("memory protection keys are not supported by Kiln's pooling allocator");
            }
        }
        Ok(())
    }

    /// The engine's pool, reserved now, or `None` on demand.
    pub(crate) fn pool(&self, tunables: &Tunables) -> Result<Option<Arc<Pool>>> {
        match self {
            InstanceAllocationStrategy::OnDemand => Ok(None),
            InstanceAllocationStrategy::Pooling(c) => {
                let stride = tunables.static_memory_reservation + tunables.memory_guard_size;
                let stride = usize::try_from(stride)?;
                Ok(Some(Arc::new(Pool::new(&c.config, stride)?)))
            }
        }
    }
}

/// How many reservations of dropped memories an on-demand engine keeps
/// for its next memories (see the module docs): 48 GiB of address space
/// at most, none of it resident.
pub(crate) const CACHED_MEMORY_RESERVATIONS: usize = 8;

/// The on-demand memory cache of an engine with `tunables`.
pub(crate) fn memory_cache(tunables: &Tunables) -> Result<Option<Arc<MemoryCache>>> {
    let reservation = tunables.static_memory_reservation + tunables.memory_guard_size;
    Ok(Some(Arc::new(MemoryCache::new(
        CACHED_MEMORY_RESERVATIONS,
        usize::try_from(reservation)?,
    ))))
}

impl From<PoolingAllocationConfig> for InstanceAllocationStrategy {
    fn from(c: PoolingAllocationConfig) -> InstanceAllocationStrategy {
        InstanceAllocationStrategy::Pooling(c)
    }
}

/// Whether the pooling allocator uses memory protection keys (Wasmtime's
/// `MpkEnabled`). Kiln has no support for them: `Enable` makes
/// [`Engine::new`](crate::Engine::new) fail, and `Auto` means off.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum MpkEnabled {
    /// Use them if the machine has them: never, in Kiln.
    Auto,
    /// Require them: an error in Kiln.
    Enable,
    /// Do not use them (the default).
    #[default]
    Disable,
}

/// The pooling allocator's limits, with Wasmtime's names, meanings and
/// defaults (1,000 instances, memories and tables; 1 MiB contexts; 4 GiB
/// memories; 20,000-element tables; one memory and one table per module;
/// nothing kept resident).
///
/// Every memory slot reserves the 6 GiB of address space a Kiln memory
/// needs (4 GiB plus a 2 GiB guard, which its code relies on), so
/// `total_memories` slots take `total_memories * 6 GiB` of address space
/// (none of it memory until used).
#[derive(Clone, Debug, Default)]
pub struct PoolingAllocationConfig {
    config: PoolingConfig,
    mpk: MpkEnabled,
}

impl PoolingAllocationConfig {
    /// The default limits.
    pub fn new() -> PoolingAllocationConfig {
        PoolingAllocationConfig::default()
    }

    /// How many core instances may be alive at once in all stores of the
    /// engine.
    pub fn total_core_instances(&mut self, count: u32) -> &mut Self {
        self.config.total_core_instances = count;
        self
    }

    /// How many defined linear memories may be alive at once.
    pub fn total_memories(&mut self, count: u32) -> &mut Self {
        self.config.total_memories = count;
        self
    }

    /// How many defined tables may be alive at once.
    pub fn total_tables(&mut self, count: u32) -> &mut Self {
        self.config.total_tables = count;
        self
    }

    /// The most bytes an instance's `VMContext` may take; a module that
    /// needs more fails to instantiate.
    pub fn max_core_instance_size(&mut self, bytes: usize) -> &mut Self {
        self.config.max_core_instance_size = bytes;
        self
    }

    /// The most bytes a pooled linear memory may grow to (rounded down to
    /// whole Wasm pages, and at most 4 GiB): a module whose memory's
    /// minimum is larger fails to instantiate, and `memory.grow` past it
    /// returns -1.
    pub fn max_memory_size(&mut self, bytes: usize) -> &mut Self {
        self.config.max_memory_size = bytes;
        self
    }

    /// The most elements a pooled table may grow to.
    pub fn table_elements(&mut self, elements: usize) -> &mut Self {
        self.config.table_elements = elements;
        self
    }

    /// How many bytes at the start of each memory are reset with `memset`
    /// and stay resident, instead of being given back to the kernel with
    /// `madvise`, when a slot is reused.
    pub fn linear_memory_keep_resident(&mut self, bytes: usize) -> &mut Self {
        self.config.linear_memory_keep_resident = bytes;
        self
    }

    /// As [`PoolingAllocationConfig::linear_memory_keep_resident`], for
    /// tables.
    pub fn table_keep_resident(&mut self, bytes: usize) -> &mut Self {
        self.config.table_keep_resident = bytes;
        self
    }

    /// How many memories one module may define.
    pub fn max_memories_per_module(&mut self, count: u32) -> &mut Self {
        self.config.max_memories_per_module = count;
        self
    }

    /// How many tables one module may define.
    pub fn max_tables_per_module(&mut self, count: u32) -> &mut Self {
        self.config.max_tables_per_module = count;
        self
    }

    /// Whether to use memory protection keys; Kiln does not support them
    /// (see [`MpkEnabled`]).
    pub fn memory_protection_keys(&mut self, enable: MpkEnabled) -> &mut Self {
        self.mpk = enable;
        self
    }
}
