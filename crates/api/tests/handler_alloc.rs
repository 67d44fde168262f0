//! The signal handler allocates nothing (`traphandlers.rs` in
//! `kiln-runtime`, "What the handler may do"): a signal can interrupt the
//! allocator itself, so an allocation in the handler can deadlock or
//! corrupt the heap. This binary's global allocator counts every
//! allocation, reallocation and free made on a thread's alternate signal
//! stack, where Kiln's handler runs (`SA_ONSTACK`, and Kiln gives every
//! thread that enters Wasm an alternate stack), and every kind of trap the
//! handler resumes from must leave the count at zero. Its own binary, so
//! that the allocator's system call per allocation slows no other test.

use kiln::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Allocator calls this thread made on its alternate signal stack (a
    /// handler runs on the thread it interrupts). Const-initialised and
    /// without destructor, so the allocator reads it without allocating.
    static IN_HANDLER: Cell<usize> = const { Cell::new(0) };
}

fn in_handler() -> usize {
    IN_HANDLER.with(|c| c.get())
}

struct CountingAllocator;

/// Notes an allocator call if it runs on the thread's alternate signal
/// stack (the kernel reports `SS_ONSTACK` when the stack pointer is in it).
fn note() {
    // SAFETY: a zeroed `stack_t` is a valid out-parameter; the call only
    // reads this thread's alternate-stack state.
    let on_alt = unsafe {
        let mut ss: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut ss) == 0 && ss.ss_flags & libc::SS_ONSTACK != 0
    };
    if on_alt {
        IN_HANDLER.with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the same arguments, so
// `System`'s guarantees are ours; `note` neither allocates nor unwinds.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const WAT: &str = r#"(module
  (import "env" "fail" (func $fail))
  (import "env" "reenter" (func $reenter))
  (memory 1)
  (table 1 funcref)
  (type $t (func (param i32) (result i32)))
  (func (export "unreachable") unreachable)
  (func (export "oob") (result i32) i32.const -4 i32.load)
  (func (export "div") (param i32) (result i32) i32.const 1 local.get 0 i32.div_s)
  (func $r (export "recurse") (param i32) (result i32)
    local.get 0 i32.const 1 i32.add call $r)
  (func (export "indirect") (call_indirect (type $t) (i32.const 0) (i32.const 5)) drop)
  (func (export "host_fails") call $fail)
  (func (export "nested") call $reenter)
  (func (export "ok") (result i32) i32.const 7))"#;

#[test]
fn no_trap_allocates_in_the_signal_handler() {
    let engine = Engine::default();
    let module = Module::new(&engine, WAT).unwrap();
    let mut linker = Linker::<Option<Func>>::new(&engine);
    linker
        .func_wrap("env", "fail", || -> Result<()> {
            Err(Error::msg("host says no"))
        })
        .unwrap();
    // Calls back into Wasm, which traps there: a trap inside a nested
    // entry, reported through the host function as its error.
    linker
        .func_wrap(
            "env",
            "reenter",
            |mut c: Caller<'_, Option<Func>>| -> Result<()> {
                let f = c.data().expect("set");
                f.typed::<(), ()>(&c)?.call(&mut c, ())
            },
        )
        .unwrap();
    let mut store = Store::new(&engine, None);
    let i = linker.instantiate(&mut store, &module).unwrap();
    let unreachable = i.get_func(&mut store, "unreachable").unwrap();
    *store.data_mut() = Some(unreachable);

    // The first call prepares the thread (alternate stack, trap slot).
    let ok = i.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
    assert_eq!(ok.call(&mut store, ()).unwrap(), 7);
    assert_eq!(in_handler(), 0, "before any trap");

    let trap_of = |e: &Error| e.downcast_ref::<Trap>().copied();
    type S = Store<Option<Func>>;
    /// A way to trap: the call, returning its error.
    type Case = Box<dyn Fn(&mut S) -> Error>;
    let cases: Vec<(&str, Case)> = vec![
        (
            "unreachable",
            Box::new(move |s: &mut S| {
                let f = i.get_typed_func::<(), ()>(&mut *s, "unreachable").unwrap();
                f.call(s, ()).unwrap_err()
            }),
        ),
        (
            "out-of-bounds load",
            Box::new(move |s: &mut S| {
                let f = i.get_typed_func::<(), i32>(&mut *s, "oob").unwrap();
                f.call(s, ()).unwrap_err()
            }),
        ),
        (
            "division by zero",
            Box::new(move |s: &mut S| {
                let f = i.get_typed_func::<i32, i32>(&mut *s, "div").unwrap();
                f.call(s, 0).unwrap_err()
            }),
        ),
        (
            "stack overflow",
            Box::new(move |s: &mut S| {
                let f = i.get_typed_func::<i32, i32>(&mut *s, "recurse").unwrap();
                f.call(s, 0).unwrap_err()
            }),
        ),
        (
            "call_indirect of a null entry",
            Box::new(move |s: &mut S| {
                let f = i.get_typed_func::<(), ()>(&mut *s, "indirect").unwrap();
                f.call(s, ()).unwrap_err()
            }),
        ),
        (
            "failing host function",
            Box::new(move |s: &mut S| {
                let f = i.get_typed_func::<(), ()>(&mut *s, "host_fails").unwrap();
                f.call(s, ()).unwrap_err()
            }),
        ),
        (
            "trap in a nested entry",
            Box::new(move |s: &mut S| {
                let f = i.get_typed_func::<(), ()>(&mut *s, "nested").unwrap();
                f.call(s, ()).unwrap_err()
            }),
        ),
        (
            "dynamically typed call",
            Box::new(move |s: &mut S| {
                let f = i.get_func(&mut *s, "unreachable").unwrap();
                f.call(s, &[], &mut []).unwrap_err()
            }),
        ),
    ];
    for (what, case) in &cases {
        // Twice: the second trap finds the first one's slot state.
        for _ in 0..2 {
            let e = case(&mut store);
            if *what == "failing host function" {
                assert!(
                    trap_of(&e).is_none() && e.chain().any(|c| c.to_string() == "host says no"),
                    "{what}: {e:?}"
                );
            } else {
                assert!(trap_of(&e).is_some(), "{what}: {e:?}");
            }
            assert!(
                e.downcast_ref::<WasmBacktrace>().is_some(),
                "{what}: a backtrace: {e:?}"
            );
            assert_eq!(
                in_handler(),
                0,
                "{what}: the signal handler allocated or freed"
            );
        }
    }
    // And the store still works.
    assert_eq!(ok.call(&mut store, ()).unwrap(), 7);
}

#[test]
fn the_counter_sees_allocations_on_the_alternate_stack() {
    // The check above is only as good as its detector: allocate from a
    // signal handler that runs on the alternate stack, and see it counted.
    extern "C" fn allocating_handler(_: libc::c_int) {
        std::hint::black_box(Box::new(1u64));
    }
    let t = std::thread::spawn(|| {
        // SAFETY: a mapping of our own as this thread's alternate stack,
        // a handler for SIGUSR2 (which nothing else in this binary uses)
        // that runs on it, raised on this thread only; the alternate
        // stack is disabled again before the mapping is released.
        unsafe {
            let len = 64 * 1024;
            let base = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            );
            assert_ne!(base, libc::MAP_FAILED);
            let mut old: libc::stack_t = std::mem::zeroed();
            let ss = libc::stack_t {
                ss_sp: base,
                ss_flags: 0,
                ss_size: len,
            };
            assert_eq!(libc::sigaltstack(&ss, &mut old), 0);
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = allocating_handler as *const () as usize;
            act.sa_flags = libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGUSR2, &act, std::ptr::null_mut()),
                0
            );
            libc::raise(libc::SIGUSR2);
            assert_eq!(libc::sigaltstack(&old, std::ptr::null_mut()), 0);
            libc::munmap(base, len);
        }
        in_handler()
    });
    let counted = t.join().unwrap();
    assert!(counted >= 2, "allocation and free counted: {counted}");
}
