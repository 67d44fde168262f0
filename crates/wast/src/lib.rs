//! Kiln's runner for `.wast` scripts, the format of the WebAssembly spec
//! testsuite.
//!
//! # Who is this crate for?
//!
//! Kiln's own developers and CI, and anyone who wants to check Kiln (or a
//! configuration of it) against the official WebAssembly testsuite or
//! their own `.wast` scripts. It is not needed to embed Kiln.
//!
//! A script is run directive by directive with [`run_file`] or
//! [`run_str`]; a failed assertion (or a panic while running one) does not
//! stop the run. The result is a [`WastStats`] counting passed and failed
//! directives, with one message per failure in the form
//! `file:line:col: directive: expected X, got Y`.
//!
//! ```
//! let stats = kiln_wast::run_str(
//!     "example.wast",
//!     r#"
//!     (module (func (export "add") (param i32 i32) (result i32)
//!       local.get 0 local.get 1 i32.add))
//!     (assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
//!     "#,
//!     &kiln::Config::default(),
//! )?;
//! assert_eq!((stats.passed, stats.failed), (2, 0));
//! # Ok::<(), kiln_wast::WastError>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use kiln::{
    Config, Engine, Error, ExternRef, Func, Global, GlobalType, Instance, Linker, Memory,
    MemoryType, Module, Mutability, RefType, Store, Table, TableType, Trap, Val, ValType,
};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use wast::core::{AbstractHeapType, HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::lexer::Lexer;
use wast::parser::{self, ParseBuffer};
use wast::token::Id;
use wast::{
    QuoteWat, QuoteWatTest, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet, Wat,
};

/// An error that stops a script from running at all (as opposed to a
/// failed assertion, which is counted in [`WastStats`]).
#[derive(Debug, thiserror::Error)]
pub enum WastError {
    /// The script file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The script is not valid `.wast` syntax.
    #[error("parsing {name}: {message}")]
    Parse {
        /// The script's name.
        name: String,
        /// The parser's message, with location.
        message: String,
    },
    /// The engine could not be created from the configuration.
    #[error("creating the engine: {0}")]
    Engine(#[source] Error),
    /// The `spectest` host module could not be set up.
    #[error("setting up the spectest module: {0}")]
    Setup(#[source] Error),
}

/// The outcome of running a script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WastStats {
    /// Directives that behaved as the script says.
    pub passed: usize,
    /// Directives that did not (including unsupported ones and panics).
    pub failed: usize,
    /// One message per failure: `file:line:col: directive: expected X, got Y`.
    pub failures: Vec<String>,
}

/// Runs the `.wast` script at `path` with a new engine built from `config`.
pub fn run_file(path: &Path, config: &Config) -> Result<WastStats, WastError> {
    let text = std::fs::read_to_string(path).map_err(|source| WastError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    run_str(&path.display().to_string(), &text, config)
}

/// Runs the `.wast` script at `path` in a new store of `engine` (to share
/// one engine, and its pooling allocator if it has one, between scripts).
pub fn run_file_with_engine(path: &Path, engine: &Engine) -> Result<WastStats, WastError> {
    let text = std::fs::read_to_string(path).map_err(|source| WastError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut cx = WastContext::new(engine).map_err(WastError::Setup)?;
    cx.run(&path.display().to_string(), &text)
}

/// Runs the `.wast` script `text`, named `name` in failure messages, with a
/// new engine built from `config`.
pub fn run_str(name: &str, text: &str, config: &Config) -> Result<WastStats, WastError> {
    let engine = Engine::new(config).map_err(WastError::Engine)?;
    let mut cx = WastContext::new(&engine).map_err(WastError::Setup)?;
    cx.run(name, text)
}

/// The state of a running script: a store, a linker holding `spectest`
/// and registered instances, and the modules and instances defined so far.
///
/// Most users want [`run_file`] or [`run_str`]; a context is for running
/// several scripts against the same store, one after another.
pub struct WastContext {
    engine: Engine,
    store: Store<()>,
    linker: Linker<()>,
    current: Option<Instance>,
    instances: HashMap<String, Instance>,
    definitions: HashMap<String, Module>,
    last_definition: Option<Module>,
}

/// The result of one directive: `Ok` if it behaved as expected, otherwise
/// a message saying what was expected and what happened.
type Outcome = Result<(), String>;

impl WastContext {
    /// A context for `engine` with the `spectest` module defined.
    pub fn new(engine: &Engine) -> Result<WastContext, Error> {
        let mut store = Store::new(engine, ());
        let mut linker = Linker::new(engine);
        linker.allow_shadowing(true);
        define_spectest(&mut linker, &mut store)?;
        Ok(WastContext {
            engine: engine.clone(),
            store,
            linker,
            current: None,
            instances: HashMap::new(),
            definitions: HashMap::new(),
            last_definition: None,
        })
    }

    /// Runs the script `text`, named `name` in failure messages.
    pub fn run(&mut self, name: &str, text: &str) -> Result<WastStats, WastError> {
        let parse_err = |e: wast::Error| {
            let mut e = e;
            e.set_path(Path::new(name));
            e.set_text(text);
            WastError::Parse {
                name: name.to_string(),
                message: e.to_string(),
            }
        };
        let mut lexer = Lexer::new(text);
        lexer.allow_confusing_unicode(true);
        let buf = ParseBuffer::new_with_lexer(lexer).map_err(parse_err)?;
        let wast = parser::parse::<Wast>(&buf).map_err(parse_err)?;
        let mut stats = WastStats::default();
        for directive in wast.directives {
            let span = directive.span();
            let kind = directive_name(&directive);
            let outcome = catch_unwind(AssertUnwindSafe(|| self.directive(text, directive)))
                .unwrap_or_else(|payload| {
                    let msg = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "<non-string panic>".to_string());
                    Err(format!("panicked: {msg}"))
                });
            match outcome {
                Ok(()) => stats.passed += 1,
                Err(msg) => {
                    let (line, col) = span.linecol_in(text);
                    stats.failed += 1;
                    stats
                        .failures
                        .push(format!("{name}:{}:{}: {kind}: {msg}", line + 1, col + 1));
                }
            }
        }
        Ok(stats)
    }

    fn directive(&mut self, text: &str, d: WastDirective<'_>) -> Outcome {
        match d {
            WastDirective::Module(mut m) => {
                let name = m.name();
                let module = self.compile_quote(&mut m, text)?;
                let instance = self
                    .instantiate(&module)
                    .map_err(|e| format!("expected module to instantiate, got error: {e}"))?;
                self.set_current(name, instance);
                Ok(())
            }
            WastDirective::ModuleDefinition(mut m) => {
                let name = m.name();
                let module = self.compile_quote(&mut m, text)?;
                if let Some(n) = name {
                    self.definitions
                        .insert(n.name().to_string(), module.clone());
                }
                self.last_definition = Some(module);
                Ok(())
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => {
                let m = match module {
                    Some(id) => self.definitions.get(id.name()).cloned().ok_or_else(|| {
                        format!("expected a module definition ${}, got none", id.name())
                    })?,
                    None => self
                        .last_definition
                        .clone()
                        .ok_or_else(|| "expected a module definition, got none".to_string())?,
                };
                let inst = self
                    .instantiate(&m)
                    .map_err(|e| format!("expected module to instantiate, got error: {e}"))?;
                self.set_current(instance, inst);
                Ok(())
            }
            WastDirective::Register { name, module, .. } => {
                let inst = self.instance(module)?;
                self.linker
                    .instance(&mut self.store, name, inst)
                    .map(|_| ())
                    .map_err(|e| format!("expected registration as {name:?}, got error: {e}"))
            }
            WastDirective::Invoke(call) => self
                .invoke(&call)
                .map(|_| ())
                .map_err(|e| format!("expected success, got error: {e}")),
            WastDirective::AssertReturn { exec, results, .. } => {
                let got = match self.execute(exec, text)? {
                    Ok(v) => v,
                    Err(e) => {
                        return Err(format!("expected {}, got error: {e}", rets_str(&results)))
                    }
                };
                self.check_results(&results, &got)
            }
            WastDirective::AssertTrap { exec, message, .. } => match self.execute(exec, text)? {
                Ok(v) => Err(format!("expected trap {message:?}, got {}", vals_str(&v))),
                Err(e) => check_trap(&e, message),
            },
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call) {
                Ok(v) => Err(format!(
                    "expected exhaustion {message:?}, got {}",
                    vals_str(&v)
                )),
                Err(e) => check_trap(&e, message),
            },
            WastDirective::AssertInvalid {
                mut module,
                message,
                ..
            } => match self.compile_for_failure(&mut module, text) {
                Ok(()) => Err(format!(
                    "expected invalid module ({message}), got a valid module"
                )),
                Err(_) => Ok(()),
            },
            WastDirective::AssertMalformed {
                mut module,
                message,
                ..
            } => match self.compile_for_failure(&mut module, text) {
                Ok(()) => Err(format!(
                    "expected malformed module ({message}), got a valid module"
                )),
                Err(_) => Ok(()),
            },
            WastDirective::AssertUnlinkable {
                mut module,
                message,
                ..
            } => {
                let module = self.compile_wat(&mut module, text)?;
                match self.instantiate(&module) {
                    Ok(_) => Err(format!("expected unlinkable ({message}), got an instance")),
                    Err(e) if e.downcast_ref::<Trap>().copied().is_some() => {
                        Err(format!("expected unlinkable ({message}), got trap: {e}"))
                    }
                    Err(_) => Ok(()),
                }
            }
            other => Err(format!(
                "expected a supported directive, got unsupported `{}`",
                directive_name(&other)
            )),
        }
    }

    fn set_current(&mut self, name: Option<Id<'_>>, instance: Instance) {
        if let Some(n) = name {
            self.instances.insert(n.name().to_string(), instance);
        }
        self.current = Some(instance);
    }

    fn instance(&self, name: Option<Id<'_>>) -> Result<Instance, String> {
        match name {
            Some(n) => self
                .instances
                .get(n.name())
                .copied()
                .ok_or_else(|| format!("expected an instance ${}, got none", n.name())),
            None => self
                .current
                .ok_or_else(|| "expected a current instance, got none".to_string()),
        }
    }

    fn instantiate(&mut self, module: &Module) -> Result<Instance, Error> {
        self.linker.instantiate(&mut self.store, module)
    }

    /// Encodes and compiles a module that should be fine.
    fn compile_quote(&self, m: &mut QuoteWat<'_>, text: &str) -> Result<Module, String> {
        let bytes = m
            .encode()
            .map_err(|e| format!("expected a module, got text error: {}", wast_err(e, text)))?;
        Module::from_binary(&self.engine, &bytes)
            .map_err(|e| format!("expected a valid module, got error: {e}"))
    }

    fn compile_wat(&self, m: &mut Wat<'_>, text: &str) -> Result<Module, String> {
        let bytes = m
            .encode()
            .map_err(|e| format!("expected a module, got text error: {}", wast_err(e, text)))?;
        Module::from_binary(&self.engine, &bytes)
            .map_err(|e| format!("expected a valid module, got error: {e}"))
    }

    /// Encodes and compiles a module that should not compile. `Err` holds
    /// the reason it did not (text error or compile error).
    fn compile_for_failure(&self, m: &mut QuoteWat<'_>, text: &str) -> Result<(), String> {
        let bytes = match m.to_test() {
            Ok(QuoteWatTest::Binary(b)) => b,
            Ok(QuoteWatTest::Text(t)) => {
                let src =
                    std::str::from_utf8(&t).map_err(|_| "malformed UTF-8 encoding".to_string())?;
                let buf = ParseBuffer::new(src).map_err(|e| e.to_string())?;
                let mut wat = parser::parse::<Wat>(&buf).map_err(|e| e.to_string())?;
                wat.encode().map_err(|e| e.to_string())?
            }
            Err(e) => return Err(wast_err(e, text)),
        };
        Module::from_binary(&self.engine, &bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Runs an invoke, a `get`, or an instantiation for `assert_trap`.
    /// The outer `Err` is a failure of the directive itself (e.g. a module
    /// that does not compile); the inner result is the execution's.
    fn execute(
        &mut self,
        exec: WastExecute<'_>,
        text: &str,
    ) -> Result<Result<Vec<Val>, Error>, String> {
        match exec {
            WastExecute::Invoke(call) => Ok(self.invoke(&call)),
            WastExecute::Get { module, global, .. } => {
                let inst = self.instance(module)?;
                let g: Global = inst
                    .get_global(&mut self.store, global)
                    .ok_or_else(|| format!("expected an exported global {global:?}, got none"))?;
                Ok(Ok(vec![g.get(&mut self.store)]))
            }
            WastExecute::Wat(mut w) => {
                let module = self.compile_wat(&mut w, text)?;
                Ok(self.instantiate(&module).map(|_| Vec::new()))
            }
        }
    }

    fn invoke(&mut self, call: &WastInvoke<'_>) -> Result<Vec<Val>, Error> {
        let inst = self.instance(call.module).map_err(Error::msg)?;
        let func: Func = inst
            .get_func(&mut self.store, call.name)
            .ok_or_else(|| Error::msg(format!("no exported function {:?}", call.name)))?;
        let mut args = Vec::with_capacity(call.args.len());
        for a in &call.args {
            args.push(self.arg(a).map_err(Error::msg)?);
        }
        let ty = func.ty(&self.store);
        let mut results: Vec<Val> = ty
            .results()
            .map(|t| Val::default_for_ty(&t).unwrap_or(Val::I32(0)))
            .collect();
        func.call(&mut self.store, &args, &mut results)?;
        Ok(results)
    }

    fn arg(&mut self, a: &WastArg<'_>) -> Result<Val, String> {
        let WastArg::Core(a) = a else {
            return Err("unsupported component-model argument".into());
        };
        Ok(match a {
            WastArgCore::I32(v) => Val::I32(*v),
            WastArgCore::I64(v) => Val::I64(*v),
            WastArgCore::F32(v) => Val::F32(v.bits),
            WastArgCore::F64(v) => Val::F64(v.bits),
            WastArgCore::V128(v) => Val::V128(u128::from_le_bytes(v.to_le_bytes()).into()),
            WastArgCore::RefNull(h) => match ref_kind(h) {
                Some(ValType::FUNCREF) => Val::FuncRef(None),
                Some(ValType::EXTERNREF) => Val::ExternRef(None),
                _ => return Err(format!("unsupported null reference type {h:?}")),
            },
            WastArgCore::RefExtern(n) => Val::ExternRef(Some(
                ExternRef::new(&mut self.store, *n).map_err(|e| e.to_string())?,
            )),
            WastArgCore::RefHost(_) => return Err("unsupported argument ref.host".into()),
        })
    }

    fn check_results(&self, expected: &[WastRet<'_>], got: &[Val]) -> Outcome {
        if expected.len() != got.len() {
            return Err(format!(
                "expected {} ({} values), got {} ({} values)",
                rets_str(expected),
                expected.len(),
                vals_str(got),
                got.len()
            ));
        }
        for (i, (e, v)) in expected.iter().zip(got).enumerate() {
            let WastRet::Core(e) = e else {
                return Err(
                    "expected a core value, got an unsupported component-model result".into(),
                );
            };
            if !self.matches(e, v)? {
                return Err(format!(
                    "expected {}, got {} (result {i})",
                    rets_str(expected),
                    vals_str(got)
                ));
            }
        }
        Ok(())
    }

    /// Whether `v` matches `e`; `Err` for unsupported patterns.
    fn matches(&self, e: &WastRetCore<'_>, v: &Val) -> Result<bool, String> {
        Ok(match (e, v) {
            (WastRetCore::I32(e), Val::I32(v)) => e == v,
            (WastRetCore::I64(e), Val::I64(v)) => e == v,
            (WastRetCore::F32(e), Val::F32(v)) => f32_matches(e, *v),
            (WastRetCore::F64(e), Val::F64(v)) => f64_matches(e, *v),
            (WastRetCore::V128(e), Val::V128(v)) => v128_matches(e, v.as_u128()),
            (WastRetCore::RefNull(h), Val::FuncRef(None)) => h
                .as_ref()
                .is_none_or(|h| ref_kind(h) == Some(ValType::FUNCREF)),
            (WastRetCore::RefNull(h), Val::ExternRef(None)) => h
                .as_ref()
                .is_none_or(|h| ref_kind(h) == Some(ValType::EXTERNREF)),
            (WastRetCore::RefExtern(None), Val::ExternRef(Some(_))) => true,
            (WastRetCore::RefExtern(Some(n)), Val::ExternRef(Some(r))) => match r.data(&self.store)
            {
                Ok(d) => d.and_then(|d| d.downcast_ref::<u32>()) == Some(n),
                Err(_) => false,
            },
            (WastRetCore::RefFunc(_), Val::FuncRef(Some(_))) => true,
            (WastRetCore::Either(alts), v) => {
                for alt in alts {
                    if self.matches(alt, v)? {
                        return Ok(true);
                    }
                }
                false
            }
            (
                WastRetCore::RefHost(_)
                | WastRetCore::RefAny
                | WastRetCore::RefEq
                | WastRetCore::RefArray
                | WastRetCore::RefStruct
                | WastRetCore::RefI31
                | WastRetCore::RefI31Shared,
                _,
            ) => {
                return Err(format!(
                    "expected a supported result pattern, got unsupported {e:?}"
                ))
            }
            _ => false,
        })
    }
}

/// Registers the spec testsuite's `spectest` host module in `linker`.
fn define_spectest(linker: &mut Linker<()>, store: &mut Store<()>) -> Result<(), Error> {
    let g = |store: &mut Store<()>, ty, v| {
        Global::new(store, GlobalType::new(ty, Mutability::Const), v)
    };
    let global_i32 = g(store, ValType::I32, Val::I32(666))?;
    let global_i64 = g(store, ValType::I64, Val::I64(666))?;
    let global_f32 = g(store, ValType::F32, Val::F32(666.6f32.to_bits()))?;
    let global_f64 = g(store, ValType::F64, Val::F64(666.6f64.to_bits()))?;
    let table = Table::new(
        &mut *store,
        TableType::new(RefType::FUNCREF, 10, Some(20)),
        kiln::Ref::Func(None),
    )?;
    let memory = Memory::new(
        &mut *store,
        MemoryType {
            minimum: 1,
            maximum: Some(2),
            shared: false,
            memory64: false,
        },
    )?;
    linker.define("spectest", "global_i32", global_i32)?;
    linker.define("spectest", "global_i64", global_i64)?;
    linker.define("spectest", "global_f32", global_f32)?;
    linker.define("spectest", "global_f64", global_f64)?;
    linker.define("spectest", "table", table)?;
    linker.define("spectest", "memory", memory)?;
    linker.func_wrap("spectest", "print", || {})?;
    linker.func_wrap("spectest", "print_i32", |_: i32| {})?;
    linker.func_wrap("spectest", "print_i64", |_: i64| {})?;
    linker.func_wrap("spectest", "print_f32", |_: f32| {})?;
    linker.func_wrap("spectest", "print_f64", |_: f64| {})?;
    linker.func_wrap("spectest", "print_i32_f32", |_: i32, _: f32| {})?;
    linker.func_wrap("spectest", "print_f64_f64", |_: f64, _: f64| {})?;
    Ok(())
}

/// Passes if the error's message (or its trap code's) contains `expected`.
///
/// The reference interpreter names the table index in `uninitialized
/// element N`; Kiln's trap does not, so only the prefix is compared there.
fn check_trap(e: &Error, expected: &str) -> Outcome {
    let display = e.to_string();
    let code = e
        .downcast_ref::<Trap>()
        .copied()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let expected_core = if expected.starts_with("uninitialized element") {
        "uninitialized element"
    } else {
        expected
    };
    if display.contains(expected_core) || (!code.is_empty() && code.contains(expected_core)) {
        Ok(())
    } else {
        Err(format!("expected trap {expected:?}, got error: {display}"))
    }
}

fn wast_err(mut e: wast::Error, text: &str) -> String {
    e.set_text(text);
    e.to_string()
}

fn ref_kind(h: &HeapType<'_>) -> Option<ValType> {
    match h {
        HeapType::Abstract { ty, .. } => match ty {
            AbstractHeapType::Func | AbstractHeapType::NoFunc => Some(ValType::FUNCREF),
            AbstractHeapType::Extern | AbstractHeapType::NoExtern => Some(ValType::EXTERNREF),
            _ => None,
        },
        _ => None,
    }
}

fn is_canonical_nan32(b: u32) -> bool {
    b & 0x7fff_ffff == 0x7fc0_0000
}
fn is_arithmetic_nan32(b: u32) -> bool {
    b & 0x7fc0_0000 == 0x7fc0_0000
}
fn is_canonical_nan64(b: u64) -> bool {
    b & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000
}
fn is_arithmetic_nan64(b: u64) -> bool {
    b & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000
}

fn f32_matches(e: &NanPattern<wast::token::F32>, bits: u32) -> bool {
    match e {
        NanPattern::CanonicalNan => is_canonical_nan32(bits),
        NanPattern::ArithmeticNan => is_arithmetic_nan32(bits),
        NanPattern::Value(v) => v.bits == bits,
    }
}

fn f64_matches(e: &NanPattern<wast::token::F64>, bits: u64) -> bool {
    match e {
        NanPattern::CanonicalNan => is_canonical_nan64(bits),
        NanPattern::ArithmeticNan => is_arithmetic_nan64(bits),
        NanPattern::Value(v) => v.bits == bits,
    }
}

fn v128_matches(e: &V128Pattern, v: u128) -> bool {
    let b = v.to_le_bytes();
    match e {
        V128Pattern::I8x16(l) => l.iter().zip(b).all(|(e, g)| *e as u8 == g),
        V128Pattern::I16x8(l) => l
            .iter()
            .zip(b.chunks_exact(2))
            .all(|(e, g)| e.to_le_bytes() == g),
        V128Pattern::I32x4(l) => l
            .iter()
            .zip(b.chunks_exact(4))
            .all(|(e, g)| e.to_le_bytes() == g),
        V128Pattern::I64x2(l) => l
            .iter()
            .zip(b.chunks_exact(8))
            .all(|(e, g)| e.to_le_bytes() == g),
        V128Pattern::F32x4(l) => l
            .iter()
            .zip(b.chunks_exact(4))
            .all(|(e, g)| f32_matches(e, u32::from_le_bytes(g.try_into().expect("4 bytes")))),
        V128Pattern::F64x2(l) => l
            .iter()
            .zip(b.chunks_exact(8))
            .all(|(e, g)| f64_matches(e, u64::from_le_bytes(g.try_into().expect("8 bytes")))),
    }
}

fn val_str(v: &Val) -> String {
    match v {
        Val::I32(x) => format!("i32:{x}"),
        Val::I64(x) => format!("i64:{x}"),
        Val::F32(b) => format!("f32:{} ({b:#010x})", f32::from_bits(*b)),
        Val::F64(b) => format!("f64:{} ({b:#018x})", f64::from_bits(*b)),
        Val::V128(x) => format!("v128:{:#034x}", x.as_u128()),
        Val::FuncRef(None) => "ref.null func".into(),
        Val::FuncRef(Some(_)) => "ref.func".into(),
        Val::ExternRef(None) => "ref.null extern".into(),
        Val::ExternRef(Some(_)) => "ref.extern".into(),
    }
}

fn vals_str(v: &[Val]) -> String {
    let parts: Vec<String> = v.iter().map(val_str).collect();
    format!("[{}]", parts.join(", "))
}

fn nan_str<T>(p: &NanPattern<T>, f: impl Fn(&T) -> String) -> String {
    match p {
        NanPattern::CanonicalNan => "nan:canonical".into(),
        NanPattern::ArithmeticNan => "nan:arithmetic".into(),
        NanPattern::Value(v) => f(v),
    }
}

fn ret_str(r: &WastRetCore<'_>) -> String {
    let f32s = |v: &wast::token::F32| format!("{} ({:#010x})", f32::from_bits(v.bits), v.bits);
    let f64s = |v: &wast::token::F64| format!("{} ({:#018x})", f64::from_bits(v.bits), v.bits);
    match r {
        WastRetCore::I32(x) => format!("i32:{x}"),
        WastRetCore::I64(x) => format!("i64:{x}"),
        WastRetCore::F32(p) => format!("f32:{}", nan_str(p, f32s)),
        WastRetCore::F64(p) => format!("f64:{}", nan_str(p, f64s)),
        WastRetCore::V128(p) => {
            let mut s = String::from("v128:");
            match p {
                V128Pattern::I8x16(l) => {
                    let _ = write!(s, "i8x16 {l:?}");
                }
                V128Pattern::I16x8(l) => {
                    let _ = write!(s, "i16x8 {l:?}");
                }
                V128Pattern::I32x4(l) => {
                    let _ = write!(s, "i32x4 {l:?}");
                }
                V128Pattern::I64x2(l) => {
                    let _ = write!(s, "i64x2 {l:?}");
                }
                V128Pattern::F32x4(l) => {
                    let parts: Vec<String> = l.iter().map(|p| nan_str(p, f32s)).collect();
                    let _ = write!(s, "f32x4 [{}]", parts.join(", "));
                }
                V128Pattern::F64x2(l) => {
                    let parts: Vec<String> = l.iter().map(|p| nan_str(p, f64s)).collect();
                    let _ = write!(s, "f64x2 [{}]", parts.join(", "));
                }
            }
            s
        }
        WastRetCore::RefNull(_) => "ref.null".into(),
        WastRetCore::RefExtern(Some(n)) => format!("ref.extern {n}"),
        WastRetCore::RefExtern(None) => "ref.extern".into(),
        WastRetCore::RefFunc(_) => "ref.func".into(),
        WastRetCore::Either(alts) => {
            let parts: Vec<String> = alts.iter().map(ret_str).collect();
            format!("either({})", parts.join(" | "))
        }
        other => format!("{other:?}"),
    }
}

fn rets_str(r: &[WastRet<'_>]) -> String {
    let parts: Vec<String> = r
        .iter()
        .map(|r| match r {
            WastRet::Core(c) => ret_str(c),
            #[allow(unreachable_patterns)]
            _ => "<component value>".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn directive_name(d: &WastDirective<'_>) -> &'static str {
    match d {
        WastDirective::Module(_) => "module",
        WastDirective::ModuleDefinition(_) => "module definition",
        WastDirective::ModuleInstance { .. } => "module instance",
        WastDirective::AssertMalformed { .. } => "assert_malformed",
        WastDirective::AssertInvalid { .. } => "assert_invalid",
        WastDirective::AssertInvalidCustom { .. } => "assert_invalid_custom",
        WastDirective::Register { .. } => "register",
        WastDirective::Invoke(_) => "invoke",
        WastDirective::AssertTrap { .. } => "assert_trap",
        WastDirective::AssertReturn { .. } => "assert_return",
        WastDirective::AssertExhaustion { .. } => "assert_exhaustion",
        WastDirective::AssertUnlinkable { .. } => "assert_unlinkable",
        WastDirective::AssertException { .. } => "assert_exception",
        WastDirective::AssertSuspension { .. } => "assert_suspension",
        WastDirective::Thread(_) => "thread",
        WastDirective::Wait { .. } => "wait",
        WastDirective::AssertMalformedCustom { .. } => "assert_malformed_custom",
    }
}
