//! The stack limit, interruption, fuel and epochs.
//!
//! # The stack limit and interruption
//!
//! Every function's `stack_limit` is the first word of the store's
//! `VMRuntimeLimits`, reached as `load(load(vmctx + RUNTIME_LIMITS))`.
//! Cranelift compares the stack pointer against it (plus the frame size)
//! in the prologue of every function that has a frame or makes calls, and
//! traps with `STACK_OVERFLOW` below it. Loop headers repeat the comparison
//! (without a frame size) and trap with [`traps::LOOP_HEADER`], reported as
//! `Interrupt`: an interrupt handle stores a sentinel near `usize::MAX` in
//! the limit, so both checks fail at the next function entry or back-edge.
//! A prologue's check that fails while the sentinel is in place is an
//! interrupt too; the runtime tells by looking at the limit.
//!
//! **Invariant:** `STACK_OVERFLOW` is the trap code of the prologue's check
//! and of nothing else. The trap handler relies on it: a trap with that
//! code fired before the prologue saved any callee-saved register (see
//! `kiln_environ::frames`), so the handler must not reload them from that
//! frame. Giving another trap site this code breaks trap resumption.
//!
//! # Fuel
//!
//! Every operator costs 1, except those that do no work (Wasmtime's
//! accounting, so budgets carry over). The cost of straight-line code is
//! added up at translation time and flushed to
//! `VMRuntimeLimits::fuel_consumed` before anything that leaves it, so the
//! count in memory is exact whenever control can leave the block; function
//! entries and loop headers trap with [`traps::OUT_OF_FUEL`] once the count
//! (which starts negative) reaches zero.
//!
//! # Epochs
//!
//! Function entries and loop headers compare the engine's epoch with the
//! store's deadline; once it is reached they call the `new_epoch` libcall
//! (in a cold block), which runs the store's deadline callback and either
//! moves the deadline (carry on) or makes the caller trap with
//! [`traps::EPOCH`].

use super::{ro, rw, traps, Tx};
use cranelift_codegen::ir::{condcodes::IntCC, types::*, InstBuilder};
use kiln_environ::{BuiltinFunction, VMOffsets};
use wasmparser::Operator as O;

// The checks load the stack limit at offset 0 of the limits.
const _: () = assert!(VMOffsets::LIMITS_STACK_LIMIT == 0);

impl Tx<'_, '_> {
    /// The `VMRuntimeLimits` pointer.
    fn limits(&mut self) -> cranelift_codegen::ir::Value {
        let (ptr, vmctx) = (self.ptr, self.vmctx);
        self.b
            .ins()
            .load(ptr, ro(), vmctx, VMOffsets::RUNTIME_LIMITS as i32)
    }

    /// Charges `op`'s fuel, flushing before control leaves straight-line code.
    pub(super) fn charge_fuel(&mut self, op: &O<'_>) {
        if !self.env.tunables.consume_fuel {
            return;
        }
        self.fuel_pending += match op {
            O::Nop
            | O::Drop
            | O::Block { .. }
            | O::Loop { .. }
            | O::Unreachable
            | O::Return
            | O::Else
            | O::End => 0,
            _ => 1,
        };
        if matches!(
            op,
            O::Block { .. }
                | O::Loop { .. }
                | O::If { .. }
                | O::Else
                | O::End
                | O::Br { .. }
                | O::BrIf { .. }
                | O::BrTable { .. }
                | O::Return
                | O::Call { .. }
                | O::CallIndirect { .. }
                | O::ReturnCall { .. }
                | O::ReturnCallIndirect { .. }
                | O::Unreachable
        ) {
            self.fuel_flush();
        }
    }

    /// Adds the pending fuel to `VMRuntimeLimits::fuel_consumed`.
    pub(super) fn fuel_flush(&mut self) {
        if self.fuel_pending == 0 {
            return;
        }
        let limits = self.limits();
        let off = VMOffsets::LIMITS_FUEL_CONSUMED as i32;
        let cur = self.b.ins().load(I64, rw(), limits, off);
        let new = self.b.ins().iadd_imm_s(cur, self.fuel_pending);
        self.b.ins().store(rw(), new, limits, off);
        self.fuel_pending = 0;
    }

    fn fuel_check(&mut self) {
        self.fuel_flush();
        let limits = self.limits();
        let cur = self
            .b
            .ins()
            .load(I64, rw(), limits, VMOffsets::LIMITS_FUEL_CONSUMED as i32);
        let out = self
            .b
            .ins()
            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, cur, 0);
        self.b.ins().trapnz(out, traps::OUT_OF_FUEL);
    }

    fn epoch_check(&mut self) {
        let limits = self.limits();
        let ptr = self.ptr;
        let epoch_ptr = self.b.ins().load(
            ptr,
            rw().with_readonly(),
            limits,
            VMOffsets::LIMITS_EPOCH_PTR as i32,
        );
        // Atomic, so Cranelift never treats it as redundant with an
        // earlier load: another thread moves the epoch.
        let epoch = self.b.ins().atomic_load(I64, rw(), epoch_ptr);
        let deadline =
            self.b
                .ins()
                .load(I64, rw(), limits, VMOffsets::LIMITS_EPOCH_DEADLINE as i32);
        let passed = self
            .b
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, epoch, deadline);
        // Past the deadline: the `new_epoch` libcall runs the store's
        // deadline callback, out of line in a cold block, and says whether
        // to trap. The fast path stays two loads, a compare and a branch.
        let slow = self.b.create_block();
        let carry_on = self.b.create_block();
        self.b.set_cold_block(slow);
        self.b.ins().brif(passed, slow, &[], carry_on, &[]);
        self.b.switch_to_block(slow);
        self.b.seal_block(slow);
        let status = self.call_builtin(BuiltinFunction::new_epoch, &[])[0];
        self.b.ins().trapnz(status, traps::EPOCH);
        self.b.ins().jump(carry_on, &[]);
        self.b.switch_to_block(carry_on);
        self.b.seal_block(carry_on);
    }

    /// The budget checks at function entry and loop headers.
    pub(super) fn budget_checks(&mut self) {
        if self.env.tunables.consume_fuel {
            self.fuel_check();
        }
        if self.env.tunables.epoch_interruption {
            self.epoch_check();
        }
    }

    /// The checks at a loop header: the budget, and the interrupt check.
    pub(super) fn loop_header_checks(&mut self) {
        self.budget_checks();
        let limits = self.limits();
        let ptr = self.ptr;
        // An atomic load: a plain one would be merged with an earlier load
        // of the same address (alias analysis sees no store in between),
        // and an interrupt from another thread would go unseen.
        let limit = self.b.ins().atomic_load(ptr, rw(), limits);
        let sp = self.b.ins().get_stack_pointer(ptr);
        let over = self.b.ins().icmp(IntCC::UnsignedLessThan, sp, limit);
        self.b.ins().trapnz(over, traps::LOOP_HEADER);
    }
}
