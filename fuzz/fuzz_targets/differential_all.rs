//! The `differential_all` target: see `kiln_fuzzing::Target::DifferentialAll`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzzing::Target::DifferentialAll.run(data));
