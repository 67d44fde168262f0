//! Every Cranelift ISA flag that stands for a CPU feature is recorded in
//! the artifact header as one (by Rust's name, for the loader to check),
//! and none of them stays in the settings that must match exactly.

use kiln_cranelift::{Compiler, CompilerConfig};

fn compiler(target: &str, flags: Vec<String>) -> Compiler {
    Compiler::new(CompilerConfig {
        target: Some(target.into()),
        cranelift_flags: flags.into_iter().map(|f| (f, None)).collect(),
        ..CompilerConfig::default()
    })
    .expect("compiler")
}

#[test]
fn every_feature_flag_is_a_recorded_cpu_feature() {
    for (target, arch) in [
        ("x86_64-unknown-linux-gnu", "x86_64"),
        ("aarch64-unknown-linux-gnu", "aarch64"),
    ] {
        let baseline = compiler(target, Vec::new());
        assert!(baseline.cpu_features().is_empty(), "{target}");
        let flags: Vec<String> = baseline
            .isa()
            .isa_flags()
            .iter()
            .filter(|v| v.name.starts_with("has_"))
            .map(|v| v.name.to_string())
            .collect();
        assert!(!flags.is_empty(), "{target}");
        let all = compiler(target, flags.clone());
        let features = all.cpu_features();
        assert_eq!(features.len(), flags.len(), "{target}: {features:?}");
        for f in &features {
            assert!(kiln_environ::known_cpu_features(arch).contains(f), "{f}");
        }
        let fp = all.settings_fingerprint();
        assert!(!fp.contains("has_"), "{fp}");
        assert_eq!(fp, baseline.settings_fingerprint());
        let header = all.artifact_header("");
        assert!(
            header.contains(&kiln_environ::cpu_features_line(arch, &features)),
            "{header}"
        );
    }
}
