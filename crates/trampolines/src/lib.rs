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
//!   `(callee_vmctx, caller_vmctx, params...) -> result`; a function with
//!   two or more results returns none and writes them all through a
//!   trailing pointer instead (see [`native_retptr`]).
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
//!
//! # Example
//!
//! ```
//! use cranelift_codegen::settings::{self, Configurable};
//! use kiln_environ::{FuncType, ValType};
//! let mut flags = settings::builder();
//! flags.set("preserve_frame_pointers", "true")?;
//! let isa = cranelift_codegen::isa::lookup_by_name("x86_64-unknown-linux-gnu")?
//!     .finish(settings::Flags::new(flags))?;
//! let ty = FuncType::new([ValType::I32], [ValType::I64, ValType::F64]);
//! // Two contexts, then the parameters; with two results, both go
//! // through a trailing return pointer.
//! let sig = kiln_trampolines::native_signature(&*isa, &ty);
//! assert!(kiln_trampolines::native_retptr(&ty));
//! assert_eq!(sig.params.len(), 2 + 1 + 1);
//! assert_eq!(sig.returns.len(), 0);
//! assert_eq!(kiln_trampolines::array_signature(&*isa).params.len(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

use cranelift_codegen::ir::{
    self, types, AbiParam, ArgumentPurpose, InstBuilder, MemFlagsData, Signature, UserExternalName,
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

fn trusted() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// The byte offset of `ValRaw` slot `i`.
fn slot(i: usize) -> i32 {
    (i as u32 * VAL_RAW_SIZE) as i32
}

/// Creates the one block of a trampoline and returns its parameters.
fn entry_block(b: &mut FunctionBuilder) -> Vec<ir::Value> {
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    b.seal_block(block);
    b.block_params(block).to_vec()
}

/// Loads a value of each of `tys` from consecutive `ValRaw` slots.
fn load_slots(
    b: &mut FunctionBuilder,
    ptr: ir::Type,
    tys: &[ValType],
    base: ir::Value,
) -> Vec<ir::Value> {
    tys.iter()
        .enumerate()
        .map(|(i, t)| b.ins().load(value_type(*t, ptr), trusted(), base, slot(i)))
        .collect()
}

/// Stores `vals` into consecutive `ValRaw` slots.
fn store_slots(b: &mut FunctionBuilder, vals: &[ir::Value], base: ir::Value) {
    for (i, v) in vals.iter().enumerate() {
        b.ins().store(trusted(), *v, base, slot(i));
    }
}

/// A stack array of `n` `ValRaw` slots (at least one) and its address.
fn slot_array(b: &mut FunctionBuilder, ptr: ir::Type, n: usize) -> ir::Value {
    let ss = b.create_sized_stack_slot(ir::StackSlotData::new(
        ir::StackSlotKind::ExplicitSlot,
        n.max(1) as u32 * VAL_RAW_SIZE,
        4,
    ));
    b.ins().stack_addr(ptr, ss, 0)
}

/// Returns `results` in the native convention: directly, or through the
/// trailing return pointer `retptr` when there are several.
fn native_return(
    b: &mut FunctionBuilder,
    ty: &FuncType,
    results: &[ir::Value],
    retptr: Option<ir::Value>,
) {
    match retptr.filter(|_| native_retptr(ty)) {
        Some(retptr) => {
            store_slots(b, results, retptr);
            b.ins().return_(&[]);
        }
        None => {
            b.ins().return_(results);
        }
    }
}

/// Imports the function body `callee` (a colocated, pc-relative call).
fn import_body(
    func: &mut ir::Function,
    isa: &dyn TargetIsa,
    ty: &FuncType,
    callee: UserExternalName,
) -> ir::FuncRef {
    let signature = func.import_signature(wasm_signature(isa, ty));
    let name = func.declare_imported_user_function(callee);
    func.import_function(ir::ExtFuncData {
        name: ir::ExternalName::User(name),
        signature,
        colocated: true,
        patchable: false,
    })
}

/// Loads an entry point of the host function whose context is `vmctx`.
fn host_entry(b: &mut FunctionBuilder, ptr: ir::Type, vmctx: ir::Value, field: u32) -> ir::Value {
    b.ins().load(
        ptr,
        trusted().with_readonly(),
        vmctx,
        (VMOffsets::HOST_FUNC_FUNC_REF + field) as i32,
    )
}

/// Builds an array-to-wasm trampoline: entered from the host through
/// `array_call`, it loads the arguments from the array, calls the body
/// (a colocated, pc-relative call to `callee`), and stores the results
/// back into the array.
pub fn array_to_wasm(isa: &dyn TargetIsa, ty: &FuncType, callee: UserExternalName) -> ir::Function {
    let ptr = isa.pointer_type();
    let mut func = ir::Function::with_name_signature(UserFuncName::default(), array_signature(isa));
    let callee = import_body(&mut func, isa, ty, callee);
    let mut ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut ctx);
    let p = entry_block(&mut b);
    let (vmctx, caller, values) = (p[0], p[1], p[2]);
    let mut args = vec![vmctx, caller];
    args.extend(load_slots(&mut b, ptr, ty.params(), values));
    let call = b.ins().call(callee, &args);
    let results = b.inst_results(call).to_vec();
    store_slots(&mut b, &results, values);
    b.ins().return_(&[]);
    b.finalize(isa.frontend_config());
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
    let callee = import_body(&mut func, isa, ty, callee);
    let mut ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut func, &mut ctx);
    let p = entry_block(&mut b);
    let nargs = 2 + ty.params().len();
    let call = b.ins().call(callee, &p[..nargs]);
    let results = b.inst_results(call).to_vec();
    native_return(&mut b, ty, &results, p.get(nargs).copied());
    b.finalize(isa.frontend_config());
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
    let p = entry_block(&mut b);
    let (vmctx, caller) = (p[0], p[1]);
    save_exit_state(&mut b, ptr, caller);
    let native = host_entry(&mut b, ptr, vmctx, VMOffsets::FUNC_REF_NATIVE_CALL);
    let mut args = p.clone();
    let retarea = native_retptr(ty).then(|| slot_array(&mut b, ptr, ty.results().len()));
    args.extend(retarea);
    let call = b.ins().call_indirect(native_sig, native, &args);
    let results = match retarea {
        Some(area) => load_slots(&mut b, ptr, ty.results(), area),
        None => b.inst_results(call).to_vec(),
    };
    b.ins().return_(&results);
    b.finalize(isa.frontend_config());
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
    let p = entry_block(&mut b);
    let (vmctx, caller) = (p[0], p[1]);
    save_exit_state(&mut b, ptr, caller);
    let results = call_array_entry(&mut b, ptr, array_sig, ty, vmctx, caller, &p[2..]);
    b.ins().return_(&results);
    b.finalize(isa.frontend_config());
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
    let p = entry_block(&mut b);
    let (vmctx, caller) = (p[0], p[1]);
    let nparams = ty.params().len();
    let results = call_array_entry(
        &mut b,
        ptr,
        array_sig,
        ty,
        vmctx,
        caller,
        &p[2..2 + nparams],
    );
    native_return(&mut b, ty, &results, p.get(2 + nparams).copied());
    b.finalize(isa.frontend_config());
    func
}

/// Spills `params` into a stack array, calls the host function's
/// `array_call`, and reloads the results from the array.
fn call_array_entry(
    b: &mut FunctionBuilder,
    ptr: ir::Type,
    array_sig: ir::SigRef,
    ty: &FuncType,
    vmctx: ir::Value,
    caller: ir::Value,
    params: &[ir::Value],
) -> Vec<ir::Value> {
    let len = ty.params().len().max(ty.results().len()).max(1);
    let values = slot_array(b, ptr, len);
    store_slots(b, params, values);
    let array_call = host_entry(b, ptr, vmctx, VMOffsets::FUNC_REF_ARRAY_CALL);
    let len = b.ins().iconst(ptr, len as i64);
    b.ins()
        .call_indirect(array_sig, array_call, &[vmctx, caller, values, len]);
    load_slots(b, ptr, ty.results(), values)
}

/// Stores this trampoline's own frame pointer into the store's
/// `VMRuntimeLimits`: the frame links to the Wasm caller (`[fp]`) and holds
/// the return address into it (`[fp + 8]`), which is all a backtrace needs,
/// and which is where a failing host function redirects the return so that
/// Wasm traps right at the call (see `traphandlers.rs` in `kiln-runtime`).
fn save_exit_state(b: &mut FunctionBuilder, ptr: ir::Type, caller_vmctx: ir::Value) {
    let limits = b.ins().load(
        ptr,
        trusted().with_readonly(),
        caller_vmctx,
        VMOffsets::RUNTIME_LIMITS as i32,
    );
    let fp = b.ins().get_frame_pointer(ptr);
    b.ins().store(
        trusted(),
        fp,
        limits,
        VMOffsets::LIMITS_LAST_WASM_EXIT_FP as i32,
    );
}
