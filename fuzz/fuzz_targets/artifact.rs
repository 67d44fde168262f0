//! The `artifact` target: see `kiln_fuzzing::Target::Artifact`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzzing::Target::Artifact.run(data));
