//! `kiln-runtime`: what compiled WebAssembly runs against.
//!
//! # Who is this crate for?
//!
//! The public API (`kiln`) builds on it; embedders who want the raw
//! mechanism (instances, `VMContext`, `VMFuncRef`, linear memories,
//! tables, trap handling) without the typed API can use it directly, at
//! the price of `unsafe`.
//!
//! # What this crate must not know about
//!
//! It never compiles: it loads objects through `kiln-jit` and runs them.
//! It does not depend on Cranelift. The offsets it shares with generated
//! code come from `kiln_environ::VMOffsets`, and tests in `vmcontext.rs`
//! check them against the structs defined here.
//!
//! # Example
//!
//! A linear memory on its own (what `memory.grow` and the host API use):
//!
//! ```
//! use kiln_environ::{MemoryType, Tunables};
//! use kiln_runtime::LinearMemory;
//! // No resource limiter: only the type's maximum bounds growth.
//! let mut m = LinearMemory::new(MemoryType::new(1, Some(3)), &Tunables::default(), None)?;
//! m.data_mut()[..4].copy_from_slice(b"kiln");
//! assert_eq!(m.grow(1), Some(1)); // the old size, in pages
//! assert_eq!(m.pages(), 2);
//! assert_eq!(m.grow(5), None); // past the maximum
//! assert_eq!(&m.data()[..4], b"kiln");
//! # Ok::<(), kiln_runtime::MemoryError>(())
//! ```

#![deny(missing_docs)]

mod instance;
mod limits;
mod memory;
mod module;
mod pool;
mod table;
mod template;
mod traphandlers;
mod vmcontext;

pub use instance::*;
pub use limits::*;
pub use memory::*;
pub use module::*;
pub use pool::{MemoryCache, Pool, PoolError, PoolingConfig};
pub use table::*;
pub use template::InstanceTemplate;
pub use traphandlers::*;
pub use vmcontext::*;
