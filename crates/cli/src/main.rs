//! The `kiln` command: run WebAssembly programs and test scripts.
//!
//! ```text
//! kiln run FILE [--invoke NAME] [ARGS...]   run a .wasm or .wat file
//! kiln wast FILE...                         run .wast test scripts
//! ```
//!
//! Errors print as one line, the cause chain joined by `: `, and the
//! process exits non-zero; a trap also prints its Wasm backtrace.

use kiln::{Engine, Error, Func, Instance, Linker, Module, Store, Val, ValType};
use std::process::ExitCode;

const USAGE: &str = "usage:
  kiln run FILE [--invoke NAME] [ARGS...]   (FILE: .wasm, .wat or a compiled .cwasm)
  kiln compile FILE -o OUT [--target TRIPLE]
  kiln wast [--enable PROPOSAL]... FILE...   (PROPOSAL: tail-call, multi-memory, extended-const)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("wast") => wast(&args[1..]),
        Some("compile") => compile(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(CliError::Usage(USAGE.to_string())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            if let CliError::Kiln(e) = &e {
                if let Some(bt) = e.downcast_ref::<kiln::WasmBacktrace>() {
                    eprintln!("{bt}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug)]
enum CliError {
    Usage(String),
    Kiln(Error),
    Msg(String),
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(u) => write!(f, "{u}"),
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

/// One line: the error and its causes, joined by `: `.
/// The error and its causes on one line; a Wasm backtrace in the chain
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

fn run(args: &[String]) -> Result<(), CliError> {
    let mut file = None;
    let mut invoke = None;
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--invoke" if file.is_some() || invoke.is_none() => {
                i += 1;
                invoke = Some(
                    args.get(i)
                        .ok_or_else(|| CliError::Usage("--invoke needs a name".into()))?
                        .clone(),
                );
            }
            a if file.is_none() => file = Some(a.to_string()),
            a => rest.push(a.to_string()),
        }
        i += 1;
    }
    let file = file.ok_or_else(|| CliError::Usage(USAGE.to_string()))?;
    let engine = Engine::default();
    let bytes = std::fs::read(&file).map_err(|e| CliError::Msg(format!("reading {file}: {e}")))?;
    let module = if bytes.starts_with(b"\x7fELF") {
        // SAFETY: the user names the artifact to run, as they name any
        // program to run; its version, target and structure are checked.
        unsafe { Module::deserialize_file(&engine, &file)? }
    } else {
        Module::new(&engine, &bytes)?
    };
    let mut store = Store::new(&engine, ());
    let linker = Linker::new(&engine);
    // Instantiation runs the start function, if any.
    let instance: Instance = linker.instantiate(&mut store, &module)?;
    let name = match invoke {
        Some(n) => n,
        None => {
            if instance.get_func(&mut store, "_start").is_some() {
                "_start".to_string()
            } else if module.has_start() {
                return Ok(());
            } else {
                return Err(CliError::Msg(format!(
                    "{file} has no `_start` export and no start function; name one with --invoke"
                )));
            }
        }
    };
    let func: Func = instance
        .get_func(&mut store, &name)
        .ok_or_else(|| CliError::Msg(format!("failed to find function export `{name}`")))?;
    let ty = func.ty(&store);
    if rest.len() != ty.params().len() {
        return Err(CliError::Msg(format!(
            "`{name}` takes {} arguments, {} given",
            ty.params().len(),
            rest.len()
        )));
    }
    let params = ty
        .params()
        .iter()
        .zip(&rest)
        .map(|(t, a)| parse_arg(*t, a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results: Vec<Val> = ty.results().iter().map(|t| Val::default_for(*t)).collect();
    func.call(&mut store, &params, &mut results)?;
    for r in results {
        println!("{}", show(&r));
    }
    Ok(())
}

fn parse_arg(ty: ValType, a: &str) -> Result<Val, CliError> {
    let bad = || CliError::Msg(format!("cannot parse `{a}` as {ty}"));
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
        ValType::FuncRef | ValType::ExternRef => {
            return Err(CliError::Msg(format!(
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

/// Turns on a WebAssembly proposal beyond 2.0 by name.
fn enable(config: &mut kiln::Config, name: &str) -> Result<(), CliError> {
    match name {
        "tail-call" => config.wasm_tail_call(true),
        "multi-memory" => config.wasm_multi_memory(true),
        "extended-const" => config.wasm_extended_const(true),
        other => {
            return Err(CliError::Msg(format!(
                "unknown proposal `{other}` (known: tail-call, multi-memory, extended-const)"
            )))
        }
    };
    Ok(())
}

fn compile(args: &[String]) -> Result<(), CliError> {
    let (mut input, mut output, mut target) = (None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => output = it.next().cloned(),
            "--target" => target = it.next().cloned(),
            _ if input.is_none() => input = Some(a.clone()),
            _ => return Err(CliError::Usage(USAGE.to_string())),
        }
    }
    let (Some(input), Some(output)) = (input, output) else {
        return Err(CliError::Usage(USAGE.to_string()));
    };
    let mut config = kiln::Config::new();
    if let Some(t) = &target {
        config.target(t);
    }
    let engine = Engine::new(&config)?;
    let bytes =
        std::fs::read(&input).map_err(|e| CliError::Msg(format!("reading {input}: {e}")))?;
    let artifact = engine.precompile_module(&bytes)?;
    std::fs::write(&output, artifact)
        .map_err(|e| CliError::Msg(format!("writing {output}: {e}")))?;
    Ok(())
}

fn wast(args: &[String]) -> Result<(), CliError> {
    let mut config = kiln::Config::default();
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--enable" {
            let name = it
                .next()
                .ok_or_else(|| CliError::Usage("--enable needs a proposal name".into()))?;
            enable(&mut config, name)?;
        } else {
            files.push(a.clone());
        }
    }
    if files.is_empty() {
        return Err(CliError::Usage(USAGE.to_string()));
    }
    let (mut passed, mut failed) = (0, 0);
    for f in &files {
        let stats = kiln_wast::run_file(std::path::Path::new(f), &config)
            .map_err(|e| CliError::Msg(format!("{f}: {e}")))?;
        for msg in &stats.failures {
            eprintln!("{msg}");
        }
        passed += stats.passed;
        failed += stats.failed;
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(CliError::Msg(format!("{failed} assertions failed")));
    }
    Ok(())
}
