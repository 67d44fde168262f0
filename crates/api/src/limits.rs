//! Resource limits: [`ResourceLimiter`], [`StoreLimits`] and
//! [`Store::limiter`], in Wasmtime's shape.
//!
//! A store with a limiter asks it before every memory or table growth:
//! `memory.grow` and `table.grow` executed by Wasm, [`Memory::grow`] and
//! [`Table::grow`] from the host, and the creation of every memory and
//! table (at instantiation, and by [`Memory::new`] and [`Table::new`]),
//! which counts as growing from zero to the minimum. The runtime keeps
//! the order of questions (`kiln_runtime`'s `limits.rs`): the limiter's
//! `false` makes the grow instruction return -1, the host's grow an error
//! and an instantiation fail; an error from the limiter becomes a trap of
//! the grow instruction (or the host's error), carrying the limiter's
//! error itself. Each instantiation also counts instances, defined
//! memories and defined tables against [`ResourceLimiter::instances`] and
//! friends (10,000 each by default, with or without a limiter, as in
//! Wasmtime); exceeding one fails the instantiation before anything is
//! allocated.
//!
//! [`Memory::grow`]: crate::Memory::grow
//! [`Table::grow`]: crate::Table::grow
//! [`Memory::new`]: crate::Memory::new
//! [`Table::new`]: crate::Table::new

use crate::error::HostError;
use crate::store::StoreInner;
use crate::{bail, AsContextMut, Error, Result, Store};
use kiln_runtime::{BoxError, Limiter, StoreOpaque};

/// What [`ResourceLimiter::instances`] returns unless overridden.
pub const DEFAULT_INSTANCE_LIMIT: usize = 10000;
/// What [`ResourceLimiter::tables`] returns unless overridden.
pub const DEFAULT_TABLE_LIMIT: usize = 10000;
/// What [`ResourceLimiter::memories`] returns unless overridden.
pub const DEFAULT_MEMORY_LIMIT: usize = 10000;

/// Decides how much memory and how many table elements, instances,
/// memories and tables the Wasm of one store may have (see
/// [`Store::limiter`]).
pub trait ResourceLimiter {
    /// A linear memory is about to grow from `current` to `desired` bytes;
    /// `maximum` is its declared (or allocator's) maximum, `None` if
    /// unbounded. `Ok(false)` denies the growth (`memory.grow` returns
    /// -1); an error makes `memory.grow` trap with it. Creating a memory
    /// asks with `current` 0 and `desired` its minimum size.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool>;

    /// A memory growth that [`ResourceLimiter::memory_growing`] allowed
    /// failed (past the maximum, or out of address space); returning the
    /// error makes the grow trap. By default the failure stays a -1.
    fn memory_grow_failed(&mut self, error: Error) -> Result<()> {
        let _ = error;
        Ok(())
    }

    /// A table is about to grow from `current` to `desired` elements; as
    /// [`ResourceLimiter::memory_growing`].
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool>;

    /// A table growth that [`ResourceLimiter::table_growing`] allowed
    /// failed; as [`ResourceLimiter::memory_grow_failed`].
    fn table_grow_failed(&mut self, error: Error) -> Result<()> {
        let _ = error;
        Ok(())
    }

    /// How many instances the store may create.
    fn instances(&self) -> usize {
        DEFAULT_INSTANCE_LIMIT
    }

    /// How many tables the store's instances may define.
    fn tables(&self) -> usize {
        DEFAULT_TABLE_LIMIT
    }

    /// How many linear memories the store's instances may define.
    fn memories(&self) -> usize {
        DEFAULT_MEMORY_LIMIT
    }
}

/// A [`ResourceLimiter`] with fixed limits, built by
/// [`StoreLimitsBuilder`].
#[derive(Clone, Debug)]
pub struct StoreLimits {
    memory_size: Option<usize>,
    table_elements: Option<usize>,
    instances: usize,
    tables: usize,
    memories: usize,
    trap_on_grow_failure: bool,
}

impl Default for StoreLimits {
    fn default() -> StoreLimits {
        StoreLimits {
            memory_size: None,
            table_elements: None,
            instances: DEFAULT_INSTANCE_LIMIT,
            tables: DEFAULT_TABLE_LIMIT,
            memories: DEFAULT_MEMORY_LIMIT,
            trap_on_grow_failure: false,
        }
    }
}

impl StoreLimits {
    /// The answer for growing a memory or table to `desired` (in `unit`)
    /// under `limit` and the declared `maximum`.
    fn growing(
        &self,
        limit: Option<usize>,
        desired: usize,
        maximum: Option<usize>,
        what: &str,
        unit: &str,
    ) -> Result<bool> {
        let allow = !matches!(limit, Some(l) if desired > l)
            && !matches!(maximum, Some(max) if desired > max);
        if !allow && self.trap_on_grow_failure {
            bail!("forcing trap when growing {what} to {desired} {unit}")
        }
        Ok(allow)
    }

    fn grow_failed(&self, error: Error, what: &str) -> Result<()> {
        if self.trap_on_grow_failure {
            return Err(error.context(format!("forcing a {what} growth failure to be a trap")));
        }
        Ok(())
    }
}

impl ResourceLimiter for StoreLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        self.growing(self.memory_size, desired, maximum, "memory", "bytes")
    }

    fn memory_grow_failed(&mut self, error: Error) -> Result<()> {
        self.grow_failed(error, "memory")
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        self.growing(self.table_elements, desired, maximum, "table", "elements")
    }

    fn table_grow_failed(&mut self, error: Error) -> Result<()> {
        self.grow_failed(error, "table")
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

/// Builds [`StoreLimits`]; every limit is unset (or Wasmtime's default
/// count) until given.
#[derive(Clone, Debug, Default)]
pub struct StoreLimitsBuilder(StoreLimits);

impl StoreLimitsBuilder {
    /// The default limits.
    pub fn new() -> StoreLimitsBuilder {
        StoreLimitsBuilder::default()
    }

    /// The most bytes any one linear memory may have.
    pub fn memory_size(mut self, limit: usize) -> StoreLimitsBuilder {
        self.0.memory_size = Some(limit);
        self
    }

    /// The most elements any one table may have.
    pub fn table_elements(mut self, limit: usize) -> StoreLimitsBuilder {
        self.0.table_elements = Some(limit);
        self
    }

    /// The most instances the store may create.
    pub fn instances(mut self, limit: usize) -> StoreLimitsBuilder {
        self.0.instances = limit;
        self
    }

    /// The most tables the store's instances may define.
    pub fn tables(mut self, limit: usize) -> StoreLimitsBuilder {
        self.0.tables = limit;
        self
    }

    /// The most memories the store's instances may define.
    pub fn memories(mut self, limit: usize) -> StoreLimitsBuilder {
        self.0.memories = limit;
        self
    }

    /// Whether a denied or failed growth traps (or, from the host, fails
    /// with an error) instead of returning -1. Off by default.
    pub fn trap_on_grow_failure(mut self, trap: bool) -> StoreLimitsBuilder {
        self.0.trap_on_grow_failure = trap;
        self
    }

    /// The limits.
    pub fn build(self) -> StoreLimits {
        self.0
    }
}

type LimiterFn<T> = dyn (FnMut(&mut T) -> &mut dyn ResourceLimiter) + Send + Sync;

/// A store's limiter and what it has counted (a field of `StoreInner`).
pub(crate) struct StoreLimiter<T> {
    get: Option<Box<LimiterFn<T>>>,
    instances: usize,
    memories: usize,
    tables: usize,
}

impl<T> Default for StoreLimiter<T> {
    fn default() -> StoreLimiter<T> {
        StoreLimiter {
            get: None,
            instances: 0,
            memories: 0,
            tables: 0,
        }
    }
}

impl<T> Store<T> {
    /// Makes `limiter` decide this store's resource limits: called with
    /// the store's data whenever a limit is consulted (see
    /// [`ResourceLimiter`]), typically `|data| &mut data.limits`.
    pub fn limiter(
        &mut self,
        limiter: impl (FnMut(&mut T) -> &mut dyn ResourceLimiter) + Send + Sync + 'static,
    ) {
        let s = self.as_context_mut().0;
        s.limiter.get = Some(Box::new(limiter));
        s.opaque.set_limiter_hook(limiter_hook::<T>);
    }
}

/// A `ResourceLimiter` seen as the runtime's `Limiter`.
pub(crate) struct Adapter<'a>(&'a mut dyn ResourceLimiter);

/// An embedder's error travelling through the runtime: unwrapped again by
/// [`from_box`], so it comes back to the host as itself.
pub(crate) fn to_box(e: Error) -> BoxError {
    Box::new(HostError(e))
}

/// The inverse of [`to_box`]; the runtime's own errors become `Error`s.
pub(crate) fn from_box(e: BoxError) -> Error {
    match e.downcast::<HostError>() {
        Ok(h) => h.0,
        Err(e) => Error::from_boxed(e),
    }
}

impl Limiter for Adapter<'_> {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, BoxError> {
        self.0
            .memory_growing(current, desired, maximum)
            .map_err(to_box)
    }
    fn memory_grow_failed(&mut self, error: BoxError) -> Result<(), BoxError> {
        self.0.memory_grow_failed(from_box(error)).map_err(to_box)
    }
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, BoxError> {
        self.0
            .table_growing(current, desired, maximum)
            .map_err(to_box)
    }
    fn table_grow_failed(&mut self, error: BoxError) -> Result<(), BoxError> {
        self.0.table_grow_failed(from_box(error)).map_err(to_box)
    }
}

/// The runtime's way to the limiter from a libcall (see
/// `kiln_runtime::LimiterHook`).
///
/// # Safety
///
/// `store` is the `StoreInner<T>` recorded with `set_store_ptr`, and Wasm
/// of that store is running on this thread, so the host's `&mut` borrow
/// of the store is suspended inside `enter_wasm` (as for a host function
/// that Wasm calls).
unsafe fn limiter_hook<T>(store: *mut (), f: &mut dyn FnMut(Option<&mut dyn Limiter>)) {
    let s = store.cast::<StoreInner<T>>();
    // SAFETY: see above. Only two fields are borrowed, through the raw
    // pointer and never as a whole `&mut StoreInner`: the limiter and the
    // embedder's data. The libcall calling us holds `&mut` to a memory or
    // table, which lives in its own box, and no `VMContext` points into
    // either field, so nothing else aliases them during the call.
    let (get, data) = unsafe { (&mut (*s).limiter.get, &mut (*s).data) };
    match get {
        Some(g) => f(Some(&mut Adapter(g(data)))),
        None => f(None),
    }
}

impl<T> StoreInner<T> {
    /// The runtime store and the limiter, borrowed together.
    pub(crate) fn opaque_and_limiter(&mut self) -> (&mut StoreOpaque, Option<Adapter<'_>>) {
        let lim = self
            .limiter
            .get
            .as_mut()
            .map(|g| Adapter(g(&mut self.data)));
        (&mut self.opaque, lim)
    }

    /// Counts an instance of `module` against the limits, as Wasmtime
    /// does: before anything is allocated, and for good (a failed
    /// instantiation counts too; instances live as long as the store).
    pub(crate) fn bump_resource_counts(&mut self, module: &kiln_environ::Module) -> Result<()> {
        let (max_i, max_m, max_t) = match self.limiter.get.as_mut() {
            Some(g) => {
                let l = g(&mut self.data);
                (l.instances(), l.memories(), l.tables())
            }
            None => (
                DEFAULT_INSTANCE_LIMIT,
                DEFAULT_MEMORY_LIMIT,
                DEFAULT_TABLE_LIMIT,
            ),
        };
        let memories = module.memories.len() - module.num_imported_memories;
        let tables = module.tables.len() - module.num_imported_tables;
        let l = &mut self.limiter;
        bump(&mut l.instances, max_i, 1, "instance")?;
        bump(&mut l.memories, max_m, memories, "memory")?;
        bump(&mut l.tables, max_t, tables, "table")?;
        Ok(())
    }
}

fn bump(slot: &mut usize, max: usize, amount: usize, what: &str) -> Result<()> {
    let new = slot.saturating_add(amount);
    if new > max {
        bail!("resource limit exceeded: {what} count too high at {new}");
    }
    *slot = new;
    Ok(())
}
