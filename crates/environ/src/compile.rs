//! The interface between compiling and running: what a compiled module
//! records besides its machine code, and the libcalls code may make.

use crate::{DefinedFuncIndex, Module, PrimaryMap, Trap, TypeIndex};

/// Where a function's code sits in the text section.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct FunctionLoc {
    /// Offset from the start of the text section.
    pub start: u32,
    /// Length in bytes.
    pub length: u32,
}

/// The compiled code of one defined function and its entry trampolines.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct CompiledFunctionInfo {
    /// The body: the `wasm_call` entry point.
    pub wasm_func: FunctionLoc,
    /// The array-to-wasm trampoline, for escaping functions.
    pub array_to_wasm: Option<FunctionLoc>,
    /// The native-to-wasm trampoline, for escaping functions.
    pub native_to_wasm: Option<FunctionLoc>,
}

/// A trap site: the code offset of an instruction that may trap, and why.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TrapSite {
    /// Offset in the text section.
    pub code_offset: u32,
    /// The trap it raises.
    pub trap: Trap,
}

/// Maps a code offset to the Wasm byte offset it was compiled from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AddressMapEntry {
    /// Offset in the text section.
    pub code_offset: u32,
    /// Offset in the original Wasm binary.
    pub wasm_offset: u32,
}

/// Everything the runtime needs about a compiled module besides its text.
#[derive(Clone, Debug)]
pub struct CompiledModuleInfo {
    /// The module.
    pub module: Module,
    /// Each defined function's code.
    pub funcs: PrimaryMap<DefinedFuncIndex, CompiledFunctionInfo>,
    /// One wasm-to-native trampoline per type of the type section.
    pub wasm_to_native: PrimaryMap<TypeIndex, FunctionLoc>,
    /// Trap sites, sorted by code offset.
    pub traps: Vec<TrapSite>,
    /// Address map, sorted by code offset.
    pub address_map: Vec<AddressMapEntry>,
}

impl CompiledModuleInfo {
    /// The trap at exactly `code_offset`, if one is recorded.
    pub fn lookup_trap(&self, code_offset: u32) -> Option<Trap> {
        let i = self
            .traps
            .binary_search_by_key(&code_offset, |t| t.code_offset)
            .ok()?;
        Some(self.traps[i].trap)
    }

    /// The Wasm byte offset of the instruction covering `code_offset`, if
    /// it is a trap site or a call (the address map records only those;
    /// `u32::MAX` entries end a range).
    pub fn lookup_wasm_offset(&self, code_offset: u32) -> Option<u32> {
        let i = match self
            .address_map
            .binary_search_by_key(&code_offset, |e| e.code_offset)
        {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        Some(self.address_map[i].wasm_offset).filter(|o| *o != u32::MAX)
    }

    /// The defined function whose body contains `code_offset`.
    pub fn func_by_text_offset(&self, code_offset: u32) -> Option<DefinedFuncIndex> {
        // Bodies are laid out in order, but trampolines sit between them,
        // so check containment after the search.
        let idx = self
            .funcs
            .values()
            .position(|f| code_offset < f.wasm_func.start + f.wasm_func.length)?;
        let (i, f) = self.funcs.iter().nth(idx)?;
        (code_offset >= f.wasm_func.start).then_some(i)
    }
}

/// The abstract type of a libcall parameter or result.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BuiltinType {
    /// A pointer (`*mut VMContext`, a reference).
    Pointer,
    /// `u32`.
    I32,
    /// `u64`.
    I64,
}

macro_rules! builtins {
    ($($(#[$doc:meta])* $name:ident($($p:ident),*) $(-> $r:ident)?;)*) => {
        /// The libcalls generated code may make, through the
        /// `VMBuiltinFunctions` table of function pointers in the
        /// `VMContext` (index = declaration order). Every one takes the
        /// caller's `vmctx` first. Those returning `I32` as their last
        /// result for a status return 0 on success and non-zero when the
        /// operation must trap; the caller emits the trap.
        #[derive(Copy, Clone, Debug, PartialEq, Eq)]
        #[allow(non_camel_case_types)]
        pub enum BuiltinFunction {
            $($(#[$doc])* $name,)*
        }

        impl BuiltinFunction {
            /// Every builtin, in table order.
            pub const ALL: &'static [BuiltinFunction] = &[$(BuiltinFunction::$name,)*];

            /// Parameter types, after the leading `vmctx`.
            pub fn params(self) -> &'static [BuiltinType] {
                match self {
                    $(BuiltinFunction::$name => &[$(BuiltinType::$p),*],)*
                }
            }

            /// Result type, if any.
            pub fn result(self) -> Option<BuiltinType> {
                match self {
                    $(BuiltinFunction::$name => builtins!(@r $($r)?),)*
                }
            }

            /// Index in the table.
            pub fn index(self) -> u32 {
                self as u32
            }
        }
    };
    (@r) => { None };
    (@r $r:ident) => { Some(BuiltinType::$r) };
}

builtins! {
    /// `memory.grow(mem, delta_pages) -> old_pages or u64::MAX`.
    memory_grow(I32, I64) -> I64;
    /// `memory.fill(mem, dst, byte, len) -> status`.
    memory_fill(I32, I64, I32, I64) -> I32;
    /// `memory.copy(dst_mem, dst, src_mem, src, len) -> status`.
    memory_copy(I32, I64, I32, I64, I64) -> I32;
    /// `memory.init(mem, data, dst, src, len) -> status`.
    memory_init(I32, I32, I64, I32, I32) -> I32;
    /// `data.drop(data)`.
    data_drop(I32);
    /// `table.grow(table, delta, init) -> old_size or u32::MAX`.
    table_grow(I32, I32, Pointer) -> I32;
    /// `table.fill(table, dst, val, len) -> status`.
    table_fill(I32, I32, Pointer, I32) -> I32;
    /// `table.copy(dst_table, src_table, dst, src, len) -> status`.
    table_copy(I32, I32, I32, I32, I32) -> I32;
    /// `table.init(table, elem, dst, src, len) -> status`.
    table_init(I32, I32, I32, I32, I32) -> I32;
    /// `elem.drop(elem)`.
    elem_drop(I32);
}

/// Settings that both the code generator and the runtime must agree on,
/// because generated code bakes them in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tunables {
    /// Bytes of address space reserved for each 32-bit memory. With the
    /// full 4 GiB reserved, bounds checks for 32-bit addresses vanish:
    /// pages past the current length are inaccessible and fault.
    pub static_memory_reservation: u64,
    /// Bytes of inaccessible guard after each memory's reservation, which
    /// absorbs the static offset of a load or store.
    pub memory_guard_size: u64,
    /// Count fuel in generated code (`Config::consume_fuel`).
    pub consume_fuel: bool,
    /// Check the epoch deadline in generated code
    /// (`Config::epoch_interruption`).
    pub epoch_interruption: bool,
    /// Initialise memories from copy-on-write images where possible
    /// (`Config::memory_init_cow`); does not affect generated code.
    pub memory_images: bool,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            static_memory_reservation: 1 << 32,
            memory_guard_size: 2 << 30,
            consume_fuel: false,
            epoch_interruption: false,
            memory_images: true,
        }
    }
}
