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
