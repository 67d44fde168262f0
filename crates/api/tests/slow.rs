//! Slow tests, run by `cargo xtask test-all` (skip them with
//! `--skip-slow`), never by a plain `cargo test`.

// Every test here is about x86-64's `call` reach so far.
#[cfg(target_arch = "x86_64")]
use kiln::*;

/// x86-64 `call rel32` reaches ±2 GiB and has no veneers: a caller and
/// callee just under 2 GiB apart must still be called correctly.
#[test]
#[ignore = "needs ~8 GiB of memory and a minute; run by `cargo xtask test-all`"]
#[cfg(target_arch = "x86_64")]
fn call_across_almost_2_gib_of_text() {
    let mut config = Config::new();
    config.debug_padding_between_functions((2 << 30) - (16 << 20));
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(
        &engine,
        r#"(module
             (func $caller (export "caller") (param i32) (result i32)
               local.get 0 call $callee i32.const 1 i32.add)
             (func $callee (param i32) (result i32)
               local.get 0 i32.const 2 i32.mul))"#,
    )
    .unwrap();
    assert!(module.text().len() > (2 << 30) - (32 << 20));
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let f = i.get_typed_func::<i32, i32>(&mut store, "caller").unwrap();
    assert_eq!(f.call(&mut store, 20).unwrap(), 41);
}

/// Past the reach, compilation fails with a clear error, never wrong code.
#[test]
#[cfg(target_arch = "x86_64")]
fn past_2_gib_is_a_compile_error() {
    let mut config = Config::new();
    config.debug_padding_between_functions(3 << 30);
    let engine = Engine::new(&config).unwrap();
    let e =
        Module::new(&engine, "(module (func $a call $b) (func $b call $a))").expect_err("refused");
    assert!(e.to_string().contains("2 GiB"), "{e}");
}
