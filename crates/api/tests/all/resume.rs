//! A trap hands control back to the host as if the call had returned:
//! the host's callee-saved registers, stack and frame pointers must be
//! exactly what they were (see `traphandlers.rs` in `kiln-runtime`). These
//! tests keep many host values live across trapping calls, through every
//! way a trap can start, and check them afterwards.

use kiln::*;
use std::hint::black_box;

/// `run(mode)` keeps eight values live across a call that, depending on
/// `mode`, returns (0), divides by zero (1), calls a failing host function
/// (2), calls a panicking host function (3), recurses until the stack
/// overflows (4), or traps inside a 16-parameter call (5). `wide` is the
/// 16-parameter function itself, entered directly.
const WAT: &str = r#"
(module
  (import "env" "host" (func $host (param i32) (result i32)))
  (func $deep (param i64) (result i64)
    local.get 0 i64.const 1 i64.add call $deep)
  (func $wide (export "wide")
    (param i32 i64 f32 f64 i32 i64 f32 f64 i32 i64 f32 f64 i32 i64 f32 i32)
    (result i64)
    local.get 15 i32.eqz if unreachable end
    local.get 1 local.get 5 i64.add local.get 9 i64.add local.get 13 i64.add)
  (func $leaf (param $mode i32) (result i32)
    (if (i32.eq (local.get $mode) (i32.const 1))
      (then (drop (i32.div_u (i32.const 1) (i32.sub (local.get $mode) (i32.const 1))))))
    (if (i32.or (i32.eq (local.get $mode) (i32.const 2)) (i32.eq (local.get $mode) (i32.const 3)))
      (then (drop (call $host (local.get $mode)))))
    (if (i32.eq (local.get $mode) (i32.const 4))
      (then (drop (call $deep (i64.const 0)))))
    (if (i32.eq (local.get $mode) (i32.const 5))
      (then (drop (call $wide
        (i32.const 1) (i64.const 2) (f32.const 3) (f64.const 4)
        (i32.const 5) (i64.const 6) (f32.const 7) (f64.const 8)
        (i32.const 9) (i64.const 10) (f32.const 11) (f64.const 12)
        (i32.const 13) (i64.const 14) (f32.const 15) (i32.const 0)))))
    local.get $mode)
  (func (export "run") (param $mode i32) (result i64)
    (local $a i64) (local $b i64) (local $c i64) (local $d i64)
    (local $e i64) (local $f i64) (local $g i64) (local $h i64)
    (local.set $a (i64.extend_i32_u (local.get $mode)))
    (local.set $b (i64.mul (local.get $a) (i64.const 3)))
    (local.set $c (i64.add (local.get $b) (i64.const 5)))
    (local.set $d (i64.xor (local.get $c) (i64.const 0x55)))
    (local.set $e (i64.rotl (local.get $d) (i64.const 7)))
    (local.set $f (i64.sub (local.get $e) (local.get $a)))
    (local.set $g (i64.mul (local.get $f) (local.get $c)))
    (local.set $h (i64.add (local.get $g) (local.get $b)))
    (i64.add
      (i64.extend_i32_u (call $leaf (local.get $mode)))
      (i64.add
        (i64.add (i64.add (local.get $a) (local.get $b)) (i64.add (local.get $c) (local.get $d)))
        (i64.add (i64.add (local.get $e) (local.get $f)) (i64.add (local.get $g) (local.get $h)))))))
"#;

fn setup() -> (Store<()>, Instance) {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT).unwrap();
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_wrap("env", "host", |m: i32| -> Result<i32> {
            match m {
                2 => Err(Error::msg("host failed")),
                3 => panic!("host panicked"),
                _ => Ok(m),
            }
        })
        .unwrap();
    let mut store = Store::new(&engine, ());
    let i = linker.instantiate(&mut store, &module).unwrap();
    (store, i)
}

/// One step of the host's own computation, kept live across calls.
#[inline(never)]
fn mix(x: [u64; 6], i: u64) -> [u64; 6] {
    [
        x[0].wrapping_mul(6364136223846793005).wrapping_add(i),
        x[1].rotate_left(13) ^ x[0],
        x[2].wrapping_add(x[1] | 1),
        x[3] ^ x[2].wrapping_mul(31),
        x[4].wrapping_sub(x[3]).rotate_right(3),
        x[5].wrapping_add(x[4] ^ i),
    ]
}

fn check_expected(mode: i32, r: Result<i64>) {
    match mode {
        0 => assert!(r.is_ok()),
        1 => assert_eq!(
            r.unwrap_err().downcast_ref::<Trap>().copied(),
            Some(Trap::IntegerDivisionByZero)
        ),
        2 => assert_eq!(r.unwrap_err().root_cause().to_string(), "host failed"),
        4 => assert_eq!(
            r.unwrap_err().downcast_ref::<Trap>().copied(),
            Some(Trap::StackOverflow)
        ),
        5 => assert_eq!(
            r.unwrap_err().downcast_ref::<Trap>().copied(),
            Some(Trap::UnreachableCodeReached)
        ),
        _ => unreachable!(),
    }
}

#[test]
fn host_registers_survive_every_kind_of_trap() {
    let (mut store, i) = setup();
    let run = i.get_typed_func::<i32, i64>(&mut store, "run").unwrap();
    let run_untyped = i.get_func(&mut store, "run").unwrap();
    let (mut a, mut b, mut c, mut d, mut e, mut f) = (1u64, 2u64, 3u64, 4u64, 5u64, 6u64);
    let mut reference = [1u64, 2, 3, 4, 5, 6];
    for it in 0..300u64 {
        let mode = black_box([0, 1, 2, 4, 5][(it % 5) as usize]);
        // The six locals are live across the call: the compiler keeps
        // them in callee-saved registers, which the trap must restore.
        let r = if it % 2 == 0 {
            run.call(&mut store, mode)
        } else {
            let mut out = [Val::I64(0)];
            run_untyped
                .call(&mut store, &[Val::I32(mode)], &mut out)
                .map(|()| out[0].i64().unwrap())
        };
        check_expected(mode, r);
        [a, b, c, d, e, f] = mix(black_box([a, b, c, d, e, f]), it);
        reference = mix(reference, it);
    }
    assert_eq!([a, b, c, d, e, f], reference);
}

#[test]
fn panics_resume_and_the_store_stays_usable() {
    let (mut store, i) = setup();
    let run = i.get_typed_func::<i32, i64>(&mut store, "run").unwrap();
    let mut x = [7u64, 8, 9, 10, 11, 12];
    for it in 0..20 {
        let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run.call(&mut store, black_box(3))
        }));
        assert!(p.is_err(), "the panic resumes in the host");
        x = mix(black_box(x), it);
    }
    let expect = (0..20).fold([7u64, 8, 9, 10, 11, 12], mix);
    assert_eq!(x, expect);
    assert!(run.call(&mut store, 0).is_ok());
}

#[test]
fn trap_in_an_entry_with_stack_arguments() {
    let (mut store, i) = setup();
    type P = (
        i32,
        i64,
        f32,
        f64,
        i32,
        i64,
        f32,
        f64,
        i32,
        i64,
        f32,
        f64,
        i32,
        i64,
        f32,
        i32,
    );
    let wide = i.get_typed_func::<P, i64>(&mut store, "wide").unwrap();
    let args = |last: i32| -> P {
        (
            1, 2, 3.0, 4.0, 5, 6, 7.0, 8.0, 9, 10, 11.0, 12.0, 13, 14, 15.0, last,
        )
    };
    let mut x = [1u64, 1, 2, 3, 5, 8];
    for it in 0..100 {
        let r = wide.call(&mut store, args(black_box((it % 2) as i32)));
        if it % 2 == 0 {
            assert_eq!(
                r.unwrap_err().downcast_ref::<Trap>().copied(),
                Some(Trap::UnreachableCodeReached)
            );
        } else {
            assert_eq!(r.unwrap(), 2 + 6 + 10 + 14);
        }
        x = mix(black_box(x), it);
    }
    let expect = (0..100).fold([1u64, 1, 2, 3, 5, 8], mix);
    assert_eq!(x, expect);
}

#[test]
fn host_function_called_directly_reports_its_error() {
    let (mut store, _) = setup();
    let f = Func::wrap(&mut store, |x: i32| -> Result<i32> {
        if x < 0 {
            Err(Error::msg("negative"))
        } else {
            Ok(x * 2)
        }
    });
    let typed = f.typed::<i32, i32>(&store).unwrap();
    assert_eq!(typed.call(&mut store, 4).unwrap(), 8);
    assert_eq!(
        typed.call(&mut store, -1).unwrap_err().to_string(),
        "negative"
    );
    assert_eq!(typed.call(&mut store, 5).unwrap(), 10);
    let mut out = [Val::I32(0)];
    let e = f.call(&mut store, &[Val::I32(-3)], &mut out).unwrap_err();
    assert_eq!(e.to_string(), "negative");
}
