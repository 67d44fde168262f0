//! The `#[repr(C)]` structures generated code reads and writes.
//!
//! Their offsets are defined once, in `kiln_environ::VMOffsets`; the tests
//! at the bottom compare every one with `offset_of!` on these structs, so a
//! field moved here without moving it there fails the build's tests.

use kiln_environ::SharedTypeIndex;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize};

/// Opaque marker for the start of an instance's context.
#[repr(C)]
pub struct VMContext {
    _private: [u8; 0],
}

/// A raw value in the array calling convention: 16 bytes, little-endian,
/// big enough for a v128.
#[repr(C, align(16))]
#[derive(Copy, Clone, Default, PartialEq, Eq, Debug)]
pub struct ValRaw(pub [u8; 16]);

impl ValRaw {
    /// From an i32.
    pub fn i32(v: i32) -> ValRaw {
        Self::u128(v as u32 as u128)
    }
    /// From an i64.
    pub fn i64(v: i64) -> ValRaw {
        Self::u128(v as u64 as u128)
    }
    /// From f32 bits.
    pub fn f32(bits: u32) -> ValRaw {
        Self::u128(bits as u128)
    }
    /// From f64 bits.
    pub fn f64(bits: u64) -> ValRaw {
        Self::u128(bits as u128)
    }
    /// From a v128.
    pub fn u128(v: u128) -> ValRaw {
        ValRaw(v.to_le_bytes())
    }
    /// From a pointer (a reference).
    pub fn ptr(p: usize) -> ValRaw {
        Self::u128(p as u128)
    }
    /// As an i32.
    pub fn get_i32(&self) -> i32 {
        self.get_u128() as u32 as i32
    }
    /// As an i64.
    pub fn get_i64(&self) -> i64 {
        self.get_u128() as u64 as i64
    }
    /// As f32 bits.
    pub fn get_f32(&self) -> u32 {
        self.get_u128() as u32
    }
    /// As f64 bits.
    pub fn get_f64(&self) -> u64 {
        self.get_u128() as u64
    }
    /// As a v128.
    pub fn get_u128(&self) -> u128 {
        u128::from_le_bytes(self.0)
    }
    /// As a pointer.
    pub fn get_ptr(&self) -> usize {
        self.get_u128() as u64 as usize
    }
}

/// The array calling convention.
pub type VMArrayCallFunction =
    unsafe extern "C" fn(*mut VMContext, *mut VMContext, *mut ValRaw, usize);

/// A function as every caller sees it: three entry points, each with one
/// calling convention (see `kiln-trampolines`), its engine-wide type, and
/// the context to pass as `callee_vmctx`.
///
/// A funcref is never written once code or another thread can see it.
/// That matters for host functions: a `Linker`'s host function has one
/// funcref shared by every store and thread that uses it, and it cannot
/// have a `wasm_call` of its own (Rust has no code in Kiln's internal
/// convention without a compiler), so its `wasm_call` stays null. Whoever
/// hands such a function to Wasm supplies the entry instead, from code it
/// keeps alive: an importing instance writes its module's wasm-to-native
/// trampoline into its own [`VMFunctionImport`], and a store that lets the
/// function escape into a table, global or argument uses a copy of the
/// funcref that it owns, with `wasm_call` filled in.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VMFuncRef {
    /// Entry in the array convention.
    pub array_call: *const u8,
    /// Entry in the native (C ABI) convention.
    pub native_call: *const u8,
    /// Entry in the wasm convention; null for a host function defined
    /// without one (see above): never called through while null.
    pub wasm_call: *const u8,
    /// Engine-wide signature index.
    pub type_index: SharedTypeIndex,
    /// The callee's context.
    pub vmctx: *mut VMContext,
}

/// An imported function, as stored in the importer's context.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VMFunctionImport {
    /// The entry direct calls use: the callee's `wasm_call`, or, for a
    /// host function without one, the importing module's wasm-to-native
    /// trampoline for the import's type (see [`VMFuncRef`]).
    pub wasm_call: *const u8,
    /// The callee's context.
    pub vmctx: *mut VMContext,
    /// The callee's `VMFuncRef`, for `ref.func` and tables: one whose
    /// `wasm_call` is set whenever the import escapes the module.
    pub func_ref: *const VMFuncRef,
}

/// A linear memory's base and current length.
#[repr(C)]
#[derive(Debug)]
pub struct VMMemoryDefinition {
    /// Start of the memory.
    pub base: *mut u8,
    /// Accessible bytes.
    pub current_length: AtomicUsize,
}

/// A table's elements and current size.
#[repr(C)]
#[derive(Debug)]
pub struct VMTableDefinition {
    /// Start of the element array.
    pub base: *mut usize,
    /// Number of elements.
    pub current_elements: usize,
}

/// Storage for one global: room for any value type.
#[repr(C, align(16))]
#[derive(Debug, Default)]
pub struct VMGlobalDefinition {
    /// The bytes of the value, little-endian.
    pub storage: UnsafeCell<[u8; 16]>,
}

impl VMGlobalDefinition {
    /// Reads the raw value.
    pub fn get(&self) -> ValRaw {
        // SAFETY: globals are only accessed by the thread that owns the
        // store; generated code does not run concurrently with this read.
        ValRaw(unsafe { *self.storage.get() })
    }
    /// Writes the raw value.
    pub fn set(&self, v: ValRaw) {
        // SAFETY: as in `get`.
        unsafe { *self.storage.get() = v.0 }
    }
}

/// Per-store limits read by generated code. The stack limit must stay the
/// first field: every function prologue loads it at offset 0.
#[repr(C)]
#[derive(Debug)]
pub struct VMRuntimeLimits {
    /// Wasm may not move the stack pointer below this. `usize::MAX` before
    /// the first call; left at its last value between calls (see
    /// `traphandlers.rs`); [`INTERRUPT_SENTINEL`] while an interrupt is
    /// pending.
    pub stack_limit: AtomicUsize,
    /// Fuel consumed, counting up towards zero from `-fuel`.
    pub fuel_consumed: UnsafeCell<i64>,
    /// Epoch deadline.
    pub epoch_deadline: UnsafeCell<u64>,
    /// The engine's epoch counter.
    pub epoch_ptr: *const AtomicU64,
    /// Frame pointer of the last wasm-to-host trampoline: its frame links
    /// to the Wasm caller and holds the return address into it.
    pub last_wasm_exit_fp: UnsafeCell<usize>,
    /// Rust-side only: how many host-to-Wasm entries are active.
    pub(crate) depth: UnsafeCell<usize>,
    /// Rust-side only: the most native stack Wasm may use (the engine's
    /// `max_wasm_stack`), kept here so an entry needs no other pointer.
    pub max_wasm_stack: usize,
    /// Rust-side only: the stack pointer and limit of the last outermost
    /// entry, so entering again from the same place skips recomputing.
    pub(crate) entry_cache: UnsafeCell<(usize, usize)>,
    /// Rust-side only: the code of every module the store instantiated,
    /// which the signal handler searches (see `StoreCode`).
    pub(crate) code: crate::module::StoreCode,
}

// SAFETY: interrupt handles on other threads touch only the stack limit,
// an atomic. Every other field is read and written only by the thread
// that currently owns the store (which `&mut Store` makes exclusive) and
// by generated code and the signal handler running on that thread; the
// raw `epoch_ptr` points at the engine's counter, an atomic that outlives
// every store of the engine.
unsafe impl Send for VMRuntimeLimits {}
// SAFETY: see `Send`.
unsafe impl Sync for VMRuntimeLimits {}

/// The stack limit stored by an interrupt: so high that every check fails.
pub const INTERRUPT_SENTINEL: usize = usize::MAX - 32 * 1024;

impl Default for VMRuntimeLimits {
    fn default() -> Self {
        VMRuntimeLimits {
            stack_limit: AtomicUsize::new(usize::MAX),
            fuel_consumed: UnsafeCell::new(0),
            epoch_deadline: UnsafeCell::new(0),
            epoch_ptr: std::ptr::null(),
            last_wasm_exit_fp: UnsafeCell::new(0),
            depth: UnsafeCell::new(0),
            max_wasm_stack: 512 * 1024,
            entry_cache: UnsafeCell::new((0, 0)),
            code: crate::module::StoreCode::default(),
        }
    }
}

/// The context of a host function: its `VMFuncRef` (whose `vmctx` points
/// back here) and the Rust state the entry points need.
#[repr(C)]
pub struct VMHostFuncContext {
    /// `VM_HOST_FUNC_MAGIC`.
    pub magic: u32,
    /// The function's `VMFuncRef`.
    pub func_ref: VMFuncRef,
    /// The host closure and anything else the shims need.
    pub host_state: Box<dyn std::any::Any + Send + Sync>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_environ::VMOffsets as O;
    use std::mem::{offset_of, size_of};

    #[test]
    fn func_ref_layout() {
        assert_eq!(
            offset_of!(VMFuncRef, array_call),
            O::FUNC_REF_ARRAY_CALL as usize
        );
        assert_eq!(
            offset_of!(VMFuncRef, native_call),
            O::FUNC_REF_NATIVE_CALL as usize
        );
        assert_eq!(
            offset_of!(VMFuncRef, wasm_call),
            O::FUNC_REF_WASM_CALL as usize
        );
        assert_eq!(
            offset_of!(VMFuncRef, type_index),
            O::FUNC_REF_TYPE_INDEX as usize
        );
        assert_eq!(offset_of!(VMFuncRef, vmctx), O::FUNC_REF_VMCTX as usize);
        assert_eq!(size_of::<VMFuncRef>(), O::SIZE_OF_FUNC_REF as usize);
        assert_eq!(size_of::<SharedTypeIndex>(), 4);
    }

    #[test]
    fn import_layout() {
        assert_eq!(
            offset_of!(VMFunctionImport, wasm_call),
            O::FUNCTION_IMPORT_WASM_CALL as usize
        );
        assert_eq!(
            offset_of!(VMFunctionImport, vmctx),
            O::FUNCTION_IMPORT_VMCTX as usize
        );
        assert_eq!(
            offset_of!(VMFunctionImport, func_ref),
            O::FUNCTION_IMPORT_FUNC_REF as usize
        );
        assert_eq!(
            size_of::<VMFunctionImport>(),
            O::SIZE_OF_FUNCTION_IMPORT as usize
        );
    }

    #[test]
    fn memory_table_global_layout() {
        assert_eq!(
            offset_of!(VMMemoryDefinition, base),
            O::MEMORY_BASE as usize
        );
        assert_eq!(
            offset_of!(VMMemoryDefinition, current_length),
            O::MEMORY_CURRENT_LENGTH as usize
        );
        assert_eq!(offset_of!(VMTableDefinition, base), O::TABLE_BASE as usize);
        assert_eq!(
            offset_of!(VMTableDefinition, current_elements),
            O::TABLE_CURRENT_ELEMENTS as usize
        );
        assert_eq!(
            size_of::<VMGlobalDefinition>(),
            O::SIZE_OF_GLOBAL_DEFINITION as usize
        );
        assert_eq!(
            size_of::<ValRaw>(),
            kiln_environ::VMOffsets::SIZE_OF_GLOBAL_DEFINITION as usize
        );
    }

    #[test]
    fn limits_layout() {
        assert_eq!(
            offset_of!(VMRuntimeLimits, stack_limit),
            O::LIMITS_STACK_LIMIT as usize
        );
        assert_eq!(
            offset_of!(VMRuntimeLimits, fuel_consumed),
            O::LIMITS_FUEL_CONSUMED as usize
        );
        assert_eq!(
            offset_of!(VMRuntimeLimits, epoch_deadline),
            O::LIMITS_EPOCH_DEADLINE as usize
        );
        assert_eq!(
            offset_of!(VMRuntimeLimits, epoch_ptr),
            O::LIMITS_EPOCH_PTR as usize
        );
        assert_eq!(
            offset_of!(VMRuntimeLimits, last_wasm_exit_fp),
            O::LIMITS_LAST_WASM_EXIT_FP as usize
        );
        assert!(size_of::<VMRuntimeLimits>() >= O::SIZE_OF_RUNTIME_LIMITS as usize);
        assert_eq!(
            offset_of!(VMRuntimeLimits, depth),
            O::SIZE_OF_RUNTIME_LIMITS as usize,
            "the Rust-only fields follow the ones generated code knows"
        );
    }

    #[test]
    fn host_func_layout() {
        assert_eq!(
            offset_of!(VMHostFuncContext, magic),
            O::HOST_FUNC_MAGIC as usize
        );
        assert_eq!(
            offset_of!(VMHostFuncContext, func_ref),
            O::HOST_FUNC_FUNC_REF as usize
        );
    }
}
