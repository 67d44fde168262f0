//! [`InstanceAllocationStrategy`] and [`PoolingAllocationConfig`]:
//! Wasmtime's way of choosing how instances are allocated.
//!
//! On demand (the default), each instantiation allocates its `VMContext`
//! on the heap and reserves one mapping per defined memory. With
//! [`InstanceAllocationStrategy::Pooling`], [`Engine::new`](crate::Engine::new)
//! reserves every slot once (one mapping each for contexts, memories and
//! tables; see `kiln_runtime`'s `pool.rs` for the slot layout and how a
//! slot is reset) and instantiation takes slots from free lists; a slot
//! goes back, reset so that nothing of its last instance is visible,
//! when the store that owns it drops. A pool whose slots are all taken
//! makes instantiation fail with an error naming the limit.
//!
//! # Where a pooled instantiation's time goes
//!
//! For a module with one memory (with a copy-on-write image), one table
//! and a few globals, instantiating takes, in order: the per-module pool
//! checks (a few comparisons), one pop from each free list (an uncontended
//! mutex each), one `mprotect` when the memory's minimum differs from
//! what the slot had accessible (none when the same module used the slot
//! last), one `mmap` of the memory image over the slot's start, and the
//! work every strategy does: filling the `VMContext` (imports, funcrefs,
//! definitions), evaluating global initialisers, and copying element
//! segments into the table. Dropping the store resets each slot: a
//! `memset` of the context's size, a `memset` (or `madvise`) of the
//! table's used elements, and for the memory an anonymous `mmap` over the
//! image's range plus one `madvise(MADV_DONTNEED)` of the rest of what
//! was accessible. There is no `munmap` and no fresh 6 GiB reservation,
//! which are what on-demand instantiation pays for each memory.

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
/// for its next memories (see the module docs).
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
