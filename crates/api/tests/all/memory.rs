use crate::instantiate;
use kiln::*;

#[test]
fn sieve_over_linear_memory() {
    let (mut store, i) = instantiate(include_str!("../../../../examples/sieve.wat"));
    let count = i
        .get_typed_func::<i32, i32>(&mut store, "count_primes")
        .unwrap();
    assert_eq!(count.call(&mut store, 100).unwrap(), 25);
    assert_eq!(count.call(&mut store, 100_000).unwrap(), 9592);
}

#[test]
fn grow_data_and_out_of_bounds() {
    let (mut store, i) = instantiate(
        r#"(module
             (memory (export "mem") 1 3)
             (data (i32.const 16) "kiln")
             (func (export "load") (param i32) (result i32) local.get 0 i32.load8_u)
             (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
             (func (export "size") (result i32) memory.size))"#,
    );
    let mem = i.get_memory(&mut store, "mem").unwrap();
    assert_eq!(&mem.data(&store)[16..20], b"kiln");
    let load = i.get_typed_func::<i32, i32>(&mut store, "load").unwrap();
    let grow = i.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    let size = i.get_typed_func::<(), i32>(&mut store, "size").unwrap();
    assert_eq!(load.call(&mut store, 17).unwrap(), i32::from(b'i'));
    let e = load.call(&mut store, 65536).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>().copied(),
        Some(Trap::MemoryOutOfBounds)
    );
    assert_eq!(grow.call(&mut store, 1).unwrap(), 1);
    assert_eq!(size.call(&mut store, ()).unwrap(), 2);
    assert_eq!(load.call(&mut store, 65536).unwrap(), 0);
    assert_eq!(grow.call(&mut store, 5).unwrap(), -1, "past the maximum");
    mem.data_mut(&mut store)[70000] = 9;
    assert_eq!(load.call(&mut store, 70000).unwrap(), 9);
    assert_eq!(mem.grow(&mut store, 1).unwrap(), 2);
    assert_eq!(size.call(&mut store, ()).unwrap(), 3);
    // The whole 32-bit range traps cleanly, however far out.
    for addr in [0x0003_0000u32, 0x7fff_ffff, 0xffff_fffc] {
        let e = load.call(&mut store, addr as i32).unwrap_err();
        assert_eq!(
            e.downcast_ref::<Trap>().copied(),
            Some(Trap::MemoryOutOfBounds)
        );
    }
}

#[test]
fn bulk_memory_and_passive_data() {
    let (mut store, i) = instantiate(
        r#"(module
             (memory (export "mem") 1)
             (data $d "hello")
             (func (export "run")
               (memory.init $d (i32.const 100) (i32.const 0) (i32.const 5))
               (memory.copy (i32.const 200) (i32.const 100) (i32.const 5))
               (memory.fill (i32.const 300) (i32.const 42) (i32.const 3))
               data.drop $d)
             (func (export "bad") (memory.fill (i32.const 65535) (i32.const 0) (i32.const 2))))"#,
    );
    let run = i.get_typed_func::<(), ()>(&mut store, "run").unwrap();
    run.call(&mut store, ()).unwrap();
    let mem = i.get_memory(&mut store, "mem").unwrap();
    assert_eq!(&mem.data(&store)[200..205], b"hello");
    assert_eq!(&mem.data(&store)[300..303], &[42, 42, 42]);
    let bad = i.get_typed_func::<(), ()>(&mut store, "bad").unwrap();
    assert_eq!(
        bad.call(&mut store, ())
            .unwrap_err()
            .downcast_ref::<Trap>()
            .copied(),
        Some(Trap::MemoryOutOfBounds)
    );
}

const IMAGED: &str = r#"(module
  (memory (export "mem") 2 4)
  (data (i32.const 0) "head")
  (data (i32.const 70000) "second page")
  (data (i32.const 2) "AD")
  (func (export "poke") (param i32 i32) local.get 0 local.get 1 i32.store8)
  (func (export "peek") (param i32) (result i32) local.get 0 i32.load8_u)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))"#;

fn check_image_semantics(cow: bool) {
    let mut c = Config::new();
    c.memory_init_cow(cow);
    let engine = Engine::new(&c).unwrap();
    let module = Module::new(&engine, IMAGED).unwrap();
    let mut store = Store::new(&engine, ());
    let a = Instance::new(&mut store, &module, &[]).unwrap();
    let b = Instance::new(&mut store, &module, &[]).unwrap();
    let (ma, mb) = (
        a.get_memory(&mut store, "mem").unwrap(),
        b.get_memory(&mut store, "mem").unwrap(),
    );
    // Segments applied in order: the later "AD" overwrites "ad".
    assert_eq!(&ma.data(&store)[..4], b"heAD");
    assert_eq!(&ma.data(&store)[70000..70011], b"second page");
    // Writing one instance's memory leaves the other's (and the image) alone.
    let poke = a
        .get_typed_func::<(i32, i32), ()>(&mut store, "poke")
        .unwrap();
    poke.call(&mut store, (0, i32::from(b'X'))).unwrap();
    ma.data_mut(&mut store)[70000] = b'S';
    assert_eq!(&ma.data(&store)[..4], b"XeAD");
    assert_eq!(&mb.data(&store)[..4], b"heAD");
    assert_eq!(mb.data(&store)[70000], b's');
    // Growing past the image works, new pages are zero.
    let grow = a.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
    assert_eq!(grow.call(&mut store, 2).unwrap(), 2);
    let peek = a.get_typed_func::<i32, i32>(&mut store, "peek").unwrap();
    assert_eq!(peek.call(&mut store, 3 * 65536 + 5).unwrap(), 0);
    assert_eq!(peek.call(&mut store, 70001).unwrap(), i32::from(b'e'));
    // A fresh instance still starts from the pristine image.
    let c2 = Instance::new(&mut store, &module, &[]).unwrap();
    let mc = c2.get_memory(&mut store, "mem").unwrap();
    assert_eq!(&mc.data(&store)[..4], b"heAD");
    assert_eq!(mc.data(&store)[70000], b's');
}

#[test]
fn memory_images_behave_like_copied_segments() {
    check_image_semantics(true);
    check_image_semantics(false);
}

#[test]
fn segments_depending_on_imports_or_out_of_bounds_still_work() {
    let engine = Engine::default();
    // Offset from an imported global: no image, copied at instantiation.
    let module = Module::new(
        &engine,
        r#"(module (import "" "g" (global i32)) (memory (export "mem") 1)
             (data (global.get 0) "via global"))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let g = Global::new(
        &mut store,
        GlobalType::new(ValType::I32, Mutability::Const),
        Val::I32(100),
    )
    .unwrap();
    let i = Instance::new(&mut store, &module, &[g.into()]).unwrap();
    let m = i.get_memory(&mut store, "mem").unwrap();
    assert_eq!(&m.data(&store)[100..110], b"via global");
    // A segment past the minimum size: no image; instantiation traps.
    let module = Module::new(
        &engine,
        r#"(module (memory 1 2) (data (i32.const 65535) "xy"))"#,
    )
    .unwrap();
    let e = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>().copied(),
        Some(Trap::MemoryOutOfBounds)
    );
}
