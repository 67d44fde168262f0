//! Artifacts record the CPU features their code may use; an artifact for a
//! newer CPU is refused on an older one, with an error naming what is
//! missing, and code for an older CPU runs on a newer one.
//!
//! Which branch of a test runs depends on the CPU: on AArch64 under
//! `QEMU_CPU=cortex-a53` (ARMv8.0: no LSE, no pointer authentication, no
//! FP16) every optional feature is missing; under qemu's default `max`
//! none is. `cargo xtask cross aarch64` runs both.

use kiln::*;

const WAT: &str = r#"(module
  (func (export "f") (param i32) (result i32)
    local.get 0 local.get 0 i32.popcnt i32.add))"#;

/// Cranelift's flags for this architecture's optional CPU features, with
/// whether this host has each (detected by std, as the loader does).
fn feature_flags() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        vec![
            ("has_avx512vbmi", has!("avx512vbmi")),
            ("has_avx512bitalg", has!("avx512bitalg")),
            ("has_avx512f", has!("avx512f")),
            ("has_lzcnt", has!("lzcnt")),
            ("has_bmi2", has!("bmi2")),
            ("has_avx2", has!("avx2")),
        ]
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        vec![
            ("has_lse", has!("lse")),
            ("has_pauth", has!("paca")),
            ("has_fp16", has!("fp16")),
        ]
    }
}

/// The host's triple, for an engine that compiles for the architecture's
/// baseline CPU (a named target gets no detected features).
fn host_triple() -> String {
    format!("{}-unknown-linux-gnu", std::env::consts::ARCH)
}

/// An artifact compiled for this architecture's baseline CPU plus `flags`.
fn artifact_with(flags: &[&str]) -> Vec<u8> {
    let mut c = Config::new();
    c.target(&host_triple());
    for f in flags {
        // SAFETY: CPU feature flags only, which change nothing but the
        // instructions Cranelift may pick.
        unsafe { c.cranelift_flag_enable(f) };
    }
    let engine = Engine::new(&c).unwrap();
    engine.precompile_module(WAT.as_bytes()).unwrap()
}

fn load_and_run(bytes: &[u8]) -> Result<i32> {
    let engine = Engine::default();
    // SAFETY: compiled by this process, just now.
    let module = unsafe { Module::deserialize(&engine, bytes) }?;
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[])?;
    let f = i.get_typed_func::<i32, i32>(&mut store, "f")?;
    assert_eq!(f.call(&mut store, 5)?, 7);
    f.call(&mut store, 7)
}

#[test]
fn code_for_the_baseline_cpu_runs_here() {
    assert_eq!(load_and_run(&artifact_with(&[])).unwrap(), 10);
}

#[test]
fn code_for_features_this_cpu_has_runs_here() {
    let present: Vec<&str> = feature_flags()
        .into_iter()
        .filter(|(_, has)| *has)
        .map(|(f, _)| f)
        .collect();
    eprintln!("features present: {present:?}");
    assert_eq!(load_and_run(&artifact_with(&present)).unwrap(), 10);
}

#[test]
fn code_for_a_newer_cpu_is_refused_with_the_missing_features() {
    let missing: Vec<&str> = feature_flags()
        .into_iter()
        .filter(|(_, has)| !*has)
        .map(|(f, _)| f)
        .collect();
    if missing.is_empty() {
        // This CPU has everything the list names: there is no newer CPU
        // to compile for. (Not the case under QEMU_CPU=cortex-a53.)
        eprintln!("this CPU has every listed feature; nothing to refuse");
        return;
    }
    eprintln!("features missing: {missing:?}");
    for flag in &missing {
        let e = load_and_run(&artifact_with(&[flag])).unwrap_err();
        let name = flag.trim_start_matches("has_").replace("pauth", "paca");
        match e.downcast_ref::<ArtifactError>() {
            Some(ArtifactError::MissingCpuFeatures { missing, arch }) => {
                assert_eq!(arch, std::env::consts::ARCH);
                assert_eq!(missing, &name, "{e}");
            }
            _ => panic!("{flag}: expected a missing-feature error, got {e:?}"),
        }
        assert!(e.to_string().contains("lacks"), "{e}");

        // An engine for the host may not enable it either: everything it
        // compiled would be refused.
        let mut c = Config::new();
        // SAFETY: a CPU feature flag; the engine is refused anyway.
        unsafe { c.cranelift_flag_enable(flag) };
        let e = Engine::new(&c).expect_err("refused");
        assert!(e.to_string().contains(&name), "{e}");
    }
}

#[test]
fn unknown_cranelift_flags_are_errors() {
    let mut c = Config::new();
    // SAFETY: refused before anything is compiled.
    unsafe { c.cranelift_flag_enable("has_no_such_thing") };
    let e = Engine::new(&c).expect_err("refused");
    assert!(e.to_string().contains("has_no_such_thing"), "{e}");
}
