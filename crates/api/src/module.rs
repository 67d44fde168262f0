//! [`Module`]: compiled code ready to instantiate.

use crate::{
    Engine, Error, ExportType, ExternType, FuncType, GlobalType, ImportType, Result, TableType,
};
use kiln_environ::EntityIndex;
use kiln_runtime::CompiledModule;
use std::sync::Arc;

/// Parses (text or binary), validates and compiles `bytes`.
pub(crate) fn compile(engine: &Engine, wasm: &[u8]) -> Result<kiln_cranelift::CompiledObject> {
    let translation = kiln_environ::translate_module(wasm, engine.inner.config.features)?;
    engine
        .inner
        .compiler
        .compile_module(translation, &engine.features_tag())
        .map_err(|e| match e {
            kiln_cranelift::CompileError::Wasm(w) => Error::new(w),
            other => Error::new(other),
        })
}

/// A compiled WebAssembly module. Cheap to clone; shareable across threads.
#[derive(Clone)]
pub struct Module {
    pub(crate) engine: Engine,
    pub(crate) compiled: Arc<CompiledModule>,
}

impl Module {
    /// Compiles a module from its binary or (with the `wat` feature) text
    /// format.
    pub fn new(engine: &Engine, bytes: impl AsRef<[u8]>) -> Result<Module> {
        let bytes = bytes.as_ref();
        #[cfg(feature = "wat")]
        let bytes = &*wat::parse_bytes(bytes)?;
        Module::from_binary(engine, bytes)
    }

    /// Compiles a module from a file (`.wasm` or `.wat`).
    pub fn from_file(engine: &Engine, path: impl AsRef<std::path::Path>) -> Result<Module> {
        let bytes = std::fs::read(path.as_ref())
            .map_err(|e| Error::msg(format!("reading {}: {e}", path.as_ref().display())))?;
        Module::new(engine, bytes)
    }

    /// Compiles a module from its binary format.
    pub fn from_binary(engine: &Engine, wasm: &[u8]) -> Result<Module> {
        if !engine.is_host_target() {
            return Err(Error::msg(
                "modules compiled for another target cannot be loaded here; \
                 use Engine::precompile_module",
            ));
        }
        if let Some(cache) = &engine.inner.config.cache {
            return Self::from_binary_cached(engine, cache, wasm);
        }
        let compiled = compile(engine, wasm)?;
        let loaded = CompiledModule::new(&compiled.object, compiled.info, &engine.inner.types)?;
        Ok(Module {
            engine: engine.clone(),
            compiled: loaded,
        })
    }

    /// `from_binary` through the engine's cache (see `cache.rs`).
    fn from_binary_cached(engine: &Engine, cache: &crate::Cache, wasm: &[u8]) -> Result<Module> {
        let entry = cache.entry(engine.artifact_header(), wasm);
        if let Some(artifact) = cache.load(&entry) {
            // SAFETY: the entry is one this Kiln wrote into the user's own
            // cache directory (as trusted as the user's files), and its
            // SHA-256 matches, so these are the bytes the compiler
            // produced; `deserialize` checks the header against the engine.
            if let Ok(m) = unsafe { Module::deserialize(engine, &artifact) } {
                return Ok(m);
            }
        }
        let compiled = compile(engine, wasm)?;
        cache.store(&entry, &compiled.object);
        let loaded = CompiledModule::new(&compiled.object, compiled.info, &engine.inner.types)?;
        Ok(Module {
            engine: engine.clone(),
            compiled: loaded,
        })
    }

    /// The compiled artifact: an ELF object that
    /// [`Module::deserialize`] loads without compiling.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        Ok(self.compiled.code().object().to_vec())
    }

    /// Loads a module produced by [`Module::serialize`] or
    /// [`Engine::precompile_module`] from bytes.
    ///
    /// The artifact's version, target and settings are checked, and its
    /// structure is validated (offsets, counts, relocations, the records of
    /// its unwind information), so a foreign or truncated file is an error.
    ///
    /// # Safety
    ///
    /// The bytes must come from a trusted source: their machine code will
    /// run, and a crafted artifact with well-formed metadata can contain any
    /// code at all. The same holds for what its unwind information says
    /// about that code, which unwinding through its frames trusts.
    pub unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<Module> {
        let code = kiln_jit::CodeMemory::new(bytes)?;
        Self::from_code(engine, code)
    }

    /// Like [`Module::deserialize`], but maps the file at `path` instead of
    /// reading it: loading costs a mapping, one protection change and the
    /// reads of the small metadata, whatever the size of the code.
    ///
    /// # Safety
    ///
    /// As for [`Module::deserialize`]; also, the file must not be modified
    /// while the module is loaded.
    pub unsafe fn deserialize_file(
        engine: &Engine,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Module> {
        let code =
            kiln_jit::CodeMemory::from_file(path.as_ref(), &kiln_environ::sections::READ_AT_LOAD)?;
        Self::from_code(engine, code)
    }

    fn from_code(engine: &Engine, code: kiln_jit::CodeMemory) -> Result<Module> {
        if !engine.is_host_target() {
            return Err(Error::msg(
                "an engine for another target cannot load modules",
            ));
        }
        let info = kiln_environ::decode_sections(
            |name| code.section(name),
            engine.artifact_header(),
            engine.inner.config.features,
            code.text().len(),
        )?;
        Ok(Module {
            engine: engine.clone(),
            compiled: CompiledModule::from_code(code, info, &engine.inner.types),
        })
    }

    /// Validates `bytes` without compiling.
    pub fn validate(engine: &Engine, bytes: &[u8]) -> Result<()> {
        kiln_environ::translate_module(bytes, engine.inner.config.features)?;
        Ok(())
    }

    /// The engine this module was compiled with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The module's name from its name section.
    pub fn name(&self) -> Option<&str> {
        self.compiled.module().name.as_deref()
    }

    /// Whether the module has a start function (run at instantiation).
    pub fn has_start(&self) -> bool {
        self.compiled.module().start.is_some()
    }

    /// Whether `a` and `b` are the same compiled module (clones of one
    /// `Module`), not merely equal.
    pub fn same(a: &Module, b: &Module) -> bool {
        Arc::ptr_eq(&a.compiled, &b.compiled)
    }

    /// The compiled ELF object.
    pub fn object(&self) -> &[u8] {
        self.compiled.code().object()
    }

    /// The executable text section, as loaded.
    pub fn text(&self) -> &[u8] {
        self.compiled.code().text()
    }

    pub(crate) fn entity_type(&self, e: EntityIndex) -> ExternType {
        let m = self.compiled.module();
        match e {
            EntityIndex::Function(f) => {
                ExternType::Func(FuncType::from_wasm(m.func_type(f).clone()))
            }
            EntityIndex::Table(t) => ExternType::Table(TableType::from_wasm(m.tables[t])),
            EntityIndex::Memory(i) => ExternType::Memory(m.memories[i]),
            EntityIndex::Global(g) => ExternType::Global(GlobalType::from_wasm(m.globals[g])),
        }
    }

    /// The imports, in order: module name, field name and type of each.
    pub fn imports<'module>(
        &'module self,
    ) -> impl ExactSizeIterator<Item = ImportType<'module>> + 'module {
        self.compiled.module().imports.iter().map(|i| ImportType {
            module: i.module.as_str(),
            name: i.name.as_str(),
            ty: self.entity_type(i.index),
        })
    }

    /// The exports, in order: name and type of each.
    pub fn exports<'module>(
        &'module self,
    ) -> impl ExactSizeIterator<Item = ExportType<'module>> + 'module {
        self.compiled
            .module()
            .exports
            .iter()
            .map(|(name, e)| ExportType {
                name,
                ty: self.entity_type(e),
            })
    }

    /// The type of export `name`, if the module has one.
    pub fn get_export(&self, name: &str) -> Option<ExternType> {
        let e = self.compiled.module().exports.get(name)?;
        Some(self.entity_type(e))
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.compiled.module().name)
            .finish_non_exhaustive()
    }
}
