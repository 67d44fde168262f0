//! Errors.

use kiln_environ::Trap as TrapCode;
use kiln_runtime::FrameInfo;
use std::fmt;

/// Any error from Kiln's API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text format could not be parsed.
    #[error("failed to parse WebAssembly text: {0}")]
    Wat(String),
    /// The module is malformed, invalid or uses an unsupported feature.
    #[error(transparent)]
    Wasm(#[from] kiln_environ::WasmError),
    /// Code generation failed.
    #[error("compilation failed: {0}")]
    Compile(String),
    /// A compiled artifact is foreign, incompatible or corrupt.
    #[error(transparent)]
    Artifact(#[from] kiln_environ::ArtifactError),
    /// Loading compiled code failed.
    #[error("loading compiled code failed: {0}")]
    Load(#[from] kiln_jit::JitError),
    /// Execution trapped.
    #[error(transparent)]
    Trap(#[from] Trap),
    /// An import was not provided.
    #[error("unknown import: `{module}::{name}` has not been defined")]
    UnknownImport {
        /// Module name.
        module: String,
        /// Field name.
        name: String,
    },
    /// An import was provided with the wrong type.
    #[error("incompatible import type for `{module}::{name}`: {reason}")]
    IncompatibleImport {
        /// Module name.
        module: String,
        /// Field name.
        name: String,
        /// What does not match.
        reason: String,
    },
    /// A definition was given twice to a linker.
    #[error("import `{module}::{name}` is already defined")]
    Redefinition {
        /// Module name.
        module: String,
        /// Field name.
        name: String,
    },
    /// An export was not found or has another kind.
    #[error("no exported {kind} named `{name}`")]
    MissingExport {
        /// What was asked for.
        kind: &'static str,
        /// The name.
        name: String,
    },
    /// Values or types passed to a call do not match.
    #[error("type mismatch: {0}")]
    TypeMismatch(String),
    /// A value belongs to another store.
    #[error("object used with the wrong store")]
    WrongStore,
    /// A resource (memory, table) could not be created or grown.
    #[error("resource limit: {0}")]
    Resource(String),
    /// An error from a host function, returned to the host caller.
    #[error("{0}")]
    Host(Box<dyn std::error::Error + Send + Sync>),
}

/// Shorthand for results with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The trap code, if this error is a Wasm trap.
    pub fn trap_code(&self) -> Option<TrapCode> {
        match self {
            Error::Trap(t) => t.code(),
            _ => None,
        }
    }

    /// Builds a host error from any message, for host functions to return.
    pub fn msg(m: impl fmt::Display) -> Error {
        Error::Host(m.to_string().into())
    }
}

/// A trap: Wasm execution stopped abnormally.
#[derive(Debug)]
pub struct Trap {
    code: Option<TrapCode>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    backtrace: Vec<FrameInfo>,
}

impl Trap {
    pub(crate) fn new(
        code: Option<TrapCode>,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
        backtrace: Vec<FrameInfo>,
    ) -> Trap {
        Trap {
            code,
            source,
            backtrace,
        }
    }

    /// The trap code; `None` for a trap raised by a host function's error.
    pub fn code(&self) -> Option<TrapCode> {
        self.code
    }

    /// The Wasm frames, innermost first.
    pub fn backtrace(&self) -> &[FrameInfo] {
        &self.backtrace
    }

    /// The backtrace, printed one frame a line like Wasmtime's.
    pub fn backtrace_string(&self) -> String {
        let mut s = String::new();
        for (i, f) in self.backtrace.iter().enumerate() {
            let name = f
                .func_name
                .clone()
                .unwrap_or_else(|| format!("<wasm function {}>", f.func_index));
            let module = f.module_name.as_deref().unwrap_or("<unknown>");
            match f.module_offset {
                Some(o) => s.push_str(&format!("  {i:>3}: {o:#8x} - {module}!{name}\n")),
                None => s.push_str(&format!("  {i:>3}: {module}!{name}\n")),
            }
        }
        s
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.source) {
            (Some(c), _) => write!(f, "wasm trap: {c}"),
            (None, Some(e)) => write!(f, "{e}"),
            (None, None) => write!(f, "wasm trap"),
        }
    }
}

impl std::error::Error for Trap {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
