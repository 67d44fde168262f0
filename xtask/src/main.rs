//! `cargo xtask`: Kiln's project automation, the one entry point CI calls.
//!
//! Run it as `cargo xtask <command>` (the alias lives in
//! `.cargo/config.toml`). It depends on nothing but `std`, so it builds in a
//! second and never waits for the workspace's heavy dependencies.
//!
//! # Commands
//!
//! * `test-all [--skip-slow]` runs everything CI runs, in order, and stops
//!   at the first failure: formatting, clippy, the tests (including the spec
//!   testsuite), the docs with warnings denied, the layering check, and
//!   finally the slow tests (`#[ignore]`d tests in `crates/api/tests/slow.rs`)
//!   unless `--skip-slow` is given.
//! * `bench [--quick] [--filter SUBSTR]... [--list]` runs the benchmarks
//!   of `benches/` (Kiln against Wasmtime 48 and wasmi) in release mode and
//!   writes `target/bench/report.{json,svg}`. `benches/` is a workspace of
//!   its own, so nothing else here ever builds Wasmtime. Installs clang and
//!   lld with apt-get when they are missing and we are root (the C
//!   benchmark programs are compiled to Wasm at bench time).
//! * `cross aarch64 [--setup-only]` runs Kiln's tests on AArch64 under
//!   qemu-user (`cross.rs` says how and why).
//! * `fuzz --seconds N [TARGET]` runs the cargo-fuzz targets (see
//!   `fuzz.rs`); `sanitize` runs the API tests under ASan and TSan (see
//!   `sanitize.rs`).
//! * `layering` checks that the crate graph has the shape `DESIGN.md` draws
//!   (see [`RULES`]) and that `ARCHITECTURE.md` mentions every crate.
//! * `help` prints the commands.
//!
//! # Why the layering check reads `Cargo.toml` as text
//!
//! The rules are about what each crate *names* in its `[dependencies]`, and
//! reading that needs only a little of TOML: section headers, `key = value`
//! lines, inline tables and dotted keys. A small reader here keeps `xtask`
//! free of dependencies; the unit tests at the bottom pin down the forms it
//! understands. Dev- and build-dependencies are deliberately not checked:
//! they never end up in a user's dependency graph.

mod cross;
mod fuzz;
mod sanitize;

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

    for step in [&FMT, &CLIPPY, &TEST, &DOC] {
        next(&step.display());
        run(&root, step)?;
    }

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
    let started = Instant::now();
    let mut cmd = Command::new(cargo());
    cmd.args(step.args).current_dir(root);
    for (k, v) in step.env {
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
    "cranelift-wasm",
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
    let crates_dir = root.join("crates");

    let mut dirs = match fs::read_dir(&crates_dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        Err(e) => return vec![format!("cannot read {}: {e}", crates_dir.display())],
    };
    dirs.sort();

    // Package name -> (directory, manifest).
    let mut manifests: BTreeMap<String, (String, Manifest)> = BTreeMap::new();
    for dir in &dirs {
        let path = crates_dir.join(dir).join("Cargo.toml");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                violations.push(format!("crates/{dir}: cannot read Cargo.toml: {e}"));
                continue;
            }
        };
        match parse_manifest(&text) {
            Ok(m) => {
                manifests.insert(m.name.clone(), (dir.clone(), m));
            }
            Err(e) => violations.push(format!("crates/{dir}/Cargo.toml: {e}")),
        }
    }

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
// Reading Cargo.toml
// ---------------------------------------------------------------------------

/// What the layering check needs from one `Cargo.toml`.
#[derive(Debug, PartialEq, Eq)]
struct Manifest {
    /// `[package] name`.
    name: String,
    /// The package names of its normal dependencies: `[dependencies]` and
    /// `[target.'cfg(..)'.dependencies]`, with renames (`package = "..."`)
    /// resolved.
    deps: BTreeSet<String>,
}

/// Which part of the manifest a line belongs to.
enum Section {
    /// `[package]`.
    Package,
    /// `[dependencies]` or `[target.X.dependencies]`.
    Deps,
    /// `[dependencies.NAME]` or `[target.X.dependencies.NAME]`.
    Dep(String),
    /// Anything else, including dev- and build-dependencies.
    Other,
}

fn parse_manifest(text: &str) -> Result<Manifest, String> {
    let mut name = None;
    // Dependency key -> package name, if renamed.
    let mut deps: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut section = Section::Other;

    for line in logical_lines(text)? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix("]]"))
                .or_else(|| header.strip_suffix(']'))
                .ok_or_else(|| format!("malformed section header `{line}`"))?;
            let is_array = line.starts_with("[[");
            let keys = split_dotted(header)?;
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            section = match (is_array, keys.as_slice()) {
                (false, ["package"]) => Section::Package,
                (false, ["dependencies"]) | (false, ["target", _, "dependencies"]) => Section::Deps,
                (false, ["dependencies", dep]) | (false, ["target", _, "dependencies", dep]) => {
                    deps.entry(dep.to_string()).or_insert(None);
                    Section::Dep(dep.to_string())
                }
                _ => Section::Other,
            };
            continue;
        }
        let (key, value) =
            split_key_value(line).ok_or_else(|| format!("expected `key = value`, got `{line}`"))?;
        let keys = split_dotted(key)?;
        match &section {
            Section::Package => {
                if keys == ["name"] {
                    name = Some(unquote(value)?);
                }
            }
            Section::Deps => {
                let dep = keys[0].clone();
                let renamed = match keys.as_slice() {
                    [_] => inline_table_get(value, "package")?,
                    [_, field] if field == "package" => Some(unquote(value)?),
                    _ => None,
                };
                let entry = deps.entry(dep).or_insert(None);
                if renamed.is_some() {
                    *entry = renamed;
                }
            }
            Section::Dep(dep) => {
                if keys == ["package"] {
                    deps.insert(dep.clone(), Some(unquote(value)?));
                }
            }
            Section::Other => {}
        }
    }

    Ok(Manifest {
        name: name.ok_or("no `[package] name`")?,
        deps: deps
            .into_iter()
            .map(|(key, package)| package.unwrap_or(key))
            .collect(),
    })
}

/// Splits TOML text into logical lines: comments removed, and a value that
/// continues over several lines (an array, or an inline table holding one)
/// joined into one line. Strings are respected throughout.
fn logical_lines(text: &str) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    // Inside a string: its closing delimiter and whether escapes apply.
    let mut string: Option<(&str, bool)> = None;
    let mut rest = String::new();

    while let Some(c) = chars.next() {
        if let Some((close, escapes)) = string {
            cur.push(c);
            if escapes && c == '\\' {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                continue;
            }
            rest.push(c);
            if rest.ends_with(close) {
                string = None;
                rest.clear();
            }
            continue;
        }
        match c {
            '"' | '\'' => {
                // Three quotes open a multi-line string.
                let triple = chars.peek() == Some(&c) && {
                    let mut ahead = chars.clone();
                    ahead.next();
                    ahead.peek() == Some(&c)
                };
                cur.push(c);
                let escapes = c == '"';
                if triple {
                    cur.push(chars.next().expect("peeked"));
                    cur.push(chars.next().expect("peeked"));
                    string = Some((if escapes { "\"\"\"" } else { "'''" }, escapes));
                } else {
                    string = Some((if escapes { "\"" } else { "'" }, escapes));
                }
                rest.clear();
            }
            '#' => {
                // A comment runs to the end of the line.
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            '[' | '{' => {
                depth += 1;
                cur.push(c);
            }
            ']' | '}' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced `{c}` in `{}`", cur.trim()))?;
                cur.push(c);
            }
            '\n' if depth == 0 => lines.push(std::mem::take(&mut cur)),
            '\n' | '\r' => cur.push(' '),
            _ => cur.push(c),
        }
    }
    if string.is_some() || depth != 0 {
        return Err(format!(
            "unterminated string or bracket in `{}`",
            cur.trim()
        ));
    }
    lines.push(cur);
    Ok(lines)
}

/// Splits `line` at its first `=` outside quotes.
fn split_key_value(line: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '=') => return Some((line[..i].trim(), line[i + 1..].trim())),
            _ => {}
        }
    }
    None
}

/// Splits a dotted key (`target.'cfg(unix)'.dependencies`) into its parts,
/// unquoted.
fn split_dotted(key: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in key.chars() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '.') => parts.push(std::mem::take(&mut cur).trim().to_string()),
            (None, c) if c.is_whitespace() => {}
            _ => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("unterminated quote in key `{key}`"));
    }
    parts.push(cur.trim().to_string());
    if parts.iter().any(String::is_empty) {
        return Err(format!("empty part in key `{key}`"));
    }
    Ok(parts)
}

/// The string value of `field` in an inline table `{ a = "x", b = 1 }`, if
/// `value` is such a table and has the field.
fn inline_table_get(value: &str, field: &str) -> Result<Option<String>, String> {
    let Some(body) = value
        .trim()
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
    else {
        return Ok(None);
    };
    for item in split_top_level_commas(body) {
        if let Some((k, v)) = split_key_value(item) {
            if split_dotted(k)? == [field] {
                return unquote(v).map(Some);
            }
        }
    }
    Ok(None)
}

/// Splits at commas that are outside strings, arrays and inline tables.
fn split_top_level_commas(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut quote, mut start) = (0usize, None, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            (None, ',') if depth == 0 => {
                items.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[start..]);
    items
}

/// The contents of a simple quoted string (`"x"` or `'x'`).
fn unquote(value: &str) -> Result<String, String> {
    let v = value.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .map(str::to_string)
        .ok_or_else(|| format!("expected a string, got `{v}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(toml: &str) -> Vec<String> {
        parse_manifest(toml)
            .expect("parses")
            .deps
            .into_iter()
            .collect()
    }

    #[test]
    fn reads_the_forms_cargo_tomls_use() {
        let toml = r#"
[package]
name = "kiln-example" # a comment
description = "has = and [brackets] and # inside"

[lints]
workspace = true

[dependencies]
kiln-environ.workspace = true
"cranelift-entity" = { workspace = true }
renamed = { package = "kiln-jit", version = "0.1" }
dotted.package = "kiln-runtime"
object = { version = "0.36", features = [
    "std",   # comment inside an array
    "write",
] }

[dependencies.tabled]
package = "thiserror"
version = "2"

[target.'cfg(unix)'.dependencies]
libc = "0.2"

[dev-dependencies]
kiln-cranelift.workspace = true

[build-dependencies]
cc = "1"

[[bin]]
name = "not-a-package-name"
"#;
        let m = parse_manifest(toml).expect("parses");
        assert_eq!(m.name, "kiln-example");
        assert_eq!(
            m.deps.into_iter().collect::<Vec<_>>(),
            [
                "cranelift-entity",
                "kiln-environ",
                "kiln-jit",
                "kiln-runtime",
                "libc",
                "object",
                "thiserror",
            ]
        );
    }

    #[test]
    fn multi_line_strings_do_not_confuse_sections() {
        let toml =
            "[package]\nname = 'x'\ndescription = \"\"\"\n[dependencies]\nfake = 1\n\"\"\"\n\
                    [dependencies]\nreal = '1'\n";
        assert_eq!(deps(toml), ["real"]);
    }

    #[test]
    fn malformed_manifests_are_errors() {
        assert!(
            parse_manifest("[dependencies]\nfoo = 1\n").is_err(),
            "no name"
        );
        assert!(parse_manifest("[package]\nname = \"x\"\n[dependencies\n").is_err());
        assert!(parse_manifest("[package]\nname = \"x\"\njunk\n").is_err());
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
        let write = |dir: &str, name: &str, deps: &str| {
            let dir = root.join("crates").join(dir);
            fs::create_dir_all(&dir).unwrap();
            let text = format!("[package]\nname = \"{name}\"\n[dependencies]\n{deps}\n");
            fs::write(dir.join("Cargo.toml"), text).unwrap();
        };
        write("environ", "kiln-environ", "cranelift-codegen = '1'");
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
