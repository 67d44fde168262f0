//! The type objects of the embedder API, in Wasmtime 48's shape:
//! [`ValType`] with [`RefType`] and [`HeapType`], [`FuncType`] (made with
//! an [`Engine`]), [`TableType`], [`GlobalType`] with [`Mutability`],
//! [`MemoryType`], and [`ExternType`] with [`ImportType`] and
//! [`ExportType`] for a module's imports and exports.
//!
//! # Why two sets of types
//!
//! `kiln-environ` has its own, smaller type enums: they describe what the
//! compiler and runtime handle (`funcref` and `externref` are two cases of
//! one flat enum there). The types here are the public face and convert
//! to and from those at the API boundary ([`ValType::to_wasm`],
//! [`ValType::from_wasm`]); everything below the `kiln` crate keeps using
//! the environ types. The conversion is total in both directions because
//! Kiln supports only what both can say: nullable references to the two
//! abstract heap types `func` and `extern`. Wasmtime's other heap types
//! (typed function references, GC types, exceptions) belong to proposals
//! Kiln does not implement yet; adding them means adding them to
//! `kiln-environ` first.

use crate::Engine;
use std::fmt;

pub use kiln_environ::MemoryType;

/// The type of a WebAssembly value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ValType {
    /// A 32-bit integer.
    I32,
    /// A 64-bit integer.
    I64,
    /// A 32-bit float.
    F32,
    /// A 64-bit float.
    F64,
    /// A 128-bit vector.
    V128,
    /// A reference.
    Ref(RefType),
}

impl ValType {
    /// The `externref` type, `(ref null extern)`.
    pub const EXTERNREF: ValType = ValType::Ref(RefType::EXTERNREF);
    /// The `funcref` type, `(ref null func)`.
    pub const FUNCREF: ValType = ValType::Ref(RefType::FUNCREF);

    /// Whether this is `i32`, `i64`, `f32` or `f64`.
    pub fn is_num(&self) -> bool {
        matches!(
            self,
            ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64
        )
    }

    /// Whether this is `i32`.
    pub fn is_i32(&self) -> bool {
        matches!(self, ValType::I32)
    }

    /// Whether this is `i64`.
    pub fn is_i64(&self) -> bool {
        matches!(self, ValType::I64)
    }

    /// Whether this is `f32`.
    pub fn is_f32(&self) -> bool {
        matches!(self, ValType::F32)
    }

    /// Whether this is `f64`.
    pub fn is_f64(&self) -> bool {
        matches!(self, ValType::F64)
    }

    /// Whether this is `v128`.
    pub fn is_v128(&self) -> bool {
        matches!(self, ValType::V128)
    }

    /// Whether this is a reference type.
    pub fn is_ref(&self) -> bool {
        matches!(self, ValType::Ref(_))
    }

    /// Whether this is `funcref`.
    pub fn is_funcref(&self) -> bool {
        matches!(self, ValType::Ref(r) if r.heap_type == HeapType::Func)
    }

    /// Whether this is `externref`.
    pub fn is_externref(&self) -> bool {
        matches!(self, ValType::Ref(r) if r.heap_type == HeapType::Extern)
    }

    /// The reference type, if this is one.
    pub fn as_ref(&self) -> Option<&RefType> {
        match self {
            ValType::Ref(r) => Some(r),
            _ => None,
        }
    }

    /// The reference type.
    ///
    /// # Panics
    ///
    /// If this is not a reference type.
    pub fn unwrap_ref(&self) -> &RefType {
        self.as_ref()
            .unwrap_or_else(|| panic!("expected a reference type, found {self}"))
    }

    /// Whether a value of this type is also of type `other` (subtyping;
    /// with Kiln's types, exactly equality).
    pub fn matches(&self, other: &ValType) -> bool {
        self == other
    }

    /// Whether `a` and `b` are the same type.
    #[allow(
        clippy::should_implement_trait,
        reason = "Wasmtime's name; `PartialEq` is implemented too"
    )]
    pub fn eq(a: &ValType, b: &ValType) -> bool {
        a == b
    }

    /// The compiler's and runtime's view of this type.
    pub fn to_wasm(&self) -> kiln_environ::ValType {
        match self {
            ValType::I32 => kiln_environ::ValType::I32,
            ValType::I64 => kiln_environ::ValType::I64,
            ValType::F32 => kiln_environ::ValType::F32,
            ValType::F64 => kiln_environ::ValType::F64,
            ValType::V128 => kiln_environ::ValType::V128,
            ValType::Ref(r) => r.to_wasm(),
        }
    }

    /// The public view of the compiler's and runtime's type.
    pub fn from_wasm(ty: kiln_environ::ValType) -> ValType {
        match ty {
            kiln_environ::ValType::I32 => ValType::I32,
            kiln_environ::ValType::I64 => ValType::I64,
            kiln_environ::ValType::F32 => ValType::F32,
            kiln_environ::ValType::F64 => ValType::F64,
            kiln_environ::ValType::V128 => ValType::V128,
            kiln_environ::ValType::FuncRef => ValType::FUNCREF,
            kiln_environ::ValType::ExternRef => ValType::EXTERNREF,
        }
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValType::I32 => f.write_str("i32"),
            ValType::I64 => f.write_str("i64"),
            ValType::F32 => f.write_str("f32"),
            ValType::F64 => f.write_str("f64"),
            ValType::V128 => f.write_str("v128"),
            ValType::Ref(r) => r.fmt(f),
        }
    }
}

impl From<RefType> for ValType {
    fn from(r: RefType) -> ValType {
        ValType::Ref(r)
    }
}

/// A reference type: a heap type and whether null is a value of it.
///
/// Every reference type Kiln supports is nullable (non-nullable
/// references come with the function-references proposal), so there is
/// no constructor taking a nullability; [`RefType::is_nullable`] is always
/// true.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RefType {
    heap_type: HeapType,
}

impl RefType {
    /// `(ref null extern)`.
    pub const EXTERNREF: RefType = RefType {
        heap_type: HeapType::Extern,
    };
    /// `(ref null func)`.
    pub const FUNCREF: RefType = RefType {
        heap_type: HeapType::Func,
    };

    /// Whether null is a value of this type (always, in Kiln).
    pub fn is_nullable(&self) -> bool {
        true
    }

    /// The heap type referred to.
    pub fn heap_type(&self) -> &HeapType {
        &self.heap_type
    }

    /// Whether a reference of this type is also of type `other`.
    pub fn matches(&self, other: &RefType) -> bool {
        self == other
    }

    /// Whether `a` and `b` are the same type.
    #[allow(
        clippy::should_implement_trait,
        reason = "Wasmtime's name; `PartialEq` is implemented too"
    )]
    pub fn eq(a: &RefType, b: &RefType) -> bool {
        a == b
    }

    fn to_wasm(&self) -> kiln_environ::ValType {
        match self.heap_type {
            HeapType::Func => kiln_environ::ValType::FuncRef,
            HeapType::Extern => kiln_environ::ValType::ExternRef,
        }
    }
}

impl fmt::Display for RefType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.heap_type {
            HeapType::Func => f.write_str("funcref"),
            HeapType::Extern => f.write_str("externref"),
        }
    }
}

/// What a reference points at: the abstract heap types Kiln supports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeapType {
    /// Host values (`extern`).
    Extern,
    /// Functions of any type (`func`).
    Func,
}

impl fmt::Display for HeapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapType::Extern => f.write_str("extern"),
            HeapType::Func => f.write_str("func"),
        }
    }
}

/// The type of a function: its parameters and results.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FuncType {
    pub(crate) inner: kiln_environ::FuncType,
}

impl FuncType {
    /// A function type for use with `engine` (as in Wasmtime, where types
    /// belong to an engine). The type is registered with the engine's
    /// signature registry, so functions made with it later need no new
    /// registration.
    pub fn new(
        engine: &Engine,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
    ) -> FuncType {
        let inner = kiln_environ::FuncType::new(
            params.into_iter().map(|t| t.to_wasm()),
            results.into_iter().map(|t| t.to_wasm()),
        );
        engine.inner.types.register(&inner);
        FuncType { inner }
    }

    pub(crate) fn from_wasm(inner: kiln_environ::FuncType) -> FuncType {
        FuncType { inner }
    }

    /// The parameter types, in order.
    pub fn params(&self) -> impl ExactSizeIterator<Item = ValType> + '_ {
        self.inner.params().iter().map(|t| ValType::from_wasm(*t))
    }

    /// The result types, in order.
    pub fn results(&self) -> impl ExactSizeIterator<Item = ValType> + '_ {
        self.inner.results().iter().map(|t| ValType::from_wasm(*t))
    }

    /// Parameter `i`, if there is one.
    pub fn param(&self, i: usize) -> Option<ValType> {
        self.inner.params().get(i).map(|t| ValType::from_wasm(*t))
    }

    /// Result `i`, if there is one.
    pub fn result(&self, i: usize) -> Option<ValType> {
        self.inner.results().get(i).map(|t| ValType::from_wasm(*t))
    }

    /// Whether a function of this type may be used where `other` is
    /// expected (with Kiln's types, exactly equality).
    pub fn matches(&self, other: &FuncType) -> bool {
        self == other
    }

    /// Whether `a` and `b` are the same type.
    #[allow(
        clippy::should_implement_trait,
        reason = "Wasmtime's name; `PartialEq` is implemented too"
    )]
    pub fn eq(a: &FuncType, b: &FuncType) -> bool {
        a == b
    }

    /// The compiler's and runtime's view of this type.
    pub fn to_wasm(&self) -> &kiln_environ::FuncType {
        &self.inner
    }
}

impl fmt::Display for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// The type of a table: its element type and limits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TableType {
    pub(crate) inner: kiln_environ::TableType,
}

impl TableType {
    /// A table of `element` references, `min` elements initially and at
    /// most `max`.
    pub fn new(element: RefType, min: u32, max: Option<u32>) -> TableType {
        TableType {
            inner: kiln_environ::TableType {
                element: element.to_wasm(),
                minimum: min,
                maximum: max,
            },
        }
    }

    pub(crate) fn from_wasm(inner: kiln_environ::TableType) -> TableType {
        TableType { inner }
    }

    /// The element type.
    pub fn element(&self) -> &RefType {
        match self.inner.element {
            kiln_environ::ValType::ExternRef => &RefType::EXTERNREF,
            // Tables hold references only; environ validates that.
            _ => &RefType::FUNCREF,
        }
    }

    /// The initial (or, for a live table, current) number of elements.
    pub fn minimum(&self) -> u64 {
        u64::from(self.inner.minimum)
    }

    /// The maximum number of elements, if bounded.
    pub fn maximum(&self) -> Option<u64> {
        self.inner.maximum.map(u64::from)
    }

    /// The compiler's and runtime's view of this type.
    pub fn to_wasm(&self) -> &kiln_environ::TableType {
        &self.inner
    }
}

/// Whether a global can be changed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Mutability {
    /// `global.set` is not allowed.
    Const,
    /// `global.set` is allowed.
    Var,
}

impl Mutability {
    /// Whether this is [`Mutability::Const`].
    pub fn is_const(&self) -> bool {
        *self == Mutability::Const
    }

    /// Whether this is [`Mutability::Var`].
    pub fn is_var(&self) -> bool {
        *self == Mutability::Var
    }
}

/// The type of a global: its content type and mutability.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GlobalType {
    pub(crate) inner: kiln_environ::GlobalType,
    content: ValType,
}

impl GlobalType {
    /// A global holding values of type `content`.
    pub fn new(content: ValType, mutability: Mutability) -> GlobalType {
        GlobalType {
            inner: kiln_environ::GlobalType {
                ty: content.to_wasm(),
                mutable: mutability.is_var(),
            },
            content,
        }
    }

    pub(crate) fn from_wasm(inner: kiln_environ::GlobalType) -> GlobalType {
        GlobalType {
            content: ValType::from_wasm(inner.ty),
            inner,
        }
    }

    /// The type of the value held.
    pub fn content(&self) -> &ValType {
        &self.content
    }

    /// Whether the global can be changed.
    pub fn mutability(&self) -> Mutability {
        if self.inner.mutable {
            Mutability::Var
        } else {
            Mutability::Const
        }
    }

    /// The compiler's and runtime's view of this type.
    pub fn to_wasm(&self) -> &kiln_environ::GlobalType {
        &self.inner
    }
}

/// The type of an import or export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternType {
    /// A function.
    Func(FuncType),
    /// A table.
    Table(TableType),
    /// A memory.
    Memory(MemoryType),
    /// A global.
    Global(GlobalType),
}

impl ExternType {
    /// The function type, if this is one.
    pub fn func(&self) -> Option<&FuncType> {
        match self {
            ExternType::Func(t) => Some(t),
            _ => None,
        }
    }

    /// The table type, if this is one.
    pub fn table(&self) -> Option<&TableType> {
        match self {
            ExternType::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The memory type, if this is one.
    pub fn memory(&self) -> Option<&MemoryType> {
        match self {
            ExternType::Memory(t) => Some(t),
            _ => None,
        }
    }

    /// The global type, if this is one.
    pub fn global(&self) -> Option<&GlobalType> {
        match self {
            ExternType::Global(t) => Some(t),
            _ => None,
        }
    }

    /// The function type.
    ///
    /// # Panics
    ///
    /// If this is not a function type.
    pub fn unwrap_func(&self) -> &FuncType {
        self.func().unwrap_or_else(|| self.wrong("function"))
    }

    /// The table type.
    ///
    /// # Panics
    ///
    /// If this is not a table type.
    pub fn unwrap_table(&self) -> &TableType {
        self.table().unwrap_or_else(|| self.wrong("table"))
    }

    /// The memory type.
    ///
    /// # Panics
    ///
    /// If this is not a memory type.
    pub fn unwrap_memory(&self) -> &MemoryType {
        self.memory().unwrap_or_else(|| self.wrong("memory"))
    }

    /// The global type.
    ///
    /// # Panics
    ///
    /// If this is not a global type.
    pub fn unwrap_global(&self) -> &GlobalType {
        self.global().unwrap_or_else(|| self.wrong("global"))
    }

    #[cold]
    fn wrong(&self, expected: &str) -> ! {
        panic!("expected a {expected} type, found a {} type", self.kind())
    }

    /// The kind, in words.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ExternType::Func(_) => "function",
            ExternType::Table(_) => "table",
            ExternType::Memory(_) => "memory",
            ExternType::Global(_) => "global",
        }
    }
}

impl From<FuncType> for ExternType {
    fn from(t: FuncType) -> ExternType {
        ExternType::Func(t)
    }
}
impl From<TableType> for ExternType {
    fn from(t: TableType) -> ExternType {
        ExternType::Table(t)
    }
}
impl From<MemoryType> for ExternType {
    fn from(t: MemoryType) -> ExternType {
        ExternType::Memory(t)
    }
}
impl From<GlobalType> for ExternType {
    fn from(t: GlobalType) -> ExternType {
        ExternType::Global(t)
    }
}

/// One import of a module: where it comes from and its type.
#[derive(Clone, Debug)]
pub struct ImportType<'module> {
    pub(crate) module: &'module str,
    pub(crate) name: &'module str,
    pub(crate) ty: ExternType,
}

impl<'module> ImportType<'module> {
    /// The module name the import is taken from.
    pub fn module(&self) -> &'module str {
        self.module
    }

    /// The field name within that module.
    pub fn name(&self) -> &'module str {
        self.name
    }

    /// The expected type.
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}

/// One export of a module: its name and type.
#[derive(Clone, Debug)]
pub struct ExportType<'module> {
    pub(crate) name: &'module str,
    pub(crate) ty: ExternType,
}

impl<'module> ExportType<'module> {
    /// The export's name.
    pub fn name(&self) -> &'module str {
        self.name
    }

    /// The export's type.
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_types_convert_both_ways() {
        for t in [
            ValType::I32,
            ValType::I64,
            ValType::F32,
            ValType::F64,
            ValType::V128,
            ValType::FUNCREF,
            ValType::EXTERNREF,
        ] {
            assert_eq!(ValType::from_wasm(t.to_wasm()), t);
            assert_eq!(t.to_wasm().to_string(), t.to_string());
        }
        assert!(ValType::FUNCREF.is_funcref() && !ValType::FUNCREF.is_externref());
        assert_eq!(
            ValType::EXTERNREF.unwrap_ref().heap_type(),
            &HeapType::Extern
        );
    }

    #[test]
    fn composite_types_keep_their_parts() {
        let engine = Engine::default();
        let f = FuncType::new(&engine, [ValType::I32, ValType::FUNCREF], [ValType::F64]);
        assert_eq!(
            f.params().collect::<Vec<_>>(),
            [ValType::I32, ValType::FUNCREF]
        );
        assert_eq!(f.results().len(), 1);
        assert_eq!(f.param(1), Some(ValType::FUNCREF));
        assert_eq!(f.result(1), None);
        assert_eq!(f.to_string(), "(func (param i32 funcref) (result f64))");
        let t = TableType::new(RefType::EXTERNREF, 2, Some(9));
        assert_eq!(
            (t.element(), t.minimum(), t.maximum()),
            (&RefType::EXTERNREF, 2, Some(9))
        );
        let g = GlobalType::new(ValType::I64, Mutability::Var);
        assert_eq!(
            (g.content(), g.mutability()),
            (&ValType::I64, Mutability::Var)
        );
        assert!(GlobalType::new(ValType::V128, Mutability::Const)
            .mutability()
            .is_const());
    }
}
