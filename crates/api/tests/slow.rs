//! Slow tests, run by `cargo xtask test-all` (skip them with
//! `--skip-slow`), never by a plain `cargo test`.

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

/// A function that translates to more than 2^24 Cranelift instructions
/// (GHSA-897f-g5gm-fmxm: past that, Cranelift 0.112's packed indices
/// overflowed) is refused with a limit error, never miscompiled. Each
/// `local.get 0; call_indirect` takes 5 bytes and ~19 instructions, so a
/// body within the 7,654,321-byte limit gets well past 2^24.
#[test]
#[ignore = "translates ~16 million instructions; run by `cargo xtask test-all`"]
fn a_function_past_2_to_the_24_instructions_is_a_limit_error() {
    fn leb(out: &mut Vec<u8>, mut v: u32) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn section(out: &mut Vec<u8>, id: u8, body: &[u8]) {
        out.push(id);
        leb(out, body.len() as u32);
        out.extend_from_slice(body);
    }
    let mut body = vec![0x00]; // no locals
    for _ in 0..1_500_000 {
        body.extend([0x20, 0x00, 0x11, 0x01, 0x00]); // local.get 0; call_indirect (type 1)
    }
    body.push(0x0b);
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    // Types: 0 = (func (param i32)), 1 = (func).
    section(&mut wasm, 1, &[2, 0x60, 1, 0x7f, 0, 0x60, 0, 0]);
    section(&mut wasm, 3, &[1, 0]);
    section(&mut wasm, 4, &[1, 0x70, 0, 1]);
    let mut code = vec![1];
    leb(&mut code, body.len() as u32);
    code.extend_from_slice(&body);
    section(&mut wasm, 10, &code);
    let e = Module::new(&Engine::default(), &wasm).expect_err("refused");
    let msg = format!("{e:?}");
    assert!(msg.contains("implementation limit"), "{msg}");
    assert!(msg.contains("instructions"), "{msg}");
}
