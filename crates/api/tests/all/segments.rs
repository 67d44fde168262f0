//! Instantiation applies segments in the spec's order, whether a memory
//! is filled by copying its data segments or by mapping its
//! copy-on-write image: what a trap in the middle leaves behind is the
//! same either way.

use kiln::*;

fn engine(images: bool) -> Engine {
    let mut c = Config::new();
    c.memory_init_cow(images);
    Engine::new(&c).unwrap()
}

fn trap_of(r: Result<Instance>) -> Option<Trap> {
    r.err().and_then(|e| e.downcast_ref::<Trap>().copied())
}

#[test]
fn empty_data_segment_past_the_end_traps_with_and_without_images() {
    for images in [true, false] {
        let engine = engine(images);
        for (wat, traps) in [
            // Offset exactly at the end: in bounds for an empty segment.
            (r#"(module (memory 1) (data (i32.const 65536) ""))"#, false),
            (r#"(module (memory 1) (data (i32.const 65537) ""))"#, true),
            // With another segment that would get an image on its own.
            (
                r#"(module (memory 1) (data (i32.const 0) "abc") (data (i32.const 70000) ""))"#,
                true,
            ),
            (r#"(module (memory 0) (data (i32.const 1) ""))"#, true),
        ] {
            let module = Module::new(&engine, wat).unwrap();
            let mut store = Store::new(&engine, ());
            let r = Instance::new(&mut store, &module, &[]);
            if traps {
                assert_eq!(
                    trap_of(r),
                    Some(Trap::MemoryOutOfBounds),
                    "images {images}: {wat}"
                );
            } else {
                assert!(r.is_ok(), "images {images}: {wat}");
            }
        }
    }
}

/// Module `b` writes its `peek` function into an imported table, then an
/// element segment traps. `peek` stays reachable through the table; the
/// spec's order (all element segments, then all data segments) means its
/// memory was never initialized.
#[test]
fn element_trap_leaves_memory_uninitialized_with_and_without_images() {
    for images in [true, false] {
        let engine = engine(images);
        let a = Module::new(
            &engine,
            r#"(module
              (type $t (func (param i32) (result i32)))
              (table (export "t") 2 funcref)
              (func (export "call0") (param i32) (result i32)
                (call_indirect (type $t) (local.get 0) (i32.const 0))))"#,
        )
        .unwrap();
        let b = Module::new(
            &engine,
            r#"(module
              (import "a" "t" (table 2 funcref))
              (memory 1)
              (func $peek (param i32) (result i32) (i32.load8_u (local.get 0)))
              (elem (i32.const 0) $peek)
              (elem (i32.const 5) $peek)
              (data (i32.const 0) "data"))"#,
        )
        .unwrap();
        let mut store = Store::new(&engine, ());
        let ia = Instance::new(&mut store, &a, &[]).unwrap();
        let t = ia.get_table(&mut store, "t").unwrap();
        let r = Instance::new(&mut store, &b, &[t.into()]);
        assert_eq!(trap_of(r), Some(Trap::TableOutOfBounds));
        let call0 = ia.get_typed_func::<i32, i32>(&mut store, "call0").unwrap();
        for i in 0..4 {
            assert_eq!(call0.call(&mut store, i).unwrap(), 0, "images {images}");
        }
    }
}

/// A data segment for another memory traps between two segments of an
/// imaged memory: the first is applied, the second is not.
#[test]
fn data_trap_between_segments_of_an_imaged_memory() {
    for images in [true, false] {
        let mut c = Config::new();
        c.memory_init_cow(images).wasm_multi_memory(true);
        let engine = Engine::new(&c).unwrap();
        let a = Module::new(
            &engine,
            r#"(module
              (type $t (func (param i32) (result i32)))
              (table (export "t") 1 funcref)
              (func (export "call0") (param i32) (result i32)
                (call_indirect (type $t) (local.get 0) (i32.const 0))))"#,
        )
        .unwrap();
        let b = Module::new(
            &engine,
            r#"(module
              (import "a" "t" (table 1 funcref))
              (memory $m 1)
              (memory $n 1)
              (func $peek (param i32) (result i32) (i32.load8_u $m (local.get 0)))
              (elem (i32.const 0) $peek)
              (data (memory $m) (i32.const 0) "ab")
              (data (memory $n) (i32.const 65535) "too long")
              (data (memory $m) (i32.const 2) "cd"))"#,
        )
        .unwrap();
        let mut store = Store::new(&engine, ());
        let ia = Instance::new(&mut store, &a, &[]).unwrap();
        let t = ia.get_table(&mut store, "t").unwrap();
        let r = Instance::new(&mut store, &b, &[t.into()]);
        assert_eq!(trap_of(r), Some(Trap::MemoryOutOfBounds));
        let call0 = ia.get_typed_func::<i32, i32>(&mut store, "call0").unwrap();
        let bytes: Vec<i32> = (0..4).map(|i| call0.call(&mut store, i).unwrap()).collect();
        assert_eq!(
            bytes,
            vec![i32::from(b'a'), i32::from(b'b'), 0, 0],
            "images {images}"
        );
    }
}

/// The name of the mapping that holds `addr`, from `/proc/self/maps`.
fn mapping_name(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let range = parts.next().unwrap();
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).unwrap(),
            usize::from_str_radix(hi, 16).unwrap(),
        );
        if (lo..hi).contains(&addr) {
            return parts.nth(4).unwrap_or("").to_string();
        }
    }
    panic!("{addr:#x} is not mapped");
}

/// Where an image applies it is really mapped (the memory's first page
/// belongs to the module's memfd, not to anonymous memory), and the
/// contents agree with the copy path's.
#[test]
fn imaged_and_copied_memories_read_the_same() {
    let wat = r#"(module (memory (export "m") 2)
        (data (i32.const 0) "first") (data (i32.const 65536) "second")
        (data (i32.const 3) "ST"))"#;
    let mut seen = Vec::new();
    for images in [true, false] {
        let engine = engine(images);
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let i = Instance::new(&mut store, &module, &[]).unwrap();
        let m = i.get_memory(&mut store, "m").unwrap();
        let name = mapping_name(m.data(&store).as_ptr() as usize);
        assert_eq!(
            name.contains("kiln-memory-image"),
            images,
            "images {images}: mapped from {name:?}"
        );
        seen.push(m.data(&store).to_vec());
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(&seen[0][..5], b"firST");
    assert_eq!(&seen[0][65536..65542], b"second");
}
