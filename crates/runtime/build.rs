//! Compiles `src/helpers.c`: setjmp/longjmp cannot be written in Rust.
fn main() {
    println!("cargo:rerun-if-changed=src/helpers.c");
    cc::Build::new()
        .file("src/helpers.c")
        .warnings(true)
        .compile("kiln-helpers");
}
