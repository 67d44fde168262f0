//! `kiln-bench`: Kiln against Wasmtime 48 (and wasmi, an interpreter, as
//! a reference) in one run, on the same workload bytes.
//!
//! Run it through `cargo xtask bench [--quick] [--filter SUBSTR]`, which
//! builds this crate in release mode and makes sure clang and wasm-ld are
//! there for the C programs.
//!
//! # Method
//!
//! For each workload, every runtime compiles, links and instantiates what
//! it needs (untimed), runs it once and the results are compared: a
//! runtime that computes something else is reported as failed, not timed.
//! Then each runtime is warmed up and calibrated on its own: the iteration
//! count is chosen so that one sample takes about 50 ms (10 ms with
//! `--quick`; at least one iteration). Then 15 samples (5 with `--quick`)
//! are taken, interleaved (Kiln, Wasmtime, wasmi, Kiln, ...) so that drift
//! in the machine's speed hits every runtime alike; a runtime that needs
//! more than a second for one iteration takes only 3 samples, the first
//! from the calibration (Wasmtime's
//! preview1 `fd_readdir` lists and stats the whole directory again on
//! every call, so `wasi/readdir-10k-files` takes it many seconds). Each
//! sample gives a time
//! per iteration; the report shows their median, minimum and maximum, and
//! the ratio of medians to Wasmtime's.
//!
//! Outputs: a table on stdout, `report.json` and `report.svg` in the
//! output directory (`--out`, by default the root workspace's
//! `target/bench`).

mod elf;
mod report;
mod rt_kiln;
mod rt_wasmi;
mod rt_wasmtime;
mod runtime;
mod workloads;

use runtime::{Prepared, Runner, Runtime};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: kiln-bench [--quick] [--filter SUBSTR]... [--out DIR] [--list]

  --quick          5 samples of ~10 ms each instead of 15 of ~50 ms
  --filter SUBSTR  run only workloads whose name contains SUBSTR
                   (repeatable: any of them)
  --out DIR        where report.json and report.svg go
                   (default: the root workspace's target/bench)
  --list           print the workload names and exit
";

/// How long and how often to measure.
#[derive(Copy, Clone, Debug)]
pub struct Settings {
    pub samples: usize,
    pub target: Duration,
    pub quick: bool,
}

/// What one runtime gave for one workload.
pub enum Outcome {
    /// Time per iteration of each sample, in nanoseconds.
    Times {
        per_iter_ns: Vec<f64>,
        iters: u64,
    },
    Bytes(u64),
    NotImplemented(String),
    NotApplicable,
    Failed(String),
}

impl Outcome {
    /// The value to compare: the median time or the size.
    pub fn value(&self) -> Option<f64> {
        match self {
            Outcome::Times { per_iter_ns, .. } => Some(stats(per_iter_ns).median),
            Outcome::Bytes(b) => Some(*b as f64),
            _ => None,
        }
    }
}

/// One workload's results, one outcome per runtime (in runtime order).
pub struct WorkloadResult {
    pub name: String,
    pub outcomes: Vec<Outcome>,
    /// Why the workload did not run at all, if it did not.
    pub skipped: Option<String>,
}

#[derive(Copy, Clone, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats(xs: &[f64]) -> Stats {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Stats {
        median,
        min: v.first().copied().unwrap_or(f64::NAN),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

struct Options {
    quick: bool,
    filters: Vec<String>,
    out: PathBuf,
    list: bool,
}

fn parse_args() -> Result<Options, String> {
    let bench_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut opts = Options {
        quick: false,
        filters: Vec::new(),
        out: bench_dir.join("..").join("target").join("bench"),
        list: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--list" => opts.list = true,
            "--filter" => opts
                .filters
                .push(args.next().ok_or("--filter needs a value")?),
            "--out" => opts.out = PathBuf::from(args.next().ok_or("--out needs a value")?),
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                if let Some(f) = other.strip_prefix("--filter=") {
                    opts.filters.push(f.to_string());
                } else if let Some(o) = other.strip_prefix("--out=") {
                    opts.out = PathBuf::from(o);
                } else {
                    return Err(format!("unknown argument `{other}`"));
                }
            }
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kiln-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let settings = if opts.quick {
        Settings {
            samples: 5,
            target: Duration::from_millis(10),
            quick: true,
        }
    } else {
        Settings {
            samples: 15,
            target: Duration::from_millis(50),
            quick: false,
        }
    };

    let bench_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let all = workloads::all(&bench_dir.join("c"), &opts.out.join("c"));
    let selected: Vec<_> = all
        .into_iter()
        .filter(|w| {
            opts.filters.is_empty() || opts.filters.iter().any(|f| w.name.contains(f.as_str()))
        })
        .collect();
    if opts.list {
        for w in &selected {
            println!("{}", w.name);
        }
        return ExitCode::SUCCESS;
    }
    if selected.is_empty() {
        eprintln!(
            "kiln-bench: no workload matches {:?} (see --list)",
            opts.filters
        );
        return ExitCode::from(2);
    }

    let mut runtimes: Vec<Box<dyn Runtime>> = vec![Box::new(rt_kiln::Kiln::new())];
    match rt_wasmtime::Wasmtime::new() {
        Ok(w) => runtimes.push(Box::new(w)),
        Err(e) => {
            eprintln!("kiln-bench: {e}");
            return ExitCode::FAILURE;
        }
    }
    runtimes.push(Box::new(rt_wasmi::Wasmi::new()));

    eprintln!(
        "kiln-bench: {} workloads, {} samples of ~{:?} each per runtime{}",
        selected.len(),
        settings.samples,
        settings.target,
        if settings.quick { " (--quick)" } else { "" }
    );
    let machine = report::Machine::detect();
    let started = Instant::now();
    let n = selected.len();
    let mut results = Vec::new();
    for (i, w) in selected.into_iter().enumerate() {
        eprint!("[{:>2}/{n}] {:<30}", i + 1, w.name);
        let t0 = Instant::now();
        let r = run_workload(w.name, w.build, &runtimes, &settings);
        match &r.skipped {
            Some(why) => eprintln!(" skipped: {why}"),
            None => eprintln!(" {:.1?}", t0.elapsed()),
        }
        for (rt, o) in runtimes.iter().zip(&r.outcomes) {
            if let Outcome::Failed(e) = o {
                eprintln!("        {}: FAILED: {e}", rt.name());
            }
        }
        results.push(r);
    }
    let elapsed = started.elapsed();

    let names: Vec<&str> = runtimes.iter().map(|r| r.name()).collect();
    let versions: Vec<String> = runtimes.iter().map(|r| r.version()).collect();

    print!("{}", report::table(&names, &results));
    println!(
        "\n{} samples per runtime and workload; ratios are medians over Wasmtime's (< 1: faster or smaller than Wasmtime).",
        settings.samples
    );
    println!(
        "{} | {} | {} cores | {} | load {} at start | total {:.0?}",
        machine.date, machine.cpu, machine.nproc, machine.kernel, machine.load, elapsed
    );

    if let Err(e) = std::fs::create_dir_all(&opts.out) {
        eprintln!("kiln-bench: cannot create {}: {e}", opts.out.display());
        return ExitCode::FAILURE;
    }
    let json = report::json(&names, &versions, &results, &machine, &settings, elapsed);
    let svg = report::svg(&names, &versions, &results, &machine, &settings);
    for (file, text) in [("report.json", json), ("report.svg", svg)] {
        let path = opts.out.join(file);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("kiln-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    let failed = results
        .iter()
        .any(|r| r.outcomes.iter().any(|o| matches!(o, Outcome::Failed(_))));
    if failed {
        eprintln!("kiln-bench: some measurements FAILED (see above)");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `f`, turning a panic into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(format!("{what} panicked: {msg}"))
        }
    }
}

fn run_workload(
    name: String,
    build: Box<dyn FnOnce() -> Result<workloads::Kind, String>>,
    runtimes: &[Box<dyn Runtime>],
    settings: &Settings,
) -> WorkloadResult {
    let kind = match guarded("building the workload", build) {
        Ok(k) => k,
        Err(e) => {
            return WorkloadResult {
                name,
                outcomes: runtimes.iter().map(|_| Outcome::NotApplicable).collect(),
                skipped: Some(e),
            }
        }
    };

    // Prepare every runtime, then cross-check results.
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut runners: Vec<Option<Runner>> = Vec::new();
    let mut checks: Vec<Option<i64>> = Vec::new();
    for rt in runtimes {
        let (o, r, c) = match guarded("prepare", || rt.prepare(&kind)) {
            Ok(Prepared::Timed { run, check }) => (
                Outcome::Times {
                    per_iter_ns: Vec::new(),
                    iters: 0,
                },
                Some(run),
                check,
            ),
            Ok(Prepared::Bytes(b)) => (Outcome::Bytes(b), None, None),
            Ok(Prepared::NotImplemented(why)) => (Outcome::NotImplemented(why), None, None),
            Ok(Prepared::NotApplicable) => (Outcome::NotApplicable, None, None),
            Err(e) => (Outcome::Failed(e), None, None),
        };
        outcomes.push(o);
        runners.push(r);
        checks.push(c);
    }
    let expected = match &kind {
        workloads::Kind::Compute { expect, .. } => *expect,
        _ => None,
    };
    // The reference result: the stated one, else Wasmtime's, else any.
    let reference = expected.or_else(|| {
        let wt = runtimes.iter().position(|r| r.name() == "wasmtime");
        wt.and_then(|i| checks[i])
            .or_else(|| checks.iter().flatten().next().copied())
    });
    for i in 0..runtimes.len() {
        if let (Some(c), Some(want)) = (checks[i], reference) {
            if c != want {
                outcomes[i] = Outcome::Failed(format!("wrong result {c}, expected {want}"));
                runners[i] = None;
            }
        }
    }

    // Warm up and calibrate each runtime on its own.
    let mut iters = vec![0u64; runtimes.len()];
    let mut samples = vec![settings.samples; runtimes.len()];
    for i in 0..runtimes.len() {
        if let Some(run) = runners[i].as_mut() {
            match guarded("calibration", || calibrate(run, settings.target)) {
                Ok((n, per_iter)) => {
                    iters[i] = n;
                    if per_iter > SLOW {
                        // The calibration's single iteration is the first
                        // sample.
                        if let Outcome::Times { per_iter_ns, iters } = &mut outcomes[i] {
                            per_iter_ns.push(per_iter * 1e9);
                            *iters = 1;
                        }
                        samples[i] = samples[i].min(SLOW_SAMPLES - 1);
                    }
                }
                Err(e) => {
                    outcomes[i] = Outcome::Failed(e);
                    runners[i] = None;
                }
            }
        }
    }

    // Interleaved samples.
    for k in 0..settings.samples {
        for i in 0..runtimes.len() {
            if k >= samples[i] {
                continue;
            }
            let Some(run) = runners[i].as_mut() else {
                continue;
            };
            let n = iters[i];
            match guarded("sample", || run(n)) {
                Ok(t) => {
                    if let Outcome::Times { per_iter_ns, iters } = &mut outcomes[i] {
                        per_iter_ns.push(t.as_nanos() as f64 / n as f64);
                        *iters = n;
                    }
                }
                Err(e) => {
                    outcomes[i] = Outcome::Failed(e);
                    runners[i] = None;
                }
            }
        }
    }
    drop(runners);
    drop(kind);
    WorkloadResult {
        name,
        outcomes,
        skipped: None,
    }
}

/// A runtime whose one iteration of a workload takes longer than this...
const SLOW: f64 = 1.0;
/// ... takes only this many samples of it (each one iteration, the first
/// from the calibration).
const SLOW_SAMPLES: usize = 3;

/// Warms `run` up and picks the iteration count for samples of about
/// `target` each (at least one iteration); returns it and the time of one
/// iteration, in seconds.
fn calibrate(run: &mut Runner, target: Duration) -> Result<(u64, f64), String> {
    // First run: lazy initialisation, page faults, lazy translation.
    let first = run(1)?;
    let mut n = 1u64;
    let mut t = first;
    // Grow n until a run takes a fifth of the target, to estimate the
    // time per iteration well above the clock's resolution.
    while t < target / 5 && n < (1 << 31) {
        n = if t < target / 200 { n * 10 } else { n * 2 };
        n = n.min(1 << 31);
        t = run(n)?;
    }
    let per_iter = t.as_secs_f64() / n as f64;
    let iters = ((target.as_secs_f64() / per_iter).round() as u64).clamp(1, i32::MAX as u64);
    // Warm up at the sample size once more when samples are short.
    if per_iter < target.as_secs_f64() {
        run(iters)?;
    }
    Ok((iters, per_iter))
}
