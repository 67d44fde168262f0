//! `kiln-trampolines`: the calling conventions of a `VMFuncRef`, and the
//! Cranelift functions that convert between them.
//!
//! # Who is this crate for?
//!
//! The code generator (`kiln-cranelift`) asks it for the trampolines of a
//! module; the public API asks it (through the code generator) for the
//! per-type trampolines of dynamically typed host functions. It produces
//! Cranelift IR ([`ir::Function`]); compiling and laying out that IR is
//! `kiln-cranelift`'s job, so this crate never touches a text section.
//!
//! # The three conventions
//!
//! Every function a module can see has three entry points (see
//! `VMFuncRef` in `kiln-runtime`), each with exactly one convention:
//!
//! * **wasm** ([`wasm_signature`]): Cranelift's `tail` convention,
//!   `(callee_vmctx, caller_vmctx, params...) -> results`. Every Wasm
//!   function body uses it, and so does every Wasm-to-Wasm call; `tail`
//!   keeps `return_call` possible.
//! * **native** ([`native_signature`]): the platform C ABI,
//!   `(callee_vmctx, caller_vmctx, params...) -> result`, with results past
//!   the first written through a trailing pointer (see [`native_retptr`]).
//!   A Rust `extern "C" fn` with matching scalar types *is* such a function,
//!   which is how `Func::wrap` provides one without a compiler and how
//!   `TypedFunc::call` calls one without marshalling.
//! * **array** ([`array_signature`]): the platform C ABI,
//!   `(callee_vmctx, caller_vmctx, values: *mut ValRaw, len)`, arguments in
//!   and results out through one array of 16-byte slots. `Func::call` and
//!   `Func::new` use it because their types are only known at run time.
//!
//! A trampoline converts one convention into another, and a caller always
//! picks the entry point that matches its own convention, so no call ever
//! goes through two trampolines.

#![deny(missing_docs)]

use cranelift_codegen::ir::{
    self, types, AbiParam, ArgumentPurpose, InstBuilder, MemFlags, Signature, UserExternalName,
    UserFuncName,
};
use cranelift_codegen::isa::{CallConv, TargetIsa};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use kiln_environ::{FuncType, VMOffsets, ValType};

/// Size of one `ValRaw` slot in the array convention.
pub const VAL_RAW_SIZE: u32 = 16;

/// The Cranelift type of a Wasm value type.
pub fn value_type(ty: ValType, pointer: ir::Type) -> ir::Type {
    match ty {
        ValType::I32 => types::I32,
        ValType::I64 => types::I64,
        ValType::F32 => types::F32,
        ValType::F64 => types::F64,
        ValType::V128 => types::I8X16,
        ValType::FuncRef | ValType::ExternRef => pointer,
    }
}

/// The wasm convention's signature for `ty`.
pub fn wasm_signature(isa: &dyn TargetIsa, ty: &FuncType) -> Signature {
    let ptr = isa.pointer_type();
    let mut sig = Signature::new(CallConv::Tail);
    sig.params
        .push(AbiParam::special(ptr, ArgumentPurpose::VMContext));
    sig.params.push(AbiParam::new(ptr));
    sig.params.extend(
        ty.params()
            .iter()
            .map(|t| AbiParam::new(value_type(*t, ptr))),
    );
    sig.returns.extend(
        ty.results()
            .iter()
            .map(|t| AbiParam::new(value_type(*t, ptr))),
    );
    sig
}

/// Whether the native convention for `ty` returns results through a
/// trailing pointer (more than one result).
pub fn native_retptr(ty: &FuncType) -> bool {
    ty.results().len() > 1
}

/// The native convention's signature for `ty`.
pub fn native_signature(isa: &dyn TargetIsa, ty: &FuncType) -> Signature {
    let ptr = isa.pointer_type();
    let mut sig = Signature::new(isa.default_call_conv());
    sig.params.push(AbiParam::new(ptr));
    sig.params.push(AbiParam::new(ptr));
    sig.params.extend(
        ty.params()
            .iter()
            .map(|t| AbiParam::new(value_type(*t, ptr))),
    );
    if native_retptr(ty) {
        sig.params.push(AbiParam::new(ptr));
    } else {
        sig.returns.extend(
            ty.results()
                .iter()
                .map(|t| AbiParam::new(value_type(*t, ptr))),
        );
    }
    sig
}

/// The array convention's signature (the same for every type).
pub fn array_signature(isa: &dyn TargetIsa) -> Signature {
    let ptr = isa.pointer_type();
    let mut sig = Signature::new(isa.default_call_conv());
    sig.params.extend([AbiParam::new(ptr); 4]);
    sig
}

fn trusted() -> MemFlags {
    MemFlags::trusted()
}

/// Builds an array-to-wasm trampoline: entered from the host through
/// `array_call`, it loads the arguments from the array, calls the body
/// (a colocated, pc-relative call to `callee`), and stores the results
/// back into the array.
pub fn array_to_wasm(isa: &dyn TargetIsa, ty: &FuncType, callee: UserExternalName) -> ir::Function {
    let ptr = isa.pointer_type();
    let mut func = ir::Function::with_name_signature(UserFuncName::default(), array_signature(isa));
    let wasm_sig = func.import_signature(wasm_signature(isa, ty));
    let name = func.declare_imported_user_function(callee);
    let callee = func.import_function(ir::ExtFuncData {
        name: ir::ExternalName::User(name),
        signature: wasm_sig,
        colocated: true,
    });
    let mut ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut ctx);
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    b.seal_block(block);
    let p = b.block_params(block).to_vec();
    let (vmctx, caller, values) = (p[0], p[1], p[2]);
    let mut args = vec![vmctx, caller];
    for (i, t) in ty.params().iter().enumerate() {
        let v = b.ins().load(
            value_type(*t, ptr),
            trusted(),
            values,
            (i as u32 * VAL_RAW_SIZE) as i32,
        );
        args.push(v);
    }
    let call = b.ins().call(callee, &args);
    let results = b.inst_results(call).to_vec();
    for (i, r) in results.iter().enumerate() {
        b.ins()
            .store(trusted(), *r, values, (i as u32 * VAL_RAW_SIZE) as i32);
    }
    b.ins().return_(&[]);
    b.finalize();
    func
}

/// Builds a native-to-wasm trampoline: entered from the host through
/// `native_call` with arguments in registers, it calls the body (a
/// colocated call to `callee`) and returns its results in the C ABI.
pub fn native_to_wasm(
    isa: &dyn TargetIsa,
    ty: &FuncType,
    callee: UserExternalName,
) -> ir::Function {
    let mut func =
        ir::Function::with_name_signature(UserFuncName::default(), native_signature(isa, ty));
    let wasm_sig = func.import_signature(wasm_signature(isa, ty));
    let name = func.declare_imported_user_function(callee);
    let callee = func.import_function(ir::ExtFuncData {
        name: ir::ExternalName::User(name),
        signature: wasm_sig,
        colocated: true,
    });
    let mut ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut ctx);
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    b.seal_block(block);
    let p = b.block_params(block).to_vec();
    let nargs = 2 + ty.params().len();
    let call = b.ins().call(callee, &p[..nargs]);
    let results = b.inst_results(call).to_vec();
    if native_retptr(ty) {
        let retptr = p[nargs];
        for (i, r) in results.iter().enumerate() {
            b.ins()
                .store(trusted(), *r, retptr, (i as u32 * VAL_RAW_SIZE) as i32);
        }
        b.ins().return_(&[]);
    } else {
        b.ins().return_(&results);
    }
    b.finalize();
    func
}

/// Builds the wasm-to-native trampoline for type `ty`: the `wasm_call` of
/// every host function of that type. It records where Wasm was left (for
/// backtraces), loads the host function's `native_call` from its context
/// (`callee_vmctx`), and calls it in the C ABI.
pub fn wasm_to_native(isa: &dyn TargetIsa, ty: &FuncType) -> ir::Function {
    let ptr = isa.pointer_type();
    let mut func =
        ir::Function::with_name_signature(UserFuncName::default(), wasm_signature(isa, ty));
    let native_sig = func.import_signature(native_signature(isa, ty));
    let mut ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut ctx);
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    b.seal_block(block);
    let p = b.block_params(block).to_vec();
    let (vmctx, caller) = (p[0], p[1]);
    save_exit_state(&mut b, ptr, caller);
    let native = b.ins().load(
        ptr,
        trusted().with_readonly(),
        vmctx,
        (VMOffsets::HOST_FUNC_FUNC_REF + VMOffsets::FUNC_REF_NATIVE_CALL) as i32,
    );
    let mut args = p.clone();
    let retslot = if native_retptr(ty) {
        let slot = b.create_sized_stack_slot(ir::StackSlotData::new(
            ir::StackSlotKind::ExplicitSlot,
            ty.results().len() as u32 * VAL_RAW_SIZE,
            4,
        ));
        args.push(b.ins().stack_addr(ptr, slot, 0));
        Some(slot)
    } else {
        None
    };
    let call = b.ins().call_indirect(native_sig, native, &args);
    let results = match retslot {
        Some(slot) => {
            let addr = b.ins().stack_addr(ptr, slot, 0);
            ty.results()
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    b.ins().load(
                        value_type(*t, ptr),
                        trusted(),
                        addr,
                        (i as u32 * VAL_RAW_SIZE) as i32,
                    )
                })
                .collect()
        }
        None => b.inst_results(call).to_vec(),
    };
    b.ins().return_(&results);
    b.finalize();
    func
}

/// Builds the wasm-to-array trampoline for type `ty`: the `wasm_call` of
/// dynamically typed host functions (`Func::new`), which have no native
/// entry of their own. It spills the arguments into a stack array, calls
/// the host's `array_call` from its context, and reloads the results.
pub fn wasm_to_array(isa: &dyn TargetIsa, ty: &FuncType) -> ir::Function {
    let ptr = isa.pointer_type();
    let mut func =
        ir::Function::with_name_signature(UserFuncName::default(), wasm_signature(isa, ty));
    let array_sig = func.import_signature(array_signature(isa));
    let mut ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut ctx);
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    b.seal_block(block);
    let p = b.block_params(block).to_vec();
    let (vmctx, caller) = (p[0], p[1]);
    save_exit_state(&mut b, ptr, caller);
    let len = ty.params().len().max(ty.results().len()).max(1);
    let slot = b.create_sized_stack_slot(ir::StackSlotData::new(
        ir::StackSlotKind::ExplicitSlot,
        len as u32 * VAL_RAW_SIZE,
        4,
    ));
    let values = b.ins().stack_addr(ptr, slot, 0);
    for (i, v) in p[2..].iter().enumerate() {
        b.ins()
            .store(trusted(), *v, values, (i as u32 * VAL_RAW_SIZE) as i32);
    }
    let array_call = b.ins().load(
        ptr,
        trusted().with_readonly(),
        vmctx,
        (VMOffsets::HOST_FUNC_FUNC_REF + VMOffsets::FUNC_REF_ARRAY_CALL) as i32,
    );
    let len = b.ins().iconst(ptr, len as i64);
    b.ins()
        .call_indirect(array_sig, array_call, &[vmctx, caller, values, len]);
    let results: Vec<_> = ty
        .results()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            b.ins().load(
                value_type(*t, ptr),
                trusted(),
                values,
                (i as u32 * VAL_RAW_SIZE) as i32,
            )
        })
        .collect();
    b.ins().return_(&results);
    b.finalize();
    func
}

/// Builds a native-to-array trampoline for type `ty`: the `native_call` of
/// dynamically typed host functions, so `TypedFunc::call` can call them
/// through the one convention it knows.
pub fn native_to_array(isa: &dyn TargetIsa, ty: &FuncType) -> ir::Function {
    let ptr = isa.pointer_type();
    let mut func =
        ir::Function::with_name_signature(UserFuncName::default(), native_signature(isa, ty));
    let array_sig = func.import_signature(array_signature(isa));
    let mut ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut ctx);
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    b.seal_block(block);
    let p = b.block_params(block).to_vec();
    let (vmctx, caller) = (p[0], p[1]);
    let nparams = ty.params().len();
    let len = nparams.max(ty.results().len()).max(1);
    let slot = b.create_sized_stack_slot(ir::StackSlotData::new(
        ir::StackSlotKind::ExplicitSlot,
        len as u32 * VAL_RAW_SIZE,
        4,
    ));
    let values = b.ins().stack_addr(ptr, slot, 0);
    for (i, v) in p[2..2 + nparams].iter().enumerate() {
        b.ins()
            .store(trusted(), *v, values, (i as u32 * VAL_RAW_SIZE) as i32);
    }
    let array_call = b.ins().load(
        ptr,
        trusted().with_readonly(),
        vmctx,
        (VMOffsets::HOST_FUNC_FUNC_REF + VMOffsets::FUNC_REF_ARRAY_CALL) as i32,
    );
    let lenv = b.ins().iconst(ptr, len as i64);
    b.ins()
        .call_indirect(array_sig, array_call, &[vmctx, caller, values, lenv]);
    let results: Vec<_> = ty
        .results()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            b.ins().load(
                value_type(*t, ptr),
                trusted(),
                values,
                (i as u32 * VAL_RAW_SIZE) as i32,
            )
        })
        .collect();
    if native_retptr(ty) {
        let retptr = p[2 + nparams];
        for (i, r) in results.iter().enumerate() {
            b.ins()
                .store(trusted(), *r, retptr, (i as u32 * VAL_RAW_SIZE) as i32);
        }
        b.ins().return_(&[]);
    } else {
        b.ins().return_(&results);
    }
    b.finalize();
    func
}

/// Stores the Wasm caller's frame pointer and return address into the
/// store's `VMRuntimeLimits`, so a trap raised by the host can walk the Wasm
/// frames that led to it.
fn save_exit_state(b: &mut FunctionBuilder, ptr: ir::Type, caller_vmctx: ir::Value) {
    let limits = b.ins().load(
        ptr,
        trusted().with_readonly(),
        caller_vmctx,
        VMOffsets::RUNTIME_LIMITS as i32,
    );
    let fp = b.ins().get_frame_pointer(ptr);
    let caller_fp = b.ins().load(ptr, trusted(), fp, 0);
    let pc = b.ins().get_return_address(ptr);
    b.ins().store(
        trusted(),
        caller_fp,
        limits,
        VMOffsets::LIMITS_LAST_WASM_EXIT_FP as i32,
    );
    b.ins().store(
        trusted(),
        pc,
        limits,
        VMOffsets::LIMITS_LAST_WASM_EXIT_PC as i32,
    );
}
