use kiln::*;

const WAT: &str = r#"(module $m
  (import "env" "add" (func $add (param i32 i32) (result i32)))
  (memory (export "mem") 1)
  (data (i32.const 8) "kiln")
  (table 2 funcref) (elem (i32.const 0) $sq)
  (type $t (func (param i32) (result i32)))
  (func $sq (param i32) (result i32) local.get 0 local.get 0 i32.mul)
  (func (export "run") (param i32) (result i32)
    local.get 0 i32.const 0 call_indirect (type $t)
    i32.const 8 i32.load8_u call $add)
  (func (export "trap") unreachable))"#;

/// A linker providing `WAT`'s import.
fn linker(engine: &Engine) -> Linker<()> {
    let mut linker = Linker::new(engine);
    linker
        .func_wrap("env", "add", |a: i32, b: i32| a + b)
        .unwrap();
    linker
}

fn run(engine: &Engine, module: &Module) -> i32 {
    let linker = linker(engine);
    let mut store = Store::new(engine, ());
    let i = linker.instantiate(&mut store, module).unwrap();
    let trap = i.get_typed_func::<(), ()>(&mut store, "trap").unwrap();
    let e = trap.call(&mut store, ()).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>(),
        Some(&Trap::UnreachableCodeReached)
    );
    let t = e.downcast_ref::<WasmBacktrace>().expect("a backtrace");
    assert!(t.frames()[0].module_offset().is_some());
    i.get_typed_func::<i32, i32>(&mut store, "run")
        .unwrap()
        .call(&mut store, 5)
        .unwrap()
}

#[test]
fn serialize_then_deserialize_from_bytes_and_file() {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT).unwrap();
    assert_eq!(run(&engine, &module), 25 + i32::from(b'k'));
    let bytes = module.serialize().unwrap();
    // SAFETY: bytes we just produced.
    let loaded = unsafe { Module::deserialize(&engine, &bytes) }.unwrap();
    assert_eq!(run(&engine, &loaded), 25 + i32::from(b'k'));
    assert_eq!(loaded.name(), Some("m"));

    let dir = std::env::temp_dir().join(format!("kiln-ser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.cwasm");
    std::fs::write(&path, engine.precompile_module(WAT.as_bytes()).unwrap()).unwrap();
    // SAFETY: a file we just wrote.
    let mapped = unsafe { Module::deserialize_file(&engine, &path) }.unwrap();
    assert_eq!(run(&engine, &mapped), 25 + i32::from(b'k'));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn foreign_truncated_and_corrupt_artifacts_are_errors() {
    let engine = Engine::default();
    let bytes = Module::new(&engine, WAT).unwrap().serialize().unwrap();
    let load = |b: &[u8]| {
        // SAFETY: the point of the test: none of these may load.
        unsafe { Module::deserialize(&engine, b) }
            .map(|_| ())
            .unwrap_err()
    };
    load(b"not an object at all");
    load(&[]);
    for cut in [16, 64, bytes.len() / 2, bytes.len() - 1] {
        load(&bytes[..cut]);
    }
    // Another version of Kiln wrote it.
    let mut other = bytes.clone();
    let at = find(&other, b"version=").unwrap() + 8;
    other[at] = b'9';
    assert!(matches!(
        load(&other).downcast_ref::<ArtifactError>(),
        Some(ArtifactError::Incompatible(_))
    ));
    // Another configuration compiled it.
    let mut c = Config::new();
    c.consume_fuel(true);
    let fuel_engine = Engine::new(&c).unwrap();
    let fuel_bytes = Module::new(&fuel_engine, WAT).unwrap().serialize().unwrap();
    assert!(matches!(
        load(&fuel_bytes).downcast_ref::<ArtifactError>(),
        Some(ArtifactError::Incompatible(_))
    ));
    // Every single-byte corruption of the metadata sections is either
    // refused with an error or still describes code inside the text
    // section; decoding never panics. (The code is not run: a flipped
    // trap code still loads.)
    for name in [
        ".kiln.info",
        ".kiln.funcs",
        ".kiln.w2n",
        ".kiln.traps",
        ".kiln.wasm",
    ] {
        let r = object_section(&bytes, name);
        for i in r.clone().step_by(3) {
            let mut b = bytes.clone();
            b[i] ^= 0xa5;
            // SAFETY: loaded only, never run.
            let _ = unsafe { Module::deserialize(&engine, &b) };
        }
    }
}

#[test]
fn function_table_pointing_outside_the_text_is_rejected() {
    let engine = Engine::default();
    let bytes = Module::new(&engine, "(module (func (export \"f\")))")
        .unwrap()
        .serialize()
        .unwrap();
    let obj = object_section(&bytes, ".kiln.funcs");
    let mut bad = bytes.clone();
    // Move the body of function 0 far past the end of the text.
    bad[obj.start..obj.start + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    // SAFETY: must be refused before any code runs.
    let e = unsafe { Module::deserialize(&engine, &bad) }
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(
            e.downcast_ref::<ArtifactError>(),
            Some(ArtifactError::Corrupt(_))
        ),
        "{e}"
    );
}

#[test]
fn foreign_truncated_and_corrupt_files_are_errors() {
    // `deserialize_file` reads the section headers with `pread` rather than
    // through the mapping: the same artifacts must fail the same way.
    let engine = Engine::default();
    let bytes = Module::new(&engine, WAT).unwrap().serialize().unwrap();
    let dir = std::env::temp_dir().join(format!("kiln-ser-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.cwasm");
    let load = |b: &[u8]| {
        std::fs::write(&path, b).unwrap();
        // SAFETY: the point of the test: none of these may load.
        unsafe { Module::deserialize_file(&engine, &path) }
            .map(|_| ())
            .unwrap_err()
    };
    load(b"not an object at all");
    load(&[]);
    for cut in [16, 64, bytes.len() / 2, bytes.len() - 1] {
        load(&bytes[..cut]);
    }
    // Section headers pointing past the end of the file.
    let mut far = bytes.clone();
    far[0x28..0x30].copy_from_slice(&(bytes.len() as u64 - 8).to_le_bytes());
    load(&far);
    // Damage in a section read at load, and in the section names.
    for name in [".kiln.funcs", ".kiln.traps", ".kiln.wasm"] {
        let r = object_section(&bytes, name);
        let mut b = bytes.clone();
        b[r.start] ^= 0x5a;
        load(&b);
    }
    // A section name (".text" is found by name).
    let names = object_section(&bytes, ".shstrtab");
    let at = names.start + find(&bytes[names.clone()], b".text\0").unwrap();
    let mut b = bytes.clone();
    b[at + 1] = b'x';
    load(&b);
    // Undamaged, it loads and runs.
    std::fs::write(&path, &bytes).unwrap();
    // SAFETY: a file we just wrote.
    let m = unsafe { Module::deserialize_file(&engine, &path) }.unwrap();
    assert_eq!(run(&engine, &m), 25 + i32::from(b'k'));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_address_map_loads_but_gives_no_offsets() {
    // The address map is verified on first use, not at load (it is only
    // needed for backtraces): damage there costs the offsets, nothing else.
    let engine = Engine::default();
    let bytes = Module::new(&engine, WAT).unwrap().serialize().unwrap();
    let map = object_section(&bytes, ".kiln.addrmap");
    let mut bad = bytes.clone();
    bad[map.end - 1] ^= 0x40;
    // SAFETY: only the address map is damaged, and it is checked before use.
    let damaged = unsafe { Module::deserialize(&engine, &bad) }.unwrap();
    assert_eq!(run_trap_offset(&engine, &damaged), None);
    // The same artifact undamaged gives the offset.
    // SAFETY: bytes we just produced.
    let good = unsafe { Module::deserialize(&engine, &bytes) }.unwrap();
    assert!(run_trap_offset(&engine, &good).is_some());
}

#[test]
fn damaged_frame_table_loads_but_never_runs() {
    // The frame table is what the signal handler trusts to resume the
    // host after a trap. It is verified before the first instantiation,
    // not at load: a damaged one must stop the module from running.
    let engine = Engine::default();
    let bytes = Module::new(&engine, WAT).unwrap().serialize().unwrap();
    let frames = object_section(&bytes, ".kiln.frames");
    let mut bad = bytes.clone();
    bad[frames.end - 2] ^= 0x10;
    // SAFETY: only the frame table is damaged, and it is checked before
    // any code runs.
    let damaged = unsafe { Module::deserialize(&engine, &bad) }.unwrap();
    let linker = linker(&engine);
    let mut store = Store::new(&engine, ());
    for _ in 0..2 {
        let e = linker.instantiate(&mut store, &damaged).unwrap_err();
        assert!(
            e.to_string().contains("frame table checksum mismatch"),
            "{e}"
        );
    }
    // SAFETY: bytes we just produced.
    let good = unsafe { Module::deserialize(&engine, &bytes) }.unwrap();
    assert!(run_trap_offset(&engine, &good).is_some());
}

/// Calls `WAT`'s `trap` and returns the Wasm offset of the trapping frame.
fn run_trap_offset(engine: &Engine, module: &Module) -> Option<usize> {
    let linker = linker(engine);
    let mut store = Store::new(engine, ());
    let i = linker.instantiate(&mut store, module).unwrap();
    let trap = i.get_typed_func::<(), ()>(&mut store, "trap").unwrap();
    let e = trap.call(&mut store, ()).unwrap_err();
    e.downcast_ref::<WasmBacktrace>()
        .expect("a backtrace")
        .frames()[0]
        .module_offset()
}

#[test]
fn large_artifact_from_bytes_runs_and_traps() {
    // Past a megabyte, `deserialize` copies into huge pages (where the
    // kernel has them): the code must run, trap and name its frames as
    // from small pages.
    let mut wat = String::from("(module\n");
    wat.push_str("  (func $leaf (param i32) (result i32) local.get 0 i32.const 3 i32.mul)\n");
    for f in 0..40 {
        wat.push_str(&format!(
            "  (func $f{f} (export \"f{f}\") (param i32) (result i32)\n"
        ));
        for _ in 0..2000 {
            wat.push_str("    local.get 0 call $leaf local.set 0\n");
        }
        wat.push_str("    local.get 0)\n");
    }
    wat.push_str("  (func (export \"trap\") unreachable))");
    let engine = Engine::default();
    let bytes = Module::new(&engine, &wat).unwrap().serialize().unwrap();
    assert!(bytes.len() >= 1 << 20, "{} bytes", bytes.len());
    // SAFETY: bytes we just produced.
    let module = unsafe { Module::deserialize(&engine, &bytes) }.unwrap();
    assert_eq!(module.serialize().unwrap(), bytes);
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    let f = i.get_typed_func::<i32, i32>(&mut store, "f39").unwrap();
    assert_eq!(f.call(&mut store, 1).unwrap(), 3i32.wrapping_pow(2000));
    let trap = i.get_typed_func::<(), ()>(&mut store, "trap").unwrap();
    let e = trap.call(&mut store, ()).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>(),
        Some(&Trap::UnreachableCodeReached)
    );
    let t = e.downcast_ref::<WasmBacktrace>().expect("a backtrace");
    assert!(t.frames()[0].module_offset().is_some());
    assert_eq!(t.frames()[0].func_index(), 41);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn object_section(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    // The section's file range, via the ELF section headers.
    let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
    let shentsize = u16::from_le_bytes(bytes[0x3a..0x3c].try_into().unwrap()) as usize;
    let shnum = u16::from_le_bytes(bytes[0x3c..0x3e].try_into().unwrap()) as usize;
    let shstrndx = u16::from_le_bytes(bytes[0x3e..0x40].try_into().unwrap()) as usize;
    let sh = |i: usize| &bytes[shoff + i * shentsize..shoff + (i + 1) * shentsize];
    let field = |h: &[u8], o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap()) as usize;
    let strtab = field(sh(shstrndx), 0x18);
    for i in 0..shnum {
        let h = sh(i);
        let name_off = u32::from_le_bytes(h[0..4].try_into().unwrap()) as usize;
        let n = &bytes[strtab + name_off..];
        let n = &n[..n.iter().position(|b| *b == 0).unwrap()];
        if n == name.as_bytes() {
            let (off, size) = (field(h, 0x18), field(h, 0x20));
            return off..off + size;
        }
    }
    panic!("no section {name}")
}
