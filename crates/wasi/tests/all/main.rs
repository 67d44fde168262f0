//! WASI behaviour, tested with real programs: C sources under
//! `tests/programs/`, compiled to `wasm32-wasi` when the tests run with
//! Debian's toolchain (`apt-get install clang lld wasi-libc
//! libclang-rt-14-dev-wasm32`; `.ci/run` installs it), and run through the
//! embedder API with in-memory pipes.

mod escape;
mod fs;
mod stdio;

use kiln::{Engine, Linker, Module, Store};
use kiln_wasi::pipe::{MemoryInputPipe, MemoryOutputPipe};
use kiln_wasi::{WasiCtx, WasiCtxBuilder};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Compiles `tests/programs/NAME.c` once per test run (and only when the
/// source changed), returning the `.wasm` path.
pub(crate) fn program(name: &str) -> PathBuf {
    let src_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs");
    let src = src_dir.join(format!("{name}.c"));
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasi-programs");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{name}.wasm"));
    let newest_src = ["raw.h", &format!("{name}.c")]
        .iter()
        .filter_map(|f| std::fs::metadata(src_dir.join(f)).ok()?.modified().ok())
        .max();
    let fresh = std::fs::metadata(&out)
        .and_then(|m| m.modified())
        .is_ok_and(|t| Some(t) >= newest_src);
    if fresh {
        return out;
    }
    // Parallel tests may build the same program: each writes its own file
    // and renames it into place.
    let tmp = out_dir.join(format!(
        "{name}.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    let status = std::process::Command::new("clang")
        .args(["--target=wasm32-wasi", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run clang ({e}): the WASI tests compile C programs with \
                 `apt-get install -y clang lld wasi-libc libclang-rt-14-dev-wasm32`"
            )
        });
    assert!(status.success(), "clang failed on {}", src.display());
    std::fs::rename(&tmp, &out).unwrap();
    out
}

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(Engine::default)
}

/// Compiles each program once per test binary.
fn module(name: &str) -> Module {
    static M: OnceLock<std::sync::Mutex<std::collections::HashMap<String, Module>>> =
        OnceLock::new();
    let m = M.get_or_init(Default::default);
    if let Some(m) = m.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
        return m.clone();
    }
    let compiled = Module::from_file(engine(), program(name)).expect("compiles");
    m.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name.to_string())
        .or_insert(compiled)
        .clone()
}

pub(crate) struct State {
    pub(crate) wasi: WasiCtx,
}

/// What a run left behind.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `proc_exit` status (0 if `_start` returned), or `None` for a trap
    /// or other error.
    pub(crate) status: Option<i32>,
    pub(crate) error: Option<String>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs program `name` with `args` (argv[0] is the name), `stdin` as
/// input, and whatever else `setup` grants.
pub(crate) fn run(
    name: &str,
    args: &[&str],
    stdin: &[u8],
    setup: impl FnOnce(&mut WasiCtxBuilder),
) -> Outcome {
    let module = module(name);
    let out = MemoryOutputPipe::new(64 << 20);
    let err = MemoryOutputPipe::new(1 << 20);
    let mut b = WasiCtxBuilder::new();
    b.arg(name)
        .args(args)
        .stdin(MemoryInputPipe::new(stdin.to_vec()))
        .stdout(out.clone())
        .stderr(err.clone());
    setup(&mut b);
    let mut linker = Linker::new(engine());
    kiln_wasi::add_to_linker(&mut linker, |s: &mut State| &mut s.wasi).unwrap();
    let mut store = Store::new(engine(), State { wasi: b.build() });
    let result = linker.instantiate(&mut store, &module).and_then(|i| {
        i.get_typed_func::<(), ()>(&mut store, "_start")?
            .call(&mut store, ())
    });
    let (status, error) = match result {
        Ok(()) => (Some(0), None),
        Err(e) => match kiln_wasi::exit_code(&e) {
            Some(c) => (Some(c), None),
            None => (None, Some(format!("{e:?}"))),
        },
    };
    Outcome {
        status,
        error,
        stdout: String::from_utf8_lossy(&out.contents()).into_owned(),
        stderr: String::from_utf8_lossy(&err.contents()).into_owned(),
    }
}

/// A fresh scratch directory for one test.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("wasi-scratch")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
