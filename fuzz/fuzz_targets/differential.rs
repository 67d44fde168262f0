//! The `differential` target: see `kiln_fuzzing::Target::Differential`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzzing::Target::Differential.run(data));
