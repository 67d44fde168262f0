//! Instances, the store that owns them, and the libcalls generated code
//! makes into them.
//!
//! An [`Instance`] owns one `VMContext` allocation laid out by
//! [`VMOffsets`]. Everything the context points at (memories, tables,
//! host-created globals, host functions, other instances) is owned by the
//! same [`StoreOpaque`] in boxes that never move, which is what makes the
//! raw pointers in the context valid: **Invariant:** nothing a `VMContext`
//! points at is freed before the store is dropped.

use crate::limits::{BoxError, EpochHook, Limiter, LimiterHook};
use crate::memory::{Allocator, LinearMemory, MemoryError};
use crate::module::CompiledModule;
use crate::pool::{MemoryCache, Pool, PoolError, Slot};
use crate::table::{Table, TableError};
use crate::template::InstanceTemplate;
use crate::vmcontext::*;
use kiln_environ::*;
use std::alloc::Layout;
use std::sync::Arc;

/// Why instantiation failed.
#[derive(Debug, thiserror::Error)]
pub enum InstantiationError {
    /// Creating a memory or table failed.
    #[error("resource: {0}")]
    Resource(String),
    /// A segment did not fit (the spec's instantiation trap).
    #[error(transparent)]
    Trap(#[from] Trap),
    /// The pooling allocator refused the instance (a pool limit).
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The store's resource limiter failed (its own error, as it gave it).
    #[error("{0}")]
    Limiter(BoxError),
    /// The loaded artifact's frame table is damaged (see
    /// [`CompiledModule::verify_frames`]), so none of its code may run.
    #[error(transparent)]
    Artifact(#[from] kiln_environ::ArtifactError),
}

/// Resolved imports, in the module's import order per kind.
#[derive(Default)]
pub struct Imports {
    /// The functions the template does not hold (see
    /// [`InstanceTemplate::new`]), one for each of its `None` entries.
    pub funcs: Vec<VMFunctionImport>,
    /// Tables.
    pub tables: Vec<*mut Table>,
    /// Memories.
    pub memories: Vec<*mut LinearMemory>,
    /// Globals.
    pub globals: Vec<*mut VMGlobalDefinition>,
}

/// An instance of a compiled module.
pub struct Instance {
    module: Arc<CompiledModule>,
    offsets: VMOffsets,
    vmctx: *mut u8,
    layout: Layout,
    /// The pool slot holding the context, or `None` for a heap allocation
    /// of `layout`.
    vmctx_slot: Option<Slot>,
    memories: Vec<*mut LinearMemory>,
    tables: Vec<*mut Table>,
    dropped_data: Vec<bool>,
    dropped_elems: Vec<bool>,
    /// How the grow libcalls reach the store's limiter.
    limiter_hook: Option<LimiterHook>,
    /// How the `new_epoch` libcall reaches the store's deadline callback.
    epoch_hook: Option<EpochHook>,
}

// SAFETY: the context allocation is this instance's own, and its other
// raw pointers name memories and tables of the same store; none is tied
// to a thread. The instance moves between threads only with its store.
// Not `Sync`: generated code mutates the context (globals, tables) through
// raw pointers without synchronization.
unsafe impl Send for Instance {}

impl Drop for Instance {
    fn drop(&mut self) {
        match self.vmctx_slot.take() {
            // The pool zeroes what the context used (see `pool.rs`).
            Some(s) => s.pool.put_instance(s.index, self.layout.size()),
            // SAFETY: allocated in `StoreOpaque::instantiate` with this
            // layout.
            None => unsafe { std::alloc::dealloc(self.vmctx, self.layout) },
        }
    }
}

/// Builtin function pointers, in `BuiltinFunction::ALL` order.
#[repr(C)]
pub struct VMBuiltinFunctions {
    ptrs: [*const u8; BuiltinFunction::ALL.len()],
}

// SAFETY: a table of pointers to `extern "C"` Rust functions, built as a
// constant and never written, so sharing it between threads only reads
// immutable data. (Each libcall gets its store through its `vmctx`.)
unsafe impl Sync for VMBuiltinFunctions {}

/// The Rust type of a libcall parameter or result declared as `$t` (a
/// `kiln_environ::BuiltinType`).
macro_rules! builtin_ty {
    (Pointer) => { *mut u8 };
    (I32) => { u32 };
    (I64) => { u64 };
}

/// The table, generated from the one declaration of the libcalls
/// (`kiln_environ::foreach_builtin_function!`): one entry per libcall, in
/// declaration order, each coerced to the declared signature first, so a
/// libcall whose parameters or result differ from what the compiler calls
/// it with does not compile.
macro_rules! builtin_table {
    ($($(#[$doc:meta])* $name:ident($($p:ident),*) $(-> $r:ident)?;)*) => {
        static BUILTINS: VMBuiltinFunctions = VMBuiltinFunctions {
            ptrs: [$({
                let f: unsafe extern "C" fn(*mut VMContext $(, builtin_ty!($p))*) $(-> builtin_ty!($r))? =
                    libcalls::$name;
                f as *const u8
            },)*],
        };
    };
}

kiln_environ::foreach_builtin_function!(builtin_table);

impl Instance {
    fn at<T>(&self, offset: u32) -> *mut T {
        // SAFETY: offsets come from `VMOffsets` for this module and lie
        // within the allocation.
        unsafe { self.vmctx.add(offset as usize).cast() }
    }

    /// The `VMContext`.
    pub fn vmctx(&self) -> *mut VMContext {
        self.vmctx.cast()
    }

    /// The compiled module.
    pub fn module(&self) -> &Arc<CompiledModule> {
        &self.module
    }

    /// Recovers the instance from a context.
    ///
    /// # Safety
    ///
    /// `vmctx` must be the context of a live instance.
    pub unsafe fn from_vmctx<'a>(vmctx: *mut VMContext) -> &'a mut Instance {
        // SAFETY: the header's INSTANCE field points at the owning
        // `Instance`, whose box outlives the context.
        unsafe {
            &mut **(vmctx.cast::<u8>().add(VMOffsets::INSTANCE as usize) as *mut *mut Instance)
        }
    }

    /// The `VMFuncRef` of function `f` (imported or defined), or null if a
    /// defined function does not escape.
    pub fn func_ref(&self, f: FuncIndex) -> *const VMFuncRef {
        let m = self.module.module();
        match m.defined_func_index(f) {
            None => {
                let imp: *mut VMFunctionImport = self.at(self.offsets.imported_function(f));
                // SAFETY: initialised during instantiation.
                unsafe { (*imp).func_ref }
            }
            Some(d) => match m.func_ref_slots[d] {
                Some(slot) => self.at(self.offsets.func_ref(slot)),
                None => std::ptr::null(),
            },
        }
    }

    /// Memory `i`.
    pub fn memory(&self, i: MemoryIndex) -> *mut LinearMemory {
        self.memories[i.index()]
    }

    /// Table `i`.
    pub fn table(&self, i: TableIndex) -> *mut Table {
        self.tables[i.index()]
    }

    /// The definition of global `g`.
    pub fn global(&self, g: GlobalIndex) -> *mut VMGlobalDefinition {
        let m = self.module.module();
        match m.defined_global_index(g) {
            Some(d) => self.at(self.offsets.defined_global(d)),
            // SAFETY: imported global pointers are set at instantiation.
            None => unsafe { *self.at::<*mut VMGlobalDefinition>(self.offsets.imported_global(g)) },
        }
    }

    fn eval(&self, expr: &ConstExpr) -> ValRaw {
        eval_with(
            expr,
            // SAFETY: the global's definition is live (validated index).
            |g| unsafe { (*self.global(g)).get() },
            |f| self.func_ref(f) as usize,
        )
    }

    fn elem_items(&self, seg: &ElemSegment) -> Vec<usize> {
        match &seg.items {
            ElemItems::Functions(fs) => fs.iter().map(|f| self.func_ref(*f) as usize).collect(),
            ElemItems::Expressions(es) => es.iter().map(|e| self.eval(e).get_ptr()).collect(),
        }
    }

    // --- Operations shared by libcalls and the host API. ---

    /// `memory.fill`.
    pub fn memory_fill(&mut self, m: MemoryIndex, dst: u64, val: u8, len: u64) -> Result<(), Trap> {
        // SAFETY: memory pointers are live for the store's lifetime.
        let mem = unsafe { &mut *self.memory(m) };
        let r = range(dst, len, mem.byte_size()).ok_or(Trap::MemoryOutOfBounds)?;
        mem.data_mut()[r].fill(val);
        Ok(())
    }

    /// `memory.copy`.
    pub fn memory_copy(
        &mut self,
        dm: MemoryIndex,
        dst: u64,
        sm: MemoryIndex,
        src: u64,
        len: u64,
    ) -> Result<(), Trap> {
        // SAFETY: memory pointers are live; the two may be the same memory,
        // so only raw pointers are used for the copy.
        unsafe {
            let (d, s) = (&*self.memory(dm), &*self.memory(sm));
            let dr = range(dst, len, d.byte_size()).ok_or(Trap::MemoryOutOfBounds)?;
            let sr = range(src, len, s.byte_size()).ok_or(Trap::MemoryOutOfBounds)?;
            let dp = (*d.vmmemory()).base.add(dr.start);
            let sp = (*s.vmmemory()).base.add(sr.start);
            std::ptr::copy(sp, dp, dr.len());
        }
        Ok(())
    }

    /// `memory.init`.
    pub fn memory_init(
        &mut self,
        m: MemoryIndex,
        data: DataIndex,
        dst: u64,
        src: u32,
        len: u32,
    ) -> Result<(), Trap> {
        let module = self.module.clone();
        let bytes: &[u8] = if self.dropped_data[data.index()] {
            &[]
        } else {
            &module.module().data[data].data
        };
        let sr =
            range(u64::from(src), u64::from(len), bytes.len()).ok_or(Trap::MemoryOutOfBounds)?;
        // SAFETY: memory pointers are live for the store's lifetime.
        let mem = unsafe { &mut *self.memory(m) };
        let dr = range(dst, u64::from(len), mem.byte_size()).ok_or(Trap::MemoryOutOfBounds)?;
        mem.data_mut()[dr].copy_from_slice(&bytes[sr]);
        Ok(())
    }

    /// `table.init`.
    pub fn table_init(
        &mut self,
        t: TableIndex,
        elem: ElemIndex,
        dst: u32,
        src: u32,
        len: u32,
    ) -> Result<(), Trap> {
        let module = self.module.clone();
        let items = if self.dropped_elems[elem.index()] {
            Vec::new()
        } else {
            self.elem_items(&module.module().elems[elem])
        };
        let sr =
            range(u64::from(src), u64::from(len), items.len()).ok_or(Trap::TableOutOfBounds)?;
        // SAFETY: table pointers are live for the store's lifetime.
        let table = unsafe { &mut *self.table(t) };
        let dr = range(u64::from(dst), u64::from(len), table.size() as usize)
            .ok_or(Trap::TableOutOfBounds)?;
        table.elements_mut()[dr].copy_from_slice(&items[sr]);
        Ok(())
    }

    /// `table.copy`.
    pub fn table_copy(
        &mut self,
        dt: TableIndex,
        st: TableIndex,
        dst: u32,
        src: u32,
        len: u32,
    ) -> Result<(), Trap> {
        // SAFETY: table pointers are live; when both are the same table
        // the copy goes through a temporary.
        unsafe {
            let s = &*self.table(st);
            let sr = range(u64::from(src), u64::from(len), s.size() as usize)
                .ok_or(Trap::TableOutOfBounds)?;
            let tmp: Vec<usize> = s.elements()[sr].to_vec();
            let d = &mut *self.table(dt);
            let dr = range(u64::from(dst), u64::from(len), d.size() as usize)
                .ok_or(Trap::TableOutOfBounds)?;
            d.elements_mut()[dr].copy_from_slice(&tmp);
        }
        Ok(())
    }
}

/// Evaluates a constant expression, reading globals with `global` and
/// taking functions' funcref addresses with `func`.
pub(crate) fn eval_with(
    expr: &ConstExpr,
    global: impl Fn(GlobalIndex) -> ValRaw,
    func: impl Fn(FuncIndex) -> usize,
) -> ValRaw {
    let mut stack: Vec<ValRaw> = Vec::new();
    for op in &expr.ops {
        let v = match *op {
            ConstOp::I32Const(v) => ValRaw::i32(v),
            ConstOp::I64Const(v) => ValRaw::i64(v),
            ConstOp::F32Const(v) => ValRaw::f32(v),
            ConstOp::F64Const(v) => ValRaw::f64(v),
            ConstOp::V128Const(v) => ValRaw::u128(v),
            ConstOp::GlobalGet(g) => global(g),
            ConstOp::RefNull(_) => ValRaw::ptr(0),
            ConstOp::RefFunc(f) => ValRaw::ptr(func(f)),
            ConstOp::I32Add | ConstOp::I32Sub | ConstOp::I32Mul => {
                let b = stack.pop().unwrap_or_default().get_i32();
                let a = stack.pop().unwrap_or_default().get_i32();
                ValRaw::i32(match *op {
                    ConstOp::I32Add => a.wrapping_add(b),
                    ConstOp::I32Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                })
            }
            ConstOp::I64Add | ConstOp::I64Sub | ConstOp::I64Mul => {
                let b = stack.pop().unwrap_or_default().get_i64();
                let a = stack.pop().unwrap_or_default().get_i64();
                ValRaw::i64(match *op {
                    ConstOp::I64Add => a.wrapping_add(b),
                    ConstOp::I64Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                })
            }
        };
        if expr.ops.len() == 1 {
            return v;
        }
        stack.push(v);
    }
    stack.pop().unwrap_or_default()
}

/// The builtin function table every context points at.
pub(crate) fn builtins() -> *const VMBuiltinFunctions {
    &BUILTINS
}

/// The funcref of defined function `d` of `module`, with a null `vmctx`
/// (which each instance writes).
pub(crate) fn defined_func_ref(module: &CompiledModule, d: DefinedFuncIndex) -> VMFuncRef {
    let m = module.module();
    let info = &module.info().funcs[d];
    VMFuncRef {
        array_call: info
            .array_to_wasm
            .map_or(std::ptr::null(), |l| module.text_addr(l)),
        native_call: info
            .native_to_wasm
            .map_or(std::ptr::null(), |l| module.text_addr(l)),
        wasm_call: module.wasm_call(d),
        type_index: module.type_id(m.functions[m.func_index(d)].type_index),
        vmctx: std::ptr::null_mut(),
    }
}

fn range(start: u64, len: u64, size: usize) -> Option<std::ops::Range<usize>> {
    let end = start.checked_add(len)?;
    if end > size as u64 {
        return None;
    }
    Some(start as usize..end as usize)
}

/// Host data behind an `externref`.
pub type ExternData = Box<dyn std::any::Any + Send + Sync>;

/// The runtime side of a store: owns everything generated code can reach.
pub struct StoreOpaque {
    /// The limits generated code reads (shared with interrupt handles).
    pub limits: Arc<VMRuntimeLimits>,
    /// Every memory created in this store.
    pub memories: Vec<Box<LinearMemory>>,
    /// Every table created in this store.
    pub tables: Vec<Box<Table>>,
    /// Globals created by the host.
    pub globals: Vec<Box<VMGlobalDefinition>>,
    /// Instances.
    pub instances: Vec<Box<Instance>>,
    /// Externref payloads: an externref is a pointer to one of these boxes.
    /// They live as long as the store (there is no collector).
    pub externrefs: Vec<Box<ExternData>>,
    /// Every module instantiated in this store, kept alive as long as the
    /// store: the signal handler's code list points into them, and host
    /// functions imported by their instances call their trampolines.
    modules: Vec<Arc<CompiledModule>>,
    /// A minimal context passed as `caller_vmctx` when the host calls.
    store_vmctx: Box<[u64; (VMOffsets::HEADER_SIZE / 8) as usize]>,
    /// Settings baked into code.
    pub tunables: Tunables,
    /// How the grow libcalls reach the embedder's limiter, if it has one.
    limiter_hook: Option<LimiterHook>,
    /// How `new_epoch` reaches the embedder's deadline callback, if any.
    epoch_hook: Option<EpochHook>,
    /// The engine's pooling allocator, or `None` to allocate on demand.
    pool: Option<Arc<Pool>>,
    /// On demand, the engine's cache of memory reservations, if any.
    memory_cache: Option<Arc<MemoryCache>>,
}

impl From<MemoryError> for InstantiationError {
    fn from(e: MemoryError) -> InstantiationError {
        match e {
            MemoryError::Limiter(e) => InstantiationError::Limiter(e),
            MemoryError::Pool(e) => InstantiationError::Pool(e),
            e => InstantiationError::Resource(e.to_string()),
        }
    }
}

impl From<TableError> for InstantiationError {
    fn from(e: TableError) -> InstantiationError {
        match e {
            TableError::Limiter(e) => InstantiationError::Limiter(e),
            TableError::Pool(e) => InstantiationError::Pool(e),
            e => InstantiationError::Resource(e.to_string()),
        }
    }
}

// SAFETY: every raw pointer inside names data this store owns (instances,
// memories, tables, globals, externref payloads, its host context), none
// tied to a thread; `Send` lets the whole store move to another thread
// while no call into it is active (moving needs ownership, a call needs
// `&mut`). Not `Sync`: generated code mutates what it points at.
unsafe impl Send for StoreOpaque {}

impl StoreOpaque {
    /// A new, empty store.
    pub fn new(
        tunables: Tunables,
        epoch: *const std::sync::atomic::AtomicU64,
        max_wasm_stack: usize,
    ) -> StoreOpaque {
        let limits = Arc::new(VMRuntimeLimits {
            epoch_ptr: epoch,
            max_wasm_stack,
            ..VMRuntimeLimits::default()
        });
        let mut s = StoreOpaque {
            limits,
            memories: Vec::new(),
            tables: Vec::new(),
            globals: Vec::new(),
            instances: Vec::new(),
            externrefs: Vec::new(),
            modules: Vec::new(),
            store_vmctx: Box::new([0; (VMOffsets::HEADER_SIZE / 8) as usize]),
            tunables,
            limiter_hook: None,
            epoch_hook: None,
            pool: None,
            memory_cache: None,
        };
        s.store_vmctx[0] = u64::from(VMCONTEXT_MAGIC);
        s.store_vmctx[(VMOffsets::RUNTIME_LIMITS / 8) as usize] = Arc::as_ptr(&s.limits) as u64;
        s.store_vmctx[(VMOffsets::BUILTINS / 8) as usize] = &BUILTINS as *const _ as u64;
        s
    }

    /// Records the address of the API-level store (read by host functions
    /// through `caller_vmctx`).
    pub fn set_store_ptr(&mut self, p: *mut ()) {
        self.store_vmctx[(VMOffsets::STORE / 8) as usize] = p as u64;
        for i in &mut self.instances {
            // SAFETY: STORE is within every context's header.
            unsafe { *i.at::<*mut ()>(VMOffsets::STORE) = p };
        }
    }

    /// Makes `memory.grow` and `table.grow` in this store's instances, the
    /// current ones and those to come, consult the limiter through `hook`
    /// (called with the address given to [`StoreOpaque::set_store_ptr`]).
    pub fn set_limiter_hook(&mut self, hook: LimiterHook) {
        self.limiter_hook = Some(hook);
        for i in &mut self.instances {
            i.limiter_hook = Some(hook);
        }
    }

    /// Makes a passed epoch deadline in this store's instances, the
    /// current ones and those to come, call `hook` (with the address given
    /// to [`StoreOpaque::set_store_ptr`]) instead of trapping at once;
    /// `None` goes back to trapping.
    pub fn set_epoch_hook(&mut self, hook: Option<EpochHook>) {
        self.epoch_hook = hook;
        for i in &mut self.instances {
            i.epoch_hook = hook;
        }
    }

    /// Every module instantiated in this store, in order of first use.
    pub fn modules(&self) -> &[Arc<CompiledModule>] {
        &self.modules
    }

    /// Whether a hook set with [`StoreOpaque::set_epoch_hook`] is in place.
    pub fn has_epoch_hook(&self) -> bool {
        self.epoch_hook.is_some()
    }

    /// Makes later instantiations take their contexts, memories and tables
    /// from `pool` (the engine's) instead of allocating them on demand.
    pub fn set_pool(&mut self, pool: Option<Arc<Pool>>) {
        self.pool = pool;
    }

    /// Makes later on-demand instantiations take memory reservations from
    /// `cache` (the engine's) and give them back to it.
    pub fn set_memory_cache(&mut self, cache: Option<Arc<MemoryCache>>) {
        self.memory_cache = cache;
    }

    /// The context passed as `caller_vmctx` for calls from the host.
    pub fn host_vmctx(&self) -> *mut VMContext {
        self.store_vmctx.as_ptr() as *mut VMContext
    }

    /// The API-level store recorded with [`StoreOpaque::set_store_ptr`].
    ///
    /// # Safety
    ///
    /// `vmctx` must be a live instance context or a store's host context.
    pub unsafe fn store_ptr_from_vmctx(vmctx: *mut VMContext) -> *mut () {
        // SAFETY: STORE is within every context's header.
        unsafe { *(vmctx.cast::<u8>().add(VMOffsets::STORE as usize) as *const *mut ()) }
    }

    /// Instantiates `template`'s module with `imports` (those the template
    /// does not hold). Segments are applied in order; on a segment trap
    /// the writes before it stay visible (as the spec requires for
    /// imported tables and memories) and the instance stays owned by the
    /// store, unreachable. `limiter`, if any, is asked for each defined
    /// memory's and table's minimum size.
    ///
    /// The context is the template's image, copied, plus the per-instance
    /// pointers (see `template.rs`).
    pub fn instantiate(
        &mut self,
        template: &InstanceTemplate,
        imports: Imports,
        mut limiter: Option<&mut dyn Limiter>,
    ) -> Result<usize, InstantiationError> {
        let module = &template.module;
        module.verify_frames()?;
        // Before any of its code can run (the start function, or a
        // function an element segment stores into an imported table).
        if self.limits.code.insert(module) {
            self.modules.push(module.clone());
        }
        let m = module.module();
        let layout = template.layout;
        let pool = self.pool.clone();
        if let Some(p) = &pool {
            // Every pool limit of the module, before anything is taken.
            p.check_module(m, layout.size())?;
        }

        let mut memories = imports.memories;
        memories.reserve_exact(m.memories.len() - m.num_imported_memories);
        for (mi, ty) in m.memories.iter().skip(m.num_imported_memories) {
            let lim = crate::limits::reborrow(&mut limiter);
            let d = m.defined_memory_index(mi).expect("defined");
            let image = module
                .memory_image(d)
                .filter(|_| self.tunables.memory_images);
            // A pooled memory comes with its image mapped; on demand it is
            // mapped once every segment is applied (see `MemoryImage`).
            let alloc = match &pool {
                Some(p) => Allocator::Pool(p),
                None => Allocator::OnDemand(self.memory_cache.as_ref()),
            };
            let mem = LinearMemory::allocate(*ty, &self.tunables, lim, alloc, image)?;
            self.memories.push(Box::new(mem));
            memories.push(&mut **self.memories.last_mut().expect("pushed") as *mut LinearMemory);
        }
        let mut tables = imports.tables;
        tables.reserve_exact(m.tables.len() - m.num_imported_tables);
        for (_, ty) in m.tables.iter().skip(m.num_imported_tables) {
            let lim = crate::limits::reborrow(&mut limiter);
            let t = Table::allocate(*ty, 0, lim, pool.as_ref())?;
            self.tables.push(Box::new(t));
            tables.push(&mut **self.tables.last_mut().expect("pushed") as *mut Table);
        }

        let (vmctx, vmctx_slot) = match &pool {
            Some(p) => {
                // 64-byte aligned and large enough (`check_module`).
                let (index, ptr) = p.take_instance()?;
                let slot = Slot {
                    pool: p.clone(),
                    index,
                };
                (ptr, Some(slot))
            }
            None => {
                // SAFETY: the layout has a non-zero size.
                let vmctx = unsafe { std::alloc::alloc(layout) };
                if vmctx.is_null() {
                    std::alloc::handle_alloc_error(layout);
                }
                (vmctx, None)
            }
        };
        // SAFETY: the template's image is `layout.size()` bytes, and so is
        // (at least) the fresh context, which nothing else refers to.
        unsafe { std::ptr::copy_nonoverlapping(template.image(), vmctx, layout.size()) };
        let mut inst = Box::new(Instance {
            module: module.clone(),
            offsets: template.offsets.clone(),
            vmctx,
            layout,
            vmctx_slot,
            memories,
            tables,
            // Data segments are dropped as they are applied, below.
            dropped_data: vec![false; m.data.len()],
            // So are element segments, unless the template folded them all
            // (then none can trap, and all are applied here).
            dropped_elems: if template.elems_folded {
                template.dropped_elems.to_vec()
            } else {
                m.elems
                    .iter()
                    .map(|(_, s)| matches!(s.kind, ElemKind::Declared))
                    .collect()
            },
            limiter_hook: self.limiter_hook,
            epoch_hook: self.epoch_hook,
        });
        let inst_ptr: *mut Instance = &mut *inst;
        let o = &inst.offsets;
        // SAFETY: every write below targets an offset `VMOffsets` assigned
        // inside the context, with the field's own type; the template
        // wrote everything else (see `template.rs`).
        unsafe {
            *inst.at::<*const VMRuntimeLimits>(VMOffsets::RUNTIME_LIMITS) =
                Arc::as_ptr(&self.limits);
            *inst.at::<u64>(VMOffsets::STORE) = self.store_vmctx[(VMOffsets::STORE / 8) as usize];
            *inst.at::<*mut Instance>(VMOffsets::INSTANCE) = inst_ptr;
            let mut given = imports.funcs.iter();
            for (i, resolved) in template.resolved_funcs.iter().enumerate() {
                if !resolved {
                    let f = given.next().ok_or_else(|| {
                        InstantiationError::Resource("missing function import".into())
                    })?;
                    *inst.at::<VMFunctionImport>(o.imported_function(FuncIndex::new(i))) = *f;
                }
            }
            for (i, g) in imports.globals.iter().enumerate() {
                *inst.at::<*mut VMGlobalDefinition>(o.imported_global(GlobalIndex::new(i))) = *g;
            }
            for (i, t) in inst.tables.iter().enumerate() {
                *inst.at::<*mut VMTableDefinition>(o.table(TableIndex::new(i))) = (**t).vmtable();
            }
            for (i, mem) in inst.memories.iter().enumerate() {
                let def = (**mem).vmmemory();
                *inst.at::<*mut VMMemoryDefinition>(o.memory(MemoryIndex::new(i))) = def;
                // The base never moves (see `memory.rs`), so a copy stays
                // right for the memory's lifetime.
                *inst.at::<*mut u8>(o.memory_base(MemoryIndex::new(i))) = (*def).base;
            }
            for slot in 0..o.num_escaping_funcs {
                let f = inst.at::<VMFuncRef>(o.func_ref(slot));
                (*f).vmctx = vmctx.cast();
            }
        }
        // Globals that depend on the instance, in order: an initialiser may
        // read earlier globals.
        for &d in template.dynamic_globals.iter() {
            let v = inst.eval(&m.global_inits[d]);
            let g: *mut VMGlobalDefinition = inst.at(inst.offsets.defined_global(d));
            // SAFETY: the definition lies inside the context.
            unsafe { (*g).set(v) };
        }
        if template.elems_folded {
            // Every segment fits and none can trap (see `template.rs`).
            for (d, image) in template.table_images.iter().enumerate() {
                let t = TableIndex::new(m.num_imported_tables + d);
                // SAFETY: the table is live, defined by this instance, and
                // at least its minimum long, which bounds the image.
                let elems = unsafe { (*inst.table(t)).elements_mut() };
                for (e, &v) in elems.iter_mut().zip(image.iter()) {
                    *e = if v & crate::template::RELATIVE != 0 {
                        vmctx as usize + (v >> 1)
                    } else {
                        v
                    };
                }
            }
        } else {
            // Defined tables with an initialiser expression.
            for (d, init) in m.table_inits.iter() {
                if let Some(init) = init {
                    let v = inst.eval(init).get_ptr();
                    let t = TableIndex::new(m.num_imported_tables + d.index());
                    // SAFETY: the table is live.
                    unsafe { (*inst.table(t)).fill(0, v, (*inst.table(t)).size()) };
                }
            }
        }
        self.instances.push(inst);
        let id = self.instances.len() - 1;
        let inst = &mut self.instances[id];

        // Element segments, then data segments, in order.
        if !template.elems_folded {
            for (e, seg) in m.elems.iter() {
                if let ElemKind::Active { table, offset } = &seg.kind {
                    let off = inst.eval(offset).get_i32() as u32;
                    let items = inst.elem_items(seg);
                    // SAFETY: the table is live.
                    let t = unsafe { &mut *inst.table(*table) };
                    let r = range(u64::from(off), items.len() as u64, t.size() as usize)
                        .ok_or(Trap::TableOutOfBounds)?;
                    t.elements_mut()[r].copy_from_slice(&items);
                    inst.dropped_elems[e.index()] = true;
                }
            }
        }
        let imaged = |mi: MemoryIndex| {
            m.defined_memory_index(mi)
                .is_some_and(|d| self.tunables.memory_images && module.memory_image(d).is_some())
        };
        let copy_segment =
            |inst: &mut Instance, seg: &kiln_environ::DataSegment| -> Result<(), Trap> {
                let DataKind::Active { memory, offset } = &seg.kind else {
                    return Ok(());
                };
                let v = inst.eval(offset);
                let off = if m.memories[*memory].memory64 {
                    v.get_i64() as u64
                } else {
                    u64::from(v.get_i32() as u32)
                };
                // SAFETY: the memory is live.
                let mem = unsafe { &mut *inst.memory(*memory) };
                let r = range(off, seg.data.len() as u64, mem.byte_size())
                    .ok_or(Trap::MemoryOutOfBounds)?;
                mem.data_mut()[r].copy_from_slice(&seg.data);
                Ok(())
            };
        for (d, seg) in m.data.iter() {
            if let DataKind::Active { memory, .. } = &seg.kind {
                inst.dropped_data[d.index()] = true;
                if imaged(*memory) {
                    // Applied below, through the memory's image.
                    continue;
                }
            }
            if let Err(trap) = copy_segment(inst, seg) {
                // The imaged memories get what the spec's order gives them:
                // their segments before this one, copied, and not the image
                // a pooled memory came with.
                for (mi, _) in m.memories.iter().skip(m.num_imported_memories) {
                    if imaged(mi) {
                        // SAFETY: the memory is live and nothing wrote to
                        // it: its segments were all skipped above.
                        unsafe { &mut *inst.memory(mi) }.clear_image()?;
                    }
                }
                for (_, earlier) in m.data.iter().take(d.index()) {
                    if let DataKind::Active { memory, .. } = &earlier.kind {
                        if imaged(*memory) {
                            copy_segment(inst, earlier)
                                .expect("an imaged memory's segments fit (see `MemoryImage`)");
                        }
                    }
                }
                return Err(trap.into());
            }
        }
        // Nothing trapped: map the images over the untouched memories that
        // do not have theirs yet.
        for (mi, _) in m.memories.iter().skip(m.num_imported_memories) {
            if imaged(mi) {
                let d = m.defined_memory_index(mi).expect("defined");
                let image = module.memory_image(d).expect("checked above");
                // SAFETY: the memory is live and nothing wrote to it: its
                // segments were all skipped above.
                let mem = unsafe { &mut *inst.memory(mi) };
                if !mem.has_image() {
                    mem.map_image(image)?;
                }
            }
        }
        Ok(id)
    }
}

mod libcalls {
    //! The functions in `VMBuiltinFunctions`. Each is `extern "C"`, takes
    //! the caller's context first, and never panics: a failed operation is
    //! reported through its status result so generated code traps.
    use super::*;

    unsafe fn inst<'a>(vmctx: *mut VMContext) -> &'a mut Instance {
        // SAFETY: generated code passes its own live context.
        unsafe { Instance::from_vmctx(vmctx) }
    }

    fn status(r: Result<(), Trap>) -> u32 {
        u32::from(r.is_err())
    }

    /// Runs `grow` with the store's limiter (see `limits.rs`), catching a
    /// panic of the limiter. A growth that must trap is recorded for the
    /// caller's trap (see `raise_from_libcall`) and gives `None`.
    ///
    /// # Safety
    ///
    /// `vmctx` is the live context of the calling Wasm, and `grow` touches
    /// only the memory or table being grown: the hook may hand out the
    /// embedder's data, which no context points into.
    unsafe fn grow_with_limiter<R>(
        vmctx: *mut VMContext,
        grow: impl FnOnce(Option<&mut dyn Limiter>) -> Result<R, BoxError>,
    ) -> Option<R> {
        // SAFETY: see `inst`.
        let hook = unsafe { inst(vmctx) }.limiter_hook;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match hook {
            None => grow(None),
            Some(hook) => {
                let mut grow = Some(grow);
                let mut out = None;
                // SAFETY: a libcall of this store's Wasm; the store pointer
                // in every context header is the one the hook expects.
                unsafe {
                    hook(StoreOpaque::store_ptr_from_vmctx(vmctx), &mut |l| {
                        if let Some(g) = grow.take() {
                            out = Some(g(l));
                        }
                    })
                };
                out.unwrap_or_else(|| Err("the limiter hook did not call back".into()))
            }
        }));
        let reason = match r {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(e)) => crate::traphandlers::TrapReason::Host(e),
            Err(p) => crate::traphandlers::TrapReason::Panic(p),
        };
        // SAFETY: called from a libcall, which returns the trap value next.
        unsafe { crate::traphandlers::raise_from_libcall(reason) };
        None
    }

    pub(super) unsafe extern "C" fn memory_grow(
        vmctx: *mut VMContext,
        mem: u32,
        delta: u64,
    ) -> u64 {
        // SAFETY: see `inst`; the memory belongs to the store, and nothing
        // else refers to it during the call.
        let m = unsafe { &mut *inst(vmctx).memory(MemoryIndex::from_u32(mem)) };
        // SAFETY: `grow` touches only the memory.
        match unsafe { grow_with_limiter(vmctx, |l| m.grow_limited(delta, l)) } {
            Some(r) => r.unwrap_or(u64::MAX),
            None => kiln_environ::MEMORY_GROW_TRAP,
        }
    }

    /// The epoch reached the deadline: asks the store's callback, if it
    /// has one, for a new deadline (see `EpochHook`).
    pub(super) unsafe extern "C" fn new_epoch(vmctx: *mut VMContext) -> u32 {
        // Copied out, and the instance borrow ends here: the hook may use
        // the whole store, this instance included.
        // SAFETY: see `inst`.
        let Some(hook) = unsafe { inst(vmctx) }.epoch_hook else {
            return 1;
        };
        // SAFETY: RUNTIME_LIMITS is within every context's header and
        // points at the store's limits, which outlive its instances.
        let limits = unsafe {
            &*vmctx
                .cast::<u8>()
                .add(VMOffsets::RUNTIME_LIMITS as usize)
                .cast::<*const VMRuntimeLimits>()
                .read()
        };
        // SAFETY: a libcall of this store's Wasm, which holds no borrow of
        // the store during the call; the store pointer in every context
        // header is the one the hook expects.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
            hook(StoreOpaque::store_ptr_from_vmctx(vmctx))
        }));
        let reason = match r {
            Ok(Ok(Some(ticks))) => {
                // SAFETY: the engine's counter outlives every store of it.
                let now = unsafe { &*limits.epoch_ptr }.load(std::sync::atomic::Ordering::Relaxed);
                // SAFETY: this thread runs the store's Wasm; nothing else
                // reads or writes the deadline during this libcall.
                unsafe { *limits.epoch_deadline.get() = now.saturating_add(ticks) };
                return 0;
            }
            Ok(Ok(None)) => return 1,
            Ok(Err(e)) => crate::traphandlers::TrapReason::Host(e),
            Err(p) => crate::traphandlers::TrapReason::Panic(p),
        };
        // SAFETY: called from a libcall, which returns the trap status next.
        unsafe { crate::traphandlers::raise_from_libcall(reason) };
        1
    }

    pub(super) unsafe extern "C" fn memory_fill(
        vmctx: *mut VMContext,
        mem: u32,
        dst: u64,
        val: u32,
        len: u64,
    ) -> u32 {
        // SAFETY: see `inst`.
        status(unsafe { inst(vmctx) }.memory_fill(MemoryIndex::from_u32(mem), dst, val as u8, len))
    }

    pub(super) unsafe extern "C" fn memory_copy(
        vmctx: *mut VMContext,
        dst_mem: u32,
        dst: u64,
        src_mem: u32,
        src: u64,
        len: u64,
    ) -> u32 {
        // SAFETY: see `inst`.
        status(unsafe { inst(vmctx) }.memory_copy(
            MemoryIndex::from_u32(dst_mem),
            dst,
            MemoryIndex::from_u32(src_mem),
            src,
            len,
        ))
    }

    pub(super) unsafe extern "C" fn memory_init(
        vmctx: *mut VMContext,
        mem: u32,
        data: u32,
        dst: u64,
        src: u32,
        len: u32,
    ) -> u32 {
        // SAFETY: see `inst`.
        status(unsafe { inst(vmctx) }.memory_init(
            MemoryIndex::from_u32(mem),
            DataIndex::from_u32(data),
            dst,
            src,
            len,
        ))
    }

    pub(super) unsafe extern "C" fn data_drop(vmctx: *mut VMContext, data: u32) {
        // SAFETY: see `inst`.
        let i = unsafe { inst(vmctx) };
        if let Some(d) = i.dropped_data.get_mut(data as usize) {
            *d = true;
        }
    }

    pub(super) unsafe extern "C" fn table_grow(
        vmctx: *mut VMContext,
        table: u32,
        delta: u32,
        init: *mut u8,
    ) -> u32 {
        // SAFETY: see `inst`; the table belongs to the store, and nothing
        // else refers to it during the call.
        let t = unsafe { &mut *inst(vmctx).table(TableIndex::from_u32(table)) };
        // SAFETY: `grow` touches only the table.
        match unsafe { grow_with_limiter(vmctx, |l| t.grow_limited(delta, init as usize, l)) } {
            Some(r) => r.unwrap_or(u32::MAX),
            None => kiln_environ::TABLE_GROW_TRAP,
        }
    }

    pub(super) unsafe extern "C" fn table_fill(
        vmctx: *mut VMContext,
        table: u32,
        dst: u32,
        val: *mut u8,
        len: u32,
    ) -> u32 {
        // SAFETY: see `inst`; the table belongs to the store.
        unsafe {
            let t = &mut *inst(vmctx).table(TableIndex::from_u32(table));
            u32::from(t.fill(dst, val as usize, len).is_none())
        }
    }

    pub(super) unsafe extern "C" fn table_copy(
        vmctx: *mut VMContext,
        dst_table: u32,
        src_table: u32,
        dst: u32,
        src: u32,
        len: u32,
    ) -> u32 {
        // SAFETY: see `inst`.
        status(unsafe { inst(vmctx) }.table_copy(
            TableIndex::from_u32(dst_table),
            TableIndex::from_u32(src_table),
            dst,
            src,
            len,
        ))
    }

    pub(super) unsafe extern "C" fn table_init(
        vmctx: *mut VMContext,
        table: u32,
        elem: u32,
        dst: u32,
        src: u32,
        len: u32,
    ) -> u32 {
        // SAFETY: see `inst`.
        status(unsafe { inst(vmctx) }.table_init(
            TableIndex::from_u32(table),
            ElemIndex::from_u32(elem),
            dst,
            src,
            len,
        ))
    }

    pub(super) unsafe extern "C" fn elem_drop(vmctx: *mut VMContext, elem: u32) {
        // SAFETY: see `inst`.
        let i = unsafe { inst(vmctx) };
        if let Some(d) = i.dropped_elems.get_mut(elem as usize) {
            *d = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use kiln_environ::BuiltinFunction;

    // Length, order and signatures are checked when `BUILTINS` is built
    // (see `builtin_table!`); this checks the table generated code reads
    // at `index() * 8` holds the libcall of that name.
    #[test]
    fn builtins_sit_at_their_declared_index() {
        let at = |b: BuiltinFunction| super::BUILTINS.ptrs[b.index() as usize];
        assert_eq!(
            at(BuiltinFunction::memory_grow),
            super::libcalls::memory_grow as *const u8
        );
        assert_eq!(
            at(BuiltinFunction::new_epoch),
            super::libcalls::new_epoch as *const u8
        );
        assert_eq!(std::mem::size_of::<*const u8>(), 8);
    }
}
