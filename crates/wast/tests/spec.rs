//! Runs every `.wast` file of the WebAssembly spec testsuite's `core/`
//! directory, one trial per file, then every one again with the pooling
//! allocator (`pooling/<file>`, see `pooling_config`), so that pooled
//! slots are taken, reset and reused by the whole suite.
//!
//! The suite is looked for in `$KILN_TESTSUITE/core`, or else in
//! `<workspace>/../shared/testsuite/core`. Files listed in
//! `tests/known_failures.txt` are expected to fail.

use libtest_mimic::{Arguments, Failed, Trial};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The testsuite commit the known-failures list was made against.
const SUITE_COMMIT: &str = "a8101597d3c3c660086c3cd1eedee608ff18d3c3";

/// Native stack for each file's thread: Wasm gets 512 KiB by default, and
/// the host side (compiler, runner) needs room on top of that.
const STACK_SIZE: usize = 16 << 20;

/// The directory of core `.wast` files: `$KILN_TESTSUITE/core` (the layout
/// of `../shared/testsuite`), or `$KILN_TESTSUITE` itself when the `.wast`
/// files sit at its root (a plain clone of the upstream testsuite at
/// `SUITE_COMMIT`).
fn suite_dir() -> PathBuf {
    let dir = match std::env::var_os("KILN_TESTSUITE") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.join("core").is_dir() || !d.join("address.wast").is_file() {
                d.join("core")
            } else {
                d
            }
        }
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testsuite/core"),
    };
    dir.canonicalize().unwrap_or(dir)
}

/// `file.wast -> reason`.
fn known_failures() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/known_failures.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (file, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (file.to_string(), reason.trim().to_string())
        })
        .collect()
}

#[derive(Default)]
struct Totals {
    passed: AtomicUsize,
    failed: AtomicUsize,
}

/// Where a trial's script runs: a new engine of its own, or a shared one.
enum Setup {
    Config(Box<kiln::Config>),
    Engine(kiln::Engine),
}

fn run_one(path: &Path, known: Option<&str>, totals: &Totals, setup: Setup) -> Result<(), Failed> {
    let p = path.to_path_buf();
    let handle = std::thread::Builder::new()
        .name(path.file_name().unwrap().to_string_lossy().into_owned())
        .stack_size(STACK_SIZE)
        .spawn(move || match setup {
            Setup::Config(config) => kiln_wast::run_file(&p, &config),
            Setup::Engine(engine) => kiln_wast::run_file_with_engine(&p, &engine),
        })
        .map_err(|e| format!("spawning thread: {e}"))?;
    let stats = match handle.join() {
        Ok(Ok(stats)) => stats,
        Ok(Err(e)) => {
            totals.failed.fetch_add(1, Ordering::Relaxed);
            return Err(format!("{e}").into());
        }
        Err(_) => {
            totals.failed.fetch_add(1, Ordering::Relaxed);
            return Err("the runner panicked outside a directive".into());
        }
    };
    totals.passed.fetch_add(stats.passed, Ordering::Relaxed);
    totals.failed.fetch_add(stats.failed, Ordering::Relaxed);
    match (known, stats.failed) {
        (None, 0) => Ok(()),
        (Some(_), f) if f > 0 => Ok(()),
        (Some(reason), _) => Err(format!(
            "{} passes completely ({} assertions) but is listed in \
             tests/known_failures.txt ({reason}): remove it from the list",
            path.display(),
            stats.passed
        )
        .into()),
        (None, n) => {
            const SHOWN: usize = 40;
            let mut msg = format!(
                "{n} of {} directives failed:\n",
                stats.passed + stats.failed
            );
            for f in stats.failures.iter().take(SHOWN) {
                msg.push_str("  ");
                msg.push_str(f);
                msg.push('\n');
            }
            if n > SHOWN {
                msg.push_str(&format!("  ... and {} more\n", n - SHOWN));
            }
            Err(msg.into())
        }
    }
}

/// The engine of the `pooling/*` trials: every core file again, with every
/// instance, memory and table of the file (its one store keeps them all)
/// in slots of one pooling allocator shared by all files, so that each
/// file reuses slots that others dirtied and returned (a store returns
/// its slots when its file ends). It is sized so that no two files
/// running at once run out of slots or meet a per-module limit the spec
/// does not have.
fn pooled_engine() -> kiln::Engine {
    static ENGINE: std::sync::OnceLock<kiln::Engine> = std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| kiln::Engine::new(&pooling_config()).expect("a pooled engine"))
        .clone()
}

fn pooling_config() -> kiln::Config {
    let mut p = kiln::PoolingAllocationConfig::new();
    p.total_core_instances(1000)
        .total_memories(1000)
        .total_tables(1000)
        .max_memories_per_module(1)
        .max_tables_per_module(100)
        .table_elements(100_000);
    let mut c = kiln::Config::default();
    c.allocation_strategy(kiln::InstanceAllocationStrategy::Pooling(p));
    c
}

fn main() {
    let args = Arguments::from_args();
    let dir = suite_dir();
    let totals = Arc::new(Totals::default());
    let mut trials = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            let msg = format!(
                "the spec testsuite was not found at {} ({e}).\n\
                 Get it with\n  \
                 git clone https://github.com/WebAssembly/testsuite \
                 <dir> && git -C <dir> checkout {SUITE_COMMIT}\n\
                 and either put it at <workspace>/../shared/testsuite or set \
                 KILN_TESTSUITE=<dir>.",
                dir.display()
            );
            eprintln!("{msg}");
            let t = Trial::test("testsuite", move || Err(msg.into()));
            libtest_mimic::run(&args, vec![t]).exit();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wast"))
        .collect();
    files.sort();
    let known = known_failures();
    for name in known.keys() {
        if !files
            .iter()
            .any(|f| f.file_name().is_some_and(|n| n == name.as_str()))
        {
            eprintln!(
                "warning: known_failures.txt lists {name}, which is not in {}",
                dir.display()
            );
        }
    }
    let mut skipped = Vec::new();
    let pooled_totals = Arc::new(Totals::default());
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let reason = known.get(&name).cloned();
        let trial_name = name.trim_end_matches(".wast").to_string();
        if let Some(r) = reason.as_ref().filter(|r| r.starts_with("crashes")) {
            // Running it would take the whole process down.
            skipped.push(name.clone());
            let msg = format!("{name} not run: {r}");
            trials.push(Trial::test(trial_name, move || Err(msg.into())).with_ignored_flag(true));
            continue;
        }
        {
            let (path, reason) = (path.clone(), reason.clone());
            let totals = Arc::clone(&pooled_totals);
            trials.push(Trial::test(format!("pooling/{trial_name}"), move || {
                run_one(
                    &path,
                    reason.as_deref(),
                    &totals,
                    Setup::Engine(pooled_engine()),
                )
            }));
        }
        let totals = Arc::clone(&totals);
        trials.push(Trial::test(trial_name, move || {
            run_one(
                &path,
                reason.as_deref(),
                &totals,
                Setup::Config(Box::default()),
            )
        }));
    }
    // Proposals beyond 2.0 that Kiln implements, each run with its feature
    // enabled (their folders hold only the files that differ from 2.0).
    let proposal_totals = Arc::new(Totals::default());
    type Enable = fn(&mut kiln::Config);
    let proposals: [(&str, Enable); 3] = [
        ("tail-call", |c| {
            c.wasm_tail_call(true);
        }),
        ("extended-const", |c| {
            c.wasm_extended_const(true);
        }),
        ("multi-memory", |c| {
            c.wasm_multi_memory(true);
        }),
    ];
    for (name, enable) in proposals {
        let pdir = dir.join("../proposals").join(name);
        let Ok(entries) = std::fs::read_dir(&pdir) else {
            // Upstream removed these folders after the 2.0 commit, so a
            // plain clone lacks them: skip rather than fail.
            let msg = format!("proposal tests not found at {}", pdir.display());
            println!("note: {msg}");
            trials.push(
                Trial::test(format!("proposals/{name}"), move || Err(msg.into()))
                    .with_ignored_flag(true),
            );
            continue;
        };
        let mut pfiles: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wast"))
            .collect();
        pfiles.sort();
        for path in pfiles {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let totals = Arc::clone(&proposal_totals);
            let mut config = kiln::Config::default();
            enable(&mut config);
            trials.push(Trial::test(format!("proposals/{name}/{stem}"), move || {
                run_one(&path, None, &totals, Setup::Config(Box::new(config)))
            }));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    println!(
        "proposals: {} passed, {} failed",
        proposal_totals.passed.load(Ordering::Relaxed),
        proposal_totals.failed.load(Ordering::Relaxed)
    );
    println!(
        "spec: {} passed, {} failed",
        totals.passed.load(Ordering::Relaxed),
        totals.failed.load(Ordering::Relaxed)
    );
    println!(
        "spec with the pooling allocator: {} passed, {} failed",
        pooled_totals.passed.load(Ordering::Relaxed),
        pooled_totals.failed.load(Ordering::Relaxed)
    );
    if !skipped.is_empty() {
        println!("spec: not run (listed as crashing): {}", skipped.join(", "));
    }
    conclusion.exit();
}
