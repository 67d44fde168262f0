//! One model of values and outcomes for both engines, and when two of them
//! agree.
//!
//! # NaNs
//!
//! The spec lets a floating-point operation return any NaN when a result is
//! NaN (a canonical NaN when every NaN input is canonical, an arithmetic
//! NaN otherwise), so two correct engines may disagree on NaN bits. The
//! generated modules canonicalize NaNs after every floating-point operation
//! (wasm-smith's `canonicalize_nans`), which keeps the bits that reach
//! memory, integer reinterpretations and v128 lanes deterministic; on top
//! of that, a scalar `f32`/`f64` result compares equal to another when both
//! are NaN, whatever the bits. v128 values are compared bit for bit: their
//! lane type is not known from a function's type, and canonicalization
//! makes their NaN lanes agree anyway. Everything else, the sign of zero
//! included, must match exactly.
//!
//! # Traps
//!
//! Both engines' trap codes map to [`TrapKind`]. A stack overflow is an
//! implementation limit (the engines' stacks differ in size), so a caller
//! stops comparing once either side reports one.

use std::fmt;

/// A value as both engines can report it. References are compared by
/// null-ness (and an externref by the host's payload), since a function
/// reference has no identity that crosses engines.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    V128(u128),
    FuncRef(bool),
    ExternRef(Option<u32>),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (I32(a), I32(b)) => a == b,
            (I64(a), I64(b)) => a == b,
            (F32(a), F32(b)) => {
                a == b || (f32::from_bits(*a).is_nan() && f32::from_bits(*b).is_nan())
            }
            (F64(a), F64(b)) => {
                a == b || (f64::from_bits(*a).is_nan() && f64::from_bits(*b).is_nan())
            }
            (V128(a), V128(b)) => a == b,
            (FuncRef(a), FuncRef(b)) => a == b,
            (ExternRef(a), ExternRef(b)) => a == b,
            _ => false,
        }
    }
}

/// Why execution stopped, in terms both engines share.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum TrapKind {
    Unreachable,
    MemoryOutOfBounds,
    TableOutOfBounds,
    IndirectCallToNull,
    BadSignature,
    IntegerOverflow,
    IntegerDivisionByZero,
    BadConversionToInteger,
    StackOverflow,
    OutOfFuel,
    NullReference,
    /// A trap raised by a host function's error.
    Host,
}

/// The outcome of an operation in one engine.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome<T> {
    Ok(T),
    Trap(TrapKind),
    /// An error that is not a trap, described.
    Error(String),
}

impl<T> Outcome<T> {
    pub(crate) fn is_stack_overflow(&self) -> bool {
        matches!(self, Outcome::Trap(TrapKind::StackOverflow))
    }
}

/// Whether two outcomes agree. Two non-trap errors agree whatever their
/// messages (the engines word them differently).
pub(crate) fn outcomes_agree<T: PartialEq>(a: &Outcome<T>, b: &Outcome<T>) -> bool {
    match (a, b) {
        (Outcome::Ok(x), Outcome::Ok(y)) => x == y,
        (Outcome::Trap(x), Outcome::Trap(y)) => x == y,
        (Outcome::Error(_), Outcome::Error(_)) => true,
        _ => false,
    }
}

/// Panics with both sides when they disagree.
pub(crate) fn assert_agree<T: PartialEq + fmt::Debug>(
    what: &dyn fmt::Display,
    kiln: &Outcome<T>,
    wasmi: &Outcome<T>,
) {
    assert!(
        outcomes_agree(kiln, wasmi),
        "Kiln and wasmi disagree on {what}:\n  kiln:  {kiln:?}\n  wasmi: {wasmi:?}"
    );
}

// --- Kiln -------------------------------------------------------------------

/// The error the fuzzers' host functions fail with, so an outcome can
/// tell a host function's failure from any other error.
#[derive(Debug)]
pub(crate) struct HostFailure;

impl std::fmt::Display for HostFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("host function failed")
    }
}

impl std::error::Error for HostFailure {}

pub(crate) fn kiln_trap(code: kiln::Trap) -> TrapKind {
    use kiln::Trap as T;
    match code {
        T::StackOverflow => TrapKind::StackOverflow,
        T::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
        T::TableOutOfBounds => TrapKind::TableOutOfBounds,
        T::IndirectCallToNull => TrapKind::IndirectCallToNull,
        T::BadSignature => TrapKind::BadSignature,
        T::IntegerOverflow => TrapKind::IntegerOverflow,
        T::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        T::BadConversionToInteger => TrapKind::BadConversionToInteger,
        T::UnreachableCodeReached => TrapKind::Unreachable,
        T::OutOfFuel => TrapKind::OutOfFuel,
        T::NullReference => TrapKind::NullReference,
        other => panic!("Kiln reported a trap no generated module can cause: {other:?}"),
    }
}

pub(crate) fn kiln_outcome<T>(r: kiln::Result<T>) -> Outcome<T> {
    match r {
        Ok(v) => Outcome::Ok(v),
        Err(e) => match e.downcast_ref::<kiln::Trap>() {
            Some(code) => Outcome::Trap(kiln_trap(*code)),
            // A host function's error comes back as itself (with the Wasm
            // frames it crossed as context).
            None if e.is::<HostFailure>() => Outcome::Trap(TrapKind::Host),
            None => Outcome::Error(format!("{e:#}")),
        },
    }
}

pub(crate) fn kiln_value(v: &kiln::Val, store: &kiln::Store<()>) -> Value {
    match v {
        kiln::Val::I32(x) => Value::I32(*x),
        kiln::Val::I64(x) => Value::I64(*x),
        kiln::Val::F32(x) => Value::F32(*x),
        kiln::Val::F64(x) => Value::F64(*x),
        kiln::Val::V128(x) => Value::V128(x.as_u128()),
        kiln::Val::FuncRef(f) => Value::FuncRef(f.is_some()),
        kiln::Val::ExternRef(None) => Value::ExternRef(None),
        kiln::Val::ExternRef(Some(e)) => Value::ExternRef(Some(
            e.data(store)
                .ok()
                .flatten()
                .and_then(|d| d.downcast_ref::<u32>().copied())
                .expect("every externref the fuzzers make holds a u32 of this store"),
        )),
    }
}

// --- wasmi ------------------------------------------------------------------

pub(crate) fn wasmi_trap(code: wasmi::TrapCode) -> TrapKind {
    use wasmi::TrapCode as T;
    match code {
        T::UnreachableCodeReached => TrapKind::Unreachable,
        T::MemoryOutOfBounds => TrapKind::MemoryOutOfBounds,
        T::TableOutOfBounds => TrapKind::TableOutOfBounds,
        T::IndirectCallToNull => TrapKind::IndirectCallToNull,
        T::IntegerDivisionByZero => TrapKind::IntegerDivisionByZero,
        T::IntegerOverflow => TrapKind::IntegerOverflow,
        T::BadConversionToInteger => TrapKind::BadConversionToInteger,
        T::StackOverflow => TrapKind::StackOverflow,
        T::BadSignature => TrapKind::BadSignature,
        T::OutOfFuel => TrapKind::OutOfFuel,
        // wasmi reports running out of host memory as a trap; for the
        // comparison that is what a stack overflow is: a limit.
        _ => TrapKind::StackOverflow,
    }
}

/// wasmi's outcome. Instantiation-time segment errors are not trap codes in
/// wasmi but errors of their own kinds; they map to the traps the spec
/// (and Kiln) reports for them.
pub(crate) fn wasmi_outcome<T>(r: Result<T, wasmi::Error>) -> Outcome<T> {
    use wasmi::errors::{ErrorKind, InstantiationError, MemoryError, TableError};
    match r {
        Ok(v) => Outcome::Ok(v),
        Err(e) => {
            if let Some(code) = e.as_trap_code() {
                return Outcome::Trap(wasmi_trap(code));
            }
            match e.kind() {
                ErrorKind::Instantiation(InstantiationError::ElementSegmentDoesNotFit {
                    ..
                }) => Outcome::Trap(TrapKind::TableOutOfBounds),
                ErrorKind::Memory(MemoryError::OutOfBoundsAccess) => {
                    Outcome::Trap(TrapKind::MemoryOutOfBounds)
                }
                ErrorKind::Table(
                    TableError::InitOutOfBounds
                    | TableError::SetOutOfBounds
                    | TableError::CopyOutOfBounds
                    | TableError::FillOutOfBounds,
                ) => Outcome::Trap(TrapKind::TableOutOfBounds),
                ErrorKind::Host(_) | ErrorKind::Message(_) => Outcome::Trap(TrapKind::Host),
                _ => Outcome::Error(e.to_string()),
            }
        }
    }
}

pub(crate) fn wasmi_value(v: &wasmi::Val, store: &wasmi::Store<()>) -> Value {
    match v {
        wasmi::Val::I32(x) => Value::I32(*x),
        wasmi::Val::I64(x) => Value::I64(*x),
        wasmi::Val::F32(x) => Value::F32(x.to_bits()),
        wasmi::Val::F64(x) => Value::F64(x.to_bits()),
        wasmi::Val::V128(x) => Value::V128(x.as_u128()),
        wasmi::Val::FuncRef(f) => Value::FuncRef(!f.is_null()),
        wasmi::Val::ExternRef(e) => Value::ExternRef(e.val().map(|e| {
            *e.data(store)
                .downcast_ref::<u32>()
                .expect("every externref the fuzzers make holds a u32")
        })),
    }
}

pub(crate) fn wasmi_ref(r: &wasmi::Ref, store: &wasmi::Store<()>) -> Value {
    match r {
        wasmi::Ref::Func(f) => Value::FuncRef(!f.is_null()),
        wasmi::Ref::Extern(e) => wasmi_value(&wasmi::Val::ExternRef(*e), store),
    }
}

// --- arguments --------------------------------------------------------------

/// An argument of type `ty`, from the fuzzer's bytes. Floats are drawn as
/// raw bits, so NaNs with payloads and signed zeros come up often.
pub(crate) fn arbitrary_arg(
    u: &mut arbitrary::Unstructured<'_>,
    ty: kiln_environ::ValType,
) -> arbitrary::Result<Value> {
    Ok(match ty {
        kiln_environ::ValType::I32 => Value::I32(u.arbitrary()?),
        kiln_environ::ValType::I64 => Value::I64(u.arbitrary()?),
        kiln_environ::ValType::F32 => Value::F32(u.arbitrary()?),
        kiln_environ::ValType::F64 => Value::F64(u.arbitrary()?),
        kiln_environ::ValType::V128 => Value::V128(u.arbitrary()?),
        kiln_environ::ValType::FuncRef => Value::FuncRef(false),
        kiln_environ::ValType::ExternRef => Value::ExternRef(None),
    })
}

/// `v` as a Kiln value; a non-null externref is made in `store`. A non-null
/// funcref has no cross-engine meaning and is never asked for.
pub(crate) fn to_kiln(v: &Value, store: &mut kiln::Store<()>) -> kiln::Val {
    match v {
        Value::I32(x) => kiln::Val::I32(*x),
        Value::I64(x) => kiln::Val::I64(*x),
        Value::F32(x) => kiln::Val::F32(*x),
        Value::F64(x) => kiln::Val::F64(*x),
        Value::V128(x) => kiln::Val::V128((*x).into()),
        Value::FuncRef(_) => kiln::Val::FuncRef(None),
        Value::ExternRef(None) => kiln::Val::ExternRef(None),
        Value::ExternRef(Some(x)) => kiln::Val::ExternRef(Some(
            kiln::ExternRef::new(store, *x).expect("Kiln's externrefs never run out"),
        )),
    }
}

/// `v` as a wasmi value, like [`to_kiln`].
pub(crate) fn to_wasmi(v: &Value, store: &mut wasmi::Store<()>) -> wasmi::Val {
    match v {
        Value::I32(x) => wasmi::Val::I32(*x),
        Value::I64(x) => wasmi::Val::I64(*x),
        Value::F32(x) => wasmi::Val::F32(wasmi::F32::from_bits(*x)),
        Value::F64(x) => wasmi::Val::F64(wasmi::F64::from_bits(*x)),
        Value::V128(x) => wasmi::Val::V128(wasmi::V128::from(*x)),
        Value::FuncRef(_) => wasmi::Val::FuncRef(wasmi::Nullable::Null),
        Value::ExternRef(None) => wasmi::Val::ExternRef(wasmi::Nullable::Null),
        Value::ExternRef(Some(x)) => {
            wasmi::Val::ExternRef(wasmi::Nullable::Val(wasmi::ExternRef::new(store, *x)))
        }
    }
}

/// The zero value of `ty` in wasmi, for result slots.
/// The zero (or null) Kiln value of `ty`.
pub(crate) fn kiln_default(ty: kiln_environ::ValType) -> kiln::Val {
    kiln::Val::default_for_ty(&kiln::ValType::from_wasm(ty)).expect("Kiln types are nullable")
}

pub(crate) fn wasmi_default(ty: kiln_environ::ValType) -> wasmi::Val {
    match ty {
        kiln_environ::ValType::I32 => wasmi::Val::I32(0),
        kiln_environ::ValType::I64 => wasmi::Val::I64(0),
        kiln_environ::ValType::F32 => wasmi::Val::F32(wasmi::F32::from_bits(0)),
        kiln_environ::ValType::F64 => wasmi::Val::F64(wasmi::F64::from_bits(0)),
        kiln_environ::ValType::V128 => wasmi::Val::V128(wasmi::V128::from(0u128)),
        kiln_environ::ValType::FuncRef => wasmi::Val::FuncRef(wasmi::Nullable::Null),
        kiln_environ::ValType::ExternRef => wasmi::Val::ExternRef(wasmi::Nullable::Null),
    }
}
