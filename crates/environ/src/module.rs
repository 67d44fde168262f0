//! The [`Module`]: everything about a module except its code.

use crate::*;
use std::collections::HashMap;
use std::sync::Arc;

/// An import of a module.
#[derive(Clone, Debug)]
pub struct Import {
    /// The module name.
    pub module: String,
    /// The field name.
    pub name: String,
    /// What the import defines in the module's index spaces.
    pub index: EntityIndex,
}

/// Per-function facts.
#[derive(Clone, Copy, Debug)]
pub struct FunctionInfo {
    /// The function's type.
    pub type_index: TypeIndex,
    /// Whether the function escapes: it is exported, placed in a table or
    /// element segment, or named by `ref.func`. Only escaping functions get
    /// a `VMFuncRef` of their own and host-entry trampolines.
    pub escapes: bool,
}

/// Where an element segment goes.
#[derive(Clone, Debug)]
pub enum ElemKind {
    /// Copied into a table at instantiation.
    Active {
        /// The destination table.
        table: TableIndex,
        /// The offset in the table.
        offset: ConstExpr,
    },
    /// Available to `table.init`.
    Passive,
    /// Only declares functions for `ref.func`; dropped at instantiation.
    Declared,
}

/// The items of an element segment.
#[derive(Clone, Debug)]
pub enum ElemItems {
    /// Function indices.
    Functions(Box<[FuncIndex]>),
    /// Constant expressions producing references.
    Expressions(Box<[ConstExpr]>),
}

impl ElemItems {
    /// The number of items.
    pub fn len(&self) -> usize {
        match self {
            ElemItems::Functions(f) => f.len(),
            ElemItems::Expressions(e) => e.len(),
        }
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An element segment.
#[derive(Clone, Debug)]
pub struct ElemSegment {
    /// Where it goes.
    pub kind: ElemKind,
    /// The element type.
    pub ty: ValType,
    /// The items.
    pub items: ElemItems,
}

/// Where a data segment goes.
#[derive(Clone, Debug)]
pub enum DataKind {
    /// Copied into a memory at instantiation.
    Active {
        /// The destination memory.
        memory: MemoryIndex,
        /// The offset in the memory.
        offset: ConstExpr,
    },
    /// Available to `memory.init`.
    Passive,
}

/// A data segment.
#[derive(Clone, Debug)]
pub struct DataSegment {
    /// Where it goes.
    pub kind: DataKind,
    /// Its bytes.
    pub data: Arc<[u8]>,
}

/// A parsed and validated module, without its function bodies.
#[derive(Clone, Debug, Default)]
pub struct Module {
    /// The module's name from the name section, if any.
    pub name: Option<String>,
    /// The type section.
    pub types: PrimaryMap<TypeIndex, FuncType>,
    /// Imports, in order.
    pub imports: Vec<Import>,
    /// Exports, in order, findable by name.
    pub exports: Exports,
    /// Every function, imports first.
    pub functions: PrimaryMap<FuncIndex, FunctionInfo>,
    /// Every table, imports first.
    pub tables: PrimaryMap<TableIndex, TableType>,
    /// Every memory, imports first.
    pub memories: PrimaryMap<MemoryIndex, MemoryType>,
    /// Every global, imports first.
    pub globals: PrimaryMap<GlobalIndex, GlobalType>,
    /// Initialisers of the defined globals.
    pub global_inits: PrimaryMap<DefinedGlobalIndex, ConstExpr>,
    /// Initialisers of defined tables (from the table section), if given.
    pub table_inits: PrimaryMap<DefinedTableIndex, Option<ConstExpr>>,
    /// The number of imported functions.
    pub num_imported_funcs: usize,
    /// The number of imported tables.
    pub num_imported_tables: usize,
    /// The number of imported memories.
    pub num_imported_memories: usize,
    /// The number of imported globals.
    pub num_imported_globals: usize,
    /// The start function.
    pub start: Option<FuncIndex>,
    /// Element segments.
    pub elems: PrimaryMap<ElemIndex, ElemSegment>,
    /// Data segments.
    pub data: PrimaryMap<DataIndex, DataSegment>,
    /// Function names from the name section.
    pub func_names: NameMap,
    /// For each escaping defined function, its slot among the instance's
    /// `VMFuncRef`s (see [`VMOffsets`]); `None` for functions that do not
    /// escape.
    pub func_ref_slots: PrimaryMap<DefinedFuncIndex, Option<u32>>,
    /// The number of escaping defined functions.
    pub num_escaping_funcs: u32,
}

impl Module {
    /// Whether `f` is imported.
    pub fn is_imported_func(&self, f: FuncIndex) -> bool {
        f.index() < self.num_imported_funcs
    }

    /// The defined index of `f`, if it has a body here.
    pub fn defined_func_index(&self, f: FuncIndex) -> Option<DefinedFuncIndex> {
        f.index()
            .checked_sub(self.num_imported_funcs)
            .map(DefinedFuncIndex::new)
    }

    /// The module-wide index of a defined function.
    pub fn func_index(&self, f: DefinedFuncIndex) -> FuncIndex {
        FuncIndex::new(self.num_imported_funcs + f.index())
    }

    /// The defined index of table `t`, if defined here.
    pub fn defined_table_index(&self, t: TableIndex) -> Option<DefinedTableIndex> {
        t.index()
            .checked_sub(self.num_imported_tables)
            .map(DefinedTableIndex::new)
    }

    /// The defined index of memory `m`, if defined here.
    pub fn defined_memory_index(&self, m: MemoryIndex) -> Option<DefinedMemoryIndex> {
        m.index()
            .checked_sub(self.num_imported_memories)
            .map(DefinedMemoryIndex::new)
    }

    /// The defined index of global `g`, if defined here.
    pub fn defined_global_index(&self, g: GlobalIndex) -> Option<DefinedGlobalIndex> {
        g.index()
            .checked_sub(self.num_imported_globals)
            .map(DefinedGlobalIndex::new)
    }

    /// The module-wide index of a defined global.
    pub fn global_index(&self, g: DefinedGlobalIndex) -> GlobalIndex {
        GlobalIndex::new(self.num_imported_globals + g.index())
    }

    /// The type of function `f`.
    pub fn func_type(&self, f: FuncIndex) -> &FuncType {
        &self.types[self.functions[f].type_index]
    }

    /// The number of defined functions.
    pub fn num_defined_funcs(&self) -> usize {
        self.functions.len() - self.num_imported_funcs
    }

    /// Iterates over defined functions.
    pub fn defined_funcs(&self) -> impl Iterator<Item = DefinedFuncIndex> {
        (0..self.num_defined_funcs()).map(DefinedFuncIndex::new)
    }

    /// The export named `name`.
    pub fn export(&self, name: &str) -> Option<EntityIndex> {
        self.exports.get(name)
    }
}

/// A module's exports: names in one string (no allocation per export) and
/// an index by name.
#[derive(Clone, Debug, Default)]
pub struct Exports {
    names: String,
    /// (start, end) into `names`, and what is exported.
    entries: Vec<(u32, u32, EntityIndex)>,
    index: ExportIndex,
}

impl Exports {
    /// Makes room for `n` more exports.
    pub fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
        self.index.reserve(n);
    }

    /// Adds an export (names are unique in a valid module).
    pub fn push(&mut self, name: &str, e: EntityIndex) {
        let start = self.names.len() as u32;
        self.names.push_str(name);
        self.index.insert(name, self.entries.len());
        self.entries.push((start, self.names.len() as u32, e));
    }

    fn name(&self, i: usize) -> &str {
        let (s, e, _) = self.entries[i];
        &self.names[s as usize..e as usize]
    }

    /// The exports in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, EntityIndex)> + '_ {
        (0..self.entries.len()).map(|i| (self.name(i), self.entries[i].2))
    }

    /// The export called `name`.
    pub fn get(&self, name: &str) -> Option<EntityIndex> {
        let i = self
            .index
            .find(name, |i| self.name(i), self.entries.len())?;
        Some(self.entries[i].2)
    }

    /// The number of exports.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn name_hash(name: &str) -> u64 {
    crate::checksum([name.as_bytes()])
}

/// Finds exports by name without a second copy of every name: a map from
/// a 64-bit hash of the name to its position, checked against the name
/// itself (on a hash collision, a scan finds it).
#[derive(Clone, Debug, Default)]
pub struct ExportIndex {
    by_hash: HashMap<u64, u32, BuildIdentity>,
}

impl ExportIndex {
    /// Makes room for `n` more exports.
    pub fn reserve(&mut self, n: usize) {
        self.by_hash.reserve(n);
    }

    /// Records that `exports[position]` is called `name`.
    pub fn insert(&mut self, name: &str, position: usize) {
        self.by_hash
            .entry(name_hash(name))
            .or_insert(position as u32);
    }

    /// The position of the export called `name`, given the name at each
    /// of the `len` positions.
    pub fn find<'a>(
        &self,
        name: &str,
        name_at: impl Fn(usize) -> &'a str,
        len: usize,
    ) -> Option<usize> {
        if let Some(i) = self.by_hash.get(&name_hash(name)) {
            let i = *i as usize;
            if i < len && name_at(i) == name {
                return Some(i);
            }
        }
        (0..len).find(|i| name_at(*i) == name)
    }
}

/// A hasher for keys that are hashes already.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildIdentity;

impl std::hash::BuildHasher for BuildIdentity {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

/// See [`BuildIdentity`].
#[derive(Clone, Copy, Debug, Default)]
pub struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Function names, from the name section's function-names subsection.
///
/// The subsection is kept raw and parsed on the first lookup: names are
/// only needed for backtraces, and a module with a name per function would
/// otherwise spend most of its load time reading them. Parsed, the names
/// sit in one string (no allocation per name).
#[derive(Clone, Debug, Default)]
pub struct NameMap {
    /// The subsection's contents (a count, then (index, name) pairs).
    raw: Option<Arc<[u8]>>,
    /// Names for indices at or past this are ignored.
    num_funcs: u32,
    parsed: std::sync::OnceLock<NameTable>,
}

#[derive(Clone, Debug, Default)]
struct NameTable {
    text: String,
    /// (function, start, end) into `text`, sorted by function.
    entries: Vec<(FuncIndex, u32, u32)>,
}

impl NameMap {
    /// The names in `subsection` (the contents of a function-names
    /// subsection), for a module of `num_funcs` functions, to be parsed on
    /// first use. A malformed subsection yields the names before the
    /// damage, as the spec asks that a bad name section be ignored.
    pub fn from_subsection(subsection: &[u8], num_funcs: usize) -> NameMap {
        NameMap {
            raw: Some(Arc::from(subsection)),
            num_funcs: u32::try_from(num_funcs).unwrap_or(u32::MAX),
            parsed: std::sync::OnceLock::new(),
        }
    }

    fn table(&self) -> &NameTable {
        self.parsed.get_or_init(|| {
            let mut t = NameTable::default();
            if let Some(raw) = &self.raw {
                let reader = wasmparser::BinaryReader::new(raw, 0);
                if let Ok(map) = wasmparser::SectionLimited::<wasmparser::Naming>::new(reader) {
                    for n in map {
                        let Ok(n) = n else { break };
                        if n.index < self.num_funcs {
                            let start = t.text.len() as u32;
                            t.text.push_str(n.name);
                            t.entries.push((
                                FuncIndex::from_u32(n.index),
                                start,
                                t.text.len() as u32,
                            ));
                        }
                    }
                }
            }
            if !t.entries.windows(2).all(|w| w[0].0 < w[1].0) {
                t.entries.sort_by_key(|e| e.0);
                t.entries.dedup_by_key(|e| e.0);
            }
            t
        })
    }

    /// The name of `f`.
    pub fn get(&self, f: FuncIndex) -> Option<&str> {
        let t = self.table();
        let i = t.entries.binary_search_by_key(&f, |e| e.0).ok()?;
        let (_, s, e) = t.entries[i];
        t.text.get(s as usize..e as usize)
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.table().entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
