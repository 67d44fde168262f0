//! Errors, in Wasmtime's shape.
//!
//! [`Error`] is a dynamic error: anything that implements
//! `std::error::Error + Send + Sync + 'static` converts into it with `?`,
//! it carries a chain of context ([`Context`], [`Error::context`]), and the
//! concrete error inside is found again with [`Error::downcast_ref`] and
//! friends. It is [`anyhow::Error`] itself, as Wasmtime's error was until
//! Wasmtime wrote its own anyhow-compatible type: code written for either
//! compiles against Kiln, and errors flow into `anyhow::Result` without a
//! conversion.
//!
//! What Kiln puts inside:
//!
//! * a Wasm trap is a [`Trap`] (the enum of trap codes, as in Wasmtime),
//!   with a [`WasmBacktrace`] attached as context when the trap has Wasm
//!   frames: `err.downcast_ref::<Trap>()` finds the code, and
//!   `err.downcast_ref::<WasmBacktrace>()` the frames;
//! * an error returned by a host function comes back to the host caller
//!   as that very error (downcast to its own type works), with the
//!   [`WasmBacktrace`] of the Wasm frames it crossed as context;
//! * errors of the lower layers keep their typed `thiserror` types
//!   (`kiln_environ::WasmError`, `kiln_environ::ArtifactError`, ...), so
//!   they can be downcast too.
//!
//! ```
//! use kiln::*;
//!
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"(module (func (export "f") unreachable))"#)?;
//! let mut store = Store::new(&engine, ());
//! let instance = Instance::new(&mut store, &module, &[])?;
//! let f = instance.get_typed_func::<(), ()>(&mut store, "f")?;
//! let err = f.call(&mut store, ()).unwrap_err();
//! assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached));
//! assert_eq!(err.downcast_ref::<WasmBacktrace>().unwrap().frames().len(), 1);
//! # Ok::<(), kiln::Error>(())
//! ```

use crate::Module;
pub use anyhow::{bail, ensure, format_err, Context, Error, Result};
pub use kiln_environ::Trap;
use std::fmt;

/// One frame of a [`WasmBacktrace`]: which function of which module, and
/// where in the module's bytes.
#[derive(Clone)]
pub struct FrameInfo {
    module: Module,
    func_index: u32,
    func_name: Option<String>,
    module_offset: Option<usize>,
}

impl FrameInfo {
    /// The runtime's frame, with its module found among `modules` (those
    /// of the store the frame ran in, which always holds it).
    pub(crate) fn new(
        frame: kiln_runtime::FrameInfo,
        engine: &crate::Engine,
        modules: &[std::sync::Arc<kiln_runtime::CompiledModule>],
    ) -> Option<FrameInfo> {
        let compiled = modules
            .iter()
            .find(|m| std::sync::Arc::as_ptr(m) as usize == frame.module_id)?;
        Some(FrameInfo {
            module: Module {
                engine: engine.clone(),
                compiled: compiled.clone(),
            },
            func_index: frame.func_index,
            func_name: frame.func_name,
            module_offset: frame.module_offset.map(|o| o as usize),
        })
    }

    /// The module the frame's function belongs to.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The function's index in its module (imports included).
    pub fn func_index(&self) -> u32 {
        self.func_index
    }

    /// The function's name, from the module's name section.
    pub fn func_name(&self) -> Option<&str> {
        self.func_name.as_deref()
    }

    /// The byte offset in the module's binary of the instruction the frame
    /// was executing (for a caller's frame, its call), if the address map
    /// knows it.
    pub fn module_offset(&self) -> Option<usize> {
        self.module_offset
    }
}

impl fmt::Debug for FrameInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameInfo")
            .field("module", &self.module.name())
            .field("func_index", &self.func_index)
            .field("func_name", &self.func_name)
            .field("module_offset", &self.module_offset)
            .finish()
    }
}

/// The Wasm frames a trap or a failing host function unwound through,
/// innermost first; attached as context to the error a call returns.
#[derive(Debug, Clone)]
pub struct WasmBacktrace {
    frames: Vec<FrameInfo>,
    truncated: bool,
}

impl WasmBacktrace {
    pub(crate) fn new(frames: Vec<FrameInfo>, truncated: bool) -> WasmBacktrace {
        WasmBacktrace { frames, truncated }
    }

    /// The frames, innermost first.
    pub fn frames(&self) -> &[FrameInfo] {
        &self.frames
    }

    /// Whether the trap unwound through more Wasm frames than a backtrace
    /// records (`kiln_runtime::FRAME_CAPACITY`): [`frames`](Self::frames)
    /// then holds the innermost ones only.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Display for WasmBacktrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error while executing at wasm backtrace:")?;
        for (i, frame) in self.frames.iter().enumerate() {
            let name = frame
                .func_name
                .clone()
                .unwrap_or_else(|| format!("<wasm function {}>", frame.func_index));
            let module = frame.module.name().unwrap_or("<unknown>");
            if i > 0 {
                writeln!(f)?;
            }
            match frame.module_offset {
                Some(o) => write!(f, "  {i:>3}: {o:#8x} - {module}!{name}")?,
                None => write!(f, "  {i:>3}: {module}!{name}")?,
            }
        }
        if self.truncated {
            write!(
                f,
                "\n  ...: older frames not recorded (the backtrace keeps the innermost {})",
                self.frames.len()
            )?;
        }
        Ok(())
    }
}

/// An error of a host function, carried across Wasm frames unchanged so
/// the host caller gets back exactly the [`Error`] the function returned.
#[derive(Debug)]
pub(crate) struct HostError(pub(crate) Error);

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The error for a trap with `frames`: the [`Trap`], with a
/// [`WasmBacktrace`] as context when there are frames.
pub(crate) fn trap_error(trap: Trap, frames: Vec<FrameInfo>, truncated: bool) -> Error {
    with_backtrace(Error::new(trap), frames, truncated)
}

/// `err` with a [`WasmBacktrace`] of `frames` as context, if any;
/// `truncated` when older frames were not recorded.
pub(crate) fn with_backtrace(err: Error, frames: Vec<FrameInfo>, truncated: bool) -> Error {
    if frames.is_empty() {
        err
    } else {
        err.context(WasmBacktrace::new(frames, truncated))
    }
}
