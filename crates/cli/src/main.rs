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
//! after FILE is the guest's (its `argv`, and with `--invoke` also the
//! function's arguments).
//!
//! # What runs
//!
//! As `wasmtime run`: each `--preload` is instantiated (and its
//! `_initialize` called); then FILE is instantiated (its start function
//! runs), its `_initialize` export is called if it has one, and then the
//! `--invoke`d export, or else the export named `""` or `_start`; a module
//! with neither has run once instantiated.
//!
//! # Exit status
//!
//! As `wasmtime run`: the guest's `proc_exit` status; 0 when `_start`
//! returns; 134 (128 + SIGABRT, what a C program that aborts reports) when
//! the guest traps, after printing the trap and its Wasm backtrace, and
//! when the wall-clock timeout passes (even while the guest is blocked in
//! a host call, e.g. sleeping in `poll_oneoff`); 1 for
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
    /// module has one); ARGS are its arguments (and still the guest's
    /// argv) and its results are printed
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,

    /// Instantiate another module first and let its exports satisfy imports
    /// from NAME (repeatable)
    #[arg(long = "preload", value_name = "NAME=PATH")]
    preloads: Vec<String>,

    /// The guest's argv[0] (default: FILE's last path component)
    #[arg(long, value_name = "NAME")]
    argv0: Option<String>,

    /// Give the guest N units of fuel; it traps when they run out
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,

    /// Interrupt the guest (a trap) after this wall-clock time: a number of
    /// seconds, or with a unit (500ms, 10s, 2m); the same as -W timeout=
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,

    /// Wasmtime-style Wasm options, comma-separated or repeated:
    /// timeout=DURATION, fuel=N, or a proposal with an optional =y/=n
    /// (tail-call, multi-memory, extended-const)
    #[arg(short = 'W', value_name = "OPT[=VAL]")]
    wasm_opts: Vec<String>,

    /// Wasmtime-style WASI options, comma-separated or repeated:
    /// cli[=y|n] (n: no WASI imports), inherit-env, inherit-stdin,
    /// inherit-stdout, inherit-stderr (=n: the stream is empty or
    /// discarded), tcplisten=ADDR, preview2[=y]
    #[arg(short = 'S', value_name = "OPT[=VAL]")]
    wasi_opts: Vec<String>,

    /// Accepted for `wasmtime run` command lines: Kiln runs a compiled
    /// artifact without it (its version, target and checksums are checked)
    #[arg(long)]
    allow_precompiled: bool,

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

/// Splits Wasmtime's `-W`/`-S` values: `a=1,b,c=n` into `(name, value)`
/// pairs, in order (an option may be repeated: `-W a=1 -W b`).
fn options(values: &[String]) -> impl Iterator<Item = (&str, Option<&str>)> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|o| !o.is_empty())
        .map(|o| match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o, None),
        })
}

/// `--dir` as Wasmtime 48 splits it: HOST, or HOST::GUEST (anything after
/// a second `::` is ignored, as there).
fn parse_dir(d: &str) -> (&str, &str) {
    let mut parts = d.split("::");
    let host = parts.next().unwrap_or(d);
    let guest = parts.next().unwrap_or(host);
    (host, guest)
}

/// The guest's `argv[0]` when `--argv0` is not given: FILE's last path
/// component, as `wasmtime run` does (so no host path leaks in).
fn default_argv0(file: &Path) -> String {
    file.components()
        .next_back()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_string_lossy().into_owned())
}

/// Who ends the process once the wall-clock timeout has passed: the main
/// thread (the guest returned, trapped on the interrupt, or exited) or the
/// timer thread (the guest is blocked in a host call, e.g. `poll_oneoff`
/// sleeping, and never reaches the interrupt check).
struct Finish(std::sync::Mutex<bool>);

impl Finish {
    /// Claims the right to end the process; false if someone already has.
    fn claim(&self) -> bool {
        let mut done = self.0.lock().unwrap_or_else(|p| p.into_inner());
        !std::mem::replace(&mut *done, true)
    }
}

/// How long the timer thread waits, after interrupting the guest, for the
/// interrupt trap to end the run before it ends the process itself.
const TIMEOUT_GRACE: Duration = Duration::from_millis(100);

fn run(a: RunArgs) -> Result<i32, CliError> {
    let mut config = kiln::Config::new();
    a.features.apply(&mut config)?;
    let mut timeout = a.timeout.as_deref().map(parse_duration).transpose()?;
    let mut fuel = a.fuel;
    for (k, v) in options(&a.wasm_opts) {
        match k {
            "timeout" => {
                timeout = Some(parse_duration(
                    v.ok_or_else(|| msg("-W timeout needs a value"))?,
                )?)
            }
            "fuel" => {
                let v = v.ok_or_else(|| msg("-W fuel needs a value"))?;
                let n = v.replace('_', "");
                fuel = Some(n.parse().map_err(|_| msg(format!("invalid fuel `{v}`")))?);
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
    // `--allow-precompiled` changes nothing: an artifact is checked anyway.
    let _ = a.allow_precompiled;
    let module = load(&engine, &a.file)?;

    let mut wasi = WasiCtxBuilder::new();
    let (mut stdin, mut stdout, mut stderr, mut cli) = (true, true, true, true);
    // As `wasmtime run`: argv[0], then every argument after FILE (also
    // with --invoke, where they are the function's arguments too).
    let argv0 = a.argv0.clone().unwrap_or_else(|| default_argv0(&a.file));
    wasi.arg(argv0);
    wasi.args(&a.args);
    for (k, v) in options(&a.wasi_opts) {
        match k {
            "inherit-env" => {
                if yes(v, k)? {
                    wasi.inherit_env();
                }
            }
            "inherit-stdin" => stdin = yes(v, k)?,
            "inherit-stdout" => stdout = yes(v, k)?,
            "inherit-stderr" => stderr = yes(v, k)?,
            "cli" | "common" => cli = yes(v, k)?,
            "preview2" => {
                if !yes(v, k)? {
                    return Err(msg("the `-Spreview2=n` flag is no longer supported"));
                }
            }
            "tcplisten" => {
                let addr = v.ok_or_else(|| msg("-S tcplisten needs an address"))?;
                let l = std::net::TcpListener::bind(addr)
                    .map_err(|e| msg(format!("failed to bind to address '{addr}': {e}")))?;
                wasi.preopened_socket(l);
            }
            other => {
                return Err(msg(format!(
                    "unknown WASI option `{other}` (known: cli, common, inherit-env, \
                     inherit-stdin, inherit-stdout, inherit-stderr, preview2, tcplisten)"
                )))
            }
        }
    }
    if stdin {
        wasi.inherit_stdin();
    }
    if stdout {
        wasi.inherit_stdout();
    }
    if stderr {
        wasi.inherit_stderr();
    }
    for e in &a.envs {
        match e.split_once('=') {
            Some((n, v)) => {
                wasi.env(n, v);
            }
            // A bare NAME inherits the host's value; an unset one stays
            // unset in the guest.
            None => match std::env::var(e) {
                Ok(v) => {
                    wasi.env(e, v);
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(msg(format!("environment variable `{e}` not valid utf-8")))
                }
            },
        }
    }
    // Wasmtime 48's `--dir` grants read and write (it has no read-only
    // spelling for preview1), and so does ours.
    for d in &a.dirs {
        let (host, guest) = parse_dir(d);
        wasi.preopened_dir(host, guest, DirPerms::all(), FilePerms::all())
            .map_err(|e| msg(format!("failed to open directory `{host}`: {e}")))?;
    }

    let mut store = Store::new(&engine, Host { wasi: wasi.build() });
    if let Some(f) = fuel {
        store.set_fuel(f)?;
    }
    let mut linker: Linker<Host> = Linker::new(&engine);
    if cli {
        kiln_wasi::add_to_linker(&mut linker, |h: &mut Host| &mut h.wasi)?;
    }

    // The timeout covers the preloads too, as in `wasmtime run`.
    let finish = std::sync::Arc::new(Finish(std::sync::Mutex::new(false)));
    if let Some(t) = timeout {
        let handle = store.interrupt_handle();
        let finish = finish.clone();
        std::thread::spawn(move || {
            std::thread::sleep(t);
            handle.interrupt();
            std::thread::sleep(TIMEOUT_GRACE);
            if finish.claim() {
                let _ = std::io::stdout().flush();
                eprintln!("error: timed out after {t:?}: wasm trap: interrupt");
                exit(TRAP_EXIT);
            }
        });
    }
    let result = preload(&a, &engine, &mut linker, &mut store)
        .and_then(|()| call(&a, &module, &linker, &mut store));
    if !finish.claim() {
        // The timer thread is ending the process.
        loop {
            std::thread::park();
        }
    }
    match result {
        Ok(()) => Ok(0),
        Err(CliError::Kiln(e)) => match kiln_wasi::exit_code(&e) {
            Some(code) if cli => Ok(code),
            _ => Err(CliError::Kiln(e)),
        },
        Err(e) => Err(e),
    }
}

/// Instantiates each `--preload NAME=PATH` and defines its exports as
/// module NAME; a reactor's `_initialize` runs first.
fn preload(
    a: &RunArgs,
    engine: &Engine,
    linker: &mut Linker<Host>,
    store: &mut Store<Host>,
) -> Result<(), CliError> {
    for p in &a.preloads {
        let (name, path) = p.split_once('=').ok_or_else(|| {
            msg(format!(
                "invalid value '{p}' for '--preload <NAME=MODULE_PATH>': must contain exactly one equals character ('=')"
            ))
        })?;
        let m = load(engine, Path::new(path))?;
        let inst = linker.instantiate(&mut *store, &m)?;
        if let Some(init) = inst.get_func(&mut *store, "_initialize") {
            init.typed::<(), ()>(&*store)?.call(&mut *store, ())?;
        }
        linker.instance(&mut *store, name, inst)?;
    }
    Ok(())
}

/// Instantiates and calls what `kiln run` runs, as `wasmtime run`: the
/// start function (instantiation), `_initialize` if exported, then the
/// `--invoke`d export, or else the export named `""` or `_start`, if any.
fn call(
    a: &RunArgs,
    module: &Module,
    linker: &Linker<Host>,
    store: &mut Store<Host>,
) -> Result<(), CliError> {
    let instance = linker.instantiate(&mut *store, module)?;
    if let Some(init) = instance.get_func(&mut *store, "_initialize") {
        init.typed::<(), ()>(&*store)?.call(&mut *store, ())?;
    }
    let func: Func = match &a.invoke {
        Some(name) => instance
            .get_func(&mut *store, name)
            .ok_or_else(|| msg(format!("no func export named `{name}` found")))?,
        None => match instance
            .get_func(&mut *store, "")
            .or_else(|| instance.get_func(&mut *store, "_start"))
        {
            Some(f) => f,
            // A module with neither (a reactor, or one that only has a
            // start function) has run once instantiated.
            None => return Ok(()),
        },
    };
    let what = match &a.invoke {
        Some(name) => format!("`{name}`"),
        None => "command default".to_string(),
    };
    let ty = func.ty(&*store);
    // Arguments after FILE, in order; extra ones are only the guest's argv.
    let mut args = a.args.iter();
    let mut params = Vec::new();
    for t in ty.params() {
        let arg = args
            .next()
            .ok_or_else(|| msg(format!("not enough arguments for {what}")))?;
        params.push(parse_arg(t, arg)?);
    }
    let mut results: Vec<Val> = ty
        .results()
        .map(|t| Val::default_for_ty(&t).unwrap_or(Val::I32(0)))
        .collect();
    func.call(&mut *store, &params, &mut results)?;
    let mut out = std::io::stdout().lock();
    for r in results {
        let _ = writeln!(out, "{}", show(&r));
    }
    let _ = out.flush();
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
        // Decimal, or hexadecimal with 0x (as `wasmtime run`); unsigned
        // values past the signed range wrap.
        ValType::I32 => Val::I32(
            match hex(a) {
                Some(h) => u32::from_str_radix(h, 16).map(|v| v as i32),
                None => a
                    .parse::<i32>()
                    .or_else(|_| a.parse::<u32>().map(|v| v as i32)),
            }
            .map_err(|_| bad())?,
        ),
        ValType::I64 => Val::I64(
            match hex(a) {
                Some(h) => u64::from_str_radix(h, 16).map(|v| v as i64),
                None => a
                    .parse::<i64>()
                    .or_else(|_| a.parse::<u64>().map(|v| v as i64)),
            }
            .map_err(|_| bad())?,
        ),
        ValType::F32 => Val::F32(a.parse::<f32>().map_err(|_| bad())?.to_bits()),
        ValType::F64 => Val::F64(a.parse::<f64>().map_err(|_| bad())?.to_bits()),
        ValType::V128 => Val::V128(a.parse::<u128>().map_err(|_| bad())?.into()),
        ValType::Ref(_) => {
            return Err(msg(format!(
                "reference arguments ({ty}) cannot be given on the command line"
            )))
        }
    })
}

/// The digits of a `0x`/`0X` number.
fn hex(a: &str) -> Option<&str> {
    a.strip_prefix("0x").or_else(|| a.strip_prefix("0X"))
}

/// A result as `wasmtime run --invoke` prints it.
fn show(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(b) => f32::from_bits(*b).to_string(),
        Val::F64(b) => f64::from_bits(*b).to_string(),
        Val::V128(x) => x.as_u128().to_string(),
        Val::FuncRef(None) => "<null funcref>".into(),
        Val::ExternRef(None) => "<null externref>".into(),
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
