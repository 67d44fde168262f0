//! Calls (direct, imported, indirect, tail), libcalls, globals, tables and
//! references.
//!
//! Every call between Wasm functions uses the callee's `wasm_call`
//! convention, `(callee_vmctx, caller_vmctx, params...)`. A call to a
//! function defined in this module is a `colocated` direct call, named by
//! its defined index in namespace 0, which the text-section builder
//! resolves pc-relatively; an imported function is called through its
//! `VMFunctionImport`, and a table entry through its `VMFuncRef`. Libcalls
//! go through the `VMBuiltinFunctions` table whose address sits in the
//! context. Nothing is reached through a relocation.

use super::{invalid, ro, rw, traps, Tx, TxResult};
use cranelift_codegen::ir::{self, condcodes::IntCC, types::*, AbiParam, InstBuilder, Signature};
use kiln_environ::{
    BuiltinFunction, BuiltinType, FuncIndex, GlobalIndex, TableIndex, TypeIndex, VMOffsets,
};
use kiln_trampolines::{value_type, wasm_signature};
use wasmparser::Operator as O;

impl Tx<'_, '_> {
    /// Calls `builtin` with this context and `args`; returns its results.
    pub(crate) fn call_builtin(
        &mut self,
        builtin: BuiltinFunction,
        args: &[ir::Value],
    ) -> Vec<ir::Value> {
        let ptr = self.ptr;
        let sig = match self.builtin_sigs.get(&builtin.index()) {
            Some(s) => *s,
            None => {
                let ty = |t: BuiltinType| match t {
                    BuiltinType::Pointer => ptr,
                    BuiltinType::I32 => I32,
                    BuiltinType::I64 => I64,
                };
                let mut sig = Signature::new(self.env.isa.default_call_conv());
                sig.params.push(AbiParam::new(ptr));
                sig.params
                    .extend(builtin.params().iter().map(|t| AbiParam::new(ty(*t))));
                sig.returns
                    .extend(builtin.result().map(|t| AbiParam::new(ty(t))));
                let s = self.b.import_signature(sig);
                self.builtin_sigs.insert(builtin.index(), s);
                s
            }
        };
        let vmctx = self.vmctx;
        let table = self
            .b
            .ins()
            .load(ptr, ro(), vmctx, VMOffsets::BUILTINS as i32);
        let fptr = self
            .b
            .ins()
            .load(ptr, ro(), table, (builtin.index() * 8) as i32);
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(vmctx);
        all.extend_from_slice(args);
        let call = self.b.ins().call_indirect(sig, fptr, &all);
        self.b.inst_results(call).to_vec()
    }

    /// Calls a builtin that returns a status, and traps with `code` when
    /// it is non-zero.
    pub(crate) fn call_builtin_trapping(
        &mut self,
        builtin: BuiltinFunction,
        args: &[ir::Value],
        code: ir::TrapCode,
    ) {
        let status = self.call_builtin(builtin, args)[0];
        self.b.ins().trapnz(status, code);
    }

    fn sig_ref(&mut self, ty: TypeIndex) -> TxResult<ir::SigRef> {
        if let Some(s) = self.sigs.get(&ty) {
            return Ok(*s);
        }
        let ft = self
            .env
            .module
            .types
            .get(ty)
            .ok_or_else(|| invalid("unknown type", self.offset))?;
        let s = self.b.import_signature(wasm_signature(self.env.isa, ft));
        self.sigs.insert(ty, s);
        Ok(s)
    }

    fn func_ref(&mut self, f: FuncIndex, d: u32) -> TxResult<ir::FuncRef> {
        if let Some(r) = self.func_refs.get(&f) {
            return Ok(*r);
        }
        let ty = self.env.module.functions[f].type_index;
        let sig = self.sig_ref(ty)?;
        let name = self
            .b
            .func
            .declare_imported_user_function(ir::UserExternalName {
                namespace: 0,
                index: d,
            });
        let r = self.b.import_function(ir::ExtFuncData {
            name: ir::ExternalName::User(name),
            signature: sig,
            colocated: true,
            patchable: false,
        });
        self.func_refs.insert(f, r);
        Ok(r)
    }

    fn func_index(&self, f: u32) -> TxResult<FuncIndex> {
        let f = FuncIndex::from_u32(f);
        if self.env.module.functions.get(f).is_none() {
            return Err(invalid("unknown function", self.offset));
        }
        Ok(f)
    }

    /// A direct call or tail call of function `f`.
    fn call(&mut self, f: u32, tail: bool) -> TxResult<()> {
        let f = self.func_index(f)?;
        let ty = self.env.module.functions[f].type_index;
        let ft = &self.env.module.types[ty];
        let (np, nr) = (ft.params().len(), ft.results().len());
        let args = self.popn(np)?;
        let module = self.env.module;
        let call = match module.defined_func_index(f) {
            Some(d) => {
                let r = self.func_ref(f, d.as_u32())?;
                let all = self.wasm_args(self.vmctx, &args);
                if tail {
                    self.b.ins().return_call(r, &all);
                    self.reachable = false;
                    return Ok(());
                }
                self.b.ins().call(r, &all)
            }
            None => {
                let sig = self.sig_ref(ty)?;
                let base = self.env.offsets.imported_function(f) as i32;
                let (ptr, vmctx) = (self.ptr, self.vmctx);
                let wasm_call = self.b.ins().load(
                    ptr,
                    ro(),
                    vmctx,
                    base + VMOffsets::FUNCTION_IMPORT_WASM_CALL as i32,
                );
                let callee_vmctx = self.b.ins().load(
                    ptr,
                    ro(),
                    vmctx,
                    base + VMOffsets::FUNCTION_IMPORT_VMCTX as i32,
                );
                let all = self.wasm_args(callee_vmctx, &args);
                if tail {
                    self.b.ins().return_call_indirect(sig, wasm_call, &all);
                    self.reachable = false;
                    return Ok(());
                }
                self.b.ins().call_indirect(sig, wasm_call, &all)
            }
        };
        let results = self.b.inst_results(call).to_vec();
        debug_assert_eq!(results.len(), nr);
        self.stack.extend(&results);
        Ok(())
    }

    fn wasm_args(&self, callee_vmctx: ir::Value, args: &[ir::Value]) -> Vec<ir::Value> {
        let mut all = Vec::with_capacity(args.len() + 2);
        all.push(callee_vmctx);
        all.push(self.vmctx);
        all.extend_from_slice(args);
        all
    }

    fn table_index(&self, t: u32) -> TxResult<TableIndex> {
        let t = TableIndex::from_u32(t);
        if self.env.module.tables.get(t).is_none() {
            return Err(invalid("unknown table", self.offset));
        }
        Ok(t)
    }

    /// The table's `VMTableDefinition` pointer.
    fn table_def(&mut self, t: TableIndex) -> ir::Value {
        let off = self.env.offsets.table(t) as i32;
        let (ptr, vmctx) = (self.ptr, self.vmctx);
        self.b.ins().load(ptr, ro(), vmctx, off)
    }

    /// The address of element `index` of table `t`, after its bounds check.
    fn table_elem_addr(&mut self, t: TableIndex, index: ir::Value) -> ir::Value {
        let def = self.table_def(t);
        let ptr = self.ptr;
        let len = self
            .b
            .ins()
            .load(I32, rw(), def, VMOffsets::TABLE_CURRENT_ELEMENTS as i32);
        let oob = self
            .b
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, index, len);
        self.b.ins().trapnz(oob, traps::TABLE_OUT_OF_BOUNDS);
        let base = self
            .b
            .ins()
            .load(ptr, rw(), def, VMOffsets::TABLE_BASE as i32);
        let index = self.b.ins().uextend(ptr, index);
        let scaled = self
            .b
            .ins()
            .imul_imm_s(index, i64::from(VMOffsets::SIZE_OF_TABLE_ELEMENT));
        self.b.ins().iadd(base, scaled)
    }

    /// `call_indirect` or `return_call_indirect`.
    fn call_indirect(&mut self, ty: u32, table: u32, tail: bool) -> TxResult<()> {
        let ty = TypeIndex::from_u32(ty);
        let t = self.table_index(table)?;
        let sig = self.sig_ref(ty)?;
        let ft = &self.env.module.types[ty];
        let np = ft.params().len();
        let index = self.pop()?;
        let args = self.popn(np)?;
        let ptr = self.ptr;
        let addr = self.table_elem_addr(t, index);
        let funcref = self.b.ins().load(ptr, rw(), addr, 0);
        self.b.ins().trapz(funcref, traps::INDIRECT_CALL_TO_NULL);
        let actual = self
            .b
            .ins()
            .load(I32, rw(), funcref, VMOffsets::FUNC_REF_TYPE_INDEX as i32);
        let vmctx = self.vmctx;
        let ids = self
            .b
            .ins()
            .load(ptr, ro(), vmctx, VMOffsets::TYPE_IDS as i32);
        let expected = self.b.ins().load(I32, ro(), ids, (ty.as_u32() * 4) as i32);
        let ok = self.b.ins().icmp(IntCC::Equal, actual, expected);
        self.b.ins().trapz(ok, traps::BAD_SIGNATURE);
        let wasm_call = self
            .b
            .ins()
            .load(ptr, rw(), funcref, VMOffsets::FUNC_REF_WASM_CALL as i32);
        let callee_vmctx = self
            .b
            .ins()
            .load(ptr, rw(), funcref, VMOffsets::FUNC_REF_VMCTX as i32);
        let all = self.wasm_args(callee_vmctx, &args);
        if tail {
            self.b.ins().return_call_indirect(sig, wasm_call, &all);
            self.reachable = false;
            return Ok(());
        }
        let call = self.b.ins().call_indirect(sig, wasm_call, &all);
        let results = self.b.inst_results(call).to_vec();
        self.stack.extend(&results);
        Ok(())
    }

    /// The address and type of global `g`.
    fn global_addr(&mut self, g: u32) -> TxResult<(ir::Value, i32, ir::Type, bool)> {
        let g = GlobalIndex::from_u32(g);
        let gt = *self
            .env
            .module
            .globals
            .get(g)
            .ok_or_else(|| invalid("unknown global", self.offset))?;
        let ty = value_type(gt.ty, self.ptr);
        Ok(match self.env.module.defined_global_index(g) {
            Some(d) => (
                self.vmctx,
                self.env.offsets.defined_global(d) as i32,
                ty,
                gt.mutable,
            ),
            None => {
                let off = self.env.offsets.imported_global(g) as i32;
                let (ptr, vmctx) = (self.ptr, self.vmctx);
                let p = self.b.ins().load(ptr, ro(), vmctx, off);
                (p, 0, ty, gt.mutable)
            }
        })
    }

    /// Translates `op` if it is a call, global, table or reference operator.
    pub(super) fn call_operator(&mut self, op: &O<'_>) -> TxResult<bool> {
        match *op {
            O::Call { function_index } => self.call(function_index, false)?,
            O::ReturnCall { function_index } => self.call(function_index, true)?,
            O::CallIndirect {
                type_index,
                table_index,
            } => self.call_indirect(type_index, table_index, false)?,
            O::ReturnCallIndirect {
                type_index,
                table_index,
            } => self.call_indirect(type_index, table_index, true)?,
            O::GlobalGet { global_index } => {
                let (base, off, ty, mutable) = self.global_addr(global_index)?;
                let flags = if mutable { rw() } else { ro() };
                let v = self.b.ins().load(ty, flags, base, off);
                self.push(v);
            }
            O::GlobalSet { global_index } => {
                let (base, off, _, _) = self.global_addr(global_index)?;
                let v = self.pop()?;
                let v = self.as_i8x16(v);
                self.b.ins().store(rw(), v, base, off);
            }
            O::TableGet { table } => {
                let t = self.table_index(table)?;
                let index = self.pop()?;
                let addr = self.table_elem_addr(t, index);
                let ptr = self.ptr;
                let v = self.b.ins().load(ptr, rw(), addr, 0);
                self.push(v);
            }
            O::TableSet { table } => {
                let t = self.table_index(table)?;
                let (index, v) = self.pop2()?;
                let addr = self.table_elem_addr(t, index);
                self.b.ins().store(rw(), v, addr, 0);
            }
            O::TableSize { table } => {
                let t = self.table_index(table)?;
                let def = self.table_def(t);
                let v = self
                    .b
                    .ins()
                    .load(I32, rw(), def, VMOffsets::TABLE_CURRENT_ELEMENTS as i32);
                self.push(v);
            }
            O::TableGrow { table } => {
                let t = self.table_index(table)?;
                let (init, delta) = self.pop2()?;
                let tv = self.b.ins().iconst(I32, i64::from(t.as_u32()));
                let r = self.call_builtin(BuiltinFunction::table_grow, &[tv, delta, init])[0];
                // As for `memory.grow`.
                let must_trap = self.b.ins().icmp_imm_s(
                    IntCC::Equal,
                    r,
                    i64::from(kiln_environ::TABLE_GROW_TRAP),
                );
                self.b.ins().trapnz(must_trap, traps::TABLE_OUT_OF_BOUNDS);
                self.push(r);
            }
            O::TableFill { table } => {
                let t = self.table_index(table)?;
                let (dst, val, len) = self.pop3()?;
                let tv = self.b.ins().iconst(I32, i64::from(t.as_u32()));
                self.call_builtin_trapping(
                    BuiltinFunction::table_fill,
                    &[tv, dst, val, len],
                    traps::TABLE_OUT_OF_BOUNDS,
                );
            }
            O::TableCopy {
                dst_table,
                src_table,
            } => {
                let d = self.table_index(dst_table)?;
                let s = self.table_index(src_table)?;
                let (dst, src, len) = self.pop3()?;
                let dv = self.b.ins().iconst(I32, i64::from(d.as_u32()));
                let sv = self.b.ins().iconst(I32, i64::from(s.as_u32()));
                self.call_builtin_trapping(
                    BuiltinFunction::table_copy,
                    &[dv, sv, dst, src, len],
                    traps::TABLE_OUT_OF_BOUNDS,
                );
            }
            O::TableInit { elem_index, table } => {
                let t = self.table_index(table)?;
                let (dst, src, len) = self.pop3()?;
                let tv = self.b.ins().iconst(I32, i64::from(t.as_u32()));
                let seg = self.b.ins().iconst(I32, i64::from(elem_index));
                self.call_builtin_trapping(
                    BuiltinFunction::table_init,
                    &[tv, seg, dst, src, len],
                    traps::TABLE_OUT_OF_BOUNDS,
                );
            }
            O::ElemDrop { elem_index } => {
                let seg = self.b.ins().iconst(I32, i64::from(elem_index));
                self.call_builtin(BuiltinFunction::elem_drop, &[seg]);
            }
            O::RefNull { .. } => {
                let ptr = self.ptr;
                let v = self.b.ins().iconst(ptr, 0);
                self.push(v);
            }
            O::RefIsNull => {
                let x = self.pop()?;
                let c = self.b.ins().icmp_imm_s(IntCC::Equal, x, 0);
                self.push_bool(c);
            }
            O::RefFunc { function_index } => {
                let f = self.func_index(function_index)?;
                let (ptr, vmctx) = (self.ptr, self.vmctx);
                let v = match self.env.module.defined_func_index(f) {
                    Some(d) => {
                        let slot = self.env.module.func_ref_slots[d].ok_or_else(|| {
                            invalid("ref.func of an undeclared function", self.offset)
                        })?;
                        self.b
                            .ins()
                            .iadd_imm_s(vmctx, i64::from(self.env.offsets.func_ref(slot)))
                    }
                    None => self.b.ins().load(
                        ptr,
                        ro(),
                        vmctx,
                        (self.env.offsets.imported_function(f)
                            + VMOffsets::FUNCTION_IMPORT_FUNC_REF) as i32,
                    ),
                };
                self.push(v);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
