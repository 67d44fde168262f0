//! `kiln-jit`'s contract, tested without the rest of Kiln: what
//! `CodeMemory` accepts, what it refuses, and the protections it leaves.

use kiln_jit::{CodeMemory, JitError};
use object::write::{Object, Relocation, StandardSection, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationEncoding, RelocationFlags, RelocationKind,
    SymbolFlags, SymbolKind, SymbolScope,
};

/// An object compiled by `kiln-cranelift` from a small module.
fn compiled() -> Vec<u8> {
    let wasm = wat::parse_str(r#"(module (func (export "f") (result i32) i32.const 7))"#).unwrap();
    let t = kiln_environ::translate_module(&wasm, kiln_environ::default_features()).unwrap();
    kiln_cranelift::Compiler::new(Default::default())
        .unwrap()
        .compile_module(t, "")
        .unwrap()
        .object
}

/// The permissions (`r-xp` and the like) of the mapping holding `addr`,
/// from `/proc/self/maps`.
fn perms(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (range, perms) = (f.next().unwrap(), f.next().unwrap());
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).unwrap(),
            usize::from_str_radix(hi, 16).unwrap(),
        );
        if (lo..hi).contains(&addr) {
            return perms.to_string();
        }
    }
    panic!("{addr:#x} is not mapped")
}

#[test]
fn text_is_executable_and_nothing_is_writable() {
    let object = compiled();
    let code = CodeMemory::new(&object).unwrap();
    let text = code.text();
    assert!(!text.is_empty());
    assert_eq!(perms(text.as_ptr() as usize), "r-xp");
    assert_eq!(perms(text.as_ptr() as usize + text.len() - 1), "r-xp");
    // The headers and the other sections: read-only.
    assert_eq!(perms(code.object().as_ptr() as usize), "r--p");
    // The loaded bytes are the object's, unchanged.
    assert_eq!(code.object(), &object[..]);
    // `text_range` is where the text lies in memory.
    let range = code.text_range();
    assert_eq!(range.start, text.as_ptr() as usize);
    assert_eq!(range.len(), text.len());
}

#[test]
fn a_mapped_file_loads_the_same_text() {
    let object = compiled();
    let path = std::env::temp_dir().join(format!("kiln-jit-contract-{}.o", std::process::id()));
    std::fs::write(&path, &object).unwrap();
    let mapped = CodeMemory::from_file(&path, &[".eh_frame"]).unwrap();
    let copied = CodeMemory::new(&object).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(mapped.text(), copied.text());
    assert_eq!(perms(mapped.text().as_ptr() as usize), "r-xp");
    assert_eq!(mapped.section(".eh_frame"), copied.section(".eh_frame"));
}

#[test]
fn objects_with_relocations_are_refused() {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let text = obj.section_id(StandardSection::Text);
    obj.append_section_data(text, &[0x90; 16], 4096);
    let target = obj.add_symbol(Symbol {
        name: b"elsewhere".to_vec(),
        value: 0,
        size: 0,
        kind: SymbolKind::Text,
        scope: SymbolScope::Linkage,
        weak: false,
        section: SymbolSection::Undefined,
        flags: SymbolFlags::None,
    });
    obj.add_relocation(
        text,
        Relocation {
            offset: 4,
            symbol: target,
            addend: -4,
            flags: RelocationFlags::Generic {
                kind: RelocationKind::Relative,
                encoding: RelocationEncoding::Generic,
                size: 32,
            },
        },
    )
    .unwrap();
    let bytes = obj.write().unwrap();
    assert!(matches!(
        CodeMemory::new(&bytes),
        Err(JitError::HasRelocations(1))
    ));
}

#[test]
fn what_is_not_a_loadable_object_is_refused() {
    let object = compiled();
    for bad in [
        &b""[..],
        &b"\x7fELF"[..],
        &object[..64],
        &object[..object.len() / 2],
    ] {
        assert!(matches!(CodeMemory::new(bad), Err(JitError::BadObject(_))));
    }
    // An object without a text section.
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let data = obj.section_id(StandardSection::Data);
    obj.append_section_data(data, &[1; 8], 8);
    let bytes = obj.write().unwrap();
    assert!(matches!(
        CodeMemory::new(&bytes),
        Err(JitError::BadObject(why)) if why.contains(".text")
    ));
}
