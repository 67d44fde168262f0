//! Parsing and validating a module into a [`ModuleTranslation`].
//!
//! One pass over the binary with wasmparser's `Parser` and `Validator`:
//! every section is validated as it is read, and every function body is
//! validated to its end before [`translate_module`] returns, so a
//! [`ModuleTranslation`] holds only valid bodies.
//!
//! # Why bodies are validated here, and again while translating
//!
//! The code generator cannot translate an operator it has not seen
//! validated: its own state (the control stack, the value stack) is only
//! consistent for valid code. wasmparser's per-operator check is not the
//! whole of validation, though: some errors are found only by
//! `FuncValidator::finish`, after the last operator (in wasmparser 0.217,
//! operators after the function's final `end` pass `op` and fail only in
//! `finish`). A translator that interleaves validation with translation
//! has therefore already translated those operators when the error comes,
//! and it panicked on them. So validation runs to completion first, here;
//! the translator then validates again as it goes, because it reads
//! operand types from its validator. The second walk costs a fraction of
//! code generation, and `Module::validate` (which never translates) gets
//! the same complete answer as compiling.
//!
//! The parser reads with the same features as the validator, so that
//! encodings a disabled feature gives a meaning (the "memory index
//! follows" bit of a memarg, a memory index after `memory.size`) are
//! malformed when the feature is off, as the spec says.
//!
//! Implementation limits (see `limits.rs`) are checked as each section or
//! body is read.

use crate::limits::{self, check};
use crate::*;
use std::sync::Arc;
use wasmparser::{
    FuncToValidate, FuncValidatorAllocations, FunctionBody, Parser, Payload, TypeRef, Validator,
    ValidatorResources, WasmFeatures,
};

/// A function body awaiting compilation.
pub struct FunctionBodyData<'data> {
    /// The body, a slice of the module's bytes.
    pub body: FunctionBody<'data>,
    /// The validator for this body, for the translator (the body has been
    /// validated completely already; see the module docs).
    pub validator: FuncToValidate<Arc<ValidatorResources>>,
}

/// The result of [`translate_module`]: the module and its function bodies.
pub struct ModuleTranslation<'data> {
    /// Everything but code.
    pub module: Module,
    /// The function bodies, by defined index.
    pub function_bodies: PrimaryMap<DefinedFuncIndex, FunctionBodyData<'data>>,
    /// The module's bytes, for debugging and byte offsets.
    pub wasm: &'data [u8],
    /// The byte offset of the code section, for address maps.
    pub code_section_offset: u64,
}

/// The WebAssembly features Kiln implements by default: WebAssembly 2.0.
pub fn default_features() -> WasmFeatures {
    WasmFeatures::WASM2
}

/// Parses and validates `wasm` with the given features.
pub fn translate_module(wasm: &[u8], features: WasmFeatures) -> WasmResult<ModuleTranslation<'_>> {
    translate(wasm, features, Mode::Compile)
}

/// Reads the declarations of a module that was validated when it was
/// compiled, without validating it again and without its function bodies.
///
/// Only for the skeleton embedded in a compiled artifact, whose integrity
/// the artifact's checksum has established (see `artifact.rs`): a module
/// that never passed validation could carry out-of-range indices.
pub(crate) fn translate_metadata(
    wasm: &[u8],
    features: WasmFeatures,
) -> WasmResult<ModuleTranslation<'_>> {
    translate(wasm, features, Mode::Metadata)
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Mode {
    /// Validate everything, keep the bodies for compilation.
    Compile,
    /// Trust the bytes; declarations only.
    Metadata,
}

fn translate(wasm: &[u8], features: WasmFeatures, mode: Mode) -> WasmResult<ModuleTranslation<'_>> {
    // Reading an artifact's declarations needs no validator (creating one
    // costs allocations a small module's load can feel).
    let mut validator = (mode == Mode::Compile).then(|| Validator::new_with_features(features));
    let mut t = ModuleTranslation {
        module: Module::default(),
        function_bodies: PrimaryMap::new(),
        wasm,
        code_section_offset: 0,
    };
    check("module size in bytes", wasm.len(), limits::MAX_MODULE_SIZE)?;
    let m = &mut t.module;
    let mut allocs = FuncValidatorAllocations::default();
    let mut parser = Parser::new(0);
    parser.set_features(features);
    for payload in parser.parse_all(wasm) {
        let payload = match payload {
            // The skeleton (see `artifact.rs`) has a function section but
            // no code section, which the parser reports once it reaches the
            // end of the module: nothing follows that a skeleton needs.
            Err(e)
                if mode == Mode::Metadata
                    && e.offset() == wasm.len() as u64
                    && e.message()
                        .starts_with("function section has non-zero count") =>
            {
                break
            }
            p => p?,
        };
        if mode == Mode::Metadata {
            if let Payload::CodeSectionEntry(_) = payload {
                continue;
            }
        } else if let Some(wasmparser::ValidPayload::Func(v, body)) = validator
            .as_mut()
            .map(|v| v.payload(&payload))
            .transpose()?
        {
            check(
                "function body size in bytes",
                (body.range().end - body.range().start) as usize,
                limits::MAX_FUNCTION_BODY_SIZE,
            )?;
            let v = FuncToValidate {
                resources: Arc::new(v.resources),
                index: v.index,
                ty: v.ty,
                features: v.features,
            };
            allocs = validate_body(&v, &body, features, allocs)?;
            t.function_bodies
                .push(FunctionBodyData { body, validator: v });
            continue;
        }
        match payload {
            Payload::Version { encoding, .. } if encoding != wasmparser::Encoding::Module => {
                return Err(WasmError::Unsupported("components".into()));
            }
            Payload::TypeSection(s) => {
                for rec in s {
                    for sub in rec?.into_types() {
                        match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => {
                                let params = f
                                    .params()
                                    .iter()
                                    .map(|t| ValType::from_wasmparser(*t))
                                    .collect::<WasmResult<Vec<_>>>()?;
                                let results = f
                                    .results()
                                    .iter()
                                    .map(|t| ValType::from_wasmparser(*t))
                                    .collect::<WasmResult<Vec<_>>>()?;
                                m.types.push(FuncType::new(params, results));
                            }
                            _ => return Err(WasmError::Unsupported("GC types".into())),
                        }
                    }
                }
            }
            Payload::ImportSection(s) => {
                check("import count", s.count() as usize, limits::MAX_IMPORTS)?;
                for imp in s.into_imports() {
                    let imp = imp?;
                    let index = match imp.ty {
                        TypeRef::Func(ty) => {
                            m.num_imported_funcs += 1;
                            EntityIndex::Function(m.functions.push(FunctionInfo {
                                type_index: TypeIndex::from_u32(ty),
                                escapes: true,
                            }))
                        }
                        TypeRef::Table(ty) => {
                            m.num_imported_tables += 1;
                            EntityIndex::Table(m.tables.push(table_type(&ty)?))
                        }
                        TypeRef::Memory(ty) => {
                            m.num_imported_memories += 1;
                            EntityIndex::Memory(m.memories.push(memory_type(&ty)))
                        }
                        TypeRef::Global(ty) => {
                            m.num_imported_globals += 1;
                            EntityIndex::Global(m.globals.push(global_type(&ty)?))
                        }
                        TypeRef::Tag(_) => {
                            return Err(WasmError::Unsupported("exception tags".into()))
                        }
                        TypeRef::FuncExact(_) => {
                            return Err(WasmError::Unsupported("exact function imports".into()))
                        }
                    };
                    m.imports.push(Import {
                        module: imp.module.to_string(),
                        name: imp.name.to_string(),
                        index,
                    });
                }
            }
            Payload::FunctionSection(s) => {
                m.functions.reserve(s.count() as usize);
                for ty in s {
                    m.functions.push(FunctionInfo {
                        type_index: TypeIndex::from_u32(ty?),
                        escapes: false,
                    });
                }
            }
            Payload::TableSection(s) => {
                for table in s {
                    let table = table?;
                    m.tables.push(table_type(&table.ty)?);
                    let init = match table.init {
                        wasmparser::TableInit::RefNull => None,
                        wasmparser::TableInit::Expr(e) => Some(ConstExpr::from_wasmparser(&e)?),
                    };
                    m.table_inits.push(init);
                }
            }
            Payload::MemorySection(s) => {
                for mem in s {
                    m.memories.push(memory_type(&mem?));
                }
            }
            Payload::GlobalSection(s) => {
                for g in s {
                    let g = g?;
                    m.globals.push(global_type(&g.ty)?);
                    m.global_inits
                        .push(ConstExpr::from_wasmparser(&g.init_expr)?);
                }
            }
            Payload::ExportSection(s) => {
                check("export count", s.count() as usize, limits::MAX_EXPORTS)?;
                m.exports.reserve(s.count() as usize);
                for e in s {
                    let e = e?;
                    let index = match e.kind {
                        wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact => {
                            EntityIndex::Function(FuncIndex::from_u32(e.index))
                        }
                        wasmparser::ExternalKind::Table => {
                            EntityIndex::Table(TableIndex::from_u32(e.index))
                        }
                        wasmparser::ExternalKind::Memory => {
                            EntityIndex::Memory(MemoryIndex::from_u32(e.index))
                        }
                        wasmparser::ExternalKind::Global => {
                            EntityIndex::Global(GlobalIndex::from_u32(e.index))
                        }
                        wasmparser::ExternalKind::Tag => {
                            return Err(WasmError::Unsupported("exception tags".into()))
                        }
                    };
                    m.exports.push(e.name, index);
                }
            }
            Payload::StartSection { func, .. } => m.start = Some(FuncIndex::from_u32(func)),
            Payload::ElementSection(s) => {
                for e in s {
                    let e = e?;
                    let (ty, items) = match e.items {
                        wasmparser::ElementItems::Functions(f) => (
                            ValType::FuncRef,
                            ElemItems::Functions(
                                f.into_iter()
                                    .map(|i| i.map(FuncIndex::from_u32))
                                    .collect::<Result<_, _>>()?,
                            ),
                        ),
                        wasmparser::ElementItems::Expressions(ty, exprs) => (
                            ValType::from_ref_type(ty)?,
                            ElemItems::Expressions(
                                exprs
                                    .into_iter()
                                    .map(|e| ConstExpr::from_wasmparser(&e?))
                                    .collect::<WasmResult<_>>()?,
                            ),
                        ),
                    };
                    let kind = match e.kind {
                        wasmparser::ElementKind::Passive => ElemKind::Passive,
                        wasmparser::ElementKind::Declared => ElemKind::Declared,
                        wasmparser::ElementKind::Active {
                            table_index,
                            offset_expr,
                        } => ElemKind::Active {
                            table: TableIndex::from_u32(table_index.unwrap_or(0)),
                            offset: ConstExpr::from_wasmparser(&offset_expr)?,
                        },
                    };
                    m.elems.push(ElemSegment { kind, ty, items });
                }
            }
            Payload::DataSection(s) => {
                for d in s {
                    let d = d?;
                    let kind = match d.kind {
                        wasmparser::DataKind::Passive => DataKind::Passive,
                        wasmparser::DataKind::Active {
                            memory_index,
                            offset_expr,
                        } => DataKind::Active {
                            memory: MemoryIndex::from_u32(memory_index),
                            offset: ConstExpr::from_wasmparser(&offset_expr)?,
                        },
                    };
                    m.data.push(DataSegment {
                        kind,
                        data: Arc::from(d.data),
                    });
                }
            }
            Payload::CodeSectionStart {
                unchecked_range, ..
            } => {
                t.code_section_offset = unchecked_range.start;
            }
            Payload::CustomSection(c) => {
                if let wasmparser::KnownCustom::Name(names) = c.as_known() {
                    // A malformed name section is ignored, as the spec asks.
                    let _ = read_names(m, wasm, names);
                }
            }
            _ => {}
        }
    }
    compute_escapes(&mut t.module);
    Ok(t)
}

/// Validates one function body to its end (`FuncValidator::finish`
/// included), on a validator of its own, so that the translator's
/// validator `v` starts afresh; returns the allocations for the next body.
///
/// The body is read with the validator's `features` (a reader defaults to
/// all of them), which makes the encodings of disabled features malformed.
/// The `br_table` limit, which wasmparser does not check, is checked on the
/// same walk.
fn validate_body(
    v: &FuncToValidate<Arc<ValidatorResources>>,
    body: &FunctionBody<'_>,
    features: WasmFeatures,
    allocs: FuncValidatorAllocations,
) -> WasmResult<FuncValidatorAllocations> {
    let mut fv = FuncToValidate {
        resources: Arc::clone(&v.resources),
        index: v.index,
        ty: v.ty,
        features: v.features,
    }
    .into_validator(allocs);
    let mut reader = body.get_binary_reader();
    reader.set_features(features);
    fv.read_locals(&mut reader)?;
    let mut reader = wasmparser::OperatorsReader::new(reader);
    while !reader.eof() {
        let offset = reader.original_position();
        let op = reader.read()?;
        if let wasmparser::Operator::BrTable { targets } = &op {
            check(
                "br_table target count",
                targets.len() as usize,
                limits::MAX_BR_TABLE_SIZE,
            )?;
        }
        fv.op(offset, &op)?;
    }
    reader.finish()?;
    Ok(fv.into_allocations())
}

/// Reads the module name and locates the function names, which
/// [`NameMap`] parses on first use.
fn read_names(
    m: &mut Module,
    wasm: &[u8],
    names: wasmparser::NameSectionReader<'_>,
) -> WasmResult<()> {
    for name in names {
        match name? {
            wasmparser::Name::Module { name, .. } => m.name = Some(name.to_string()),
            wasmparser::Name::Function(map) => {
                let range = wasmparser::SectionLimited::from(map.names).range();
                if let Some(raw) = wasm.get(range.start as usize..range.end as usize) {
                    m.func_names = NameMap::from_subsection(raw, m.functions.len());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Marks escaping functions and assigns their `VMFuncRef` slots.
///
/// A function escapes when the host or another module can get hold of it
/// as a value: exported, the start function (called from the host), named
/// in an element segment, or named by `ref.func` in a constant expression.
/// Validation guarantees that every `ref.func` inside a function body names
/// a function declared in one of those places, so bodies need no scan.
fn compute_escapes(m: &mut Module) {
    let mark = |m: &mut Module, f: FuncIndex| {
        if let Some(info) = m.functions.get_mut(f) {
            info.escapes = true;
        }
    };
    let exported: Vec<FuncIndex> = m
        .exports
        .iter()
        .filter_map(|(_, e)| match e {
            EntityIndex::Function(f) => Some(f),
            _ => None,
        })
        .collect();
    for f in exported {
        mark(m, f);
    }
    if let Some(f) = m.start {
        mark(m, f);
    }
    let mut from_exprs = Vec::new();
    for (_, seg) in m.elems.iter() {
        match &seg.items {
            ElemItems::Functions(fs) => from_exprs.extend(fs.iter().copied()),
            ElemItems::Expressions(es) => {
                for e in es.iter() {
                    from_exprs.extend(e.ops.iter().filter_map(|op| match op {
                        ConstOp::RefFunc(f) => Some(*f),
                        _ => None,
                    }));
                }
            }
        }
    }
    for e in m
        .global_inits
        .values()
        .chain(m.table_inits.values().flatten())
    {
        from_exprs.extend(e.ops.iter().filter_map(|op| match op {
            ConstOp::RefFunc(f) => Some(*f),
            _ => None,
        }));
    }
    for f in from_exprs {
        mark(m, f);
    }
    let mut next = 0u32;
    let mut slots = PrimaryMap::with_capacity(m.num_defined_funcs());
    for f in m.functions.values().skip(m.num_imported_funcs) {
        slots.push(f.escapes.then(|| {
            next += 1;
            next - 1
        }));
    }
    m.func_ref_slots = slots;
    m.num_escaping_funcs = next;
}

fn table_type(ty: &wasmparser::TableType) -> WasmResult<TableType> {
    if ty.table64 {
        return Err(WasmError::Unsupported("64-bit tables".into()));
    }
    // wasmparser stopped enforcing the table-size limit of the JS API;
    // Kiln keeps it, so a module it accepts can be instantiated.
    if ty.initial > limits::MAX_TABLE_SIZE {
        return Err(WasmError::InvalidWebAssembly {
            message: format!(
                "table size must be at most {} entries",
                limits::MAX_TABLE_SIZE
            ),
            offset: 0,
        });
    }
    Ok(TableType {
        element: ValType::from_ref_type(ty.element_type)?,
        minimum: u32::try_from(ty.initial)
            .map_err(|_| WasmError::ImplLimitExceeded("table minimum".into()))?,
        maximum: ty.maximum.map(|m| u32::try_from(m).unwrap_or(u32::MAX)),
    })
}

fn memory_type(ty: &wasmparser::MemoryType) -> MemoryType {
    MemoryType {
        minimum: ty.initial,
        maximum: ty.maximum,
        shared: ty.shared,
        memory64: ty.memory64,
    }
}

fn global_type(ty: &wasmparser::GlobalType) -> WasmResult<GlobalType> {
    Ok(GlobalType {
        ty: ValType::from_wasmparser(ty.content_type)?,
        mutable: ty.mutable,
    })
}
