//! Implementation limits: how large a module Kiln agrees to compile.
//!
//! # Why these numbers
//!
//! The core specification lets an implementation bound the size of a
//! module (its appendix "Implementation Limitations") but names no numbers.
//! The WebAssembly JS API does, and every browser engine enforces the same
//! ones, so a module that loads on the web loads here and one that the web
//! refuses is refused here too, with an error that names the limit. The
//! values below are the JS API's.
//!
//! # Who enforces what
//!
//! wasmparser's validator already enforces some of these, sometimes more
//! strictly than the JS API (it allows 100,000 element segments and 100
//! tables); its errors name the limit too ("... count exceeds limit of
//! N"), and we leave them as they are. This module adds the limits it does
//! not check or checks more loosely, and reports them as
//! [`WasmError::ImplLimitExceeded`](crate::WasmError::ImplLimitExceeded):
//! the size of the module and of each function body, the number of imports
//! and exports, and the length of a `br_table`.
//!
//! # What breaks without them
//!
//! The code generator is not written for unbounded input: a function of
//! 2^24 instructions once overflowed an internal index and panicked the
//! compiler. The body-size limit keeps every function far below what
//! Cranelift's 32-bit entity indices and the 32-bit offsets of the
//! address map can hold. It is a limit on input, so nothing a module can
//! contain reaches code that was never meant to see it.

/// The largest module, in bytes (1 GiB).
pub const MAX_MODULE_SIZE: usize = 1 << 30;
/// The most types a module may declare.
pub const MAX_TYPES: usize = 1_000_000;
/// The most functions, imported and defined together.
pub const MAX_FUNCTIONS: usize = 1_000_000;
/// The most imports.
pub const MAX_IMPORTS: usize = 100_000;
/// The most exports.
pub const MAX_EXPORTS: usize = 100_000;
/// The most globals, imported and defined together.
pub const MAX_GLOBALS: usize = 1_000_000;
/// The most data segments.
pub const MAX_DATA_SEGMENTS: usize = 100_000;
/// The most element segments (wasmparser allows only 100,000, which
/// therefore is the bound in force).
pub const MAX_ELEMENT_SEGMENTS: usize = 10_000_000;
/// The largest initial size of a table, in elements.
pub const MAX_TABLE_SIZE: u64 = 10_000_000;
/// The largest size of a 32-bit memory, in 64 KiB pages.
pub const MAX_MEMORY_PAGES: u64 = 65_536;
/// The largest function body, in bytes, local declarations included.
pub const MAX_FUNCTION_BODY_SIZE: usize = 7_654_321;
/// The most locals of a function, its parameters included.
pub const MAX_FUNCTION_LOCALS: usize = 50_000;
/// The most parameters of a function type.
pub const MAX_FUNCTION_PARAMS: usize = 1_000;
/// The most results of a function type.
pub const MAX_FUNCTION_RESULTS: usize = 1_000;
/// The most targets of one `br_table` (its default target not counted).
pub const MAX_BR_TABLE_SIZE: usize = 65_520;

/// The error for `what` of `size` exceeding `limit`.
pub(crate) fn exceeded(what: &str, size: usize, limit: usize) -> crate::WasmError {
    crate::WasmError::ImplLimitExceeded(format!("{what} of {size} exceeds the limit of {limit}"))
}

/// Checks `size` of `what` against `limit`.
pub(crate) fn check(what: &str, size: usize, limit: usize) -> crate::WasmResult<()> {
    if size > limit {
        Err(exceeded(what, size, limit))
    } else {
        Ok(())
    }
}
