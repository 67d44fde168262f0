//! [`InstanceTemplate`]: everything an instantiation copies, computed once.
//!
//! # The problem
//!
//! A `VMContext` (see `kiln_environ::VMOffsets`) is mostly the same for
//! every instance of one module linked against the same host functions:
//! the header's magic, builtin table and type ids; the imported functions'
//! entries; the defined globals' initial values; every escaping function's
//! `VMFuncRef` but for its `vmctx`; and the initial contents of tables
//! filled by element segments. Computing these at each instantiation means
//! walking the module's sections, evaluating constant expressions and
//! looking up code addresses, every time, for the same result.
//!
//! # The algorithm
//!
//! [`InstanceTemplate::new`] builds, once per `InstancePre` (or per
//! `Instance::new`), an image of the whole context in which everything
//! that does not depend on the instance or its store is already written.
//! Instantiation then
//!
//! 1. copies the image into the fresh context with one `memcpy`;
//! 2. writes the per-instance pointers: the store's runtime limits and
//!    store pointer, the `Instance`, each table's and memory's definition
//!    (and memory base), each imported global, the imported functions the
//!    template could not resolve (those of another instance, which belong
//!    to a store), and the `vmctx` of each escaping function's funcref;
//! 3. evaluates only the global initialisers that read another global or
//!    take a function's address ([`InstanceTemplate::dynamic_globals`]);
//! 4. fills each defined table from its precomputed contents
//!    ([`InstanceTemplate::table_images`]), in which a function of this
//!    instance is stored as its funcref's offset in the context (tagged
//!    with the low bit, which no funcref pointer has) and everything else
//!    as the final pointer.
//!
//! # Invariants
//!
//! * **The image is a valid context but for per-instance pointers:** every
//!   byte that is not written in step 2 or 3 holds what the general path
//!   (evaluating everything in order) would write. [`InstanceTemplate::new`]
//!   writes each field from the same functions the general path uses.
//! * **Folding element segments never changes behaviour:** segments are
//!   folded into table images only if none of them can trap (each targets
//!   a defined table, at a constant offset, within the table's minimum)
//!   and every item is known without the instance (null, a function of
//!   this module, or an imported function the template resolved). If one
//!   segment does not qualify, none is folded ([`InstanceTemplate::elems_folded`]
//!   is false) and instantiation applies all of them in order, as the spec
//!   describes, with its trap-and-partial-write behaviour.

use crate::module::CompiledModule;
use crate::vmcontext::*;
use kiln_environ::*;
use std::alloc::Layout;
use std::sync::Arc;

/// A table element in a [`InstanceTemplate::table_images`] entry: a final
/// pointer (or 0), or, with the low bit set, the offset in the new
/// context of one of the instance's own funcrefs.
pub(crate) const RELATIVE: usize = 1;

/// What every instance of a module, linked against the same imported host
/// functions, starts with (see the module docs).
pub struct InstanceTemplate {
    pub(crate) module: Arc<CompiledModule>,
    pub(crate) offsets: VMOffsets,
    pub(crate) layout: Layout,
    /// The context image, `layout.size()` bytes (16-byte units for the
    /// alignment of global definitions).
    image: Box<[u128]>,
    /// Imported functions the image holds; the others are given at each
    /// instantiation.
    pub(crate) resolved_funcs: Box<[bool]>,
    /// Defined globals whose initialiser depends on the instance (reads a
    /// global or takes a function's address), in order.
    pub(crate) dynamic_globals: Box<[DefinedGlobalIndex]>,
    /// Whether every element segment and table initialiser is folded into
    /// [`InstanceTemplate::table_images`].
    pub(crate) elems_folded: bool,
    /// Per defined table, when `elems_folded`: its first elements (see
    /// [`RELATIVE`]), at most its minimum size.
    pub(crate) table_images: Box<[Box<[usize]>]>,
    /// `dropped_elems` of a new instance when `elems_folded`: active and
    /// declared segments are dropped once instantiation has applied them.
    pub(crate) dropped_elems: Box<[bool]>,
}

// SAFETY: the image holds code addresses of the module (kept alive by the
// `Arc`), addresses of static data (the builtin table) and of imported
// host functions' contexts and funcrefs, which the creator keeps alive as
// long as the template (see `InstanceTemplate::new`). The template is
// never written after creation, so sharing it only reads immutable data.
unsafe impl Send for InstanceTemplate {}
// SAFETY: see `Send`.
unsafe impl Sync for InstanceTemplate {}

impl InstanceTemplate {
    /// The template of `module` with the imported functions in `funcs`
    /// (by import index; `None` for one given at each instantiation)
    /// already resolved.
    ///
    /// # Safety
    ///
    /// Every `Some` import's `vmctx` and `func_ref` must stay valid as long
    /// as the template and every instance made from it: the caller keeps
    /// the host functions alive.
    pub unsafe fn new(
        module: &Arc<CompiledModule>,
        funcs: &[Option<VMFunctionImport>],
    ) -> InstanceTemplate {
        let m = module.module();
        assert_eq!(funcs.len(), m.num_imported_funcs, "one entry per import");
        let offsets = VMOffsets::new(m);
        let size = (offsets.size().max(16) as usize).next_multiple_of(16);
        let layout = Layout::from_size_align(size, 16).expect("a context's size fits a layout");
        let mut t = InstanceTemplate {
            module: module.clone(),
            layout,
            image: vec![0u128; size / 16].into_boxed_slice(),
            resolved_funcs: funcs.iter().map(Option::is_some).collect(),
            dynamic_globals: Box::new([]),
            elems_folded: false,
            table_images: Box::new([]),
            dropped_elems: m
                .elems
                .iter()
                .map(|(_, s)| !matches!(s.kind, ElemKind::Passive))
                .collect(),
            offsets,
        };
        t.write::<u32>(VMOffsets::MAGIC, VMCONTEXT_MAGIC);
        t.write::<*const crate::instance::VMBuiltinFunctions>(
            VMOffsets::BUILTINS,
            crate::instance::builtins(),
        );
        t.write::<*const SharedTypeIndex>(VMOffsets::TYPE_IDS, module.type_ids().as_ptr());
        for (i, f) in funcs.iter().enumerate() {
            if let Some(f) = f {
                let off = t.offsets.imported_function(FuncIndex::new(i));
                t.write::<VMFunctionImport>(off, *f);
            }
        }
        for d in m.defined_funcs() {
            if let Some(slot) = m.func_ref_slots[d] {
                let off = t.offsets.func_ref(slot);
                t.write::<VMFuncRef>(off, crate::instance::defined_func_ref(module, d));
            }
        }
        let mut dynamic = Vec::new();
        for (d, init) in m.global_inits.iter() {
            match const_eval(init) {
                Some(v) => {
                    let off = t.offsets.defined_global(d);
                    t.write::<ValRaw>(off, v);
                }
                None => dynamic.push(d),
            }
        }
        t.dynamic_globals = dynamic.into_boxed_slice();
        if let Some(images) = t.fold_tables(funcs) {
            t.table_images = images;
            t.elems_folded = true;
        }
        t
    }

    fn write<T>(&mut self, offset: u32, v: T) {
        assert!(offset as usize + std::mem::size_of::<T>() <= self.layout.size());
        // SAFETY: in bounds (checked), and the image is 16-byte aligned,
        // which every offset `VMOffsets` gives for `T` respects.
        unsafe {
            self.image
                .as_mut_ptr()
                .cast::<u8>()
                .add(offset as usize)
                .cast::<T>()
                .write(v)
        }
    }

    /// The context image, `layout.size()` bytes.
    pub(crate) fn image(&self) -> *const u8 {
        self.image.as_ptr().cast()
    }

    /// The module.
    pub fn module(&self) -> &Arc<CompiledModule> {
        &self.module
    }

    /// Every defined table's initial contents, if every element segment and
    /// table initialiser can be folded (see the module docs).
    fn fold_tables(&self, funcs: &[Option<VMFunctionImport>]) -> Option<Box<[Box<[usize]>]>> {
        let m = self.module.module();
        let defined_tables = m.tables.len() - m.num_imported_tables;
        let mut images: Vec<Vec<usize>> = vec![Vec::new(); defined_tables];
        let func_elem = |f: FuncIndex| -> Option<usize> {
            match m.defined_func_index(f) {
                Some(d) => {
                    let slot = m.func_ref_slots[d]?;
                    Some((self.offsets.func_ref(slot) as usize) << 1 | RELATIVE)
                }
                None => funcs[f.index()].map(|i| i.func_ref as usize),
            }
        };
        let expr_elem = |e: &ConstExpr| -> Option<usize> {
            match e.ops[..] {
                [ConstOp::RefNull(_)] => Some(0),
                [ConstOp::RefFunc(f)] => func_elem(f),
                _ => None,
            }
        };
        for (d, init) in m.table_inits.iter() {
            if let Some(init) = init {
                let v = expr_elem(init)?;
                let ty = m.tables[TableIndex::new(m.num_imported_tables + d.index())];
                if v != 0 {
                    images[d.index()] = vec![v; ty.minimum as usize];
                }
            }
        }
        for (_, seg) in m.elems.iter() {
            let ElemKind::Active { table, offset } = &seg.kind else {
                continue;
            };
            let d = table.index().checked_sub(m.num_imported_tables)?;
            let off = const_eval(offset)?.get_i32() as u32 as usize;
            let items: Vec<usize> = match &seg.items {
                ElemItems::Functions(fs) => {
                    fs.iter().map(|f| func_elem(*f)).collect::<Option<_>>()?
                }
                ElemItems::Expressions(es) => es.iter().map(expr_elem).collect::<Option<_>>()?,
            };
            let end = off.checked_add(items.len())?;
            if end > m.tables[*table].minimum as usize {
                return None;
            }
            let image = &mut images[d];
            if image.len() < end {
                image.resize(end, 0);
            }
            image[off..end].copy_from_slice(&items);
        }
        Some(images.into_iter().map(Vec::into_boxed_slice).collect())
    }
}

/// The value of `expr` if it depends on nothing but itself (no
/// `global.get`, no `ref.func`).
pub(crate) fn const_eval(expr: &ConstExpr) -> Option<ValRaw> {
    if expr
        .ops
        .iter()
        .any(|op| matches!(op, ConstOp::GlobalGet(_) | ConstOp::RefFunc(_)))
    {
        return None;
    }
    Some(crate::instance::eval_with(
        expr,
        |_| unreachable!(),
        |_| unreachable!(),
    ))
}
