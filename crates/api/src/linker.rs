//! [`Linker`] and [`InstancePre`]: resolving imports by name.

use crate::func::HostFunc;
use crate::instance::PreShared;
use crate::store::StoreInner;
use crate::{bail, format_err};
use crate::{
    AsContextMut, Caller, Engine, Error, Extern, FuncType, Instance, IntoFunc, Module, Result, Val,
};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
enum Definition {
    Extern(Extern),
    HostFunc(Arc<HostFunc>),
}

/// Defines imports by `(module, name)` and instantiates modules with them.
///
/// Host functions defined here (`func_wrap`, `func_new`) belong to no
/// store: each instantiation adds them to the store it instantiates into.
pub struct Linker<T> {
    engine: Engine,
    defs: HashMap<(String, String), Definition>,
    allow_shadowing: bool,
    _marker: std::marker::PhantomData<fn(T)>,
}

impl<T: 'static> Linker<T> {
    /// An empty linker.
    pub fn new(engine: &Engine) -> Linker<T> {
        Linker {
            engine: engine.clone(),
            defs: HashMap::new(),
            allow_shadowing: false,
            _marker: std::marker::PhantomData,
        }
    }

    /// Whether a later definition may replace an earlier one.
    pub fn allow_shadowing(&mut self, allow: bool) -> &mut Self {
        self.allow_shadowing = allow;
        self
    }

    fn insert(&mut self, module: &str, name: &str, d: Definition) -> Result<&mut Self> {
        let key = (module.to_string(), name.to_string());
        if !self.allow_shadowing && self.defs.contains_key(&key) {
            bail!("import of `{module}::{name}` defined twice");
        }
        self.defs.insert(key, d);
        Ok(self)
    }

    /// Defines `module::name` as `item`, which belongs to a store.
    pub fn define(
        &mut self,
        module: &str,
        name: &str,
        item: impl Into<Extern>,
    ) -> Result<&mut Self> {
        self.insert(module, name, Definition::Extern(item.into()))
    }

    /// Defines a host function from a closure (see [`crate::Func::wrap`]).
    pub fn func_wrap<Params, Results>(
        &mut self,
        module: &str,
        name: &str,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Result<&mut Self> {
        let h = f.into_host_func(&self.engine);
        self.insert(module, name, Definition::HostFunc(Arc::new(h)))
    }

    /// Defines a dynamically typed host function (see [`crate::Func::new`]).
    pub fn func_new(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<()> + Send + Sync + 'static,
    ) -> Result<&mut Self> {
        let h = crate::func::new_dynamic_host_func(&self.engine, ty.inner, f)?;
        self.insert(module, name, Definition::HostFunc(Arc::new(h)))
    }

    /// Defines every export of `instance` under the module name `name`.
    pub fn instance(
        &mut self,
        mut store: impl AsContextMut<Data = T>,
        name: &str,
        instance: Instance,
    ) -> Result<&mut Self> {
        let exports: Vec<(String, Extern)> = instance
            .exports(store.as_context_mut())
            .map(|e| (e.name().to_string(), e.into_extern()))
            .collect();
        for (field, ext) in exports {
            self.define(name, &field, ext)?;
        }
        Ok(self)
    }

    /// Defines `as_module::as_name` as whatever `module::name` is defined
    /// as.
    pub fn alias(
        &mut self,
        module: &str,
        name: &str,
        as_module: &str,
        as_name: &str,
    ) -> Result<&mut Self> {
        let d = self
            .defs
            .get(&(module.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| format_err!("no item named `{module}::{name}` in the linker"))?;
        self.insert(as_module, as_name, d)
    }

    /// Defines every item of module name `module` under `as_module` too.
    pub fn alias_module(&mut self, module: &str, as_module: &str) -> Result<&mut Self> {
        let items: Vec<(String, Definition)> = self
            .defs
            .iter()
            .filter(|((m, _), _)| m == module)
            .map(|((_, n), d)| (n.clone(), d.clone()))
            .collect();
        for (n, d) in items {
            self.insert(as_module, &n, d)?;
        }
        Ok(self)
    }

    /// Instantiates `module` with this linker's definitions and defines its
    /// exports under `module_name`, the way Wasmtime does for the two kinds
    /// of WASI modules:
    ///
    /// - a *reactor* (no `_start` export) is instantiated once, here; its
    ///   `_initialize` export, if any, runs first, and its exports are
    ///   defined as they are;
    /// - a *command* (exports `_start`) gets a fresh instance for every call:
    ///   each exported function is defined as a host function that
    ///   instantiates the module (with the definitions the linker has now),
    ///   calls the export, and lets the instance go. Only functions are
    ///   defined for a command; its other exports would belong to no
    ///   instance.
    pub fn module(
        &mut self,
        mut store: impl AsContextMut<Data = T>,
        module_name: &str,
        module: &Module,
    ) -> Result<&mut Self> {
        if !Engine::same(&self.engine, module.engine()) {
            bail!("cannot use a module compiled with another engine");
        }
        if module.get_export("_start").is_none() {
            let instance = self.instantiate(&mut store, module)?;
            if let Some(init) = instance.get_func(&mut store, "_initialize") {
                init.typed::<(), ()>(&store)
                    .map_err(|e| e.context("`_initialize` must take and return nothing"))?
                    .call(&mut store, ())?;
            }
            return self.instance(&mut store, module_name, instance);
        }
        let pre = self.instantiate_pre(module)?;
        for export in module.exports() {
            let crate::ExternType::Func(ty) = export.ty() else {
                continue;
            };
            let name = export.name().to_string();
            let pre = pre.clone();
            self.func_new(
                module_name,
                &name.clone(),
                ty,
                move |mut caller, params, results| {
                    let instance = pre.instantiate(&mut caller)?;
                    let f = instance
                        .get_func(&mut caller, &name)
                        .ok_or_else(|| format_err!("export `{name}` vanished"))?;
                    f.call(&mut caller, params, results)
                },
            )?;
        }
        Ok(self)
    }

    /// For every function import of `module` this linker does not define,
    /// defines one that traps with an error naming the import when called.
    /// An undefined import of another kind is an error.
    pub fn define_unknown_imports_as_traps(&mut self, module: &Module) -> Result<()> {
        for import in module.imports() {
            let (m, n) = (import.module(), import.name());
            if self.defs.contains_key(&(m.to_string(), n.to_string())) {
                continue;
            }
            let crate::ExternType::Func(ty) = import.ty() else {
                bail!(
                    "unknown import: `{m}::{n}` is a {} and only functions can be defined as traps",
                    import.ty().kind()
                );
            };
            let what = format!("unknown import: `{m}::{n}` has not been defined");
            self.func_new(m, n, ty, move |_, _, _| Err(Error::msg(what.clone())))?;
        }
        Ok(())
    }

    /// The default export of module name `module`: its export named `""`,
    /// else its `_start`, else a function that does nothing (what Wasmtime
    /// returns for a module without either).
    pub fn get_default(
        &self,
        mut store: impl AsContextMut<Data = T>,
        module: &str,
    ) -> Result<crate::Func> {
        for name in ["", "_start"] {
            if let Some(e) = self.get(&mut store, module, name) {
                return e.into_func().ok_or_else(|| {
                    format_err!("default export `{module}::{name}` is not a function")
                });
            }
        }
        Ok(crate::Func::wrap(&mut store, || {}))
    }

    /// The definition of `module::name`, in `store`.
    pub fn get(
        &self,
        mut store: impl AsContextMut<Data = T>,
        module: &str,
        name: &str,
    ) -> Option<Extern> {
        let d = self.defs.get(&(module.to_string(), name.to_string()))?;
        Some(resolve(store.as_context_mut().0, d))
    }

    /// Resolves `module`'s imports once, for fast repeated instantiation.
    pub fn instantiate_pre(&self, module: &Module) -> Result<InstancePre<T>> {
        let mut defs = Vec::new();
        for import in module.imports() {
            let (m, n, ty) = (import.module(), import.name(), import.ty());
            let d = self
                .defs
                .get(&(m.to_string(), n.to_string()))
                .ok_or_else(|| format_err!("unknown import: `{m}::{n}` has not been defined"))?;
            if let Definition::HostFunc(h) = d {
                let actual = crate::ExternType::Func(FuncType::from_wasm(h.ty().clone()));
                crate::instance::check_import(&actual, &ty).map_err(|reason| {
                    format_err!("incompatible import type for `{m}::{n}`: {reason}")
                })?;
                if !Engine::same(h.engine(), module.engine()) {
                    return Err(Error::msg("host function from another engine"));
                }
            }
            defs.push(d.clone());
        }
        // The host functions go into the template; everything else belongs
        // to a store and is given at each instantiation.
        let host: Vec<Option<Arc<HostFunc>>> = module
            .imports()
            .zip(&defs)
            .filter(|(i, _)| matches!(i.ty(), crate::ExternType::Func(_)))
            .map(|(_, d)| match d {
                Definition::HostFunc(h) => Some(h.clone()),
                Definition::Extern(_) => None,
            })
            .collect();
        let shared = Arc::new(PreShared::new(module, &host));
        let imports = defs
            .into_iter()
            .map(|d| match d {
                Definition::HostFunc(_) => None,
                Definition::Extern(e) => Some(e),
            })
            .collect();
        Ok(InstancePre {
            module: module.clone(),
            imports,
            shared,
            _marker: std::marker::PhantomData,
        })
    }

    /// Instantiates `module`, resolving its imports by name.
    pub fn instantiate(
        &self,
        mut store: impl AsContextMut<Data = T>,
        module: &Module,
    ) -> Result<Instance> {
        self.instantiate_pre(module)?.instantiate(&mut store)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

fn resolve<T>(s: &mut StoreInner<T>, d: &Definition) -> Extern {
    match d {
        Definition::Extern(e) => e.clone(),
        Definition::HostFunc(h) => Extern::Func(h.clone().into_func(s)),
    }
}

/// A module with its imports resolved and type-checked, and everything an
/// instantiation copies computed: instantiates without name lookups.
///
/// The imported host functions (`Linker::func_wrap`, `func_new`) are
/// checked and written into the module's context template here, once
/// (see `kiln_runtime`'s `template.rs`); an instantiation copies that
/// template. Items that belong to a store (memories, tables, globals and
/// functions defined with `Linker::define`) can only be checked against
/// the store they are used in, so each instantiation checks those.
pub struct InstancePre<T> {
    module: Module,
    /// Per import: `None` for a host function in the template, else the
    /// store's item.
    imports: Vec<Option<Extern>>,
    shared: Arc<PreShared>,
    _marker: std::marker::PhantomData<fn(T)>,
}

impl<T> Clone for InstancePre<T> {
    fn clone(&self) -> Self {
        InstancePre {
            module: self.module.clone(),
            imports: self.imports.clone(),
            shared: self.shared.clone(),
            _marker: std::marker::PhantomData,
        }
    }
}

impl<T> InstancePre<T> {
    /// The module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Instantiates into `store`.
    pub fn instantiate(&self, mut store: impl AsContextMut<Data = T>) -> Result<Instance> {
        let s = store.as_context_mut().0;
        crate::instance::instantiate(s, &self.module, &self.shared, &self.imports)
    }
}
