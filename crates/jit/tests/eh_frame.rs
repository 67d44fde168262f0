//! `CodeMemory` refuses an object whose `.eh_frame` would lead the system
//! unwinder astray, and registers a sound one (see `src/unwind.rs`).
//!
//! Each damaged object must fail to load *and* leave the process able to
//! unwind: before the check, a damaged section was registered as it was,
//! and the next backtrace captured anywhere in the process crashed inside
//! the unwinder.

use kiln_jit::{CodeMemory, JitError};
use object::{Object as _, ObjectSection as _};

/// A compiled object with unwind information, and where its `.eh_frame`
/// lies in it.
fn object_with_eh_frame() -> (Vec<u8>, std::ops::Range<usize>) {
    let wasm = wat::parse_str(
        r#"(module
             (func $f (export "f") (param i32) (result i32)
               local.get 0 i32.const 1 i32.add call $g)
             (func $g (param i32) (result i32) local.get 0 i32.const 3 i32.mul))"#,
    )
    .unwrap();
    let t = kiln_environ::translate_module(&wasm, kiln_environ::default_features()).unwrap();
    let compiled = kiln_cranelift::Compiler::new(Default::default())
        .unwrap()
        .compile_module(t, "")
        .unwrap();
    let file = object::File::parse(&compiled.object[..]).unwrap();
    let section = file
        .section_by_name(".eh_frame")
        .expect("unwind info by default");
    let (at, len) = section.file_range().unwrap();
    let range = at as usize..(at + len) as usize;
    (compiled.object, range)
}

fn word(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn set_word(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

/// Loads `object`, expecting an `.eh_frame` refusal, then unwinds.
fn refused(object: &[u8], what: &str) {
    match CodeMemory::new(object) {
        Err(JitError::BadObject(why)) => assert!(why.starts_with(".eh_frame"), "{what}: {why}"),
        Err(e) => panic!("{what}: refused for another reason: {e}"),
        Ok(_) => panic!("{what}: loaded"),
    }
    // The unwinder walks every registered section here.
    let bt = std::backtrace::Backtrace::force_capture();
    assert!(!format!("{bt}").is_empty());
}

#[test]
fn a_sound_eh_frame_is_registered_and_backtraces_work() {
    let (object, _) = object_with_eh_frame();
    let code = CodeMemory::new(&object).expect("loads");
    let bt = std::backtrace::Backtrace::force_capture();
    assert!(!format!("{bt}").is_empty());
    drop(code);
}

#[test]
fn damaged_eh_frames_are_refused() {
    let (object, eh) = object_with_eh_frame();
    // The records: (offset in the section, length) up to the terminator.
    let mut records = Vec::new();
    let mut at = 0;
    while word(&object[eh.clone()], at) != 0 {
        let len = word(&object[eh.clone()], at) as usize;
        records.push((at, len));
        at += 4 + len;
    }
    assert!(
        records.len() >= 3,
        "one CIE and an FDE per function: {records:?}"
    );
    let (fde, _) = records[1];

    let mut o = object.clone();
    set_word(&mut o, eh.start, 0x7fff_fff0);
    refused(&o, "a length far past the section");

    let mut o = object.clone();
    set_word(&mut o, eh.start, u32::MAX);
    refused(&o, "a 64-bit length");

    let mut o = object.clone();
    set_word(&mut o, eh.start + fde + 4, 0x4000_0000);
    refused(&o, "a CIE pointer outside the section");

    let mut o = object.clone();
    let first_len = records[0].1 as u32;
    set_word(&mut o, eh.start, first_len + 4);
    refused(&o, "records that do not tile the section");

    let mut o = object.clone();
    // The FDE's initial location (pc-relative) moved far from the text.
    let pc = word(&o, eh.start + fde + 8);
    set_word(&mut o, eh.start + fde + 8, pc.wrapping_add(0x1000_0000));
    refused(&o, "an FDE for code outside the text");

    let mut o = object.clone();
    let end = eh.end;
    set_word(&mut o, end - 4, 0x10);
    refused(&o, "no terminator");

    // The CIE's augmentation string (after length, id and version) loses
    // its terminating NUL and the rest of the CIE becomes garbage.
    let mut o = object.clone();
    for b in &mut o[eh.start + 9..eh.start + 4 + records[0].1] {
        *b = b'z';
    }
    refused(&o, "an unterminated augmentation string");
}
