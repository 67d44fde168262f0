//! wasm-smith configured for what Kiln implements, and the matching engine
//! configurations of Kiln and wasmi.
//!
//! Kiln implements WebAssembly 2.0 (SIMD included) and, as options, tail
//! calls, multi-memory and extended constant expressions. Every other
//! proposal wasm-smith knows is switched off here: a generated module must
//! be one Kiln is obliged to accept, so that a rejection is a finding.

use arbitrary::Unstructured;

/// Which optional features a generated module may use.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Features {
    pub tail_call: bool,
    pub multi_memory: bool,
    pub extended_const: bool,
}

impl Features {
    pub(crate) const WASM2: Features = Features {
        tail_call: false,
        multi_memory: false,
        extended_const: false,
    };
    pub(crate) const ALL: Features = Features {
        tail_call: true,
        multi_memory: true,
        extended_const: true,
    };
}

/// A wasm-smith configuration for `features`: WebAssembly 2.0 plus those.
///
/// Sizes are bounded so that one input runs in milliseconds and memory use
/// stays small: every memory and table has a maximum (so `memory.grow`
/// cannot ask wasmi for 4 GiB), and NaNs are canonicalized after every
/// floating-point operation (see `oracle.rs` for why).
pub(crate) fn config(features: Features) -> wasm_smith::Config {
    wasm_smith::Config {
        // WebAssembly 2.0.
        bulk_memory_enabled: true,
        reference_types_enabled: true,
        multi_value_enabled: true,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        simd_enabled: true,
        // Optional features Kiln supports.
        tail_call_enabled: features.tail_call,
        extended_const_enabled: features.extended_const,
        max_memories: if features.multi_memory { 4 } else { 1 },
        // Everything else is off: Kiln does not implement it.
        relaxed_simd_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        memory64_enabled: false,
        gc_enabled: false,
        exceptions_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        compact_imports_enabled: false,
        custom_descriptors_enabled: false,
        // Bounded sizes.
        max_tables: 4,
        max_table_elements: 1_000,
        table_max_size_required: true,
        max_memory32_bytes: 4 << 20,
        memory_max_size_required: true,
        max_funcs: 20,
        max_instructions: 200,
        max_data_segments: 10,
        max_element_segments: 10,
        max_elements: 20,
        canonicalize_nans: true,
        ..wasm_smith::Config::default()
    }
}

/// A Kiln engine for `features`, compiling on the calling thread only (a
/// fuzzer owns one core), optionally with fuel metering compiled in.
pub(crate) fn kiln_engine(features: Features, fuel: bool) -> kiln::Engine {
    let mut c = kiln::Config::new();
    c.compile_threads(1)
        .wasm_tail_call(features.tail_call)
        .wasm_multi_memory(features.multi_memory)
        .wasm_extended_const(features.extended_const)
        .consume_fuel(fuel);
    kiln::Engine::new(&c).expect("a Kiln engine for the fuzzers' configuration")
}

/// A wasmi engine with exactly `features` on top of WebAssembly 2.0.
pub(crate) fn wasmi_engine(features: Features) -> wasmi::Engine {
    let mut c = wasmi::Config::default();
    c.wasm_simd(true)
        .wasm_relaxed_simd(false)
        .wasm_memory64(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false)
        .wasm_tail_call(features.tail_call)
        .wasm_multi_memory(features.multi_memory)
        .wasm_extended_const(features.extended_const)
        .compilation_mode(wasmi::CompilationMode::Eager);
    wasmi::Engine::new(&c)
}

/// A module from `u`, or `None` when the input is too short to make one.
pub(crate) fn module(config: wasm_smith::Config, u: &mut Unstructured<'_>) -> Option<Vec<u8>> {
    let mut m = wasm_smith::Module::new(config, u).ok()?;
    // Every loop header and function entry decrements a global and traps
    // (`unreachable`) at zero: execution is bounded in both engines, and
    // identically so, which fuel in two differently metered engines is not.
    m.ensure_termination(10_000).ok()?;
    Some(m.to_bytes())
}
