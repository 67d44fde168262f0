//! [`Store`]: the home of instances and everything they create.

use crate::{Engine, Error, Func};
use kiln_runtime::{StoreOpaque, VMFuncRef, VMRuntimeLimits, INTERRUPT_SENTINEL};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct FuncData {
    pub(crate) func_ref: *const VMFuncRef,
    pub(crate) ty: kiln_environ::FuncType,
}

// SAFETY: the pointer names a `VMFuncRef` owned by the same store (inside
// an instance context or a host function context), which moves between
// threads with the store; it is never used without `&mut` access to it.
unsafe impl Send for FuncData {}

/// A store's own copy of a host function's funcref (see
/// [`StoreInner::own_func_ref`]).
struct OwnedFuncRef(#[allow(dead_code, reason = "owns the copy Wasm points at")] Box<VMFuncRef>);

// SAFETY: the copy's pointers name code (immutable, kept alive by the
// store or the engine) and a host function context kept alive by the
// store; the copy itself is never written after creation and moves
// between threads with its store, which only one thread uses at a time.
unsafe impl Send for OwnedFuncRef {}

/// Everything a store holds, with the embedder's data.
pub struct StoreInner<T> {
    pub(crate) opaque: StoreOpaque,
    pub(crate) engine: Engine,
    pub(crate) id: u64,
    pub(crate) funcs: Vec<FuncData>,
    pub(crate) func_by_ref: HashMap<usize, usize>,
    pub(crate) host_funcs: Vec<Arc<crate::func::HostFunc>>,
    /// This store's own copies of host functions' funcrefs, each with a
    /// `wasm_call` filled in (see [`StoreInner::own_func_ref`]), and the
    /// modules whose trampolines those copies point at.
    func_ref_copies: Vec<OwnedFuncRef>,
    trampoline_modules: Vec<Arc<kiln_runtime::CompiledModule>>,
    pub(crate) instances: Vec<crate::instance::InstanceData>,
    /// The templates (with their host functions) this store's instances
    /// were made from.
    pres: Vec<Arc<crate::instance::PreShared>>,
    /// Argument and result storage reused by `Func::new` host functions.
    pub(crate) hostcall_vals: Vec<crate::Val>,
    /// The embedder's hook for calls between host and Wasm, if any.
    call_hook: Option<CallHookFn<T>>,
    /// The resource limiter and its counts (`limits.rs`).
    pub(crate) limiter: crate::limits::StoreLimiter<T>,
    /// The epoch-deadline callback, if any (taken out while it runs).
    epoch_callback: Option<EpochCallbackFn<T>>,
    pub(crate) data: T,
}

type EpochCallbackFn<T> =
    Box<dyn FnMut(StoreContextMut<'_, T>) -> crate::Result<UpdateDeadline> + Send + Sync>;

/// What an epoch-deadline callback (see [`Store::epoch_deadline_callback`])
/// decides when the epoch reaches the deadline.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum UpdateDeadline {
    /// Stop: the Wasm traps with [`Trap::Interrupt`](crate::Trap), and the
    /// deadline stays where it is.
    Interrupt,
    /// Carry on, with the deadline this many ticks past the current epoch.
    Continue(u64),
}

impl<T> StoreInner<T> {
    fn check_fuel_enabled(&self) -> crate::Result<()> {
        if !self.engine.tunables().consume_fuel {
            return Err(Error::msg("fuel is not enabled: use Config::consume_fuel"));
        }
        Ok(())
    }

    pub(crate) fn set_fuel(&mut self, fuel: u64) -> crate::Result<()> {
        self.check_fuel_enabled()?;
        let v = -(i64::try_from(fuel).unwrap_or(i64::MAX));
        // SAFETY: the store's own thread, and `&mut` to the store: either
        // no Wasm runs, or it is suspended in a call to the host, having
        // flushed its fuel count to memory before the call (generated code
        // reloads it afterwards).
        unsafe { *self.opaque.limits.fuel_consumed.get() = v };
        Ok(())
    }

    pub(crate) fn get_fuel(&self) -> crate::Result<u64> {
        self.check_fuel_enabled()?;
        // SAFETY: as in `set_fuel`.
        let v = unsafe { *self.opaque.limits.fuel_consumed.get() };
        Ok(if v >= 0 { 0 } else { v.unsigned_abs() })
    }

    pub(crate) fn set_epoch_deadline(&mut self, ticks: u64) {
        let now = self.engine.inner.epoch.load(Ordering::Relaxed);
        // SAFETY: as in `set_fuel`; generated code loads the deadline at
        // every check.
        unsafe { *self.opaque.limits.epoch_deadline.get() = now.saturating_add(ticks) };
    }

    pub(crate) fn epoch_deadline_trap(&mut self) {
        self.epoch_callback = None;
        self.opaque.set_epoch_hook(None);
    }
}

/// The runtime's way to the epoch-deadline callback from the `new_epoch`
/// libcall (see `kiln_runtime::EpochHook`).
///
/// # Safety
///
/// `store` is the `StoreInner<T>` recorded with `set_store_ptr`, and Wasm
/// of that store is running on this thread and is suspended in the
/// libcall, which holds no reference into the store: the host's `&mut`
/// borrow is suspended inside `enter_wasm`, exactly as for a host function
/// that Wasm calls, so one `&mut StoreInner<T>` may be formed here.
unsafe fn epoch_hook<T>(store: *mut ()) -> Result<Option<u64>, kiln_runtime::BoxError> {
    // SAFETY: see above.
    let s = unsafe { &mut *store.cast::<StoreInner<T>>() };
    // Taken out while it runs, so that the callback's `&mut` to the store
    // does not alias the closure; a callback that sets a new one wins.
    let Some(mut callback) = s.epoch_callback.take() else {
        return Ok(None);
    };
    let r = callback(StoreContextMut(s));
    if s.epoch_callback.is_none() && s.opaque.has_epoch_hook() {
        s.epoch_callback = Some(callback);
    }
    match r {
        Ok(UpdateDeadline::Continue(ticks)) => Ok(Some(ticks)),
        Ok(UpdateDeadline::Interrupt) => Ok(None),
        Err(e) => Err(crate::limits::to_box(e)),
    }
}

type CallHookFn<T> =
    Box<dyn FnMut(StoreContextMut<'_, T>, CallHook) -> crate::Result<()> + Send + Sync>;

/// Which way a call crosses the boundary between host and Wasm, as told to
/// a [`Store::call_hook`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallHook {
    /// The host is about to call Wasm.
    CallingWasm,
    /// A call from the host into Wasm has returned (or trapped).
    ReturningFromWasm,
    /// Wasm is about to call a host function.
    CallingHost,
    /// A host function called by Wasm has returned.
    ReturningFromHost,
}

impl CallHook {
    /// Whether control is passing to the host.
    pub fn entering_host(&self) -> bool {
        matches!(self, CallHook::ReturningFromWasm | CallHook::CallingHost)
    }

    /// Whether control is leaving the host.
    pub fn exiting_host(&self) -> bool {
        matches!(self, CallHook::ReturningFromHost | CallHook::CallingWasm)
    }
}

/// Owns instances, memories, tables, globals and host functions, and the
/// embedder's data `T`. Wasm objects from one store cannot be used with
/// another.
pub struct Store<T> {
    inner: Box<StoreInner<T>>,
}

impl<T> Store<T> {
    /// A new store for `engine`, holding `data`.
    pub fn new(engine: &Engine, data: T) -> Store<T> {
        let opaque = StoreOpaque::new(
            engine.tunables().clone(),
            &engine.inner.epoch as *const AtomicU64,
            engine.inner.config.max_wasm_stack,
        );
        let mut inner = Box::new(StoreInner {
            opaque,
            engine: engine.clone(),
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            funcs: Vec::new(),
            func_by_ref: HashMap::new(),
            host_funcs: Vec::new(),
            func_ref_copies: Vec::new(),
            trampoline_modules: Vec::new(),
            instances: Vec::new(),
            pres: Vec::new(),
            hostcall_vals: Vec::new(),
            call_hook: None,
            limiter: Default::default(),
            epoch_callback: None,
            data,
        });
        let p: *mut StoreInner<T> = &mut *inner;
        inner.opaque.set_store_ptr(p.cast());
        inner.opaque.set_pool(engine.inner.pool.clone());
        inner
            .opaque
            .set_memory_cache(engine.inner.memory_cache.clone());
        Store { inner }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The embedder's data.
    pub fn data(&self) -> &T {
        &self.inner.data
    }

    /// The embedder's data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.inner.data
    }

    /// Consumes the store, returning its data.
    pub fn into_data(self) -> T {
        self.inner.data
    }

    /// Sets the fuel left to `fuel` (see
    /// [`Config::consume_fuel`](crate::Config::consume_fuel)); fails when
    /// fuel is not enabled.
    pub fn set_fuel(&mut self, fuel: u64) -> crate::Result<()> {
        self.inner.set_fuel(fuel)
    }

    /// The fuel left; fails when fuel is not enabled.
    pub fn get_fuel(&self) -> crate::Result<u64> {
        self.inner.get_fuel()
    }

    /// Makes reaching the epoch deadline trap with
    /// [`Trap::Interrupt`](crate::Trap), dropping a callback set with
    /// [`Store::epoch_deadline_callback`]. This is a store's behaviour
    /// until told otherwise.
    pub fn epoch_deadline_trap(&mut self) {
        self.inner.epoch_deadline_trap();
    }

    /// Calls `callback` each time the epoch reaches this store's deadline
    /// (see [`Config::epoch_interruption`](crate::Config::epoch_interruption)),
    /// at the function entry or loop header of the Wasm that noticed. The
    /// callback gets the whole store, as a host function does, and decides
    /// with [`UpdateDeadline`]: carry on with a deadline some ticks past
    /// the current epoch, or trap with `Interrupt`. An error it returns is
    /// the error of the interrupted call. Replaces an earlier callback.
    ///
    /// Kiln has no async support, so there is no `Yield` variant.
    pub fn epoch_deadline_callback(
        &mut self,
        callback: impl FnMut(StoreContextMut<'_, T>) -> crate::Result<UpdateDeadline>
            + Send
            + Sync
            + 'static,
    ) {
        self.inner.epoch_callback = Some(Box::new(callback));
        self.inner.opaque.set_epoch_hook(Some(epoch_hook::<T>));
    }

    /// Sets the epoch deadline `ticks` epochs from now (see
    /// [`Config::epoch_interruption`](crate::Config::epoch_interruption)).
    pub fn set_epoch_deadline(&mut self, ticks: u64) {
        self.inner.set_epoch_deadline(ticks);
    }

    /// Calls `hook` at every crossing between host and Wasm in this store
    /// (see [`CallHook`]): before and after each call from the host into
    /// Wasm, and before and after each host function Wasm calls. An error
    /// from the hook fails that call: the host's call returns it, and in
    /// Wasm it traps like an error of the host function. The hook is not
    /// called again while it runs (a call it makes into Wasm is not
    /// hooked). Replaces an earlier hook.
    pub fn call_hook(
        &mut self,
        hook: impl FnMut(StoreContextMut<'_, T>, CallHook) -> crate::Result<()> + Send + Sync + 'static,
    ) {
        self.inner.call_hook = Some(Box::new(hook));
    }

    /// A handle that interrupts Wasm running in this store from any thread.
    pub fn interrupt_handle(&self) -> InterruptHandle {
        InterruptHandle {
            limits: self.inner.opaque.limits.clone(),
        }
    }
}

impl<T: Default> Default for Store<T> {
    /// A store of a default [`Engine`], with `T::default()` as its data.
    fn default() -> Store<T> {
        Store::new(&Engine::default(), T::default())
    }
}

/// Interrupts Wasm running in a store, from any thread.
///
/// `interrupt` makes the next function entry or loop back-edge in that
/// store trap with [`Trap::Interrupt`](crate::Trap). If no Wasm is
/// running, the request stays pending and takes effect at the next call
/// into Wasm.
#[derive(Clone)]
pub struct InterruptHandle {
    limits: Arc<VMRuntimeLimits>,
}

impl InterruptHandle {
    /// Requests an interrupt.
    pub fn interrupt(&self) {
        self.limits
            .stack_limit
            .store(INTERRUPT_SENTINEL, Ordering::SeqCst);
    }
}

/// Borrowed access to a store, from a [`Store`] or a [`Caller`](crate::Caller).
pub struct StoreContextMut<'a, T>(pub(crate) &'a mut StoreInner<T>);

/// Shared access to a store.
pub struct StoreContext<'a, T>(pub(crate) &'a StoreInner<T>);

impl<T> StoreContextMut<'_, T> {
    /// The embedder's data.
    pub fn data(&self) -> &T {
        &self.0.data
    }
    /// The embedder's data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.0.data
    }
    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }
    /// Sets the fuel left: see [`Store::set_fuel`].
    pub fn set_fuel(&mut self, fuel: u64) -> crate::Result<()> {
        self.0.set_fuel(fuel)
    }
    /// The fuel left: see [`Store::get_fuel`].
    pub fn get_fuel(&self) -> crate::Result<u64> {
        self.0.get_fuel()
    }
    /// Sets the epoch deadline: see [`Store::set_epoch_deadline`].
    pub fn set_epoch_deadline(&mut self, ticks: u64) {
        self.0.set_epoch_deadline(ticks);
    }
    /// Makes the deadline trap: see [`Store::epoch_deadline_trap`].
    pub fn epoch_deadline_trap(&mut self) {
        self.0.epoch_deadline_trap();
    }
}

/// Types that give shared access to a store.
pub trait AsContext {
    /// The store's data type.
    type Data;
    /// Borrows the store.
    fn as_context(&self) -> StoreContext<'_, Self::Data>;
}

/// Types that give mutable access to a store.
pub trait AsContextMut: AsContext {
    /// Borrows the store mutably.
    fn as_context_mut(&mut self) -> StoreContextMut<'_, Self::Data>;
}

impl<T> AsContext for Store<T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(&self.inner)
    }
}
impl<T> AsContextMut for Store<T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(&mut self.inner)
    }
}
impl<T> AsContext for StoreContext<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.0)
    }
}
impl<T> AsContext for StoreContextMut<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext(self.0)
    }
}
impl<T> AsContextMut for StoreContextMut<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut(self.0)
    }
}
impl<T: AsContext> AsContext for &T {
    type Data = T::Data;
    fn as_context(&self) -> StoreContext<'_, T::Data> {
        T::as_context(self)
    }
}
impl<T: AsContext> AsContext for &mut T {
    type Data = T::Data;
    fn as_context(&self) -> StoreContext<'_, T::Data> {
        T::as_context(self)
    }
}
impl<T: AsContextMut> AsContextMut for &mut T {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T::Data> {
        T::as_context_mut(self)
    }
}

impl<T> StoreInner<T> {
    /// Runs the call hook, if any, for `kind`: one branch when there is
    /// none.
    #[inline(always)]
    pub(crate) fn call_hook(&mut self, kind: CallHook) -> crate::Result<()> {
        if self.call_hook.is_none() {
            return Ok(());
        }
        self.call_hook_slow(kind)
    }

    #[cold]
    #[inline(never)]
    fn call_hook_slow(&mut self, kind: CallHook) -> crate::Result<()> {
        // Taken out while it runs, so calls it makes are not hooked and it
        // can be given the store.
        let Some(mut hook) = self.call_hook.take() else {
            return Ok(());
        };
        let r = hook(StoreContextMut(self), kind);
        if self.call_hook.is_none() {
            self.call_hook = Some(hook);
        }
        r
    }

    /// Registers a function by its `VMFuncRef`, deduplicating.
    pub(crate) fn push_func(
        &mut self,
        func_ref: *const VMFuncRef,
        ty: kiln_environ::FuncType,
    ) -> Func {
        if let Some(i) = self.func_by_ref.get(&(func_ref as usize)) {
            return Func {
                store: self.id,
                index: *i,
            };
        }
        self.funcs.push(FuncData { func_ref, ty });
        let index = self.funcs.len() - 1;
        self.func_by_ref.insert(func_ref as usize, index);
        Func {
            store: self.id,
            index,
        }
    }

    /// A funcref for function `index` that Wasm can call: its own if it
    /// has a `wasm_call` entry, otherwise (a `Func::wrap` host function,
    /// whose funcref is shared by every store and thread and never
    /// written after creation) a copy owned by this store, with
    /// `wasm_call` set to `wasm_call`, a wasm-to-native trampoline of the
    /// function's type. The copy then stands for the function in this
    /// store, so it is made once. `module` is the module holding the
    /// trampoline, kept alive with the store; `None` for the engine's
    /// trampolines, which live as long as the engine.
    ///
    /// Post-invariant: `self.funcs[index].func_ref` has a non-null
    /// `wasm_call`.
    pub(crate) fn own_func_ref(
        &mut self,
        index: usize,
        wasm_call: impl FnOnce()
            -> crate::Result<(*const u8, Option<Arc<kiln_runtime::CompiledModule>>)>,
    ) -> crate::Result<*const VMFuncRef> {
        let fr = self.funcs[index].func_ref;
        // SAFETY: funcrefs registered in the store are live and, once
        // published, never written.
        if unsafe { !(*fr).wasm_call.is_null() } {
            return Ok(fr);
        }
        let (tramp, module) = wasm_call()?;
        if let Some(m) = module {
            if !self.trampoline_modules.iter().any(|k| Arc::ptr_eq(k, &m)) {
                self.trampoline_modules.push(m);
            }
        }
        // SAFETY: as above; the copy shares the host context (`vmctx`),
        // which the store keeps alive through `host_funcs`.
        let copy = Box::new(VMFuncRef {
            wasm_call: tramp,
            ..unsafe { *fr }
        });
        let p: *const VMFuncRef = &*copy;
        self.func_ref_copies.push(OwnedFuncRef(copy));
        self.funcs[index].func_ref = p;
        self.func_by_ref.insert(p as usize, index);
        Ok(p)
    }

    /// Keeps `pre` (what an instance's context points at) alive as long
    /// as the store.
    pub(crate) fn keep_pre(&mut self, pre: &Arc<crate::instance::PreShared>) {
        if !self.pres.iter().rev().take(4).any(|p| Arc::ptr_eq(p, pre)) {
            self.pres.push(pre.clone());
        }
    }

    /// The `Func` for a raw funcref from Wasm (non-null).
    pub(crate) fn func_from_raw(&mut self, func_ref: *const VMFuncRef) -> Func {
        if let Some(i) = self.func_by_ref.get(&(func_ref as usize)) {
            return Func {
                store: self.id,
                index: *i,
            };
        }
        // SAFETY: a non-null funcref from Wasm points at a live VMFuncRef
        // owned by this store.
        let ti = unsafe { (*func_ref).type_index };
        let ty = self
            .engine
            .inner
            .types
            .lookup(ti)
            .unwrap_or_else(|| kiln_environ::FuncType::new([], []));
        self.push_func(func_ref, ty)
    }
}

impl<'a, T> From<&'a mut Store<T>> for StoreContextMut<'a, T> {
    fn from(s: &'a mut Store<T>) -> Self {
        s.as_context_mut()
    }
}

impl<'a, T> From<&'a mut crate::Caller<'_, T>> for StoreContextMut<'a, T> {
    fn from(c: &'a mut crate::Caller<'_, T>) -> Self {
        c.as_context_mut()
    }
}
