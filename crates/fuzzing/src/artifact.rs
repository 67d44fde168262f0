//! Corrupted compiled artifacts into `Module::deserialize`.
//!
//! `Module::deserialize` is `unsafe` for one documented reason: the machine
//! code of an artifact runs as it is, so a crafted artifact can contain any
//! code. Everything else it promises to check: the version, the target and
//! settings, the ELF structure (offsets, counts, no relocations) and the
//! metadata's checksums, so that a truncated or corrupted file is an error.
//! This target holds it to that.
//!
//! An input picks one of a few modules (compiled once per process), or
//! generates one with wasm-smith, serializes it, then truncates the artifact
//! and edits bytes as the input says. Loading must return an error or a
//! module; a module whose loaded text and `.eh_frame` are byte-for-byte
//! the original's must behave like the original: the same imports and
//! exports, and the same results from calling each exported function that
//! takes no arguments.
//!
//! Those two are what loading does not fully check: the code runs as it
//! is, and the unwind information is checked for its structure (so that
//! the system unwinder's walks over it stay inside it, see `kiln-jit`'s
//! `unwind.rs`) but not for what it says about the code, which is as
//! trusted as the code itself. A fuzzer that edits either therefore only
//! gets to load, never to run.

use crate::smith;
use arbitrary::Unstructured;
use std::cell::RefCell;

/// Modules in the text format to start from: small, but with every part of
/// an artifact (data, element segments, traps, calls, globals, a start
/// function).
const SEEDS: &[&str] = &[
    r#"(module
        (memory (export "mem") 1 2)
        (data (i32.const 16) "kiln artifact")
        (global $g (export "g") (mut i32) (i32.const 7))
        (table (export "t") 4 funcref)
        (elem (i32.const 1) $inc $load)
        (func $inc (export "inc") (result i32)
          global.get $g i32.const 1 i32.add global.set $g global.get $g)
        (func $load (export "load") (result i32) i32.const 16 i32.load)
        (func (export "indirect") (result i32) i32.const 1 call_indirect (result i32))
        (func (export "trap") (result i32) i32.const 1 i32.const 0 i32.div_u)
        (func $start global.get $g i32.const 2 i32.mul global.set $g)
        (start $start))"#,
    r#"(module
        (import "env" "f" (func $f (param i32) (result i32)))
        (func $fib (export "fib") (param i32) (result i32)
          local.get 0 i32.const 2 i32.lt_u
          if (result i32) local.get 0
          else local.get 0 i32.const 1 i32.sub call $fib
               local.get 0 i32.const 2 i32.sub call $fib i32.add end)
        (func (export "fib20") (result i32) i32.const 20 call $fib)
        (func (export "deep") (result i64) (local i64) i64.const 3 v128.const i64x2 1 2 i64x2.extract_lane 1 i64.add))"#,
];

thread_local! {
    /// The artifacts of `SEEDS` for each engine configuration, built on first use.
    static SEED_ARTIFACTS: RefCell<Option<Vec<Vec<u8>>>> = const { RefCell::new(None) };
}

/// Runs one input; panics on a finding.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(choice) = u.arbitrary::<u8>() else {
        return;
    };
    let engine = engine();
    let original = if usize::from(choice) < SEEDS.len() * 64 {
        let i = usize::from(choice) % SEEDS.len();
        SEED_ARTIFACTS.with(|c| {
            c.borrow_mut().get_or_insert_with(|| {
                SEEDS
                    .iter()
                    .map(|wat| {
                        kiln::Module::new(&engine, wat)
                            .and_then(|m| m.serialize())
                            .expect("the seed modules compile")
                    })
                    .collect()
            })[i]
                .clone()
        })
    } else {
        let mut config = smith::config(smith::Features::WASM2);
        config.max_funcs = 5;
        config.max_imports = 0;
        let Some(wasm) = smith::module(config, &mut u) else {
            return;
        };
        let Ok(m) = kiln::Module::from_binary(&engine, &wasm) else {
            panic!("Kiln rejects a generated module");
        };
        m.serialize().expect("serialize")
    };
    let Ok(corrupted) = corrupt(&original, &mut u) else {
        return;
    };
    // SAFETY: the code of `corrupted` is either the original's, byte for
    // byte (checked below before anything runs), or is never run: only
    // loading, which must check everything but the code, sees it.
    let loaded = unsafe { kiln::Module::deserialize(&engine, &corrupted) };
    let Ok(loaded) = loaded else {
        return;
    };
    // SAFETY: `original` is an artifact this process just produced.
    let reference =
        unsafe { kiln::Module::deserialize(&engine, &original) }.expect("an intact artifact loads");
    if loaded.text() != reference.text()
        || eh_frame(loaded.object()) != eh_frame(reference.object())
    {
        return;
    }
    compare(&engine, &reference, &loaded);
}

/// The contents of the object's `.eh_frame`, if it has one.
fn eh_frame(object: &[u8]) -> Option<&[u8]> {
    use object::{Object as _, ObjectSection as _};
    let file = object::File::parse(object).ok()?;
    let (at, len) = file.section_by_name(".eh_frame")?.file_range()?;
    object.get(usize::try_from(at).ok()?..usize::try_from(at + len).ok()?)
}

fn engine() -> kiln::Engine {
    smith::kiln_engine(smith::Features::WASM2, false)
}

/// `artifact` truncated and edited as `u` says.
fn corrupt(artifact: &[u8], u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let mut bytes = artifact.to_vec();
    if u.arbitrary::<bool>()? {
        let len = u.int_in_range(0..=bytes.len())?;
        bytes.truncate(len);
    }
    let edits = u.int_in_range(0..=16u8)?;
    for _ in 0..edits {
        if bytes.is_empty() {
            break;
        }
        // Offsets are drawn as u32 so that inputs stay meaningful when the
        // artifact's size changes a little.
        let at = u.arbitrary::<u32>()? as usize % bytes.len();
        match u.int_in_range(0..=3u8)? {
            0 => bytes[at] = u.arbitrary()?,
            1 => bytes[at] ^= 1 << u.int_in_range(0..=7)?,
            2 => {
                let v: u32 = u.arbitrary()?;
                let end = (at + 4).min(bytes.len());
                bytes[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
            }
            _ => bytes[at] = 0,
        }
    }
    Ok(bytes)
}

/// Panics unless `loaded` behaves like `reference`.
fn compare(engine: &kiln::Engine, reference: &kiln::Module, loaded: &kiln::Module) {
    let imports = |m: &kiln::Module| {
        m.imports()
            .map(|i| (i.module().to_string(), i.name().to_string(), i.ty()))
            .collect::<Vec<_>>()
    };
    let exports = |m: &kiln::Module| {
        m.exports()
            .map(|e| (e.name().to_string(), e.ty()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        imports(reference),
        imports(loaded),
        "imports of a corrupted artifact"
    );
    assert_eq!(
        exports(reference),
        exports(loaded),
        "exports of a corrupted artifact"
    );
    // What running `m` shows, or `None` when Kiln refuses with an artifact
    // error on first use (the frame and trap tables are checked lazily,
    // each against its checksum: a clear error, as documented).
    let run = |m: &kiln::Module| -> Option<Vec<String>> {
        let refused = |e: &kiln::Error| e.is::<kiln::ArtifactError>();
        let mut store = kiln::Store::new(engine, ());
        let mut linker = kiln::Linker::new(engine);
        linker
            .func_wrap("env", "f", |x: i32| x.wrapping_mul(3))
            .expect("define env.f");
        let instance = match linker.instantiate(&mut store, m) {
            Ok(i) => i,
            Err(e) if refused(&e) => return None,
            Err(e) => {
                return Some(vec![format!(
                    "instantiation: {:?}",
                    e.downcast_ref::<kiln::Trap>()
                )])
            }
        };
        let mut out = Vec::new();
        let exports: Vec<(String, kiln::Extern)> = instance
            .exports(&mut store)
            .map(|e| (e.name().to_string(), e.into_extern()))
            .collect();
        for (name, e) in exports {
            if let Some(f) = e.into_func() {
                let ty = f.ty(&store);
                if ty.params().len() != 0 {
                    continue;
                }
                let mut results: Vec<kiln::Val> = ty
                    .results()
                    .map(|t| kiln::Val::default_for_ty(&t).expect("Kiln types are nullable"))
                    .collect();
                match f.call(&mut store, &[], &mut results) {
                    Err(e) if refused(&e) => return None,
                    Err(e) => {
                        out.push(format!("{name}: trap {:?}", e.downcast_ref::<kiln::Trap>()))
                    }
                    Ok(()) => {
                        let values: Vec<_> = results
                            .iter()
                            .map(|v| crate::oracle::kiln_value(v, &store))
                            .collect();
                        out.push(format!("{name}: {values:?}"));
                    }
                }
            }
        }
        Some(out)
    };
    let expected = run(reference).expect("an intact artifact runs");
    if let Some(actual) = run(loaded) {
        assert_eq!(expected, actual, "behaviour of a corrupted artifact");
    }
}
