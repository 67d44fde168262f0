//! Scalar operators: locals, `drop`/`select`, constants, integer and float
//! arithmetic, comparisons and conversions.

use super::{Tx, TxResult};
use cranelift_codegen::ir::{
    self,
    condcodes::{FloatCC, IntCC},
    types::*,
    InstBuilder, MemFlagsData,
};
use wasmparser::Operator as O;

impl Tx<'_, '_> {
    fn local(&self, i: u32) -> TxResult<cranelift_frontend::Variable> {
        self.locals
            .get(i as usize)
            .copied()
            .ok_or_else(|| super::invalid("unknown local", self.offset))
    }

    fn unop(&mut self, f: impl FnOnce(&mut Self, ir::Value) -> ir::Value) -> TxResult<()> {
        let x = self.pop()?;
        let v = f(self, x);
        self.push(v);
        Ok(())
    }

    fn binop(
        &mut self,
        f: impl FnOnce(&mut Self, ir::Value, ir::Value) -> ir::Value,
    ) -> TxResult<()> {
        let (x, y) = self.pop2()?;
        let v = f(self, x, y);
        self.push(v);
        Ok(())
    }

    fn icmp(&mut self, cc: IntCC) -> TxResult<()> {
        let (x, y) = self.pop2()?;
        let c = self.b.ins().icmp(cc, x, y);
        self.push_bool(c);
        Ok(())
    }

    fn fcmp(&mut self, cc: FloatCC) -> TxResult<()> {
        let (x, y) = self.pop2()?;
        let c = self.b.ins().fcmp(cc, x, y);
        self.push_bool(c);
        Ok(())
    }

    fn eqz(&mut self) -> TxResult<()> {
        let x = self.pop()?;
        let c = self.b.ins().icmp_imm_s(IntCC::Equal, x, 0);
        self.push_bool(c);
        Ok(())
    }

    fn sext_from(&mut self, narrow: ir::Type, wide: ir::Type) -> TxResult<()> {
        self.unop(|t, x| {
            let n = t.b.ins().ireduce(narrow, x);
            t.b.ins().sextend(wide, n)
        })
    }

    fn bitcast(&mut self, ty: ir::Type) -> TxResult<()> {
        self.unop(|t, x| t.b.ins().bitcast(ty, MemFlagsData::new(), x))
    }

    /// Translates `op` if it is a scalar operator.
    pub(super) fn code_operator(&mut self, op: &O<'_>) -> TxResult<bool> {
        match *op {
            O::Drop => {
                self.pop()?;
            }
            O::Select | O::TypedSelect { .. } => {
                let (x, y, c) = self.pop3()?;
                let v = self.b.ins().select(c, x, y);
                self.push(v);
            }
            O::TypedSelectMulti { .. } => {
                return Err(kiln_environ::WasmError::Unsupported(
                    "select with several results".into(),
                ))
            }
            O::LocalGet { local_index } => {
                let var = self.local(local_index)?;
                let v = self.b.use_var(var);
                self.push(v);
            }
            O::LocalSet { local_index } => {
                let var = self.local(local_index)?;
                let v = self.pop()?;
                self.b.def_var(var, v);
            }
            O::LocalTee { local_index } => {
                let var = self.local(local_index)?;
                let v = *self
                    .peekn(1)?
                    .first()
                    .ok_or_else(|| super::invalid("operand stack underflow", self.offset))?;
                self.b.def_var(var, v);
            }
            O::I32Const { value } => {
                let v = self.b.ins().iconst(I32, i64::from(value));
                self.push(v);
            }
            O::I64Const { value } => {
                let v = self.b.ins().iconst(I64, value);
                self.push(v);
            }
            O::F32Const { value } => {
                let v = self
                    .b
                    .ins()
                    .f32const(ir::immediates::Ieee32::with_bits(value.bits()));
                self.push(v);
            }
            O::F64Const { value } => {
                let v = self
                    .b
                    .ins()
                    .f64const(ir::immediates::Ieee64::with_bits(value.bits()));
                self.push(v);
            }

            O::I32Eqz | O::I64Eqz => self.eqz()?,
            O::I32Eq | O::I64Eq => self.icmp(IntCC::Equal)?,
            O::I32Ne | O::I64Ne => self.icmp(IntCC::NotEqual)?,
            O::I32LtS | O::I64LtS => self.icmp(IntCC::SignedLessThan)?,
            O::I32LtU | O::I64LtU => self.icmp(IntCC::UnsignedLessThan)?,
            O::I32GtS | O::I64GtS => self.icmp(IntCC::SignedGreaterThan)?,
            O::I32GtU | O::I64GtU => self.icmp(IntCC::UnsignedGreaterThan)?,
            O::I32LeS | O::I64LeS => self.icmp(IntCC::SignedLessThanOrEqual)?,
            O::I32LeU | O::I64LeU => self.icmp(IntCC::UnsignedLessThanOrEqual)?,
            O::I32GeS | O::I64GeS => self.icmp(IntCC::SignedGreaterThanOrEqual)?,
            O::I32GeU | O::I64GeU => self.icmp(IntCC::UnsignedGreaterThanOrEqual)?,

            O::F32Eq | O::F64Eq => self.fcmp(FloatCC::Equal)?,
            O::F32Ne | O::F64Ne => self.fcmp(FloatCC::NotEqual)?,
            O::F32Lt | O::F64Lt => self.fcmp(FloatCC::LessThan)?,
            O::F32Gt | O::F64Gt => self.fcmp(FloatCC::GreaterThan)?,
            O::F32Le | O::F64Le => self.fcmp(FloatCC::LessThanOrEqual)?,
            O::F32Ge | O::F64Ge => self.fcmp(FloatCC::GreaterThanOrEqual)?,

            O::I32Clz | O::I64Clz => self.unop(|t, x| t.b.ins().clz(x))?,
            O::I32Ctz | O::I64Ctz => self.unop(|t, x| t.b.ins().ctz(x))?,
            O::I32Popcnt | O::I64Popcnt => self.unop(|t, x| t.b.ins().popcnt(x))?,
            O::I32Add | O::I64Add => self.binop(|t, x, y| t.b.ins().iadd(x, y))?,
            O::I32Sub | O::I64Sub => self.binop(|t, x, y| t.b.ins().isub(x, y))?,
            O::I32Mul | O::I64Mul => self.binop(|t, x, y| t.b.ins().imul(x, y))?,
            O::I32DivS | O::I64DivS => self.binop(|t, x, y| t.b.ins().sdiv(x, y))?,
            O::I32DivU | O::I64DivU => self.binop(|t, x, y| t.b.ins().udiv(x, y))?,
            O::I32RemS | O::I64RemS => self.binop(|t, x, y| t.b.ins().srem(x, y))?,
            O::I32RemU | O::I64RemU => self.binop(|t, x, y| t.b.ins().urem(x, y))?,
            O::I32And | O::I64And => self.binop(|t, x, y| t.b.ins().band(x, y))?,
            O::I32Or | O::I64Or => self.binop(|t, x, y| t.b.ins().bor(x, y))?,
            O::I32Xor | O::I64Xor => self.binop(|t, x, y| t.b.ins().bxor(x, y))?,
            O::I32Shl | O::I64Shl => self.binop(|t, x, y| t.b.ins().ishl(x, y))?,
            O::I32ShrS | O::I64ShrS => self.binop(|t, x, y| t.b.ins().sshr(x, y))?,
            O::I32ShrU | O::I64ShrU => self.binop(|t, x, y| t.b.ins().ushr(x, y))?,
            O::I32Rotl | O::I64Rotl => self.binop(|t, x, y| t.b.ins().rotl(x, y))?,
            O::I32Rotr | O::I64Rotr => self.binop(|t, x, y| t.b.ins().rotr(x, y))?,

            O::F32Abs | O::F64Abs => self.unop(|t, x| t.b.ins().fabs(x))?,
            O::F32Neg | O::F64Neg => self.unop(|t, x| t.b.ins().fneg(x))?,
            O::F32Ceil | O::F64Ceil => self.unop(|t, x| t.b.ins().ceil(x))?,
            O::F32Floor | O::F64Floor => self.unop(|t, x| t.b.ins().floor(x))?,
            O::F32Trunc | O::F64Trunc => self.unop(|t, x| t.b.ins().trunc(x))?,
            O::F32Nearest | O::F64Nearest => self.unop(|t, x| t.b.ins().nearest(x))?,
            O::F32Sqrt | O::F64Sqrt => self.unop(|t, x| t.b.ins().sqrt(x))?,
            O::F32Add | O::F64Add => self.binop(|t, x, y| t.b.ins().fadd(x, y))?,
            O::F32Sub | O::F64Sub => self.binop(|t, x, y| t.b.ins().fsub(x, y))?,
            O::F32Mul | O::F64Mul => self.binop(|t, x, y| t.b.ins().fmul(x, y))?,
            O::F32Div | O::F64Div => self.binop(|t, x, y| t.b.ins().fdiv(x, y))?,
            O::F32Min | O::F64Min => self.binop(|t, x, y| t.b.ins().fmin(x, y))?,
            O::F32Max | O::F64Max => self.binop(|t, x, y| t.b.ins().fmax(x, y))?,
            O::F32Copysign | O::F64Copysign => self.binop(|t, x, y| t.b.ins().fcopysign(x, y))?,

            O::I32WrapI64 => self.unop(|t, x| t.b.ins().ireduce(I32, x))?,
            O::I64ExtendI32S => self.unop(|t, x| t.b.ins().sextend(I64, x))?,
            O::I64ExtendI32U => self.unop(|t, x| t.b.ins().uextend(I64, x))?,
            O::I32Extend8S => self.sext_from(I8, I32)?,
            O::I32Extend16S => self.sext_from(I16, I32)?,
            O::I64Extend8S => self.sext_from(I8, I64)?,
            O::I64Extend16S => self.sext_from(I16, I64)?,
            O::I64Extend32S => self.sext_from(I32, I64)?,

            O::I32TruncF32S | O::I32TruncF64S => {
                self.unop(|t, x| t.b.ins().fcvt_to_sint(I32, x))?
            }
            O::I32TruncF32U | O::I32TruncF64U => {
                self.unop(|t, x| t.b.ins().fcvt_to_uint(I32, x))?
            }
            O::I64TruncF32S | O::I64TruncF64S => {
                self.unop(|t, x| t.b.ins().fcvt_to_sint(I64, x))?
            }
            O::I64TruncF32U | O::I64TruncF64U => {
                self.unop(|t, x| t.b.ins().fcvt_to_uint(I64, x))?
            }
            O::I32TruncSatF32S | O::I32TruncSatF64S => {
                self.unop(|t, x| t.b.ins().fcvt_to_sint_sat(I32, x))?
            }
            O::I32TruncSatF32U | O::I32TruncSatF64U => {
                self.unop(|t, x| t.b.ins().fcvt_to_uint_sat(I32, x))?
            }
            O::I64TruncSatF32S | O::I64TruncSatF64S => {
                self.unop(|t, x| t.b.ins().fcvt_to_sint_sat(I64, x))?
            }
            O::I64TruncSatF32U | O::I64TruncSatF64U => {
                self.unop(|t, x| t.b.ins().fcvt_to_uint_sat(I64, x))?
            }
            O::F32ConvertI32S | O::F32ConvertI64S => {
                self.unop(|t, x| t.b.ins().fcvt_from_sint(F32, x))?
            }
            O::F32ConvertI32U | O::F32ConvertI64U => {
                self.unop(|t, x| t.b.ins().fcvt_from_uint(F32, x))?
            }
            O::F64ConvertI32S | O::F64ConvertI64S => {
                self.unop(|t, x| t.b.ins().fcvt_from_sint(F64, x))?
            }
            O::F64ConvertI32U | O::F64ConvertI64U => {
                self.unop(|t, x| t.b.ins().fcvt_from_uint(F64, x))?
            }
            O::F32DemoteF64 => self.unop(|t, x| t.b.ins().fdemote(F32, x))?,
            O::F64PromoteF32 => self.unop(|t, x| t.b.ins().fpromote(F64, x))?,
            O::I32ReinterpretF32 => self.bitcast(I32)?,
            O::I64ReinterpretF64 => self.bitcast(I64)?,
            O::F32ReinterpretI32 => self.bitcast(F32)?,
            O::F64ReinterpretI64 => self.bitcast(F64)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}
