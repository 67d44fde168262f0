//! `cargo xtask fuzz --seconds N [TARGET]`: build and run the cargo-fuzz
//! targets of `fuzz/`, one after the other, for N seconds each.
//!
//! # What it does
//!
//! * Makes sure `cargo fuzz` is there (`cargo install cargo-fuzz` when it
//!   is not) and that a nightly toolchain is (`cargo +nightly`); libFuzzer
//!   needs nightly's `-Zsanitizer` and coverage flags.
//! * Runs each target (or the one named) with AddressSanitizer, at the
//!   lowest CPU priority (`nice -n 19`: the machine is shared), on its
//!   corpus `fuzz/corpus/<target>` (kept between runs, not in git) plus
//!   the regression corpus `fuzz/regressions/<target>` (read only).
//! * Fails when any target finds a crash, naming the reproducer that
//!   libFuzzer wrote (`fuzz/artifacts/<target>/crash-*`). Minimize it with
//!   `cargo +nightly fuzz tmin --fuzz-dir fuzz <target> <file>`, copy it
//!   into `fuzz/regressions/<target>/` under a name saying what broke, and
//!   it runs in `cargo test -p kiln-fuzzing` from then on.
//! * Prints, per target, the seconds run and the executions libFuzzer
//!   reports, and appends them to `target/fuzz-log.tsv` so that time
//!   spent clean adds up across runs.

use crate::Failure;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The targets, in the order they run.
const TARGETS: &[&str] = &[
    "compile",
    "differential",
    "differential_all",
    "api",
    "artifact",
];

/// Options of `fuzz`.
pub(crate) struct FuzzOptions {
    seconds: u64,
    target: Option<String>,
}

pub(crate) fn parse(args: &[String]) -> Result<FuzzOptions, Failure> {
    let mut seconds = None;
    let mut target = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let v = it
                    .next()
                    .ok_or_else(|| Failure::Usage("`--seconds` needs a number".into()))?;
                seconds = Some(v.parse::<u64>().map_err(|_| {
                    Failure::Usage(format!("`--seconds {v}`: not a number of seconds"))
                })?);
            }
            t if !t.starts_with('-') && target.is_none() => {
                if !TARGETS.contains(&t) {
                    return Err(Failure::Usage(format!(
                        "unknown fuzz target `{t}` (targets: {})",
                        TARGETS.join(", ")
                    )));
                }
                target = Some(t.to_string());
            }
            other => {
                return Err(Failure::Usage(format!(
                    "unknown argument `{other}` for `fuzz`"
                )))
            }
        }
    }
    let seconds = seconds.ok_or_else(|| Failure::Usage("`fuzz` needs `--seconds N`".into()))?;
    Ok(FuzzOptions { seconds, target })
}

pub(crate) fn fuzz(root: &Path, opts: &FuzzOptions) -> Result<(), Failure> {
    ensure_cargo_fuzz()?;
    let targets: Vec<&str> = match &opts.target {
        Some(t) => vec![t.as_str()],
        None => TARGETS.to_vec(),
    };
    let mut failed = Vec::new();
    for target in targets {
        println!("\n==> fuzzing `{target}` for {} s", opts.seconds);
        match run_target(root, target, opts.seconds)? {
            None => {}
            Some(crash) => failed.push(format!("{target}: {crash}")),
        }
    }
    if failed.is_empty() {
        println!("\n==> fuzz: no crash");
        Ok(())
    } else {
        Err(Failure::Failed(format!(
            "fuzz: crashes found:\n  {}\n  minimize with `cargo +nightly fuzz tmin --fuzz-dir fuzz \
             <target> <file>` and add the result to fuzz/regressions/<target>/",
            failed.join("\n  ")
        )))
    }
}

/// Installs cargo-fuzz if `cargo fuzz` is not available.
fn ensure_cargo_fuzz() -> Result<(), Failure> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("==> cargo install cargo-fuzz");
    let ok = Command::new("cargo")
        .args(["install", "cargo-fuzz"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(Failure::Failed("`cargo install cargo-fuzz` failed".into()))
    }
}

/// Runs one target for `seconds`; returns the crash reproducer's path when
/// it found one.
fn run_target(root: &Path, target: &str, seconds: u64) -> Result<Option<String>, Failure> {
    let corpus = root.join("fuzz/corpus").join(target);
    let regressions = root.join("fuzz/regressions").join(target);
    let artifacts = root.join("fuzz/artifacts").join(target);
    for d in [&corpus, &regressions, &artifacts] {
        fs::create_dir_all(d)
            .map_err(|e| Failure::Failed(format!("creating {}: {e}", d.display())))?;
    }
    let log_path = root.join("target").join(format!("fuzz-{target}.log"));
    let _ = fs::create_dir_all(root.join("target"));
    let log = fs::File::create(&log_path)
        .map_err(|e| Failure::Failed(format!("creating {}: {e}", log_path.display())))?;
    let started = Instant::now();
    let status = Command::new("nice")
        .args([
            "-n",
            "19",
            "cargo",
            "+nightly",
            "fuzz",
            "run",
            "--fuzz-dir",
            "fuzz",
            target,
        ])
        .arg(&corpus)
        .arg(&regressions)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // One input must finish in well under this (a hang is a finding).
        .arg("-timeout=60")
        .arg("-rss_limit_mb=4096")
        // The targets build structure (modules, operation sequences) from
        // their input, which wants long inputs from the start rather than
        // libFuzzer's slowly growing length limit.
        .arg("-max_len=8192")
        .arg("-len_control=0")
        .arg("-print_final_stats=1")
        .current_dir(root)
        // Kiln reports Wasm traps through its own SIGSEGV/SIGILL handler,
        // which forwards faults outside Wasm to the sanitizer's.
        .env("ASAN_OPTIONS", "allow_user_segv_handler=1:detect_leaks=1")
        .stderr(
            log.try_clone()
                .map_err(|e| Failure::Failed(e.to_string()))?,
        )
        .stdout(log)
        .status()
        .map_err(|e| Failure::Failed(format!("running cargo fuzz: {e}")))?;
    let elapsed = started.elapsed().as_secs();
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let execs = text
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let crash = text.lines().find_map(|l| {
        l.split_once("Test unit written to ")
            .map(|(_, p)| p.trim().to_string())
    });
    println!(
        "    {target}: {elapsed} s, {execs} executions, {} (log: {})",
        if status.success() { "clean" } else { "FAILED" },
        log_path.display()
    );
    record(root, target, elapsed, &execs, status.success());
    if status.success() {
        Ok(None)
    } else {
        Ok(Some(crash.unwrap_or_else(|| {
            format!(
                "cargo fuzz exited with {status}; see {}",
                log_path.display()
            )
        })))
    }
}

/// Appends one line to `target/fuzz-log.tsv`: when, target, seconds,
/// executions, outcome.
fn record(root: &Path, target: &str, seconds: u64, execs: &str, clean: bool) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("target/fuzz-log.tsv"))
    {
        let _ = writeln!(
            f,
            "{now}\t{target}\t{seconds}\t{execs}\t{}",
            if clean { "clean" } else { "crash" }
        );
    }
}
