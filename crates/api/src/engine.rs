//! [`Engine`] and [`Config`].

use crate::{Error, Result};
use kiln_cranelift::{Compiler, CompilerConfig};
use kiln_environ::{FuncType, FunctionLoc, Tunables};
use kiln_jit::CodeMemory;
use kiln_runtime::TypeRegistry;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Global settings for an [`Engine`].
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) compiler: CompilerConfig,
    pub(crate) max_wasm_stack: usize,
    pub(crate) features: wasmparser::WasmFeatures,
    pub(crate) cache: Option<crate::Cache>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            compiler: CompilerConfig::default(),
            max_wasm_stack: 512 * 1024,
            features: kiln_environ::default_features(),
            cache: None,
        }
    }
}

impl Config {
    /// The default configuration.
    pub fn new() -> Config {
        Config::default()
    }

    /// The most native stack Wasm may use per call from the host
    /// (default 512 KiB). Deeper recursion traps with `StackOverflow`.
    pub fn max_wasm_stack(&mut self, bytes: usize) -> &mut Self {
        self.max_wasm_stack = bytes;
        self
    }

    /// Compile for another target (a triple such as
    /// `aarch64-unknown-linux-gnu`). Such modules can be inspected and
    /// serialized but not run here.
    pub fn target(&mut self, triple: &str) -> &mut Self {
        self.compiler.target = Some(triple.to_string());
        self
    }

    /// Cranelift's optimisation level: `"none"`, `"speed"` (default) or
    /// `"speed_and_size"`.
    pub fn cranelift_opt_level(&mut self, level: &str) -> &mut Self {
        self.compiler.opt_level = Some(level.to_string());
        self
    }

    /// Threads used to compile functions; 0 (default) means one per core.
    pub fn compile_threads(&mut self, n: usize) -> &mut Self {
        self.compiler.parallelism = n;
        self
    }

    /// Debug: insert `bytes` of padding between compiled functions, to
    /// test calls whose target lies beyond a branch's reach.
    pub fn debug_padding_between_functions(&mut self, bytes: usize) -> &mut Self {
        self.compiler.padding_between_functions = bytes;
        self
    }

    /// Debug: route every call within a module through a veneer.
    pub fn debug_force_veneers(&mut self, on: bool) -> &mut Self {
        self.compiler.force_veneers = on;
        self
    }

    /// Counts fuel in generated code: each operator costs one unit (a few
    /// that do no work cost none), and Wasm traps with
    /// [`TrapCode::OutOfFuel`](crate::TrapCode) when the store's fuel
    /// ([`Store::set_fuel`](crate::Store::set_fuel)) runs out. Checked at
    /// function entries and loop headers, so a trap lands within one
    /// straight-line stretch of code of the exact point.
    pub fn consume_fuel(&mut self, on: bool) -> &mut Self {
        self.compiler.tunables.consume_fuel = on;
        self
    }

    /// Checks the engine's epoch against the store's deadline at function
    /// entries and loop headers; Wasm traps with
    /// [`TrapCode::Interrupt`](crate::TrapCode) once
    /// [`Engine::increment_epoch`] has reached
    /// [`Store::set_epoch_deadline`](crate::Store::set_epoch_deadline).
    pub fn epoch_interruption(&mut self, on: bool) -> &mut Self {
        self.compiler.tunables.epoch_interruption = on;
        self
    }

    /// Whether memories are initialised from a copy-on-write image of their
    /// data segments (default on): instantiation maps the image instead of
    /// copying the data, and pages are copied only when an instance writes
    /// them. Memories whose segments are not all at constant offsets within
    /// their minimum size are initialised by copying either way.
    pub fn memory_init_cow(&mut self, on: bool) -> &mut Self {
        self.compiler.tunables.memory_images = on;
        self
    }

    /// Whether compiled code carries `.eh_frame` unwind information
    /// (default on), registered with the system unwinder at load so
    /// debuggers, profilers and `std::backtrace` walk through Wasm frames.
    pub fn native_unwind_info(&mut self, on: bool) -> &mut Self {
        self.compiler.native_unwind_info = on;
        self
    }

    /// Caches compiled modules on disk (see [`Cache`](crate::Cache)):
    /// [`Module::new`](crate::Module::new) and friends then load a module
    /// compiled before with the same settings instead of compiling it
    /// again. Off (`None`) by default.
    pub fn cache(&mut self, cache: Option<crate::Cache>) -> &mut Self {
        self.cache = cache;
        self
    }

    /// Enables the tail-call proposal (`return_call`).
    pub fn wasm_tail_call(&mut self, on: bool) -> &mut Self {
        self.features.set(wasmparser::WasmFeatures::TAIL_CALL, on);
        self
    }

    /// Enables the multi-memory proposal.
    pub fn wasm_multi_memory(&mut self, on: bool) -> &mut Self {
        self.features
            .set(wasmparser::WasmFeatures::MULTI_MEMORY, on);
        self
    }

    /// Enables the extended-const proposal.
    pub fn wasm_extended_const(&mut self, on: bool) -> &mut Self {
        self.features
            .set(wasmparser::WasmFeatures::EXTENDED_CONST, on);
        self
    }
}

/// Per-type trampolines for host functions, compiled once per engine.
pub(crate) struct HostTrampolines {
    _code: CodeMemory,
    pub(crate) wasm_to_array: *const u8,
    pub(crate) native_to_array: *const u8,
    pub(crate) wasm_to_native: *const u8,
}

// SAFETY: code pointers into immutable, owned code memory.
unsafe impl Send for HostTrampolines {}
// SAFETY: see `Send`.
unsafe impl Sync for HostTrampolines {}

pub(crate) struct EngineInner {
    pub(crate) compiler: Compiler,
    pub(crate) config: Config,
    pub(crate) types: TypeRegistry,
    pub(crate) epoch: AtomicU64,
    host_trampolines: Mutex<HashMap<FuncType, Arc<HostTrampolines>>>,
    /// The header this engine's artifacts carry, built on first use: it
    /// is compared at every load, and formatting the settings costs more
    /// than the rest of loading a small module.
    artifact_header: std::sync::OnceLock<String>,
}

/// Compiles modules and owns what modules and stores of it share. Cheap
/// to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(&Config::default()).expect("the default configuration is valid for the host")
    }
}

impl Engine {
    /// An engine with `config`.
    pub fn new(config: &Config) -> Result<Engine> {
        kiln_runtime::init_traps();
        let compiler =
            Compiler::new(config.compiler.clone()).map_err(|e| Error::Compile(e.to_string()))?;
        Ok(Engine {
            inner: Arc::new(EngineInner {
                compiler,
                config: config.clone(),
                types: TypeRegistry::default(),
                epoch: AtomicU64::new(0),
                host_trampolines: Mutex::new(HashMap::new()),
                artifact_header: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Advances the epoch by one; stores whose deadline it reaches trap at
    /// their next check. Cheap, and callable from any thread (a timer
    /// thread, typically).
    pub fn increment_epoch(&self) {
        self.inner
            .epoch
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Compiles `bytes` (binary, or text with the `wat` feature) into an
    /// artifact for [`Module::deserialize`](crate::Module::deserialize),
    /// for this engine's target, which need not be the host.
    pub fn precompile_module(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        #[cfg(feature = "wat")]
        let bytes = &*wat::parse_bytes(bytes).map_err(|e| Error::Wat(e.to_string()))?;
        Ok(crate::module::compile(self, bytes)?.object)
    }

    /// The Wasm features, as recorded in artifact headers.
    pub(crate) fn features_tag(&self) -> String {
        format!("features={:#x}", self.inner.config.features.bits())
    }

    /// The header of this engine's artifacts (see
    /// `kiln_environ::artifact_header`).
    pub(crate) fn artifact_header(&self) -> &str {
        self.inner
            .artifact_header
            .get_or_init(|| self.inner.compiler.artifact_header(&self.features_tag()))
    }

    /// Whether two handles are the same engine.
    pub fn same(a: &Engine, b: &Engine) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    pub(crate) fn tunables(&self) -> &Tunables {
        &self.inner.config.compiler.tunables
    }

    pub(crate) fn is_host_target(&self) -> bool {
        self.inner.config.compiler.target.is_none()
    }

    pub(crate) fn host_trampolines(&self, ty: &FuncType) -> Result<Arc<HostTrampolines>> {
        let mut g = self
            .inner
            .host_trampolines
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(t) = g.get(ty) {
            return Ok(t.clone());
        }
        let t = self
            .inner
            .compiler
            .compile_host_trampolines(ty)
            .map_err(|e| Error::Compile(e.to_string()))?;
        let code = CodeMemory::new(&t.object)?;
        let addr = |l: FunctionLoc| (code.text_range().start + l.start as usize) as *const u8;
        let h = Arc::new(HostTrampolines {
            wasm_to_array: addr(t.wasm_to_array),
            native_to_array: addr(t.native_to_array),
            wasm_to_native: addr(t.wasm_to_native),
            _code: code,
        });
        g.insert(ty.clone(), h.clone());
        Ok(h)
    }
}
