//! The `api` target: see `kiln_fuzzing::Target::Api`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzzing::Target::Api.run(data));
