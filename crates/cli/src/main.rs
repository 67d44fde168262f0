//! The `kiln` command: run WebAssembly programs and test scripts.
//!
//! ```text
//! kiln run [OPTIONS] FILE [ARGS...]   run a WASI program (or call an export)
//! kiln compile FILE -o OUT            precompile to a .cwasm artifact
//! kiln wast FILE...                   run .wast test scripts
//! ```
//!
//! `kiln run` takes `wasmtime run`'s spellings, so a command line written
//! for one works with the other: options come before FILE, and everything
//! after FILE is the guest's (its `argv`, or with `--invoke` the
//! function's arguments).
//!
//! # Exit status
//!
//! As `wasmtime run`: the guest's `proc_exit` status; 0 when `_start`
//! returns; 134 (128 + SIGABRT, what a C program that aborts reports) when
//! the guest traps, after printing the trap and its Wasm backtrace; 1 for
//! any other error (bad module, missing import, ...), printed as one line
//! with its cause chain; 2 for a command line clap cannot parse. The
//! guest's stdout and stderr are written unbuffered, and Kiln's own
//! output is flushed before every exit.

use clap::{Args, Parser, Subcommand};
use kiln::{Engine, Error, Func, Linker, Module, Store, Val, ValType};
use kiln_wasi::{DirPerms, FilePerms, WasiCtx, WasiCtxBuilder};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The exit status of a trapping guest (`128 + SIGABRT`), as Wasmtime.
const TRAP_EXIT: i32 = 134;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Kiln: a WebAssembly runtime built on Cranelift"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a WebAssembly module (.wasm, .wat or a compiled .cwasm)
    Run(RunArgs),
    /// Precompile a module into an artifact that `kiln run` loads without compiling
    Compile(CompileArgs),
    /// Run .wast test scripts; prints "N passed, M failed"
    Wast(WastArgs),
}

/// The WebAssembly proposals beyond 2.0, shared by every subcommand that
/// compiles.
#[derive(Args, Clone, Default)]
struct Features {
    /// Enable a proposal: tail-call, multi-memory, extended-const (repeatable)
    #[arg(long = "enable", value_name = "PROPOSAL")]
    enable: Vec<String>,
}

impl Features {
    fn apply(&self, config: &mut kiln::Config) -> Result<(), CliError> {
        for p in &self.enable {
            enable(config, p, true)?;
        }
        Ok(())
    }
}

#[derive(Args)]
struct RunArgs {
    /// Grant a host directory to the guest: HOST, or HOST::GUEST to name it
    /// differently inside (repeatable)
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    dirs: Vec<String>,

    /// Set an environment variable for the guest; a bare NAME passes the
    /// host's value on (repeatable)
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    envs: Vec<String>,

    /// Call this export instead of `_start` (after `_initialize`, if the
    /// module has one); ARGS are its arguments and its results are printed
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,

    /// Instantiate another module first and let its exports satisfy imports
    /// from NAME (repeatable)
    #[arg(long = "preload", value_name = "NAME=PATH")]
    preloads: Vec<String>,

    /// The guest's argv[0] (default: FILE as given)
    #[arg(long, value_name = "NAME")]
    argv0: Option<String>,

    /// Give the guest N units of fuel; it traps when they run out
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,

    /// Interrupt the guest (a trap) after this wall-clock time: a number of
    /// seconds, or with a unit (500ms, 10s, 2m); the same as -W timeout=
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,

    /// Wasmtime-style Wasm option: timeout=DURATION, fuel=N, or a proposal
    /// with an optional =y/=n (tail-call, multi-memory, extended-const)
    #[arg(short = 'W', value_name = "OPT[=VAL]")]
    wasm_opts: Vec<String>,

    /// Wasmtime-style WASI option: inherit-env[=y|n], tcplisten=ADDR
    #[arg(short = 'S', value_name = "OPT[=VAL]")]
    wasi_opts: Vec<String>,

    /// Do not read or write the compile cache ($XDG_CACHE_HOME/kiln or
    /// ~/.cache/kiln)
    #[arg(long)]
    no_cache: bool,

    #[command(flatten)]
    features: Features,

    /// The module to run
    #[arg(value_name = "FILE")]
    file: PathBuf,

    /// Arguments for the guest (or, with --invoke, for the function)
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<String>,
}

#[derive(Args)]
struct CompileArgs {
    /// The module to compile (.wasm or .wat)
    #[arg(value_name = "FILE")]
    input: PathBuf,
    /// Where to write the artifact
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: PathBuf,
    /// Compile for another target (e.g. aarch64-unknown-linux-gnu)
    #[arg(long, value_name = "TRIPLE")]
    target: Option<String>,
    #[command(flatten)]
    features: Features,
}

#[derive(Args)]
struct WastArgs {
    #[command(flatten)]
    features: Features,
    /// The scripts
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(a) => run(a),
        Command::Compile(a) => compile(a).map(|()| 0),
        Command::Wast(a) => wast(a),
    };
    let code = code.unwrap_or_else(|e| report(&e));
    exit(code)
}

/// Flushes Kiln's own output and exits.
fn exit(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

/// Prints an error and picks the exit status.
fn report(e: &CliError) -> i32 {
    let _ = std::io::stdout().flush();
    eprintln!("error: {}", chain(e));
    if let CliError::Kiln(e) = e {
        if let Some(bt) = e.downcast_ref::<kiln::WasmBacktrace>() {
            eprintln!("{bt}");
        }
        if e.is::<kiln::Trap>() {
            return TRAP_EXIT;
        }
    }
    1
}

#[derive(Debug)]
enum CliError {
    Kiln(Error),
    Msg(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Kiln(e) => write!(f, "{e}"),
            CliError::Msg(m) => write!(f, "{m}"),
        }
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Kiln(e)
    }
}

fn msg(m: impl Into<String>) -> CliError {
    CliError::Msg(m.into())
}

/// The error and its causes on one line, joined by `: `; a Wasm backtrace in the chain
/// is left out (it is printed on its own lines).
fn chain(e: &CliError) -> String {
    let CliError::Kiln(e) = e else {
        return e.to_string().replace('\n', " ");
    };
    let bt = e
        .downcast_ref::<kiln::WasmBacktrace>()
        .map(|b| b.to_string());
    e.chain()
        .map(|c| c.to_string())
        .filter(|c| Some(c) != bt.as_ref())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

/// Turns a WebAssembly proposal beyond 2.0 on or off by name.
fn enable(config: &mut kiln::Config, name: &str, on: bool) -> Result<(), CliError> {
    match name {
        "tail-call" => config.wasm_tail_call(on),
        "multi-memory" => config.wasm_multi_memory(on),
        "extended-const" => config.wasm_extended_const(on),
        other => {
            return Err(msg(format!(
                "unknown proposal `{other}` (known: tail-call, multi-memory, extended-const)"
            )))
        }
    };
    Ok(())
}

/// `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, CliError> {
    let bad = || {
        msg(format!(
            "invalid duration `{s}` (examples: 10, 10s, 500ms, 2m)"
        ))
    };
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

fn yes(v: Option<&str>, what: &str) -> Result<bool, CliError> {
    match v {
        None | Some("y" | "yes" | "true") => Ok(true),
        Some("n" | "no" | "false") => Ok(false),
        Some(o) => Err(msg(format!("`{what}={o}`: expected y or n"))),
    }
}

/// The state of a `kiln run` store.
struct Host {
    wasi: WasiCtx,
}

fn run(a: RunArgs) -> Result<i32, CliError> {
    let mut config = kiln::Config::new();
    a.features.apply(&mut config)?;
    let mut timeout = a.timeout.as_deref().map(parse_duration).transpose()?;
    let mut fuel = a.fuel;
    for opt in &a.wasm_opts {
        let (k, v) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match k {
            "timeout" => {
                timeout = Some(parse_duration(
                    v.ok_or_else(|| msg("-W timeout needs a value"))?,
                )?)
            }
            "fuel" => {
                let v = v.ok_or_else(|| msg("-W fuel needs a value"))?;
                fuel = Some(v.parse().map_err(|_| msg(format!("invalid fuel `{v}`")))?);
            }
            p => enable(&mut config, p, yes(v, p)?)?,
        }
    }
    if fuel.is_some() {
        config.consume_fuel(true);
    }
    if !a.no_cache {
        // A missing home directory only means no cache.
        if let Ok(c) = kiln::Cache::new(kiln::CacheConfig::new()) {
            config.cache(Some(c));
        }
    }
    let engine = Engine::new(&config)?;
    let module = load(&engine, &a.file)?;

    let mut wasi = WasiCtxBuilder::new();
    wasi.inherit_stdio();
    let argv0 = a
        .argv0
        .clone()
        .unwrap_or_else(|| a.file.to_string_lossy().into_owned());
    wasi.arg(argv0);
    if a.invoke.is_none() {
        wasi.args(&a.args);
    }
    for opt in &a.wasi_opts {
        let (k, v) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match k {
            "inherit-env" => {
                if yes(v, k)? {
                    wasi.inherit_env();
                }
            }
            "tcplisten" => {
                let addr = v.ok_or_else(|| msg("-S tcplisten needs an address"))?;
                let l = std::net::TcpListener::bind(addr)
                    .map_err(|e| msg(format!("listening on {addr}: {e}")))?;
                wasi.preopened_socket(l);
            }
            other => {
                return Err(msg(format!(
                    "unknown WASI option `{other}` (known: inherit-env, tcplisten)"
                )))
            }
        }
    }
    for e in &a.envs {
        match e.split_once('=') {
            Some((n, v)) => {
                wasi.env(n, v);
            }
            None => {
                if let Ok(v) = std::env::var(e) {
                    wasi.env(e, v);
                }
            }
        }
    }
    for d in &a.dirs {
        let (host, guest) = d.split_once("::").unwrap_or((d, d));
        wasi.preopened_dir(host, guest, DirPerms::all(), FilePerms::all())
            .map_err(|e| msg(format!("opening directory {host}: {e}")))?;
    }

    let mut store = Store::new(&engine, Host { wasi: wasi.build() });
    if let Some(f) = fuel {
        store.set_fuel(f)?;
    }
    let mut linker: Linker<Host> = Linker::new(&engine);
    kiln_wasi::add_to_linker(&mut linker, |h: &mut Host| &mut h.wasi)?;
    for p in &a.preloads {
        let (name, path) = p
            .split_once('=')
            .ok_or_else(|| msg(format!("--preload `{p}`: expected NAME=PATH")))?;
        let m = load(&engine, Path::new(path))?;
        let inst = linker.instantiate(&mut store, &m)?;
        linker.instance(&mut store, name, inst)?;
    }
    if let Some(t) = timeout {
        let handle = store.interrupt_handle();
        std::thread::spawn(move || {
            std::thread::sleep(t);
            handle.interrupt();
        });
    }

    let result = call(&a, &module, &linker, &mut store);
    match result {
        Ok(()) => Ok(0),
        Err(CliError::Kiln(e)) => match kiln_wasi::exit_code(&e) {
            Some(code) => Ok(code),
            None => Err(CliError::Kiln(e)),
        },
        Err(e) => Err(e),
    }
}

/// Instantiates and calls what `kiln run` runs.
fn call(
    a: &RunArgs,
    module: &Module,
    linker: &Linker<Host>,
    store: &mut Store<Host>,
) -> Result<(), CliError> {
    // Instantiation runs the start function, if any.
    let instance = linker.instantiate(&mut *store, module)?;
    let exported = |n: &str| module.get_export(n).is_some();
    let Some(name) = a.invoke.clone() else {
        if exported("_start") {
            let f = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
            f.call(&mut *store, ())?;
            return Ok(());
        }
        if exported("_initialize") {
            let f = instance.get_typed_func::<(), ()>(&mut *store, "_initialize")?;
            f.call(&mut *store, ())?;
            return Ok(());
        }
        if module.has_start() {
            return Ok(());
        }
        return Err(msg(format!(
            "{} has no `_start` export and no start function; name one with --invoke",
            a.file.display()
        )));
    };
    if exported("_initialize") && name != "_initialize" {
        let f = instance.get_typed_func::<(), ()>(&mut *store, "_initialize")?;
        f.call(&mut *store, ())?;
    }
    let func: Func = instance
        .get_func(&mut *store, &name)
        .ok_or_else(|| msg(format!("failed to find function export `{name}`")))?;
    let ty = func.ty(&*store);
    if a.args.len() != ty.params().len() {
        return Err(msg(format!(
            "`{name}` takes {} arguments, {} given",
            ty.params().len(),
            a.args.len()
        )));
    }
    let params = ty
        .params()
        .zip(&a.args)
        .map(|(t, a)| parse_arg(t, a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results: Vec<Val> = ty
        .results()
        .map(|t| Val::default_for_ty(&t).unwrap_or(Val::I32(0)))
        .collect();
    func.call(&mut *store, &params, &mut results)?;
    let mut out = std::io::stdout().lock();
    for r in results {
        let _ = writeln!(out, "{}", show(&r));
    }
    Ok(())
}

/// Loads FILE: a compiled artifact is mapped, anything else compiled
/// (through the cache, when the engine has one).
fn load(engine: &Engine, file: &Path) -> Result<Module, CliError> {
    let mut magic = [0u8; 4];
    let is_artifact = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == b"\x7fELF";
    if is_artifact {
        // SAFETY: the user names the artifact to run, as they name any
        // program to run; its version, target and structure are checked.
        return Ok(unsafe { Module::deserialize_file(engine, file)? });
    }
    let bytes = std::fs::read(file).map_err(|e| msg(format!("reading {}: {e}", file.display())))?;
    Ok(Module::new(engine, &bytes)?)
}

fn parse_arg(ty: ValType, a: &str) -> Result<Val, CliError> {
    let bad = || msg(format!("cannot parse `{a}` as {ty}"));
    Ok(match ty {
        ValType::I32 => Val::I32(
            a.parse::<i32>()
                .or_else(|_| a.parse::<u32>().map(|v| v as i32))
                .map_err(|_| bad())?,
        ),
        ValType::I64 => Val::I64(
            a.parse::<i64>()
                .or_else(|_| a.parse::<u64>().map(|v| v as i64))
                .map_err(|_| bad())?,
        ),
        ValType::F32 => Val::F32(a.parse::<f32>().map_err(|_| bad())?.to_bits()),
        ValType::F64 => Val::F64(a.parse::<f64>().map_err(|_| bad())?.to_bits()),
        ValType::V128 => Val::V128(a.parse::<u128>().map_err(|_| bad())?),
        ValType::Ref(_) => {
            return Err(msg(format!(
                "reference arguments ({ty}) cannot be given on the command line"
            )))
        }
    })
}

fn show(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(b) => f32::from_bits(*b).to_string(),
        Val::F64(b) => f64::from_bits(*b).to_string(),
        Val::V128(x) => format!("{x:#034x}"),
        Val::FuncRef(None) | Val::ExternRef(None) => "null".into(),
        Val::FuncRef(Some(_)) => "<funcref>".into(),
        Val::ExternRef(Some(_)) => "<externref>".into(),
    }
}

fn compile(a: CompileArgs) -> Result<(), CliError> {
    let mut config = kiln::Config::new();
    a.features.apply(&mut config)?;
    if let Some(t) = &a.target {
        config.target(t);
    }
    let engine = Engine::new(&config)?;
    let bytes =
        std::fs::read(&a.input).map_err(|e| msg(format!("reading {}: {e}", a.input.display())))?;
    let artifact = engine.precompile_module(&bytes)?;
    std::fs::write(&a.output, artifact)
        .map_err(|e| msg(format!("writing {}: {e}", a.output.display())))?;
    Ok(())
}

fn wast(a: WastArgs) -> Result<i32, CliError> {
    let mut config = kiln::Config::default();
    a.features.apply(&mut config)?;
    let (mut passed, mut failed) = (0, 0);
    for f in &a.files {
        let stats =
            kiln_wast::run_file(f, &config).map_err(|e| msg(format!("{}: {e}", f.display())))?;
        for m in &stats.failures {
            eprintln!("{m}");
        }
        passed += stats.passed;
        failed += stats.failed;
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(msg(format!("{failed} assertions failed")));
    }
    Ok(0)
}
