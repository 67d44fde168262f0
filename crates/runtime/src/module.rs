//! Loaded modules, the per-store list of code ranges that the signal
//! handler consults ([`StoreCode`]), and the engine-wide type registry.

use kiln_environ::{
    CompiledModuleInfo, DefinedFuncIndex, EntityRef, FuncType, FunctionLoc, SharedTypeIndex, Trap,
    TypeIndex,
};
use kiln_jit::CodeMemory;
use std::collections::HashMap;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// Interns function types engine-wide: equal types get equal
/// [`SharedTypeIndex`]es, so a `call_indirect` type check compares one
/// integer across modules and host functions. Entries are never removed;
/// the registry grows with the number of distinct types an engine sees.
#[derive(Default, Debug)]
pub struct TypeRegistry {
    inner: Mutex<(HashMap<FuncType, SharedTypeIndex>, Vec<FuncType>)>,
}

impl TypeRegistry {
    /// The index of `ty`, registering it if new.
    pub fn register(&self, ty: &FuncType) -> SharedTypeIndex {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = g.0.get(ty) {
            return *i;
        }
        let i = SharedTypeIndex::new(g.1.len());
        g.1.push(ty.clone());
        g.0.insert(ty.clone(), i);
        i
    }

    /// The type registered as `i`.
    pub fn lookup(&self, i: SharedTypeIndex) -> Option<FuncType> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.1.get(i.index()).cloned()
    }
}

/// A module's code in executable memory, with its metadata.
pub struct CompiledModule {
    code: CodeMemory,
    info: CompiledModuleInfo,
    type_ids: Box<[SharedTypeIndex]>,
    text_start: usize,
    /// Copy-on-write images of defined memories, built at the first
    /// instantiation that asks for them.
    images: std::sync::OnceLock<Vec<Option<crate::MemoryImage>>>,
    /// Whether the address map in `code` matched its checksum: one of the
    /// `MAP_*` states. Checked on the first lookup, not at load (see
    /// `kiln_environ::verify_address_map`); an atomic rather than a
    /// `OnceLock` because the lookup may run in the signal handler, which
    /// must never wait (two threads may both verify; they agree).
    address_map: AtomicU8,
    /// Whether the frame table, which the signal handler trusts, matched
    /// its checksum: verified before the first instantiation (see
    /// [`CompiledModule::verify_frames`]); set at once for code this
    /// process compiled.
    frames: std::sync::OnceLock<Result<(), String>>,
}

const MAP_UNCHECKED: u8 = 0;
const MAP_GOOD: u8 = 1;
const MAP_BAD: u8 = 2;

/// One frame of a Wasm backtrace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// Which compiled module the frame's code belongs to: the address of
    /// its `CompiledModule`, for identity only (see
    /// [`StoreOpaque::modules`](crate::StoreOpaque::modules)); never
    /// dereferenced.
    pub module_id: usize,
    /// The module's name, from its name section.
    pub module_name: Option<String>,
    /// The function's index in the module.
    pub func_index: u32,
    /// The function's name, from the name section.
    pub func_name: Option<String>,
    /// Byte offset of the instruction in the module, if known.
    pub module_offset: Option<u32>,
}

impl CompiledModule {
    /// Publishes `object` as executable code.
    pub fn new(
        object: &[u8],
        info: CompiledModuleInfo,
        types: &TypeRegistry,
    ) -> Result<Arc<CompiledModule>, kiln_jit::JitError> {
        let code = CodeMemory::new(object)?;
        let m = Self::from_code(code, info, types);
        // Our own compiler just produced the table.
        let _ = m.frames.set(Ok(()));
        Ok(m)
    }

    /// Wraps already-loaded code (see [`CodeMemory::from_file`]).
    pub fn from_code(
        code: CodeMemory,
        info: CompiledModuleInfo,
        types: &TypeRegistry,
    ) -> Arc<CompiledModule> {
        let type_ids = info
            .module
            .types
            .values()
            .map(|t| types.register(t))
            .collect();
        let text_start = code.text_range().start;
        Arc::new(CompiledModule {
            code,
            info,
            type_ids,
            text_start,
            images: std::sync::OnceLock::new(),
            address_map: AtomicU8::new(MAP_UNCHECKED),
            frames: std::sync::OnceLock::new(),
        })
    }

    /// Checks, once, that the frame table of a loaded artifact matches its
    /// checksum and fits the text (see `kiln_environ::verify_frame_table`).
    /// Instantiation calls this, so no code of a damaged artifact runs.
    pub fn verify_frames(&self) -> Result<(), kiln_environ::ArtifactError> {
        self.frames
            .get_or_init(|| {
                kiln_environ::verify_frame_table(
                    |name| self.code.section(name),
                    self.code.text_range().len(),
                )
                .map_err(|e| match e {
                    kiln_environ::ArtifactError::Corrupt(m) => m,
                    e => e.to_string(),
                })
            })
            .clone()
            .map_err(kiln_environ::ArtifactError::Corrupt)
    }

    /// The memory image of defined memory `m`, if it has one (see
    /// [`crate::MemoryImage`]). Built for all memories on first use.
    pub fn memory_image(&self, m: kiln_environ::DefinedMemoryIndex) -> Option<&crate::MemoryImage> {
        self.images
            .get_or_init(|| build_images(&self.info.module))
            .get(m.index())?
            .as_ref()
    }

    /// The metadata.
    pub fn info(&self) -> &CompiledModuleInfo {
        &self.info
    }

    /// The module.
    pub fn module(&self) -> &kiln_environ::Module {
        &self.info.module
    }

    /// The code memory.
    pub fn code(&self) -> &CodeMemory {
        &self.code
    }

    /// Engine type ids, by module type index.
    pub fn type_ids(&self) -> &[SharedTypeIndex] {
        &self.type_ids
    }

    /// The engine type of module type `t`.
    pub fn type_id(&self, t: TypeIndex) -> SharedTypeIndex {
        self.type_ids[t.index()]
    }

    /// The address of a function in the text section.
    pub fn text_addr(&self, loc: FunctionLoc) -> *const u8 {
        (self.text_start + loc.start as usize) as *const u8
    }

    /// The `wasm_call` entry of a defined function.
    pub fn wasm_call(&self, f: DefinedFuncIndex) -> *const u8 {
        self.text_addr(self.info.funcs[f].wasm_func)
    }

    /// The wasm-to-native trampoline for module type `t`.
    pub fn wasm_to_native(&self, t: TypeIndex) -> *const u8 {
        self.text_addr(self.info.wasm_to_native[t])
    }

    /// The address of the first byte of the text section.
    pub(crate) fn text_start(&self) -> usize {
        self.text_start
    }

    /// The frame description of the function containing text offset
    /// `off`, read in place from the artifact's frame table.
    pub(crate) fn lookup_frame(&self, off: u32) -> Option<kiln_environ::FrameEntry<'_>> {
        kiln_environ::lookup_frame(self.code.section(kiln_environ::sections::FRAMES)?, off)
    }

    pub(crate) fn lookup_trap(&self, pc: usize) -> Option<Trap> {
        let off = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        // The trap table is read in place, from the loaded object (a
        // deserialized module never decodes it; see `kiln_environ::artifact`).
        let traps = self.code.section(kiln_environ::sections::TRAPS)?;
        kiln_environ::lookup_trap(traps, off)
    }

    /// The Wasm byte offset of the instruction at text offset `off`, from
    /// the address map in the loaded object, read in place. `None` if there
    /// is none, or if the map is damaged.
    fn lookup_wasm_offset(&self, off: u32) -> Option<u32> {
        let section = |name: &str| self.code.section(name);
        let view = match self.address_map.load(Ordering::Acquire) {
            MAP_GOOD => {
                kiln_environ::AddressMapView::new(section(kiln_environ::sections::ADDRMAP)?)?
            }
            MAP_BAD => return None,
            _ => match kiln_environ::verify_address_map(section) {
                Some(v) => {
                    self.address_map.store(MAP_GOOD, Ordering::Release);
                    v
                }
                None => {
                    self.address_map.store(MAP_BAD, Ordering::Release);
                    return None;
                }
            },
        };
        view.lookup(off)
    }

    pub(crate) fn frame_info(&self, pc: usize, exact: bool) -> Option<FrameInfo> {
        let off = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        // A return address points after the call; look up the byte before
        // so the frame names the call instruction.
        let off = if exact { off } else { off.saturating_sub(1) };
        let d = self.info.func_by_text_offset(off)?;
        let m = &self.info.module;
        let f = m.func_index(d);
        let module_offset = self.lookup_wasm_offset(off);
        Some(FrameInfo {
            module_id: self as *const CompiledModule as usize,
            module_name: m.name.clone(),
            func_index: f.as_u32(),
            func_name: m.func_names.get(f).map(str::to_string),
            module_offset,
        })
    }
}

/// The images of `module`'s defined memories: all active segments of a
/// memory must have constant offsets (no `global.get`) and fit in its
/// minimum size, or it gets none.
fn build_images(module: &kiln_environ::Module) -> Vec<Option<crate::MemoryImage>> {
    use kiln_environ::{ConstOp, DataKind};
    let mut out = Vec::new();
    for (mi, ty) in module.memories.iter().skip(module.num_imported_memories) {
        if ty.memory64 || ty.shared {
            out.push(None);
            continue;
        }
        let mut segments = Vec::new();
        let mut ok = true;
        for (_, seg) in module.data.iter() {
            if let DataKind::Active { memory, offset } = &seg.kind {
                if *memory != mi {
                    continue;
                }
                match offset.ops.as_slice() {
                    [ConstOp::I32Const(o)] => segments.push((u64::from(*o as u32), &seg.data[..])),
                    _ => ok = false,
                }
            }
        }
        let min = ty.minimum.saturating_mul(kiln_environ::WASM_PAGE_SIZE);
        out.push(if ok {
            crate::MemoryImage::new(&segments, min)
        } else {
            None
        });
    }
    out
}

/// The code a store's Wasm can run, for the signal handler: the text
/// ranges of every module the store instantiated, sorted by address.
///
/// # Why per store, and why lock-free
///
/// The signal handler must decide whether a fault is a Wasm trap without
/// taking a lock, allocating or waiting: the fault may be a crash in host
/// code that holds any lock, the allocator's included. It first reads a
/// thread-local marker (`traphandlers.rs`): only a thread inside a call
/// into Wasm has one, and it names the store's limits, which hold this
/// list. The list is only ever changed by the thread that owns the store
/// (instantiation takes `&mut` of the store), and no other thread looks
/// at it, so the only reader that can overlap a change is the handler
/// interrupting the very thread that makes it. A change therefore builds a
/// new list and publishes it with one atomic store before freeing the old
/// one: whatever instruction the handler interrupts, the pointer it loads
/// names a complete list that is still allocated.
///
/// **Invariant:** every module in the list stays alive as long as the
/// store does (`StoreOpaque` keeps an `Arc` of each), and lookups happen
/// only while the store runs Wasm, so the pointers in the list are valid
/// whenever they are read.
#[derive(Debug, Default)]
pub struct StoreCode {
    list: AtomicPtr<Vec<CodeRange>>,
}

#[derive(Debug, Clone, Copy)]
struct CodeRange {
    start: usize,
    end: usize,
    module: *const CompiledModule,
}

impl StoreCode {
    /// Adds `m`'s text to the list, if it is not there yet. Only the
    /// store's own thread calls this (see the type's docs), and the caller
    /// keeps `m` alive as long as the store.
    pub(crate) fn insert(&self, m: &Arc<CompiledModule>) -> bool {
        let r = m.code.text_range();
        let old = self.list.load(Ordering::Acquire);
        // SAFETY: only this thread replaces or frees the list (see above).
        let cur: &[CodeRange] = if old.is_null() { &[] } else { unsafe { &*old } };
        if r.is_empty() || cur.iter().any(|e| e.start == r.start) {
            return false;
        }
        let mut new = Vec::with_capacity(cur.len() + 1);
        new.extend_from_slice(cur);
        let at = new.partition_point(|e| e.start < r.start);
        new.insert(
            at,
            CodeRange {
                start: r.start,
                end: r.end,
                module: Arc::as_ptr(m),
            },
        );
        self.list
            .store(Box::into_raw(Box::new(new)), Ordering::Release);
        if !old.is_null() {
            // SAFETY: `old` came from `Box::into_raw` and is no longer
            // published; the only possible reader, this thread's signal
            // handler, now loads the new list.
            drop(unsafe { Box::from_raw(old) });
        }
        true
    }

    /// The module whose text contains `pc`. Async-signal-safe: one atomic
    /// load and a binary search, no lock, no allocation.
    pub(crate) fn lookup(&self, pc: usize) -> Option<&CompiledModule> {
        let list = self.list.load(Ordering::Acquire);
        if list.is_null() {
            return None;
        }
        // SAFETY: a published list stays allocated until this thread
        // replaces it (see the type's docs).
        let list = unsafe { &*list };
        let i = list.partition_point(|e| e.start <= pc).checked_sub(1)?;
        let e = list[i];
        // SAFETY: modules in the list outlive the store (see the
        // invariant), and lookups happen while it runs Wasm.
        (pc < e.end).then(|| unsafe { &*e.module })
    }
}

impl Drop for StoreCode {
    fn drop(&mut self) {
        let p = *self.list.get_mut();
        if !p.is_null() {
            // SAFETY: the list came from `Box::into_raw` and nothing can
            // read it any more (`&mut self`).
            drop(unsafe { Box::from_raw(p) });
        }
    }
}
