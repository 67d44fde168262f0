//! Calls across veneer islands, executed: AArch64's `bl` reaches ±128 MiB,
//! so with 48 MiB of padding between functions, calls between the first
//! and the fourth function (144 MiB apart) go through a veneer, forward and
//! backward; with veneers forced, every direct call does. The module also
//! calls through `call_indirect` and traps across the island, so a
//! veneer's frame (it has none) shows up nowhere it should not.
//!
//! On x86-64 (±2 GiB `call`, no veneers) the same module runs with the
//! same padding, which checks the calls there; the check that the text
//! really contains veneers is AArch64's.

use kiln::*;

/// Padding between functions: two gaps stay within `bl`'s reach, three
/// do not.
const PADDING: usize = 48 << 20;

/// Every function `$fI(n)` returns `I` for `n == 0`, else its callee's
/// result for `n - 1`, times 4, plus `I`: the result spells out the path.
/// Laid out in this order: `$far_trap`, `$f0`, `$f1`, `$f2`, `$f3`, `$trap`.
const WAT: &str = r#"(module
  (type $t (func (param i32) (result i32)))
  (table funcref (elem $f0 $f1 $f2 $f3))
  ;; first in the text, its callee last: the farthest call
  (func $far_trap (export "far_trap") (param i32) (result i32)
    local.get 0 call $trap i32.const 1 i32.add)
  ;; calls $f3, three gaps ahead
  (func $f0 (export "f0") (param i32) (result i32)
    local.get 0 i32.eqz if (result i32) i32.const 0 else
      local.get 0 i32.const 1 i32.sub call $f3
      i32.const 4 i32.mul end)
  ;; calls $f0, one gap back
  (func $f1 (export "f1") (param i32) (result i32)
    local.get 0 i32.eqz if (result i32) i32.const 1 else
      local.get 0 i32.const 1 i32.sub call $f0
      i32.const 4 i32.mul i32.const 1 i32.add end)
  ;; calls $f1, one gap back
  (func $f2 (export "f2") (param i32) (result i32)
    local.get 0 i32.eqz if (result i32) i32.const 2 else
      local.get 0 i32.const 1 i32.sub call $f1
      i32.const 4 i32.mul i32.const 2 i32.add end)
  ;; for even n calls $f0, three gaps back; for odd n $f2, via the table
  (func $f3 (export "f3") (param i32) (result i32)
    local.get 0 i32.eqz if (result i32) i32.const 3 else
      local.get 0 i32.const 1 i32.and if (result i32)
        local.get 0 i32.const 1 i32.sub i32.const 2 call_indirect (type $t)
      else
        local.get 0 i32.const 1 i32.sub call $f0
      end
      i32.const 4 i32.mul i32.const 3 i32.add end)
  ;; traps for n > 0 (and is far from its caller)
  (func $trap (param i32) (result i32)
    local.get 0 if unreachable end i32.const 40))"#;

/// What `$fI(n)` returns, computed here.
fn expected(i: u32, n: u32) -> i32 {
    if n == 0 {
        return i as i32;
    }
    let next = match i {
        0 => 3,
        1 => 0,
        2 => 1,
        _ if n % 2 == 1 => 2,
        _ => 0,
    };
    expected(next, n - 1).wrapping_mul(4).wrapping_add(i as i32)
}

/// How many veneers (`ldrsw x16, [pc, #16]; adr x17, #12; add x16, x16,
/// x17; br x16`, then the offset) the text holds.
fn veneers(text: &[u8]) -> usize {
    const LDRSW_X16_PC16: u32 = 0x9800_0090;
    const BR_X16: u32 = 0xd61f_0200;
    let word = |at: usize| u32::from_le_bytes(text[at..at + 4].try_into().unwrap());
    (0..text.len().saturating_sub(16))
        .step_by(4)
        .filter(|at| word(*at) == LDRSW_X16_PC16 && word(at + 12) == BR_X16)
        .count()
}

/// Compiles the module with `padding` and `force`, runs every export for
/// a range of depths and a far trap, and returns the number of veneers.
fn run(padding: usize, force: bool) -> usize {
    let mut config = Config::new();
    config
        .debug_padding_between_functions(padding)
        .debug_force_veneers(force);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, WAT).unwrap();
    assert!(module.text().len() >= 5 * padding);
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    for i in 0..4u32 {
        let f = instance
            .get_typed_func::<i32, i32>(&mut store, &format!("f{i}"))
            .unwrap();
        for n in 0..12u32 {
            assert_eq!(
                f.call(&mut store, n as i32).unwrap(),
                expected(i, n),
                "f{i}({n})"
            );
        }
    }
    let far = instance
        .get_typed_func::<i32, i32>(&mut store, "far_trap")
        .unwrap();
    assert_eq!(far.call(&mut store, 0).unwrap(), 41);
    let e = far.call(&mut store, 1).unwrap_err();
    assert_eq!(
        e.downcast_ref::<Trap>(),
        Some(&Trap::UnreachableCodeReached),
        "{e:?}"
    );
    // The store is still usable after the trap.
    assert_eq!(far.call(&mut store, 0).unwrap(), 41);
    veneers(module.text())
}

#[test]
fn calls_past_the_branch_reach_run_through_veneers() {
    let n = run(PADDING, false);
    if cfg!(target_arch = "aarch64") {
        // $f0 <-> $f3 and $far_trap -> $trap are out of reach; every
        // other direct call is not.
        assert!(n >= 3, "{n} veneers");
    }
}

#[test]
fn forced_veneers_run() {
    let n = run(0, true);
    if cfg!(target_arch = "aarch64") {
        // Five direct call sites: each has its veneer.
        assert!(n >= 5, "{n} veneers");
    }
}
