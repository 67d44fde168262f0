//! `cargo xtask cross aarch64`: Kiln's tests, executed on AArch64 under
//! qemu-user, on an x86-64 Debian 12 machine.
//!
//! # The route
//!
//! Debian 12 ships a current Rust as `rustc-web`/`cargo-web` (kept up to
//! date for the browsers) together with its standard library for every
//! Debian architecture (`libstd-rust-web-dev`). Unpacking the amd64
//! compiler and the arm64 rlibs *of the same Debian version* into one tree
//! gives a rustc that cross-compiles to `aarch64-unknown-linux-gnu`, with no
//! rustup, no rust-src and no chroot. Debian's `gcc-aarch64-linux-gnu`
//! links, a static `qemu-aarch64` from `bookworm-backports` runs the test
//! binaries, and a `binfmt_misc` entry lets test binaries spawn aarch64
//! children (the CLI tests and `limits::host_segfault_still_kills_the_process`
//! do). `../shared/AARCH64.md` records how each piece was verified.
//!
//! Nothing here changes dpkg's architecture list or the host's apt
//! sources: the arm64 and backports packages come through private apt
//! states (own lists, own status file, own cache) under the tree and are
//! only unpacked. What apt-get *installs* on the host is the cross gcc, the
//! aarch64 glibc and what Debian's rustc and cargo need to start (read from
//! their `Depends`).
//!
//! # Why qemu 10 and the self-test
//!
//! bookworm's own qemu-user (7.2) keeps ~37 MiB of host memory for each
//! 6 GiB `PROT_NONE` reservation (what a 32-bit Wasm memory with its guard
//! takes) and never returns it: Kiln's spec suite ran the machine out of
//! memory. qemu 10 does not. The self-test builds a small aarch64 program
//! that makes 64 such reservations and fails if qemu's resident memory
//! grows past 1 GiB, so an old qemu is caught before the tests run; it
//! runs the program through binfmt_misc (as a test spawning a child does)
//! under both CPU models.
//!
//! # Target directories
//!
//! The cross build uses its own target directory, `target/cross`, so its
//! compiler (Debian's, a different rustc from the host's rustup one) never
//! invalidates the host build in `target/debug`. The AArch64 `kiln` binary
//! is copied to `target/aarch64-unknown-linux-gnu/debug/kiln`.
//!
//! # What runs
//!
//! `cargo test --workspace` under `QEMU_CPU=cortex-a53` (ARMv8.0, no LSE
//! atomics, no pointer authentication) and under `QEMU_CPU=max` (every
//! feature qemu has), with `KILN_TESTSUITE` passed on, so the spec suite
//! runs too; the pass counts of each are printed. The build treats any
//! compiler warning as a failure: a `cfg(target_arch = "aarch64")` item
//! that nothing uses is dead code there, and shows up only in this build.
//! Before that, the workspace is checked for the host with the same Debian
//! compiler, and with the exact Rust version the workspace declares
//! (`rust-version`, through rustup), so the declaration stays true.
//!
//! # `cargo xtask cross x86_64-old`: older x86-64 CPUs
//!
//! Cranelift picks instructions by the CPU's features, and some of
//! Cranelift's published bugs only showed on CPUs without AVX or SSSE3.
//! `x86_64-old` runs the API test suites (`kiln`'s `all` and
//! `wasmtime_compat`) on the host build, each test binary under the
//! bookworm-backports `qemu-x86_64` (fetched with `qemu-aarch64`) with
//! `-cpu Nehalem` (SSE4.2, no AVX) and `-cpu qemu64` (the x86-64
//! baseline: no SSSE3). Kiln detects the emulated CPU's features, so the
//! code under test is what such a machine would get, and its traps,
//! signal handling and backtraces run under qemu-user's signal emulation.
//! No cross compiler is involved, and the host build is reused.
//!
//! qemu-user cannot show everything: it keeps translated code coherent by
//! itself (a missing icache flush passes), it runs on the host's stronger
//! memory order, and it has the host's 4 KiB pages.

use crate::{is_root, workspace_root, Failure};
use std::env;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The target triple.
const TARGET: &str = "aarch64-unknown-linux-gnu";

/// Where the toolchain goes unless `KILN_CROSS_DIR` says otherwise.
const DEFAULT_DIR: &str = "/opt/kiln-cross";

/// The aarch64 glibc of `libc6-dev-arm64-cross`, for qemu's loader.
const QEMU_LD_PREFIX: &str = "/usr/aarch64-linux-gnu";

/// Host packages besides what Debian's rustc and cargo depend on.
const HOST_PACKAGES: &[&str] = &[
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "patchelf",
    "ca-certificates",
];

/// The name of the binfmt_misc entry.
const BINFMT_NAME: &str = "kiln-qemu-aarch64";

/// The oldest qemu major version that suits Kiln (see the module docs).
const MIN_QEMU_MAJOR: u32 = 10;

/// The two CPU models the tests run on.
const CPUS: &[(&str, &str)] = &[
    ("cortex-a53", "ARMv8.0, no LSE, no PAuth, no FP16"),
    ("max", "every feature qemu emulates"),
];

/// The older x86-64 CPU models `x86_64-old` runs the API tests on.
const OLD_X86_CPUS: &[(&str, &str)] = &[
    ("Nehalem", "SSE4.2, no AVX"),
    ("qemu64", "the x86-64 baseline: SSE3, no SSSE3"),
];

/// Runs `cargo xtask cross <args>`.
pub fn cross(args: &[String]) -> Result<(), Failure> {
    let mut setup_only = false;
    let mut arch = None;
    for a in args {
        match a.as_str() {
            "--setup-only" => setup_only = true,
            "aarch64" | "x86_64-old" if arch.is_none() => arch = Some(a.clone()),
            other => {
                return Err(Failure::Usage(format!(
                    "unknown argument `{other}` for `cross` (targets: `aarch64`, `x86_64-old`)"
                )))
            }
        }
    }
    let Some(arch) = arch else {
        return Err(Failure::Usage(
            "`cross` needs a target: `cargo xtask cross aarch64` or `cargo xtask cross x86_64-old`"
                .into(),
        ));
    };
    let started = Instant::now();
    let root = workspace_root();
    let dir = PathBuf::from(env::var("KILN_CROSS_DIR").unwrap_or_else(|_| DEFAULT_DIR.into()));
    if arch == "x86_64-old" {
        return old_x86(&root, &dir, setup_only, started);
    }

    step("setup");
    let t = Instant::now();
    let tc = setup(&dir)?;
    println!("    toolchain ready ({:.1?})", t.elapsed());
    println!("\nTo use it by hand:\n{}", tc.exports());
    if setup_only {
        return Ok(());
    }

    step("rust-version");
    let t = Instant::now();
    check_rust_version(&root, &tc)?;
    println!("    ok ({:.1?})", t.elapsed());

    step(&format!("build Kiln's tests for {TARGET}"));
    let t = Instant::now();
    build_tests(&root, &tc)?;
    let build_time = t.elapsed();
    println!("    built in {build_time:.1?}");

    let mut summary = Vec::new();
    for (cpu, what) in CPUS {
        step(&format!(
            "cargo test --workspace under QEMU_CPU={cpu} ({what})"
        ));
        let t = Instant::now();
        let counts = run_tests(&root, &tc, cpu)?;
        println!(
            "    QEMU_CPU={cpu}: {} passed, {} failed, {} ignored in {} test binaries ({:.1?})",
            counts.passed,
            counts.failed,
            counts.ignored,
            counts.binaries,
            t.elapsed()
        );
        summary.push((cpu, counts, t.elapsed()));
    }

    step("the AArch64 kiln binary");
    let bin = install_kiln_binary(&root)?;
    println!("    {}", bin.display());

    println!("\n==> cross aarch64 passed in {:.0?}", started.elapsed());
    println!("    build: {build_time:.0?}");
    for (cpu, c, t) in summary {
        println!(
            "    QEMU_CPU={cpu}: {} tests passed, {} ignored ({t:.0?})",
            c.passed, c.ignored
        );
    }
    Ok(())
}

/// `cargo xtask cross x86_64-old` (see the module docs).
fn old_x86(root: &Path, dir: &Path, setup_only: bool, started: Instant) -> Result<(), Failure> {
    step("setup: qemu-x86_64");
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).map_err(|e| failed(e.to_string()))?;
    let qemu = bin.join("qemu-x86_64");
    if qemu_major(&qemu).is_none_or(|m| m < MIN_QEMU_MAJOR) {
        fetch_qemu(dir, &bin.join("qemu-aarch64"))?;
    }
    match qemu_major(&qemu) {
        Some(m) if m >= MIN_QEMU_MAJOR => println!("    {} (major {m})", qemu.display()),
        m => return Err(failed(format!("qemu-x86_64 reports major version {m:?}"))),
    }
    if setup_only {
        return Ok(());
    }
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    step("build the API tests for the host");
    // The API suites: `all` (the advisory regressions among them) and
    // `wasmtime_compat`.
    const API_TESTS: &[&str] = &[
        "test",
        "-p",
        "kiln",
        "--test",
        "all",
        "--test",
        "wasmtime_compat",
    ];
    status(
        Command::new(&cargo)
            .current_dir(root)
            .args(API_TESTS)
            .arg("--no-run"),
    )?;
    let mut summary = Vec::new();
    for (cpu, what) in OLD_X86_CPUS {
        step(&format!(
            "kiln's API tests under qemu-x86_64 -cpu {cpu} ({what})"
        ));
        let t = Instant::now();
        let out = Command::new(&cargo)
            .current_dir(root)
            .args(API_TESTS)
            .env(
                "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER",
                format!("{} -cpu {cpu}", qemu.display()),
            )
            .stdin(Stdio::null())
            .output()
            .map_err(|e| failed(format!("could not run cargo: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        let passed: u64 = text
            .lines()
            .filter_map(|l| l.strip_prefix("test result: ok. "))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        if !out.status.success() || passed == 0 {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            return Err(failed(format!(
                "the API tests failed under qemu-x86_64 -cpu {cpu} ({})",
                out.status
            )));
        }
        println!("    -cpu {cpu}: {passed} passed ({:.1?})", t.elapsed());
        summary.push((cpu, passed, t.elapsed()));
    }
    println!("\n==> cross x86_64-old passed in {:.0?}", started.elapsed());
    for (cpu, passed, t) in summary {
        println!("    -cpu {cpu}: {passed} tests passed ({t:.0?})");
    }
    Ok(())
}

fn step(what: &str) {
    println!("\n==> cross: {what}");
    let _ = std::io::stdout().flush();
}

fn failed(msg: impl Into<String>) -> Failure {
    Failure::Failed(msg.into())
}

/// Runs `cmd`, failing with its stderr if it does not succeed; returns
/// its stdout.
fn output(cmd: &mut Command) -> Result<String, Failure> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(format!("could not run {shown}: {e}")))?;
    if !out.status.success() {
        return Err(failed(format!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with its output shown, failing if it does not succeed.
fn status(cmd: &mut Command) -> Result<(), Failure> {
    let shown = format!("{cmd:?}");
    let st = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| failed(format!("could not run {shown}: {e}")))?;
    if st.success() {
        Ok(())
    } else {
        Err(failed(format!("{shown} failed ({st})")))
    }
}

// ---------------------------------------------------------------------------
// setup
// ---------------------------------------------------------------------------

/// A set-up cross toolchain.
struct Toolchain {
    /// The unpacked `usr` of Debian's Rust.
    usr: PathBuf,
    /// The static qemu-aarch64.
    qemu: PathBuf,
    /// Debian's version of the Rust packages.
    debian_version: String,
}

impl Toolchain {
    fn rustc(&self) -> PathBuf {
        self.usr.join("bin/rustc")
    }

    fn cargo(&self) -> PathBuf {
        self.usr.join("bin/cargo")
    }

    /// The environment that makes Debian's cargo build for AArch64 and
    /// run what it builds under qemu.
    fn env(&self) -> Vec<(String, String)> {
        let path = format!(
            "{}:{}:{}",
            self.usr.join("bin").display(),
            self.qemu.parent().unwrap_or(Path::new("/")).display(),
            env::var("PATH").unwrap_or_default()
        );
        let up = TARGET.to_uppercase().replace('-', "_");
        let low = TARGET.replace('-', "_");
        vec![
            ("RUSTC".into(), self.rustc().display().to_string()),
            (
                "RUSTDOC".into(),
                self.usr.join("bin/rustdoc").display().to_string(),
            ),
            ("CARGO_BUILD_TARGET".into(), TARGET.into()),
            (
                format!("CARGO_TARGET_{up}_LINKER"),
                "aarch64-linux-gnu-gcc".into(),
            ),
            (
                format!("CARGO_TARGET_{up}_RUNNER"),
                self.qemu.display().to_string(),
            ),
            ("QEMU_LD_PREFIX".into(), QEMU_LD_PREFIX.into()),
            (format!("CC_{low}"), "aarch64-linux-gnu-gcc".into()),
            (format!("AR_{low}"), "aarch64-linux-gnu-ar".into()),
            ("PATH".into(), path),
        ]
    }

    /// The variables, as shell exports.
    fn exports(&self) -> String {
        let mut s = String::new();
        for (k, v) in self.env() {
            if k != "PATH" {
                s.push_str(&format!("  export {k}={v}\n"));
            }
        }
        s.push_str(&format!(
            "  export PATH={}:{}:$PATH; unset RUSTUP_TOOLCHAIN\n  export CARGO_TARGET_DIR=target/cross; cargo test --workspace",
            self.usr.join("bin").display(),
            self.qemu.parent().unwrap_or(Path::new("/")).display()
        ));
        s
    }

    /// Debian's cargo with `env` (for AArch64 when `cross`) and no trace of
    /// the rustup toolchain or of the cargo that runs xtask.
    fn cargo_cmd(&self, root: &Path, cross: bool) -> Command {
        let mut cmd = Command::new(self.cargo());
        cmd.current_dir(root);
        for k in ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTC_WRAPPER", "RUSTFLAGS"] {
            cmd.env_remove(k);
        }
        for (k, v) in self.env() {
            if cross || ["RUSTC", "RUSTDOC", "PATH"].contains(&k.as_str()) {
                cmd.env(k, v);
            }
        }
        cmd.env("CARGO_TARGET_DIR", root.join("target/cross"));
        cmd
    }
}

/// apt-get options for a private apt state in `state` (lists, status,
/// cache), optionally for another architecture or with its own sources.
fn private_apt(state: &Path, arch: Option<&str>, sources: Option<&Path>) -> Vec<String> {
    let s = state.display();
    let mut o = vec![
        format!("Dir::State={s}"),
        format!("Dir::State::status={s}/status"),
        format!("Dir::Cache={s}/cache"),
        "Debug::NoLocking=1".to_string(),
    ];
    if let Some(a) = arch {
        o.push(format!("APT::Architecture={a}"));
        o.push(format!("APT::Architectures::={a}"));
    }
    if let Some(src) = sources {
        o.push(format!("Dir::Etc::SourceList={}", src.display()));
        o.push(format!("Dir::Etc::SourceParts={s}/parts"));
    }
    o.into_iter().flat_map(|o| ["-o".to_string(), o]).collect()
}

fn make_state(state: &Path) -> Result<(), Failure> {
    for d in ["lists/partial", "cache/archives/partial", "parts"] {
        fs::create_dir_all(state.join(d))
            .map_err(|e| failed(format!("creating {}: {e}", state.display())))?;
    }
    let status = state.join("status");
    if !status.exists() {
        fs::write(&status, "").map_err(|e| failed(format!("{}: {e}", status.display())))?;
    }
    Ok(())
}

fn apt_get(opts: &[String]) -> Command {
    let mut c = Command::new("apt-get");
    c.args(opts)
        .arg("-q")
        .env("DEBIAN_FRONTEND", "noninteractive");
    c
}

fn apt_cache(opts: &[String]) -> Command {
    let mut c = Command::new("apt-cache");
    c.args(opts);
    c
}

/// The versions `apt-cache madison` lists for `package`.
fn versions(opts: &[String], package: &str) -> Result<Vec<String>, Failure> {
    let out = output(apt_cache(opts).args(["madison", package]))?;
    Ok(out
        .lines()
        .filter_map(|l| Some(l.split('|').nth(1)?.trim().to_string()))
        .collect())
}

/// Whether Debian version `a` is newer than `b`.
fn newer(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .is_ok_and(|s| s.success())
}

fn newest(mut v: Vec<String>) -> Option<String> {
    let mut best = v.pop()?;
    for x in v {
        if newer(&x, &best) {
            best = x;
        }
    }
    Some(best)
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// The packages a `.deb`'s `Depends` names (first of each alternative),
/// without those the route unpacks itself.
fn depends(deb: &Path) -> Result<Vec<String>, Failure> {
    let field = output(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Depends"))?;
    Ok(field
        .split(',')
        .filter_map(|d| {
            let first = d.split('|').next()?.trim();
            let name = first.split([' ', '(', ':']).next()?.trim();
            // A virtual package has to be named by its provider.
            let name = if name == "libc-dev" {
                "libc6-dev"
            } else {
                name
            };
            let ours = name.starts_with("rustc-web")
                || name.starts_with("cargo-web")
                || name.starts_with("libstd-rust-web");
            (!name.is_empty() && !ours).then(|| name.to_string())
        })
        .collect())
}

/// Makes sure the toolchain in `dir` is there and works; see the module
/// docs. Idempotent: what is there already is kept.
fn setup(dir: &Path) -> Result<Toolchain, Failure> {
    if !is_root() {
        return Err(failed(
            "`cross aarch64` installs packages and registers binfmt_misc: run it as root",
        ));
    }
    fs::create_dir_all(dir.join("bin")).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    let host: Vec<String> = vec!["-o".into(), "DPkg::Lock::Timeout=600".into()];

    // The host's lists, refreshed when they do not know Debian's Rust yet.
    if versions(&host, "rustc-web")?.is_empty() {
        status(apt_get(&host).arg("update"))?;
    }

    // arm64 lists through a private state.
    let arm = dir.join("apt/arm64");
    make_state(&arm)?;
    let arm_opts = private_apt(&arm, Some("arm64"), None);
    if versions(&arm_opts, "libstd-rust-web-dev")?.is_empty() {
        println!(
            "    fetching the arm64 package lists (private apt state in {})",
            arm.display()
        );
        status(apt_get(&arm_opts).arg("update"))?;
    }

    // The newest Rust that both architectures have. A new machine's host
    // lists may predate the security suite that carries the current
    // rustc-web: refresh them once when arm64 knows a version they lack.
    let arm_v = versions(&arm_opts, "libstd-rust-web-dev")?;
    let mut amd = versions(&host, "rustc-web")?;
    if newest(arm_v.clone()).is_some_and(|v| !amd.contains(&v)) {
        println!("    the host's package lists lack the newest rustc-web: apt-get update");
        status(apt_get(&host).arg("update"))?;
        amd = versions(&host, "rustc-web")?;
    }
    let both: Vec<String> = amd.iter().filter(|v| arm_v.contains(v)).cloned().collect();
    let version = newest(both.clone()).ok_or_else(|| {
        failed(format!(
            "no rustc-web version is available for both amd64 ({amd:?}) and arm64 ({arm_v:?})"
        ))
    })?;
    println!(
        "    rustc-web {version}: the newest of those available for both amd64 and arm64 {both:?}"
    );

    let tree = dir.join(format!("rust-{}", version.replace(['~', ':', '+'], "_")));
    let debs = dir.join("debs");
    fs::create_dir_all(&debs).map_err(|e| failed(format!("{}: {e}", debs.display())))?;
    if !tree.join(".complete").exists() {
        let _ = fs::remove_dir_all(&tree);
        let _ = fs::remove_dir_all(&debs);
        fs::create_dir_all(&debs).map_err(|e| failed(format!("{}: {e}", debs.display())))?;
        let minor = version.split('.').take(2).collect::<Vec<_>>().join(".");
        let pkgs = [
            "rustc-web".to_string(),
            "cargo-web".to_string(),
            "libstd-rust-web-dev".to_string(),
            format!("libstd-rust-web-{minor}"),
        ];
        let mut dl = apt_get(&host);
        dl.arg("download").current_dir(&debs);
        for p in &pkgs {
            dl.arg(format!("{p}={version}"));
        }
        status(&mut dl)?;
        // The arm64 rlibs go to their own folder (same file name stem).
        let arm_debs = debs.join("arm64");
        fs::create_dir_all(&arm_debs).map_err(|e| failed(e.to_string()))?;
        status(
            apt_get(&arm_opts)
                .arg("download")
                .arg(format!("libstd-rust-web-dev={version}"))
                .current_dir(&arm_debs),
        )?;
        // What rustc and cargo need on the host to start.
        let mut needed: Vec<String> = HOST_PACKAGES.iter().map(|s| s.to_string()).collect();
        for deb in deb_files(&debs)? {
            needed.extend(depends(&deb)?);
        }
        needed.sort();
        needed.dedup();
        install(&host, &needed)?;
        for deb in deb_files(&debs)?.into_iter().chain(deb_files(&arm_debs)?) {
            status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree))?;
        }
        // rustc finds its sysroot from its own path; its driver library
        // sits in the unpacked tree.
        let usr = tree.join("usr");
        for b in ["rustc", "rustdoc"] {
            status(
                Command::new("patchelf")
                    .args(["--set-rpath", "$ORIGIN/../lib/x86_64-linux-gnu"])
                    .arg(usr.join("bin").join(b)),
            )?;
        }
        fs::write(tree.join(".complete"), &version).map_err(|e| failed(e.to_string()))?;
    } else {
        // Already unpacked; the host packages may still be missing (a
        // tree copied from elsewhere).
        let missing: Vec<String> = HOST_PACKAGES
            .iter()
            .filter(|p| !installed(p))
            .map(|s| s.to_string())
            .collect();
        install(&host, &missing)?;
    }
    let current = dir.join("current");
    let _ = fs::remove_file(&current);
    std::os::unix::fs::symlink(tree.file_name().unwrap_or_default(), &current)
        .map_err(|e| failed(format!("{}: {e}", current.display())))?;

    let qemu = dir.join("bin/qemu-aarch64");
    if qemu_major(&qemu).is_none_or(|m| m < MIN_QEMU_MAJOR) {
        fetch_qemu(dir, &qemu)?;
    }
    register_binfmt(&qemu)?;

    let tc = Toolchain {
        usr: current.join("usr"),
        qemu,
        debian_version: version,
    };
    self_test(dir, &tc)?;
    Ok(tc)
}

fn deb_files(d: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut v: Vec<PathBuf> = fs::read_dir(d)
        .map_err(|e| failed(format!("{}: {e}", d.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    v.sort();
    Ok(v)
}

fn install(host: &[String], packages: &[String]) -> Result<(), Failure> {
    let missing: Vec<&String> = packages.iter().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "    apt-get install {}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    status(
        apt_get(host)
            .args(["install", "-y", "--no-install-recommends"])
            .args(missing),
    )
}

/// The major version `qemu --version` reports, if it runs.
fn qemu_major(qemu: &Path) -> Option<u32> {
    let out = Command::new(qemu).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = text.split("version ").nth(1)?;
    v.split('.').next()?.trim().parse().ok()
}

/// Downloads the newest `qemu-user` of `bookworm-backports` through a
/// private apt state whose only source is the host's Debian archive, and
/// installs its static `qemu-aarch64` as `qemu`.
fn fetch_qemu(dir: &Path, qemu: &Path) -> Result<(), Failure> {
    let state = dir.join("apt/backports");
    make_state(&state)?;
    let uris = output(Command::new("apt-get").args([
        "indextargets",
        "--format",
        "$(REPO_URI)|$(RELEASE)",
        "Created-By: Packages",
    ]))?;
    let uri = uris
        .lines()
        .find_map(|l| {
            let (u, r) = l.split_once('|')?;
            (r == "bookworm").then(|| u.to_string())
        })
        .ok_or_else(|| failed("the host's apt sources have no `bookworm` archive"))?;
    let sources = state.join("sources.list");
    fs::write(
        &sources,
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {uri} bookworm-backports main\n"
        ),
    )
    .map_err(|e| failed(e.to_string()))?;
    let opts = private_apt(&state, None, Some(&sources));
    println!(
        "    fetching bookworm-backports lists (private apt state in {})",
        state.display()
    );
    status(apt_get(&opts).arg("update"))?;
    let v = newest(versions(&opts, "qemu-user")?)
        .ok_or_else(|| failed("bookworm-backports has no qemu-user"))?;
    println!("    qemu-user {v} from bookworm-backports");
    let debs = state.join("debs");
    let _ = fs::remove_dir_all(&debs);
    fs::create_dir_all(&debs).map_err(|e| failed(e.to_string()))?;
    status(
        apt_get(&opts)
            .arg("download")
            .arg(format!("qemu-user={v}"))
            .current_dir(&debs),
    )?;
    let unpacked = debs.join("x");
    for deb in deb_files(&debs)? {
        status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    }
    // qemu-x86_64 comes along, for `x86_64-old`.
    for (from, to) in [
        ("usr/bin/qemu-aarch64", qemu.to_path_buf()),
        ("usr/bin/qemu-x86_64", qemu.with_file_name("qemu-x86_64")),
    ] {
        let tmp = to.with_extension("new");
        fs::copy(unpacked.join(from), &tmp)
            .map_err(|e| failed(format!("installing {from}: {e}")))?;
        fs::rename(&tmp, &to).map_err(|e| failed(e.to_string()))?;
    }
    match qemu_major(qemu) {
        Some(m) if m >= MIN_QEMU_MAJOR => Ok(()),
        m => Err(failed(format!(
            "qemu-aarch64 from bookworm-backports reports major version {m:?}; Kiln needs {MIN_QEMU_MAJOR} or later"
        ))),
    }
}

/// (Re)registers `qemu` with binfmt_misc for aarch64 ELF executables, so
/// a test can exec an aarch64 binary. Flag F: the kernel opens the
/// interpreter now (works in chroots, survives the file being replaced);
/// P and O: `argv[0]` preserved, the binary passed open. Registrations do
/// not survive a reboot, so this runs every time.
fn register_binfmt(qemu: &Path) -> Result<(), Failure> {
    let fs_dir = Path::new("/proc/sys/fs/binfmt_misc");
    if !fs_dir.join("register").exists() {
        status(Command::new("mount").args([
            "-t",
            "binfmt_misc",
            "binfmt_misc",
            "/proc/sys/fs/binfmt_misc",
        ]))?;
    }
    let entry = fs_dir.join(BINFMT_NAME);
    if entry.exists() {
        fs::write(&entry, "-1").map_err(|e| failed(format!("{}: {e}", entry.display())))?;
    }
    // The ELF header of an aarch64 executable: class 64, little-endian,
    // version 1, type EXEC or DYN (mask 0xfe), machine 0xb7.
    let magic = r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00";
    let mask = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
    let rule = format!(":{BINFMT_NAME}:M::{magic}:{mask}:{}:OPF", qemu.display());
    fs::write(fs_dir.join("register"), rule)
        .map_err(|e| failed(format!("registering {BINFMT_NAME} with binfmt_misc: {e}")))?;
    let state = fs::read_to_string(&entry).unwrap_or_default();
    if !state.starts_with("enabled") {
        return Err(failed(format!("binfmt_misc entry {BINFMT_NAME}: {state}")));
    }
    println!("    binfmt_misc: {BINFMT_NAME} -> {}", qemu.display());
    Ok(())
}

/// The self-test program: 64 reservations of 6 GiB, as 64 Wasm memories
/// take, then qemu's resident memory (qemu-user shows its own
/// `/proc/self/status`).
const PROBE: &str = r#"
use std::ffi::c_void;
extern "C" {
    fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> i32;
}
fn main() {
    const LEN: usize = 6 << 30;
    let mut maps = Vec::new();
    for _ in 0..64 {
        // PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE
        let p = unsafe { mmap(std::ptr::null_mut(), LEN, 0, 0x02 | 0x20 | 0x4000, -1, 0) };
        assert!(p as isize != -1, "mmap failed");
        maps.push(p);
    }
    for p in maps {
        unsafe { munmap(p, LEN) };
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    println!("rss_kib={kib}");
}
"#;

/// Builds [`PROBE`] for AArch64 with the new toolchain and runs it through
/// binfmt_misc (as a test's child process runs) on both CPU models.
fn self_test(dir: &Path, tc: &Toolchain) -> Result<(), Failure> {
    let work = dir.join("selftest");
    fs::create_dir_all(&work).map_err(|e| failed(e.to_string()))?;
    let src = work.join("probe.rs");
    fs::write(&src, PROBE).map_err(|e| failed(e.to_string()))?;
    let bin = work.join("probe");
    let version = output(Command::new(tc.rustc()).arg("--version"))?;
    println!("    {} (Debian {})", version.trim(), tc.debian_version);
    output(
        Command::new(tc.rustc())
            .args(["--edition", "2021", "-O", "--target", TARGET])
            .args(["-C", "linker=aarch64-linux-gnu-gcc", "-o"])
            .arg(&bin)
            .arg(&src),
    )?;
    let qv = output(Command::new(&tc.qemu).arg("--version"))?;
    println!("    {}", qv.lines().next().unwrap_or("").trim());
    for (cpu, _) in CPUS {
        let t = Instant::now();
        let out = output(
            Command::new(&bin)
                .env("QEMU_LD_PREFIX", QEMU_LD_PREFIX)
                .env("QEMU_CPU", cpu),
        )
        .map_err(|e| match e {
            Failure::Failed(m) => failed(format!(
                "self-test: the aarch64 probe does not run through binfmt_misc: {m}"
            )),
            e => e,
        })?;
        let kib: u64 = out
            .trim()
            .strip_prefix("rss_kib=")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| failed(format!("self-test: unexpected output {out:?}")))?;
        println!(
            "    self-test (QEMU_CPU={cpu}): 64 x 6 GiB reservations, qemu RSS {} MiB, {:.1?}",
            kib / 1024,
            t.elapsed()
        );
        if kib > 1 << 20 {
            return Err(failed(format!(
                "self-test: qemu kept {} MiB for 64 memory reservations; this qemu is too old \
                 for Kiln's tests (bookworm's 7.2 keeps ~37 MiB each), use qemu {MIN_QEMU_MAJOR}+",
                kib / 1024
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// rust-version
// ---------------------------------------------------------------------------

/// The `rust-version` the workspace declares.
fn declared_rust_version(root: &Path) -> Result<String, Failure> {
    let toml = fs::read_to_string(root.join("Cargo.toml")).map_err(|e| failed(e.to_string()))?;
    toml.lines()
        .find_map(|l| {
            let v = l
                .trim()
                .strip_prefix("rust-version")?
                .trim()
                .strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_string())
        })
        .ok_or_else(|| failed("the root Cargo.toml declares no rust-version"))
}

/// Checks the workspace (all targets, for the host) with the exact Rust
/// the workspace declares, through rustup, and with Debian's compiler;
/// cargo refuses to build a package whose `rust-version` is newer than
/// the compiler, so a dependency that needs a newer Rust fails here too.
fn check_rust_version(root: &Path, tc: &Toolchain) -> Result<(), Failure> {
    let declared = declared_rust_version(root)?;
    let full = if declared.matches('.').count() == 1 {
        format!("{declared}.0")
    } else {
        declared.clone()
    };
    println!("    declared rust-version = {declared}");
    // The declared version itself.
    let have = Command::new("rustup")
        .args(["run", &full, "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        println!("    rustup toolchain {full} missing: rustup toolchain install {full} --profile minimal");
        status(Command::new("rustup").args([
            "toolchain",
            "install",
            &full,
            "--profile",
            "minimal",
        ]))
        .map_err(|e| match e {
            Failure::Failed(m) => failed(format!(
                "the declared rust-version {declared} cannot be checked: {m}"
            )),
            e => e,
        })?;
    }
    println!("    cargo +{full} check --workspace --all-targets --locked");
    let mut c = Command::new("cargo");
    c.arg(format!("+{full}"))
        .args(["check", "--workspace", "--all-targets", "--locked"])
        .current_dir(root);
    for k in ["RUSTUP_TOOLCHAIN", "CARGO", "RUSTC", "RUSTDOC"] {
        c.env_remove(k);
    }
    status(&mut c)?;
    // Debian's compiler, for the host (the AArch64 build follows).
    println!("    Debian rustc-web: cargo check --workspace --all-targets --locked (target/cross)");
    status(
        tc.cargo_cmd(root, false)
            .args(["check", "--workspace", "--all-targets", "--locked"]),
    )
}

// ---------------------------------------------------------------------------
// build and run
// ---------------------------------------------------------------------------

/// Builds every test of the workspace for AArch64, failing on any compiler
/// warning (see the module docs).
fn build_tests(root: &Path, tc: &Toolchain) -> Result<(), Failure> {
    let mut cmd = tc.cargo_cmd(root, true);
    cmd.args(["test", "--workspace", "--locked", "--no-run"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("could not run Debian's cargo: {e}")))?;
    let mut warnings = Vec::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if line.starts_with("warning") {
                warnings.push(line);
            }
        }
    }
    let st = child.wait().map_err(|e| failed(e.to_string()))?;
    if !st.success() {
        return Err(failed(format!("the AArch64 test build failed ({st})")));
    }
    if !warnings.is_empty() {
        return Err(failed(format!(
            "the AArch64 build has warnings (dead aarch64-only code shows up here):\n  {}",
            warnings.join("\n  ")
        )));
    }
    Ok(())
}

/// What one `cargo test` run reported.
#[derive(Default, Debug)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
    binaries: u64,
}

/// Runs the workspace's tests under qemu with `QEMU_CPU=cpu`, showing
/// their output and adding up the `test result:` lines.
fn run_tests(root: &Path, tc: &Toolchain, cpu: &str) -> Result<Counts, Failure> {
    let mut cmd = tc.cargo_cmd(root, true);
    cmd.args(["test", "--workspace", "--locked", "--no-fail-fast"])
        .env("QEMU_CPU", cpu)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if env::var_os("KILN_TESTSUITE").is_none() {
        println!("    warning: KILN_TESTSUITE is not set: the spec suite will not run");
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("could not run Debian's cargo: {e}")))?;
    let mut c = Counts::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                c.binaries += 1;
                for part in rest.split(['.', ';']) {
                    let mut w = part.split_whitespace();
                    if let (Some(n), Some(what)) = (w.next(), w.next()) {
                        let n: u64 = n.parse().unwrap_or(0);
                        match what {
                            "passed" => c.passed += n,
                            "failed" => c.failed += n,
                            "ignored" => c.ignored += n,
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    let st = child.wait().map_err(|e| failed(e.to_string()))?;
    if !st.success() || c.failed != 0 {
        return Err(failed(format!(
            "tests failed under QEMU_CPU={cpu} ({st}; {} failed, {} passed)",
            c.failed, c.passed
        )));
    }
    if c.passed == 0 {
        return Err(failed(format!("no test ran under QEMU_CPU={cpu}")));
    }
    Ok(c)
}

/// Copies the `kiln` binary the test build made (the CLI tests run it) to
/// `target/aarch64-unknown-linux-gnu/debug/kiln`, checks that it is an
/// AArch64 executable, and runs it once through binfmt_misc. (A separate
/// `cargo build -p kiln-cli` would resolve dependency features without
/// the dev-dependencies and rebuild half the tree for the same binary.)
fn install_kiln_binary(root: &Path) -> Result<PathBuf, Failure> {
    let built = root.join("target/cross").join(TARGET).join("debug/kiln");
    let dest_dir = root.join("target").join(TARGET).join("debug");
    fs::create_dir_all(&dest_dir).map_err(|e| failed(e.to_string()))?;
    let dest = dest_dir.join("kiln");
    fs::copy(&built, &dest).map_err(|e| failed(format!("{}: {e}", built.display())))?;
    let head = fs::read(&dest).map_err(|e| failed(e.to_string()))?;
    if head.len() < 20 || &head[..4] != b"\x7fELF" || head[18] != 0xb7 || head[19] != 0 {
        return Err(failed(format!(
            "{} is not an AArch64 ELF file",
            dest.display()
        )));
    }
    let out = output(
        Command::new(&dest)
            .arg("run")
            .arg(root.join("examples/fib.wat"))
            .args(["--invoke", "fib", "20"])
            .env("QEMU_LD_PREFIX", QEMU_LD_PREFIX),
    );
    match out {
        Ok(o) if o.trim() == "6765" => {
            println!(
                "    kiln run examples/fib.wat --invoke fib 20 (AArch64, via binfmt_misc): 6765"
            )
        }
        Ok(o) => {
            return Err(failed(format!(
                "the AArch64 kiln printed {o:?} for fib 20, not 6765"
            )))
        }
        Err(Failure::Failed(m)) => {
            return Err(failed(format!("the AArch64 kiln binary does not run: {m}")))
        }
        Err(e) => return Err(e),
    }
    Ok(dest)
}
