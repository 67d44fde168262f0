//! Stack-overflow traps hand the host back exactly its registers.
//!
//! A stack-overflow trap fires in a function's prologue, before the
//! prologue has saved any callee-saved register; the trap handler must
//! then restore nothing for that frame, and the saves of every frame
//! above it. These tests do not rely on the Rust compiler happening to
//! keep values in callee-saved registers (as `resume.rs` does): an inline
//! assembly harness loads a known value into *every* callee-saved
//! register of the platform ABI (and the frame pointer), calls into Wasm
//! through the public API, and reads them all back, together with the
//! stack pointer. A handler that reloads a register from a slot the
//! prologue never wrote changes one of them (or crashes the test).
//!
//! x86-64 only for now: an AArch64 version of the harness (x19-x29 and
//! d8-d15) crashed under qemu and is not in until it is understood
//! whether the harness or the trap handler is at fault.
//!
//! The recursive Wasm functions keep 0 to 14 values live across their
//! recursive call, integers and floats, so their prologues save every
//! mix of callee-saved registers the register allocator picks; they run
//! with and without fuel, recursing through plain calls, tail calls,
//! indirect calls and calls that also make a libcall.

use kiln::*;

/// Runs `f` with every callee-saved register (and the frame pointer)
/// holding a value derived from `magic`, and returns what those registers
/// and the stack pointer held before and after the call.
fn with_known_registers(magic: u64, f: &mut dyn FnMut()) -> (Vec<u64>, Vec<u64>) {
    extern "C" fn tramp(ctx: *mut std::ffi::c_void) {
        // SAFETY: `ctx` is the `&mut &mut dyn FnMut()` passed below, live
        // for the whole asm block that calls us.
        let f = unsafe { &mut *(ctx as *mut &mut dyn FnMut()) };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
            // Unwinding through the asm frame is not allowed.
            std::process::abort();
        }
    }
    let mut f = f;
    let ctx = &mut f as *mut &mut dyn FnMut() as *mut std::ffi::c_void;
    let mut out = [0u64; 32];
    // SAFETY: the asm saves every callee-saved register it overwrites and
    // restores it before leaving, keeps the stack 16-aligned at the call,
    // stays clear of the red zone, and declares every caller-saved
    // register clobbered (`clobber_abi("C")`). `out` outlives the block.
    unsafe { call_with_registers(magic, tramp, ctx, out.as_mut_ptr()) };
    let n = REGS;
    let expected: Vec<u64> = (0..n as u64).map(|i| magic + i).collect();
    let mut after = out[..n].to_vec();
    // The stack pointer before and after the call must agree too.
    after.push(out[n + 1]);
    let mut before = expected;
    before.push(out[n]);
    (before, after)
}

#[cfg(target_arch = "x86_64")]
const REGS: usize = 6; // rbx, rbp, r12, r13, r14, r15

#[cfg(target_arch = "x86_64")]
unsafe fn call_with_registers(
    magic: u64,
    f: extern "C" fn(*mut std::ffi::c_void),
    ctx: *mut std::ffi::c_void,
    out: *mut u64,
) {
    // SAFETY: see `with_known_registers`.
    unsafe {
        std::arch::asm!(
            "sub rsp, 128",
            "push rbx",
            "push rbp",
            "push rsi",
            "push rsi",
            "mov rbx, rdx",
            "lea rbp, [rdx + 1]",
            "lea r12, [rdx + 2]",
            "lea r13, [rdx + 3]",
            "lea r14, [rdx + 4]",
            "lea r15, [rdx + 5]",
            "mov [rsi + 48], rsp",
            "call rax",
            "mov rax, [rsp]",
            "mov [rax], rbx",
            "mov [rax + 8], rbp",
            "mov [rax + 16], r12",
            "mov [rax + 24], r13",
            "mov [rax + 32], r14",
            "mov [rax + 40], r15",
            "mov [rax + 56], rsp",
            "pop rsi",
            "pop rsi",
            "pop rbp",
            "pop rbx",
            "add rsp, 128",
            in("rdi") ctx,
            in("rsi") out,
            in("rdx") magic,
            in("rax") f,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
}

/// A module whose `rec` export recurses forever, made the way `how` says.
/// At every level `rec` first calls `heavy`, which keeps `live` values
/// (alternately i64 and f64) live across a call, so its prologue saves
/// more callee-saved registers than `rec`'s and needs a bigger frame: the
/// overflow happens in `heavy`'s prologue, and the registers only `heavy`
/// saves are saved by no frame above it. A handler that restored them
/// from `heavy`'s unwritten slots would hand the host garbage there.
fn recursive_module(live: usize, how: &str) -> String {
    let mut locals = String::new();
    let mut init = String::new();
    let mut sum = String::new();
    for i in 0..live {
        if i % 2 == 0 {
            locals.push_str(&format!("(local $v{i} i64)"));
            init.push_str(&format!(
                "(local.set $v{i} (i64.add (local.get $n) (i64.const {})))",
                i * 7 + 1
            ));
            sum.push_str(&format!("(i64.add (local.get $v{i}))"));
        } else {
            locals.push_str(&format!("(local $v{i} f64)"));
            init.push_str(&format!(
                "(local.set $v{i} (f64.add (f64.convert_i64_s (local.get $n)) (f64.const {}.5)))",
                i * 3
            ));
            sum.push_str(&format!("(i64.add (i64.trunc_f64_s (local.get $v{i})))"));
        }
    }
    let libcall = if how == "libcall" {
        "(drop (memory.grow (i32.const 0)))"
    } else {
        ""
    };
    let next = "(call $heavy (local.get $n))";
    let recurse = match how {
        "call" | "libcall" => format!("(call $rec {next})"),
        "indirect" => format!("(call_indirect (type $t) {next} (i32.const 0))"),
        // The tail call replaces `rec`'s frame by `hop`'s, which calls
        // `rec` again.
        "tail" => format!("(return_call $hop {next})"),
        _ => unreachable!(),
    };
    format!(
        r#"(module
          (type $t (func (param i64) (result i64)))
          (memory 1)
          (table 1 funcref)
          (elem (i32.const 0) $rec)
          (func $rec (export "rec") (type $t) (param $n i64) (result i64) {recurse})
          (func $hop (param $n i64) (result i64) (call $rec (local.get $n)))
          (func $heavy (param $n i64) (result i64) {locals}
            {init} {libcall}
            (i64.add (call $id (local.get $n)) (i64.const 1)) {sum})
          (func $id (param i64) (result i64) (local.get 0))
        )"#
    )
}

fn check_registers_after_overflow(config: &Config, fuel: bool, live: usize, how: &str) {
    let engine = Engine::new(config).unwrap();
    let wat = recursive_module(live, how);
    let module = Module::new(&engine, &wat).unwrap_or_else(|e| panic!("{e}\n{wat}"));
    let mut store = Store::new(&engine, ());
    if fuel {
        store.set_fuel(u64::MAX).unwrap();
    }
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let typed = instance
        .get_typed_func::<i64, i64>(&mut store, "rec")
        .unwrap();
    let untyped = instance.get_func(&mut store, "rec").unwrap();
    for (round, magic) in [0x1111_0000_0000_0000u64, 0x7654_3210_0000_0100]
        .into_iter()
        .enumerate()
    {
        let mut result = None;
        let (before, after) = with_known_registers(magic, &mut || {
            result = Some(if round == 0 {
                typed.call(&mut store, 0).map(|_| ())
            } else {
                let mut out = [Val::I64(0)];
                untyped.call(&mut store, &[Val::I64(0)], &mut out)
            });
        });
        let err = result.unwrap().expect_err("unbounded recursion traps");
        assert_eq!(
            err.downcast_ref::<Trap>().copied(),
            Some(Trap::StackOverflow),
            "{how}, {live} live: {err}"
        );
        assert_eq!(
            before, after,
            "{how} recursion with {live} live values: host registers changed (last entry: sp)"
        );
    }
}

#[test]
fn overflow_restores_exactly_the_host_registers() {
    for fuel in [false, true] {
        let mut config = Config::new();
        config.consume_fuel(fuel).wasm_tail_call(true);
        for how in ["call", "indirect", "libcall", "tail"] {
            for live in 0..=14 {
                check_registers_after_overflow(&config, fuel, live, how);
            }
        }
    }
}

#[test]
fn other_traps_restore_exactly_the_host_registers() {
    // The same harness around traps after the saves: a division by zero
    // deep in a recursion, and a host error.
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
          (import "env" "fail" (func $fail))
          (func $down (export "down") (param $n i64) (param $mode i32) (result i64)
            (local $a i64) (local $b f64) (local $c i64)
            (local.set $a (i64.mul (local.get $n) (i64.const 3)))
            (local.set $b (f64.convert_i64_s (local.get $n)))
            (local.set $c (i64.xor (local.get $a) (i64.const 0x55)))
            (if (i64.eqz (local.get $n)) (then
              (if (local.get $mode) (then (call $fail)))
              (return (i64.div_s (local.get $a) (local.get $n)))))
            (i64.add
              (call $down (i64.sub (local.get $n) (i64.const 1)) (local.get $mode))
              (i64.add (i64.add (local.get $a) (local.get $c)) (i64.trunc_f64_s (local.get $b))))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let fail = Func::wrap(&mut store, || -> Result<()> {
        Err(Error::msg("host failed"))
    });
    let instance = Instance::new(&mut store, &module, &[fail.into()]).unwrap();
    let down = instance
        .get_typed_func::<(i64, i32), i64>(&mut store, "down")
        .unwrap();
    for mode in [0, 1] {
        for depth in [0, 1, 5, 100] {
            let mut result = None;
            let (before, after) = with_known_registers(0x5a5a_0000_0000_0000, &mut || {
                result = Some(down.call(&mut store, (depth, mode)));
            });
            assert!(result.unwrap().is_err());
            assert_eq!(before, after, "mode {mode}, depth {depth}");
        }
    }
}
