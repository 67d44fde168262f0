//! The [`FuncEnvironment`] that tells cranelift-wasm how Kiln's runtime
//! structures look, so it can translate function bodies.
//!
//! Everything an instance owns is reached from the `vmctx` parameter at
//! offsets from [`VMOffsets`]; nothing is reached through a relocation.
//! Libcalls go through the `VMBuiltinFunctions` table whose address sits
//! in the `VMContext`, and calls to functions of the same module are
//! colocated direct calls that the text-section builder resolves
//! pc-relatively.
//!
//! # The stack limit and interruption
//!
//! Every function's `stack_limit` is the first word of the store's
//! `VMRuntimeLimits`, reached as `load(load(vmctx + RUNTIME_LIMITS))`.
//! Cranelift compares the stack pointer against it (plus the frame size)
//! in the prologue of every function that has a frame or makes calls, and
//! traps with `StackOverflow` below it. Loop headers repeat the comparison
//! (without a frame size) and trap with [`LOOP_HEADER_TRAP`], reported as
//! `Interrupt`: an interrupt handle stores a sentinel near `usize::MAX` in
//! the limit, so both checks fail at the next function entry or back-edge.
//! A prologue's check that fails while the sentinel is in place is an
//! interrupt too; the runtime tells by looking at the limit.
//!
//! **Invariant:** `StackOverflow` is the trap code of the prologue's check
//! and of nothing else. The trap handler relies on it: a trap with that
//! code fired before the prologue saved any callee-saved register (see
//! `kiln_environ::frames`), so the handler must not reload them from that
//! frame. Giving another trap site this code breaks trap resumption.

use cranelift_codegen::cursor::FuncCursor;
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types::*, AbiParam, InstBuilder, MemFlags, Signature,
};
use cranelift_codegen::isa::{TargetFrontendConfig, TargetIsa};
use cranelift_entity::PrimaryMap;
use cranelift_frontend::FunctionBuilder;
use cranelift_wasm::{
    FuncEnvironment, GlobalVariable, Heap, HeapData, HeapStyle, TableData, TableSize,
    TargetEnvironment, TypeConvert, WasmError, WasmHeapType, WasmResult,
};
use kiln_environ::{
    BuiltinFunction, BuiltinType, DefinedFuncIndex, FuncIndex, GlobalIndex, MemoryIndex, Module,
    TableIndex, Tunables, TypeIndex, VMOffsets,
};
use kiln_trampolines::{value_type, wasm_signature};
use std::collections::HashMap;

/// Trap code for the loop-header stack-limit check (mapped to
/// `Trap::Interrupt`). Not `StackOverflow`, which must mean "the
/// prologue's check" (see the module docs): a loop header runs after the
/// prologue's saves. Inside a loop the stack pointer is never below a
/// limit its function's prologue accepted, so this check only fails on
/// the interrupt sentinel.
pub(crate) const LOOP_HEADER_TRAP: ir::TrapCode = ir::TrapCode::User(2);

// The checks load the stack limit at offset 0 of the limits.
const _: () = assert!(VMOffsets::LIMITS_STACK_LIMIT == 0);

pub(crate) struct FuncEnv<'a> {
    isa: &'a dyn TargetIsa,
    module: &'a Module,
    offsets: &'a VMOffsets,
    tunables: &'a Tunables,
    heaps: PrimaryMap<Heap, HeapData>,
    vmctx: Option<ir::GlobalValue>,
    limits: Option<ir::GlobalValue>,
    builtins: Option<ir::GlobalValue>,
    type_ids: Option<ir::GlobalValue>,
    builtin_sigs: HashMap<u32, ir::SigRef>,
    tables: HashMap<TableIndex, TableData>,
    memory_defs: HashMap<MemoryIndex, ir::GlobalValue>,
    /// Fuel charged for operators since the last flush to memory.
    fuel_pending: i64,
}

/// Trap code for running out of fuel (mapped to `Trap::OutOfFuel`).
pub(crate) const OUT_OF_FUEL_TRAP: ir::TrapCode = ir::TrapCode::User(1);
/// Trap code for a passed epoch deadline (mapped to `Trap::Interrupt`).
pub(crate) const EPOCH_TRAP: ir::TrapCode = ir::TrapCode::Interrupt;

fn flags_ro() -> MemFlags {
    MemFlags::trusted().with_readonly()
}

fn unsupported(what: &str) -> WasmError {
    WasmError::Unsupported(what.to_string())
}

impl<'a> FuncEnv<'a> {
    pub(crate) fn new(
        isa: &'a dyn TargetIsa,
        module: &'a Module,
        offsets: &'a VMOffsets,
        tunables: &'a Tunables,
    ) -> Self {
        FuncEnv {
            isa,
            module,
            offsets,
            tunables,
            heaps: PrimaryMap::new(),
            vmctx: None,
            limits: None,
            builtins: None,
            type_ids: None,
            builtin_sigs: HashMap::new(),
            tables: HashMap::new(),
            memory_defs: HashMap::new(),
            fuel_pending: 0,
        }
    }

    /// Adds the pending fuel to `VMRuntimeLimits::fuel_consumed`.
    fn fuel_flush(&mut self, builder: &mut FunctionBuilder) {
        if self.fuel_pending == 0 {
            return;
        }
        let ptr = self.ptr();
        let limits_gv = self.limits_gv(builder.func);
        let limits = builder.ins().global_value(ptr, limits_gv);
        let off = VMOffsets::LIMITS_FUEL_CONSUMED as i32;
        let cur = builder.ins().load(I64, MemFlags::trusted(), limits, off);
        let new = builder.ins().iadd_imm(cur, self.fuel_pending);
        builder.ins().store(MemFlags::trusted(), new, limits, off);
        self.fuel_pending = 0;
    }

    /// Traps with `OutOfFuel` once the consumed fuel reaches zero.
    fn fuel_check(&mut self, builder: &mut FunctionBuilder) {
        self.fuel_flush(builder);
        let ptr = self.ptr();
        let limits_gv = self.limits_gv(builder.func);
        let limits = builder.ins().global_value(ptr, limits_gv);
        let cur = builder.ins().load(
            I64,
            MemFlags::trusted(),
            limits,
            VMOffsets::LIMITS_FUEL_CONSUMED as i32,
        );
        let out = builder
            .ins()
            .icmp_imm(IntCC::SignedGreaterThanOrEqual, cur, 0);
        builder.ins().trapnz(out, OUT_OF_FUEL_TRAP);
    }

    /// Once the engine's epoch reaches the store's deadline, calls the
    /// `new_epoch` libcall (out of line, in a cold block), which runs the
    /// store's deadline callback; traps with `Interrupt` when it says so.
    /// The fast path is two loads, a compare and a branch, as before.
    fn epoch_check(&mut self, builder: &mut FunctionBuilder) {
        let ptr = self.ptr();
        let limits_gv = self.limits_gv(builder.func);
        let limits = builder.ins().global_value(ptr, limits_gv);
        let epoch_ptr = builder.ins().load(
            ptr,
            MemFlags::trusted().with_readonly(),
            limits,
            VMOffsets::LIMITS_EPOCH_PTR as i32,
        );
        // Atomic, so Cranelift never treats it as redundant with an
        // earlier load: another thread moves the epoch.
        let epoch = builder
            .ins()
            .atomic_load(I64, MemFlags::trusted(), epoch_ptr);
        let deadline = builder.ins().load(
            I64,
            MemFlags::trusted(),
            limits,
            VMOffsets::LIMITS_EPOCH_DEADLINE as i32,
        );
        let passed = builder
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, epoch, deadline);
        let slow = builder.create_block();
        let carry_on = builder.create_block();
        builder.set_cold_block(slow);
        builder.ins().brif(passed, slow, &[], carry_on, &[]);
        builder.switch_to_block(slow);
        builder.seal_block(slow);
        let status = {
            let mut pos = builder.cursor();
            self.call_builtin(&mut pos, BuiltinFunction::new_epoch, &[])
                .expect("new_epoch returns a status")
        };
        builder.ins().trapnz(status, EPOCH_TRAP);
        builder.ins().jump(carry_on, &[]);
        builder.switch_to_block(carry_on);
        builder.seal_block(carry_on);
    }

    /// The budget checks at function entry and loop headers.
    fn budget_checks(&mut self, builder: &mut FunctionBuilder) {
        if self.tunables.consume_fuel {
            self.fuel_check(builder);
        }
        if self.tunables.epoch_interruption {
            self.epoch_check(builder);
        }
    }

    fn ptr(&self) -> ir::Type {
        self.isa.pointer_type()
    }

    pub(crate) fn vmctx_gv(&mut self, func: &mut ir::Function) -> ir::GlobalValue {
        *self
            .vmctx
            .get_or_insert_with(|| func.create_global_value(ir::GlobalValueData::VMContext))
    }

    fn load_gv(
        &mut self,
        func: &mut ir::Function,
        base: ir::GlobalValue,
        offset: u32,
        ty: ir::Type,
        readonly: bool,
    ) -> ir::GlobalValue {
        let flags = if readonly {
            flags_ro()
        } else {
            MemFlags::trusted()
        };
        func.create_global_value(ir::GlobalValueData::Load {
            base,
            offset: (offset as i32).into(),
            global_type: ty,
            flags,
        })
    }

    /// The `VMRuntimeLimits` pointer.
    pub(crate) fn limits_gv(&mut self, func: &mut ir::Function) -> ir::GlobalValue {
        if let Some(gv) = self.limits {
            return gv;
        }
        let vmctx = self.vmctx_gv(func);
        let ptr = self.ptr();
        let gv = self.load_gv(func, vmctx, VMOffsets::RUNTIME_LIMITS, ptr, true);
        self.limits = Some(gv);
        gv
    }

    /// Installs the stack-limit check for `func`'s prologue.
    pub(crate) fn set_stack_limit(&mut self, func: &mut ir::Function) {
        let limits = self.limits_gv(func);
        let ptr = self.ptr();
        let gv = self.load_gv(func, limits, VMOffsets::LIMITS_STACK_LIMIT, ptr, false);
        func.stack_limit = Some(gv);
    }

    fn vmctx_val(&mut self, pos: &mut FuncCursor) -> ir::Value {
        let gv = self.vmctx_gv(pos.func);
        let ptr = self.ptr();
        pos.ins().global_value(ptr, gv)
    }

    /// Calls a builtin and returns its results.
    fn call_builtin(
        &mut self,
        pos: &mut FuncCursor,
        builtin: BuiltinFunction,
        args: &[ir::Value],
    ) -> Option<ir::Value> {
        let ptr = self.ptr();
        let sig = match self.builtin_sigs.get(&builtin.index()) {
            Some(s) => *s,
            None => {
                let ty = |t: BuiltinType| match t {
                    BuiltinType::Pointer => ptr,
                    BuiltinType::I32 => I32,
                    BuiltinType::I64 => I64,
                };
                let mut sig = Signature::new(self.isa.default_call_conv());
                sig.params.push(AbiParam::new(ptr));
                sig.params
                    .extend(builtin.params().iter().map(|t| AbiParam::new(ty(*t))));
                sig.returns
                    .extend(builtin.result().map(|t| AbiParam::new(ty(t))));
                let s = pos.func.import_signature(sig);
                self.builtin_sigs.insert(builtin.index(), s);
                s
            }
        };
        let builtins = match self.builtins {
            Some(gv) => gv,
            None => {
                let vmctx = self.vmctx_gv(pos.func);
                let gv = self.load_gv(pos.func, vmctx, VMOffsets::BUILTINS, ptr, true);
                self.builtins = Some(gv);
                gv
            }
        };
        let base = pos.ins().global_value(ptr, builtins);
        let fptr = pos
            .ins()
            .load(ptr, flags_ro(), base, (builtin.index() * 8) as i32);
        let vmctx = self.vmctx_val(pos);
        let mut all = vec![vmctx];
        all.extend_from_slice(args);
        let call = pos.ins().call_indirect(sig, fptr, &all);
        pos.func.dfg.inst_results(call).first().copied()
    }

    fn call_builtin_trapping(
        &mut self,
        mut pos: FuncCursor,
        builtin: BuiltinFunction,
        args: &[ir::Value],
        code: ir::TrapCode,
    ) {
        let status = self
            .call_builtin(&mut pos, builtin, args)
            .expect("status builtins return a value");
        pos.ins().trapnz(status, code);
    }

    fn table_def_gv(&mut self, func: &mut ir::Function, table: TableIndex) -> ir::GlobalValue {
        let vmctx = self.vmctx_gv(func);
        let ptr = self.ptr();
        let off = self.offsets.table(table);
        self.load_gv(func, vmctx, off, ptr, true)
    }

    fn table_data(&mut self, func: &mut ir::Function, table: TableIndex) -> TableData {
        if let Some(t) = self.tables.get(&table) {
            return t.clone();
        }
        let def = self.table_def_gv(func, table);
        let ptr = self.ptr();
        let base_gv = self.load_gv(func, def, VMOffsets::TABLE_BASE, ptr, false);
        let bound_gv = self.load_gv(func, def, VMOffsets::TABLE_CURRENT_ELEMENTS, I32, false);
        let data = TableData {
            base_gv,
            bound: TableSize::Dynamic { bound_gv },
            element_size: VMOffsets::SIZE_OF_TABLE_ELEMENT,
        };
        self.tables.insert(table, data.clone());
        data
    }

    fn memory_def_gv(&mut self, func: &mut ir::Function, m: MemoryIndex) -> ir::GlobalValue {
        if let Some(gv) = self.memory_defs.get(&m) {
            return *gv;
        }
        let vmctx = self.vmctx_gv(func);
        let ptr = self.ptr();
        let off = self.offsets.memory(m);
        let gv = self.load_gv(func, vmctx, off, ptr, true);
        self.memory_defs.insert(m, gv);
        gv
    }

    fn is_memory64(&self, m: MemoryIndex) -> bool {
        self.module.memories[m].memory64
    }

    /// Loads `(wasm_call, vmctx)` of a funcref, trapping on null.
    fn funcref_callee(
        &mut self,
        builder: &mut FunctionBuilder,
        funcref: ir::Value,
        expected: Option<TypeIndex>,
    ) -> (ir::Value, ir::Value) {
        let ptr = self.ptr();
        builder
            .ins()
            .trapz(funcref, ir::TrapCode::IndirectCallToNull);
        if let Some(ty) = expected {
            let actual = builder.ins().load(
                I32,
                MemFlags::trusted(),
                funcref,
                VMOffsets::FUNC_REF_TYPE_INDEX as i32,
            );
            let type_ids = match self.type_ids {
                Some(gv) => gv,
                None => {
                    let vmctx = self.vmctx_gv(builder.func);
                    let gv = self.load_gv(builder.func, vmctx, VMOffsets::TYPE_IDS, ptr, true);
                    self.type_ids = Some(gv);
                    gv
                }
            };
            let ids = builder.ins().global_value(ptr, type_ids);
            let expected = builder
                .ins()
                .load(I32, flags_ro(), ids, (ty.as_u32() * 4) as i32);
            let ok = builder.ins().icmp(IntCC::Equal, actual, expected);
            builder.ins().trapz(ok, ir::TrapCode::BadSignature);
        }
        let wasm_call = builder.ins().load(
            ptr,
            MemFlags::trusted(),
            funcref,
            VMOffsets::FUNC_REF_WASM_CALL as i32,
        );
        let vmctx = builder.ins().load(
            ptr,
            MemFlags::trusted(),
            funcref,
            VMOffsets::FUNC_REF_VMCTX as i32,
        );
        (wasm_call, vmctx)
    }

    fn table_funcref(
        &mut self,
        builder: &mut FunctionBuilder,
        table: TableIndex,
        index: ir::Value,
    ) -> ir::Value {
        let data = self.table_data(builder.func, table);
        let ptr = self.ptr();
        let (addr, flags) = data.prepare_table_addr(builder, index, ptr, false);
        builder.ins().load(ptr, flags, addr, 0)
    }

    fn imported_callee(
        &mut self,
        builder: &mut FunctionBuilder,
        f: FuncIndex,
    ) -> (ir::Value, ir::Value) {
        let ptr = self.ptr();
        let vmctx_gv = self.vmctx_gv(builder.func);
        let vmctx = builder.ins().global_value(ptr, vmctx_gv);
        let base = self.offsets.imported_function(f);
        let wasm_call = builder.ins().load(
            ptr,
            flags_ro(),
            vmctx,
            (base + VMOffsets::FUNCTION_IMPORT_WASM_CALL) as i32,
        );
        let callee_vmctx = builder.ins().load(
            ptr,
            flags_ro(),
            vmctx,
            (base + VMOffsets::FUNCTION_IMPORT_VMCTX) as i32,
        );
        (wasm_call, callee_vmctx)
    }

    fn wasm_args(
        &mut self,
        builder: &mut FunctionBuilder,
        callee_vmctx: ir::Value,
        args: &[ir::Value],
    ) -> Vec<ir::Value> {
        let ptr = self.ptr();
        let vmctx_gv = self.vmctx_gv(builder.func);
        let caller = builder.ins().global_value(ptr, vmctx_gv);
        let mut all = vec![callee_vmctx, caller];
        all.extend_from_slice(args);
        all
    }
}

impl TypeConvert for FuncEnv<'_> {
    fn lookup_heap_type(&self, _index: wasmparser::UnpackedIndex) -> WasmHeapType {
        // Concrete heap types only appear with typed function references,
        // which Kiln does not enable; validation rejects them first.
        WasmHeapType::Func
    }

    fn lookup_type_index(
        &self,
        index: wasmparser::UnpackedIndex,
    ) -> cranelift_wasm::EngineOrModuleTypeIndex {
        let i = match index {
            wasmparser::UnpackedIndex::Module(i) => i,
            wasmparser::UnpackedIndex::RecGroup(i) => i,
            wasmparser::UnpackedIndex::Id(_) => 0,
        };
        cranelift_wasm::EngineOrModuleTypeIndex::Module(
            cranelift_wasm::ModuleInternedTypeIndex::from_u32(i),
        )
    }
}

impl TargetEnvironment for FuncEnv<'_> {
    fn target_config(&self) -> TargetFrontendConfig {
        self.isa.frontend_config()
    }

    fn heap_access_spectre_mitigation(&self) -> bool {
        false
    }

    fn proof_carrying_code(&self) -> bool {
        false
    }

    fn reference_type(&self, _ty: WasmHeapType) -> (ir::Type, bool) {
        // References are plain pointers: a `*const VMFuncRef` or a pointer
        // to a store-owned externref box; null is 0. No GC stack maps.
        (self.ptr(), false)
    }
}

impl FuncEnvironment for FuncEnv<'_> {
    fn is_wasm_parameter(&self, _signature: &Signature, index: usize) -> bool {
        // Parameters 0 and 1 are the callee and caller vmctx.
        index >= 2
    }

    fn param_needs_stack_map(&self, _signature: &Signature, _index: usize) -> bool {
        false
    }

    fn sig_ref_result_needs_stack_map(&self, _sig_ref: ir::SigRef, _index: usize) -> bool {
        false
    }

    fn func_ref_result_needs_stack_map(
        &self,
        _func: &ir::Function,
        _func_ref: ir::FuncRef,
        _index: usize,
    ) -> bool {
        false
    }

    fn make_global(
        &mut self,
        func: &mut ir::Function,
        index: cranelift_wasm::GlobalIndex,
    ) -> WasmResult<GlobalVariable> {
        let g = GlobalIndex::from_u32(index.as_u32());
        let ty = value_type(self.module.globals[g].ty, self.ptr());
        let vmctx = self.vmctx_gv(func);
        Ok(match self.module.defined_global_index(g) {
            Some(d) => GlobalVariable::Memory {
                gv: vmctx,
                offset: (self.offsets.defined_global(d) as i32).into(),
                ty,
            },
            None => {
                let ptr = self.ptr();
                let off = self.offsets.imported_global(g);
                let gv = self.load_gv(func, vmctx, off, ptr, true);
                GlobalVariable::Memory {
                    gv,
                    offset: 0.into(),
                    ty,
                }
            }
        })
    }

    fn heaps(&self) -> &PrimaryMap<Heap, HeapData> {
        &self.heaps
    }

    fn make_heap(
        &mut self,
        func: &mut ir::Function,
        index: cranelift_wasm::MemoryIndex,
    ) -> WasmResult<Heap> {
        let m = MemoryIndex::from_u32(index.as_u32());
        let ty = self.module.memories[m];
        let def = self.memory_def_gv(func, m);
        let ptr = self.ptr();
        let page = kiln_environ::WASM_PAGE_SIZE;
        let min_size = ty.minimum.saturating_mul(page);
        let max_size = ty.maximum.map(|m| m.saturating_mul(page));
        let (style, base_readonly, guard, index_type) = if ty.memory64 {
            let bound_gv = self.load_gv(func, def, VMOffsets::MEMORY_CURRENT_LENGTH, I64, false);
            (HeapStyle::Dynamic { bound_gv }, false, 0, I64)
        } else {
            // The whole 32-bit space is reserved and the base never moves,
            // so the base is read-only and bounds checks are static.
            (
                HeapStyle::Static {
                    bound: self.tunables.static_memory_reservation,
                },
                true,
                self.tunables.memory_guard_size,
                I32,
            )
        };
        let base = if base_readonly {
            // The base never moves: read the copy in the context itself.
            let vmctx = self.vmctx_gv(func);
            self.load_gv(func, vmctx, self.offsets.memory_base(m), ptr, true)
        } else {
            self.load_gv(func, def, VMOffsets::MEMORY_BASE, ptr, false)
        };
        Ok(self.heaps.push(HeapData {
            base,
            min_size,
            max_size,
            offset_guard_size: guard,
            style,
            index_type,
            memory_type: None,
            page_size_log2: 16,
        }))
    }

    fn make_indirect_sig(
        &mut self,
        func: &mut ir::Function,
        index: cranelift_wasm::TypeIndex,
    ) -> WasmResult<ir::SigRef> {
        let ty = &self.module.types[TypeIndex::from_u32(index.as_u32())];
        Ok(func.import_signature(wasm_signature(self.isa, ty)))
    }

    fn make_direct_func(
        &mut self,
        func: &mut ir::Function,
        index: cranelift_wasm::FuncIndex,
    ) -> WasmResult<ir::FuncRef> {
        let f = FuncIndex::from_u32(index.as_u32());
        let sig = func.import_signature(wasm_signature(self.isa, self.module.func_type(f)));
        // Defined functions are named by their defined index in namespace 0,
        // which the text-section builder resolves as a relative call.
        // Imported functions are called through their `VMFunctionImport`
        // (see `translate_call`), so their name is never referenced.
        let (namespace, index, colocated) = match self.module.defined_func_index(f) {
            Some(d) => (0, d.as_u32(), true),
            None => (1, f.as_u32(), false),
        };
        let name = func.declare_imported_user_function(ir::UserExternalName { namespace, index });
        Ok(func.import_function(ir::ExtFuncData {
            name: ir::ExternalName::User(name),
            signature: sig,
            colocated,
        }))
    }

    fn translate_call(
        &mut self,
        builder: &mut FunctionBuilder,
        callee_index: cranelift_wasm::FuncIndex,
        callee: ir::FuncRef,
        call_args: &[ir::Value],
    ) -> WasmResult<ir::Inst> {
        let f = FuncIndex::from_u32(callee_index.as_u32());
        if self.module.defined_func_index(f).is_some() {
            let ptr = self.ptr();
            let vmctx_gv = self.vmctx_gv(builder.func);
            let vmctx = builder.ins().global_value(ptr, vmctx_gv);
            let args = self.wasm_args(builder, vmctx, call_args);
            Ok(builder.ins().call(callee, &args))
        } else {
            let (wasm_call, callee_vmctx) = self.imported_callee(builder, f);
            let args = self.wasm_args(builder, callee_vmctx, call_args);
            let sig = builder.func.dfg.ext_funcs[callee].signature;
            Ok(builder.ins().call_indirect(sig, wasm_call, &args))
        }
    }

    fn translate_call_indirect(
        &mut self,
        builder: &mut FunctionBuilder,
        table_index: cranelift_wasm::TableIndex,
        sig_index: cranelift_wasm::TypeIndex,
        sig_ref: ir::SigRef,
        callee: ir::Value,
        call_args: &[ir::Value],
    ) -> WasmResult<Option<ir::Inst>> {
        let table = TableIndex::from_u32(table_index.as_u32());
        let funcref = self.table_funcref(builder, table, callee);
        let ty = TypeIndex::from_u32(sig_index.as_u32());
        let (wasm_call, callee_vmctx) = self.funcref_callee(builder, funcref, Some(ty));
        let args = self.wasm_args(builder, callee_vmctx, call_args);
        Ok(Some(builder.ins().call_indirect(sig_ref, wasm_call, &args)))
    }

    fn translate_return_call(
        &mut self,
        builder: &mut FunctionBuilder,
        callee_index: cranelift_wasm::FuncIndex,
        callee: ir::FuncRef,
        call_args: &[ir::Value],
    ) -> WasmResult<()> {
        let f = FuncIndex::from_u32(callee_index.as_u32());
        if self.module.defined_func_index(f).is_some() {
            let ptr = self.ptr();
            let vmctx_gv = self.vmctx_gv(builder.func);
            let vmctx = builder.ins().global_value(ptr, vmctx_gv);
            let args = self.wasm_args(builder, vmctx, call_args);
            builder.ins().return_call(callee, &args);
        } else {
            let (wasm_call, callee_vmctx) = self.imported_callee(builder, f);
            let args = self.wasm_args(builder, callee_vmctx, call_args);
            let sig = builder.func.dfg.ext_funcs[callee].signature;
            builder.ins().return_call_indirect(sig, wasm_call, &args);
        }
        Ok(())
    }

    fn translate_return_call_indirect(
        &mut self,
        builder: &mut FunctionBuilder,
        table_index: cranelift_wasm::TableIndex,
        sig_index: cranelift_wasm::TypeIndex,
        sig_ref: ir::SigRef,
        callee: ir::Value,
        call_args: &[ir::Value],
    ) -> WasmResult<()> {
        let table = TableIndex::from_u32(table_index.as_u32());
        let funcref = self.table_funcref(builder, table, callee);
        let ty = TypeIndex::from_u32(sig_index.as_u32());
        let (wasm_call, callee_vmctx) = self.funcref_callee(builder, funcref, Some(ty));
        let args = self.wasm_args(builder, callee_vmctx, call_args);
        builder
            .ins()
            .return_call_indirect(sig_ref, wasm_call, &args);
        Ok(())
    }

    fn translate_return_call_ref(
        &mut self,
        _builder: &mut FunctionBuilder,
        _sig_ref: ir::SigRef,
        _callee: ir::Value,
        _call_args: &[ir::Value],
    ) -> WasmResult<()> {
        Err(unsupported("return_call_ref (typed function references)"))
    }

    fn translate_call_ref(
        &mut self,
        _builder: &mut FunctionBuilder,
        _sig_ref: ir::SigRef,
        _callee: ir::Value,
        _call_args: &[ir::Value],
    ) -> WasmResult<ir::Inst> {
        Err(unsupported("call_ref (typed function references)"))
    }

    fn translate_memory_grow(
        &mut self,
        mut pos: FuncCursor,
        index: cranelift_wasm::MemoryIndex,
        _heap: Heap,
        val: ir::Value,
    ) -> WasmResult<ir::Value> {
        let m = MemoryIndex::from_u32(index.as_u32());
        let mem = pos.ins().iconst(I32, i64::from(m.as_u32()));
        let delta = if self.is_memory64(m) {
            val
        } else {
            pos.ins().uextend(I64, val)
        };
        let r = self
            .call_builtin(&mut pos, BuiltinFunction::memory_grow, &[mem, delta])
            .expect("memory_grow returns");
        // A limiter's error (or `trap_on_grow_failure`): the runtime has
        // recorded the reason, the trap code here is never reported.
        let must_trap = pos.ins().icmp_imm(
            ir::condcodes::IntCC::Equal,
            r,
            kiln_environ::MEMORY_GROW_TRAP as i64,
        );
        pos.ins().trapnz(must_trap, ir::TrapCode::HeapOutOfBounds);
        Ok(if self.is_memory64(m) {
            r
        } else {
            pos.ins().ireduce(I32, r)
        })
    }

    fn translate_memory_size(
        &mut self,
        mut pos: FuncCursor,
        index: cranelift_wasm::MemoryIndex,
        _heap: Heap,
    ) -> WasmResult<ir::Value> {
        let m = MemoryIndex::from_u32(index.as_u32());
        let def = self.memory_def_gv(pos.func, m);
        let ptr = self.ptr();
        let def = pos.ins().global_value(ptr, def);
        let len = pos.ins().load(
            I64,
            MemFlags::trusted(),
            def,
            VMOffsets::MEMORY_CURRENT_LENGTH as i32,
        );
        let pages = pos.ins().ushr_imm(len, 16);
        Ok(if self.is_memory64(m) {
            pages
        } else {
            pos.ins().ireduce(I32, pages)
        })
    }

    fn translate_memory_copy(
        &mut self,
        mut pos: FuncCursor,
        src_index: cranelift_wasm::MemoryIndex,
        _src_heap: Heap,
        dst_index: cranelift_wasm::MemoryIndex,
        _dst_heap: Heap,
        dst: ir::Value,
        src: ir::Value,
        len: ir::Value,
    ) -> WasmResult<()> {
        let sm = MemoryIndex::from_u32(src_index.as_u32());
        let dm = MemoryIndex::from_u32(dst_index.as_u32());
        let to64 = |pos: &mut FuncCursor, v: ir::Value| {
            if pos.func.dfg.value_type(v) == I64 {
                v
            } else {
                pos.ins().uextend(I64, v)
            }
        };
        let (dst, src, len) = (
            to64(&mut pos, dst),
            to64(&mut pos, src),
            to64(&mut pos, len),
        );
        let smv = pos.ins().iconst(I32, i64::from(sm.as_u32()));
        let dmv = pos.ins().iconst(I32, i64::from(dm.as_u32()));
        self.call_builtin_trapping(
            pos,
            BuiltinFunction::memory_copy,
            &[dmv, dst, smv, src, len],
            ir::TrapCode::HeapOutOfBounds,
        );
        Ok(())
    }

    fn translate_memory_fill(
        &mut self,
        mut pos: FuncCursor,
        index: cranelift_wasm::MemoryIndex,
        _heap: Heap,
        dst: ir::Value,
        val: ir::Value,
        len: ir::Value,
    ) -> WasmResult<()> {
        let m = MemoryIndex::from_u32(index.as_u32());
        let (dst, len) = if self.is_memory64(m) {
            (dst, len)
        } else {
            (pos.ins().uextend(I64, dst), pos.ins().uextend(I64, len))
        };
        let mv = pos.ins().iconst(I32, i64::from(m.as_u32()));
        self.call_builtin_trapping(
            pos,
            BuiltinFunction::memory_fill,
            &[mv, dst, val, len],
            ir::TrapCode::HeapOutOfBounds,
        );
        Ok(())
    }

    fn translate_memory_init(
        &mut self,
        mut pos: FuncCursor,
        index: cranelift_wasm::MemoryIndex,
        _heap: Heap,
        seg_index: u32,
        dst: ir::Value,
        src: ir::Value,
        len: ir::Value,
    ) -> WasmResult<()> {
        let m = MemoryIndex::from_u32(index.as_u32());
        let dst = if self.is_memory64(m) {
            dst
        } else {
            pos.ins().uextend(I64, dst)
        };
        let mv = pos.ins().iconst(I32, i64::from(m.as_u32()));
        let seg = pos.ins().iconst(I32, i64::from(seg_index));
        self.call_builtin_trapping(
            pos,
            BuiltinFunction::memory_init,
            &[mv, seg, dst, src, len],
            ir::TrapCode::HeapOutOfBounds,
        );
        Ok(())
    }

    fn translate_data_drop(&mut self, mut pos: FuncCursor, seg_index: u32) -> WasmResult<()> {
        let seg = pos.ins().iconst(I32, i64::from(seg_index));
        self.call_builtin(&mut pos, BuiltinFunction::data_drop, &[seg]);
        Ok(())
    }

    fn translate_table_size(
        &mut self,
        mut pos: FuncCursor,
        index: cranelift_wasm::TableIndex,
    ) -> WasmResult<ir::Value> {
        let t = TableIndex::from_u32(index.as_u32());
        let def = self.table_def_gv(pos.func, t);
        let ptr = self.ptr();
        let def = pos.ins().global_value(ptr, def);
        Ok(pos.ins().load(
            I32,
            MemFlags::trusted(),
            def,
            VMOffsets::TABLE_CURRENT_ELEMENTS as i32,
        ))
    }

    fn translate_table_grow(
        &mut self,
        mut pos: FuncCursor,
        table_index: cranelift_wasm::TableIndex,
        delta: ir::Value,
        init_value: ir::Value,
    ) -> WasmResult<ir::Value> {
        let t = pos.ins().iconst(I32, i64::from(table_index.as_u32()));
        let r = self
            .call_builtin(
                &mut pos,
                BuiltinFunction::table_grow,
                &[t, delta, init_value],
            )
            .expect("table_grow returns");
        // As in `translate_memory_grow`.
        let must_trap = pos.ins().icmp_imm(
            ir::condcodes::IntCC::Equal,
            r,
            i64::from(kiln_environ::TABLE_GROW_TRAP),
        );
        pos.ins().trapnz(must_trap, ir::TrapCode::TableOutOfBounds);
        Ok(r)
    }

    fn translate_table_get(
        &mut self,
        builder: &mut FunctionBuilder,
        table_index: cranelift_wasm::TableIndex,
        index: ir::Value,
    ) -> WasmResult<ir::Value> {
        let t = TableIndex::from_u32(table_index.as_u32());
        Ok(self.table_funcref(builder, t, index))
    }

    fn translate_table_set(
        &mut self,
        builder: &mut FunctionBuilder,
        table_index: cranelift_wasm::TableIndex,
        value: ir::Value,
        index: ir::Value,
    ) -> WasmResult<()> {
        let t = TableIndex::from_u32(table_index.as_u32());
        let data = self.table_data(builder.func, t);
        let ptr = self.ptr();
        let (addr, flags) = data.prepare_table_addr(builder, index, ptr, false);
        builder.ins().store(flags, value, addr, 0);
        Ok(())
    }

    fn translate_table_copy(
        &mut self,
        mut pos: FuncCursor,
        dst_table_index: cranelift_wasm::TableIndex,
        src_table_index: cranelift_wasm::TableIndex,
        dst: ir::Value,
        src: ir::Value,
        len: ir::Value,
    ) -> WasmResult<()> {
        let d = pos.ins().iconst(I32, i64::from(dst_table_index.as_u32()));
        let s = pos.ins().iconst(I32, i64::from(src_table_index.as_u32()));
        self.call_builtin_trapping(
            pos,
            BuiltinFunction::table_copy,
            &[d, s, dst, src, len],
            ir::TrapCode::TableOutOfBounds,
        );
        Ok(())
    }

    fn translate_table_fill(
        &mut self,
        mut pos: FuncCursor,
        table_index: cranelift_wasm::TableIndex,
        dst: ir::Value,
        val: ir::Value,
        len: ir::Value,
    ) -> WasmResult<()> {
        let t = pos.ins().iconst(I32, i64::from(table_index.as_u32()));
        self.call_builtin_trapping(
            pos,
            BuiltinFunction::table_fill,
            &[t, dst, val, len],
            ir::TrapCode::TableOutOfBounds,
        );
        Ok(())
    }

    fn translate_table_init(
        &mut self,
        mut pos: FuncCursor,
        seg_index: u32,
        table_index: cranelift_wasm::TableIndex,
        dst: ir::Value,
        src: ir::Value,
        len: ir::Value,
    ) -> WasmResult<()> {
        let t = pos.ins().iconst(I32, i64::from(table_index.as_u32()));
        let seg = pos.ins().iconst(I32, i64::from(seg_index));
        self.call_builtin_trapping(
            pos,
            BuiltinFunction::table_init,
            &[t, seg, dst, src, len],
            ir::TrapCode::TableOutOfBounds,
        );
        Ok(())
    }

    fn translate_elem_drop(&mut self, mut pos: FuncCursor, seg_index: u32) -> WasmResult<()> {
        let seg = pos.ins().iconst(I32, i64::from(seg_index));
        self.call_builtin(&mut pos, BuiltinFunction::elem_drop, &[seg]);
        Ok(())
    }

    fn translate_ref_null(
        &mut self,
        mut pos: FuncCursor,
        _ty: WasmHeapType,
    ) -> WasmResult<ir::Value> {
        let ptr = self.ptr();
        Ok(pos.ins().iconst(ptr, 0))
    }

    fn translate_ref_is_null(
        &mut self,
        mut pos: FuncCursor,
        value: ir::Value,
    ) -> WasmResult<ir::Value> {
        let is_null = pos.ins().icmp_imm(IntCC::Equal, value, 0);
        Ok(pos.ins().uextend(I32, is_null))
    }

    fn translate_ref_func(
        &mut self,
        mut pos: FuncCursor,
        func_index: cranelift_wasm::FuncIndex,
    ) -> WasmResult<ir::Value> {
        let f = FuncIndex::from_u32(func_index.as_u32());
        let vmctx = self.vmctx_val(&mut pos);
        let ptr = self.ptr();
        Ok(match self.module.defined_func_index(f) {
            Some(d) => {
                let slot = self.func_ref_slot(d)?;
                pos.ins()
                    .iadd_imm(vmctx, i64::from(self.offsets.func_ref(slot)))
            }
            None => pos.ins().load(
                ptr,
                flags_ro(),
                vmctx,
                (self.offsets.imported_function(f) + VMOffsets::FUNCTION_IMPORT_FUNC_REF) as i32,
            ),
        })
    }

    fn translate_custom_global_get(
        &mut self,
        _builder: &mut FunctionBuilder,
        _global_index: cranelift_wasm::GlobalIndex,
    ) -> WasmResult<ir::Value> {
        Err(unsupported("custom globals"))
    }

    fn translate_custom_global_set(
        &mut self,
        _builder: &mut FunctionBuilder,
        _global_index: cranelift_wasm::GlobalIndex,
        _val: ir::Value,
    ) -> WasmResult<()> {
        Err(unsupported("custom globals"))
    }

    fn translate_atomic_wait(
        &mut self,
        _pos: FuncCursor,
        _index: cranelift_wasm::MemoryIndex,
        _heap: Heap,
        _addr: ir::Value,
        _expected: ir::Value,
        _timeout: ir::Value,
    ) -> WasmResult<ir::Value> {
        Err(unsupported("threads (memory.atomic.wait)"))
    }

    fn translate_atomic_notify(
        &mut self,
        _pos: FuncCursor,
        _index: cranelift_wasm::MemoryIndex,
        _heap: Heap,
        _addr: ir::Value,
        _count: ir::Value,
    ) -> WasmResult<ir::Value> {
        Err(unsupported("threads (memory.atomic.notify)"))
    }

    fn translate_ref_i31(&mut self, _pos: FuncCursor, _val: ir::Value) -> WasmResult<ir::Value> {
        Err(unsupported("GC (i31ref)"))
    }

    fn translate_i31_get_s(
        &mut self,
        _pos: FuncCursor,
        _i31ref: ir::Value,
    ) -> WasmResult<ir::Value> {
        Err(unsupported("GC (i31ref)"))
    }

    fn translate_i31_get_u(
        &mut self,
        _pos: FuncCursor,
        _i31ref: ir::Value,
    ) -> WasmResult<ir::Value> {
        Err(unsupported("GC (i31ref)"))
    }

    fn before_translate_function(
        &mut self,
        builder: &mut FunctionBuilder,
        _state: &cranelift_wasm::FuncTranslationState,
    ) -> WasmResult<()> {
        self.budget_checks(builder);
        Ok(())
    }

    fn before_translate_operator(
        &mut self,
        op: &wasmparser::Operator,
        builder: &mut FunctionBuilder,
        state: &cranelift_wasm::FuncTranslationState,
    ) -> WasmResult<()> {
        use wasmparser::Operator as O;
        if !self.tunables.consume_fuel || !state.reachable() {
            return Ok(());
        }
        // Fuel: every operator costs 1, except those that do no work
        // (Wasmtime's accounting, so budgets carry over).
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
        // Flush before anything that leaves straight-line code, so the
        // count in memory is exact whenever control can leave this block.
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
            self.fuel_flush(builder);
        }
        Ok(())
    }

    fn translate_loop_header(&mut self, builder: &mut FunctionBuilder) -> WasmResult<()> {
        self.budget_checks(builder);
        // The interrupt check: see the module docs.
        let ptr = self.ptr();
        let limits_gv = self.limits_gv(builder.func);
        let limits = builder.ins().global_value(ptr, limits_gv);
        // An atomic load: a plain one would be merged with an earlier load
        // of the same address (alias analysis sees no store in between),
        // and an interrupt from another thread would go unseen.
        let limit = builder.ins().atomic_load(ptr, MemFlags::trusted(), limits);
        let sp = builder.ins().get_stack_pointer(ptr);
        let over = builder.ins().icmp(IntCC::UnsignedLessThan, sp, limit);
        builder.ins().trapnz(over, LOOP_HEADER_TRAP);
        Ok(())
    }

    fn relaxed_simd_deterministic(&self) -> bool {
        true
    }

    fn is_x86(&self) -> bool {
        self.isa.triple().architecture == target_lexicon::Architecture::X86_64
    }
}

impl FuncEnv<'_> {
    fn func_ref_slot(&self, d: DefinedFuncIndex) -> WasmResult<u32> {
        self.module.func_ref_slots[d].ok_or_else(|| WasmError::InvalidWebAssembly {
            message: "ref.func of an undeclared function".into(),
            offset: 0,
        })
    }
}
