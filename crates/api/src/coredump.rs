//! [`WasmCoreDump`]: the state of a store when Wasm trapped, as Wasmtime
//! gives it with `Config::coredump_on_trap`.
//!
//! # How it is built
//!
//! When a call into Wasm fails and the engine's config asks for core
//! dumps, the error gets a `WasmCoreDump` as context (next to the
//! [`WasmBacktrace`]), made right after the trap, before the host sees
//! the error: handles to every module, instance, memory and global of the
//! store, and the backtrace. The handles are cheap (the store owns what
//! they name); the memory contents and global values are read only when
//! the dump is [serialized](WasmCoreDump::serialize), so they are the
//! store's state *then*: serialize before running anything else in the
//! store to see the state at the trap.
//!
//! # What it holds
//!
//! - the store's instances in instantiation order, and the modules they
//!   instantiate, each once;
//! - every memory and global that an instance defines or imports, each
//!   once (host-created ones that no instance imports are not seen);
//! - the frames of the trap's backtrace. Locals and operand stacks are not
//!   recovered (Wasmtime does not recover them either), and a frame names
//!   the last instance of its module, as in Wasmtime, when a module has
//!   several instances.
//!
//! The serialized form is the Wasm core-dump format of the
//! tool-conventions repository (`Coredump.md`): a Wasm module whose
//! memory, data and global sections hold the store's state, with the
//! `core`, `coremodules`, `coreinstances` and `corestack` custom sections.

use crate::store::StoreInner;
use crate::{
    AsContextMut, Global, Instance, Memory, Module, Mutability, Val, ValType, WasmBacktrace,
};
use kiln_environ::{GlobalIndex, MemoryIndex};
use std::collections::HashMap;
use std::fmt;

/// A core dump of a store, attached to the error of a trapping call when
/// [`Config::coredump_on_trap`](crate::Config::coredump_on_trap) is on.
pub struct WasmCoreDump {
    name: String,
    modules: Vec<Module>,
    instances: Vec<Instance>,
    memories: Vec<Memory>,
    globals: Vec<Global>,
    backtrace: WasmBacktrace,
}

impl WasmCoreDump {
    /// The dump of `store` for a trap with `backtrace`.
    pub(crate) fn new<T>(store: &mut StoreInner<T>, backtrace: WasmBacktrace) -> WasmCoreDump {
        let mut modules: Vec<Module> = Vec::new();
        let mut instances = Vec::new();
        let mut memories = Vec::new();
        let mut globals = Vec::new();
        let (mut seen_memories, mut seen_globals) = (HashMap::new(), HashMap::new());
        for index in 0..store.instances.len() {
            let instance = Instance {
                store: store.id,
                index,
            };
            let data = &store.instances[index];
            let module = data.module.clone();
            if !modules.iter().any(|m| Module::same(m, &module)) {
                modules.push(module.clone());
            }
            let rt = &store.opaque.instances[data.rt];
            let m = module.compiled.module();
            for (mi, _) in m.memories.iter() {
                let ptr = rt.memory(mi) as usize;
                seen_memories.entry(ptr).or_insert_with(|| {
                    memories.push(Memory {
                        store: store.id,
                        ptr,
                    })
                });
            }
            for (gi, ty) in m.globals.iter() {
                let def = rt.global(gi) as usize;
                seen_globals.entry(def).or_insert_with(|| {
                    globals.push(Global {
                        store: store.id,
                        def,
                        ty: *ty,
                    })
                });
            }
            instances.push(instance);
        }
        WasmCoreDump {
            name: String::from("store_name"),
            modules,
            instances,
            memories,
            globals,
            backtrace,
        }
    }

    /// The frames of the trap, innermost first.
    pub fn frames(&self) -> &[crate::FrameInfo] {
        self.backtrace.frames()
    }

    /// Every module instantiated in the store, each once.
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// Every instance in the store, in instantiation order.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// Every global an instance of the store defines or imports.
    pub fn globals(&self) -> &[Global] {
        &self.globals
    }

    /// Every memory an instance of the store defines or imports.
    pub fn memories(&self) -> &[Memory] {
        &self.memories
    }

    /// The dump in the Wasm core-dump format (a Wasm module with the
    /// store's memories, globals and stack; see the module docs), reading
    /// the memories and globals of `store` now. `name` names the program
    /// that ran, for the tools that read the dump.
    ///
    /// # Panics
    ///
    /// If `store` is not the store the dump was made in.
    pub fn serialize(&self, mut store: impl AsContextMut, name: &str) -> Vec<u8> {
        use wasm_encoder as enc;
        let mut store = store.as_context_mut();
        let mut out = enc::Module::new();
        out.section(&enc::CoreDumpSection::new(name));

        let mut memory_index = HashMap::new();
        let mut memory_section = enc::MemorySection::new();
        let mut data = enc::DataSection::new();
        for (i, mem) in self.memories.iter().enumerate() {
            let i = i as u32;
            memory_index.insert(mem.ptr, i);
            let ty = mem.ty(&store);
            memory_section.memory(enc::MemoryType {
                minimum: mem.size(&store),
                maximum: ty.maximum(),
                memory64: ty.is_64(),
                shared: ty.is_shared(),
                page_size_log2: None,
            });
            // One segment per 4 KiB chunk that holds a non-zero byte,
            // trimmed of its zero ends: small for sparse memories, and far
            // from the limit on the number of segments.
            const CHUNK: usize = 4096;
            for (c, chunk) in mem.data(&store).chunks(CHUNK).enumerate() {
                let Some(start) = chunk.iter().position(|b| *b != 0) else {
                    continue;
                };
                let end = chunk.iter().rposition(|b| *b != 0).map_or(start, |e| e + 1);
                let at = (c * CHUNK + start) as u64;
                let offset = if ty.is_64() {
                    enc::ConstExpr::i64_const(at as i64)
                } else {
                    enc::ConstExpr::i32_const(at as u32 as i32)
                };
                data.active(i, &offset, chunk[start..end].iter().copied());
            }
        }
        out.section(&memory_section);

        let mut global_index = HashMap::new();
        let mut global_section = enc::GlobalSection::new();
        for (i, g) in self.globals.iter().enumerate() {
            global_index.insert(g.def, i as u32);
            let ty = g.ty(&store);
            // References are written as nulls of their top type: the dump
            // has no functions or host objects to point at.
            let (val_type, init) = match g.get(&mut store) {
                Val::I32(x) => (enc::ValType::I32, enc::ConstExpr::i32_const(x)),
                Val::I64(x) => (enc::ValType::I64, enc::ConstExpr::i64_const(x)),
                Val::F32(x) => (
                    enc::ValType::F32,
                    enc::ConstExpr::f32_const(f32::from_bits(x).into()),
                ),
                Val::F64(x) => (
                    enc::ValType::F64,
                    enc::ConstExpr::f64_const(f64::from_bits(x).into()),
                ),
                Val::V128(x) => (
                    enc::ValType::V128,
                    enc::ConstExpr::v128_const(x.as_u128() as i128),
                ),
                Val::FuncRef(_) => (
                    enc::ValType::FUNCREF,
                    enc::ConstExpr::ref_null(enc::HeapType::FUNC),
                ),
                Val::ExternRef(_) => (
                    enc::ValType::EXTERNREF,
                    enc::ConstExpr::ref_null(enc::HeapType::EXTERN),
                ),
            };
            debug_assert!(matches!(
                (ty.content(), val_type),
                (ValType::Ref(_), enc::ValType::Ref(_))
                    | (ValType::I32, enc::ValType::I32)
                    | (ValType::I64, enc::ValType::I64)
                    | (ValType::F32, enc::ValType::F32)
                    | (ValType::F64, enc::ValType::F64)
                    | (ValType::V128, enc::ValType::V128)
            ));
            global_section.global(
                enc::GlobalType {
                    val_type,
                    mutable: ty.mutability() == Mutability::Var,
                    shared: false,
                },
                &init,
            );
        }
        out.section(&global_section);
        out.section(&data);

        let mut module_section = enc::CoreDumpModulesSection::new();
        for (i, m) in self.modules.iter().enumerate() {
            match m.name() {
                Some(n) => module_section.module(n),
                None => module_section.module(format!("<anonymous-module-{i}>")),
            };
        }
        out.section(&module_section);

        // The last instance of each module stands for the module's frames.
        let mut instance_of_module: Vec<(usize, u32)> = Vec::new();
        let mut instance_section = enc::CoreDumpInstancesSection::new();
        for (i, instance) in self.instances.iter().enumerate() {
            let s: &StoreInner<_> = store.0;
            let data = instance.data(s);
            let module_at = self
                .modules
                .iter()
                .position(|m| Module::same(m, &data.module))
                .expect("the dump lists every instance's module");
            let rt = &s.opaque.instances[data.rt];
            let m = data.module.compiled.module();
            let mems: Vec<u32> = (0..m.memories.len())
                .map(|mi| {
                    let ptr = rt.memory(MemoryIndex::from_u32(mi as u32)) as usize;
                    memory_index.get(&ptr).copied().unwrap_or(u32::MAX)
                })
                .collect();
            let globs: Vec<u32> = (0..m.globals.len())
                .map(|gi| {
                    let def = rt.global(GlobalIndex::from_u32(gi as u32)) as usize;
                    global_index.get(&def).copied().unwrap_or(u32::MAX)
                })
                .collect();
            instance_section.instance(module_at as u32, mems, globs);
            instance_of_module.retain(|(m, _)| *m != module_at);
            instance_of_module.push((module_at, i as u32));
        }
        out.section(&instance_section);

        let mut stack = enc::CoreDumpStackSection::new("main");
        for frame in self.frames() {
            let instance = self
                .modules
                .iter()
                .position(|m| Module::same(m, frame.module()))
                .and_then(|m| instance_of_module.iter().find(|(mm, _)| *mm == m))
                .map_or(u32::MAX, |(_, i)| *i);
            let offset = frame
                .module_offset()
                .and_then(|o| u32::try_from(o).ok())
                .unwrap_or(0);
            stack.frame(instance, frame.func_index(), offset, [], []);
        }
        out.section(&stack);
        out.finish()
    }
}

impl fmt::Display for WasmCoreDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "wasm coredump generated while executing {}:", self.name)?;
        writeln!(f, "modules:")?;
        for m in &self.modules {
            writeln!(f, "  {}", m.name().unwrap_or("<module>"))?;
        }
        writeln!(f, "instances:")?;
        for i in &self.instances {
            writeln!(f, "  {i:?}")?;
        }
        writeln!(f, "memories:")?;
        for m in &self.memories {
            writeln!(f, "  {m:?}")?;
        }
        writeln!(f, "globals:")?;
        for g in &self.globals {
            writeln!(f, "  {g:?}")?;
        }
        writeln!(f, "backtrace:")?;
        write!(f, "{}", self.backtrace)
    }
}

impl fmt::Debug for WasmCoreDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<wasm core dump>")
    }
}
