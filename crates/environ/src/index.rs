//! Index spaces, kept apart by type.
//!
//! WebAssembly numbers functions, tables, memories and globals with imports
//! first and definitions after. Kiln uses two types per space: the
//! module-wide index (`FuncIndex`) and the index among definitions only
//! (`DefinedFuncIndex`). Converting between them goes through
//! [`Module`](crate::Module), which knows how many imports there are, so a
//! bare `u32` never crosses an API.

use cranelift_entity::entity_impl;

macro_rules! indices {
    ($($(#[$doc:meta])* $name:ident, $prefix:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[repr(transparent)]
        pub struct $name(u32);
        entity_impl!($name, $prefix);
    )*};
}

indices! {
    /// A function in the module's function index space (imports first).
    FuncIndex, "func";
    /// A function defined (with a body) in this module.
    DefinedFuncIndex, "defined_func";
    /// A type in the module's type section.
    TypeIndex, "type";
    /// A table in the module's table index space.
    TableIndex, "table";
    /// A table defined in this module.
    DefinedTableIndex, "defined_table";
    /// A memory in the module's memory index space.
    MemoryIndex, "memory";
    /// A memory defined in this module.
    DefinedMemoryIndex, "defined_memory";
    /// A global in the module's global index space.
    GlobalIndex, "global";
    /// A global defined in this module.
    DefinedGlobalIndex, "defined_global";
    /// A data segment.
    DataIndex, "data";
    /// An element segment.
    ElemIndex, "elem";
    /// An engine-wide signature index: equal function types get equal
    /// indices across every module and host function of one engine.
    SharedTypeIndex, "shared_type";
}

/// Something a module can import or export.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum EntityIndex {
    /// A function.
    Function(FuncIndex),
    /// A table.
    Table(TableIndex),
    /// A memory.
    Memory(MemoryIndex),
    /// A global.
    Global(GlobalIndex),
}
