//! The `kiln` binary, run as a user would: the bundled examples print
//! their results, traps and errors print one line and exit non-zero.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A scratch directory for one test, removed first if a previous run left it.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `kiln ARGS` in examples/ with a private compile cache, returning
/// (exit status, stdout, stderr).
fn kiln_status(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let cache = std::env::temp_dir().join(format!("kiln-cli-cache-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(examples())
        .env("XDG_CACHE_HOME", &cache)
        .envs(env.iter().copied())
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `kiln ARGS`, returning (success, stdout, stderr).
fn kiln(args: &[&str]) -> (bool, String, String) {
    let (code, out, err) = kiln_status(args, &[]);
    (code == 0, out, err)
}

#[test]
fn examples_print_their_results() {
    for (args, expected) in [
        (&["run", "--invoke", "fib", "fib.wat", "25"][..], "75025\n"),
        (
            &["run", "--invoke", "count_primes", "sieve.wat", "100000"],
            "9592\n",
        ),
        (
            &["run", "--invoke", "apply", "indirect.wat", "2", "7"],
            "49\n",
        ),
        (
            &["run", "--invoke", "apply", "indirect.wat", "3", "7"],
            "-7\n",
        ),
        (&["run", "--invoke", "div", "trap.wat", "7", "2"], "3\n"),
        (&["run", "hello.wat"], ""),
    ] {
        let (ok, out, err) = kiln(args);
        assert!(ok, "{args:?}: {err}");
        assert_eq!(out, expected, "{args:?}");
    }
}

#[test]
fn traps_print_one_line_and_a_backtrace() {
    for (args, message) in [
        (
            &["run", "--invoke", "div", "trap.wat", "1", "0"][..],
            "integer divide by zero",
        ),
        (
            &["run", "--invoke", "div", "trap.wat", "-2147483648", "-1"],
            "integer overflow",
        ),
        (
            &["run", "--invoke", "oob", "trap.wat"],
            "out of bounds memory access",
        ),
        (
            &["run", "--invoke", "boom", "trap.wat"],
            "wasm trap: wasm `unreachable` instruction executed",
        ),
        (
            &["run", "--invoke", "apply", "indirect.wat", "4", "7"],
            "out of bounds table access",
        ),
    ] {
        let (code, out, err) = kiln_status(args, &[]);
        // Wasmtime's status for a trap: 128 + SIGABRT.
        assert_eq!(code, 134, "{args:?}: {err}");
        assert!(out.is_empty());
        let first = err.lines().next().unwrap_or("");
        assert!(
            first.starts_with("error: ") && first.contains(message),
            "{args:?}: {err}"
        );
        assert!(err.contains("wasm backtrace:"), "{args:?}: {err}");
    }
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = scratch("bad");
    let bad = dir.join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x01\0\0\0\x01\xff").unwrap();
    let bad = bad.to_str().unwrap();
    for args in [
        &["run", "missing.wat"][..],
        &["run", bad],
        &["run", "--invoke", "nope", "fib.wat"],
        &["run", "--invoke", "fib", "fib.wat", "x"],
        &["run", "--invoke", "fib", "fib.wat"],
    ] {
        let (ok, out, err) = kiln(args);
        assert!(!ok, "{args:?} must fail");
        assert!(out.is_empty(), "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compile_then_run_the_artifact() {
    let dir = std::env::temp_dir().join(format!("kiln-cli-art-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let art = dir.join("fib.cwasm");
    let art = art.to_str().unwrap();
    let (ok, _, err) = kiln(&["compile", "fib.wat", "-o", art]);
    assert!(ok, "{err}");
    let (ok, out, err) = kiln(&["run", "--invoke", "fib", art, "20"]);
    assert!(ok, "{err}");
    assert_eq!(out, "6765\n");
    // An artifact for another target compiles, and refuses to run here.
    let other = if cfg!(target_arch = "aarch64") {
        "x86_64-unknown-linux-gnu"
    } else {
        "aarch64-unknown-linux-gnu"
    };
    let arm = dir.join("fib-other.cwasm");
    let arm = arm.to_str().unwrap();
    let (ok, _, err) = kiln(&["compile", "fib.wat", "-o", arm, "--target", other]);
    assert!(ok, "{err}");
    let (ok, _, err) = kiln(&["run", "--invoke", "fib", arm, "20"]);
    assert!(!ok && err.contains("incompatible"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wast_runs_scripts() {
    let dir = std::env::temp_dir().join(format!("kiln-cli-wast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("t.wast");
    std::fs::write(
        &script,
        r#"(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
           (assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
           (assert_trap (module (func $f unreachable) (start $f)) "unreachable")"#,
    )
    .unwrap();
    let (ok, out, err) = kiln(&["wast", script.to_str().unwrap()]);
    assert!(ok, "{err}");
    // The module directive counts as a passing directive too.
    assert_eq!(out.trim(), "3 passed, 0 failed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_subcommand_has_help_and_there_is_a_version() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["compile", "--help"],
        &["wast", "--help"],
    ] {
        let (ok, out, err) = kiln(args);
        assert!(ok, "{args:?}: {err}");
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
    let (ok, out, _) = kiln(&["run", "--help"]);
    assert!(ok);
    for flag in [
        "--dir",
        "--env",
        "--invoke",
        "--preload",
        "--argv0",
        "--fuel",
        "--timeout",
        "-W",
        "--no-cache",
        "--enable",
    ] {
        assert!(out.contains(flag), "run --help lacks {flag}: {out}");
    }
    let (ok, out, _) = kiln(&["--version"]);
    assert!(ok);
    assert_eq!(out.trim(), format!("kiln {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_flags_and_commands_are_clear_errors() {
    for (args, what) in [
        (&["frobnicate"][..], "frobnicate"),
        (&["run", "--frobnicate", "hello-wasi.wat"], "--frobnicate"),
        (&["compile", "fib.wat", "-o", "x", "--bogus"], "--bogus"),
        (&["run"], "FILE"),
    ] {
        let (code, out, err) = kiln_status(args, &[]);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(
            err.starts_with("error: ") && err.contains(what),
            "{args:?}: {err}"
        );
    }
    // After FILE, flags belong to the guest.
    let (code, out, err) = kiln_status(&["run", "hello-wasi.wat", "--frobnicate"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Hello, world!\n");
}

#[test]
fn wasi_hello_world_prints_and_exits_zero() {
    let (code, out, err) = kiln_status(&["run", "hello-wasi.wat"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Hello, world!\n");
}

/// A guest that calls `proc_exit` with its first argument, printing its
/// arguments, an environment variable and a file's contents first.
const PROBE: &str = r#"
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $asz (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; Prints argv (NUL-separated, as WASI lays it out) and exits with
  ;; the number of arguments.
  (func (export "_start")
    (drop (call $asz (i32.const 0) (i32.const 4)))
    (drop (call $args (i32.const 16) (i32.const 1024)))
    (i32.store (i32.const 8) (i32.const 1024))
    (i32.store (i32.const 12) (i32.load (i32.const 4)))
    (drop (call $write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 100)))
    (call $exit (i32.load (i32.const 0))))
  (func (export "answer") (result i32) (i32.const 42))
  ;; argc plus the argument.
  (func (export "argc") (param i32) (result i32)
    (drop (call $asz (i32.const 0) (i32.const 4)))
    (i32.add (i32.load (i32.const 0)) (local.get 0)))
  (global $inited (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $inited (i32.const 7)))
  (func (export "inited") (result i32) (global.get $inited)))
"#;

#[test]
fn exit_status_argv0_and_invoke() {
    let dir = scratch("probe");
    let probe = dir.join("probe.wat");
    std::fs::write(&probe, PROBE).unwrap();
    let p = probe.to_str().unwrap();
    // `_start` runs (after `_initialize`), sees argv, exits with argc;
    // argv[0] is FILE's last component, as under `wasmtime run`.
    let (code, out, err) = kiln_status(&["run", p, "a", "--b"], &[]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "probe.wat\0a\0--b\0");
    let (code, out, _) = kiln_status(&["run", "--argv0", "prog", p], &[]);
    assert_eq!(code, 1);
    assert_eq!(out, "prog\0");
    // --invoke calls `_initialize` first.
    let (code, out, err) = kiln_status(&["run", "--invoke", "inited", p], &[]);
    assert_eq!((code, out.as_str()), (0, "7\n"), "{err}");
    let (code, out, _) = kiln_status(&["run", "--invoke", "answer", p], &[]);
    assert_eq!((code, out.as_str()), (0, "42\n"));
    // With --invoke the arguments are the function's and still the
    // guest's argv (3 here: probe.wat, 100, extra); extra ones are only
    // argv; 0x is hexadecimal.
    let (code, out, err) = kiln_status(&["run", "--invoke", "argc", p, "100", "extra"], &[]);
    assert_eq!((code, out.as_str()), (0, "103\n"), "{err}");
    let (code, out, err) = kiln_status(&["run", "--invoke", "argc", p, "0x10"], &[]);
    assert_eq!((code, out.as_str()), (0, "18\n"), "{err}");
    let (code, _, err) = kiln_status(&["run", "--invoke", "argc", p], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("not enough arguments for `argc`"), "{err}");
    let (code, _, err) = kiln_status(&["run", "--invoke", "nope", p], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("no func export named `nope` found"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn what_runs_is_what_wasmtime_runs() {
    let dir = scratch("what");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // `_initialize` runs before `_start`.
    let both = write(
        "both.wat",
        r#"(module
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (global $g (mut i32) (i32.const 0))
          (func (export "_initialize") (global.set $g (i32.const 7)))
          (func (export "_start") (call $exit (global.get $g))))"#,
    );
    assert_eq!(kiln_status(&["run", &both], &[]).0, 7);
    // The export named "" is the command default too.
    let empty = write(
        "empty.wat",
        r#"(module
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (func (export "") (call $exit (i32.const 5))))"#,
    );
    assert_eq!(kiln_status(&["run", &empty], &[]).0, 5);
    // Neither: instantiating is running (the start function, if any).
    let (code, out, err) = kiln_status(&["run", "fib.wat"], &[]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    let start = write("start.wat", r#"(module (func $s unreachable) (start $s))"#);
    assert_eq!(kiln_status(&["run", &start], &[]).0, 134);
    // Results print as under `wasmtime run --invoke`.
    let results = write(
        "results.wat",
        r#"(module
          (func (export "v") (result v128) (v128.const i64x2 1 0))
          (func (export "r") (result funcref) (ref.null func))
          (func (export "e") (result externref) (ref.null extern))
          (func (export "f") (result f64) (f64.const 2.5)))"#,
    );
    for (f, want) in [
        ("v", "1\n"),
        ("r", "<null funcref>\n"),
        ("e", "<null externref>\n"),
        ("f", "2.5\n"),
    ] {
        let (code, out, err) = kiln_status(&["run", "--invoke", f, &results], &[]);
        assert_eq!((code, out.as_str()), (0, want), "{f}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Prints the name of preopen 3 (or "none").
const PRESTAT: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 200) "none")
  (func (export "_start")
    (i32.store (i32.const 100) (i32.const 200))
    (i32.store (i32.const 104) (i32.const 4))
    (if (i32.eqz (call $get (i32.const 3) (i32.const 0)))
      (then
        (drop (call $name (i32.const 3) (i32.const 200) (i32.load (i32.const 4))))
        (i32.store (i32.const 104) (i32.load (i32.const 4)))))
    (drop (call $write (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108)))))
"#;

#[test]
fn dir_and_wasi_options_use_wasmtimes_spellings() {
    let dir = scratch("dirs");
    let prestat = dir.join("prestat.wat");
    std::fs::write(&prestat, PRESTAT).unwrap();
    let p = prestat.to_str().unwrap();
    let host = dir.to_str().unwrap();
    for (d, want) in [
        (host.to_string(), host.to_string()),
        (format!("{host}::/g"), "/g".to_string()),
        // As Wasmtime 48: a second `::` and what follows are ignored.
        (format!("{host}::/g::x"), "/g".to_string()),
    ] {
        let (code, out, err) = kiln_status(&["run", "--dir", &d, p], &[]);
        assert_eq!((code, out), (0, want), "{d}: {err}");
    }
    let (code, out, _) = kiln_status(&["run", p], &[]);
    assert_eq!((code, out.as_str()), (0, "none"));
    let (code, _, err) = kiln_status(&["run", "--dir", "/no/such/dir", p], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("/no/such/dir"), "{err}");

    // -S: comma-separated or repeated.
    let (code, out, err) = kiln_status(&["run", "-S", "inherit-stdout=n", "hello-wasi.wat"], &[]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (code, out, err) = kiln_status(
        &[
            "run",
            "-S",
            "inherit-env,inherit-stdout=y",
            "hello-wasi.wat",
        ],
        &[],
    );
    assert_eq!((code, out.as_str()), (0, "Hello, world!\n"), "{err}");
    // -S cli=n: no WASI at all.
    let (code, _, err) = kiln_status(&["run", "-S", "cli=n", "hello-wasi.wat"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown import"), "{err}");
    for (opt, what) in [
        ("preview2=n", "-Spreview2=n"),
        ("bogus", "unknown WASI option `bogus`"),
        ("inherit-env=maybe", "expected y or n"),
    ] {
        let (code, _, err) = kiln_status(&["run", "-S", opt, "hello-wasi.wat"], &[]);
        assert_eq!(code, 1, "{opt}");
        assert!(
            err.starts_with("error: ") && err.contains(what),
            "{opt}: {err}"
        );
    }
    // --allow-precompiled is accepted.
    let (code, out, err) = kiln_status(&["run", "--allow-precompiled", "hello-wasi.wat"], &[]);
    assert_eq!((code, out.as_str()), (0, "Hello, world!\n"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn env_name_inherits_and_refuses_non_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["run", "--no-cache", "--env", "KILN_BAD", "hello-wasi.wat"])
        .current_dir(examples())
        .env("KILN_BAD", std::ffi::OsStr::from_bytes(b"\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`KILN_BAD` not valid utf-8"), "{err}");
}

#[test]
fn fuel_and_timeout_stop_a_loop_with_the_trap_status() {
    let dir = scratch("loop");
    let spin = dir.join("spin.wat");
    std::fs::write(
        &spin,
        r#"(module (func (export "_start") (loop $l (br $l))))"#,
    )
    .unwrap();
    let s = spin.to_str().unwrap();
    for args in [
        &["run", "--fuel", "10000", s][..],
        &["run", "-W", "fuel=10000", s],
        &["run", "-W", "fuel=10_000", s],
        &["run", "--timeout", "200ms", s],
        &["run", "-W", "timeout=0.2s", s],
        &["run", "-W", "tail-call,timeout=200ms", s],
    ] {
        let (code, _, err) = kiln_status(args, &[]);
        assert_eq!(code, 134, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
    let (code, _, err) = kiln_status(&["run", "--timeout", "soon", s], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid duration"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes "out\n" to stdout and "err\n" to stderr, then ends as its
/// export says: `exit` (proc_exit 7), `trap` (unreachable), `spin` (a
/// loop) or `sleep` (poll_oneoff on a 60 s clock).
const ENDINGS: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1000) "out\n")
  (data (i32.const 1004) "err\n")
  (func $say
    (i32.store (i32.const 900) (i32.const 1000))
    (i32.store (i32.const 904) (i32.const 4))
    (drop (call $write (i32.const 1) (i32.const 900) (i32.const 1) (i32.const 950)))
    (i32.store (i32.const 900) (i32.const 1004))
    (drop (call $write (i32.const 2) (i32.const 900) (i32.const 1) (i32.const 950))))
  (func (export "exit") (call $say) (call $exit (i32.const 7)))
  (func (export "trap") (call $say) unreachable)
  (func (export "spin") (call $say) (loop $l (br $l)))
  (func (export "sleep")
    (call $say)
    ;; One clock subscription: tag 0 at 8, clock id 1 (monotonic) at 16,
    ;; timeout 60 s at 24.
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 60000000000))
    (drop (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))
"#;

#[test]
fn output_is_complete_on_every_exit_path() {
    let dir = scratch("endings");
    let m = dir.join("endings.wat");
    std::fs::write(&m, ENDINGS).unwrap();
    let m = m.to_str().unwrap();
    for (func, extra, code) in [
        ("exit", &[][..], 7),
        ("trap", &[], 134),
        ("spin", &["-W", "timeout=200ms"], 134),
        // Blocked in a host call: the timeout still ends the run on time.
        ("sleep", &["-W", "timeout=300ms"], 134),
    ] {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--invoke", func, m]);
        let t = std::time::Instant::now();
        let (got, out, err) = kiln_status(&args, &[]);
        assert_eq!(got, code, "{func}: {err}");
        assert_eq!(out, "out\n", "{func}");
        assert!(err.starts_with("err\n"), "{func}: {err}");
        if code == 134 {
            assert!(err.contains("error: "), "{func}: {err}");
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "{func} took {:?}",
            t.elapsed()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn preload_satisfies_imports() {
    let dir = scratch("preload");
    let lib = dir.join("lib.wat");
    std::fs::write(&lib, r#"(module (func (export "triple") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3))))"#).unwrap();
    let main = dir.join("main.wat");
    std::fs::write(&main, r#"(module (import "lib" "triple" (func $t (param i32) (result i32))) (func (export "run") (param i32) (result i32) (call $t (local.get 0))))"#).unwrap();
    let preload = format!("lib={}", lib.display());
    let (code, out, err) = kiln_status(
        &[
            "run",
            "--preload",
            &preload,
            "--invoke",
            "run",
            main.to_str().unwrap(),
            "14",
        ],
        &[],
    );
    assert_eq!((code, out.as_str()), (0, "42\n"), "{err}");
    let (code, _, err) = kiln_status(
        &["run", "--invoke", "run", main.to_str().unwrap(), "1"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("unknown import"), "{err}");
    // A preloaded reactor is initialized before its exports are used.
    let reactor = dir.join("reactor.wat");
    std::fs::write(&reactor, r#"(module
        (global $g (mut i32) (i32.const 0))
        (func (export "_initialize") (global.set $g (i32.const 3)))
        (func (export "triple") (param i32) (result i32) (i32.mul (local.get 0) (global.get $g))))"#).unwrap();
    let preload = format!("lib={}", reactor.display());
    let (code, out, err) = kiln_status(
        &[
            "run",
            "--preload",
            &preload,
            "--invoke",
            "run",
            main.to_str().unwrap(),
            "5",
        ],
        &[],
    );
    assert_eq!((code, out.as_str()), (0, "15\n"), "{err}");
    let (code, _, err) = kiln_status(&["run", "--preload", "nonsense", "fib.wat"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("exactly one equals"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn compile_cache_is_filled_reused_and_repaired() {
    let dir = scratch("cache");
    let cache = dir.join("cache");
    let env = [("XDG_CACHE_HOME", cache.to_str().unwrap())];
    let run = || kiln_status(&["run", "hello-wasi.wat"], &env);
    let entries = || -> Vec<PathBuf> {
        match std::fs::read_dir(cache.join("kiln")) {
            Ok(d) => d.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    };
    // --no-cache leaves nothing behind.
    let (code, _, _) = kiln_status(&["run", "--no-cache", "hello-wasi.wat"], &env);
    assert_eq!(code, 0);
    assert!(entries().is_empty());
    assert_eq!(run().0, 0);
    let e = entries();
    assert_eq!(e.len(), 1, "{e:?}");
    let good = std::fs::read(&e[0]).unwrap();
    // A hit runs the same.
    assert_eq!(run(), (0, "Hello, world!\n".into(), String::new()));
    // A damaged entry (one bit of code flipped, a truncation, a foreign
    // file) is ignored and replaced by a whole one.
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    for bad in [
        flipped,
        good[..good.len() / 3].to_vec(),
        b"not an entry".to_vec(),
    ] {
        std::fs::write(&e[0], &bad).unwrap();
        assert_eq!(run(), (0, "Hello, world!\n".into(), String::new()));
        assert_eq!(std::fs::read(&e[0]).unwrap(), good);
    }
    // Different settings compile into a different entry.
    let (code, _, _) = kiln_status(&["run", "--fuel", "1000000", "hello-wasi.wat"], &env);
    assert_eq!(code, 0);
    assert_eq!(entries().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Compiles `crates/wasi/tests/programs/NAME.c` to wasm32-wasi with
/// Debian's clang (see the README), into `dir`.
fn c_program(name: &str, dir: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../wasi/tests/programs")
        .join(format!("{name}.c"));
    let out = dir.join(format!("{name}.wasm"));
    let status = Command::new("clang")
        .args(["--target=wasm32-wasi", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("clang runs (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)");
    assert!(status.success(), "clang failed on {}", src.display());
    out
}

#[test]
fn c_programs_see_dirs_env_and_exit_like_under_wasmtime() {
    let dir = scratch("c");
    let sb = dir.join("sb");
    std::fs::create_dir_all(&sb).unwrap();
    let args_env = c_program("args_env", &dir);
    let files = c_program("files", &dir);
    let exit = c_program("exit", &dir);
    let a = args_env.to_str().unwrap();
    let host_path = std::env::var("PATH").unwrap();
    let (code, out, err) = kiln_status(
        &[
            "run",
            "--env",
            "A=1",
            "--env",
            "PATH",
            "--env",
            "UNSET_HERE",
            a,
            "x",
            "-y",
        ],
        &[("UNSET_HERE", "")],
    );
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        out,
        // argv[0] is FILE's last component, as under `wasmtime run`.
        format!(
            "arg=args_env.wasm\narg=x\narg=-y\nenv=A=1\nenv=PATH={host_path}\nenv=UNSET_HERE=\n"
        )
    );
    let dir_arg = format!("{}::/sb", sb.display());
    let (code, out, err) = kiln_status(&["run", "--dir", &dir_arg, files.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(sb.join("log.txt").exists());
    // Without the directory the same program cannot open anything.
    let (code, _, _) = kiln_status(&["run", files.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    let (code, out, _) = kiln_status(&["run", exit.to_str().unwrap(), "42"], &[]);
    assert_eq!((code, out.as_str()), (42, "bye"));
    let (code, out, err) = kiln_status(&["run", exit.to_str().unwrap(), "abort"], &[]);
    assert_eq!((code, out.as_str()), (134, "bye"));
    assert!(
        err.contains("unreachable") && err.contains("wasm backtrace:"),
        "{err}"
    );
    // A precompiled artifact runs the same way.
    let art = dir.join("exit.cwasm");
    let (ok, _, err) = kiln(&[
        "compile",
        exit.to_str().unwrap(),
        "-o",
        art.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (code, out, _) = kiln_status(&["run", art.to_str().unwrap(), "9"], &[]);
    assert_eq!((code, out.as_str()), (9, "bye"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn poll_waits_on_the_hosts_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = scratch("poll");
    let poll = c_program("poll", &dir);
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["run", "--no-cache", poll.to_str().unwrap(), "300"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Nothing written, pipe open: the 300 ms timeout fires.
    let mut child = spawn();
    let t = std::time::Instant::now();
    let stdin = child.stdin.take().unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(t.elapsed() >= std::time::Duration::from_millis(250));
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.starts_with("timeout\n"), "{out}");
    // Data written: ready at once.
    let mut child = spawn();
    child.stdin.take().unwrap().write_all(b"abc").unwrap();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.starts_with("ready read=abc\n"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
