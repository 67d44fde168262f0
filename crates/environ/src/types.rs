//! WebAssembly types as Kiln sees them.

use std::fmt;

/// A value type.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 128-bit vector.
    V128,
    /// Nullable reference to a function.
    FuncRef,
    /// Nullable reference to a host value.
    ExternRef,
}

impl ValType {
    /// Whether this is a reference type.
    pub fn is_ref(self) -> bool {
        matches!(self, ValType::FuncRef | ValType::ExternRef)
    }

    /// Converts from wasmparser, rejecting what Kiln does not implement.
    pub fn from_wasmparser(ty: wasmparser::ValType) -> crate::WasmResult<ValType> {
        use wasmparser::ValType as V;
        Ok(match ty {
            V::I32 => ValType::I32,
            V::I64 => ValType::I64,
            V::F32 => ValType::F32,
            V::F64 => ValType::F64,
            V::V128 => ValType::V128,
            V::Ref(r) => Self::from_ref_type(r)?,
        })
    }

    /// Converts a wasmparser reference type.
    pub fn from_ref_type(r: wasmparser::RefType) -> crate::WasmResult<ValType> {
        if r == wasmparser::RefType::FUNCREF {
            Ok(ValType::FuncRef)
        } else if r == wasmparser::RefType::EXTERNREF {
            Ok(ValType::ExternRef)
        } else {
            Err(crate::WasmError::Unsupported(format!(
                "reference type {r:?}"
            )))
        }
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::V128 => "v128",
            ValType::FuncRef => "funcref",
            ValType::ExternRef => "externref",
        })
    }
}

/// A function type.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct FuncType {
    params: Box<[ValType]>,
    results: Box<[ValType]>,
}

impl FuncType {
    /// A function type from its parameters and results.
    pub fn new(
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
    ) -> FuncType {
        FuncType {
            params: params.into_iter().collect(),
            results: results.into_iter().collect(),
        }
    }

    /// The parameter types.
    pub fn params(&self) -> &[ValType] {
        &self.params
    }

    /// The result types.
    pub fn results(&self) -> &[ValType] {
        &self.results
    }
}

impl fmt::Display for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(func")?;
        if !self.params.is_empty() {
            write!(f, " (param")?;
            for p in self.params.iter() {
                write!(f, " {p}")?;
            }
            write!(f, ")")?;
        }
        if !self.results.is_empty() {
            write!(f, " (result")?;
            for p in self.results.iter() {
                write!(f, " {p}")?;
            }
            write!(f, ")")?;
        }
        write!(f, ")")
    }
}

/// A table type.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct TableType {
    /// The element type (a reference type).
    pub element: ValType,
    /// Initial number of elements.
    pub minimum: u32,
    /// Maximum number of elements, if bounded.
    pub maximum: Option<u32>,
}

/// A linear memory type.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct MemoryType {
    /// Initial size in pages.
    pub minimum: u64,
    /// Maximum size in pages, if bounded.
    pub maximum: Option<u64>,
    /// Shared between threads.
    pub shared: bool,
    /// Indexed by 64-bit addresses.
    pub memory64: bool,
}

impl MemoryType {
    /// A 32-bit, unshared memory of `minimum` pages, at most `maximum`
    /// (Wasmtime's `MemoryType::new`).
    pub fn new(minimum: u32, maximum: Option<u32>) -> MemoryType {
        MemoryType {
            minimum: u64::from(minimum),
            maximum: maximum.map(u64::from),
            shared: false,
            memory64: false,
        }
    }

    /// The initial size in pages.
    pub fn minimum(&self) -> u64 {
        self.minimum
    }

    /// The maximum size in pages, if bounded.
    pub fn maximum(&self) -> Option<u64> {
        self.maximum
    }

    /// Whether the memory is indexed by 64-bit addresses.
    pub fn is_64(&self) -> bool {
        self.memory64
    }

    /// Whether the memory is shared between threads.
    pub fn is_shared(&self) -> bool {
        self.shared
    }
}

/// A global type.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct GlobalType {
    /// The value type.
    pub ty: ValType,
    /// Whether `global.set` is allowed.
    pub mutable: bool,
}

/// One instruction of a constant expression.
#[derive(Copy, Clone, PartialEq, Debug)]
pub enum ConstOp {
    /// `i32.const`.
    I32Const(i32),
    /// `i64.const`.
    I64Const(i64),
    /// `f32.const`, as bits.
    F32Const(u32),
    /// `f64.const`, as bits.
    F64Const(u64),
    /// `v128.const`.
    V128Const(u128),
    /// `global.get` of an (imported) global.
    GlobalGet(GlobalIndex),
    /// `ref.null`.
    RefNull(ValType),
    /// `ref.func`.
    RefFunc(FuncIndex),
    /// `i32.add` (extended-const).
    I32Add,
    /// `i32.sub` (extended-const).
    I32Sub,
    /// `i32.mul` (extended-const).
    I32Mul,
    /// `i64.add` (extended-const).
    I64Add,
    /// `i64.sub` (extended-const).
    I64Sub,
    /// `i64.mul` (extended-const).
    I64Mul,
}

use crate::{FuncIndex, GlobalIndex};

/// A constant expression: a short stack program evaluated at instantiation.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ConstExpr {
    /// The instructions, in order; the final stack holds one value.
    pub ops: Vec<ConstOp>,
}

impl ConstExpr {
    /// Parses a wasmparser constant expression.
    pub fn from_wasmparser(expr: &wasmparser::ConstExpr<'_>) -> crate::WasmResult<ConstExpr> {
        use wasmparser::Operator as O;
        let mut ops = Vec::new();
        let mut reader = expr.get_operators_reader();
        while !reader.eof() {
            let op = reader.read()?;
            ops.push(match op {
                O::End => break,
                O::I32Const { value } => ConstOp::I32Const(value),
                O::I64Const { value } => ConstOp::I64Const(value),
                O::F32Const { value } => ConstOp::F32Const(value.bits()),
                O::F64Const { value } => ConstOp::F64Const(value.bits()),
                O::V128Const { value } => ConstOp::V128Const(u128::from_le_bytes(*value.bytes())),
                O::GlobalGet { global_index } => {
                    ConstOp::GlobalGet(GlobalIndex::from_u32(global_index))
                }
                O::RefNull { hty } => ConstOp::RefNull(ValType::from_ref_type(
                    wasmparser::RefType::new(true, hty)
                        .ok_or_else(|| crate::WasmError::Unsupported("ref.null type".into()))?,
                )?),
                O::RefFunc { function_index } => {
                    ConstOp::RefFunc(FuncIndex::from_u32(function_index))
                }
                O::I32Add => ConstOp::I32Add,
                O::I32Sub => ConstOp::I32Sub,
                O::I32Mul => ConstOp::I32Mul,
                O::I64Add => ConstOp::I64Add,
                O::I64Sub => ConstOp::I64Sub,
                O::I64Mul => ConstOp::I64Mul,
                other => {
                    return Err(crate::WasmError::Unsupported(format!(
                        "constant expression operator {other:?}"
                    )))
                }
            });
        }
        Ok(ConstExpr { ops })
    }
}
