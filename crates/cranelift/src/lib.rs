//! `kiln-cranelift`: compiles a translated WebAssembly module to one
//! relocation-free text section with Cranelift, and wraps it in an ELF
//! object.
//!
//! # Who is this crate for?
//!
//! The public API (`kiln`) calls it to compile modules. Use it alone to
//! produce an object file from Wasm bytes: [`Compiler::compile_module`]
//! takes a [`kiln_environ::ModuleTranslation`] and returns a
//! [`CompiledObject`]. It does not load or run code: that is `kiln-jit`'s
//! and `kiln-runtime`'s job, and this crate depends on neither.
//!
//! # Text layout
//!
//! The text section holds, in order: every function body (the `wasm_call`
//! entry points), then the two entry trampolines of each escaping function,
//! then one wasm-to-native trampoline per type. Every piece is appended to
//! Cranelift's `TextSectionBuilder` as a labeled function, so a direct call
//! between bodies (a `colocated` call in the IR) is resolved there as a
//! pc-relative `call`/`bl` to the callee's label. When a target lies beyond
//! the instruction's reach (±128 MiB for AArch64 `bl`), the builder emits a
//! veneer in an island between functions. What is left after layout must
//! be nothing: **Invariant:** a [`CompiledObject`]'s text section carries no
//! relocations, so loading it never writes to code. A relocation the
//! builder cannot resolve is a compile error, never a patch at load time.
//!
//! # Example
//!
//! ```
//! use kiln_cranelift::{Compiler, CompilerConfig};
//! let wasm = wat::parse_str(r#"(module (func (export "f") (result i32) i32.const 7))"#)?;
//! let translation = kiln_environ::translate_module(&wasm, kiln_environ::default_features())?;
//! let compiler = Compiler::new(CompilerConfig::default())?;
//! let compiled = compiler.compile_module(translation, "")?;
//! // An ELF object for `kiln-jit` to load (or to write to disk).
//! assert_eq!(&compiled.object[..4], b"\x7fELF");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod obj;
mod translate;

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{self, UserExternalName, UserFuncName};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, FinalizedRelocTarget};
use cranelift_entity::PrimaryMap;
use kiln_environ::{
    AddressMap, AddressMapEntry, CompiledFunctionInfo, CompiledModuleInfo, DefinedFuncIndex,
    FrameDesc, FrameKind, FrameTable, FuncType, FunctionBodyData, FunctionLoc, ModuleTranslation,
    SavedReg, Trap, TrapSite, Tunables, TypeIndex, VMOffsets,
};
use translate::FuncTranslator;

pub use obj::ObjectInfo;

/// An error while compiling.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The module failed validation while a body was translated.
    #[error(transparent)]
    Wasm(#[from] kiln_environ::WasmError),
    /// Cranelift rejected the code.
    #[error("code generation failed for {func}: {message}")]
    Codegen {
        /// Which function.
        func: String,
        /// Cranelift's message.
        message: String,
    },
    /// A relocation the text-section builder could not resolve.
    #[error("unresolvable relocation {0} (calls must stay within one module)")]
    Relocation(String),
    /// The target or a setting is not supported.
    #[error("unsupported compiler setting: {0}")]
    Setting(String),
}

/// Cranelift's ISA flags that stand for optional CPU features, and the
/// features' names in `kiln_environ` (Rust's `is_*_feature_detected!`
/// names). An artifact records the features whose flag is on, and the
/// loader refuses it on a CPU that lacks one; a test keeps this table in
/// step with Cranelift's `has_*` flags. A flag missing here would instead
/// land in the settings fingerprint, which must match exactly: safe, but
/// it would refuse code for an older CPU on a newer one.
const CPU_FEATURE_FLAGS: &[(&str, &str, &str)] = &[
    ("x86_64", "has_sse3", "sse3"),
    ("x86_64", "has_ssse3", "ssse3"),
    ("x86_64", "has_sse41", "sse4.1"),
    ("x86_64", "has_sse42", "sse4.2"),
    ("x86_64", "has_popcnt", "popcnt"),
    ("x86_64", "has_avx", "avx"),
    ("x86_64", "has_avx2", "avx2"),
    ("x86_64", "has_fma", "fma"),
    ("x86_64", "has_bmi1", "bmi1"),
    ("x86_64", "has_bmi2", "bmi2"),
    ("x86_64", "has_lzcnt", "lzcnt"),
    ("x86_64", "has_avx512f", "avx512f"),
    ("x86_64", "has_avx512dq", "avx512dq"),
    ("x86_64", "has_avx512vl", "avx512vl"),
    ("x86_64", "has_avx512bitalg", "avx512bitalg"),
    ("x86_64", "has_avx512vbmi", "avx512vbmi"),
    ("x86_64", "has_cmpxchg16b", "cmpxchg16b"),
    ("x86_64", "has_avx_vnni", "avxvnni"),
    ("x86_64", "has_avx512vnni", "avx512vnni"),
    ("aarch64", "has_lse", "lse"),
    ("aarch64", "has_pauth", "paca"),
    ("aarch64", "has_fp16", "fp16"),
    ("aarch64", "has_dotprod", "dotprod"),
    ("aarch64", "has_i8mm", "i8mm"),
];

/// The CPU feature that Cranelift flag `flag` of `arch` stands for, if it
/// is one the loader can check.
fn cpu_feature_of(arch: &str, flag: &str) -> Option<&'static str> {
    CPU_FEATURE_FLAGS
        .iter()
        .find(|(a, f, _)| *a == arch && *f == flag)
        .map(|(_, _, name)| *name)
        .filter(|name| kiln_environ::known_cpu_features(arch).contains(name))
}

/// Settings for a [`Compiler`].
#[derive(Clone, Debug)]
pub struct CompilerConfig {
    /// Target triple; `None` compiles for the host.
    pub target: Option<String>,
    /// Settings shared with the runtime.
    pub tunables: Tunables,
    /// Debug: bytes of padding inserted between functions, to push call
    /// targets out of a branch's reach.
    pub padding_between_functions: usize,
    /// Debug: route every call through a veneer.
    pub force_veneers: bool,
    /// Cranelift's optimisation level: "none", "speed" or "speed_and_size".
    pub opt_level: Option<String>,
    /// The number of threads compiling functions; 0 means one per core.
    pub parallelism: usize,
    /// Emit `.eh_frame` unwind information (default on), so debuggers,
    /// profilers and the system unwinder can walk through Wasm frames.
    pub native_unwind_info: bool,
    /// Cranelift settings, ISA flags (such as `has_lse` or `has_avx2`) or
    /// shared ones, on top of what the target (for the host: its detected
    /// CPU features) implies: `(name, None)` turns a boolean setting on,
    /// `(name, Some(value))` sets a setting to a value.
    pub cranelift_flags: Vec<(String, Option<String>)>,
}

impl Default for CompilerConfig {
    fn default() -> Self {
        CompilerConfig {
            target: None,
            tunables: Tunables::default(),
            padding_between_functions: 0,
            force_veneers: false,
            opt_level: None,
            parallelism: 0,
            native_unwind_info: true,
            cranelift_flags: Vec::new(),
        }
    }
}

/// A compiled module: an ELF object and what the runtime needs to use it.
pub struct CompiledObject {
    /// The ELF object bytes.
    pub object: Vec<u8>,
    /// Where things are in it.
    pub info: CompiledModuleInfo,
    /// Section offsets inside `object`.
    pub layout: ObjectInfo,
}

/// Standalone trampolines for one host function type (see
/// [`Compiler::compile_host_trampolines`]).
pub struct HostTrampolines {
    /// The ELF object bytes.
    pub object: Vec<u8>,
    /// Section offsets inside `object`.
    pub layout: ObjectInfo,
    /// The wasm-to-array trampoline in the text section.
    pub wasm_to_array: FunctionLoc,
    /// The native-to-array trampoline in the text section.
    pub native_to_array: FunctionLoc,
    /// The wasm-to-native trampoline in the text section.
    pub wasm_to_native: FunctionLoc,
}

/// Compiles modules for one target with one set of settings.
pub struct Compiler {
    isa: OwnedTargetIsa,
    config: CompilerConfig,
}

struct CompiledFunc {
    code: Vec<u8>,
    alignment: u32,
    /// (offset in function, kind, addend, target label)
    relocs: Vec<(
        u32,
        cranelift_codegen::binemit::Reloc,
        i64,
        Result<usize, String>,
    )>,
    traps: Vec<(u32, Trap)>,
    srclocs: Vec<(u32, u32)>,
    unwind: Option<cranelift_codegen::isa::unwind::systemv::UnwindInfo>,
    frame: FrameDesc,
}

impl Compiler {
    /// A compiler for `config`.
    pub fn new(config: CompilerConfig) -> Result<Compiler, CompileError> {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| {
            f.set(k, v)
                .map_err(|e| CompileError::Setting(format!("{k}={v}: {e}")))
        };
        set(
            &mut flags,
            "opt_level",
            config.opt_level.as_deref().unwrap_or("speed"),
        )?;
        set(&mut flags, "preserve_frame_pointers", "true")?;
        set(&mut flags, "enable_verifier", "false")?;
        set(&mut flags, "enable_probestack", "false")?;
        // A Wasm function may return more values than the `tail`
        // convention has return registers (fewer on AArch64 than on
        // x86-64): the rest go through a return area that Cranelift adds
        // as a hidden parameter. Both sides of every call to such a
        // function are Cranelift-compiled (bodies and trampolines), so the
        // convention is private to Kiln's code. Without it, such a module
        // fails to compile (Cranelift #9510).
        set(&mut flags, "enable_multi_ret_implicit_sret", "true")?;
        set(&mut flags, "unwind_info", "true")?;
        set(&mut flags, "enable_heap_access_spectre_mitigation", "false")?;
        set(
            &mut flags,
            "enable_table_access_spectre_mitigation",
            "false",
        )?;
        let mut isa_builder = match &config.target {
            None => {
                cranelift_native::builder().map_err(|e| CompileError::Setting(e.to_string()))?
            }
            Some(t) => {
                let triple: target_lexicon::Triple = t
                    .parse()
                    .map_err(|e| CompileError::Setting(format!("target {t}: {e}")))?;
                cranelift_codegen::isa::lookup(triple)
                    .map_err(|e| CompileError::Setting(format!("target {t}: {e}")))?
            }
        };
        for (flag, value) in &config.cranelift_flags {
            use cranelift_codegen::settings::SetError;
            let r = match value {
                None => isa_builder.enable(flag),
                Some(v) => isa_builder.set(flag, v),
            };
            match r {
                Err(SetError::BadName(_)) => {
                    set(&mut flags, flag, value.as_deref().unwrap_or("true"))?
                }
                r => r.map_err(|e| CompileError::Setting(format!("{flag}: {e}")))?,
            }
        }
        let isa = isa_builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| CompileError::Setting(e.to_string()))?;
        Ok(Compiler { isa, config })
    }

    /// The unwind information of laid-out functions, unless disabled.
    fn unwind_entries(
        &self,
        funcs: &[&CompiledFunc],
        locs: &[FunctionLoc],
    ) -> Vec<(u32, cranelift_codegen::isa::unwind::systemv::UnwindInfo)> {
        if !self.config.native_unwind_info {
            return Vec::new();
        }
        funcs
            .iter()
            .zip(locs)
            .filter_map(|(f, l)| Some((l.start, f.unwind.clone()?)))
            .collect()
    }

    /// Whether the target's text-section builder can route out-of-range
    /// calls through veneers (AArch64 can; x86-64's ±2 GiB `call` cannot).
    fn isa_has_veneers(&self) -> bool {
        matches!(
            self.isa.triple().architecture,
            target_lexicon::Architecture::Aarch64(_)
        )
    }

    /// The target ISA.
    pub fn isa(&self) -> &dyn TargetIsa {
        &*self.isa
    }

    /// The target triple, as a string.
    pub fn triple(&self) -> String {
        self.isa.triple().to_string()
    }

    /// The settings this compiler was made with.
    pub fn config(&self) -> &CompilerConfig {
        &self.config
    }

    /// A string naming every setting that affects compatibility of
    /// compiled code, recorded in artifacts and checked when loading.
    pub fn settings_fingerprint(&self) -> String {
        // Only settings baked into code: memory images, for one, are not.
        let t = &self.config.tunables;
        let mut s = format!(
            "{} reservation={} guard={} fuel={} epoch={} pad={} veneers={} unwind={}",
            self.isa.triple(),
            t.static_memory_reservation,
            t.memory_guard_size,
            t.consume_fuel,
            t.epoch_interruption,
            self.config.padding_between_functions,
            self.config.force_veneers,
            self.config.native_unwind_info
        );
        for v in self.isa.flags().iter() {
            s.push_str(&format!(" {}={}", v.name, v));
        }
        let arch = self.arch();
        for v in self.isa.isa_flags() {
            // CPU features are recorded apart, as the loader checks them
            // (see `cpu_features`).
            if cpu_feature_of(arch, v.name).is_none() {
                s.push_str(&format!(" {}={}", v.name, v));
            }
        }
        s
    }

    /// The target architecture, as Rust's `target_arch` names it.
    fn arch(&self) -> &'static str {
        match self.isa.triple().architecture {
            target_lexicon::Architecture::X86_64 => "x86_64",
            target_lexicon::Architecture::Aarch64(_) => "aarch64",
            _ => "other",
        }
    }

    /// The optional CPU features the generated code may use, by the names
    /// `kiln_environ::cpu_features_line` records and the loader checks:
    /// every Cranelift ISA flag that stands for a CPU feature and is on.
    pub fn cpu_features(&self) -> Vec<&'static str> {
        let arch = self.arch();
        self.isa
            .isa_flags()
            .iter()
            .filter(|v| v.as_bool() == Some(true))
            .filter_map(|v| cpu_feature_of(arch, v.name))
            .collect()
    }

    /// The artifact header for modules this compiler produces; `extra`
    /// names further settings of the caller (enabled Wasm features).
    pub fn artifact_header(&self, extra: &str) -> String {
        kiln_environ::artifact_header(
            &format!("{} {extra}", self.settings_fingerprint()),
            &kiln_environ::cpu_features_line(self.arch(), &self.cpu_features()),
        )
    }

    /// Compiles every function body and trampoline of `translation` into
    /// an object that also carries the artifact sections (see
    /// `kiln_environ::sections`), with the header for `extra` settings.
    ///
    /// A panic in the code generator (a bug, in Cranelift or here) is
    /// caught and returned as [`CompileError::Codegen`]: nothing a module
    /// contains may take its embedder down (see `catch_codegen_panic`).
    pub fn compile_module(
        &self,
        translation: ModuleTranslation<'_>,
        extra: &str,
    ) -> Result<CompiledObject, CompileError> {
        catch_codegen_panic(
            || "module".to_string(),
            || self.compile_module_unguarded(translation, extra),
        )
    }

    fn compile_module_unguarded(
        &self,
        translation: ModuleTranslation<'_>,
        extra: &str,
    ) -> Result<CompiledObject, CompileError> {
        let module = &translation.module;
        let offsets = VMOffsets::new(module);
        let bodies: Vec<(DefinedFuncIndex, FunctionBodyData<'_>)> =
            translation.function_bodies.into_iter().collect();
        let compiled_bodies = self.compile_bodies(module, &offsets, bodies)?;

        // Trampolines: two per escaping function, one per type.
        let mut tramp_funcs: Vec<ir::Function> = Vec::new();
        let mut escaping = Vec::new();
        for d in module.defined_funcs() {
            if module.func_ref_slots[d].is_some() {
                let ty = module.func_type(module.func_index(d));
                let callee = UserExternalName {
                    namespace: 0,
                    index: d.as_u32(),
                };
                tramp_funcs.push(kiln_trampolines::array_to_wasm(
                    self.isa(),
                    ty,
                    callee.clone(),
                ));
                tramp_funcs.push(kiln_trampolines::native_to_wasm(self.isa(), ty, callee));
                escaping.push(d);
            }
        }
        for (_, ty) in module.types.iter() {
            tramp_funcs.push(kiln_trampolines::wasm_to_native(self.isa(), ty));
        }
        let compiled_tramps = tramp_funcs
            .into_iter()
            .map(|f| self.compile_ir("trampoline", f))
            .collect::<Result<Vec<_>, _>>()?;

        let all: Vec<&CompiledFunc> = compiled_bodies
            .iter()
            .chain(compiled_tramps.iter())
            .collect();
        let (text, locs, traps, address_map) = self.layout_text(&all, compiled_bodies.len())?;

        let n = compiled_bodies.len();
        let mut funcs: PrimaryMap<DefinedFuncIndex, CompiledFunctionInfo> = (0..n)
            .map(|i| CompiledFunctionInfo {
                wasm_func: locs[i],
                array_to_wasm: None,
                native_to_wasm: None,
            })
            .collect();
        let mut next = n;
        for d in escaping {
            funcs[d].array_to_wasm = Some(locs[next]);
            funcs[d].native_to_wasm = Some(locs[next + 1]);
            next += 2;
        }
        let wasm_to_native: PrimaryMap<TypeIndex, FunctionLoc> =
            (0..module.types.len()).map(|i| locs[next + i]).collect();
        // Entry trampolines follow the bodies, two per escaping function
        // (array-to-wasm, native-to-wasm); the wasm-to-native ones follow.
        let entries = n..next;
        let mut frames = FrameTable::default();
        for (i, (f, loc)) in all.iter().zip(&locs).enumerate() {
            let kind = if entries.contains(&i) {
                FrameKind::Entry
            } else {
                FrameKind::Other
            };
            frames
                .push(loc.start, kind, &f.frame)
                .map_err(|e| CompileError::Codegen {
                    func: format!("function at text offset {}", loc.start),
                    message: e.to_string(),
                })?;
        }

        let info = CompiledModuleInfo {
            module: translation.module,
            funcs,
            wasm_to_native,
            traps,
            address_map,
            frames,
        };
        let sections =
            kiln_environ::encode_sections(&info, translation.wasm, &self.artifact_header(extra));
        let unwind = self.unwind_entries(&all, &locs);
        let (object, layout) = obj::write_object(&*self.isa, &text, &sections, &unwind)?;
        Ok(CompiledObject {
            object,
            layout,
            info,
        })
    }

    /// Compiles the per-type trampolines the engine keeps for host
    /// functions of type `ty`: wasm-to-array and native-to-array for
    /// `Func::new`, and wasm-to-native for `Func::wrap` functions that reach
    /// Wasm without being imported by a module (tables, arguments).
    pub fn compile_host_trampolines(&self, ty: &FuncType) -> Result<HostTrampolines, CompileError> {
        catch_codegen_panic(
            || "host trampolines".to_string(),
            || self.compile_host_trampolines_unguarded(ty),
        )
    }

    fn compile_host_trampolines_unguarded(
        &self,
        ty: &FuncType,
    ) -> Result<HostTrampolines, CompileError> {
        let a = self.compile_ir(
            "wasm_to_array",
            kiln_trampolines::wasm_to_array(self.isa(), ty),
        )?;
        let b = self.compile_ir(
            "native_to_array",
            kiln_trampolines::native_to_array(self.isa(), ty),
        )?;
        let c = self.compile_ir(
            "wasm_to_native",
            kiln_trampolines::wasm_to_native(self.isa(), ty),
        )?;
        let all = [&a, &b, &c];
        let (text, locs, _, _) = self.layout_text(&all, 0)?;
        let unwind = self.unwind_entries(&all, &locs);
        let (object, layout) = obj::write_object(&*self.isa, &text, &[], &unwind)?;
        Ok(HostTrampolines {
            object,
            layout,
            wasm_to_array: locs[0],
            native_to_array: locs[1],
            wasm_to_native: locs[2],
        })
    }

    fn compile_bodies(
        &self,
        module: &kiln_environ::Module,
        offsets: &VMOffsets,
        bodies: Vec<(DefinedFuncIndex, FunctionBodyData<'_>)>,
    ) -> Result<Vec<CompiledFunc>, CompileError> {
        let threads = match self.config.parallelism {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let threads = threads.min(bodies.len() / 8 + 1);
        if threads <= 1 {
            let mut translator = FuncTranslator::default();
            return bodies
                .into_iter()
                .map(|(i, b)| self.compile_body(&mut translator, module, offsets, i, b))
                .collect();
        }
        // Split into contiguous chunks and compile them on scoped threads;
        // results come back in index order.
        let chunk = bodies.len().div_ceil(threads);
        let mut chunks: Vec<Vec<(DefinedFuncIndex, FunctionBodyData<'_>)>> = Vec::new();
        let mut it = bodies.into_iter().peekable();
        while it.peek().is_some() {
            chunks.push(it.by_ref().take(chunk).collect());
        }
        let results: Vec<Result<Vec<CompiledFunc>, CompileError>> = std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|c| {
                    s.spawn(move || {
                        let mut translator = FuncTranslator::default();
                        c.into_iter()
                            .map(|(i, b)| self.compile_body(&mut translator, module, offsets, i, b))
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(CompileError::Codegen {
                            func: "?".into(),
                            message: "compiler thread panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut out = Vec::new();
        for r in results {
            out.extend(r?);
        }
        Ok(out)
    }

    fn compile_body(
        &self,
        translator: &mut FuncTranslator,
        module: &kiln_environ::Module,
        offsets: &VMOffsets,
        index: DefinedFuncIndex,
        body: FunctionBodyData<'_>,
    ) -> Result<CompiledFunc, CompileError> {
        let f = module.func_index(index);
        catch_codegen_panic(
            || format!("wasm function {}", f.as_u32()),
            || self.compile_body_unguarded(translator, module, offsets, f, index, body),
        )
    }

    fn compile_body_unguarded(
        &self,
        translator: &mut FuncTranslator,
        module: &kiln_environ::Module,
        offsets: &VMOffsets,
        f: kiln_environ::FuncIndex,
        index: DefinedFuncIndex,
        body: FunctionBodyData<'_>,
    ) -> Result<CompiledFunc, CompileError> {
        let sig = kiln_trampolines::wasm_signature(self.isa(), module.func_type(f));
        let mut func =
            ir::Function::with_name_signature(UserFuncName::user(0, index.as_u32()), sig);
        let env = translate::Env {
            isa: self.isa(),
            module,
            offsets,
            tunables: &self.config.tunables,
        };
        translator.translate(&env, f, &body, &mut func)?;
        self.compile_ir(&format!("wasm function {}", f.as_u32()), func)
    }

    fn compile_ir(&self, what: &str, func: ir::Function) -> Result<CompiledFunc, CompileError> {
        let names = func.params.user_named_funcs().clone();
        let mut ctx = Context::for_function(func);
        let mut ctrl = ControlPlane::default();
        let compiled = ctx
            .compile(&*self.isa, &mut ctrl)
            .map_err(|e| CompileError::Codegen {
                func: what.to_string(),
                message: format!("{:?}", e.inner),
            })?;
        let relocs = compiled
            .buffer
            .relocs()
            .iter()
            .map(|r| {
                let target = match &r.target {
                    FinalizedRelocTarget::ExternalName(ir::ExternalName::User(n)) => {
                        let name = &names[*n];
                        if name.namespace == 0 {
                            Ok(name.index as usize)
                        } else {
                            Err(format!("{name:?}"))
                        }
                    }
                    other => Err(format!("{other:?}")),
                };
                (r.offset, r.kind, r.addend, target)
            })
            .collect();
        let traps = compiled
            .buffer
            .traps()
            .iter()
            .map(|t| (t.offset, trap_code(t.code)))
            .collect();
        let srclocs = backtrace_srclocs(&compiled.buffer);
        let frame =
            frame_desc(&*self.isa, &compiled.buffer).map_err(|message| CompileError::Codegen {
                func: what.to_string(),
                message,
            })?;
        let unwind = match compiled.create_unwind_info(&*self.isa) {
            Ok(Some(cranelift_codegen::isa::unwind::UnwindInfo::SystemV(u))) => Some(u),
            Ok(_) => None,
            Err(e) => {
                return Err(CompileError::Codegen {
                    func: what.to_string(),
                    message: format!("unwind info: {e:?}"),
                })
            }
        };
        Ok(CompiledFunc {
            unwind,
            frame,
            code: compiled.code_buffer().to_vec(),
            alignment: compiled.buffer.alignment,
            relocs,
            traps,
            srclocs,
        })
    }

    /// Lays out `funcs` in one text section (label i = funcs[i]) and
    /// resolves every relocation; see the crate docs. The debug padding goes
    /// between the first `padded` functions (the Wasm bodies).
    #[allow(clippy::type_complexity)]
    fn layout_text(
        &self,
        funcs: &[&CompiledFunc],
        padded: usize,
    ) -> Result<(Vec<u8>, Vec<FunctionLoc>, Vec<TrapSite>, AddressMap), CompileError> {
        // Without veneers (x86-64), a call cannot reach past ±2 GiB, and
        // Cranelift's builder would panic on such a call: refuse up front
        // when the text could get that large.
        let upper_bound: u64 = funcs
            .iter()
            .map(|f| f.code.len() as u64 + u64::from(f.alignment))
            .sum::<u64>()
            + (padded.saturating_sub(1) * self.config.padding_between_functions) as u64;
        if !self.isa_has_veneers() && upper_bound >= i32::MAX as u64 {
            return Err(CompileError::Setting(format!(
                "text section of up to {upper_bound} bytes exceeds the ±2 GiB reach of calls on {}",
                self.isa.triple()
            )));
        }
        let mut builder = self.isa.text_section_builder(funcs.len());
        if self.config.force_veneers {
            builder.force_veneers();
        }
        let mut ctrl = ControlPlane::default();
        let mut locs = Vec::with_capacity(funcs.len());
        let mut traps = Vec::new();
        let mut address_map = Vec::new();
        let padding = vec![0u8; self.config.padding_between_functions];
        for (i, f) in funcs.iter().enumerate() {
            if i > 0 && i < padded && !padding.is_empty() {
                builder.append(false, &padding, 1, &mut ctrl);
            }
            let off = builder.append(true, &f.code, f.alignment.max(1), &mut ctrl);
            let start = u32::try_from(off)
                .map_err(|_| CompileError::Setting("text section larger than 4 GiB".into()))?;
            for (roff, kind, addend, target) in &f.relocs {
                let label = target.clone().map_err(CompileError::Relocation)?;
                if !builder.resolve_reloc(off + u64::from(*roff), *kind, *addend, label) {
                    return Err(CompileError::Relocation(format!(
                        "{kind:?} to function {label} at offset {}",
                        off + u64::from(*roff)
                    )));
                }
            }
            traps.extend(f.traps.iter().map(|(o, t)| TrapSite {
                code_offset: start + o,
                trap: *t,
            }));
            address_map.extend(f.srclocs.iter().map(|(o, w)| AddressMapEntry {
                code_offset: start + o,
                wasm_offset: *w,
            }));
            locs.push(FunctionLoc {
                start,
                length: f.code.len() as u32,
            });
        }
        let text = builder.finish(&mut ctrl);
        Ok((text, locs, traps, AddressMap::new(&address_map)))
    }
}

/// Runs `f`, turning a panic inside it into [`CompileError::Codegen`] for
/// the thing `what` names.
///
/// # Why catch panics at all
///
/// Nothing a module contains may take its embedder down: bad input gets an
/// error. Validation and the implementation limits (in `kiln-environ`)
/// keep invalid and oversized code away from the code generator, so a
/// panic here is a bug, but one that a hostile module could trigger at
/// will, and the embedder of an untrusted module must survive it. The
/// compiler's state is not reused after a panic: the failing function's
/// translator and context are dropped, and so is the rest of the module's
/// compilation, since the first error ends it.
///
/// The panic hook still runs (and prints the message), so the bug is seen;
/// fuzzers, whose hook aborts, still report it. In a build with
/// `panic = "abort"` there is nothing to catch.
fn catch_codegen_panic<T>(
    what: impl FnOnce() -> String,
    f: impl FnOnce() -> Result<T, CompileError>,
) -> Result<T, CompileError> {
    // Unwind safety: on a panic, every value `f` touched is dropped or
    // abandoned with the error; none is observed afterwards.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string());
        Err(CompileError::Codegen {
            func: what(),
            message: format!("the code generator panicked: {message}"),
        })
    })
}

/// What a trap must undo to leave a frame of this function: the
/// callee-saved registers its prologue stores, and where (see
/// `kiln_environ::FrameTable`). Read from the prologue's unwind
/// pseudo-instructions, which give each save slot relative to the frame
/// pointer on every architecture: `fp - offset_downward_to_clobbers +
/// clobber_offset`.
fn frame_desc(
    isa: &dyn TargetIsa,
    buffer: &cranelift_codegen::MachBufferFinalized<cranelift_codegen::Final>,
) -> Result<FrameDesc, String> {
    use cranelift_codegen::isa::unwind::UnwindInst;
    let mut clobbers_below_fp: Option<i64> = None;
    let mut desc = FrameDesc { saves: Vec::new() };
    for (_, inst) in &buffer.unwind_info {
        match inst {
            UnwindInst::DefineNewFrame {
                offset_downward_to_clobbers,
                ..
            } => clobbers_below_fp = Some(i64::from(*offset_downward_to_clobbers)),
            UnwindInst::SaveReg {
                clobber_offset,
                reg,
            } => {
                let below = clobbers_below_fp.ok_or("register saved before the frame is set up")?;
                let dwarf_reg = isa
                    .map_regalloc_reg_to_dwarf(cranelift_codegen::Reg::from(*reg))
                    .map_err(|e| format!("saved register {reg:?}: {e:?}"))?;
                // `FrameTable::push` checks the range the encoding allows.
                let fp_offset = i32::try_from(i64::from(*clobber_offset) - below)
                    .map_err(|_| "save slot out of range")?;
                desc.saves.push(SavedReg {
                    dwarf_reg,
                    fp_offset,
                });
            }
            _ => {}
        }
    }
    Ok(desc)
}

/// The address-map entries a backtrace can need, keyed by the exact code
/// offsets it looks up: each trap site, and the last byte of each call
/// (a frame's return address minus one). No other instruction is ever
/// looked up, so nothing else is recorded.
fn backtrace_srclocs(
    buffer: &cranelift_codegen::MachBufferFinalized<cranelift_codegen::Final>,
) -> Vec<(u32, u32)> {
    let mut wanted: Vec<u32> = buffer
        .traps()
        .iter()
        .map(|t| t.offset)
        .chain(buffer.call_sites().map(|c| c.ret_addr.saturating_sub(1)))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let ranges = buffer.get_srclocs_sorted();
    let mut out = Vec::with_capacity(wanted.len());
    let mut r = 0;
    for o in wanted {
        while r < ranges.len() && ranges[r].end <= o {
            r += 1;
        }
        if let Some(s) = ranges.get(r) {
            if s.start <= o && !s.loc.is_default() {
                out.push((o, s.loc.bits()));
            }
        }
    }
    out
}

fn trap_code(code: ir::TrapCode) -> Trap {
    translate::trap_of(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_code_generator_becomes_an_error() {
        let e = catch_codegen_panic(
            || "wasm function 3".to_string(),
            || -> Result<(), CompileError> { panic!("index out of range") },
        )
        .expect_err("the panic is caught");
        assert!(
            matches!(&e, CompileError::Codegen { func, message }
                if func == "wasm function 3" && message.contains("index out of range")),
            "{e}"
        );
        // A formatted message is carried too.
        let e = catch_codegen_panic(
            || "module".to_string(),
            || -> Result<(), CompileError> { panic!("value {} too large", 1 << 24) },
        )
        .expect_err("the panic is caught");
        assert!(e.to_string().contains("16777216 too large"), "{e}");
        // No panic: the result passes through.
        assert_eq!(catch_codegen_panic(|| unreachable!(), || Ok(5)).unwrap(), 5);
    }
}
