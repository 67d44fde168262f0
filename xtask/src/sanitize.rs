//! `cargo xtask sanitize [address|thread]...`: the API test suite
//! (`cargo test -p kiln --test all`) under AddressSanitizer and
//! ThreadSanitizer, with the nightly toolchain.
//!
//! # How
//!
//! `RUSTFLAGS=-Zsanitizer=<name>` with an explicit `--target` (so build
//! scripts and proc macros, which run on the host, stay uninstrumented),
//! and a target directory per sanitizer (`target/sanitize-<name>`), since
//! every crate is rebuilt with the flag.
//!
//! # What is and is not instrumented
//!
//! The installed nightly has no `rust-src`, so the standard library cannot
//! be rebuilt (`-Zbuild-std`) and comes precompiled, uninstrumented. Every
//! crate of the workspace and every dependency is instrumented.
//!
//! * AddressSanitizer needs no more: it intercepts `malloc` and `free`
//!   whoever calls them, and checks every access the instrumented code
//!   makes (Kiln's own `unsafe` code, Cranelift, the tests). What it cannot
//!   see are out-of-bounds accesses made inside std itself, and accesses by
//!   JIT-compiled Wasm (not instrumented by any compiler; their bounds are
//!   the guard pages'). Kiln's signal handler is installed after ASan's and
//!   forwards every fault outside Wasm code to it
//!   (`allow_user_segv_handler=1`), so a real host crash is still reported
//!   by ASan.
//! * ThreadSanitizer sees the synchronization of instrumented code only;
//!   std's `Mutex`, `Arc`, channels and thread spawn/join are precompiled,
//!   so the happens-before edges they create are invisible to it and it
//!   reports races on memory they protect. `sanitize/tsan-suppressions.txt`
//!   lists those frames, each with the reason it is std's, not Kiln's; any
//!   report whose stack goes through Kiln code without passing through a
//!   suppressed std frame is a finding. Races in JIT code are invisible
//!   to it as well.
//!
//! A sanitizer's report makes the test binary exit non-zero, which fails
//! the step.

use crate::Failure;
use std::path::Path;
use std::process::Command;

/// Tests that cannot pass under a sanitizer, with the reason.
///
/// `host_segfault_still_kills_the_process` checks that a crash in host code
/// reaches the handler installed before Kiln's and kills the child process
/// with SIGSEGV. Under ASan and TSan that previous handler is the
/// sanitizer's: it reports the fault (which shows the forwarding works)
/// and exits with a status instead of dying of the signal, so the test's
/// assertion cannot hold.
const SKIPPED: &[(&str, &str, &str)] = &[
    (
        "address",
        "limits::host_segfault_still_kills_the_process",
        "ASan's SEGV handler reports the deliberate crash and exits 1 instead of dying of SIGSEGV",
    ),
    (
        "thread",
        "limits::host_segfault_still_kills_the_process",
        "TSan's SEGV handler reports the deliberate crash (\"DEADLYSIGNAL\") and exits 66 \
         instead of dying of SIGSEGV",
    ),
];

/// The sanitizers, in the order they run.
const SANITIZERS: &[&str] = &["address", "thread"];

/// The flags for sanitizer `s`. ThreadSanitizer changes the ABI, and the
/// nightly refuses to link instrumented crates against the precompiled std
/// unless told to; that mismatch is exactly the uninstrumented-std caveat
/// the module docs describe.
///
/// `--cfg rustix_use_libc` makes rustix call `mmap`/`munmap` through libc,
/// where the sanitizers intercept them, instead of as raw system calls.
/// Without it TSan never learns that `CodeMemory` unmapped a module's
/// code, keeps the shadow of the freed range, and reports the next
/// module mapped at the same address (written by another thread) as a
/// race with the first (seen: `CodeMemory::new` against `CodeMemory::new`).
fn rustflags(s: &str) -> String {
    match s {
        "thread" => {
            "-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer --cfg rustix_use_libc"
                .to_string()
        }
        _ => format!("-Zsanitizer={s} --cfg rustix_use_libc"),
    }
}

pub(crate) fn parse(args: &[String]) -> Result<Vec<String>, Failure> {
    for a in args {
        if !SANITIZERS.contains(&a.as_str()) {
            return Err(Failure::Usage(format!(
                "unknown sanitizer `{a}` (known: {})",
                SANITIZERS.join(", ")
            )));
        }
    }
    Ok(if args.is_empty() {
        SANITIZERS.iter().map(|s| s.to_string()).collect()
    } else {
        args.to_vec()
    })
}

pub(crate) fn sanitize(root: &Path, which: &[String]) -> Result<(), Failure> {
    let target = "x86_64-unknown-linux-gnu";
    let mut failed = Vec::new();
    for s in which {
        let suppressions = root.join("sanitize/tsan-suppressions.txt");
        let (var, options) = match s.as_str() {
            "address" => (
                "ASAN_OPTIONS",
                // Kiln's own handler takes SIGSEGV/SIGILL from Wasm code and
                // forwards the rest to ASan's.
                "allow_user_segv_handler=1:detect_leaks=1:abort_on_error=0".to_string(),
            ),
            _ => (
                "TSAN_OPTIONS",
                format!(
                    "suppressions={}:halt_on_error=0:exitcode=66",
                    suppressions.display()
                ),
            ),
        };
        println!(
            "\n==> {var}=\"{options}\" RUSTFLAGS=\"{}\" cargo +nightly test -p kiln --test all --target {target}",
            rustflags(s)
        );
        let mut skip = Vec::new();
        for (sanitizer, test, reason) in SKIPPED {
            if sanitizer == s {
                println!("    skipping {test}: {reason}");
                skip.extend(["--skip", test]);
            }
        }
        let status = Command::new("nice")
            .args([
                "-n", "19", "cargo", "+nightly", "test", "-p", "kiln", "--test", "all",
            ])
            .args(["--target", target])
            .arg("--target-dir")
            .arg(root.join(format!("target/sanitize-{s}")))
            .arg("--")
            .args(&skip)
            .env("RUSTFLAGS", rustflags(s))
            .env("RUSTDOCFLAGS", rustflags(s))
            .env(var, options)
            .current_dir(root)
            .status()
            .map_err(|e| Failure::Failed(format!("running cargo: {e}")))?;
        if status.success() {
            println!("    {s}: clean");
        } else {
            println!("    {s}: FAILED ({status})");
            failed.push(s.clone());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Failed(format!(
            "sanitize: reports from {}",
            failed.join(", ")
        )))
    }
}
