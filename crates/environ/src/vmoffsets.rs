//! The layout of an instance's `VMContext`, computed in one place.
//!
//! Generated code reaches everything an instance owns through one pointer,
//! the `vmctx`, passed as the first argument of every Wasm function. The
//! runtime allocates the context and fills it; the code generator emits
//! loads at fixed offsets from it. Both sides ask [`VMOffsets`] for those
//! offsets, so they cannot disagree; the runtime's tests compare every
//! fixed offset here with `std::mem::offset_of!` on its `#[repr(C)]`
//! structs.
//!
//! ```text
//!  offset  field                                    why it is there
//!  0       magic: u32 (+ padding)                   catches a wrong pointer in debug checks
//!  8       runtime_limits: *mut VMRuntimeLimits     stack limit (first field!), fuel, epoch
//!  16      builtins: *const VMBuiltinFunctions      libcalls: no relocations in code
//!  24      type_ids: *const SharedTypeIndex         module type -> engine type, for call_indirect
//!  32      store: *mut ()                           the owning store, for host calls (Caller)
//!  40      instance: *mut ()                        the runtime's Instance, for libcalls
//!  48      imported_functions: [VMFunctionImport]   { wasm_call, vmctx, func_ref }
//!  ..      imported_globals: [*mut VMGlobalDefinition]
//!  ..      tables: [*mut VMTableDefinition]        every table, imported or defined
//!  ..      memories: [*mut VMMemoryDefinition]     every memory, imported or defined
//!  ..      memory_bases: [*mut u8]                 every memory's base, which never moves
//!  ..      defined_globals: [VMGlobalDefinition]   16 bytes each, 16-aligned, stored inline
//!  ..      func_refs: [VMFuncRef]                  one per escaping defined function
//! ```
//!
//! Tables and memories are reached through a pointer even when defined
//! here: their definitions (base, length) live in the store at stable
//! addresses, so the host's `Memory::grow` and the Wasm `memory.grow`
//! libcall update one place, and an importing instance points at the very
//! same definition. A memory's *base*, though, never moves (a 32-bit memory
//! reserves its whole address space up front and grows in place), so it is
//! also copied inline: a memory access after a call reloads one pointer,
//! not two. Defined globals sit inline because `global.get` of the
//! shadow stack pointer is one of the hottest operations of compiled C.
//!
//! **Invariant:** the fixed header (up to `imported_functions`) never moves;
//! the `runtime_limits` pointer in particular is read by every function
//! prologue (stack limit check) and every loop header.

use crate::{DefinedGlobalIndex, FuncIndex, GlobalIndex, MemoryIndex, Module, TableIndex};

/// Magic number at offset 0 of every `VMContext` ("kiln" in ASCII).
pub const VMCONTEXT_MAGIC: u32 = u32::from_le_bytes(*b"kiln");
/// Magic number at offset 0 of every host function context.
pub const VM_HOST_FUNC_MAGIC: u32 = u32::from_le_bytes(*b"khst");

/// Offsets within a `VMContext` for one module, for a 64-bit target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VMOffsets {
    /// Imported functions.
    pub num_imported_funcs: u32,
    /// Imported globals.
    pub num_imported_globals: u32,
    /// All tables.
    pub num_tables: u32,
    /// All memories.
    pub num_memories: u32,
    /// Defined globals.
    pub num_defined_globals: u32,
    /// Escaping defined functions.
    pub num_escaping_funcs: u32,
    imported_functions: u32,
    imported_globals: u32,
    tables: u32,
    memories: u32,
    memory_bases: u32,
    defined_globals: u32,
    func_refs: u32,
    size: u32,
}

/// Size of a pointer on the targets Kiln supports (x86-64, AArch64).
pub const PTR: u32 = 8;

impl VMOffsets {
    /// Computes the layout for `module`.
    pub fn new(module: &Module) -> VMOffsets {
        let num_imported_funcs = module.num_imported_funcs as u32;
        let num_imported_globals = module.num_imported_globals as u32;
        let num_tables = module.tables.len() as u32;
        let num_memories = module.memories.len() as u32;
        let num_defined_globals = (module.globals.len() - module.num_imported_globals) as u32;
        let num_escaping_funcs = module.num_escaping_funcs;
        let imported_functions = Self::HEADER_SIZE;
        let imported_globals =
            imported_functions + num_imported_funcs * Self::SIZE_OF_FUNCTION_IMPORT;
        let tables = imported_globals + num_imported_globals * PTR;
        let memories = tables + num_tables * PTR;
        let memory_bases = memories + num_memories * PTR;
        let defined_globals = (memory_bases + num_memories * PTR).next_multiple_of(16);
        let func_refs = defined_globals + num_defined_globals * Self::SIZE_OF_GLOBAL_DEFINITION;
        let size = func_refs + num_escaping_funcs * Self::SIZE_OF_FUNC_REF;
        VMOffsets {
            num_imported_funcs,
            num_imported_globals,
            num_tables,
            num_memories,
            num_defined_globals,
            num_escaping_funcs,
            imported_functions,
            imported_globals,
            tables,
            memories,
            memory_bases,
            defined_globals,
            func_refs,
            size,
        }
    }

    // --- The fixed header. ---

    /// `VMContext::magic`.
    pub const MAGIC: u32 = 0;
    /// `VMContext::runtime_limits`.
    pub const RUNTIME_LIMITS: u32 = 8;
    /// `VMContext::builtins`.
    pub const BUILTINS: u32 = 16;
    /// `VMContext::type_ids`.
    pub const TYPE_IDS: u32 = 24;
    /// `VMContext::store`.
    pub const STORE: u32 = 32;
    /// `VMContext::instance`.
    pub const INSTANCE: u32 = 40;
    /// Size of the fixed header.
    pub const HEADER_SIZE: u32 = 48;

    // --- VMRuntimeLimits. ---

    /// `VMRuntimeLimits::stack_limit`: must stay the first field, the
    /// prologue check loads it at offset 0.
    pub const LIMITS_STACK_LIMIT: u32 = 0;
    /// `VMRuntimeLimits::fuel_consumed` (i64, counts up towards zero).
    pub const LIMITS_FUEL_CONSUMED: u32 = 8;
    /// `VMRuntimeLimits::epoch_deadline`.
    pub const LIMITS_EPOCH_DEADLINE: u32 = 16;
    /// `VMRuntimeLimits::epoch_ptr`: points at the engine's epoch counter.
    pub const LIMITS_EPOCH_PTR: u32 = 24;
    /// `VMRuntimeLimits::last_wasm_exit_fp`: the frame pointer of the
    /// last wasm-to-host trampoline, whose frame links to the Wasm caller
    /// and holds the return address into it.
    pub const LIMITS_LAST_WASM_EXIT_FP: u32 = 32;
    /// Size of the part of `VMRuntimeLimits` generated code knows.
    pub const SIZE_OF_RUNTIME_LIMITS: u32 = 40;

    // --- VMFuncRef. ---

    /// `VMFuncRef::array_call`.
    pub const FUNC_REF_ARRAY_CALL: u32 = 0;
    /// `VMFuncRef::native_call`.
    pub const FUNC_REF_NATIVE_CALL: u32 = 8;
    /// `VMFuncRef::wasm_call`.
    pub const FUNC_REF_WASM_CALL: u32 = 16;
    /// `VMFuncRef::type_index` (a `u32`, padded).
    pub const FUNC_REF_TYPE_INDEX: u32 = 24;
    /// `VMFuncRef::vmctx`.
    pub const FUNC_REF_VMCTX: u32 = 32;
    /// Size of `VMFuncRef`.
    pub const SIZE_OF_FUNC_REF: u32 = 40;

    // --- VMFunctionImport. ---

    /// `VMFunctionImport::wasm_call`.
    pub const FUNCTION_IMPORT_WASM_CALL: u32 = 0;
    /// `VMFunctionImport::vmctx`.
    pub const FUNCTION_IMPORT_VMCTX: u32 = 8;
    /// `VMFunctionImport::func_ref`.
    pub const FUNCTION_IMPORT_FUNC_REF: u32 = 16;
    /// Size of `VMFunctionImport`.
    pub const SIZE_OF_FUNCTION_IMPORT: u32 = 24;

    // --- Memories, tables, globals. ---

    /// `VMMemoryDefinition::base`.
    pub const MEMORY_BASE: u32 = 0;
    /// `VMMemoryDefinition::current_length` (bytes).
    pub const MEMORY_CURRENT_LENGTH: u32 = 8;
    /// `VMTableDefinition::base`.
    pub const TABLE_BASE: u32 = 0;
    /// `VMTableDefinition::current_elements`.
    pub const TABLE_CURRENT_ELEMENTS: u32 = 8;
    /// Size of a table element (a pointer: `*const VMFuncRef` or an
    /// externref pointer; null is 0).
    pub const SIZE_OF_TABLE_ELEMENT: u32 = 8;
    /// Size of `VMGlobalDefinition`: room for a v128.
    pub const SIZE_OF_GLOBAL_DEFINITION: u32 = 16;

    // --- Host function context. ---

    /// `VMHostFuncContext::magic`.
    pub const HOST_FUNC_MAGIC: u32 = 0;
    /// `VMHostFuncContext::func_ref`: the wasm-to-native trampoline loads
    /// `native_call` from `callee_vmctx + HOST_FUNC_FUNC_REF +
    /// FUNC_REF_NATIVE_CALL`.
    pub const HOST_FUNC_FUNC_REF: u32 = 8;

    // --- The per-module arrays. ---

    /// The `VMFunctionImport` of imported function `f`.
    pub fn imported_function(&self, f: FuncIndex) -> u32 {
        debug_assert!(f.as_u32() < self.num_imported_funcs);
        self.imported_functions + f.as_u32() * Self::SIZE_OF_FUNCTION_IMPORT
    }

    /// The pointer to the definition of imported global `g`.
    pub fn imported_global(&self, g: GlobalIndex) -> u32 {
        debug_assert!(g.as_u32() < self.num_imported_globals);
        self.imported_globals + g.as_u32() * PTR
    }

    /// The pointer to the definition of table `t`.
    pub fn table(&self, t: TableIndex) -> u32 {
        debug_assert!(t.as_u32() < self.num_tables);
        self.tables + t.as_u32() * PTR
    }

    /// The pointer to the definition of memory `m`.
    pub fn memory(&self, m: MemoryIndex) -> u32 {
        debug_assert!(m.as_u32() < self.num_memories);
        self.memories + m.as_u32() * PTR
    }

    /// The base address of memory `m`, copied from its definition when
    /// the instance is created (a memory's base never moves).
    pub fn memory_base(&self, m: MemoryIndex) -> u32 {
        debug_assert!(m.as_u32() < self.num_memories);
        self.memory_bases + m.as_u32() * PTR
    }

    /// The inline definition of defined global `g`.
    pub fn defined_global(&self, g: DefinedGlobalIndex) -> u32 {
        debug_assert!(g.as_u32() < self.num_defined_globals);
        self.defined_globals + g.as_u32() * Self::SIZE_OF_GLOBAL_DEFINITION
    }

    /// The `VMFuncRef` in slot `slot` (see `Module::func_ref_slots`).
    pub fn func_ref(&self, slot: u32) -> u32 {
        debug_assert!(slot < self.num_escaping_funcs);
        self.func_refs + slot * Self::SIZE_OF_FUNC_REF
    }

    /// Total size of the `VMContext`.
    pub fn size(&self) -> u32 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_do_not_overlap_and_globals_are_aligned() {
        let mut m = Module {
            num_imported_funcs: 3,
            num_imported_globals: 1,
            ..Module::default()
        };
        for _ in 0..3 {
            m.globals.push(crate::GlobalType {
                ty: crate::ValType::I32,
                mutable: true,
            });
        }
        m.num_escaping_funcs = 2;
        for _ in 0..2 {
            m.memories.push(crate::MemoryType {
                minimum: 1,
                maximum: None,
                shared: false,
                memory64: false,
            });
        }
        let o = VMOffsets::new(&m);
        let mem = |i| crate::MemoryIndex::from_u32(i);
        assert_eq!(o.memory(mem(1)) + PTR, o.memory_base(mem(0)));
        assert!(o.memory_base(mem(1)) + PTR <= o.defined_globals);
        assert_eq!(
            o.imported_function(FuncIndex::from_u32(0)),
            VMOffsets::HEADER_SIZE
        );
        assert_eq!(o.imported_globals, VMOffsets::HEADER_SIZE + 3 * 24);
        assert_eq!(o.defined_globals % 16, 0);
        assert_eq!(o.func_ref(0), o.defined_globals + 2 * 16);
        assert_eq!(o.size(), o.func_ref(1) + VMOffsets::SIZE_OF_FUNC_REF);
    }
}
