//! The workloads: what each benchmark runs, as bytes every runtime gets
//! unchanged. Hand-written modules live in `src/workloads/*.wat`; the
//! large ones are generated here; the C programs in `../c/` are compiled
//! at bench time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

/// Wasm bytes shared between runtimes.
pub type Wasm = Arc<Vec<u8>>;

/// What a benchmark does; every [`crate::Runtime`] interprets it the same
/// way (see the `Runtime` impls for the exact API calls).
pub enum Kind {
    /// `TypedFunc::call` (`typed`) or `Func::call` of `calls.wat`'s `inc`;
    /// one iteration is one call.
    HostToWasm { typed: bool },
    /// `calls.wat`'s `call_host(iters)`: a Wasm loop calling the imported
    /// `host.inc`, defined with `func_wrap` (`typed`) or `func_new`; one
    /// iteration is one call of the host function.
    WasmToHost { typed: bool },
    /// `caller.wat`'s `call_import(iters)`, which calls `callee.wat`'s
    /// `inc` through an import; one iteration is one call.
    WasmToWasm,
    /// `init(arg)` once if `init` is set, then every iteration is one
    /// `run(arg) -> i64`; every runtime must return `expect` (or the same
    /// value as the others when `expect` is `None`).
    Compute {
        wasm: Wasm,
        init: Option<i32>,
        arg: i32,
        expect: Option<i64>,
        /// Run with this execution budget switched on (and never running
        /// out), to measure what bounding execution costs.
        budget: Budget,
    },
    /// One iteration compiles the module (`Module::new` on binary bytes,
    /// dropped again).
    Compile { wasm: Wasm },
    /// One iteration loads a serialized module: from bytes
    /// (`Module::deserialize`), or, with `from_file`, from a file
    /// (`Module::deserialize_file`, which maps it).
    Load { wasm: Wasm, from_file: bool },
    /// One iteration creates a `Store`, instantiates through an
    /// `InstancePre` (host functions `host.f1: [i32] -> [i32]` and
    /// `host.f2: [i64] -> []` are defined) and drops the store. The check
    /// value is the sum of the bytes of the exported `memory` at `probes`.
    /// With `threads > 1`, the iterations of a sample are shared out
    /// between that many threads, each with its own stores, instantiating
    /// from one `InstancePre` at once: the time per iteration is then the
    /// inverse of the throughput.
    Instantiate {
        wasm: Wasm,
        pooling: bool,
        probes: Vec<usize>,
        threads: usize,
    },
    /// The size of one part of the compiled artifact, in bytes.
    Size { wasm: Wasm, part: SizePart },
    /// A WASI preview1 command (Kiln: `kiln-wasi`; Wasmtime:
    /// `wasmtime-wasi`'s preview1 with a `WasiP1Ctx`), argv `["prog"]`,
    /// stdout captured in memory, `dir` (if any) preopened as `/sandbox`
    /// with every permission. One iteration builds a WASI context and a
    /// store, instantiates and runs `_start`, which must exit with 0. With
    /// `end_to_end`, it also loads the module from its serialized file (what
    /// a compile-cache hit does) and builds the linker with every WASI
    /// function, as a `run` command does; otherwise both are made once.
    /// The check value is the number the program prints, or with `stdout`
    /// the length of what it prints, which must be exactly `stdout`.
    Wasi {
        wasm: Wasm,
        dir: Option<Arc<ScratchDir>>,
        end_to_end: bool,
        stdout: Option<&'static str>,
    },
}

/// A host directory for a workload, removed when the last user drops it.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    /// A fresh, empty directory under the system's temporary directory.
    pub fn new(name: &str) -> Result<ScratchDir, String> {
        let path = std::env::temp_dir().join(format!("kiln-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a WASI workload printed, as its check value.
pub fn wasi_check(out: &[u8], stdout: Option<&str>) -> Result<i64, String> {
    let text = String::from_utf8_lossy(out);
    match stdout {
        Some(want) if text == want => Ok(out.len() as i64),
        Some(want) => Err(format!("printed {text:?}, expected {want:?}")),
        None => text
            .trim()
            .parse()
            .map_err(|_| format!("printed {text:?}, expected a number")),
    }
}

/// An execution budget a compute workload runs under.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Budget {
    /// None: the default configuration.
    Off,
    /// `Config::consume_fuel` with a budget that never runs out.
    Fuel,
    /// `Config::epoch_interruption` with a deadline that never passes.
    Epoch,
}

/// A part of a compiled artifact.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SizePart {
    /// The machine code (`Module::text()`).
    Text,
    /// The unwind information (the artifact's `.eh_frame` section).
    Unwind,
    /// The whole artifact: Kiln's ELF object, Wasmtime's serialized module.
    Total,
}

/// A named benchmark; `build` makes its [`Kind`] only when it is selected.
pub struct Workload {
    pub name: String,
    pub build: Box<dyn FnOnce() -> Result<Kind, String>>,
}

fn wat(name: &str, text: &str) -> Wasm {
    Arc::new(wat::parse_str(text).unwrap_or_else(|e| panic!("{name}: {e}")))
}

pub const CALLS: &str = include_str!("workloads/calls.wat");
pub const CALLEE: &str = include_str!("workloads/callee.wat");
pub const CALLER: &str = include_str!("workloads/caller.wat");
const FIB: &str = include_str!("workloads/fib.wat");
const SIEVE: &str = include_str!("workloads/sieve.wat");
const MATMUL: &str = include_str!("workloads/matmul.wat");
const HASH: &str = include_str!("workloads/hash.wat");
const SMALL: &str = include_str!("workloads/small.wat");
const IMPORTS_TABLE100: &str = include_str!("workloads/imports_table100.wat");

/// The binary of a `.wat` workload, parsed once.
pub fn calls_wasm() -> Wasm {
    static W: OnceLock<Wasm> = OnceLock::new();
    W.get_or_init(|| wat("calls.wat", CALLS)).clone()
}

/// `callee.wat` (module A of `call/wasm-to-wasm-import`).
pub fn callee_wasm() -> Wasm {
    static W: OnceLock<Wasm> = OnceLock::new();
    W.get_or_init(|| wat("callee.wat", CALLEE)).clone()
}

/// `caller.wat` (module B of `call/wasm-to-wasm-import`).
pub fn caller_wasm() -> Wasm {
    static W: OnceLock<Wasm> = OnceLock::new();
    W.get_or_init(|| wat("caller.wat", CALLER)).clone()
}

/// A module of `n` small functions; function `i` calls function `i + 1`
/// (so nothing is dead code), every 50th is exported.
pub fn many_funcs(n: usize) -> Wasm {
    static W: OnceLock<Wasm> = OnceLock::new();
    assert_eq!(n, 2000, "cached for one size");
    W.get_or_init(|| {
        let mut s = String::from("(module\n  (memory 1)\n");
        for i in 0..n {
            let export = if i % 50 == 0 {
                format!(" (export \"f{i}\")")
            } else {
                String::new()
            };
            let _ = writeln!(s, "  (func $f{i}{export} (param i32) (result i32)");
            if i + 1 < n {
                let _ = writeln!(
                    s,
                    "    (if (result i32) (i32.lt_s (local.get 0) (i32.const 1))\n\
                     \x20     (then (i32.mul (local.get 0) (i32.const {i})))\n\
                     \x20     (else (i32.add\n\
                     \x20       (call $f{next} (i32.sub (local.get 0) (i32.const 1)))\n\
                     \x20       (i32.load (i32.and (i32.xor (local.get 0) (i32.const {k})) (i32.const 0xfffc)))))))",
                    next = i + 1,
                    k = i * 31,
                );
            } else {
                let _ = writeln!(s, "    (i32.mul (local.get 0) (i32.const {i})))");
            }
        }
        s.push(')');
        wat("2000-funcs", &s)
    })
    .clone()
}

/// A module with `n` call sites: 100 functions of `n / 100` calls each to
/// ten small leaf functions.
pub fn many_calls(n: usize) -> Wasm {
    static W: OnceLock<Wasm> = OnceLock::new();
    assert_eq!(n, 100_000, "cached for one size");
    W.get_or_init(|| {
        let mut s = String::from("(module\n");
        for j in 0..10 {
            let _ = writeln!(
                s,
                "  (func $leaf{j} (param i32) (result i32) (i32.add (i32.mul (local.get 0) (i32.const {m})) (i32.const {j})))",
                m = 2 * j + 3
            );
        }
        let per = n / 100;
        for f in 0..100 {
            let _ = writeln!(s, "  (func (export \"c{f}\") (param i32) (result i32)");
            for c in 0..per {
                let _ = writeln!(s, "    local.get 0 call $leaf{} local.set 0", (f + c) % 10);
            }
            s.push_str("    local.get 0)\n");
        }
        s.push(')');
        wat("100k-calls", &s)
    })
    .clone()
}

/// A module with a memory of `bytes` plus one page and `bytes` of active
/// data segments (1 MiB each, pseudo-random non-zero contents so nothing
/// can be skipped as zeros), exporting the memory. Encoded directly: as
/// text, 64 MiB of escaped bytes would take longer to parse than to run.
pub fn data_module(bytes: usize) -> Wasm {
    const SEG: usize = 1 << 20;
    assert!(bytes.is_multiple_of(SEG));
    let pages = bytes / 65536 + 1;
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    // Memory section: one memory, min = pages, no max.
    let mut sec = Vec::new();
    leb(&mut sec, 1);
    sec.push(0);
    leb(&mut sec, pages as u64);
    section(&mut m, 5, &sec);
    // Export section: "memory" -> memory 0.
    let mut sec = Vec::new();
    leb(&mut sec, 1);
    leb(&mut sec, 6);
    sec.extend_from_slice(b"memory");
    sec.push(2);
    leb(&mut sec, 0);
    section(&mut m, 7, &sec);
    // Data section.
    let mut sec = Vec::with_capacity(bytes + 64 * (bytes / SEG));
    leb(&mut sec, (bytes / SEG) as u64);
    let mut x: u32 = 0x2545_f491;
    for i in 0..bytes / SEG {
        sec.push(0); // active, memory 0
        sec.push(0x41); // i32.const
        sleb(&mut sec, (i * SEG) as i64);
        sec.push(0x0b); // end
        leb(&mut sec, SEG as u64);
        for _ in 0..SEG {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            sec.push((x as u8) | 1);
        }
    }
    section(&mut m, 11, &sec);
    Arc::new(m)
}

fn section(m: &mut Vec<u8>, id: u8, body: &[u8]) {
    m.push(id);
    leb(m, body.len() as u64);
    m.extend_from_slice(body);
}

fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0);
        if done {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Compiles `c_dir/NAME.c` to `out_dir/NAME.wasm` with the system clang.
pub fn compile_c(c_dir: &Path, out_dir: &Path, name: &str) -> Result<Wasm, String> {
    let src = c_dir.join(format!("{name}.c"));
    let out = out_dir.join(format!("{name}.wasm"));
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let mut cmd = Command::new(&clang);
    cmd.args([
        "--target=wasm32",
        "-nostdlib",
        "-O2",
        "-Wl,--no-entry",
        "-Wl,--export-all",
        "-o",
    ])
    .arg(&out)
    .arg(&src);
    let output = cmd.output().map_err(|e| {
        format!("cannot run `{clang}` ({e}); `cargo xtask bench` installs clang and lld")
    })?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let first = err.lines().take(3).collect::<Vec<_>>().join(" | ");
        return Err(format!(
            "`{clang} --target=wasm32 {}` failed: {first}",
            src.display()
        ));
    }
    let bytes = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(Arc::new(bytes))
}

/// Compiles `c_dir/NAME.c` to `out_dir/NAME.wasm` for `wasm32-wasi`, with
/// wasi-libc (Debian's `wasi-libc` package).
pub fn compile_wasi_c(c_dir: &Path, out_dir: &Path, name: &str) -> Result<Wasm, String> {
    let src = c_dir.join(format!("{name}.c"));
    let out = out_dir.join(format!("{name}.wasm"));
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let output = Command::new(&clang)
        .args(["--target=wasm32-wasi", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| {
            format!(
                "cannot run `{clang}` ({e}); `cargo xtask bench` installs clang, lld and wasi-libc"
            )
        })?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let first = err.lines().take(3).collect::<Vec<_>>().join(" | ");
        return Err(format!(
            "`{clang} --target=wasm32-wasi {}` failed: {first} \
             (needs Debian's wasi-libc and libclang-rt-14-dev-wasm32)",
            src.display()
        ));
    }
    let bytes = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(Arc::new(bytes))
}

/// Every workload, in report order.
pub fn all(c_dir: &Path, c_out: &Path) -> Vec<Workload> {
    let mut v: Vec<Workload> = Vec::new();
    let mut add = |name: &str, build: Box<dyn FnOnce() -> Result<Kind, String>>| {
        v.push(Workload {
            name: name.to_string(),
            build,
        })
    };

    add(
        "call/host-to-wasm-typed",
        Box::new(|| Ok(Kind::HostToWasm { typed: true })),
    );
    add(
        "call/host-to-wasm-untyped",
        Box::new(|| Ok(Kind::HostToWasm { typed: false })),
    );
    add(
        "call/wasm-to-host-typed",
        Box::new(|| Ok(Kind::WasmToHost { typed: true })),
    );
    add(
        "call/wasm-to-host-untyped",
        Box::new(|| Ok(Kind::WasmToHost { typed: false })),
    );
    add(
        "call/wasm-to-wasm-import",
        Box::new(|| Ok(Kind::WasmToWasm)),
    );

    let compute_with = |text: &'static str,
                        name: &'static str,
                        init: Option<i32>,
                        arg: i32,
                        expect: Option<i64>,
                        budget: Budget| {
        Box::new(move || {
            Ok(Kind::Compute {
                wasm: wat(name, text),
                init,
                arg,
                expect,
                budget,
            })
        }) as Box<dyn FnOnce() -> Result<Kind, String>>
    };
    let compute =
        |text, name, init, arg, expect| compute_with(text, name, init, arg, expect, Budget::Off);
    add("compute/fib", compute(FIB, "fib", None, 25, Some(75025)));
    add(
        "compute/sieve",
        compute(SIEVE, "sieve", None, 1_000_000, Some(78498)),
    );
    add(
        "compute/matmul",
        compute(MATMUL, "matmul", Some(100), 100, None),
    );
    add(
        "compute/hash",
        compute(HASH, "hash", Some(16 << 20), 16 << 20, None),
    );
    // What bounding execution costs: the same workloads with fuel or epoch
    // checks on (compare with the rows above).
    for (suffix, budget) in [("fuel", Budget::Fuel), ("epoch", Budget::Epoch)] {
        add(
            &format!("budget/fib+{suffix}"),
            compute_with(FIB, "fib", None, 25, Some(75025), budget),
        );
        add(
            &format!("budget/sieve+{suffix}"),
            compute_with(SIEVE, "sieve", None, 1_000_000, Some(78498), budget),
        );
    }

    for (name, build) in [
        ("program/nbody", ("nbody", 100_000)),
        ("program/qsort", ("qsort", 100_000)),
    ]
    .map(|(n, (file, arg))| {
        let (c_dir, c_out) = (c_dir.to_path_buf(), c_out.to_path_buf());
        let b: Box<dyn FnOnce() -> Result<Kind, String>> = Box::new(move || {
            Ok(Kind::Compute {
                wasm: compile_c(&c_dir, &c_out, file)?,
                init: None,
                arg,
                expect: None,
                budget: Budget::Off,
            })
        });
        (n, b)
    }) {
        add(name, build);
    }

    // WASI preview1, kiln-wasi against wasmtime-wasi.
    {
        let (c_dir, c_out) = (c_dir.to_path_buf(), c_out.to_path_buf());
        add(
            "wasi/hello-end-to-end",
            Box::new(move || {
                Ok(Kind::Wasi {
                    wasm: compile_wasi_c(&c_dir, &c_out, "wasi_hello")?,
                    dir: None,
                    end_to_end: true,
                    stdout: Some("Hello, world!\n"),
                })
            }),
        );
    }
    {
        let (c_dir, c_out) = (c_dir.to_path_buf(), c_out.to_path_buf());
        add(
            "wasi/file-write-read-64MiB",
            Box::new(move || {
                Ok(Kind::Wasi {
                    wasm: compile_wasi_c(&c_dir, &c_out, "wasi_file_io")?,
                    dir: Some(Arc::new(ScratchDir::new("file-io")?)),
                    end_to_end: false,
                    stdout: None,
                })
            }),
        );
    }
    {
        let (c_dir, c_out) = (c_dir.to_path_buf(), c_out.to_path_buf());
        add(
            "wasi/readdir-10k-files",
            Box::new(move || {
                let dir = ScratchDir::new("readdir")?;
                for i in 0..10_000 {
                    let f = dir.0.join(format!("f{i}"));
                    std::fs::write(&f, b"").map_err(|e| format!("{}: {e}", f.display()))?;
                }
                Ok(Kind::Wasi {
                    wasm: compile_wasi_c(&c_dir, &c_out, "wasi_readdir")?,
                    dir: Some(Arc::new(dir)),
                    end_to_end: false,
                    stdout: None,
                })
            }),
        );
    }

    add(
        "compile/2000-funcs",
        Box::new(|| {
            Ok(Kind::Compile {
                wasm: many_funcs(2000),
            })
        }),
    );
    add(
        "compile/100k-calls",
        Box::new(|| {
            Ok(Kind::Compile {
                wasm: many_calls(100_000),
            })
        }),
    );
    for (prefix, from_file) in [("load", false), ("load-file", true)] {
        add(
            &format!("{prefix}/2000-funcs"),
            Box::new(move || {
                Ok(Kind::Load {
                    wasm: many_funcs(2000),
                    from_file,
                })
            }),
        );
        add(
            &format!("{prefix}/100k-calls"),
            Box::new(move || {
                Ok(Kind::Load {
                    wasm: many_calls(100_000),
                    from_file,
                })
            }),
        );
    }

    for threads in [1usize, 2] {
        for pooling in [false, true] {
            let suffix = format!(
                "{}{}",
                if pooling { "-pooling" } else { "" },
                if threads > 1 { "-2threads" } else { "" }
            );
            add(
                &format!("instantiate/small{suffix}"),
                Box::new(move || {
                    Ok(Kind::Instantiate {
                        wasm: wat("small", SMALL),
                        pooling,
                        probes: vec![16, 17],
                        threads,
                    })
                }),
            );
            add(
                &format!("instantiate/imports-table100{suffix}"),
                Box::new(move || {
                    Ok(Kind::Instantiate {
                        wasm: wat("imports_table100", IMPORTS_TABLE100),
                        pooling,
                        probes: vec![16, 17],
                        threads,
                    })
                }),
            );
            for mib in [1usize, 64] {
                add(
                    &format!("instantiate/{mib}MiB-data{suffix}"),
                    Box::new(move || {
                        Ok(Kind::Instantiate {
                            wasm: data_module(mib << 20),
                            pooling,
                            probes: vec![0, (mib << 20) / 2 + 7, (mib << 20) - 1, mib << 20],
                            threads,
                        })
                    }),
                );
            }
        }
    }

    for (module, wasm) in [
        ("2000-funcs", many_funcs as fn(usize) -> Wasm, 2000),
        ("100k-calls", many_calls, 100_000),
    ]
    .map(|(m, f, n)| (m, (f, n)))
    {
        for (part, pname) in [
            (SizePart::Text, "text"),
            (SizePart::Unwind, "unwind"),
            (SizePart::Total, "total"),
        ] {
            let (f, n) = wasm;
            add(
                &format!("size/{module}/{pname}"),
                Box::new(move || Ok(Kind::Size { wasm: f(n), part })),
            );
        }
    }
    v
}
