//! `cargo xtask`: Kiln's project automation, the one entry point CI calls.
//!
//! Run it as `cargo xtask <command>` (the alias lives in
//! `.cargo/config.toml`). Its one dependency is `serde_json` (see below), so
//! it builds in seconds and never waits for the workspace's heavy
//! dependencies.
//!
//! # Commands
//!
//! * `test-all [--skip-slow]` runs everything CI runs, in order, and stops
//!   at the first failure: formatting, clippy, the tests (including the spec
//!   testsuite, fetched into `target/testsuite` at the pinned commits when
//!   it is not found, see `testsuite.rs`), the docs with warnings denied,
//!   the layering check, and
//!   finally the slow tests (`#[ignore]`d tests in `crates/api/tests/slow.rs`)
//!   unless `--skip-slow` is given.
//! * `bench [--quick] [--filter SUBSTR]... [--list]` runs the benchmarks
//!   of `benches/` (Kiln against Wasmtime 48 and wasmi) in release mode and
//!   writes `target/bench/report.{json,svg}`. `benches/` is a workspace of
//!   its own, so nothing else here ever builds Wasmtime. Installs clang and
//!   lld with apt-get when they are missing and we are root (the C
//!   benchmark programs are compiled to Wasm at bench time).
//! * `cross aarch64 [--setup-only]` runs Kiln's tests on AArch64 under
//!   qemu-user (`cross.rs` says how and why); `cross x86_64-old` runs the
//!   API tests under qemu-x86_64 on older x86-64 CPU models.
//! * `fuzz --seconds N [TARGET]` runs the cargo-fuzz targets (see
//!   `fuzz.rs`); `sanitize` runs the API tests under ASan and TSan (see
//!   `sanitize.rs`).
//! * `layering` checks that the crate graph has the shape `DESIGN.md` draws
//!   (see [`RULES`]) and that `ARCHITECTURE.md` mentions every crate.
//! * `help` prints the commands.
//!
//! # How the layering check reads the crate graph
//!
//! The rules are about what each crate *names* in its `[dependencies]`;
//! `cargo metadata --no-deps --offline` reports exactly that (package names
//! with renames resolved, each dependency's kind), without resolving or
//! downloading anything. Dev- and build-dependencies are deliberately not
//! checked: they never end up in a user's dependency graph. `serde_json`
//! reads its output; it is `xtask`'s only dependency, so `xtask` still
//! builds in seconds and never waits for the workspace's heavy ones.

mod cross;
mod fuzz;
mod sanitize;
mod testsuite;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test-all [--skip-slow]  run everything CI runs: fmt, clippy, tests, docs,
                          the layering check, then the slow tests unless
                          --skip-slow is given; stops at the first failure
  bench [--quick] [--filter SUBSTR]... [--list]
                          run the benchmarks (benches/, release build):
                          Kiln vs Wasmtime 48 (and wasmi); writes
                          target/bench/report.json and report.svg
  cross aarch64 [--setup-only]
                          set up the AArch64 toolchain (Debian rustc-web,
                          qemu 10, binfmt_misc; needs root), check the
                          declared rust-version, run every test under
                          qemu-user on two CPU models, build an AArch64 kiln
  cross x86_64-old        the API tests under qemu-x86_64 -cpu Nehalem and
                          -cpu qemu64 (CPUs without AVX / SSSE3)
  fuzz --seconds N [TARGET]
                          build and run the cargo-fuzz targets (nightly) for
                          N seconds each; fails on a crash
  sanitize [address|thread]...
                          the API tests under ASan and TSan (nightly)
  layering                check the crate dependency graph against DESIGN.md
                          and that ARCHITECTURE.md mentions every crate
  help                    print this message
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "test-all" => parse_test_all(rest).and_then(|opts| test_all(&opts)),
        "layering" => no_args("layering", rest).and_then(|()| layering_cmd()),
        "bench" => parse_bench(rest).and_then(|args| bench(&args)),
        "cross" => cross::cross(rest),
        "fuzz" => fuzz::parse(rest).and_then(|o| fuzz::fuzz(&workspace_root(), &o)),
        "sanitize" => sanitize::parse(rest).and_then(|s| sanitize::sanitize(&workspace_root(), &s)),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command `{other}`"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("xtask: {msg}\n");
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Why a command did not succeed.
#[derive(Debug)]
enum Failure {
    /// The command line was wrong; exit status 2 with the usage.
    Usage(String),
    /// A step or check failed; exit status 1.
    Failed(String),
}

fn no_args(cmd: &str, rest: &[String]) -> Result<(), Failure> {
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(Failure::Usage(format!(
            "`{cmd}` takes no arguments, got `{arg}`"
        ))),
    }
}

/// The workspace root: the parent of this package's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one directory below the workspace root")
        .to_path_buf()
}

/// The cargo to run: the one that is running us (cargo sets `CARGO` for
/// `cargo run`), so `cargo +nightly xtask` stays on nightly.
fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

// ---------------------------------------------------------------------------
// test-all
// ---------------------------------------------------------------------------

/// Options of `test-all`.
#[derive(Debug, Default)]
struct TestAllOptions {
    /// Leave out the slow tests (`--skip-slow`).
    skip_slow: bool,
}

fn parse_test_all(args: &[String]) -> Result<TestAllOptions, Failure> {
    let mut opts = TestAllOptions::default();
    for arg in args {
        match arg.as_str() {
            "--skip-slow" => opts.skip_slow = true,
            other => {
                return Err(Failure::Usage(format!(
                    "unknown option `{other}` for `test-all`"
                )))
            }
        }
    }
    Ok(opts)
}

/// One external command of `test-all`.
struct Step {
    /// Environment variables set for this command only.
    env: &'static [(&'static str, &'static str)],
    /// Arguments after `cargo`.
    args: &'static [&'static str],
}

impl Step {
    /// The command line as a person would type it.
    fn display(&self) -> String {
        let mut s = String::new();
        for (k, v) in self.env {
            s.push_str(&format!("{k}=\"{v}\" "));
        }
        s.push_str("cargo");
        for a in self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

const FMT: Step = Step {
    env: &[],
    args: &["fmt", "--all", "--", "--check"],
};
const CLIPPY: Step = Step {
    env: &[],
    args: &[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ],
};
const TEST: Step = Step {
    env: &[],
    args: &["test", "--workspace"],
};
const DOC: Step = Step {
    env: &[("RUSTDOCFLAGS", "-D warnings")],
    args: &["doc", "--workspace", "--no-deps"],
};
/// The tests too slow for `cargo test` (e.g. the x86-64 veneer test that
/// needs 2 GiB of text); they are `#[ignore]`d with a reason and run here.
const SLOW: Step = Step {
    env: &[],
    args: &["test", "-p", "kiln", "--test", "slow", "--", "--ignored"],
};
/// Where the slow tests live; the step runs only once this file exists.
const SLOW_TESTS_FILE: &str = "crates/api/tests/slow.rs";

fn test_all(opts: &TestAllOptions) -> Result<(), Failure> {
    let root = workspace_root();
    let started = Instant::now();
    let run_slow = !opts.skip_slow && root.join(SLOW_TESTS_FILE).is_file();
    let total = 5 + usize::from(run_slow);
    let mut n = 0;
    let mut next = |name: &str| {
        n += 1;
        println!("\n==> [{n}/{total}] {name}");
    };

    for step in [&FMT, &CLIPPY] {
        next(&step.display());
        run(&root, step)?;
    }
    next(&TEST.display());
    // The spec testsuite: where the tests find it, or fetched (see
    // `testsuite.rs`) and named to them through KILN_TESTSUITE.
    match testsuite::ensure(&root, &target_dir(&root))? {
        Some(dir) => run_with(&root, &TEST, &[("KILN_TESTSUITE", dir.as_os_str())])?,
        None => run(&root, &TEST)?,
    }
    next(&DOC.display());
    run(&root, &DOC)?;

    next("layering check (cargo xtask layering)");
    layering(&root)?;

    if run_slow {
        next(&SLOW.display());
        run(&root, &SLOW)?;
    } else if opts.skip_slow {
        println!("\n==> slow tests skipped (--skip-slow)");
    } else {
        println!("\n==> no slow tests yet ({SLOW_TESTS_FILE} does not exist)");
    }

    println!("\n==> test-all passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Runs one step in `root`, turning a failure into a message that names
/// the step and how to rerun it.
fn run(root: &Path, step: &Step) -> Result<(), Failure> {
    run_with(root, step, &[])
}

/// [`run`], with more environment variables.
fn run_with(
    root: &Path,
    step: &Step,
    extra_env: &[(&str, &std::ffi::OsStr)],
) -> Result<(), Failure> {
    let started = Instant::now();
    let mut cmd = Command::new(cargo());
    cmd.args(step.args).current_dir(root);
    for (k, v) in step.env {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let status = cmd
        .status()
        .map_err(|e| Failure::Failed(format!("could not run `{}`: {e}", step.display())))?;
    if status.success() {
        println!("    ok ({:.1?})", started.elapsed());
        Ok(())
    } else {
        Err(Failure::Failed(format!(
            "step failed ({status}): {}\n       rerun it from {} to reproduce",
            step.display(),
            root.display()
        )))
    }
}

// ---------------------------------------------------------------------------
// bench
// ---------------------------------------------------------------------------

/// Checks `bench`'s arguments and returns them as the benchmark binary
/// takes them.
fn parse_bench(args: &[String]) -> Result<Vec<String>, Failure> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" | "--list" => out.push(arg.clone()),
            "--filter" => {
                let value = it
                    .next()
                    .ok_or_else(|| Failure::Usage("`--filter` needs a value".to_string()))?;
                out.push("--filter".to_string());
                out.push(value.clone());
            }
            other if other.starts_with("--filter=") => {
                out.push("--filter".to_string());
                out.push(other["--filter=".len()..].to_string());
            }
            other => {
                return Err(Failure::Usage(format!(
                    "unknown option `{other}` for `bench`"
                )))
            }
        }
    }
    Ok(out)
}

/// The root workspace's target directory (`CARGO_TARGET_DIR` if set).
fn target_dir(root: &Path) -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Runs the benchmark binary in release mode. It is a workspace of its
/// own (`benches/Cargo.toml`), so the root workspace never builds Wasmtime.
fn bench(args: &[String]) -> Result<(), Failure> {
    let root = workspace_root();
    if !args.iter().any(|a| a == "--list") {
        ensure_c_toolchain();
    }
    let out = target_dir(&root).join("bench");
    let manifest = root.join("benches").join("Cargo.toml");
    let mut cmd = Command::new(cargo());
    cmd.args(["run", "--release", "--manifest-path"])
        .arg(&manifest)
        .arg("--")
        .arg("--out")
        .arg(&out)
        .args(args)
        .current_dir(&root);
    println!(
        "==> cargo run --release --manifest-path {} -- --out {} {}",
        manifest.display(),
        out.display(),
        args.join(" ")
    );
    println!("    (the first build compiles Wasmtime 48: several minutes)");
    let status = cmd
        .status()
        .map_err(|e| Failure::Failed(format!("could not run cargo: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Failed(format!("the benchmarks failed ({status})")))
    }
}

/// Whether `program --version` runs.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether we run as root (Linux: the real uid in /proc/self/status).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Whether clang can build a wasm32-wasi program (clang, wasm-ld,
/// wasi-libc and the wasm32 compiler runtime are all there).
fn wasi_clang_works() -> bool {
    let probe = std::env::temp_dir().join(format!("kiln-xtask-probe-{}.c", std::process::id()));
    let out = probe.with_extension("wasm");
    let ok = fs::write(&probe, "int main(void) { return 0; }\n").is_ok()
        && Command::new("clang")
            .args(["--target=wasm32-wasi", "-O2", "-o"])
            .arg(&out)
            .arg(&probe)
            .output()
            .is_ok_and(|o| o.status.success());
    let _ = fs::remove_file(&probe);
    let _ = fs::remove_file(&out);
    ok
}

/// The C benchmark programs need clang with the wasm32 target and wasm-ld,
/// and the WASI ones wasi-libc and the wasm32 compiler runtime. Installs
/// Debian's packages when one is missing and we are root; otherwise says
/// why the C programs will be skipped.
fn ensure_c_toolchain() {
    let mut missing: Vec<&str> = [("clang", "clang"), ("wasm-ld", "lld")]
        .into_iter()
        .filter(|(program, _)| !runs(program))
        .map(|(_, package)| package)
        .collect();
    if !wasi_clang_works() {
        missing.extend(["clang", "lld", "wasi-libc", "libclang-rt-14-dev-wasm32"]);
        missing.sort_unstable();
        missing.dedup();
    }
    if missing.is_empty() {
        return;
    }
    let packages = missing.join(" ");
    if !is_root() {
        println!(
            "==> warning: {packages} missing and not root; the C programs will be skipped \
             (install them with `sudo apt-get install -y {packages}`)"
        );
        return;
    }
    println!(
        "==> installing {packages} for the C benchmark programs (clang --target=wasm32 and wasm32-wasi)"
    );
    for apt_args in [vec!["update"], {
        let mut v = vec!["install", "-y"];
        v.extend(missing.iter().copied());
        v
    }] {
        println!("    apt-get {}", apt_args.join(" "));
        let ok = Command::new("apt-get")
            .args(&apt_args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!(
                "==> warning: `apt-get {}` failed; the C programs will be skipped",
                apt_args.join(" ")
            );
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// layering
// ---------------------------------------------------------------------------

/// What a crate may use from Cranelift.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum CraneliftUse {
    /// Any `cranelift-*` crate.
    Any,
    /// Only `cranelift-entity` (index maps), never the code generator.
    EntityOnly,
    /// No `cranelift-*` crate at all.
    None,
}

/// The layering rule for one crate.
struct Rule {
    /// The package name.
    name: &'static str,
    /// The Kiln crates it may name in `[dependencies]`.
    kiln_deps: &'static [&'static str],
    /// The Cranelift crates it may name in `[dependencies]`.
    cranelift: CraneliftUse,
    /// Crates it must not reach even indirectly, through other workspace
    /// crates. (Only workspace manifests are followed: we cannot see into
    /// crates.io crates textually, and none of ours pulls in a compiler.)
    never_reaches: &'static [&'static str],
}

/// The crates that generate code. `kiln-runtime` never compiles code, so
/// it must not reach any of them, however indirectly.
const CODE_GENERATORS: &[&str] = &[
    "kiln-cranelift",
    "kiln-trampolines",
    "cranelift-codegen",
    "cranelift-frontend",
    "cranelift-native",
];

/// The crate graph of `DESIGN.md`: a crate depends only on crates above it
/// (`trampolines` beside `cranelift`), and only the code generators use
/// Cranelift's compiler. A new crate under `crates/` needs a rule here.
const RULES: &[Rule] = &[
    Rule {
        name: "kiln-environ",
        kiln_deps: &[],
        cranelift: CraneliftUse::EntityOnly,
        never_reaches: &[],
    },
    Rule {
        name: "kiln-trampolines",
        kiln_deps: &["kiln-environ"],
        cranelift: CraneliftUse::Any,
        never_reaches: &[],
    },
    Rule {
        name: "kiln-cranelift",
        kiln_deps: &["kiln-environ", "kiln-trampolines"],
        cranelift: CraneliftUse::Any,
        never_reaches: &[],
    },
    Rule {
        name: "kiln-jit",
        kiln_deps: &["kiln-environ"],
        cranelift: CraneliftUse::Any,
        never_reaches: &[],
    },
    Rule {
        name: "kiln-runtime",
        kiln_deps: &["kiln-environ", "kiln-jit"],
        cranelift: CraneliftUse::None,
        never_reaches: CODE_GENERATORS,
    },
    Rule {
        name: "kiln",
        kiln_deps: &[
            "kiln-environ",
            "kiln-cranelift",
            "kiln-trampolines",
            "kiln-jit",
            "kiln-runtime",
        ],
        cranelift: CraneliftUse::Any,
        never_reaches: &[],
    },
    Rule {
        name: "kiln-wast",
        kiln_deps: &["kiln"],
        cranelift: CraneliftUse::Any,
        never_reaches: &[],
    },
    Rule {
        name: "kiln-wasi",
        kiln_deps: &["kiln"],
        cranelift: CraneliftUse::None,
        never_reaches: &[],
    },
    Rule {
        name: "kiln-cli",
        kiln_deps: &["kiln", "kiln-wast", "kiln-wasi"],
        cranelift: CraneliftUse::Any,
        never_reaches: &[],
    },
    Rule {
        name: "kiln-fuzzing",
        kiln_deps: &["kiln", "kiln-environ"],
        cranelift: CraneliftUse::None,
        never_reaches: &[],
    },
];

fn is_kiln_crate(name: &str) -> bool {
    name == "kiln" || name.starts_with("kiln-")
}

fn is_cranelift_crate(name: &str) -> bool {
    name.starts_with("cranelift-")
}

fn layering_cmd() -> Result<(), Failure> {
    layering(&workspace_root())
}

/// Runs the layering check on the workspace at `root`, printing each
/// violation.
fn layering(root: &Path) -> Result<(), Failure> {
    let violations = check_layering(root);
    if violations.is_empty() {
        println!("layering: ok ({} crates checked)", RULES.len());
        return Ok(());
    }
    for v in &violations {
        println!("layering violation: {v}");
    }
    Err(Failure::Failed(format!(
        "layering: {} violation(s); the rules are `RULES` in xtask/src/main.rs \
         and the picture in DESIGN.md",
        violations.len()
    )))
}

/// Every layering violation of the workspace at `root`, as messages.
fn check_layering(root: &Path) -> Vec<String> {
    let mut violations = Vec::new();
    let manifests = match workspace_crates(root) {
        Ok(m) => m,
        Err(e) => return vec![e],
    };
    let dirs: Vec<String> = manifests.values().map(|(d, _)| d.clone()).collect();

    for (name, (dir, manifest)) in &manifests {
        match RULES.iter().find(|r| r.name == name) {
            Some(rule) => violations.extend(check_direct(rule, dir, &manifest.deps)),
            None => violations.push(format!(
                "crates/{dir} ({name}) has no layering rule; add one to `RULES` in \
                 xtask/src/main.rs and a paragraph to ARCHITECTURE.md"
            )),
        }
    }
    for rule in RULES {
        if !manifests.contains_key(rule.name) {
            violations.push(format!(
                "`RULES` names {} but no crate under crates/ has that name",
                rule.name
            ));
        }
        violations.extend(check_reach(rule, &manifests));
    }

    violations.extend(check_architecture_md(root, &dirs));
    violations
}

/// The rules on what `rule.name` names directly in `[dependencies]`.
fn check_direct(rule: &Rule, dir: &str, deps: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for dep in deps {
        if is_kiln_crate(dep) && !rule.kiln_deps.contains(&dep.as_str()) {
            let allowed = if rule.kiln_deps.is_empty() {
                "none".to_string()
            } else {
                rule.kiln_deps.join(", ")
            };
            out.push(format!(
                "{} (crates/{dir}) depends on {dep}; allowed Kiln crates: {allowed}",
                rule.name
            ));
        }
        if is_cranelift_crate(dep) {
            let bad = match rule.cranelift {
                CraneliftUse::Any => false,
                CraneliftUse::EntityOnly => dep != "cranelift-entity",
                CraneliftUse::None => true,
            };
            if bad {
                let allowed = match rule.cranelift {
                    CraneliftUse::EntityOnly => "only cranelift-entity",
                    _ => "none",
                };
                out.push(format!(
                    "{} (crates/{dir}) depends on {dep}; allowed Cranelift crates: {allowed}",
                    rule.name
                ));
            }
        }
    }
    out
}

/// The `never_reaches` rule: a breadth-first walk over workspace crates
/// from `rule.name`, reporting the first path to each forbidden crate that
/// goes through at least one other crate (direct dependencies are already
/// reported by [`check_direct`]).
fn check_reach(rule: &Rule, manifests: &BTreeMap<String, (String, Manifest)>) -> Vec<String> {
    if rule.never_reaches.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut reported = BTreeSet::new();
    let mut seen = BTreeSet::from([rule.name.to_string()]);
    let mut queue = VecDeque::from([vec![rule.name.to_string()]]);
    while let Some(path) = queue.pop_front() {
        let here = path.last().expect("paths are never empty");
        let Some((_, manifest)) = manifests.get(here) else {
            continue;
        };
        for dep in &manifest.deps {
            if path.len() >= 2
                && rule.never_reaches.contains(&dep.as_str())
                && reported.insert(dep.clone())
            {
                out.push(format!(
                    "{} reaches {dep} through {} -> {dep}",
                    rule.name,
                    path.join(" -> ")
                ));
            }
            if manifests.contains_key(dep) && seen.insert(dep.clone()) {
                let mut longer = path.clone();
                longer.push(dep.clone());
                queue.push_back(longer);
            }
        }
    }
    out
}

/// `ARCHITECTURE.md` must mention `crates/<dir>` for every crate directory,
/// so a new crate cannot arrive without a paragraph saying what it owns.
fn check_architecture_md(root: &Path, dirs: &[String]) -> Vec<String> {
    let path = root.join("ARCHITECTURE.md");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => return vec![format!("cannot read {}: {e}", path.display())],
    };
    dirs.iter()
        .filter(|dir| !text.contains(&format!("crates/{dir}")))
        .map(|dir| format!("ARCHITECTURE.md does not mention crates/{dir}"))
        .collect()
}

// ---------------------------------------------------------------------------
// Reading the crate graph
// ---------------------------------------------------------------------------

/// What the layering check needs of one workspace crate.
#[derive(Debug, PartialEq, Eq)]
struct Manifest {
    /// The package name.
    name: String,
    /// The package names of its normal dependencies (also those under a
    /// `[target.'cfg(..)']` table), renames resolved. Dev- and
    /// build-dependencies never reach a user's dependency graph and are
    /// not checked.
    deps: BTreeSet<String>,
}

/// The crates under `root/crates/`, by package name, with their directory
/// names, as `cargo metadata` reports them.
fn workspace_crates(root: &Path) -> Result<BTreeMap<String, (String, Manifest)>, String> {
    let out = Command::new(cargo())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .map_err(|e| format!("running cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    crates_from_metadata(root, &out.stdout)
}

/// [`workspace_crates`] from `cargo metadata` output.
fn crates_from_metadata(
    root: &Path,
    json: &[u8],
) -> Result<BTreeMap<String, (String, Manifest)>, String> {
    let meta: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("cargo metadata output: {e}"))?;
    let crates_dir = root
        .join("crates")
        .canonicalize()
        .map_err(|e| format!("{}/crates: {e}", root.display()))?;
    let packages = meta["packages"]
        .as_array()
        .ok_or("cargo metadata output has no `packages`")?;
    let mut out = BTreeMap::new();
    for p in packages {
        let field = |k: &str| {
            p[k].as_str()
                .ok_or_else(|| format!("a package in cargo metadata has no `{k}`"))
        };
        let name = field("name")?.to_string();
        let manifest = PathBuf::from(field("manifest_path")?);
        let Some(dir) = manifest
            .parent()
            .filter(|d| d.parent() == Some(crates_dir.as_path()))
            .and_then(|d| d.file_name())
        else {
            continue; // xtask, benches, fuzz: outside the layers
        };
        let deps = p["dependencies"]
            .as_array()
            .ok_or_else(|| format!("{name}: no `dependencies` in cargo metadata"))?
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_string))
            .collect();
        out.insert(
            name.clone(),
            (dir.to_string_lossy().into_owned(), Manifest { name, deps }),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renamed, target-specific, dev- and build-dependencies as `cargo
    /// metadata` shows them, and a package outside `crates/`.
    #[test]
    fn reads_normal_dependencies_from_metadata() {
        let root = env::temp_dir().join(format!("kiln-xtask-meta-{}", std::process::id()));
        fs::create_dir_all(root.join("crates/jit")).unwrap();
        let jit = root
            .join("crates/jit/Cargo.toml")
            .canonicalize()
            .unwrap_or_else(|_| {
                fs::write(root.join("crates/jit/Cargo.toml"), "").unwrap();
                root.join("crates/jit/Cargo.toml").canonicalize().unwrap()
            });
        let json = format!(
            r#"{{"packages": [
                {{"name": "kiln-jit", "manifest_path": {jit:?}, "dependencies": [
                    {{"name": "kiln-environ", "rename": "env", "kind": null}},
                    {{"name": "libc", "kind": null, "target": "cfg(unix)"}},
                    {{"name": "wat", "kind": "dev"}},
                    {{"name": "cc", "kind": "build"}}]}},
                {{"name": "xtask", "manifest_path": "/elsewhere/xtask/Cargo.toml",
                  "dependencies": []}}]}}"#
        );
        let crates = crates_from_metadata(&root, json.as_bytes()).unwrap();
        fs::remove_dir_all(&root).unwrap();
        let (dir, m) = &crates["kiln-jit"];
        assert_eq!(dir, "jit");
        assert_eq!(
            m.deps.iter().map(String::as_str).collect::<Vec<_>>(),
            ["kiln-environ", "libc"]
        );
        assert_eq!(crates.len(), 1);
        assert!(crates_from_metadata(Path::new("/"), b"{").is_err());
    }

    #[test]
    fn direct_rules() {
        let rule = RULES.iter().find(|r| r.name == "kiln-environ").unwrap();
        let ok = BTreeSet::from(["cranelift-entity".to_string(), "wasmparser".to_string()]);
        assert!(check_direct(rule, "environ", &ok).is_empty());
        let bad = BTreeSet::from(["cranelift-codegen".to_string(), "kiln-jit".to_string()]);
        assert_eq!(check_direct(rule, "environ", &bad).len(), 2);

        let rule = RULES.iter().find(|r| r.name == "kiln-runtime").unwrap();
        let bad = BTreeSet::from(["cranelift-entity".to_string(), "kiln-cranelift".to_string()]);
        assert_eq!(check_direct(rule, "runtime", &bad).len(), 2);
    }

    #[test]
    fn indirect_code_generators_are_found() {
        let manifest = |name: &str, deps: &[&str]| {
            (
                name.to_string(),
                (
                    name.to_string(),
                    Manifest {
                        name: name.to_string(),
                        deps: deps.iter().map(|d| d.to_string()).collect(),
                    },
                ),
            )
        };
        let manifests = BTreeMap::from([
            manifest("kiln-runtime", &["kiln-jit", "kiln-environ"]),
            manifest("kiln-jit", &["kiln-environ", "cranelift-codegen"]),
            manifest("kiln-environ", &["cranelift-entity"]),
        ]);
        let rule = RULES.iter().find(|r| r.name == "kiln-runtime").unwrap();
        assert_eq!(
            check_reach(rule, &manifests),
            ["kiln-runtime reaches cranelift-codegen through kiln-runtime -> kiln-jit -> cranelift-codegen"]
        );
    }

    /// A made-up workspace with one violation of each kind.
    #[test]
    fn violations_are_reported() {
        let root = env::temp_dir().join(format!("kiln-xtask-layering-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        // A real workspace, so `cargo metadata` reads it (offline, no
        // dependency resolution). Every crate is a path dependency of the
        // workspace; `cranelift-codegen` is a stand-in crate of that name.
        let members = [
            ("environ", "kiln-environ"),
            ("trampolines", "kiln-trampolines"),
            ("cranelift", "kiln-cranelift"),
            ("jit", "kiln-jit"),
            ("runtime", "kiln-runtime"),
            ("api", "kiln"),
            ("wast", "kiln-wast"),
            ("wasi", "kiln-wasi"),
            ("cli", "kiln-cli"),
            ("fuzzing", "kiln-fuzzing"),
            ("extra", "kiln-extra"),
        ];
        let mut ws = String::from("[workspace]\nresolver = \"2\"\nmembers = [\"crates/*\", \"stand-in\"]\n[workspace.dependencies]\n");
        for (dir, name) in members {
            ws.push_str(&format!("{name} = {{ path = \"crates/{dir}\" }}\n"));
        }
        ws.push_str("cranelift-codegen = { path = \"stand-in\" }\n");
        fs::create_dir_all(root.join("stand-in/src")).unwrap();
        fs::write(root.join("stand-in/src/lib.rs"), "").unwrap();
        fs::write(
            root.join("stand-in/Cargo.toml"),
            "[package]\nname = \"cranelift-codegen\"\nversion = \"0.0.0\"\n",
        )
        .unwrap();
        fs::write(root.join("Cargo.toml"), ws).unwrap();
        let write = |dir: &str, name: &str, deps: &str| {
            let dir = root.join("crates").join(dir);
            fs::create_dir_all(dir.join("src")).unwrap();
            fs::write(dir.join("src/lib.rs"), "").unwrap();
            let text = format!(
                "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\n[dependencies]\n{deps}\n"
            );
            fs::write(dir.join("Cargo.toml"), text).unwrap();
        };
        write(
            "environ",
            "kiln-environ",
            "cranelift-codegen.workspace = true",
        );
        write(
            "trampolines",
            "kiln-trampolines",
            "kiln-environ.workspace = true",
        );
        write(
            "cranelift",
            "kiln-cranelift",
            "kiln-runtime.workspace = true",
        );
        write(
            "jit",
            "kiln-jit",
            "kiln-environ.workspace = true\nkiln-trampolines.workspace = true",
        );
        write("runtime", "kiln-runtime", "kiln-jit.workspace = true");
        write("api", "kiln", "kiln-runtime.workspace = true");
        write("wast", "kiln-wast", "kiln.workspace = true");
        write("wasi", "kiln-wasi", "kiln.workspace = true");
        write("cli", "kiln-cli", "kiln-wast.workspace = true");
        write("fuzzing", "kiln-fuzzing", "kiln.workspace = true");
        write("extra", "kiln-extra", "");
        fs::write(
            root.join("ARCHITECTURE.md"),
            "crates/environ crates/trampolines crates/cranelift crates/jit \
             crates/runtime crates/api crates/wast crates/wasi crates/cli crates/fuzzing",
        )
        .unwrap();

        let violations = check_layering(&root);
        fs::remove_dir_all(&root).unwrap();
        let expected = [
            "kiln-cranelift (crates/cranelift) depends on kiln-runtime",
            "kiln-environ (crates/environ) depends on cranelift-codegen",
            "crates/extra (kiln-extra) has no layering rule",
            "kiln-jit (crates/jit) depends on kiln-trampolines",
            "kiln-runtime reaches kiln-trampolines through kiln-runtime -> kiln-jit",
            "kiln-runtime reaches cranelift-codegen through kiln-runtime -> kiln-jit -> kiln-environ",
            "ARCHITECTURE.md does not mention crates/extra",
        ];
        assert_eq!(violations.len(), expected.len(), "{violations:#?}");
        for (v, e) in violations.iter().zip(expected) {
            assert!(v.starts_with(e), "{v:?} should start with {e:?}");
        }
    }

    /// The real workspace obeys its own rules; this makes `cargo test`
    /// enforce the layering, not only `cargo xtask`.
    #[test]
    fn bench_arguments() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse_bench(&args(&["--quick", "--filter", "call/", "--filter=compute"])).unwrap(),
            args(&["--quick", "--filter", "call/", "--filter", "compute"])
        );
        assert!(parse_bench(&args(&["--filter"])).is_err());
        assert!(parse_bench(&args(&["--out", "x"])).is_err());
    }

    #[test]
    fn workspace_respects_layering() {
        let violations = check_layering(&workspace_root());
        assert!(violations.is_empty(), "{}", violations.join("\n"));
    }
}
