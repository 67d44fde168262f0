//! Resource limits: the hook through which the embedder decides whether a
//! memory or table may grow.
//!
//! Every growth goes through [`LinearMemory::grow_limited`] or
//! [`Table::grow_limited`] with the store's [`Limiter`], if it has one: a
//! `memory.grow` or `table.grow` executed by Wasm (the libcalls, which
//! reach the limiter through the instance's [`LimiterHook`]), a grow
//! asked for by the host, and the creation of a memory or table at
//! instantiation (a growth from zero to the minimum). The order of
//! questions is Wasmtime's:
//!
//! 1. a growth by zero always succeeds and asks nothing;
//! 2. the limiter is asked first (`memory_growing`/`table_growing`); a
//!    `false` fails the growth, an error traps;
//! 3. past the type's or allocator's maximum, or when the address space or
//!    the pool slot runs out, the growth fails and the limiter hears why
//!    (`memory_grow_failed`/`table_grow_failed`), which may turn the
//!    failure into a trap by returning an error.
//!
//! A failed growth is `Ok(None)` (-1 to Wasm); an error is `Err`, which a
//! libcall turns into a trap of its Wasm caller (see
//! [`raise_from_libcall`](crate::traphandlers)) and the host API into an
//! error. Nothing here panics or aborts.
//!
//! [`LinearMemory::grow_limited`]: crate::LinearMemory::grow_limited
//! [`Table::grow_limited`]: crate::Table::grow_limited

/// An error from a limiter, or the reason a growth failed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Decides whether memories and tables may grow (the runtime side of
/// `kiln::ResourceLimiter`). Sizes are in bytes for memories and in
/// elements for tables; `maximum` is the type's or the allocator's
/// maximum, `None` if unbounded.
pub trait Limiter {
    /// A memory is about to grow from `current` to `desired` bytes.
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, BoxError>;
    /// A memory growth failed after the limiter allowed it; an error makes
    /// the failure a trap.
    fn memory_grow_failed(&mut self, error: BoxError) -> Result<(), BoxError>;
    /// A table is about to grow from `current` to `desired` elements.
    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, BoxError>;
    /// A table growth failed after the limiter allowed it; an error makes
    /// the failure a trap.
    fn table_grow_failed(&mut self, error: BoxError) -> Result<(), BoxError>;
}

/// How a libcall reaches its store's limiter: called with the address the
/// store recorded with `StoreOpaque::set_store_ptr` and a callback that
/// receives the limiter (or `None` when the store has none).
///
/// # Safety
///
/// Called only from a libcall, while Wasm of that store runs on this
/// thread; the hook may touch only the parts of the store that no
/// `VMContext` points at (the embedder's data and the limiter itself).
pub type LimiterHook = unsafe fn(store: *mut (), f: &mut dyn FnMut(Option<&mut dyn Limiter>));

/// Why a growth that the limiter allowed did not happen (what
/// `memory_grow_failed`/`table_grow_failed` hear).
#[derive(Debug, thiserror::Error)]
pub enum GrowFailure {
    /// The memory's maximum (declared, or its allocator's) is too small.
    #[error("memory maximum size exceeded")]
    MemoryMaximum,
    /// The table's maximum (declared, or its allocator's) is too small.
    #[error("table maximum size exceeded")]
    TableMaximum,
    /// The new size does not fit in the address space.
    #[error("overflow calculating the new size")]
    Overflow,
    /// Making the new pages accessible failed.
    #[error("failed to make memory accessible: {0}")]
    Protect(std::io::Error),
}

/// Reborrows an optional limiter for one call, so that it can be passed on
/// again afterwards.
pub fn reborrow<'a>(l: &'a mut Option<&mut dyn Limiter>) -> Option<&'a mut dyn Limiter> {
    match l {
        Some(l) => Some(&mut **l),
        None => None,
    }
}

/// How the `new_epoch` libcall reaches its store's epoch-deadline
/// callback: called with the address the store recorded with
/// `StoreOpaque::set_store_ptr`, once the engine's epoch has reached the
/// store's deadline. `Ok(Some(ticks))` moves the deadline `ticks` epochs
/// past the current epoch and lets Wasm carry on; `Ok(None)` makes the
/// Wasm caller trap with `Interrupt`; an error makes it trap with that
/// error.
///
/// # Safety
///
/// Called only from the libcall, while Wasm of that store runs on this
/// thread and holds no borrow of the store: the hook may use the whole
/// store, as a host function called by Wasm may (including calling into
/// Wasm again).
pub type EpochHook = unsafe fn(store: *mut ()) -> Result<Option<u64>, BoxError>;
