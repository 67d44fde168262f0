//! `kiln-environ`: what a WebAssembly module *is*, independent of any code
//! generator.
//!
//! # Who is this crate for?
//!
//! Use it alone to parse and validate a module and inspect its imports,
//! exports, types and segments ([`translate_module`] returns a
//! [`ModuleTranslation`]), or to learn how Kiln lays out an instance's
//! `VMContext` ([`VMOffsets`]). The code generator (`kiln-cranelift`), the
//! trampoline generator (`kiln-trampolines`) and the runtime (`kiln-runtime`)
//! all read the same [`Module`] and the same [`VMOffsets`], which is what
//! keeps generated code and the Rust structures it touches in agreement.
//!
//! # What this crate must not know about
//!
//! It does not depend on Cranelift (`cranelift-codegen`), on executable
//! memory, or on the runtime. It names things (index spaces, types, trap
//! codes, offsets) and leaves compiling and running them to the layers
//! below it.
//!
//! # Example
//!
//! ```
//! // (module (func (export "f") (result i32) i32.const 7)), in binary.
//! let wasm = [
//!     0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic and version
//!     0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // types: [] -> [i32]
//!     0x03, 0x02, 0x01, 0x00, // functions: one of type 0
//!     0x07, 0x05, 0x01, 0x01, b'f', 0x00, 0x00, // export "f" = function 0
//!     0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x07, 0x0b, // code: i32.const 7
//! ];
//! let t = kiln_environ::translate_module(&wasm, kiln_environ::default_features())?;
//! assert_eq!(t.function_bodies.len(), 1);
//! assert!(t.module.exports.get("f").is_some());
//! // A malformed module is an error, never a panic.
//! assert!(kiln_environ::translate_module(&wasm[..20], kiln_environ::default_features()).is_err());
//! # Ok::<(), kiln_environ::WasmError>(())
//! ```

#![deny(missing_docs)]

mod artifact;
mod compile;
mod cpu;
mod error;
mod frames;
mod index;
pub mod limits;
mod module;
mod translate;
mod trap;
mod types;
mod vmoffsets;

pub use artifact::*;
pub use compile::*;
pub use cpu::*;
pub use cranelift_entity::{EntityRef, PrimaryMap};
pub use error::*;
pub use frames::*;
pub use index::*;
pub use module::*;
pub use translate::*;
pub use trap::*;
pub use types::*;
pub use vmoffsets::*;

/// The WebAssembly page size: 64 KiB.
pub const WASM_PAGE_SIZE: u64 = 0x1_0000;

/// The largest number of pages a 32-bit memory can have (4 GiB).
pub const WASM32_MAX_PAGES: u64 = 0x1_0000;

/// The version string recorded in compiled artifacts.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
