//! [`Instance`]: a module instantiated in a store.

use crate::format_err;
use crate::func::enter_wasm;
use crate::func::HostFunc;
use crate::store::StoreInner;
use crate::{
    AsContext, AsContextMut, Engine, Error, Extern, ExternType, Func, Global, Memory, Module,
    Result, StoreContextMut, Table, TypedFunc, WasmParams, WasmResults,
};
use kiln_environ::{EntityIndex, MemoryType, TableType};
use kiln_runtime::{
    Imports, InstanceTemplate, InstantiationError, VMArrayCallFunction, VMContext, VMFuncRef,
    VMFunctionImport,
};
use std::sync::Arc;

pub(crate) struct InstanceData {
    pub(crate) rt: usize,
    pub(crate) vmctx: *mut VMContext,
    pub(crate) module: Module,
}

// SAFETY: `vmctx` is the context of an instance owned by the same store;
// it is only compared or used with `&mut` access to that store.
unsafe impl Send for InstanceData {}

/// An instance of a [`Module`] in a store.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub(crate) store: u64,
    pub(crate) index: usize,
}

fn limits_ok(
    actual_min: u64,
    actual_max: Option<u64>,
    expected_min: u64,
    expected_max: Option<u64>,
) -> bool {
    actual_min >= expected_min
        && match expected_max {
            None => true,
            Some(e) => actual_max.is_some_and(|a| a <= e),
        }
}

/// Checks an import against what the module expects (the spec's import
/// matching rules).
pub(crate) fn check_import(actual: &ExternType, expected: &ExternType) -> Result<(), String> {
    match (actual, expected) {
        (ExternType::Func(a), ExternType::Func(e)) if a == e => Ok(()),
        (ExternType::Func(a), ExternType::Func(e)) => Err(format!(
            "function types incompatible: expected {e}, found {a}"
        )),
        (ExternType::Global(a), ExternType::Global(e)) if a == e => Ok(()),
        (ExternType::Global(a), ExternType::Global(e)) => Err(format!(
            "global types incompatible: expected {}{}, found {}{}",
            if e.inner.mutable { "mut " } else { "" },
            e.content(),
            if a.inner.mutable { "mut " } else { "" },
            a.content()
        )),
        (ExternType::Table(a), ExternType::Table(e)) => {
            let (
                e,
                TableType {
                    element,
                    minimum,
                    maximum,
                },
            ) = (&e.inner, a.inner);
            if element != e.element {
                return Err(format!(
                    "table types incompatible: expected {} table, found {element}",
                    e.element
                ));
            }
            if !limits_ok(
                u64::from(minimum),
                maximum.map(u64::from),
                u64::from(e.minimum),
                e.maximum.map(u64::from),
            ) {
                return Err("incompatible table limits".into());
            }
            Ok(())
        }
        (ExternType::Memory(a), ExternType::Memory(e)) => {
            let MemoryType {
                minimum,
                maximum,
                shared,
                memory64,
            } = *a;
            if shared != e.shared || memory64 != e.memory64 {
                return Err("memory types incompatible".into());
            }
            if !limits_ok(minimum, maximum, e.minimum, e.maximum) {
                return Err("incompatible memory limits".into());
            }
            Ok(())
        }
        (a, e) => Err(format!("expected {}, found {}", e.kind(), a.kind())),
    }
}

impl Instance {
    /// Instantiates `module` with `imports`, given in the module's import
    /// order, and runs its start function.
    pub fn new(
        mut store: impl AsContextMut,
        module: &Module,
        imports: &[Extern],
    ) -> Result<Instance> {
        let s = store.as_context_mut().0;
        let m = module.compiled.module();
        if imports.len() != m.imports.len() {
            return Err(Error::msg(format!(
                "expected {} imports, got {}",
                m.imports.len(),
                imports.len()
            )));
        }
        // Nothing resolved ahead: every import is checked and written at
        // this one instantiation.
        let shared = Arc::new(PreShared::new(module, &vec![None; m.num_imported_funcs]));
        let imports: Vec<Option<Extern>> = imports.iter().cloned().map(Some).collect();
        instantiate(s, module, &shared, &imports)
    }

    pub(crate) fn data<'a, T>(&self, s: &'a StoreInner<T>) -> &'a InstanceData {
        assert_eq!(self.store, s.id, "instance used with the wrong store");
        &s.instances[self.index]
    }

    /// The module this is an instance of.
    pub fn module<'a, T: 'a>(&self, store: impl Into<crate::StoreRef<'a, T>>) -> &'a Module {
        &self.data(store.into().0).module
    }

    /// The export called `name`.
    pub fn get_export(&self, mut store: impl AsContextMut, name: &str) -> Option<Extern> {
        let s = store.as_context_mut().0;
        let d = self.data(s);
        let module = d.module.clone();
        let e = module.compiled.module().export(name)?;
        let rt_index = d.rt;
        let inst = &s.opaque.instances[rt_index];
        Some(match e {
            EntityIndex::Function(f) => {
                let fr = inst.func_ref(f);
                let ty = module.compiled.module().func_type(f).clone();
                Extern::Func(s.push_func(fr, ty))
            }
            EntityIndex::Memory(m) => Extern::Memory(Memory {
                store: s.id,
                ptr: inst.memory(m) as usize,
            }),
            EntityIndex::Table(t) => Extern::Table(Table {
                store: s.id,
                ptr: inst.table(t) as usize,
            }),
            EntityIndex::Global(g) => Extern::Global(Global {
                store: s.id,
                def: inst.global(g) as usize,
                ty: module.compiled.module().globals[g],
            }),
        })
    }

    /// Every export, in order.
    pub fn exports<'a, T: 'a>(
        &'a self,
        store: impl Into<StoreContextMut<'a, T>>,
    ) -> impl ExactSizeIterator<Item = Export<'a>> + 'a {
        let s: &'a mut StoreInner<T> = store.into().0;
        let module = self.data(s).module.clone();
        let mut items = Vec::with_capacity(module.compiled.module().exports.len());
        for (name, _) in module.compiled.module().exports.iter() {
            items.push(
                self.get_export(StoreContextMut(&mut *s), name)
                    .expect("an export of the instance's own module"),
            );
        }
        // The names live in the module, which the store keeps for 'a.
        let s: &'a StoreInner<T> = s;
        let names = self.data(s).module.compiled.module().exports.iter();
        names
            .zip(items)
            .map(|((name, _), definition)| Export { name, definition })
    }

    /// The exported function `name`.
    pub fn get_func(&self, store: impl AsContextMut, name: &str) -> Option<Func> {
        self.get_export(store, name)?.into_func()
    }

    /// The exported function `name`, typed.
    pub fn get_typed_func<P: WasmParams, R: WasmResults>(
        &self,
        mut store: impl AsContextMut,
        name: &str,
    ) -> Result<TypedFunc<P, R>> {
        let f = self
            .get_func(&mut store, name)
            .ok_or_else(|| format_err!("failed to find function export `{name}`"))?;
        f.typed(&store)
    }

    /// The exported memory `name`.
    pub fn get_memory(&self, store: impl AsContextMut, name: &str) -> Option<Memory> {
        self.get_export(store, name)?.into_memory()
    }

    /// The exported table `name`.
    pub fn get_table(&self, store: impl AsContextMut, name: &str) -> Option<Table> {
        self.get_export(store, name)?.into_table()
    }

    /// The exported global `name`.
    pub fn get_global(&self, store: impl AsContextMut, name: &str) -> Option<Global> {
        self.get_export(store, name)?.into_global()
    }
}

/// What an [`InstancePre`](crate::InstancePre) (or one `Instance::new`)
/// computed once: the runtime's context template, with the imported host
/// functions it points at and the funcref copies it made for them. Every
/// store that instantiates from it keeps it alive.
pub(crate) struct PreShared {
    pub(crate) template: InstanceTemplate,
    /// The host functions whose contexts and funcrefs the template holds.
    _host_funcs: Vec<Arc<HostFunc>>,
    /// Copies of host functions' funcrefs with the module's wasm-to-native
    /// trampoline as `wasm_call`, for imports that escape (see
    /// `kiln_runtime::VMFuncRef`: a shared funcref is never written).
    _func_ref_copies: Vec<FuncRefCopy>,
}

/// A funcref copy owned by a [`PreShared`].
struct FuncRefCopy(#[allow(dead_code, reason = "owns the copy Wasm points at")] Box<VMFuncRef>);

// SAFETY: the copy's pointers name code (kept alive by the module, which
// every instantiating store keeps) and a host function context (kept alive
// by `PreShared::_host_funcs`); it is never written after creation.
unsafe impl Send for FuncRefCopy {}
// SAFETY: see `Send`: shared access only reads it.
unsafe impl Sync for FuncRefCopy {}

impl PreShared {
    /// The template of `module`, with the host functions of `host` (by
    /// import index, `None` for an import given at each instantiation)
    /// resolved into it. Their types were checked by the caller.
    pub(crate) fn new(module: &Module, host: &[Option<Arc<HostFunc>>]) -> PreShared {
        let m = module.compiled.module();
        let mut copies = Vec::new();
        let funcs: Vec<Option<VMFunctionImport>> = m
            .imports
            .iter()
            .filter_map(|imp| match imp.index {
                EntityIndex::Function(fi) => Some(fi),
                _ => None,
            })
            .zip(host)
            .map(|(fi, h)| {
                let h = h.as_ref()?;
                let info = m.functions[fi];
                let fr = h.func_ref();
                // SAFETY: a host function's funcref lives as long as the
                // function, which `h` keeps alive.
                let (mut wasm_call, vmctx) = unsafe { ((*fr).wasm_call, (*fr).vmctx) };
                let mut func_ref = fr;
                if wasm_call.is_null() {
                    // A host function without a Wasm entry: this module's
                    // trampoline for the import's type, in the instances'
                    // own import slots, and, if the import escapes, in a
                    // funcref copy of ours.
                    wasm_call = module.compiled.wasm_to_native(info.type_index);
                    if info.escapes {
                        // SAFETY: as above.
                        let copy = Box::new(VMFuncRef {
                            wasm_call,
                            ..unsafe { *fr }
                        });
                        func_ref = &*copy;
                        copies.push(FuncRefCopy(copy));
                    }
                }
                Some(VMFunctionImport {
                    wasm_call,
                    vmctx,
                    func_ref,
                })
            })
            .collect();
        // SAFETY: every resolved import points at a host function in
        // `host` or at a copy in `copies`, both kept with the template.
        let template = unsafe { InstanceTemplate::new(&module.compiled, &funcs) };
        PreShared {
            template,
            _host_funcs: host.iter().flatten().cloned().collect(),
            _func_ref_copies: copies,
        }
    }
}

/// Instantiates `shared`'s module into `s`. `imports` has one entry per
/// import of the module, in order: `None` for a host function the template
/// resolved, otherwise the item, whose type and store are checked here.
pub(crate) fn instantiate<T>(
    s: &mut StoreInner<T>,
    module: &Module,
    shared: &Arc<PreShared>,
    imports: &[Option<Extern>],
) -> Result<Instance> {
    if !Engine::same(&s.engine, module.engine()) {
        return Err(Error::msg("module was compiled by another engine"));
    }
    let m = module.compiled.module();
    debug_assert_eq!(imports.len(), m.imports.len());
    let mut rt = Imports::default();
    for (imp, ext) in m.imports.iter().zip(imports) {
        let Some(ext) = ext else {
            continue;
        };
        let expected = module.entity_type(imp.index);
        let actual = ext.ty(crate::StoreContext(s));
        check_import(&actual, &expected).map_err(|reason| {
            format_err!(
                "incompatible import type for `{}::{}`: {reason}",
                imp.module,
                imp.name
            )
        })?;
        match (ext, imp.index) {
            (Extern::Func(f), EntityIndex::Function(fi)) => {
                let info = m.functions[fi];
                let mut fr = f.to_raw_unpatched(s)?;
                // SAFETY: a funcref registered in the store is live.
                let mut wasm_call = unsafe { (*fr).wasm_call };
                if wasm_call.is_null() {
                    // A host function without a Wasm entry: this module's
                    // trampoline for the import's type, in this instance's
                    // own import slot (see `kiln_runtime::VMFuncRef`).
                    wasm_call = module.compiled.wasm_to_native(info.type_index);
                    if info.escapes {
                        fr = s.own_func_ref(f.index, || {
                            Ok((wasm_call, Some(module.compiled.clone())))
                        })?;
                    }
                }
                rt.funcs.push(VMFunctionImport {
                    wasm_call,
                    // SAFETY: as above.
                    vmctx: unsafe { (*fr).vmctx },
                    func_ref: fr,
                });
            }
            (Extern::Table(t), _) => {
                check_store(s, t.store)?;
                rt.tables.push(t.ptr as *mut _);
            }
            (Extern::Memory(mem), _) => {
                check_store(s, mem.store)?;
                rt.memories.push(mem.ptr as *mut _);
            }
            (Extern::Global(g), _) => {
                check_store(s, g.store)?;
                rt.globals.push(g.def as *mut _);
            }
            _ => unreachable!("kinds were checked by check_import"),
        }
    }
    s.bump_resource_counts(m)?;
    s.keep_pre(shared);
    let (opaque, mut limiter) = s.opaque_and_limiter();
    let rt_index = opaque
        .instantiate(
            &shared.template,
            rt,
            limiter
                .as_mut()
                .map(|l| l as &mut dyn kiln_runtime::Limiter),
        )
        .map_err(|e| match e {
            InstantiationError::Trap(t) => crate::error::trap_error(t, Vec::new(), false),
            InstantiationError::Resource(r) => Error::msg(r),
            InstantiationError::Limiter(e) => crate::limits::from_box(e),
            InstantiationError::Pool(e) => Error::new(e),
            InstantiationError::Artifact(a) => Error::new(a),
        })?;
    let vmctx = s.opaque.instances[rt_index].vmctx();
    s.instances.push(InstanceData {
        rt: rt_index,
        vmctx,
        module: module.clone(),
    });
    let instance = Instance {
        store: s.id,
        index: s.instances.len() - 1,
    };
    if let Some(start) = m.start {
        let fr = s.opaque.instances[rt_index].func_ref(start);
        let caller = s.opaque.host_vmctx();
        let mut slot = [kiln_runtime::ValRaw::default()];
        let ptr = slot.as_mut_ptr();
        enter_wasm(s, || {
            // SAFETY: the start function escapes, so it has an array entry;
            // its type is [] -> [].
            unsafe {
                let f: VMArrayCallFunction = std::mem::transmute((*fr).array_call);
                f((*fr).vmctx, caller, ptr, 1)
            }
        })?;
    }
    Ok(instance)
}

fn check_store<T>(s: &StoreInner<T>, id: u64) -> Result<()> {
    if s.id != id {
        return Err(Error::msg("object used with the wrong store"));
    }
    Ok(())
}

/// One export of an instance: its name and the item.
#[derive(Clone, Debug)]
pub struct Export<'instance> {
    name: &'instance str,
    definition: Extern,
}

impl<'instance> Export<'instance> {
    /// The export's name.
    pub fn name(&self) -> &'instance str {
        self.name
    }

    /// The export's type.
    pub fn ty(&self, store: impl AsContext) -> ExternType {
        self.definition.ty(store)
    }

    /// The exported item.
    pub fn into_extern(self) -> Extern {
        self.definition
    }

    /// The exported function, if it is one.
    pub fn into_func(self) -> Option<Func> {
        self.definition.into_func()
    }

    /// The exported table, if it is one.
    pub fn into_table(self) -> Option<Table> {
        self.definition.into_table()
    }

    /// The exported memory, if it is one.
    pub fn into_memory(self) -> Option<Memory> {
        self.definition.into_memory()
    }

    /// The exported global, if it is one.
    pub fn into_global(self) -> Option<Global> {
        self.definition.into_global()
    }
}
