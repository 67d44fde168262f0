//! The `compile` target: see `kiln_fuzzing::Target::Compile`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzzing::Target::Compile.run(data));
