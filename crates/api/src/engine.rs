//! [`Engine`] and [`Config`].

use crate::{bail, Error, Result};
use kiln_cranelift::{Compiler, CompilerConfig};
use kiln_environ::{FuncType, FunctionLoc, Tunables};
use kiln_jit::CodeMemory;
use kiln_runtime::TypeRegistry;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// Which compiler an engine uses (Wasmtime's `Strategy`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// The engine's choice: Cranelift.
    #[default]
    Auto,
    /// Cranelift.
    Cranelift,
    /// Wasmtime's baseline compiler, which Kiln does not have.
    Winch,
}

/// Cranelift's optimisation level (Wasmtime's `OptLevel`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OptLevel {
    /// No optimisation.
    None,
    /// Optimise for speed (the default).
    #[default]
    Speed,
    /// Optimise for speed and size.
    SpeedAndSize,
}

/// Global settings for an [`Engine`].
///
/// The setters are Wasmtime's, with Wasmtime's defaults where Kiln has the
/// setting. A setting Kiln cannot honour (a WebAssembly proposal it does
/// not implement, the Winch compiler, a memory layout other than its own)
/// is not ignored: [`Engine::new`] fails with an error that names it.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) compiler: CompilerConfig,
    pub(crate) max_wasm_stack: usize,
    pub(crate) features: wasmparser::WasmFeatures,
    strategy: Strategy,
    signals_based_traps: bool,
    memory_reservation: Option<u64>,
    memory_guard_size: Option<u64>,
    pub(crate) coredump_on_trap: bool,
    /// Switches asking for something Kiln lacks, named for `Engine::new`.
    refused: Vec<&'static str>,
    /// `Config::wasm_backtrace`.
    pub(crate) wasm_backtrace: bool,
    /// Proposals asked for that Kiln does not implement.
    unsupported: Vec<&'static str>,
    pub(crate) cache: Option<crate::Cache>,
    pub(crate) allocation: crate::pooling::InstanceAllocationStrategy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            compiler: CompilerConfig::default(),
            max_wasm_stack: 512 * 1024,
            features: kiln_environ::default_features(),
            strategy: Strategy::Auto,
            signals_based_traps: true,
            memory_reservation: None,
            memory_guard_size: None,
            coredump_on_trap: false,
            refused: Vec::new(),
            wasm_backtrace: true,
            unsupported: Vec::new(),
            cache: None,
            allocation: Default::default(),
        }
    }
}

/// Kiln's linear-memory layout: what `Config::memory_reservation` and
/// `Config::memory_guard_size` must agree with (see `kiln_runtime`'s
/// `LinearMemory`).
const MEMORY_RESERVATION: u64 = 4 << 30;
const MEMORY_GUARD_SIZE: u64 = 2 << 30;

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

    /// Turns on the boolean Cranelift setting `flag`: an ISA flag such as
    /// `has_lse` (AArch64 LSE atomics) or `has_avx2`, or a shared setting.
    /// For the host, the CPU's features are detected and need no flag;
    /// this is for compiling ahead of time for a CPU newer than the
    /// baseline of [`Config::target`]. Artifacts record the CPU features
    /// their code may use, and loading one on a CPU that lacks any of them
    /// is an error ([`ArtifactError::MissingCpuFeatures`](crate::ArtifactError)),
    /// as is an engine for the host configured with a feature the host
    /// lacks.
    ///
    /// # Safety
    ///
    /// Cranelift's settings are not all independent of Kiln's runtime: a
    /// flag that changes the calling convention, the frame layout or the
    /// trap instructions makes the code unsound to run. Only CPU feature
    /// flags (`has_*`) are meant to be set here.
    pub unsafe fn cranelift_flag_enable(&mut self, flag: &str) -> &mut Self {
        self.compiler.cranelift_flags.push((flag.to_string(), None));
        self
    }

    /// Sets the Cranelift setting `name` to `value` (an ISA flag or a
    /// shared setting); an unknown name or a bad value makes
    /// [`Engine::new`] fail.
    ///
    /// # Safety
    ///
    /// As for [`Config::cranelift_flag_enable`]: settings that change the
    /// calling convention, the frame layout (Kiln needs frame pointers) or
    /// the trap instructions make the code unsound to run.
    pub unsafe fn cranelift_flag_set(&mut self, name: &str, value: &str) -> &mut Self {
        self.compiler
            .cranelift_flags
            .push((name.to_string(), Some(value.to_string())));
        self
    }

    /// Records that a switch asked for something Kiln lacks (`on`), or
    /// takes that back (`!on`): [`Engine::new`] fails naming it.
    fn refuse_if(&mut self, on: bool, what: &'static str) -> &mut Self {
        self.refused.retain(|r| *r != what);
        if on {
            self.refused.push(what);
        }
        self
    }

    /// Async calls on fibers. Kiln has none yet: turning this on makes
    /// [`Engine::new`] fail.
    pub fn async_support(&mut self, on: bool) -> &mut Self {
        self.refuse_if(on, "async_support")
    }

    /// DWARF debug information for native debuggers. Kiln emits none:
    /// turning this on makes [`Engine::new`] fail.
    pub fn debug_info(&mut self, on: bool) -> &mut Self {
        self.refuse_if(on, "debug_info")
    }

    /// Whether errors of calls into Wasm carry a [`WasmBacktrace`](crate::WasmBacktrace)
    /// (default on). Off, none is attached (a [`WasmCoreDump`](crate::WasmCoreDump)
    /// still has its frames).
    pub fn wasm_backtrace(&mut self, on: bool) -> &mut Self {
        self.wasm_backtrace = on;
        self
    }

    /// Whether backtraces carry file and line details from the module's
    /// DWARF. Kiln's backtraces name functions and module offsets, never
    /// DWARF details: [`WasmBacktraceDetails::Enable`] makes
    /// [`Engine::new`] fail, as does `Environment` when
    /// `WASMTIME_BACKTRACE_DETAILS=1` asks for them.
    pub fn wasm_backtrace_details(&mut self, details: WasmBacktraceDetails) -> &mut Self {
        let on = match details {
            WasmBacktraceDetails::Enable => true,
            WasmBacktraceDetails::Disable => false,
            WasmBacktraceDetails::Environment => {
                std::env::var("WASMTIME_BACKTRACE_DETAILS").is_ok_and(|v| v == "1")
            }
        };
        self.refuse_if(on, "wasm_backtrace_details")
    }

    /// Runs Cranelift's IR verifier on every function compiled (default
    /// off; slow, for debugging the compiler).
    pub fn cranelift_debug_verifier(&mut self, on: bool) -> &mut Self {
        self.compiler
            .cranelift_flags
            .push(("enable_verifier".into(), Some(on.to_string())));
        self
    }

    /// Makes every float operation produce the canonical NaN when it
    /// produces a NaN (default off), so results are deterministic across
    /// CPUs.
    pub fn cranelift_nan_canonicalization(&mut self, on: bool) -> &mut Self {
        self.compiler
            .cranelift_flags
            .push(("enable_nan_canonicalization".into(), Some(on.to_string())));
        self
    }

    /// The compiler: Cranelift, the only one Kiln has. `Strategy::Winch`
    /// makes [`Engine::new`] fail.
    pub fn strategy(&mut self, strategy: Strategy) -> &mut Self {
        self.strategy = strategy;
        self
    }

    /// Compiles a module's functions on several threads (default on).
    pub fn parallel_compilation(&mut self, on: bool) -> &mut Self {
        self.compiler.parallelism = if on { 0 } else { 1 };
        self
    }

    /// Whether Wasm traps are caught as signals (default on). Kiln relies
    /// on them (guard pages for bounds checks, trap instructions), so
    /// turning them off makes [`Engine::new`] fail.
    pub fn signals_based_traps(&mut self, on: bool) -> &mut Self {
        self.signals_based_traps = on;
        self
    }

    /// Address space reserved up front for each 32-bit linear memory.
    /// Kiln always reserves the whole 4 GiB a 32-bit memory can address
    /// (so its code needs no bounds checks); a smaller reservation makes
    /// [`Engine::new`] fail rather than be silently ignored.
    pub fn memory_reservation(&mut self, bytes: u64) -> &mut Self {
        self.memory_reservation = Some(bytes);
        self
    }

    /// Size of the guard region after each linear memory. Kiln's code is
    /// compiled for a 2 GiB guard; another size makes [`Engine::new`] fail.
    pub fn memory_guard_size(&mut self, bytes: u64) -> &mut Self {
        self.memory_guard_size = Some(bytes);
        self
    }

    /// Extra address space reserved for a memory to grow into without
    /// moving. Kiln's 32-bit memories never move (their whole range is
    /// reserved), so any value is already satisfied.
    pub fn memory_reservation_for_growth(&mut self, _bytes: u64) -> &mut Self {
        self
    }

    /// Attaches a [`WasmCoreDump`](crate::WasmCoreDump) of the store to the
    /// error of every call that traps (found with
    /// `err.downcast_ref::<WasmCoreDump>()`). Off by default.
    pub fn coredump_on_trap(&mut self, on: bool) -> &mut Self {
        self.coredump_on_trap = on;
        self
    }

    /// Cranelift's optimisation level (default [`OptLevel::Speed`]).
    pub fn cranelift_opt_level(&mut self, level: OptLevel) -> &mut Self {
        self.compiler.opt_level = Some(
            match level {
                OptLevel::None => "none",
                OptLevel::Speed => "speed",
                OptLevel::SpeedAndSize => "speed_and_size",
            }
            .to_string(),
        );
        self
    }

    /// Counts fuel in generated code: each operator costs one unit (a few
    /// that do no work cost none), and Wasm traps with
    /// [`Trap::OutOfFuel`](crate::Trap) when the store's fuel
    /// ([`Store::set_fuel`](crate::Store::set_fuel)) runs out. Checked at
    /// function entries and loop headers, so a trap lands within one
    /// straight-line stretch of code of the exact point.
    pub fn consume_fuel(&mut self, on: bool) -> &mut Self {
        self.compiler.tunables.consume_fuel = on;
        self
    }

    /// Checks the engine's epoch against the store's deadline at function
    /// entries and loop headers; Wasm traps with
    /// [`Trap::Interrupt`](crate::Trap) once
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

    /// How instances, their memories and tables are allocated (default
    /// [`InstanceAllocationStrategy::OnDemand`](crate::InstanceAllocationStrategy)):
    /// on demand, or from a pool reserved once when the engine is created
    /// (see [`PoolingAllocationConfig`](crate::PoolingAllocationConfig)).
    pub fn allocation_strategy(
        &mut self,
        strategy: impl Into<crate::InstanceAllocationStrategy>,
    ) -> &mut Self {
        self.allocation = strategy.into();
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

    /// Enables fixed-width SIMD (`v128`; default on).
    pub fn wasm_simd(&mut self, on: bool) -> &mut Self {
        self.features.set(wasmparser::WasmFeatures::SIMD, on);
        self
    }

    /// Enables bulk memory operations (default on).
    pub fn wasm_bulk_memory(&mut self, on: bool) -> &mut Self {
        self.features.set(wasmparser::WasmFeatures::BULK_MEMORY, on);
        self
    }

    /// Enables reference types (default on).
    pub fn wasm_reference_types(&mut self, on: bool) -> &mut Self {
        self.features
            .set(wasmparser::WasmFeatures::REFERENCE_TYPES, on);
        self
    }

    /// Enables multiple results and block parameters (default on).
    pub fn wasm_multi_value(&mut self, on: bool) -> &mut Self {
        self.features.set(wasmparser::WasmFeatures::MULTI_VALUE, on);
        self
    }

    fn unsupported(&mut self, name: &'static str, on: bool) -> &mut Self {
        self.unsupported.retain(|n| *n != name);
        if on {
            self.unsupported.push(name);
        }
        self
    }

    /// The threads proposal; not implemented by Kiln: `true` makes
    /// [`Engine::new`] fail.
    pub fn wasm_threads(&mut self, on: bool) -> &mut Self {
        self.unsupported("threads", on)
    }

    /// The memory64 proposal; not implemented by Kiln: `true` makes
    /// [`Engine::new`] fail.
    pub fn wasm_memory64(&mut self, on: bool) -> &mut Self {
        self.unsupported("memory64", on)
    }

    /// The relaxed-SIMD proposal; not implemented by Kiln: `true` makes
    /// [`Engine::new`] fail.
    pub fn wasm_relaxed_simd(&mut self, on: bool) -> &mut Self {
        self.unsupported("relaxed-simd", on)
    }

    /// The function-references proposal; not implemented by Kiln: `true`
    /// makes [`Engine::new`] fail.
    pub fn wasm_function_references(&mut self, on: bool) -> &mut Self {
        self.unsupported("function-references", on)
    }

    /// The GC proposal; not implemented by Kiln: `true` makes
    /// [`Engine::new`] fail.
    pub fn wasm_gc(&mut self, on: bool) -> &mut Self {
        self.unsupported("gc", on)
    }

    /// The exception-handling proposal; not implemented by Kiln: `true`
    /// makes [`Engine::new`] fail.
    pub fn wasm_exceptions(&mut self, on: bool) -> &mut Self {
        self.unsupported("exceptions", on)
    }

    /// The component model; not implemented by Kiln: `true` makes
    /// [`Engine::new`] fail.
    pub fn wasm_component_model(&mut self, on: bool) -> &mut Self {
        self.unsupported("component-model", on)
    }

    /// Why Kiln cannot run with this configuration, if it cannot.
    fn check(&self) -> Result<()> {
        if let Some(p) = self.unsupported.first() {
            bail!("the WebAssembly {p} proposal is not supported by Kiln");
        }
        if let Some(what) = self.refused.first() {
            bail!("Config::{what} asks for a feature Kiln does not support");
        }
        if self.strategy == Strategy::Winch {
            bail!("the Winch compiler is not available in Kiln; use Strategy::Cranelift");
        }
        if !self.signals_based_traps {
            bail!("Kiln needs signals-based traps (guard pages and trap instructions)");
        }
        if let Some(r) = self.memory_reservation.filter(|r| *r < MEMORY_RESERVATION) {
            bail!(
                "memory_reservation of {r} bytes is not supported: Kiln reserves \
                 {MEMORY_RESERVATION} bytes for every 32-bit memory"
            );
        }
        if let Some(g) = self.memory_guard_size.filter(|g| *g != MEMORY_GUARD_SIZE) {
            bail!(
                "memory_guard_size of {g} bytes is not supported: Kiln's code is \
                 compiled for a guard of {MEMORY_GUARD_SIZE} bytes"
            );
        }
        self.allocation.check()?;
        Ok(())
    }
}

/// What [`Engine::detect_precompiled`] finds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Precompiled {
    /// A compiled core module (an artifact of [`Module::serialize`](crate::Module::serialize)).
    Module,
    /// A compiled component. Kiln has no component model, so it never
    /// says this.
    Component,
}

/// Whether backtraces carry DWARF file and line details (see
/// [`Config::wasm_backtrace_details`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum WasmBacktraceDetails {
    /// Yes.
    Enable,
    /// No.
    Disable,
    /// As the `WASMTIME_BACKTRACE_DETAILS` environment variable says
    /// (`1` for yes).
    Environment,
}

/// Per-type trampolines for host functions, compiled once per engine.
pub(crate) struct HostTrampolines {
    _code: CodeMemory,
    pub(crate) wasm_to_array: *const u8,
    pub(crate) native_to_array: *const u8,
    pub(crate) wasm_to_native: *const u8,
}

// SAFETY: the pointers name code in memory this value owns, published
// read+execute before the value is created and never written again, so
// moving or sharing it between threads only ever reads immutable bytes.
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
    /// The pooling allocator, with `InstanceAllocationStrategy::Pooling`.
    pub(crate) pool: Option<Arc<kiln_runtime::Pool>>,
    /// On demand, the reservations of dropped memories kept for the next
    /// ones (see `pooling.rs`).
    pub(crate) memory_cache: Option<Arc<kiln_runtime::MemoryCache>>,
}

/// Compiles modules and owns what modules and stores of it share. Cheap
/// to clone.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(&Config::default()).expect("the default configuration is valid for the host")
    }
}

impl Engine {
    /// An engine with `config`.
    pub fn new(config: &Config) -> Result<Engine> {
        config.check()?;
        kiln_runtime::init_traps();
        let compiler =
            Compiler::new(config.compiler.clone()).map_err(|e| Error::msg(e.to_string()))?;
        let pool = config.allocation.pool(&config.compiler.tunables)?;
        let memory_cache = match pool {
            Some(_) => None,
            None => crate::pooling::memory_cache(&config.compiler.tunables)?,
        };
        let engine = Engine {
            inner: Arc::new(EngineInner {
                compiler,
                config: config.clone(),
                types: TypeRegistry::default(),
                epoch: AtomicU64::new(0),
                host_trampolines: Mutex::new(HashMap::new()),
                artifact_header: std::sync::OnceLock::new(),
                pool,
                memory_cache,
            }),
        };
        // Code for the host must run on the host: the check that loading
        // makes, made once for everything this engine will compile.
        if engine.is_host_target() {
            kiln_environ::check_cpu_features(engine.artifact_header())?;
        }
        Ok(engine)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether `bytes` look like a compiled artifact (Kiln's ELF object
    /// with its `.kiln.info` header), without loading or checking them.
    /// Kiln has no components, so the answer is `Module` or `None`.
    pub fn detect_precompiled(bytes: &[u8]) -> Option<Precompiled> {
        kiln_jit::find_section(bytes, kiln_environ::sections::INFO)
            .filter(|info| info.starts_with(b"kiln-artifact "))
            .map(|_| Precompiled::Module)
    }

    /// [`Engine::detect_precompiled`] on the contents of file `path`.
    pub fn detect_precompiled_file(
        path: impl AsRef<std::path::Path>,
    ) -> Result<Option<Precompiled>> {
        Ok(Engine::detect_precompiled(&std::fs::read(path)?))
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
        let bytes = &*wat::parse_bytes(bytes)?;
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
            .map_err(|e| Error::msg(e.to_string()))?;
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
