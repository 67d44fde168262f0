//! Checks that the runner itself counts passes and failures correctly.

fn run(text: &str) -> kiln_wast::WastStats {
    kiln_wast::run_str("t.wast", text, &kiln::Config::default()).expect("script runs")
}

#[test]
fn wrong_results_fail() {
    let s = run(r#"
        (module
          (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
          (func (export "nan") (result f32) f32.const nan)
          (func (export "div") (param i32) (result i32) i32.const 1 local.get 0 i32.div_u))
        (assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 3))
        (assert_return (invoke "add" (i32.const 1) (i32.const 2)) (i32.const 4))
        (assert_return (invoke "nan") (f32.const nan:canonical))
        (assert_return (invoke "nan") (f32.const 0))
        (assert_trap (invoke "div" (i32.const 0)) "integer divide by zero")
        (assert_trap (invoke "div" (i32.const 0)) "unreachable")
        (assert_trap (invoke "div" (i32.const 1)) "integer divide by zero")
        (assert_return (invoke "missing"))
        (assert_invalid (module (func (result i32))) "type mismatch")
        (assert_invalid (module (func (result i32) i32.const 0)) "type mismatch")
        (assert_malformed (module quote "(func") "unexpected end")
    "#);
    assert_eq!(s.passed, 6, "{:#?}", s.failures);
    assert_eq!(s.failed, 6, "{:#?}", s.failures);
    assert!(
        s.failures[0].starts_with("t.wast:7:10: assert_return: expected [i32:4], got [i32:3]"),
        "{}",
        s.failures[0]
    );
}

#[test]
fn externrefs_spectest_and_register() {
    let s = run(r#"
        (module $a
          (import "spectest" "global_i32" (global i32))
          (import "spectest" "print_i32" (func (param i32)))
          (import "spectest" "table" (table 10 funcref))
          (import "spectest" "memory" (memory 1))
          (func (export "id") (param externref) (result externref) local.get 0)
          (func (export "g") (result i32) global.get 0))
        (register "a" $a)
        (module (import "a" "g" (func $g (result i32)))
          (func (export "g2") (result i32) call $g))
        (assert_return (invoke "g2") (i32.const 666))
        (assert_return (invoke $a "id" (ref.extern 7)) (ref.extern 7))
        (assert_return (invoke $a "id" (ref.extern 7)) (ref.extern 8))
        (assert_return (invoke $a "id" (ref.null extern)) (ref.null extern))
        (assert_unlinkable (module (import "a" "nope" (func))) "unknown import")
        (assert_trap (module (func $s unreachable) (start $s)) "unreachable")
    "#);
    assert_eq!(s.failed, 1, "{:#?}", s.failures);
    assert_eq!(s.passed, 8, "{:#?}", s.failures);
}
