//! Errors from parsing, validating and translating a module.

/// An error found while reading a WebAssembly module.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The module is malformed or invalid, as decided by the validator.
    #[error("invalid module: {message} (at offset {offset:#x})")]
    InvalidWebAssembly {
        /// The validator's description.
        message: String,
        /// Byte offset in the module.
        offset: usize,
    },
    /// The module uses a feature Kiln does not implement.
    #[error("unsupported feature: {0}")]
    Unsupported(String),
    /// An implementation limit was exceeded.
    #[error("implementation limit exceeded: {0}")]
    ImplLimitExceeded(String),
}

impl From<wasmparser::BinaryReaderError> for WasmError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        // The parser enforces the body-size limit itself (before Kiln's own
        // check sees the body); it is an implementation limit, not a
        // property of the module's validity.
        if e.message().starts_with("function body size") {
            return WasmError::ImplLimitExceeded(format!(
                "{} (at offset {:#x})",
                e.message(),
                e.offset()
            ));
        }
        WasmError::InvalidWebAssembly {
            message: e.message().to_string(),
            offset: e.offset() as usize,
        }
    }
}

/// Shorthand for results with a [`WasmError`].
pub type WasmResult<T> = Result<T, WasmError>;
