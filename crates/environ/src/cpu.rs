//! The CPU features compiled code requires, and whether this host has them.
//!
//! # Why the artifact names CPU features itself
//!
//! A compiler may use instructions of optional CPU extensions: AArch64's
//! LSE atomics, x86-64's AVX2 or BMI2. Code that uses them dies with
//! SIGILL on a CPU without them, which for a runtime means a crash instead
//! of an error. So every artifact's header carries a line
//!
//! ```text
//! cpu-features=aarch64:lse,paca
//! ```
//!
//! naming the target architecture and every optional feature the compiler
//! was allowed to use, and loading refuses an artifact that needs a
//! feature the loading host lacks ([`check_cpu_features`]), with an error
//! that names the missing features. Code compiled for an *older* CPU (a
//! subset of this host's features) loads; requiring an exact match, as a
//! comparison of compiler settings would, would refuse it for no reason.
//!
//! The names are Rust's own, those of `std::arch::is_x86_feature_detected!`
//! and `std::arch::is_aarch64_feature_detected!`, not the compiler's
//! setting names: the check runs in the loader, which must work without
//! any compiler in the process (an embedder that only loads precompiled
//! artifacts), and the std macros are what detects them. The compiler maps
//! its own settings to these names (`kiln-cranelift` keeps that table,
//! and a test there keeps it complete).
//!
//! A feature name this Kiln cannot detect is treated as missing: an
//! artifact from a newer Kiln that uses a new extension is refused, never
//! run on hope.

use crate::ArtifactError;

/// The key of the header line that lists the required CPU features.
pub const CPU_FEATURES_KEY: &str = "cpu-features=";

/// The optional x86-64 features Kiln can detect at load (baseline x86-64,
/// i.e. SSE2, is always there).
pub const X86_64_FEATURES: &[&str] = &[
    "sse3",
    "ssse3",
    "sse4.1",
    "sse4.2",
    "popcnt",
    "avx",
    "avx2",
    "fma",
    "bmi1",
    "bmi2",
    "lzcnt",
    "avx512f",
    "avx512dq",
    "avx512vl",
    "avx512bitalg",
    "avx512vbmi",
    "cmpxchg16b",
    "avxvnni",
    "avx512vnni",
];

/// The optional AArch64 features Kiln can detect at load (baseline is
/// ARMv8.0-A with Advanced SIMD): LSE atomics (ARMv8.1), pointer
/// authentication, half-precision arithmetic.
pub const AARCH64_FEATURES: &[&str] = &["lse", "paca", "fp16", "dotprod", "i8mm"];

/// The optional features Kiln knows for `arch` (Rust's `target_arch`
/// name); empty for an architecture it knows none of.
pub fn known_cpu_features(arch: &str) -> &'static [&'static str] {
    match arch {
        "x86_64" => X86_64_FEATURES,
        "aarch64" => AARCH64_FEATURES,
        _ => &[],
    }
}

/// This host's architecture, as Rust's `target_arch` names it.
pub const HOST_ARCH: &str = std::env::consts::ARCH;

/// Whether this host's CPU has `feature`; `None` for a name Kiln does not
/// detect on this architecture.
pub fn host_has_cpu_feature(feature: &str) -> Option<bool> {
    macro_rules! detect {
        ($mac:ident: $($name:tt)*) => {
            match feature {
                $($name => Some(std::arch::$mac!($name)),)*
                _ => None,
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    let has = detect!(is_x86_feature_detected:
        "sse3" "ssse3" "sse4.1" "sse4.2" "popcnt" "avx" "avx2" "fma" "bmi1" "bmi2" "lzcnt"
        "avx512f" "avx512dq" "avx512vl" "avx512bitalg" "avx512vbmi" "cmpxchg16b" "avxvnni"
        "avx512vnni");
    #[cfg(target_arch = "aarch64")]
    let has = detect!(is_aarch64_feature_detected: "lse" "paca" "fp16" "dotprod" "i8mm");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let has = {
        let _ = feature;
        None
    };
    has
}

/// The header line for code for `arch` that may use `features`.
pub fn cpu_features_line(arch: &str, features: &[&str]) -> String {
    format!("{CPU_FEATURES_KEY}{arch}:{}", features.join(","))
}

/// The architecture and features of a header's `cpu-features=` line;
/// `None` if it has none.
fn parse_line(header: &str) -> Option<(&str, Vec<&str>)> {
    let line = header
        .lines()
        .find_map(|l| l.strip_prefix(CPU_FEATURES_KEY))?;
    let (arch, list) = line.split_once(':')?;
    Some((arch, list.split(',').filter(|f| !f.is_empty()).collect()))
}

/// `header` without its `cpu-features=` line: what must match exactly
/// between an artifact and the engine loading it.
pub fn without_cpu_features(header: &str) -> impl Iterator<Item = &str> {
    header.lines().filter(|l| !l.starts_with(CPU_FEATURES_KEY))
}

/// Checks the CPU features an artifact's `header` requires against this
/// host (see the module docs).
pub fn check_cpu_features(header: &str) -> Result<(), ArtifactError> {
    check_against(header, HOST_ARCH, host_has_cpu_feature)
}

/// [`check_cpu_features`] for a host of `arch` whose features `has`
/// reports.
fn check_against(
    header: &str,
    arch: &str,
    has: impl Fn(&str) -> Option<bool>,
) -> Result<(), ArtifactError> {
    let (want_arch, features) = parse_line(header).ok_or_else(|| {
        ArtifactError::Incompatible("the header does not say which CPU features it needs".into())
    })?;
    if want_arch != arch {
        return Err(ArtifactError::Incompatible(format!(
            "compiled for {want_arch}, this host is {arch}"
        )));
    }
    let missing: Vec<&str> = features
        .into_iter()
        .filter(|f| has(f) != Some(true))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ArtifactError::MissingCpuFeatures {
            arch: arch.to_string(),
            missing: missing.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a53(f: &str) -> Option<bool> {
        AARCH64_FEATURES.contains(&f).then_some(false)
    }

    fn n1(f: &str) -> Option<bool> {
        AARCH64_FEATURES.contains(&f).then(|| f != "paca")
    }

    #[test]
    fn newer_cpu_code_is_refused_on_an_older_cpu() {
        let h = format!("x\n{}\n", cpu_features_line("aarch64", &["lse", "fp16"]));
        let e = check_against(&h, "aarch64", a53).unwrap_err();
        assert_eq!(
            e.to_string(),
            "compiled module needs CPU features this host (aarch64) lacks: lse, fp16"
        );
        check_against(&h, "aarch64", n1).unwrap();
        // Only what is missing is named.
        let h = cpu_features_line("aarch64", &["lse", "paca"]);
        let e = check_against(&h, "aarch64", n1).unwrap_err();
        assert!(
            matches!(&e, ArtifactError::MissingCpuFeatures { missing, .. } if missing == "paca")
        );
    }

    #[test]
    fn older_cpu_code_loads_on_a_newer_cpu() {
        check_against(&cpu_features_line("aarch64", &[]), "aarch64", a53).unwrap();
        check_against(&cpu_features_line("aarch64", &["lse"]), "aarch64", n1).unwrap();
    }

    #[test]
    fn unknown_features_other_architectures_and_no_line_are_refused() {
        let e = check_against(&cpu_features_line("aarch64", &["sve9"]), "aarch64", n1);
        assert!(matches!(e, Err(ArtifactError::MissingCpuFeatures { .. })));
        let e = check_against(&cpu_features_line("x86_64", &[]), "aarch64", n1);
        assert!(matches!(e, Err(ArtifactError::Incompatible(_))));
        let e = check_against("kiln-artifact 2\nsettings=x\n", "aarch64", n1);
        assert!(matches!(e, Err(ArtifactError::Incompatible(_))));
    }

    #[test]
    fn the_host_detects_every_feature_it_lists() {
        for f in known_cpu_features(HOST_ARCH) {
            assert!(host_has_cpu_feature(f).is_some(), "{f}");
        }
        assert_eq!(host_has_cpu_feature("no-such-feature"), None);
        // What the host has, an artifact may require.
        let have: Vec<&str> = known_cpu_features(HOST_ARCH)
            .iter()
            .copied()
            .filter(|f| host_has_cpu_feature(f) == Some(true))
            .collect();
        check_cpu_features(&cpu_features_line(HOST_ARCH, &have)).unwrap();
    }

    #[test]
    fn the_line_is_ignored_when_comparing_settings() {
        let a = format!("m\n{}\ns\n", cpu_features_line("x86_64", &["avx"]));
        let b = format!("m\n{}\ns\n", cpu_features_line("x86_64", &[]));
        assert!(without_cpu_features(&a).eq(without_cpu_features(&b)));
        assert!(!without_cpu_features(&a).eq(without_cpu_features("m\nt\n")));
    }
}
