//! Regressions for the classes of Cranelift advisories that reproduced on
//! Kiln's old code generator (Cranelift 0.112): an operator whose operand
//! is loaded from memory must read exactly the operand's bytes, never the
//! 16 bytes of an SSE register, so a load at the last bytes of memory
//! succeeds and returns the right value.
//!
//! * `f32/f64.copysign` with a loaded operand (GHSA-vc8c-j3xm-xj73);
//! * `f64x2.splat` of a load on a CPU without SSSE3 (GHSA-qqfj-4vcm-26hv);
//! * float comparisons and `f64x2.replace_lane` with a loaded operand on
//!   a CPU without AVX.
//!
//! Each module is compiled for the architecture's baseline CPU (on x86-64:
//! SSE2 only, so neither SSSE3 nor AVX), for SSE4.2 without AVX, and for
//! this host's CPU, and run wherever the host has what the code needs.
//! The function of more than 2^24 instructions (GHSA-897f-g5gm-fmxm) is in
//! `tests/slow.rs`.

use kiln::*;

/// Sets of Cranelift CPU-feature flags to compile with, each with whether
/// this host can run the result. `None` compiles for the host itself.
fn cpu_models() -> Vec<(&'static str, Option<Vec<&'static str>>, bool)> {
    #[allow(unused_mut)]
    let mut models = vec![("host", None, true), ("baseline", Some(vec![]), true)];
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let sse42 = has!("sse3") && has!("ssse3") && has!("sse4.1") && has!("sse4.2");
        models.push((
            "sse4.2 without avx",
            Some(vec!["has_sse3", "has_ssse3", "has_sse41", "has_sse42"]),
            sse42,
        ));
        models.push(("sse3 without ssse3", Some(vec!["has_sse3"]), has!("sse3")));
    }
    models
}

/// An instance of `wat`, compiled for `flags` (see [`cpu_models`]).
fn instance(wat: &str, flags: &Option<Vec<&str>>) -> (Store<()>, Instance) {
    let engine = Engine::default();
    let module = match flags {
        None => Module::new(&engine, wat).unwrap(),
        Some(flags) => {
            let mut c = Config::new();
            c.target(&format!("{}-unknown-linux-gnu", std::env::consts::ARCH));
            for f in flags {
                // SAFETY: CPU feature flags only; the module is run only
                // where the host has them.
                unsafe { c.cranelift_flag_enable(f) };
            }
            let bytes = Engine::new(&c)
                .unwrap()
                .precompile_module(wat.as_bytes())
                .unwrap();
            // SAFETY: compiled by this process, just now.
            unsafe { Module::deserialize(&engine, &bytes) }.unwrap()
        }
    };
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    (store, i)
}

/// `-1.0` as an `f64` in the last 8 bytes of a one-page memory, and
/// functions that use it as a loaded operand.
const F64: &str = r#"(module
  (memory 1)
  (data (i32.const 65528) "\00\00\00\00\00\00\f0\bf")
  (func (export "copysign") (param f64) (result f64)
    local.get 0 i32.const 65528 f64.load f64.copysign)
  (func (export "eq") (param f64) (result i32) local.get 0 i32.const 65528 f64.load f64.eq)
  (func (export "ne") (param f64) (result i32) local.get 0 i32.const 65528 f64.load f64.ne)
  (func (export "lt") (param f64) (result i32) local.get 0 i32.const 65528 f64.load f64.lt)
  (func (export "gt") (param f64) (result i32) local.get 0 i32.const 65528 f64.load f64.gt)
  (func (export "le") (param f64) (result i32) local.get 0 i32.const 65528 f64.load f64.le)
  (func (export "ge") (param f64) (result i32) local.get 0 i32.const 65528 f64.load f64.ge)
  (func (export "lt_first") (param f64) (result i32)
    i32.const 65528 f64.load local.get 0 f64.lt)
  (func (export "min") (param f64) (result f64) local.get 0 i32.const 65528 f64.load f64.min)
  (func (export "replace_lane") (param f64) (result f64)
    local.get 0 f64x2.splat i32.const 65528 f64.load f64x2.replace_lane 1
    f64x2.extract_lane 1)
  (func (export "splat") (result f64)
    i32.const 65528 f64.load f64x2.splat f64x2.extract_lane 1)
  (func (export "splat_offset") (result f64)
    i32.const 65520 f64.load offset=8 f64x2.splat f64x2.extract_lane 0))"#;

/// `-1.0` as an `f32` in the last 4 bytes of a one-page memory.
const F32: &str = r#"(module
  (memory 1)
  (data (i32.const 65532) "\00\00\80\bf")
  (func (export "copysign") (param f32) (result f32)
    local.get 0 i32.const 65532 f32.load f32.copysign)
  (func (export "eq") (param f32) (result i32) local.get 0 i32.const 65532 f32.load f32.eq)
  (func (export "ne") (param f32) (result i32) local.get 0 i32.const 65532 f32.load f32.ne)
  (func (export "lt") (param f32) (result i32) local.get 0 i32.const 65532 f32.load f32.lt)
  (func (export "gt") (param f32) (result i32) local.get 0 i32.const 65532 f32.load f32.gt)
  (func (export "le") (param f32) (result i32) local.get 0 i32.const 65532 f32.load f32.le)
  (func (export "ge") (param f32) (result i32) local.get 0 i32.const 65532 f32.load f32.ge)
  (func (export "lt_first") (param f32) (result i32)
    i32.const 65532 f32.load local.get 0 f32.lt)
  (func (export "splat") (result f32)
    i32.const 65532 f32.load f32x4.splat f32x4.extract_lane 3))"#;

#[test]
fn f64_operators_with_an_operand_loaded_from_the_last_bytes_of_memory() {
    for (name, flags, runs) in cpu_models() {
        if !runs {
            continue;
        }
        let (mut s, i) = instance(F64, &flags);
        let call = |s: &mut Store<()>, f: &str, x: f64| -> i32 {
            i.get_typed_func::<f64, i32>(&mut *s, f)
                .unwrap()
                .call(&mut *s, x)
                .unwrap_or_else(|e| panic!("{name}: {f}({x}): {e}"))
        };
        let copysign = i.get_typed_func::<f64, f64>(&mut s, "copysign").unwrap();
        assert_eq!(copysign.call(&mut s, 2.5).unwrap(), -2.5, "{name}");
        assert_eq!(call(&mut s, "eq", -1.0), 1, "{name}");
        assert_eq!(call(&mut s, "eq", 1.0), 0, "{name}");
        assert_eq!(call(&mut s, "ne", 1.0), 1, "{name}");
        assert_eq!(call(&mut s, "lt", -2.0), 1, "{name}");
        assert_eq!(call(&mut s, "lt", 0.0), 0, "{name}");
        assert_eq!(call(&mut s, "gt", 0.0), 1, "{name}");
        assert_eq!(call(&mut s, "le", -1.0), 1, "{name}");
        assert_eq!(call(&mut s, "ge", -3.0), 0, "{name}");
        assert_eq!(call(&mut s, "lt_first", 0.0), 1, "{name}");
        let min = i.get_typed_func::<f64, f64>(&mut s, "min").unwrap();
        assert_eq!(min.call(&mut s, 3.0).unwrap(), -1.0, "{name}");
        let replace = i
            .get_typed_func::<f64, f64>(&mut s, "replace_lane")
            .unwrap();
        assert_eq!(replace.call(&mut s, 7.0).unwrap(), -1.0, "{name}");
        for f in ["splat", "splat_offset"] {
            let splat = i.get_typed_func::<(), f64>(&mut s, f).unwrap();
            assert_eq!(splat.call(&mut s, ()).unwrap(), -1.0, "{name}: {f}");
        }
    }
}

#[test]
fn f32_operators_with_an_operand_loaded_from_the_last_bytes_of_memory() {
    for (name, flags, runs) in cpu_models() {
        if !runs {
            continue;
        }
        let (mut s, i) = instance(F32, &flags);
        let call = |s: &mut Store<()>, f: &str, x: f32| -> i32 {
            i.get_typed_func::<f32, i32>(&mut *s, f)
                .unwrap()
                .call(&mut *s, x)
                .unwrap_or_else(|e| panic!("{name}: {f}({x}): {e}"))
        };
        let copysign = i.get_typed_func::<f32, f32>(&mut s, "copysign").unwrap();
        assert_eq!(copysign.call(&mut s, 2.5).unwrap(), -2.5, "{name}");
        assert_eq!(call(&mut s, "eq", -1.0), 1, "{name}");
        assert_eq!(call(&mut s, "ne", -1.0), 0, "{name}");
        assert_eq!(call(&mut s, "lt", -2.0), 1, "{name}");
        assert_eq!(call(&mut s, "gt", 0.0), 1, "{name}");
        assert_eq!(call(&mut s, "le", 0.0), 0, "{name}");
        assert_eq!(call(&mut s, "ge", -1.0), 1, "{name}");
        assert_eq!(call(&mut s, "lt_first", 0.0), 1, "{name}");
        let splat = i.get_typed_func::<(), f32>(&mut s, "splat").unwrap();
        assert_eq!(splat.call(&mut s, ()).unwrap(), -1.0, "{name}");
    }
}

#[test]
fn the_advisory_modules_compile_for_every_cpu_model_even_where_they_cannot_run() {
    // Code for a CPU this host lacks is still produced (and the loader
    // would refuse it here): compiling must not depend on the host.
    for (name, flags, _) in cpu_models() {
        let Some(flags) = flags else { continue };
        let mut c = Config::new();
        c.target(&format!("{}-unknown-linux-gnu", std::env::consts::ARCH));
        for f in &flags {
            // SAFETY: CPU feature flags only; nothing is run.
            unsafe { c.cranelift_flag_enable(f) };
        }
        let engine = Engine::new(&c).unwrap();
        for wat in [F64, F32] {
            engine
                .precompile_module(wat.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
