//! The one interface every runtime implements.

use crate::workloads::Kind;
use std::fmt::Display;
use std::time::Duration;

/// Runs `iters` iterations of a prepared workload and returns the time
/// they took (setup excluded; checking the result happens after the clock
/// stopped).
pub type Runner = Box<dyn FnMut(u64) -> Result<Duration, String>>;

/// A workload made ready to measure on one runtime.
pub enum Prepared {
    /// A timed workload. `check` is its result from one untimed run, to be
    /// compared between runtimes.
    Timed { run: Runner, check: Option<i64> },
    /// A size in bytes.
    Bytes(u64),
    /// The runtime could do this but Kiln does not yet: reported as such,
    /// never as a number.
    NotImplemented(String),
    /// The workload does not apply to this runtime (e.g. compile time of
    /// an interpreter that translates lazily).
    NotApplicable,
}

/// One WebAssembly runtime, driven through its public embedding API.
pub trait Runtime {
    /// Its name in reports.
    fn name(&self) -> &'static str;
    /// Its version in reports.
    fn version(&self) -> String;
    /// Compiles, links and instantiates what `kind` needs and returns the
    /// measurement (or says why there is none).
    fn prepare(&self, kind: &Kind) -> Result<Prepared, String>;
}

/// Turns any error into the `String` the harness reports.
pub trait OrMsg<T> {
    fn msg(self, what: &str) -> Result<T, String>;
}

impl<T, E: Display> OrMsg<T> for Result<T, E> {
    fn msg(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

impl<T> OrMsg<T> for Option<T> {
    fn msg(self, what: &str) -> Result<T, String> {
        self.ok_or_else(|| format!("{what}: missing"))
    }
}

/// The iteration count as the `i32` a Wasm loop takes.
pub fn loop_count(iters: u64) -> Result<i32, String> {
    i32::try_from(iters).map_err(|_| format!("{iters} iterations do not fit an i32 loop count"))
}

/// Checks a loop's result against the iteration count.
pub fn expect_count(got: i32, iters: u64) -> Result<(), String> {
    if got as i64 == iters as i64 {
        Ok(())
    } else {
        Err(format!("wrong result: {got} after {iters} calls"))
    }
}

/// Checks a compute result against the untimed run's.
pub fn expect_same(got: i64, want: i64) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("result changed between runs: {got} != {want}"))
    }
}

/// The version of `package` recorded in the bench's `Cargo.lock`.
pub fn locked_version(package: &str) -> String {
    let lock = include_str!("../Cargo.lock");
    let needle = format!("name = \"{package}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|i| {
            let rest = &lock[i + needle.len()..];
            rest.find('"').map(|j| rest[..j].to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

/// Runs `iters` iterations of `one` (which does `n` iterations and checks
/// them) on `threads` threads at once, each taking an equal share, and
/// returns the wall-clock time of the whole: with one thread, on the
/// calling thread.
pub fn run_on_threads(
    iters: u64,
    threads: usize,
    one: impl Fn(u64) -> Result<(), String> + Sync,
) -> Result<Duration, String> {
    let start = std::time::Instant::now();
    if threads <= 1 {
        one(iters)?;
        return Ok(start.elapsed());
    }
    let t = threads as u64;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..t)
            .map(|i| {
                let n = iters / t + u64::from(i < iters % t);
                let one = &one;
                s.spawn(move || one(n))
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "a thread panicked".to_string())??;
        }
        Ok::<(), String>(())
    })?;
    Ok(start.elapsed())
}
