//! Properties of compiled objects: no relocations, calls that reach their
//! callees, trap tables where code can trap.

mod cpu_features;
mod veneers;

use kiln_cranelift::{CompiledObject, Compiler, CompilerConfig};
use object::{Object as _, ObjectSection as _};

pub(crate) fn compile(config: CompilerConfig, wat: &str) -> CompiledObject {
    let wasm = wat::parse_str(wat).expect("valid wat");
    let t = kiln_environ::translate_module(&wasm, kiln_environ::default_features()).expect("valid");
    Compiler::new(config)
        .expect("compiler")
        .compile_module(t, "")
        .expect("compiles")
}

fn relocation_count(obj: &[u8]) -> usize {
    let file = object::File::parse(obj).expect("parses");
    file.sections().map(|s| s.relocations().count()).sum()
}

/// A module of `n` functions where each calls the next two, plus
/// imports and indirect calls: thousands of call sites.
fn many_calls(n: usize) -> String {
    let mut s = String::from(
        "(module (import \"env\" \"h\" (func $h (param i32) (result i32)))\n\
         (type $t (func (param i32) (result i32)))\n(table 4 funcref)\n",
    );
    for i in 0..n {
        let a = (i + 1) % n;
        let b = (i + 7) % n;
        s.push_str(&format!(
            "(func $f{i} (export \"f{i}\") (param i32) (result i32)\n\
             local.get 0 i32.eqz if (result i32) local.get 0 call $h else\n\
             local.get 0 i32.const 1 i32.sub call $f{a}\n\
             local.get 0 i32.const 2 i32.sub call $f{b} i32.add\n\
             local.get 0 local.get 0 i32.const 3 i32.and call_indirect (type $t) i32.add end)\n"
        ));
    }
    s.push_str("(elem (i32.const 0) $f0 $f1 $f2 $f3))");
    s
}

#[test]
fn thousands_of_calls_leave_zero_relocations() {
    let obj = compile(CompilerConfig::default(), &many_calls(1500));
    assert_eq!(relocation_count(&obj.object), 0);
    assert_eq!(obj.info.funcs.len(), 1500);
    // Escaping functions (all exported) get two trampolines each, plus one
    // wasm-to-native trampoline per type.
    let escaping = obj
        .info
        .funcs
        .values()
        .filter(|f| f.array_to_wasm.is_some())
        .count();
    assert_eq!(escaping, 1500);
    assert_eq!(obj.info.wasm_to_native.len(), obj.info.module.types.len());
}

#[test]
fn non_escaping_functions_get_no_trampolines() {
    let obj = compile(
        CompilerConfig::default(),
        r#"(module
             (func $private (result i32) i32.const 1)
             (func (export "pub") (result i32) call $private))"#,
    );
    let with: Vec<bool> = obj
        .info
        .funcs
        .values()
        .map(|f| f.array_to_wasm.is_some())
        .collect();
    assert_eq!(with, [false, true]);
}

#[test]
fn text_section_is_page_aligned_in_the_object() {
    let obj = compile(CompilerConfig::default(), "(module (func (export \"f\")))");
    assert_eq!(obj.layout.text_offset % 0x1000, 0);
}

#[test]
fn trap_sites_are_recorded() {
    let obj = compile(
        CompilerConfig::default(),
        r#"(module (func (export "f") (param i32) (result i32)
             local.get 0 local.get 0 i32.div_s))"#,
    );
    assert!(obj
        .info
        .traps
        .iter()
        .any(|t| t.trap == kiln_environ::Trap::IntegerDivisionByZero));
    assert!(
        !obj.info.address_map.is_empty(),
        "address map records wasm offsets"
    );
}

#[test]
fn x86_64_text_past_the_call_reach_is_a_clear_error() {
    let wasm = wat::parse_str("(module (func $a call $b) (func $b call $a))").unwrap();
    let t = kiln_environ::translate_module(&wasm, kiln_environ::default_features()).unwrap();
    let config = CompilerConfig {
        target: Some("x86_64-unknown-linux-gnu".into()),
        padding_between_functions: 3 << 30,
        ..CompilerConfig::default()
    };
    let e = Compiler::new(config)
        .unwrap()
        .compile_module(t, "")
        .err()
        .expect("refused");
    assert!(e.to_string().contains("2 GiB"), "{e}");
}
