//! Kiln: a WebAssembly runtime for Rust embedders, built on Cranelift.
//!
//! # Who is this crate for?
//!
//! Anyone embedding WebAssembly: compile a [`Module`] with an [`Engine`],
//! instantiate it in a [`Store`] with a [`Linker`] that supplies host
//! functions, and call its exports through [`Func`] or [`TypedFunc`]. The
//! shape follows Wasmtime's API, so code written for one reads naturally
//! for the other.
//!
//! ```
//! use kiln::{Engine, Module, Store, Linker};
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"
//!     (module
//!       (import "host" "double" (func $double (param i32) (result i32)))
//!       (func (export "run") (param i32) (result i32)
//!         local.get 0
//!         call $double
//!         i32.const 1
//!         i32.add))
//! "#)?;
//! let mut linker = Linker::new(&engine);
//! linker.func_wrap("host", "double", |x: i32| x * 2)?;
//! let mut store = Store::new(&engine, ());
//! let instance = linker.instantiate(&mut store, &module)?;
//! let run = instance.get_typed_func::<i32, i32>(&mut store, "run")?;
//! assert_eq!(run.call(&mut store, 20)?, 41);
//! # Ok::<(), kiln::Error>(())
//! ```
//!
//! # How calls work
//!
//! Every function has three entry points (see `kiln-trampolines`):
//! [`Func::call`] uses the array convention, [`TypedFunc::call`] the native
//! C ABI, and Wasm uses its own; each caller picks the one that matches it,
//! so no call crosses more than one trampoline.

#![deny(missing_docs)]

mod cache;
mod coredump;
mod engine;
mod error;
mod externals;
mod func;
mod gc;
mod instance;
mod limits;
mod linker;
mod module;
mod pooling;
mod refs;
mod store;
mod types;
mod v128;
mod values;

pub use cache::{Cache, CacheConfig};
pub use coredump::WasmCoreDump;
pub use engine::*;
pub use error::*;
pub use externals::*;
pub use func::*;
pub use gc::*;
pub use instance::*;
pub use limits::*;
pub use linker::*;
pub use module::*;
pub use pooling::*;
pub use refs::Ref;
pub use store::*;
pub use types::*;
pub use v128::V128;
pub use values::*;

pub use kiln_environ::ArtifactError;
