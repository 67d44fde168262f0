//! Linear memories: addresses and bounds checks, loads and stores, and the
//! bulk-memory operators (through libcalls).
//!
//! # Bounds checks
//!
//! Every memory is reached through a pointer in the `VMContext` (to its
//! `VMMemoryDefinition`), and a 32-bit memory's base, which never moves,
//! is also copied into the context, so an access loads one pointer.
//!
//! A 32-bit memory reserves `static_memory_reservation` bytes followed by
//! `memory_guard_size` guard bytes; the pages past the current length are
//! inaccessible, so an access that stays inside reservation plus guard
//! either succeeds or faults, and the fault is the trap
//! (`HEAP_OUT_OF_BOUNDS`, on the load or store itself). When the whole
//! 32-bit index range plus the access's offset and size fits there, no
//! check is emitted at all; otherwise the index is compared with a
//! constant bound. A 64-bit memory is checked against its current length
//! on every access, with an overflow-checked add of the offset.

use super::{ro, rw, Tx, TxResult};
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types::*, Endianness, InstBuilder, MemFlagsData, TrapCode,
};
use kiln_environ::{BuiltinFunction, MemoryIndex, VMOffsets};
use wasmparser::{MemArg, Operator as O};

/// Flags of a Wasm heap access: little-endian, may trap (out of bounds).
pub(crate) fn heap_flags() -> MemFlagsData {
    MemFlagsData::new()
        .with_endianness(Endianness::Little)
        .with_trap_code(Some(TrapCode::HEAP_OUT_OF_BOUNDS))
}

impl Tx<'_, '_> {
    fn is_memory64(&self, m: MemoryIndex) -> bool {
        self.env.module.memories[m].memory64
    }

    fn memory_index(&self, m: u32) -> TxResult<MemoryIndex> {
        let m = MemoryIndex::from_u32(m);
        if self.env.module.memories.get(m).is_none() {
            return Err(super::invalid("unknown memory", self.offset));
        }
        Ok(m)
    }

    /// The memory's `VMMemoryDefinition` pointer.
    fn memory_def(&mut self, m: MemoryIndex) -> ir::Value {
        let off = self.env.offsets.memory(m) as i32;
        let (ptr, vmctx) = (self.ptr, self.vmctx);
        self.b.ins().load(ptr, ro(), vmctx, off)
    }

    /// The native address of an access of `size` bytes at Wasm address
    /// `index` (plus `memarg.offset`), after any bounds check it needs, and
    /// the immediate offset to use with it; `None` when the access can
    /// never be in bounds (a trap ends the block then).
    pub(crate) fn heap_addr(
        &mut self,
        memarg: &MemArg,
        index: ir::Value,
        size: u32,
    ) -> TxResult<Option<(ir::Value, i32)>> {
        let wasmparser::MemArgTarget::Memory(m) = memarg.target else {
            return Err(kiln_environ::WasmError::Unsupported("GC arrays".into()));
        };
        let m = self.memory_index(m)?;
        let ptr = self.ptr;
        let offset = memarg.offset;
        let end = offset.checked_add(u64::from(size));
        let imm = i32::try_from(offset).ok();
        if self.is_memory64(m) {
            let def = self.memory_def(m);
            let Some(end) = end else {
                self.trap(TrapCode::HEAP_OUT_OF_BOUNDS);
                return Ok(None);
            };
            let bound = self
                .b
                .ins()
                .load(I64, rw(), def, VMOffsets::MEMORY_CURRENT_LENGTH as i32);
            let endv = self.b.ins().iconst(I64, end as i64);
            let last = self
                .b
                .ins()
                .uadd_overflow_trap(index, endv, TrapCode::HEAP_OUT_OF_BOUNDS);
            let oob = self.b.ins().icmp(IntCC::UnsignedGreaterThan, last, bound);
            self.b.ins().trapnz(oob, TrapCode::HEAP_OUT_OF_BOUNDS);
            let base = self
                .b
                .ins()
                .load(ptr, rw(), def, VMOffsets::MEMORY_BASE as i32);
            let addr = self.b.ins().iadd(base, index);
            return Ok(Some(match imm {
                Some(i) => (addr, i),
                None => (self.b.ins().iadd_imm_s(addr, offset as i64), 0),
            }));
        }
        let t = self.env.tunables;
        let reach = t
            .static_memory_reservation
            .saturating_add(t.memory_guard_size);
        let end = end.unwrap_or(u64::MAX);
        let index64 = self.b.ins().uextend(I64, index);
        if (1u64 << 32).saturating_add(end) > reach {
            // The largest index could reach past the guard: check it.
            match reach.checked_sub(end) {
                Some(max) => {
                    let oob =
                        self.b
                            .ins()
                            .icmp_imm_s(IntCC::UnsignedGreaterThan, index64, max as i64);
                    self.b.ins().trapnz(oob, TrapCode::HEAP_OUT_OF_BOUNDS);
                }
                None => {
                    self.trap(TrapCode::HEAP_OUT_OF_BOUNDS);
                    return Ok(None);
                }
            }
        }
        let vmctx = self.vmctx;
        let base = self
            .b
            .ins()
            .load(ptr, ro(), vmctx, self.env.offsets.memory_base(m) as i32);
        let addr = self.b.ins().iadd(base, index64);
        Ok(Some(match imm {
            Some(i) => (addr, i),
            None => (self.b.ins().iadd_imm_s(addr, offset as i64), 0),
        }))
    }

    /// A load of `ty` (`size` bytes) with `op` building the instruction.
    fn load(
        &mut self,
        memarg: &MemArg,
        size: u32,
        op: impl FnOnce(&mut Self, MemFlagsData, ir::Value, i32) -> ir::Value,
    ) -> TxResult<()> {
        let index = self.pop()?;
        let Some((addr, off)) = self.heap_addr(memarg, index, size)? else {
            return Ok(());
        };
        let v = op(self, heap_flags(), addr, off);
        self.push(v);
        Ok(())
    }

    fn store(
        &mut self,
        memarg: &MemArg,
        size: u32,
        op: impl FnOnce(&mut Self, MemFlagsData, ir::Value, ir::Value, i32),
    ) -> TxResult<()> {
        let value = self.pop()?;
        let index = self.pop()?;
        let Some((addr, off)) = self.heap_addr(memarg, index, size)? else {
            return Ok(());
        };
        op(self, heap_flags(), value, addr, off);
        Ok(())
    }

    /// Translates `op` if it is a memory operator.
    pub(super) fn memory_operator(&mut self, op: &O<'_>) -> TxResult<bool> {
        match *op {
            O::I32Load { ref memarg } => {
                self.load(memarg, 4, |t, f, a, o| t.b.ins().load(I32, f, a, o))?
            }
            O::I64Load { ref memarg } => {
                self.load(memarg, 8, |t, f, a, o| t.b.ins().load(I64, f, a, o))?
            }
            O::F32Load { ref memarg } => {
                self.load(memarg, 4, |t, f, a, o| t.b.ins().load(F32, f, a, o))?
            }
            O::F64Load { ref memarg } => {
                self.load(memarg, 8, |t, f, a, o| t.b.ins().load(F64, f, a, o))?
            }
            O::I32Load8S { ref memarg } => {
                self.load(memarg, 1, |t, f, a, o| t.b.ins().sload8(I32, f, a, o))?
            }
            O::I32Load8U { ref memarg } => {
                self.load(memarg, 1, |t, f, a, o| t.b.ins().uload8(I32, f, a, o))?
            }
            O::I32Load16S { ref memarg } => {
                self.load(memarg, 2, |t, f, a, o| t.b.ins().sload16(I32, f, a, o))?
            }
            O::I32Load16U { ref memarg } => {
                self.load(memarg, 2, |t, f, a, o| t.b.ins().uload16(I32, f, a, o))?
            }
            O::I64Load8S { ref memarg } => {
                self.load(memarg, 1, |t, f, a, o| t.b.ins().sload8(I64, f, a, o))?
            }
            O::I64Load8U { ref memarg } => {
                self.load(memarg, 1, |t, f, a, o| t.b.ins().uload8(I64, f, a, o))?
            }
            O::I64Load16S { ref memarg } => {
                self.load(memarg, 2, |t, f, a, o| t.b.ins().sload16(I64, f, a, o))?
            }
            O::I64Load16U { ref memarg } => {
                self.load(memarg, 2, |t, f, a, o| t.b.ins().uload16(I64, f, a, o))?
            }
            O::I64Load32S { ref memarg } => {
                self.load(memarg, 4, |t, f, a, o| t.b.ins().sload32(f, a, o))?
            }
            O::I64Load32U { ref memarg } => {
                self.load(memarg, 4, |t, f, a, o| t.b.ins().uload32(f, a, o))?
            }
            O::I32Store { ref memarg } | O::F32Store { ref memarg } => {
                self.store(memarg, 4, |t, f, v, a, o| {
                    t.b.ins().store(f, v, a, o);
                })?
            }
            O::I64Store { ref memarg } | O::F64Store { ref memarg } => {
                self.store(memarg, 8, |t, f, v, a, o| {
                    t.b.ins().store(f, v, a, o);
                })?
            }
            O::I32Store8 { ref memarg } | O::I64Store8 { ref memarg } => {
                self.store(memarg, 1, |t, f, v, a, o| {
                    t.b.ins().istore8(f, v, a, o);
                })?
            }
            O::I32Store16 { ref memarg } | O::I64Store16 { ref memarg } => {
                self.store(memarg, 2, |t, f, v, a, o| {
                    t.b.ins().istore16(f, v, a, o);
                })?
            }
            O::I64Store32 { ref memarg } => self.store(memarg, 4, |t, f, v, a, o| {
                t.b.ins().istore32(f, v, a, o);
            })?,
            O::V128Load { ref memarg } => {
                self.load(memarg, 16, |t, f, a, o| t.b.ins().load(I8X16, f, a, o))?
            }
            O::V128Store { ref memarg } => self.store(memarg, 16, |t, f, v, a, o| {
                let v = t.as_i8x16(v);
                t.b.ins().store(f, v, a, o);
            })?,
            O::MemorySize { mem } => {
                let m = self.memory_index(mem)?;
                let def = self.memory_def(m);
                let len =
                    self.b
                        .ins()
                        .load(I64, rw(), def, VMOffsets::MEMORY_CURRENT_LENGTH as i32);
                let pages = self.b.ins().ushr_imm_u(len, 16);
                let v = if self.is_memory64(m) {
                    pages
                } else {
                    self.b.ins().ireduce(I32, pages)
                };
                self.push(v);
            }
            O::MemoryGrow { mem } => {
                let m = self.memory_index(mem)?;
                let delta = self.pop()?;
                let delta = self.widen_to_i64(delta);
                let mv = self.b.ins().iconst(I32, i64::from(m.as_u32()));
                let r = self.call_builtin(BuiltinFunction::memory_grow, &[mv, delta])[0];
                // A limiter's error (or `trap_on_grow_failure`): the runtime
                // has recorded the reason, the trap code here is never
                // reported.
                let must_trap =
                    self.b
                        .ins()
                        .icmp_imm_s(IntCC::Equal, r, kiln_environ::MEMORY_GROW_TRAP as i64);
                self.b.ins().trapnz(must_trap, TrapCode::HEAP_OUT_OF_BOUNDS);
                let v = if self.is_memory64(m) {
                    r
                } else {
                    self.b.ins().ireduce(I32, r)
                };
                self.push(v);
            }
            O::MemoryCopy { dst_mem, src_mem } => {
                let dm = self.memory_index(dst_mem)?;
                let sm = self.memory_index(src_mem)?;
                let (dst, src, len) = self.pop3()?;
                let (dst, src, len) = (
                    self.widen_to_i64(dst),
                    self.widen_to_i64(src),
                    self.widen_to_i64(len),
                );
                let dmv = self.b.ins().iconst(I32, i64::from(dm.as_u32()));
                let smv = self.b.ins().iconst(I32, i64::from(sm.as_u32()));
                self.call_builtin_trapping(
                    BuiltinFunction::memory_copy,
                    &[dmv, dst, smv, src, len],
                    TrapCode::HEAP_OUT_OF_BOUNDS,
                );
            }
            O::MemoryFill { mem } => {
                let m = self.memory_index(mem)?;
                let (dst, val, len) = self.pop3()?;
                let (dst, len) = (self.widen_to_i64(dst), self.widen_to_i64(len));
                let mv = self.b.ins().iconst(I32, i64::from(m.as_u32()));
                self.call_builtin_trapping(
                    BuiltinFunction::memory_fill,
                    &[mv, dst, val, len],
                    TrapCode::HEAP_OUT_OF_BOUNDS,
                );
            }
            O::MemoryInit { data_index, mem } => {
                let m = self.memory_index(mem)?;
                let (dst, src, len) = self.pop3()?;
                let dst = self.widen_to_i64(dst);
                let mv = self.b.ins().iconst(I32, i64::from(m.as_u32()));
                let seg = self.b.ins().iconst(I32, i64::from(data_index));
                self.call_builtin_trapping(
                    BuiltinFunction::memory_init,
                    &[mv, seg, dst, src, len],
                    TrapCode::HEAP_OUT_OF_BOUNDS,
                );
            }
            O::DataDrop { data_index } => {
                let seg = self.b.ins().iconst(I32, i64::from(data_index));
                self.call_builtin(BuiltinFunction::data_drop, &[seg]);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `v` as an `i64` (zero-extended from `i32`).
    pub(crate) fn widen_to_i64(&mut self, v: ir::Value) -> ir::Value {
        if self.b.func.dfg.value_type(v) == I64 {
            v
        } else {
            self.b.ins().uextend(I64, v)
        }
    }
}
