//! 128-bit SIMD.
//!
//! **Invariant:** every `v128` on the value stack, in a local, a block
//! parameter or a call argument is an `I8X16`. An operator bitcasts its
//! inputs to the lane type it works on (a bitcast between vector types is
//! free) and its result back to `I8X16`, so the rest of the translator
//! never needs to know lane types.

use super::memory::heap_flags;
use super::{Tx, TxResult};
use cranelift_codegen::ir::{
    self,
    condcodes::{FloatCC, IntCC},
    types::*,
    Endianness, InstBuilder, MemFlagsData,
};
use wasmparser::{MemArg, Operator as O};

fn vflags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

impl Tx<'_, '_> {
    /// `v` as a vector of type `ty`.
    pub(crate) fn as_vec(&mut self, v: ir::Value, ty: ir::Type) -> ir::Value {
        if self.b.func.dfg.value_type(v) == ty {
            v
        } else {
            self.b.ins().bitcast(ty, vflags(), v)
        }
    }

    /// `v` as the canonical `I8X16` if it is a vector; other values as they are.
    pub(crate) fn as_i8x16(&mut self, v: ir::Value) -> ir::Value {
        let ty = self.b.func.dfg.value_type(v);
        if ty.is_vector() && ty != I8X16 {
            self.b.ins().bitcast(I8X16, vflags(), v)
        } else {
            v
        }
    }

    fn popv(&mut self, ty: ir::Type) -> TxResult<ir::Value> {
        let v = self.pop()?;
        Ok(self.as_vec(v, ty))
    }

    fn pushv(&mut self, v: ir::Value) {
        let v = self.as_i8x16(v);
        self.push(v);
    }

    fn vun(
        &mut self,
        ty: ir::Type,
        f: impl FnOnce(&mut Self, ir::Value) -> ir::Value,
    ) -> TxResult<()> {
        let a = self.popv(ty)?;
        let r = f(self, a);
        self.pushv(r);
        Ok(())
    }

    fn vbin(
        &mut self,
        ty: ir::Type,
        f: impl FnOnce(&mut Self, ir::Value, ir::Value) -> ir::Value,
    ) -> TxResult<()> {
        let b = self.popv(ty)?;
        let a = self.popv(ty)?;
        let r = f(self, a, b);
        self.pushv(r);
        Ok(())
    }

    fn vicmp(&mut self, ty: ir::Type, cc: IntCC) -> TxResult<()> {
        self.vbin(ty, |t, a, b| t.b.ins().icmp(cc, a, b))
    }

    fn vfcmp(&mut self, ty: ir::Type, cc: FloatCC) -> TxResult<()> {
        self.vbin(ty, |t, a, b| t.b.ins().fcmp(cc, a, b))
    }

    /// A shift by an `i32` amount (Cranelift masks it to the lane width).
    fn vshift(
        &mut self,
        ty: ir::Type,
        f: impl FnOnce(&mut Self, ir::Value, ir::Value) -> ir::Value,
    ) -> TxResult<()> {
        let amt = self.pop()?;
        let a = self.popv(ty)?;
        let r = f(self, a, amt);
        self.pushv(r);
        Ok(())
    }

    /// A scalar test of a vector (`any_true`, `all_true`, `bitmask`).
    fn vtest(
        &mut self,
        ty: ir::Type,
        f: impl FnOnce(&mut Self, ir::Value) -> ir::Value,
    ) -> TxResult<()> {
        let a = self.popv(ty)?;
        let r = f(self, a);
        let r = if self.b.func.dfg.value_type(r) == I32 {
            r
        } else {
            self.b.ins().uextend(I32, r)
        };
        self.push(r);
        Ok(())
    }

    fn splat(&mut self, ty: ir::Type) -> TxResult<()> {
        let x = self.pop()?;
        let lane = ty.lane_type();
        let x = if lane.is_int() && lane.bits() < 32 {
            self.b.ins().ireduce(lane, x)
        } else {
            x
        };
        let r = self.b.ins().splat(ty, x);
        self.pushv(r);
        Ok(())
    }

    fn extract(&mut self, ty: ir::Type, lane: u8, ext: Option<bool>) -> TxResult<()> {
        let a = self.popv(ty)?;
        let x = self.b.ins().extractlane(a, lane);
        let x = match ext {
            Some(true) => self.b.ins().sextend(I32, x),
            Some(false) => self.b.ins().uextend(I32, x),
            None => x,
        };
        self.push(x);
        Ok(())
    }

    fn replace(&mut self, ty: ir::Type, lane: u8) -> TxResult<()> {
        let x = self.pop()?;
        let a = self.popv(ty)?;
        let l = ty.lane_type();
        let x = if l.is_int() && l.bits() < 32 {
            self.b.ins().ireduce(l, x)
        } else {
            x
        };
        let r = self.b.ins().insertlane(a, x, lane);
        self.pushv(r);
        Ok(())
    }

    /// A load of `size` bytes at the popped address, finished by `f`.
    fn vload(
        &mut self,
        memarg: &MemArg,
        size: u32,
        f: impl FnOnce(&mut Self, MemFlagsData, ir::Value, i32) -> ir::Value,
    ) -> TxResult<()> {
        let index = self.pop()?;
        let Some((addr, off)) = self.heap_addr(memarg, index, size)? else {
            return Ok(());
        };
        let r = f(self, heap_flags(), addr, off);
        self.pushv(r);
        Ok(())
    }

    fn load_lane(&mut self, memarg: &MemArg, ty: ir::Type, lane: u8) -> TxResult<()> {
        let v = self.popv(ty)?;
        let index = self.pop()?;
        let l = ty.lane_type();
        let Some((addr, off)) = self.heap_addr(memarg, index, l.bytes())? else {
            return Ok(());
        };
        let x = self.b.ins().load(l, heap_flags(), addr, off);
        let r = self.b.ins().insertlane(v, x, lane);
        self.pushv(r);
        Ok(())
    }

    fn store_lane(&mut self, memarg: &MemArg, ty: ir::Type, lane: u8) -> TxResult<()> {
        let v = self.popv(ty)?;
        let index = self.pop()?;
        let l = ty.lane_type();
        let Some((addr, off)) = self.heap_addr(memarg, index, l.bytes())? else {
            return Ok(());
        };
        let x = self.b.ins().extractlane(v, lane);
        self.b.ins().store(heap_flags(), x, addr, off);
        Ok(())
    }

    fn vconst_bytes(&mut self, ty: ir::Type, bytes: &[u8]) -> ir::Value {
        let c = self.b.func.dfg.constants.insert(bytes.to_vec().into());
        self.b.ins().vconst(ty, c)
    }

    /// Translates `op` if it is a SIMD operator.
    pub(super) fn simd_operator(&mut self, op: &O<'_>) -> TxResult<bool> {
        match *op {
            O::V128Load8x8S { ref memarg } => {
                self.vload(memarg, 8, |t, f, a, o| t.b.ins().sload8x8(f, a, o))?
            }
            O::V128Load8x8U { ref memarg } => {
                self.vload(memarg, 8, |t, f, a, o| t.b.ins().uload8x8(f, a, o))?
            }
            O::V128Load16x4S { ref memarg } => {
                self.vload(memarg, 8, |t, f, a, o| t.b.ins().sload16x4(f, a, o))?
            }
            O::V128Load16x4U { ref memarg } => {
                self.vload(memarg, 8, |t, f, a, o| t.b.ins().uload16x4(f, a, o))?
            }
            O::V128Load32x2S { ref memarg } => {
                self.vload(memarg, 8, |t, f, a, o| t.b.ins().sload32x2(f, a, o))?
            }
            O::V128Load32x2U { ref memarg } => {
                self.vload(memarg, 8, |t, f, a, o| t.b.ins().uload32x2(f, a, o))?
            }
            O::V128Load8Splat { ref memarg } => self.vload(memarg, 1, |t, f, a, o| {
                let x = t.b.ins().load(I8, f, a, o);
                t.b.ins().splat(I8X16, x)
            })?,
            O::V128Load16Splat { ref memarg } => self.vload(memarg, 2, |t, f, a, o| {
                let x = t.b.ins().load(I16, f, a, o);
                t.b.ins().splat(I16X8, x)
            })?,
            O::V128Load32Splat { ref memarg } => self.vload(memarg, 4, |t, f, a, o| {
                let x = t.b.ins().load(I32, f, a, o);
                t.b.ins().splat(I32X4, x)
            })?,
            O::V128Load64Splat { ref memarg } => self.vload(memarg, 8, |t, f, a, o| {
                let x = t.b.ins().load(I64, f, a, o);
                t.b.ins().splat(I64X2, x)
            })?,
            O::V128Load32Zero { ref memarg } => self.vload(memarg, 4, |t, f, a, o| {
                let x = t.b.ins().load(I32, f, a, o);
                t.b.ins().scalar_to_vector(I32X4, x)
            })?,
            O::V128Load64Zero { ref memarg } => self.vload(memarg, 8, |t, f, a, o| {
                let x = t.b.ins().load(I64, f, a, o);
                t.b.ins().scalar_to_vector(I64X2, x)
            })?,
            O::V128Load8Lane { ref memarg, lane } => self.load_lane(memarg, I8X16, lane)?,
            O::V128Load16Lane { ref memarg, lane } => self.load_lane(memarg, I16X8, lane)?,
            O::V128Load32Lane { ref memarg, lane } => self.load_lane(memarg, I32X4, lane)?,
            O::V128Load64Lane { ref memarg, lane } => self.load_lane(memarg, I64X2, lane)?,
            O::V128Store8Lane { ref memarg, lane } => self.store_lane(memarg, I8X16, lane)?,
            O::V128Store16Lane { ref memarg, lane } => self.store_lane(memarg, I16X8, lane)?,
            O::V128Store32Lane { ref memarg, lane } => self.store_lane(memarg, I32X4, lane)?,
            O::V128Store64Lane { ref memarg, lane } => self.store_lane(memarg, I64X2, lane)?,
            O::V128Const { value } => {
                let v = self.vconst_bytes(I8X16, value.bytes());
                self.push(v);
            }
            O::I8x16Shuffle { lanes } => {
                let b = self.popv(I8X16)?;
                let a = self.popv(I8X16)?;
                let mask = self.b.func.dfg.immediates.push(lanes.to_vec().into());
                let r = self.b.ins().shuffle(a, b, mask);
                self.pushv(r);
            }
            O::I8x16Swizzle => self.vbin(I8X16, |t, a, b| t.b.ins().swizzle(a, b))?,
            O::I8x16Splat => self.splat(I8X16)?,
            O::I16x8Splat => self.splat(I16X8)?,
            O::I32x4Splat => self.splat(I32X4)?,
            O::I64x2Splat => self.splat(I64X2)?,
            O::F32x4Splat => self.splat(F32X4)?,
            O::F64x2Splat => self.splat(F64X2)?,
            O::I8x16ExtractLaneS { lane } => self.extract(I8X16, lane, Some(true))?,
            O::I8x16ExtractLaneU { lane } => self.extract(I8X16, lane, Some(false))?,
            O::I16x8ExtractLaneS { lane } => self.extract(I16X8, lane, Some(true))?,
            O::I16x8ExtractLaneU { lane } => self.extract(I16X8, lane, Some(false))?,
            O::I32x4ExtractLane { lane } => self.extract(I32X4, lane, None)?,
            O::I64x2ExtractLane { lane } => self.extract(I64X2, lane, None)?,
            O::F32x4ExtractLane { lane } => self.extract(F32X4, lane, None)?,
            O::F64x2ExtractLane { lane } => self.extract(F64X2, lane, None)?,
            O::I8x16ReplaceLane { lane } => self.replace(I8X16, lane)?,
            O::I16x8ReplaceLane { lane } => self.replace(I16X8, lane)?,
            O::I32x4ReplaceLane { lane } => self.replace(I32X4, lane)?,
            O::I64x2ReplaceLane { lane } => self.replace(I64X2, lane)?,
            O::F32x4ReplaceLane { lane } => self.replace(F32X4, lane)?,
            O::F64x2ReplaceLane { lane } => self.replace(F64X2, lane)?,

            O::I8x16Eq => self.vicmp(I8X16, IntCC::Equal)?,
            O::I8x16Ne => self.vicmp(I8X16, IntCC::NotEqual)?,
            O::I8x16LtS => self.vicmp(I8X16, IntCC::SignedLessThan)?,
            O::I8x16LtU => self.vicmp(I8X16, IntCC::UnsignedLessThan)?,
            O::I8x16GtS => self.vicmp(I8X16, IntCC::SignedGreaterThan)?,
            O::I8x16GtU => self.vicmp(I8X16, IntCC::UnsignedGreaterThan)?,
            O::I8x16LeS => self.vicmp(I8X16, IntCC::SignedLessThanOrEqual)?,
            O::I8x16LeU => self.vicmp(I8X16, IntCC::UnsignedLessThanOrEqual)?,
            O::I8x16GeS => self.vicmp(I8X16, IntCC::SignedGreaterThanOrEqual)?,
            O::I8x16GeU => self.vicmp(I8X16, IntCC::UnsignedGreaterThanOrEqual)?,
            O::I16x8Eq => self.vicmp(I16X8, IntCC::Equal)?,
            O::I16x8Ne => self.vicmp(I16X8, IntCC::NotEqual)?,
            O::I16x8LtS => self.vicmp(I16X8, IntCC::SignedLessThan)?,
            O::I16x8LtU => self.vicmp(I16X8, IntCC::UnsignedLessThan)?,
            O::I16x8GtS => self.vicmp(I16X8, IntCC::SignedGreaterThan)?,
            O::I16x8GtU => self.vicmp(I16X8, IntCC::UnsignedGreaterThan)?,
            O::I16x8LeS => self.vicmp(I16X8, IntCC::SignedLessThanOrEqual)?,
            O::I16x8LeU => self.vicmp(I16X8, IntCC::UnsignedLessThanOrEqual)?,
            O::I16x8GeS => self.vicmp(I16X8, IntCC::SignedGreaterThanOrEqual)?,
            O::I16x8GeU => self.vicmp(I16X8, IntCC::UnsignedGreaterThanOrEqual)?,
            O::I32x4Eq => self.vicmp(I32X4, IntCC::Equal)?,
            O::I32x4Ne => self.vicmp(I32X4, IntCC::NotEqual)?,
            O::I32x4LtS => self.vicmp(I32X4, IntCC::SignedLessThan)?,
            O::I32x4LtU => self.vicmp(I32X4, IntCC::UnsignedLessThan)?,
            O::I32x4GtS => self.vicmp(I32X4, IntCC::SignedGreaterThan)?,
            O::I32x4GtU => self.vicmp(I32X4, IntCC::UnsignedGreaterThan)?,
            O::I32x4LeS => self.vicmp(I32X4, IntCC::SignedLessThanOrEqual)?,
            O::I32x4LeU => self.vicmp(I32X4, IntCC::UnsignedLessThanOrEqual)?,
            O::I32x4GeS => self.vicmp(I32X4, IntCC::SignedGreaterThanOrEqual)?,
            O::I32x4GeU => self.vicmp(I32X4, IntCC::UnsignedGreaterThanOrEqual)?,
            O::I64x2Eq => self.vicmp(I64X2, IntCC::Equal)?,
            O::I64x2Ne => self.vicmp(I64X2, IntCC::NotEqual)?,
            O::I64x2LtS => self.vicmp(I64X2, IntCC::SignedLessThan)?,
            O::I64x2GtS => self.vicmp(I64X2, IntCC::SignedGreaterThan)?,
            O::I64x2LeS => self.vicmp(I64X2, IntCC::SignedLessThanOrEqual)?,
            O::I64x2GeS => self.vicmp(I64X2, IntCC::SignedGreaterThanOrEqual)?,
            O::F32x4Eq => self.vfcmp(F32X4, FloatCC::Equal)?,
            O::F32x4Ne => self.vfcmp(F32X4, FloatCC::NotEqual)?,
            O::F32x4Lt => self.vfcmp(F32X4, FloatCC::LessThan)?,
            O::F32x4Gt => self.vfcmp(F32X4, FloatCC::GreaterThan)?,
            O::F32x4Le => self.vfcmp(F32X4, FloatCC::LessThanOrEqual)?,
            O::F32x4Ge => self.vfcmp(F32X4, FloatCC::GreaterThanOrEqual)?,
            O::F64x2Eq => self.vfcmp(F64X2, FloatCC::Equal)?,
            O::F64x2Ne => self.vfcmp(F64X2, FloatCC::NotEqual)?,
            O::F64x2Lt => self.vfcmp(F64X2, FloatCC::LessThan)?,
            O::F64x2Gt => self.vfcmp(F64X2, FloatCC::GreaterThan)?,
            O::F64x2Le => self.vfcmp(F64X2, FloatCC::LessThanOrEqual)?,
            O::F64x2Ge => self.vfcmp(F64X2, FloatCC::GreaterThanOrEqual)?,

            O::V128Not => self.vun(I8X16, |t, a| t.b.ins().bnot(a))?,
            O::V128And => self.vbin(I8X16, |t, a, b| t.b.ins().band(a, b))?,
            O::V128AndNot => self.vbin(I8X16, |t, a, b| t.b.ins().band_not(a, b))?,
            O::V128Or => self.vbin(I8X16, |t, a, b| t.b.ins().bor(a, b))?,
            O::V128Xor => self.vbin(I8X16, |t, a, b| t.b.ins().bxor(a, b))?,
            O::V128Bitselect => {
                let c = self.popv(I8X16)?;
                let b = self.popv(I8X16)?;
                let a = self.popv(I8X16)?;
                let r = self.b.ins().bitselect(c, a, b);
                self.pushv(r);
            }
            O::V128AnyTrue => self.vtest(I8X16, |t, a| t.b.ins().vany_true(a))?,
            O::I8x16AllTrue => self.vtest(I8X16, |t, a| t.b.ins().vall_true(a))?,
            O::I16x8AllTrue => self.vtest(I16X8, |t, a| t.b.ins().vall_true(a))?,
            O::I32x4AllTrue => self.vtest(I32X4, |t, a| t.b.ins().vall_true(a))?,
            O::I64x2AllTrue => self.vtest(I64X2, |t, a| t.b.ins().vall_true(a))?,
            O::I8x16Bitmask => self.vtest(I8X16, |t, a| t.b.ins().vhigh_bits(I32, a))?,
            O::I16x8Bitmask => self.vtest(I16X8, |t, a| t.b.ins().vhigh_bits(I32, a))?,
            O::I32x4Bitmask => self.vtest(I32X4, |t, a| t.b.ins().vhigh_bits(I32, a))?,
            O::I64x2Bitmask => self.vtest(I64X2, |t, a| t.b.ins().vhigh_bits(I32, a))?,

            O::I8x16Abs => self.vun(I8X16, |t, a| t.b.ins().iabs(a))?,
            O::I16x8Abs => self.vun(I16X8, |t, a| t.b.ins().iabs(a))?,
            O::I32x4Abs => self.vun(I32X4, |t, a| t.b.ins().iabs(a))?,
            O::I64x2Abs => self.vun(I64X2, |t, a| t.b.ins().iabs(a))?,
            O::I8x16Neg => self.vun(I8X16, |t, a| t.b.ins().ineg(a))?,
            O::I16x8Neg => self.vun(I16X8, |t, a| t.b.ins().ineg(a))?,
            O::I32x4Neg => self.vun(I32X4, |t, a| t.b.ins().ineg(a))?,
            O::I64x2Neg => self.vun(I64X2, |t, a| t.b.ins().ineg(a))?,
            O::I8x16Popcnt => self.vun(I8X16, |t, a| t.b.ins().popcnt(a))?,
            O::I8x16NarrowI16x8S => self.vbin(I16X8, |t, a, b| t.b.ins().snarrow(a, b))?,
            O::I8x16NarrowI16x8U => self.vbin(I16X8, |t, a, b| t.b.ins().unarrow(a, b))?,
            O::I16x8NarrowI32x4S => self.vbin(I32X4, |t, a, b| t.b.ins().snarrow(a, b))?,
            O::I16x8NarrowI32x4U => self.vbin(I32X4, |t, a, b| t.b.ins().unarrow(a, b))?,

            O::I8x16Shl => self.vshift(I8X16, |t, a, s| t.b.ins().ishl(a, s))?,
            O::I16x8Shl => self.vshift(I16X8, |t, a, s| t.b.ins().ishl(a, s))?,
            O::I32x4Shl => self.vshift(I32X4, |t, a, s| t.b.ins().ishl(a, s))?,
            O::I64x2Shl => self.vshift(I64X2, |t, a, s| t.b.ins().ishl(a, s))?,
            O::I8x16ShrS => self.vshift(I8X16, |t, a, s| t.b.ins().sshr(a, s))?,
            O::I16x8ShrS => self.vshift(I16X8, |t, a, s| t.b.ins().sshr(a, s))?,
            O::I32x4ShrS => self.vshift(I32X4, |t, a, s| t.b.ins().sshr(a, s))?,
            O::I64x2ShrS => self.vshift(I64X2, |t, a, s| t.b.ins().sshr(a, s))?,
            O::I8x16ShrU => self.vshift(I8X16, |t, a, s| t.b.ins().ushr(a, s))?,
            O::I16x8ShrU => self.vshift(I16X8, |t, a, s| t.b.ins().ushr(a, s))?,
            O::I32x4ShrU => self.vshift(I32X4, |t, a, s| t.b.ins().ushr(a, s))?,
            O::I64x2ShrU => self.vshift(I64X2, |t, a, s| t.b.ins().ushr(a, s))?,

            O::I8x16Add => self.vbin(I8X16, |t, a, b| t.b.ins().iadd(a, b))?,
            O::I16x8Add => self.vbin(I16X8, |t, a, b| t.b.ins().iadd(a, b))?,
            O::I32x4Add => self.vbin(I32X4, |t, a, b| t.b.ins().iadd(a, b))?,
            O::I64x2Add => self.vbin(I64X2, |t, a, b| t.b.ins().iadd(a, b))?,
            O::I8x16Sub => self.vbin(I8X16, |t, a, b| t.b.ins().isub(a, b))?,
            O::I16x8Sub => self.vbin(I16X8, |t, a, b| t.b.ins().isub(a, b))?,
            O::I32x4Sub => self.vbin(I32X4, |t, a, b| t.b.ins().isub(a, b))?,
            O::I64x2Sub => self.vbin(I64X2, |t, a, b| t.b.ins().isub(a, b))?,
            O::I16x8Mul => self.vbin(I16X8, |t, a, b| t.b.ins().imul(a, b))?,
            O::I32x4Mul => self.vbin(I32X4, |t, a, b| t.b.ins().imul(a, b))?,
            O::I64x2Mul => self.vbin(I64X2, |t, a, b| t.b.ins().imul(a, b))?,
            O::I8x16AddSatS => self.vbin(I8X16, |t, a, b| t.b.ins().sadd_sat(a, b))?,
            O::I16x8AddSatS => self.vbin(I16X8, |t, a, b| t.b.ins().sadd_sat(a, b))?,
            O::I8x16AddSatU => self.vbin(I8X16, |t, a, b| t.b.ins().uadd_sat(a, b))?,
            O::I16x8AddSatU => self.vbin(I16X8, |t, a, b| t.b.ins().uadd_sat(a, b))?,
            O::I8x16SubSatS => self.vbin(I8X16, |t, a, b| t.b.ins().ssub_sat(a, b))?,
            O::I16x8SubSatS => self.vbin(I16X8, |t, a, b| t.b.ins().ssub_sat(a, b))?,
            O::I8x16SubSatU => self.vbin(I8X16, |t, a, b| t.b.ins().usub_sat(a, b))?,
            O::I16x8SubSatU => self.vbin(I16X8, |t, a, b| t.b.ins().usub_sat(a, b))?,
            O::I8x16MinS => self.vbin(I8X16, |t, a, b| t.b.ins().smin(a, b))?,
            O::I16x8MinS => self.vbin(I16X8, |t, a, b| t.b.ins().smin(a, b))?,
            O::I32x4MinS => self.vbin(I32X4, |t, a, b| t.b.ins().smin(a, b))?,
            O::I8x16MinU => self.vbin(I8X16, |t, a, b| t.b.ins().umin(a, b))?,
            O::I16x8MinU => self.vbin(I16X8, |t, a, b| t.b.ins().umin(a, b))?,
            O::I32x4MinU => self.vbin(I32X4, |t, a, b| t.b.ins().umin(a, b))?,
            O::I8x16MaxS => self.vbin(I8X16, |t, a, b| t.b.ins().smax(a, b))?,
            O::I16x8MaxS => self.vbin(I16X8, |t, a, b| t.b.ins().smax(a, b))?,
            O::I32x4MaxS => self.vbin(I32X4, |t, a, b| t.b.ins().smax(a, b))?,
            O::I8x16MaxU => self.vbin(I8X16, |t, a, b| t.b.ins().umax(a, b))?,
            O::I16x8MaxU => self.vbin(I16X8, |t, a, b| t.b.ins().umax(a, b))?,
            O::I32x4MaxU => self.vbin(I32X4, |t, a, b| t.b.ins().umax(a, b))?,
            O::I8x16AvgrU => self.vbin(I8X16, |t, a, b| t.b.ins().avg_round(a, b))?,
            O::I16x8AvgrU => self.vbin(I16X8, |t, a, b| t.b.ins().avg_round(a, b))?,
            O::I16x8Q15MulrSatS => self.vbin(I16X8, |t, a, b| t.b.ins().sqmul_round_sat(a, b))?,

            O::I16x8ExtAddPairwiseI8x16S => self.vun(I8X16, |t, a| {
                let lo = t.b.ins().swiden_low(a);
                let hi = t.b.ins().swiden_high(a);
                t.b.ins().iadd_pairwise(lo, hi)
            })?,
            O::I16x8ExtAddPairwiseI8x16U => self.vun(I8X16, |t, a| {
                let lo = t.b.ins().uwiden_low(a);
                let hi = t.b.ins().uwiden_high(a);
                t.b.ins().iadd_pairwise(lo, hi)
            })?,
            O::I32x4ExtAddPairwiseI16x8S => self.vun(I16X8, |t, a| {
                let lo = t.b.ins().swiden_low(a);
                let hi = t.b.ins().swiden_high(a);
                t.b.ins().iadd_pairwise(lo, hi)
            })?,
            O::I32x4ExtAddPairwiseI16x8U => self.vun(I16X8, |t, a| {
                let lo = t.b.ins().uwiden_low(a);
                let hi = t.b.ins().uwiden_high(a);
                t.b.ins().iadd_pairwise(lo, hi)
            })?,
            O::I16x8ExtendLowI8x16S => self.vun(I8X16, |t, a| t.b.ins().swiden_low(a))?,
            O::I16x8ExtendHighI8x16S => self.vun(I8X16, |t, a| t.b.ins().swiden_high(a))?,
            O::I16x8ExtendLowI8x16U => self.vun(I8X16, |t, a| t.b.ins().uwiden_low(a))?,
            O::I16x8ExtendHighI8x16U => self.vun(I8X16, |t, a| t.b.ins().uwiden_high(a))?,
            O::I32x4ExtendLowI16x8S => self.vun(I16X8, |t, a| t.b.ins().swiden_low(a))?,
            O::I32x4ExtendHighI16x8S => self.vun(I16X8, |t, a| t.b.ins().swiden_high(a))?,
            O::I32x4ExtendLowI16x8U => self.vun(I16X8, |t, a| t.b.ins().uwiden_low(a))?,
            O::I32x4ExtendHighI16x8U => self.vun(I16X8, |t, a| t.b.ins().uwiden_high(a))?,
            O::I64x2ExtendLowI32x4S => self.vun(I32X4, |t, a| t.b.ins().swiden_low(a))?,
            O::I64x2ExtendHighI32x4S => self.vun(I32X4, |t, a| t.b.ins().swiden_high(a))?,
            O::I64x2ExtendLowI32x4U => self.vun(I32X4, |t, a| t.b.ins().uwiden_low(a))?,
            O::I64x2ExtendHighI32x4U => self.vun(I32X4, |t, a| t.b.ins().uwiden_high(a))?,
            O::I16x8ExtMulLowI8x16S | O::I32x4ExtMulLowI16x8S | O::I64x2ExtMulLowI32x4S => {
                let ty = ext_mul_input(op);
                self.vbin(ty, |t, a, b| {
                    let a = t.b.ins().swiden_low(a);
                    let b = t.b.ins().swiden_low(b);
                    t.b.ins().imul(a, b)
                })?
            }
            O::I16x8ExtMulHighI8x16S | O::I32x4ExtMulHighI16x8S | O::I64x2ExtMulHighI32x4S => {
                let ty = ext_mul_input(op);
                self.vbin(ty, |t, a, b| {
                    let a = t.b.ins().swiden_high(a);
                    let b = t.b.ins().swiden_high(b);
                    t.b.ins().imul(a, b)
                })?
            }
            O::I16x8ExtMulLowI8x16U | O::I32x4ExtMulLowI16x8U | O::I64x2ExtMulLowI32x4U => {
                let ty = ext_mul_input(op);
                self.vbin(ty, |t, a, b| {
                    let a = t.b.ins().uwiden_low(a);
                    let b = t.b.ins().uwiden_low(b);
                    t.b.ins().imul(a, b)
                })?
            }
            O::I16x8ExtMulHighI8x16U | O::I32x4ExtMulHighI16x8U | O::I64x2ExtMulHighI32x4U => {
                let ty = ext_mul_input(op);
                self.vbin(ty, |t, a, b| {
                    let a = t.b.ins().uwiden_high(a);
                    let b = t.b.ins().uwiden_high(b);
                    t.b.ins().imul(a, b)
                })?
            }
            O::I32x4DotI16x8S => self.vbin(I16X8, |t, a, b| {
                let al = t.b.ins().swiden_low(a);
                let bl = t.b.ins().swiden_low(b);
                let lo = t.b.ins().imul(al, bl);
                let ah = t.b.ins().swiden_high(a);
                let bh = t.b.ins().swiden_high(b);
                let hi = t.b.ins().imul(ah, bh);
                t.b.ins().iadd_pairwise(lo, hi)
            })?,

            O::F32x4Ceil => self.vun(F32X4, |t, a| t.b.ins().ceil(a))?,
            O::F64x2Ceil => self.vun(F64X2, |t, a| t.b.ins().ceil(a))?,
            O::F32x4Floor => self.vun(F32X4, |t, a| t.b.ins().floor(a))?,
            O::F64x2Floor => self.vun(F64X2, |t, a| t.b.ins().floor(a))?,
            O::F32x4Trunc => self.vun(F32X4, |t, a| t.b.ins().trunc(a))?,
            O::F64x2Trunc => self.vun(F64X2, |t, a| t.b.ins().trunc(a))?,
            O::F32x4Nearest => self.vun(F32X4, |t, a| t.b.ins().nearest(a))?,
            O::F64x2Nearest => self.vun(F64X2, |t, a| t.b.ins().nearest(a))?,
            O::F32x4Abs => self.vun(F32X4, |t, a| t.b.ins().fabs(a))?,
            O::F64x2Abs => self.vun(F64X2, |t, a| t.b.ins().fabs(a))?,
            O::F32x4Neg => self.vun(F32X4, |t, a| t.b.ins().fneg(a))?,
            O::F64x2Neg => self.vun(F64X2, |t, a| t.b.ins().fneg(a))?,
            O::F32x4Sqrt => self.vun(F32X4, |t, a| t.b.ins().sqrt(a))?,
            O::F64x2Sqrt => self.vun(F64X2, |t, a| t.b.ins().sqrt(a))?,
            O::F32x4Add => self.vbin(F32X4, |t, a, b| t.b.ins().fadd(a, b))?,
            O::F64x2Add => self.vbin(F64X2, |t, a, b| t.b.ins().fadd(a, b))?,
            O::F32x4Sub => self.vbin(F32X4, |t, a, b| t.b.ins().fsub(a, b))?,
            O::F64x2Sub => self.vbin(F64X2, |t, a, b| t.b.ins().fsub(a, b))?,
            O::F32x4Mul => self.vbin(F32X4, |t, a, b| t.b.ins().fmul(a, b))?,
            O::F64x2Mul => self.vbin(F64X2, |t, a, b| t.b.ins().fmul(a, b))?,
            O::F32x4Div => self.vbin(F32X4, |t, a, b| t.b.ins().fdiv(a, b))?,
            O::F64x2Div => self.vbin(F64X2, |t, a, b| t.b.ins().fdiv(a, b))?,
            O::F32x4Min => self.vbin(F32X4, |t, a, b| t.b.ins().fmin(a, b))?,
            O::F64x2Min => self.vbin(F64X2, |t, a, b| t.b.ins().fmin(a, b))?,
            O::F32x4Max => self.vbin(F32X4, |t, a, b| t.b.ins().fmax(a, b))?,
            O::F64x2Max => self.vbin(F64X2, |t, a, b| t.b.ins().fmax(a, b))?,
            // pmin(a, b) = b < a ? b : a; pmax(a, b) = a < b ? b : a.
            O::F32x4PMin | O::F64x2PMin => {
                let ty = if matches!(op, O::F32x4PMin) {
                    F32X4
                } else {
                    F64X2
                };
                self.vbin(ty, |t, a, b| {
                    let m = t.b.ins().fcmp(FloatCC::LessThan, b, a);
                    let m = t.b.ins().bitcast(ty, vflags(), m);
                    t.b.ins().bitselect(m, b, a)
                })?
            }
            O::F32x4PMax | O::F64x2PMax => {
                let ty = if matches!(op, O::F32x4PMax) {
                    F32X4
                } else {
                    F64X2
                };
                self.vbin(ty, |t, a, b| {
                    let m = t.b.ins().fcmp(FloatCC::LessThan, a, b);
                    let m = t.b.ins().bitcast(ty, vflags(), m);
                    t.b.ins().bitselect(m, b, a)
                })?
            }
            O::I32x4TruncSatF32x4S => {
                self.vun(F32X4, |t, a| t.b.ins().fcvt_to_sint_sat(I32X4, a))?
            }
            O::I32x4TruncSatF32x4U => {
                self.vun(F32X4, |t, a| t.b.ins().fcvt_to_uint_sat(I32X4, a))?
            }
            O::F32x4ConvertI32x4S => self.vun(I32X4, |t, a| t.b.ins().fcvt_from_sint(F32X4, a))?,
            O::F32x4ConvertI32x4U => self.vun(I32X4, |t, a| t.b.ins().fcvt_from_uint(F32X4, a))?,
            O::I32x4TruncSatF64x2SZero => self.vun(F64X2, |t, a| {
                let c = t.b.ins().fcvt_to_sint_sat(I64X2, a);
                let zero = t.vconst_bytes(I64X2, &[0; 16]);
                t.b.ins().snarrow(c, zero)
            })?,
            O::I32x4TruncSatF64x2UZero => self.vun(F64X2, |t, a| {
                let c = t.b.ins().fcvt_to_uint_sat(I64X2, a);
                let zero = t.vconst_bytes(I64X2, &[0; 16]);
                t.b.ins().uunarrow(c, zero)
            })?,
            O::F64x2ConvertLowI32x4S => self.vun(I32X4, |t, a| {
                let w = t.b.ins().swiden_low(a);
                t.b.ins().fcvt_from_sint(F64X2, w)
            })?,
            O::F64x2ConvertLowI32x4U => self.vun(I32X4, |t, a| {
                let w = t.b.ins().uwiden_low(a);
                t.b.ins().fcvt_from_uint(F64X2, w)
            })?,
            O::F32x4DemoteF64x2Zero => self.vun(F64X2, |t, a| t.b.ins().fvdemote(a))?,
            O::F64x2PromoteLowF32x4 => self.vun(F32X4, |t, a| t.b.ins().fvpromote_low(a))?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The input type of an extended multiplication.
fn ext_mul_input(op: &O<'_>) -> ir::Type {
    match op {
        O::I16x8ExtMulLowI8x16S
        | O::I16x8ExtMulHighI8x16S
        | O::I16x8ExtMulLowI8x16U
        | O::I16x8ExtMulHighI8x16U => I8X16,
        O::I32x4ExtMulLowI16x8S
        | O::I32x4ExtMulHighI16x8S
        | O::I32x4ExtMulLowI16x8U
        | O::I32x4ExtMulHighI16x8U => I16X8,
        _ => I32X4,
    }
}
