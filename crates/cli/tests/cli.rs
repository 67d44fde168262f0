//! The `kiln` binary, run as a user would: the bundled examples print
//! their results, traps and errors print one line and exit non-zero.

use std::path::PathBuf;
use std::process::Command;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Runs `kiln ARGS`, returning (success, stdout, stderr).
fn kiln(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(examples())
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn examples_print_their_results() {
    for (args, expected) in [
        (&["run", "fib.wat", "--invoke", "fib", "25"][..], "75025\n"),
        (
            &["run", "sieve.wat", "--invoke", "count_primes", "100000"],
            "9592\n",
        ),
        (
            &["run", "indirect.wat", "--invoke", "apply", "2", "7"],
            "49\n",
        ),
        (
            &["run", "indirect.wat", "--invoke", "apply", "3", "7"],
            "-7\n",
        ),
        (&["run", "trap.wat", "--invoke", "div", "7", "2"], "3\n"),
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
            &["run", "trap.wat", "--invoke", "div", "1", "0"][..],
            "integer divide by zero",
        ),
        (
            &["run", "trap.wat", "--invoke", "div", "-2147483648", "-1"],
            "integer overflow",
        ),
        (
            &["run", "trap.wat", "--invoke", "oob"],
            "out of bounds memory access",
        ),
        (
            &["run", "trap.wat", "--invoke", "boom"],
            "wasm trap: unreachable",
        ),
        (
            &["run", "indirect.wat", "--invoke", "apply", "4", "7"],
            "out of bounds table access",
        ),
    ] {
        let (ok, out, err) = kiln(args);
        assert!(!ok, "{args:?} must fail");
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
    let dir = std::env::temp_dir().join(format!("kiln-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x01\0\0\0\x01\xff").unwrap();
    let bad = bad.to_str().unwrap();
    for args in [
        &["run", "missing.wat"][..],
        &["run", bad],
        &["run", "fib.wat", "--invoke", "nope"],
        &["run", "fib.wat", "--invoke", "fib", "x"],
        &["run", "fib.wat", "--invoke", "fib"],
        &["run", "fib.wat"],
        &["frobnicate"],
    ] {
        let (ok, out, err) = kiln(args);
        assert!(!ok, "{args:?} must fail");
        assert!(out.is_empty(), "{args:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") || args == ["frobnicate"],
            "{args:?}: {err}"
        );
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
    let (ok, out, err) = kiln(&["run", art, "--invoke", "fib", "20"]);
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
    let (ok, _, err) = kiln(&["run", arm, "--invoke", "fib", "20"]);
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
