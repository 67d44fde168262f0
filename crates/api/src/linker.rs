//! [`Linker`] and [`InstancePre`]: resolving imports by name.

use crate::func::HostFunc;
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
        let h = crate::func::new_dynamic_host_func(&self.engine, ty, f)?;
        self.insert(module, name, Definition::HostFunc(Arc::new(h)))
    }

    /// Defines every export of `instance` under the module name `name`.
    pub fn instance(
        &mut self,
        mut store: impl AsContextMut<Data = T>,
        name: &str,
        instance: Instance,
    ) -> Result<&mut Self> {
        for (field, ext) in instance.exports(&mut store) {
            self.define(name, &field, ext)?;
        }
        Ok(self)
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
        for (m, n, ty) in module.imports() {
            let d = self
                .defs
                .get(&(m.to_string(), n.to_string()))
                .ok_or_else(|| format_err!("unknown import: `{m}::{n}` has not been defined"))?;
            if let Definition::HostFunc(h) = d {
                let actual = crate::ExternType::Func(h.ty().clone());
                crate::instance::check_import(&actual, &ty).map_err(|reason| {
                    format_err!("incompatible import type for `{m}::{n}`: {reason}")
                })?;
                if !Engine::same(h.engine(), module.engine()) {
                    return Err(Error::msg("host function from another engine"));
                }
            }
            defs.push(d.clone());
        }
        Ok(InstancePre {
            module: module.clone(),
            defs,
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

/// A module with its imports resolved; instantiates without name lookups.
pub struct InstancePre<T> {
    module: Module,
    defs: Vec<Definition>,
    _marker: std::marker::PhantomData<fn(T)>,
}

impl<T> Clone for InstancePre<T> {
    fn clone(&self) -> Self {
        InstancePre {
            module: self.module.clone(),
            defs: self.defs.clone(),
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
        let imports: Vec<Extern> = self.defs.iter().map(|d| resolve(s, d)).collect();
        crate::instance::instantiate(s, &self.module, &imports)
    }
}
