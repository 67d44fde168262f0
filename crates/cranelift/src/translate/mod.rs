//! Kiln's WebAssembly-to-Cranelift-IR translator.
//!
//! # The problem
//!
//! A Wasm function body is a structured stack machine: operators push and
//! pop operands, and `block`/`loop`/`if` nest with typed parameters and
//! results. Cranelift wants SSA values in basic blocks that end in
//! explicit branches. The translator walks the operators once, in order,
//! and drives a [`FunctionBuilder`] (which builds SSA for the Wasm locals,
//! declared as Cranelift variables).
//!
//! # The two stacks
//!
//! * The **value stack** ([`stack::ValueStack`]) holds one Cranelift
//!   [`ir::Value`] per Wasm operand, so an operator pops its inputs as SSA
//!   values and pushes the values of the instructions it emits.
//! * The **control stack** ([`stack::ControlFrame`]s) holds one frame per
//!   open `block`, `loop` or `if`, and one for the function body. A frame
//!   records the Cranelift block a branch to it jumps to (the `loop`'s
//!   header, or the block after the construct's `end`), the number of
//!   values such a branch carries (a loop's parameters, otherwise its
//!   results), and the value-stack height at entry below its parameters.
//!   Branch targets carry their operands as block parameters, so the
//!   values live at `end` are that block's parameters.
//!
//! # Reachability
//!
//! As in the spec's validation algorithm, the code after `unreachable`,
//! `br`, `br_table`, `return` and the tail calls is dead until the `end`
//! (or `else`) of the innermost frame. The translator keeps one flag,
//! `reachable`. While it is false, operators emit nothing; only nesting is
//! tracked, by counting the `block`/`loop`/`if` opened in dead code
//! (`dead_depth`), which never get frames. The `else` or `end` of a real
//! frame makes code reachable again when something can get there: the
//! `if`'s condition (for `else`), or a branch to the frame or a live
//! fall-through (for `end`).
//!
//! # Invariants
//!
//! * **Invariant:** while `reachable`, the value stack holds exactly the
//!   operands the validator would have at this point, with Cranelift types
//!   matching their Wasm types ([`kiln_trampolines::value_type`]).
//! * **Invariant:** a frame's target block is sealed only once every branch
//!   to it has been emitted: a `loop` header at the loop's `end`, the
//!   block after a construct when the translator switches to it.
//! * **Invariant:** nothing is emitted while `!reachable` (so the value
//!   stack may hold stale values then, and is truncated at `end`/`else`).
//! * Bodies reach the translator validated completely (`kiln-environ`
//!   validates every body to its end while translating the module, before
//!   any is compiled); a surprise that only an invalid body could cause
//!   is an error, never a panic.
//!
//! Kiln's VM layout comes from [`VMOffsets`]; nothing here goes through a
//! trait. See the submodules for memories ([`memory`]), calls, tables and
//! globals ([`call`]), the budget checks ([`budget`]), and SIMD ([`simd`]).

mod budget;
mod call;
mod code;
mod control;
mod memory;
mod simd;
mod stack;

use cranelift_codegen::ir::{self, types::*, InstBuilder, MemFlagsData, TrapCode};
use cranelift_codegen::isa::TargetIsa;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use kiln_environ::{
    FuncIndex, FunctionBodyData, Module, Trap, Tunables, TypeIndex, VMOffsets, ValType, WasmError,
};
use std::collections::HashMap;
use wasmparser::Operator;

pub(crate) use stack::{ControlFrame, ValueStack};

/// Kiln's trap codes: Cranelift's own five, and user codes for the rest.
pub(crate) mod traps {
    use cranelift_codegen::ir::TrapCode;
    /// Running out of fuel.
    pub const OUT_OF_FUEL: TrapCode = TrapCode::unwrap_user(1);
    /// The loop-header stack-limit check (the interrupt sentinel). Not
    /// `STACK_OVERFLOW`, which must mean "the prologue's check" (see
    /// [`super::budget`]).
    pub const LOOP_HEADER: TrapCode = TrapCode::unwrap_user(2);
    /// A passed epoch deadline.
    pub const EPOCH: TrapCode = TrapCode::unwrap_user(3);
    /// A misaligned atomic access.
    pub const HEAP_MISALIGNED: TrapCode = TrapCode::unwrap_user(4);
    /// A table index out of bounds.
    pub const TABLE_OUT_OF_BOUNDS: TrapCode = TrapCode::unwrap_user(5);
    /// `call_indirect` of a null entry.
    pub const INDIRECT_CALL_TO_NULL: TrapCode = TrapCode::unwrap_user(6);
    /// `call_indirect` with the wrong signature.
    pub const BAD_SIGNATURE: TrapCode = TrapCode::unwrap_user(7);
    /// `unreachable`.
    pub const UNREACHABLE: TrapCode = TrapCode::unwrap_user(8);
    /// A null reference dereferenced.
    pub const NULL_REFERENCE: TrapCode = TrapCode::unwrap_user(9);
}

/// The [`Trap`] a trap code stands for.
pub(crate) fn trap_of(code: TrapCode) -> Trap {
    match code {
        TrapCode::STACK_OVERFLOW => Trap::StackOverflow,
        TrapCode::HEAP_OUT_OF_BOUNDS => Trap::MemoryOutOfBounds,
        TrapCode::INTEGER_OVERFLOW => Trap::IntegerOverflow,
        TrapCode::INTEGER_DIVISION_BY_ZERO => Trap::IntegerDivisionByZero,
        TrapCode::BAD_CONVERSION_TO_INTEGER => Trap::BadConversionToInteger,
        traps::OUT_OF_FUEL => Trap::OutOfFuel,
        traps::LOOP_HEADER | traps::EPOCH => Trap::Interrupt,
        traps::HEAP_MISALIGNED => Trap::HeapMisaligned,
        traps::TABLE_OUT_OF_BOUNDS => Trap::TableOutOfBounds,
        traps::INDIRECT_CALL_TO_NULL => Trap::IndirectCallToNull,
        traps::BAD_SIGNATURE => Trap::BadSignature,
        traps::NULL_REFERENCE => Trap::NullReference,
        _ => Trap::UnreachableCodeReached,
    }
}

/// The most Cranelift instructions one function may translate to. Cranelift
/// packs instruction indices in places (GHSA-897f-g5gm-fmxm was a function
/// past 2^24 instructions corrupting them), so a function that comes close
/// is refused with a limit error instead of handed to the code generator.
pub(crate) const MAX_IR_INSTS: usize = (1 << 24) - (1 << 16);

/// Translates function bodies; keeps allocations from one to the next.
#[derive(Default)]
pub(crate) struct FuncTranslator {
    builder_ctx: FunctionBuilderContext,
    stack: ValueStack,
    control: Vec<ControlFrame>,
}

/// What translating one function needs to know about its surroundings.
pub(crate) struct Env<'a> {
    pub isa: &'a dyn TargetIsa,
    pub module: &'a Module,
    pub offsets: &'a VMOffsets,
    pub tunables: &'a Tunables,
}

/// The state of one function's translation.
pub(crate) struct Tx<'a, 'b> {
    pub b: FunctionBuilder<'b>,
    pub env: &'a Env<'a>,
    pub ptr: ir::Type,
    /// The callee vmctx parameter: this instance's `VMContext`.
    pub vmctx: ir::Value,
    pub locals: Vec<Variable>,
    pub stack: &'b mut ValueStack,
    pub control: &'b mut Vec<ControlFrame>,
    pub reachable: bool,
    /// `block`/`loop`/`if` opened in dead code and not yet closed.
    pub dead_depth: u32,
    /// Fuel charged for operators since the last flush to memory.
    pub fuel_pending: i64,
    pub func_refs: HashMap<FuncIndex, ir::FuncRef>,
    pub sigs: HashMap<TypeIndex, ir::SigRef>,
    pub builtin_sigs: HashMap<u32, ir::SigRef>,
    /// The wasm byte offset of the operator being translated.
    pub offset: u64,
}

/// An error from translation.
pub(crate) type TxResult<T> = Result<T, WasmError>;

pub(crate) fn invalid(message: &str, offset: u64) -> WasmError {
    WasmError::InvalidWebAssembly {
        message: message.to_string(),
        offset: offset as usize,
    }
}

impl FuncTranslator {
    /// Translates `body` (of function `f`) into `func`, whose signature is
    /// already the wasm convention's for `f`.
    pub(crate) fn translate(
        &mut self,
        env: &Env<'_>,
        f: FuncIndex,
        body: &FunctionBodyData<'_>,
        func: &mut ir::Function,
    ) -> TxResult<()> {
        let ptr = env.isa.pointer_type();
        set_stack_limit(func, ptr);
        let mut b = FunctionBuilder::new(func, &mut self.builder_ctx);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let params = b.block_params(entry).to_vec();
        let vmctx = params[0];
        let ty = env.module.func_type(f);
        let mut locals = Vec::new();
        for (i, t) in ty.params().iter().enumerate() {
            let var = b.declare_var(kiln_trampolines::value_type(*t, ptr));
            b.def_var(var, params[2 + i]);
            locals.push(var);
        }
        let mut reader = body.body.get_binary_reader();
        let decls = reader.read_var_u32()?;
        for _ in 0..decls {
            let offset = reader.original_position();
            let count = reader.read_var_u32()?;
            let t = ValType::from_wasmparser(reader.read()?)?;
            if locals.len() + count as usize > kiln_environ::limits::MAX_FUNCTION_LOCALS {
                return Err(invalid("too many locals", offset));
            }
            let cty = kiln_trampolines::value_type(t, ptr);
            for _ in 0..count {
                let var = b.declare_var(cty);
                let zero = zero_value(&mut b, cty);
                b.def_var(var, zero);
                locals.push(var);
            }
        }
        self.stack.clear();
        self.control.clear();
        let mut tx = Tx {
            b,
            env,
            ptr,
            vmctx,
            locals,
            stack: &mut self.stack,
            control: &mut self.control,
            reachable: true,
            dead_depth: 0,
            fuel_pending: 0,
            func_refs: HashMap::new(),
            sigs: HashMap::new(),
            builtin_sigs: HashMap::new(),
            offset: reader.original_position(),
        };
        let results: Vec<ir::Type> = ty
            .results()
            .iter()
            .map(|t| kiln_trampolines::value_type(*t, ptr))
            .collect();
        let exit = tx.b.create_block();
        for t in &results {
            tx.b.append_block_param(exit, *t);
        }
        tx.control.push(ControlFrame::function(exit, results.len()));
        tx.b.set_srcloc(ir::SourceLoc::new(tx.offset as u32));
        tx.budget_checks();
        let mut ops = wasmparser::OperatorsReader::new(reader);
        while !ops.eof() {
            tx.offset = ops.original_position();
            let op = ops.read()?;
            tx.b.set_srcloc(ir::SourceLoc::new(tx.offset as u32));
            tx.operator(&op)?;
            if tx.b.func.dfg.num_insts() > MAX_IR_INSTS {
                return Err(WasmError::ImplLimitExceeded(format!(
                    "function {} translates to more than {MAX_IR_INSTS} instructions",
                    f.as_u32()
                )));
            }
        }
        if !tx.control.is_empty() {
            return Err(invalid(
                "control frames remain at end of function",
                tx.offset,
            ));
        }
        let config = env.isa.frontend_config();
        tx.b.finalize(config);
        Ok(())
    }
}

/// Installs the prologue's stack-limit check: `load(load(vmctx +
/// RUNTIME_LIMITS) + LIMITS_STACK_LIMIT)` (see [`budget`]).
fn set_stack_limit(func: &mut ir::Function, ptr: ir::Type) {
    let vmctx = func.create_global_value(ir::GlobalValueData::VMContext);
    let ro = func.dfg.mem_flags.insert_unchecked(ro());
    let rw = func.dfg.mem_flags.insert_unchecked(rw());
    let limits = func.create_global_value(ir::GlobalValueData::Load {
        base: vmctx,
        offset: (VMOffsets::RUNTIME_LIMITS as i32).into(),
        global_type: ptr,
        flags: ro,
    });
    let limit = func.create_global_value(ir::GlobalValueData::Load {
        base: limits,
        offset: (VMOffsets::LIMITS_STACK_LIMIT as i32).into(),
        global_type: ptr,
        flags: rw,
    });
    func.stack_limit = Some(limit);
}

fn zero_value(b: &mut FunctionBuilder, ty: ir::Type) -> ir::Value {
    match ty {
        F32 => b.ins().f32const(0.0),
        F64 => b.ins().f64const(0.0),
        t if t.is_vector() => {
            let c = b.func.dfg.constants.insert(vec![0u8; 16].into());
            b.ins().vconst(t, c)
        }
        t => b.ins().iconst(t, 0),
    }
}

/// Flags for loads of fields that never change while code runs (the
/// context's pointers, an import's entry): they may be merged and hoisted.
pub(crate) fn ro() -> MemFlagsData {
    MemFlagsData::trusted().with_readonly().with_can_move()
}

/// Flags for loads and stores of VM state that Wasm or the host changes.
pub(crate) fn rw() -> MemFlagsData {
    MemFlagsData::trusted()
}

impl<'a, 'b> Tx<'a, 'b> {
    /// Translates one operator.
    fn operator(&mut self, op: &Operator<'_>) -> TxResult<()> {
        if !self.reachable {
            return self.dead_operator(op);
        }
        self.charge_fuel(op);
        if self.control_operator(op)? {
            return Ok(());
        }
        if self.code_operator(op)? {
            return Ok(());
        }
        if self.memory_operator(op)? {
            return Ok(());
        }
        if self.call_operator(op)? {
            return Ok(());
        }
        if self.simd_operator(op)? {
            return Ok(());
        }
        Err(WasmError::Unsupported(format!("operator {op:?}")))
    }

    pub(crate) fn pop(&mut self) -> TxResult<ir::Value> {
        self.stack
            .pop()
            .ok_or_else(|| invalid("operand stack underflow", self.offset))
    }

    pub(crate) fn pop2(&mut self) -> TxResult<(ir::Value, ir::Value)> {
        let y = self.pop()?;
        let x = self.pop()?;
        Ok((x, y))
    }

    pub(crate) fn pop3(&mut self) -> TxResult<(ir::Value, ir::Value, ir::Value)> {
        let z = self.pop()?;
        let (x, y) = self.pop2()?;
        Ok((x, y, z))
    }

    pub(crate) fn push(&mut self, v: ir::Value) {
        self.stack.push(v);
    }

    /// The top `n` operands, bottom first.
    pub(crate) fn peekn(&self, n: usize) -> TxResult<&[ir::Value]> {
        self.stack
            .peekn(n)
            .ok_or_else(|| invalid("operand stack underflow", self.offset))
    }

    pub(crate) fn popn(&mut self, n: usize) -> TxResult<Vec<ir::Value>> {
        let v = self.peekn(n)?.to_vec();
        self.stack.truncate(self.stack.len() - n);
        Ok(v)
    }

    /// Pushes `bool` (an `i8` truth value) as a Wasm `i32`.
    pub(crate) fn push_bool(&mut self, c: ir::Value) {
        let v = self.b.ins().uextend(I32, c);
        self.push(v);
    }

    /// A block type's parameter and result types.
    pub(crate) fn block_type(
        &self,
        ty: wasmparser::BlockType,
    ) -> TxResult<(Vec<ir::Type>, Vec<ir::Type>)> {
        let ptr = self.ptr;
        let conv = |t: &ValType| kiln_trampolines::value_type(*t, ptr);
        Ok(match ty {
            wasmparser::BlockType::Empty => (vec![], vec![]),
            wasmparser::BlockType::Type(t) => (vec![], vec![conv(&ValType::from_wasmparser(t)?)]),
            wasmparser::BlockType::FuncType(i) => {
                let ft = self
                    .env
                    .module
                    .types
                    .get(TypeIndex::from_u32(i))
                    .ok_or_else(|| invalid("unknown type", self.offset))?;
                (
                    ft.params().iter().map(conv).collect(),
                    ft.results().iter().map(conv).collect(),
                )
            }
        })
    }

    /// A trap instruction with `code` (ends the block; what follows is dead).
    pub(crate) fn trap(&mut self, code: TrapCode) {
        self.b.ins().trap(code);
        self.reachable = false;
    }
}
