//! Integration tests of the public API: `.wat` snippets run end to end.

mod advisories;
mod calls;
mod cpu_features;
mod errors;
mod host;
mod instance_pre;
mod limits;
mod memory;
mod overflow;
mod pooling;
mod resource_limits;
mod resume;
mod segments;
mod serialize;
mod sharing;
mod veneers;

use kiln::*;

/// Compiles and instantiates `wat` with no imports.
pub fn instantiate(wat: &str) -> (Store<()>, Instance) {
    let engine = Engine::default();
    let module = Module::new(&engine, wat).expect("compiles");
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).expect("instantiates");
    (store, instance)
}
