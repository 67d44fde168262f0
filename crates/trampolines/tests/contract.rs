//! `kiln-trampolines`' contract, without the rest of Kiln: for every mix
//! of parameter and result types, each trampoline has the signature of the
//! convention it is entered by, passes Cranelift's verifier and compiles,
//! for both targets Kiln supports.

use cranelift_codegen::ir::UserExternalName;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{verify_function, Context};
use kiln_environ::{FuncType, ValType};
use kiln_trampolines as t;
use std::sync::Arc;

fn isa(triple: &str) -> Arc<dyn TargetIsa> {
    let mut flags = settings::builder();
    flags.set("preserve_frame_pointers", "true").unwrap();
    flags.set("enable_verifier", "true").unwrap();
    cranelift_codegen::isa::lookup_by_name(triple)
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap()
}

fn types() -> Vec<FuncType> {
    use ValType::*;
    vec![
        FuncType::new([], []),
        FuncType::new([I32], [I32]),
        FuncType::new([I64, F32, F64], [F64]),
        FuncType::new([V128, FuncRef, ExternRef], [V128]),
        FuncType::new([I32; 12], [I64, F32, V128, ExternRef]),
        FuncType::new([F64; 3], [I32, I32]),
    ]
}

fn compiles(isa: &dyn TargetIsa, func: cranelift_codegen::ir::Function, what: &str) {
    verify_function(&func, isa).unwrap_or_else(|e| panic!("{what} fails the verifier: {e}"));
    let mut ctx = Context::for_function(func);
    let mut ctrl = cranelift_codegen::control::ControlPlane::default();
    ctx.compile(isa, &mut ctrl)
        .unwrap_or_else(|e| panic!("{what} does not compile: {e:?}"));
}

#[test]
fn every_trampoline_verifies_and_compiles_with_its_entry_signature() {
    for triple in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let isa = isa(triple);
        let isa = &*isa;
        for ty in types() {
            let callee = UserExternalName::new(0, 0);
            let what = |name: &str| format!("{name} for {ty:?} on {triple}");

            let f = t::array_to_wasm(isa, &ty, callee.clone());
            assert_eq!(
                f.signature,
                t::array_signature(isa),
                "{}",
                what("array_to_wasm")
            );
            compiles(isa, f, &what("array_to_wasm"));

            let f = t::native_to_wasm(isa, &ty, callee);
            assert_eq!(
                f.signature,
                t::native_signature(isa, &ty),
                "{}",
                what("native_to_wasm")
            );
            compiles(isa, f, &what("native_to_wasm"));

            for (name, f) in [
                ("wasm_to_native", t::wasm_to_native(isa, &ty)),
                ("wasm_to_array", t::wasm_to_array(isa, &ty)),
            ] {
                assert_eq!(f.signature, t::wasm_signature(isa, &ty), "{}", what(name));
                compiles(isa, f, &what(name));
            }

            let f = t::native_to_array(isa, &ty);
            assert_eq!(
                f.signature,
                t::native_signature(isa, &ty),
                "{}",
                what("native_to_array")
            );
            compiles(isa, f, &what("native_to_array"));
        }
    }
}

#[test]
fn native_results_go_through_a_pointer_from_two_on() {
    let isa = isa("x86_64-unknown-linux-gnu");
    for ty in types() {
        let sig = t::native_signature(&*isa, &ty);
        let retptr = ty.results().len() >= 2;
        assert_eq!(t::native_retptr(&ty), retptr, "{ty:?}");
        assert_eq!(
            sig.returns.len(),
            if retptr { 0 } else { ty.results().len() }
        );
        assert_eq!(
            sig.params.len(),
            2 + ty.params().len() + usize::from(retptr),
            "{ty:?}"
        );
        // The wasm convention returns every result in registers.
        assert_eq!(
            t::wasm_signature(&*isa, &ty).returns.len(),
            ty.results().len()
        );
    }
}
