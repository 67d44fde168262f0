//! `kiln-fuzzing`: what each fuzz target does, as a library.
//!
//! # Who is this crate for?
//!
//! The `fuzz/` directory (cargo-fuzz, libFuzzer, nightly) and the
//! regression tests of this crate. Each fuzz target there is one line that
//! hands libFuzzer's bytes to a function here; each regression test hands
//! the bytes of a file under `fuzz/regressions/<target>/` to the same
//! function. So an input that once failed under libFuzzer fails the same
//! way under a plain `cargo test`, without libFuzzer, nightly or sanitizer
//! coverage, and stays fixed.
//!
//! It is not part of Kiln's API: nothing depends on it, and it is left out
//! of the workspace's default members so that a plain `cargo build` never
//! compiles wasm-smith and wasmi (`cargo test --workspace`, which CI runs,
//! does include it).
//!
//! # The targets
//!
//! * [`compile`]: arbitrary bytes (and mutated generated modules) into
//!   `Module::new` and `Module::validate`. An error is fine; a panic, a
//!   crash, or validation and compilation disagreeing is not.
//! * [`differential`]: a module from wasm-smith, for exactly the features
//!   Kiln supports, run in Kiln and in wasmi; results, traps, and the final
//!   memories, tables and globals must agree.
//! * [`api`]: random sequences of API operations (several stores,
//!   instantiation with host functions, calls, growing and reading memories
//!   and tables, globals, references through host functions, drops in random
//!   order), mirrored in wasmi.
//! * [`artifact`]: truncated and corrupted artifacts from `Module::serialize`
//!   into `Module::deserialize`: an error, or a module that behaves like the
//!   original.
//!
//! # What a finding is
//!
//! Every target function panics on a finding, with a message that says
//! what disagreed. Under libFuzzer a panic aborts (libfuzzer-sys installs
//! an aborting panic hook), which is what makes it a crash; a real crash
//! (SIGSEGV outside Wasm, an abort) is one by itself. A Kiln panic that Kiln
//! itself catches (the compiler turns code-generator panics into errors)
//! still runs the panic hook, so libFuzzer reports it too.

#![deny(missing_docs)]

pub mod api;
pub mod artifact;
pub mod compile;
pub mod differential;
mod oracle;
pub mod regressions;
mod smith;

/// A fuzz target, by the name its cargo-fuzz binary and its regression
/// directory have.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// [`compile::run`].
    Compile,
    /// [`differential::run`] with the WebAssembly 2.0 feature set.
    Differential,
    /// [`differential::run`] with every optional feature Kiln supports.
    DifferentialAll,
    /// [`api::run`].
    Api,
    /// [`artifact::run`].
    Artifact,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 5] = [
        Target::Compile,
        Target::Differential,
        Target::DifferentialAll,
        Target::Api,
        Target::Artifact,
    ];

    /// The target's name: its cargo-fuzz binary and its directory under
    /// `fuzz/regressions/`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Compile => "compile",
            Target::Differential => "differential",
            Target::DifferentialAll => "differential_all",
            Target::Api => "api",
            Target::Artifact => "artifact",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs the target on one input; panics on a finding.
    pub fn run(self, data: &[u8]) {
        match self {
            Target::Compile => compile::run(data),
            Target::Differential => differential::run(data, differential::Features::Wasm2),
            Target::DifferentialAll => differential::run(data, differential::Features::All),
            Target::Api => api::run(data),
            Target::Artifact => artifact::run(data),
        }
    }
}
