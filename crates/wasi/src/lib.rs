//! WASI preview1 (`wasi_snapshot_preview1`) for Kiln.
//!
//! # Who is this crate for?
//!
//! Embedders who run programs built for `wasm32-wasip1` (`wasm32-wasi`):
//! C with wasi-libc, Rust, TinyGo, AssemblyScript. Put a [`WasiCtx`] in
//! the store's data, add the functions to a [`kiln::Linker`], and call
//! `_start`:
//!
//! ```
//! use kiln::{Engine, Linker, Module, Store};
//! use kiln_wasi::{pipe::MemoryOutputPipe, WasiCtx, WasiCtxBuilder};
//!
//! struct State { wasi: WasiCtx }
//!
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"
//!     (module
//!       (import "wasi_snapshot_preview1" "fd_write"
//!         (func $fd_write (param i32 i32 i32 i32) (result i32)))
//!       (memory (export "memory") 1)
//!       (data (i32.const 16) "hello\n")
//!       (func (export "_start")
//!         (i32.store (i32.const 0) (i32.const 16))
//!         (i32.store (i32.const 4) (i32.const 6))
//!         (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
//! "#)?;
//! let stdout = MemoryOutputPipe::new(1 << 20);
//! let wasi = WasiCtxBuilder::new().arg("hello").stdout(stdout.clone()).build();
//! let mut linker = Linker::new(&engine);
//! kiln_wasi::add_to_linker(&mut linker, |s: &mut State| &mut s.wasi)?;
//! let mut store = Store::new(&engine, State { wasi });
//! let instance = linker.instantiate(&mut store, &module)?;
//! instance.get_typed_func::<(), ()>(&mut store, "_start")?.call(&mut store, ())?;
//! assert_eq!(stdout.contents(), b"hello\n");
//! # Ok::<(), kiln::Error>(())
//! ```
//!
//! A guest that calls `proc_exit` ends its call with an error that
//! [`exit_code`] recognises; any other error is a trap or a host failure.
//!
//! # What it must not know about
//!
//! It is a thin user of `kiln`'s public API ([`kiln::Linker::func_wrap`],
//! [`kiln::Caller`], [`kiln::Memory`]); it never names `kiln-runtime` or a
//! lower crate, and it knows nothing of how calls reach it.
//!
//! # The sandbox
//!
//! A guest sees only what [`WasiCtxBuilder`] granted: the standard
//! streams, preopened directories and preopened sockets, as entries of a
//! descriptor table of its own (numbers are not host descriptors). Every
//! path is resolved by `cap-std` beneath a directory handle, never by
//! looking at a host path string; see `p1.rs` for the rules each call
//! keeps.

mod ctx;
mod mem;
mod p1;
pub mod pipe;
mod table;
mod types;

pub use ctx::{
    DirPerms, FilePerms, MonotonicClock, RandomSource, WallClock, WasiCtx, WasiCtxBuilder,
};
pub use types::Errno;

use kiln::{Caller, Extern, Linker};
use mem::GuestMem;

/// The module name WASI preview1 functions are imported from.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// The error a guest's `proc_exit` ends its call with: its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("exit with status {0}")]
pub struct I32Exit(pub i32);

/// The exit status if `error` is a guest's `proc_exit` (an [`I32Exit`],
/// as `error.downcast_ref::<I32Exit>()` finds it too).
pub fn exit_code(error: &kiln::Error) -> Option<i32> {
    error.downcast_ref::<I32Exit>().map(|e| e.0)
}

fn memory<T>(caller: &mut Caller<'_, T>) -> kiln::Result<kiln::Memory> {
    caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or_else(|| kiln::Error::msg("WASI: the module exports no memory named `memory`"))
}

fn errno(r: types::WResult<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e as i32,
    }
}

/// Binds one WASI function: fetches the caller's memory, borrows it
/// together with the `WasiCtx`, converts the Wasm arguments and returns
/// the errno.
macro_rules! bind {
    ($linker:ident, $get:ident, $name:ident ( $($a:ident : $w:ty => $t:ty),* )) => {
        $linker.func_wrap(MODULE, stringify!($name), move |mut caller: Caller<'_, T>, $($a: $w),*| -> kiln::Result<i32> {
            let memory = memory(&mut caller)?;
            let (bytes, data) = memory.data_and_store_mut(&mut caller);
            let mut mem = GuestMem::new(bytes);
            Ok(errno(p1::$name($get(data), &mut mem, $($a as $t),*)))
        })?;
    };
}

/// Adds every function of `wasi_snapshot_preview1` to `linker`; `get`
/// finds the [`WasiCtx`] in the store's data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: impl Fn(&mut T) -> &mut WasiCtx + Send + Sync + Copy + 'static,
) -> kiln::Result<()> {
    bind!(linker, get, args_get(a: i32 => u32, b: i32 => u32));
    bind!(linker, get, args_sizes_get(a: i32 => u32, b: i32 => u32));
    bind!(linker, get, environ_get(a: i32 => u32, b: i32 => u32));
    bind!(linker, get, environ_sizes_get(a: i32 => u32, b: i32 => u32));
    bind!(linker, get, clock_res_get(id: i32 => u32, out: i32 => u32));
    bind!(linker, get, clock_time_get(id: i32 => u32, p: i64 => u64, out: i32 => u32));
    bind!(linker, get, fd_advise(fd: i32 => u32, o: i64 => u64, l: i64 => u64, a: i32 => u8));
    bind!(linker, get, fd_allocate(fd: i32 => u32, o: i64 => u64, l: i64 => u64));
    bind!(linker, get, fd_close(fd: i32 => u32));
    bind!(linker, get, fd_datasync(fd: i32 => u32));
    bind!(linker, get, fd_fdstat_get(fd: i32 => u32, out: i32 => u32));
    bind!(linker, get, fd_fdstat_set_flags(fd: i32 => u32, f: i32 => u16));
    bind!(linker, get, fd_fdstat_set_rights(fd: i32 => u32, b: i64 => u64, i: i64 => u64));
    bind!(linker, get, fd_filestat_get(fd: i32 => u32, out: i32 => u32));
    bind!(linker, get, fd_filestat_set_size(fd: i32 => u32, s: i64 => u64));
    bind!(linker, get, fd_filestat_set_times(fd: i32 => u32, a: i64 => u64, m: i64 => u64, f: i32 => u16));
    bind!(linker, get, fd_pread(fd: i32 => u32, iovs: i32 => u32, n: i32 => u32, o: i64 => u64, out: i32 => u32));
    bind!(linker, get, fd_prestat_get(fd: i32 => u32, out: i32 => u32));
    bind!(linker, get, fd_prestat_dir_name(fd: i32 => u32, p: i32 => u32, l: i32 => u32));
    bind!(linker, get, fd_pwrite(fd: i32 => u32, iovs: i32 => u32, n: i32 => u32, o: i64 => u64, out: i32 => u32));
    bind!(linker, get, fd_read(fd: i32 => u32, iovs: i32 => u32, n: i32 => u32, out: i32 => u32));
    bind!(linker, get, fd_readdir(fd: i32 => u32, b: i32 => u32, l: i32 => u32, c: i64 => u64, out: i32 => u32));
    bind!(linker, get, fd_renumber(fd: i32 => u32, to: i32 => u32));
    bind!(linker, get, fd_seek(fd: i32 => u32, o: i64 => i64, w: i32 => u8, out: i32 => u32));
    bind!(linker, get, fd_sync(fd: i32 => u32));
    bind!(linker, get, fd_tell(fd: i32 => u32, out: i32 => u32));
    bind!(linker, get, fd_write(fd: i32 => u32, iovs: i32 => u32, n: i32 => u32, out: i32 => u32));
    bind!(linker, get, path_create_directory(fd: i32 => u32, p: i32 => u32, l: i32 => u32));
    bind!(linker, get, path_filestat_get(fd: i32 => u32, f: i32 => u32, p: i32 => u32, l: i32 => u32, out: i32 => u32));
    bind!(linker, get, path_filestat_set_times(fd: i32 => u32, f: i32 => u32, p: i32 => u32, l: i32 => u32, a: i64 => u64, m: i64 => u64, s: i32 => u16));
    bind!(linker, get, path_link(ofd: i32 => u32, of: i32 => u32, op: i32 => u32, ol: i32 => u32, nfd: i32 => u32, np: i32 => u32, nl: i32 => u32));
    bind!(linker, get, path_open(fd: i32 => u32, df: i32 => u32, p: i32 => u32, l: i32 => u32, o: i32 => u16, rb: i64 => u64, ri: i64 => u64, ff: i32 => u16, out: i32 => u32));
    bind!(linker, get, path_readlink(fd: i32 => u32, p: i32 => u32, l: i32 => u32, b: i32 => u32, bl: i32 => u32, out: i32 => u32));
    bind!(linker, get, path_remove_directory(fd: i32 => u32, p: i32 => u32, l: i32 => u32));
    bind!(linker, get, path_rename(fd: i32 => u32, op: i32 => u32, ol: i32 => u32, nfd: i32 => u32, np: i32 => u32, nl: i32 => u32));
    bind!(linker, get, path_symlink(op: i32 => u32, ol: i32 => u32, fd: i32 => u32, np: i32 => u32, nl: i32 => u32));
    bind!(linker, get, path_unlink_file(fd: i32 => u32, p: i32 => u32, l: i32 => u32));
    bind!(linker, get, poll_oneoff(i: i32 => u32, o: i32 => u32, n: i32 => u32, out: i32 => u32));
    bind!(linker, get, proc_raise(s: i32 => u32));
    bind!(linker, get, sched_yield());
    bind!(linker, get, random_get(b: i32 => u32, l: i32 => u32));
    bind!(linker, get, sock_accept(fd: i32 => u32, f: i32 => u16, out: i32 => u32));
    bind!(linker, get, sock_recv(fd: i32 => u32, iovs: i32 => u32, n: i32 => u32, f: i32 => u16, ol: i32 => u32, of: i32 => u32));
    bind!(linker, get, sock_send(fd: i32 => u32, iovs: i32 => u32, n: i32 => u32, f: i32 => u16, out: i32 => u32));
    bind!(linker, get, sock_shutdown(fd: i32 => u32, h: i32 => u8));
    linker.func_wrap(MODULE, "proc_exit", |code: i32| -> kiln::Result<()> {
        Err(kiln::Error::new(I32Exit(code)))
    })?;
    Ok(())
}
