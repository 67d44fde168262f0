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
    // SAFETY: the harness (below) saves every callee-saved register it
    // overwrites and restores it before returning, keeps the stack
    // 16-aligned at its call and describes its frame in CFI, so unwinding
    // through it (a backtrace taken while the Wasm error is created)
    // never reads a register it repurposed. `out` outlives the call and
    // has room for `REGS + 2` entries.
    unsafe { kiln_test_call_with_registers(ctx, out.as_mut_ptr(), magic, tramp) };
    let n = REGS;
    let expected: Vec<u64> = (0..n as u64).map(|i| magic + i).collect();
    let mut after = out[..n].to_vec();
    // The stack pointer before and after the call must agree too.
    after.push(out[n + 1]);
    let mut before = expected;
    before.push(out[n]);
    (before, after)
}

extern "C" {
    /// Loads `magic + i` into the `i`-th callee-saved register (frame
    /// pointer included, see `REGS`), stores the stack pointer in
    /// `out[REGS]`, calls `f(ctx)`, then stores the registers in
    /// `out[..REGS]` and the stack pointer in `out[REGS + 1]`, and
    /// returns with the caller's registers restored.
    ///
    /// It is a real function with call frame information rather than an
    /// inline `asm!` block: the frame pointer holds `magic`, and a
    /// backtrace captured inside `f` (with `RUST_BACKTRACE` set, every
    /// `kiln::Error` captures one) would otherwise unwind through the
    /// enclosing Rust frame by that frame pointer and read wild memory.
    fn kiln_test_call_with_registers(
        ctx: *mut std::ffi::c_void,
        out: *mut u64,
        magic: u64,
        f: extern "C" fn(*mut std::ffi::c_void),
    );
}

#[cfg(target_arch = "x86_64")]
const REGS: usize = 6; // rbx, rbp, r12, r13, r14, r15

// rdi = ctx, rsi = out, rdx = magic, rcx = f. Seven pushes after the
// return address leave rsp 16-aligned for the call.
#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl kiln_test_call_with_registers",
    ".type kiln_test_call_with_registers,@function",
    "kiln_test_call_with_registers:",
    ".cfi_startproc",
    "pushq %rbp",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset %rbp, 0",
    "pushq %rbx",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset %rbx, 0",
    "pushq %r12",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset %r12, 0",
    "pushq %r13",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset %r13, 0",
    "pushq %r14",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset %r14, 0",
    "pushq %r15",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset %r15, 0",
    "pushq %rsi",
    ".cfi_adjust_cfa_offset 8",
    "movq %rdx, %rbx",
    "leaq 1(%rdx), %rbp",
    "leaq 2(%rdx), %r12",
    "leaq 3(%rdx), %r13",
    "leaq 4(%rdx), %r14",
    "leaq 5(%rdx), %r15",
    "movq %rsp, 48(%rsi)",
    "callq *%rcx",
    "movq (%rsp), %rax",
    "movq %rbx, (%rax)",
    "movq %rbp, 8(%rax)",
    "movq %r12, 16(%rax)",
    "movq %r13, 24(%rax)",
    "movq %r14, 32(%rax)",
    "movq %r15, 40(%rax)",
    "movq %rsp, 56(%rax)",
    "popq %rsi",
    ".cfi_adjust_cfa_offset -8",
    "popq %r15",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore %r15",
    "popq %r14",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore %r14",
    "popq %r13",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore %r13",
    "popq %r12",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore %r12",
    "popq %rbx",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore %rbx",
    "popq %rbp",
    ".cfi_adjust_cfa_offset -8",
    ".cfi_restore %rbp",
    "retq",
    ".cfi_endproc",
    ".size kiln_test_call_with_registers, .-kiln_test_call_with_registers",
    options(att_syntax)
);

#[cfg(target_arch = "aarch64")]
const REGS: usize = 19; // x19-x29, d8-d15

// x0 = ctx, x1 = out, x2 = magic, x3 = f. A 176-byte frame: x19-x28 at
// 0-79, `out` at 80, d8-d15 at 96-159, x29/x30 at 160.
#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".text",
    ".p2align 2",
    ".globl kiln_test_call_with_registers",
    ".type kiln_test_call_with_registers,%function",
    "kiln_test_call_with_registers:",
    ".cfi_startproc",
    "sub sp, sp, #176",
    ".cfi_def_cfa_offset 176",
    "stp x29, x30, [sp, #160]",
    ".cfi_offset x29, -16",
    ".cfi_offset x30, -8",
    "stp x19, x20, [sp, #0]",
    ".cfi_offset x19, -176",
    ".cfi_offset x20, -168",
    "stp x21, x22, [sp, #16]",
    ".cfi_offset x21, -160",
    ".cfi_offset x22, -152",
    "stp x23, x24, [sp, #32]",
    ".cfi_offset x23, -144",
    ".cfi_offset x24, -136",
    "stp x25, x26, [sp, #48]",
    ".cfi_offset x25, -128",
    ".cfi_offset x26, -120",
    "stp x27, x28, [sp, #64]",
    ".cfi_offset x27, -112",
    ".cfi_offset x28, -104",
    "str x1, [sp, #80]",
    "stp d8, d9, [sp, #96]",
    ".cfi_offset b8, -80",
    ".cfi_offset b9, -72",
    "stp d10, d11, [sp, #112]",
    ".cfi_offset b10, -64",
    ".cfi_offset b11, -56",
    "stp d12, d13, [sp, #128]",
    ".cfi_offset b12, -48",
    ".cfi_offset b13, -40",
    "stp d14, d15, [sp, #144]",
    ".cfi_offset b14, -32",
    ".cfi_offset b15, -24",
    "mov x19, x2",
    "add x20, x2, #1",
    "add x21, x2, #2",
    "add x22, x2, #3",
    "add x23, x2, #4",
    "add x24, x2, #5",
    "add x25, x2, #6",
    "add x26, x2, #7",
    "add x27, x2, #8",
    "add x28, x2, #9",
    "add x29, x2, #10",
    "add x9, x2, #11",
    "fmov d8, x9",
    "add x9, x2, #12",
    "fmov d9, x9",
    "add x9, x2, #13",
    "fmov d10, x9",
    "add x9, x2, #14",
    "fmov d11, x9",
    "add x9, x2, #15",
    "fmov d12, x9",
    "add x9, x2, #16",
    "fmov d13, x9",
    "add x9, x2, #17",
    "fmov d14, x9",
    "add x9, x2, #18",
    "fmov d15, x9",
    "mov x9, sp",
    "str x9, [x1, #152]",
    "blr x3",
    "ldr x9, [sp, #80]",
    "stp x19, x20, [x9, #0]",
    "stp x21, x22, [x9, #16]",
    "stp x23, x24, [x9, #32]",
    "stp x25, x26, [x9, #48]",
    "stp x27, x28, [x9, #64]",
    "str x29, [x9, #80]",
    "fmov x10, d8",
    "str x10, [x9, #88]",
    "fmov x10, d9",
    "str x10, [x9, #96]",
    "fmov x10, d10",
    "str x10, [x9, #104]",
    "fmov x10, d11",
    "str x10, [x9, #112]",
    "fmov x10, d12",
    "str x10, [x9, #120]",
    "fmov x10, d13",
    "str x10, [x9, #128]",
    "fmov x10, d14",
    "str x10, [x9, #136]",
    "fmov x10, d15",
    "str x10, [x9, #144]",
    "mov x10, sp",
    "str x10, [x9, #160]",
    "ldp d14, d15, [sp, #144]",
    "ldp d12, d13, [sp, #128]",
    "ldp d10, d11, [sp, #112]",
    "ldp d8, d9, [sp, #96]",
    "ldp x27, x28, [sp, #64]",
    "ldp x25, x26, [sp, #48]",
    "ldp x23, x24, [sp, #32]",
    "ldp x21, x22, [sp, #16]",
    "ldp x19, x20, [sp, #0]",
    "ldp x29, x30, [sp, #160]",
    "add sp, sp, #176",
    ".cfi_def_cfa_offset 0",
    "ret",
    ".cfi_endproc",
    ".size kiln_test_call_with_registers, .-kiln_test_call_with_registers",
);

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
