//! Malformed, invalid and oversized modules: each is an error from
//! `translate_module` (which `Module::new` and `Module::validate` both use),
//! and the error says why.

use kiln_environ::{default_features, limits, translate_module, WasmError};
use wasm_encoder::{
    CodeSection, EntityType, ExportKind, ExportSection, FunctionSection, ImportSection,
    MemorySection, MemoryType, Module, TableSection, TableType, TypeSection, ValType,
};
use wasmparser::WasmFeatures;

/// A module of one `() -> ()` function with the raw body `body` (local
/// declarations included, length prefix not), and one memory.
fn one_function(body: &[u8]) -> Vec<u8> {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    m.section(&funcs);
    let mut mems = MemorySection::new();
    mems.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&mems);
    let mut code = CodeSection::new();
    code.raw(body);
    m.section(&code);
    m.finish()
}

/// The error of translating `wasm` with `features`; panics if it is valid.
fn error(wasm: &[u8], features: WasmFeatures) -> WasmError {
    match translate_module(wasm, features) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

fn assert_invalid(wasm: &[u8], expected: &str) {
    let e = error(wasm, default_features());
    assert!(
        matches!(e, WasmError::InvalidWebAssembly { .. }) && e.to_string().contains(expected),
        "expected an invalid-module error containing {expected:?}, got: {e}"
    );
}

fn assert_limit(wasm: &[u8], expected: &str) {
    let e = error(wasm, default_features());
    assert!(
        matches!(e, WasmError::ImplLimitExceeded(_)) && e.to_string().contains(expected),
        "expected a limit error containing {expected:?}, got: {e}"
    );
}

// --- validation is complete before translation ------------------------------

#[test]
fn operators_after_the_final_end_are_invalid() {
    // no locals; end; i32.const 0; drop
    assert_invalid(
        &one_function(&[0x00, 0x0b, 0x41, 0x00, 0x1a]),
        "operators remaining after end of function",
    );
    // ...also when the trailing operator is a branch or a return.
    assert_invalid(
        &one_function(&[0x00, 0x0b, 0x0f]),
        "operators remaining after end of function",
    );
}

#[test]
fn a_body_without_its_final_end_is_invalid() {
    // no locals; block; end  (the function's own `end` is missing)
    assert_invalid(
        &one_function(&[0x00, 0x02, 0x40, 0x0b]),
        "control frames remain at end of function",
    );
}

#[test]
fn an_ill_typed_body_is_invalid_without_compiling() {
    // i32.add on an empty stack: found by translate_module itself, which
    // is all `Module::validate` runs.
    assert_invalid(&one_function(&[0x00, 0x6a, 0x0b]), "type mismatch");
}

// --- encodings of disabled features are malformed ---------------------------

#[test]
fn memarg_memory_index_bit_is_malformed_without_multi_memory() {
    // i32.const 0; i32.load (flags 0x40 = align 0 + "memory index follows",
    // memory 0, offset 0); drop; end
    let wasm = one_function(&[0x00, 0x41, 0x00, 0x28, 0x40, 0x00, 0x00, 0x1a, 0x0b]);
    assert_invalid(&wasm, "malformed memop");
    // With multi-memory the same bytes name memory 0 and are valid.
    let mut features = default_features();
    features.set(WasmFeatures::MULTI_MEMORY, true);
    translate_module(&wasm, features).expect("valid with multi-memory");
}

#[test]
fn memory_size_reserved_byte_must_be_a_single_zero() {
    // memory.size with its reserved byte as the two-byte LEB128 of 0.
    let wasm = one_function(&[0x00, 0x3f, 0x80, 0x00, 0x1a, 0x0b]);
    assert_invalid(&wasm, "zero byte expected");
}

// --- implementation limits ----------------------------------------------------

#[test]
fn a_function_of_two_to_the_24_instructions_is_refused_with_a_limit_error() {
    let mut body = vec![0x00];
    body.resize(1 + (1 << 24), 0x01); // nop
    body.push(0x0b);
    assert_limit(&one_function(&body), "function body size");
}

#[test]
fn a_function_body_just_over_the_limit_is_refused() {
    let mut body = vec![0x00];
    body.resize(limits::MAX_FUNCTION_BODY_SIZE, 0x01);
    body.push(0x0b);
    assert_eq!(body.len(), limits::MAX_FUNCTION_BODY_SIZE + 1);
    assert_limit(&one_function(&body), "7654321");
}

#[test]
fn br_table_with_too_many_targets_is_refused() {
    // block; i32.const 0; br_table [0; 65521] 0; end; end
    let mut body = vec![0x00, 0x02, 0x40, 0x41, 0x00, 0x0e];
    leb(&mut body, limits::MAX_BR_TABLE_SIZE as u32 + 1);
    body.resize(body.len() + limits::MAX_BR_TABLE_SIZE + 1, 0x00);
    body.extend([0x00, 0x0b, 0x0b]);
    assert_limit(&one_function(&body), "br_table target count");
}

#[test]
fn too_many_imports_are_refused() {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    m.section(&types);
    let mut imports = ImportSection::new();
    for i in 0..=limits::MAX_IMPORTS {
        imports.import("m", &i.to_string(), EntityType::Function(0));
    }
    m.section(&imports);
    assert_limit(&m.finish(), "import count of 100001");
}

#[test]
fn too_many_exports_are_refused() {
    let mut m = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], []);
    m.section(&types);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    m.section(&funcs);
    let mut exports = ExportSection::new();
    for i in 0..=limits::MAX_EXPORTS {
        exports.export(&i.to_string(), ExportKind::Func, 0);
    }
    m.section(&exports);
    let mut code = CodeSection::new();
    code.raw(&[0x00, 0x0b]);
    m.section(&code);
    assert_limit(&m.finish(), "export count of 100001");
}

/// The limits wasmparser's validator enforces: an invalid-module error
/// naming the limit.
#[test]
fn limits_the_validator_enforces_are_named() {
    // Locals: 50,001 i32s.
    let mut body = vec![0x01];
    leb(&mut body, limits::MAX_FUNCTION_LOCALS as u32 + 1);
    body.extend([0x7f, 0x0b]);
    assert_invalid(&one_function(&body), "too many locals");

    // Parameters and results: 1,001 each.
    let params = |n: usize, results: bool| {
        let mut m = Module::new();
        let mut types = TypeSection::new();
        let many = vec![ValType::I32; n];
        if results {
            types.ty().function([], many);
        } else {
            types.ty().function(many, []);
        }
        m.section(&types);
        m.finish()
    };
    assert_invalid(
        &params(limits::MAX_FUNCTION_PARAMS + 1, false),
        "function params",
    );
    assert_invalid(
        &params(limits::MAX_FUNCTION_RESULTS + 1, true),
        "function returns",
    );

    // Types: 1,000,001.
    let mut m = Module::new();
    let mut types = TypeSection::new();
    for _ in 0..=limits::MAX_TYPES {
        types.ty().function([], []);
    }
    m.section(&types);
    assert_invalid(&m.finish(), "exceeds limit of 1000000");

    // Table size: 10,000,001 elements.
    let mut m = Module::new();
    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: wasm_encoder::RefType::FUNCREF,
        table64: false,
        minimum: limits::MAX_TABLE_SIZE + 1,
        maximum: None,
        shared: false,
    });
    m.section(&tables);
    assert_invalid(&m.finish(), "table size");

    // Memory: 65,537 pages.
    let mut m = Module::new();
    let mut mems = MemorySection::new();
    mems.memory(MemoryType {
        minimum: limits::MAX_MEMORY_PAGES + 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    m.section(&mems);
    assert_invalid(&m.finish(), "memory size must be at most");
}

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
