//! Catching traps: signal handlers, `setjmp`/`longjmp`, and the per-thread
//! record of active Wasm calls.
//!
//! # How a trap reaches the host
//!
//! Every entry from the host into Wasm goes through [`catch_traps`]. It
//! pushes an [`Activation`] onto a thread-local list and runs the call
//! inside `kiln_setjmp` (a few lines of C in `helpers.c`). When Wasm
//! faults, the kernel delivers a synchronous signal (SIGSEGV/SIGBUS for a
//! guard-page hit, SIGILL for a trap instruction, SIGFPE for x86 division)
//! to the faulting thread. Our handler runs on the thread's alternate
//! signal stack, so even a thread whose stack is exhausted gets here.
//!
//! The handler asks: is this thread inside an activation, and is the
//! faulting pc inside code Kiln loaded (the global [`CodeRegistry`])? If
//! both, it looks the pc up in that module's trap table, walks the Wasm
//! frames through the frame-pointer chain to build a backtrace, stores the
//! result in the activation, and `longjmp`s back to `catch_traps`, which
//! returns `Err`. Nothing in between is unwound: Wasm frames have no
//! destructors. Otherwise it forwards the signal to the handler that was
//! installed before ours (or the default action), so a crash in host code
//! stays a crash.
//!
//! Host functions and libcalls that must trap call [`raise_trap`] after
//! their Rust state is dropped; it `longjmp`s the same way.
//!
//! # Why allocation in the handler is acceptable
//!
//! The handler only does real work when the faulting pc is in Wasm code,
//! and Wasm code never holds a lock of the allocator or of the code
//! registry's writer, so allocating the backtrace there cannot deadlock.
//!
//! # The stack limit
//!
//! The outermost entry of a store makes `VMRuntimeLimits::stack_limit` the
//! current stack pointer minus the configured maximum Wasm stack. Nested
//! entries (host to Wasm to host to Wasm) keep the outer limit, so the whole
//! chain shares one budget and can never exhaust the native stack. An
//! interrupt stores [`INTERRUPT_SENTINEL`] instead; see `func_environ.rs` in
//! `kiln-cranelift` for the checks that read it.
//!
//! The limit never lies below the thread's own stack: it is clamped to the
//! thread's lowest usable address (from `pthread_getattr_np`, looked up
//! once per thread) plus a reserve for host functions, so a
//! `max_wasm_stack` larger than what the thread has left still ends in a
//! clean `StackOverflow` trap.
//!
//! The limit is *not* reset when the call returns: nothing reads it while
//! no Wasm runs, and a host that calls from the same place again (the
//! common case, a loop) then finds the right value already there: the
//! entry compares the stack pointer and the limit with those of the last
//! outermost entry (`VMRuntimeLimits::entry_cache`) and is done, instead
//! of two atomic read-modify-writes. When the
//! value differs, a compare-and-swap installs the new limit; it fails, and
//! leaves the sentinel in place, if an interrupt arrived in between, so an
//! interrupt is never lost. The sentinel is cleared only by the outermost
//! call that reports the `Interrupt` trap.

use crate::module::{lookup_code, FrameInfo};
use crate::vmcontext::{VMRuntimeLimits, INTERRUPT_SENTINEL};
use kiln_environ::Trap;
use std::any::Any;
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Once;

extern "C" {
    fn kiln_setjmp(
        buf_storage: *mut *const u8,
        body: extern "C" fn(*mut u8),
        payload: *mut u8,
    ) -> i32;
    fn kiln_longjmp(buf: *const u8) -> !;
}

/// Why a call into Wasm did not return normally.
#[derive(Debug)]
pub enum TrapReason {
    /// Wasm code trapped.
    Wasm(Trap),
    /// A host function returned an error.
    Host(Box<dyn std::error::Error + Send + Sync>),
    /// A host function panicked; the payload is resumed by the caller.
    Panic(Box<dyn Any + Send>),
}

/// A trap with the Wasm frames that led to it, innermost first.
#[derive(Debug)]
pub struct TrapRecord {
    /// What happened.
    pub reason: TrapReason,
    /// The Wasm backtrace.
    pub backtrace: Vec<FrameInfo>,
}

/// One host-to-Wasm call in progress on this thread.
struct Activation {
    jmp_buf: *const u8,
    limits: *const VMRuntimeLimits,
    trap: Option<Box<TrapRecord>>,
    prev: *mut Activation,
}

thread_local! {
    static ACTIVATION: Cell<*mut Activation> = const { Cell::new(ptr::null_mut()) };
}

/// Installs the process-wide signal handlers (once).
pub fn init_traps() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // SAFETY: installing handlers is process-global; `Once` makes it
        // happen exactly once, and the previous handlers are saved first.
        unsafe { sys::install() }
    });
}

/// Native stack kept free below the Wasm stack limit, for host functions
/// that Wasm calls, libcalls and the runtime's own frames.
const HOST_STACK_RESERVE: usize = 128 * 1024;

/// The stack limit for an outermost entry at `sp`: `max_wasm_stack` below
/// it, but never below the thread's own stack (plus room for host
/// functions and the signal frame), so a `max_wasm_stack` larger than what
/// the thread has left still ends in a clean `StackOverflow` trap, not a
/// fault on the thread's guard page.
#[cold]
#[inline(never)]
fn stack_limit_for(sp: usize, max_wasm_stack: usize) -> usize {
    let floor = sys::stack_floor()
        .saturating_add(HOST_STACK_RESERVE)
        .min(sp);
    sp.saturating_sub(max_wasm_stack).max(floor)
}

/// The current stack pointer, approximately (the address of a local).
#[inline(always)]
fn approx_sp() -> usize {
    let x = 0u8;
    std::hint::black_box(&x) as *const u8 as usize
}

/// Runs `f` as a call into Wasm: traps raised inside come back as `Err`.
///
/// # Safety
///
/// `limits` must be the store's limits, valid for the whole call, and `f`
/// must not unwind (panics inside must be caught before reaching here).
pub unsafe fn catch_traps<F: FnMut()>(
    limits: *const VMRuntimeLimits,
    max_wasm_stack: usize,
    f: &mut F,
) -> Result<(), Box<TrapRecord>> {
    sys::ensure_alt_stack();
    // SAFETY: the caller guarantees `limits` is valid.
    let l = unsafe { &*limits };
    // SAFETY: `depth` is only touched by the store's own thread.
    let depth = unsafe { &mut *l.depth.get() };
    let outermost = *depth == 0;
    if outermost {
        let sp = approx_sp();
        let cur = l.stack_limit.load(Ordering::Relaxed);
        // SAFETY: the cache is only touched by the store's own thread.
        let cache = unsafe { &mut *l.entry_cache.get() };
        // Entering from the same place as last time with the limit still
        // in place (the common case: a host loop) needs nothing more.
        if (sp, cur) != *cache {
            let limit = stack_limit_for(sp, max_wasm_stack);
            // An interrupt requested while no Wasm ran stays in force.
            if cur != limit && cur != INTERRUPT_SENTINEL {
                let _ =
                    l.stack_limit
                        .compare_exchange(cur, limit, Ordering::SeqCst, Ordering::Relaxed);
            }
            if l.stack_limit.load(Ordering::Relaxed) == limit {
                *cache = (sp, limit);
            }
        }
    }
    *depth += 1;

    let mut act = Activation {
        jmp_buf: ptr::null(),
        limits,
        trap: None,
        prev: ACTIVATION.with(|a| a.get()),
    };
    ACTIVATION.with(|a| a.set(&mut act));

    // The closure is passed by reference, never moved: moving it through
    // memory made the callee reload its captures with wider loads than the
    // caller's stores, a store-forwarding stall that cost several
    // nanoseconds on every call.
    extern "C" fn body<F: FnMut()>(payload: *mut u8) {
        // SAFETY: `payload` is the `&mut F` below, alive for this call.
        let f = unsafe { &mut *(payload as *mut F) };
        f();
    }
    // SAFETY: `act.jmp_buf` receives the jmp_buf of `kiln_setjmp`'s frame,
    // which outlives the call of `body`; `f` does not unwind.
    let ok = unsafe { kiln_setjmp(&mut act.jmp_buf, body::<F>, f as *mut F as *mut u8) };

    ACTIVATION.with(|a| a.set(act.prev));
    *depth -= 1;
    let trap = act.trap.take();
    if outermost
        && matches!(
            trap.as_deref(),
            Some(TrapRecord {
                reason: TrapReason::Wasm(Trap::Interrupt),
                ..
            })
        )
    {
        // The interrupt has been reported: consume it.
        let _ = l.stack_limit.compare_exchange(
            INTERRUPT_SENTINEL,
            usize::MAX,
            Ordering::SeqCst,
            Ordering::Relaxed,
        );
    }
    if ok != 0 {
        Ok(())
    } else {
        Err(trap.unwrap_or_else(|| {
            Box::new(TrapRecord {
                reason: TrapReason::Wasm(Trap::UnreachableCodeReached),
                backtrace: Vec::new(),
            })
        }))
    }
}

/// Unwinds to the innermost [`catch_traps`] with `reason`, recording the
/// backtrace from the last exit from Wasm.
///
/// # Safety
///
/// Must be called on a thread inside `catch_traps`, from a frame between
/// which and `catch_traps` no frame has a pending destructor: every Rust
/// value of the caller must already be dropped or moved into `reason`.
pub unsafe fn raise_trap(reason: TrapReason) -> ! {
    let act = ACTIVATION.with(|a| a.get());
    assert!(!act.is_null(), "raise_trap outside of Wasm");
    // SAFETY: `act` is the live innermost activation of this thread.
    let act = unsafe { &mut *act };
    // SAFETY: limits outlive the activation.
    let limits = unsafe { &*act.limits };
    // SAFETY: written by the wasm-to-host trampoline on this thread.
    let (fp, pc) = unsafe {
        (
            *limits.last_wasm_exit_fp.get(),
            *limits.last_wasm_exit_pc.get(),
        )
    };
    let backtrace = walk_frames(pc, fp, false);
    act.trap = Some(Box::new(TrapRecord { reason, backtrace }));
    // SAFETY: the jmp_buf belongs to a frame that is still live (the
    // activation is on this thread's list).
    unsafe { kiln_longjmp(act.jmp_buf) }
}

/// Walks the frame-pointer chain from a Wasm pc/fp pair, collecting Wasm
/// frames until the first return address outside Wasm code. `exact_first`
/// says whether `pc` is the faulting instruction itself (from a signal)
/// rather than a return address, which points just past its call.
fn walk_frames(mut pc: usize, mut fp: usize, exact_first: bool) -> Vec<FrameInfo> {
    let mut frames = Vec::new();
    let mut exact = exact_first;
    while fp != 0 && frames.len() < 100_000 {
        match lookup_code(pc) {
            Some(m) => {
                if let Some(f) = m.frame_info(pc, exact) {
                    frames.push(f);
                }
            }
            None => break,
        }
        exact = false;
        // SAFETY: `fp` is a frame pointer of a Wasm (or trampoline) frame,
        // all compiled with frame pointers preserved: [fp] is the caller's
        // fp and [fp + 8] the return address.
        unsafe {
            pc = *((fp + 8) as *const usize);
            fp = *(fp as *const usize);
        }
    }
    frames
}

/// Called by the signal handler: decides whether the fault is a Wasm trap
/// and, if so, records it and jumps back. Returns if it is not ours.
///
/// # Safety
///
/// Only from the signal handler, with the faulting thread's registers.
unsafe fn handle_trap(pc: usize, fp: usize) {
    let act = ACTIVATION.with(|a| a.get());
    if act.is_null() {
        return;
    }
    let Some(module) = lookup_code(pc) else {
        return;
    };
    let Some(mut trap) = module.lookup_trap(pc) else {
        return;
    };
    // SAFETY: `act` is this thread's live activation.
    let act = unsafe { &mut *act };
    // SAFETY: limits outlive the activation.
    let limits = unsafe { &*act.limits };
    if trap == Trap::StackOverflow {
        trap = if limits.stack_limit.load(Ordering::SeqCst) == INTERRUPT_SENTINEL {
            Trap::Interrupt
        } else {
            Trap::StackOverflow
        };
    }
    let backtrace = walk_frames(pc, fp, true);
    act.trap = Some(Box::new(TrapRecord {
        reason: TrapReason::Wasm(trap),
        backtrace,
    }));
    // SAFETY: see `raise_trap`.
    unsafe { kiln_longjmp(act.jmp_buf) }
}

mod sys {
    //! Linux signal handling (x86-64 and AArch64).
    use std::cell::Cell;
    use std::mem::MaybeUninit;
    use std::ptr;

    static mut PREV_SEGV: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
    static mut PREV_BUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
    static mut PREV_ILL: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
    static mut PREV_FPE: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();

    fn prev_for(signum: libc::c_int) -> *mut libc::sigaction {
        // Only addresses are taken; the statics are written once in
        // `install` before any handler can run.
        match signum {
            libc::SIGSEGV => ptr::addr_of_mut!(PREV_SEGV).cast(),
            libc::SIGBUS => ptr::addr_of_mut!(PREV_BUS).cast(),
            libc::SIGILL => ptr::addr_of_mut!(PREV_ILL).cast(),
            _ => ptr::addr_of_mut!(PREV_FPE).cast(),
        }
    }

    pub(super) unsafe fn install() {
        for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE] {
            // SAFETY: a zeroed sigaction is a valid starting point; we fill
            // the fields the kernel reads.
            unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = handler as *const () as usize;
                act.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
                libc::sigemptyset(&mut act.sa_mask);
                if libc::sigaction(sig, &act, prev_for(sig)) != 0 {
                    panic!("unable to install signal handler for signal {sig}");
                }
            }
        }
    }

    extern "C" fn handler(signum: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO
        // handlers.
        let (pc, fp) = unsafe { regs(ctx) };
        // SAFETY: we are in the signal handler with this thread's state.
        unsafe { super::handle_trap(pc, fp) };
        // Not a Wasm trap: forward to the previous handler.
        // SAFETY: `prev` was filled by `install`.
        unsafe {
            let prev = &*prev_for(signum);
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(prev.sa_sigaction);
                f(signum, info, ctx);
            } else if prev.sa_sigaction == libc::SIG_DFL || prev.sa_sigaction == libc::SIG_IGN {
                // Restore the previous disposition; returning re-executes
                // the faulting instruction, which now takes that action.
                libc::sigaction(signum, prev, ptr::null_mut());
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
                f(signum);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn regs(ctx: *mut libc::c_void) -> (usize, usize) {
        // SAFETY: `ctx` is a `ucontext_t` from the kernel.
        unsafe {
            let uc = &*(ctx as *const libc::ucontext_t);
            (
                uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize,
                uc.uc_mcontext.gregs[libc::REG_RBP as usize] as usize,
            )
        }
    }

    #[cfg(target_arch = "aarch64")]
    unsafe fn regs(ctx: *mut libc::c_void) -> (usize, usize) {
        // SAFETY: `ctx` is a `ucontext_t` from the kernel.
        unsafe {
            let uc = &*(ctx as *const libc::ucontext_t);
            (uc.uc_mcontext.pc as usize, uc.uc_mcontext.regs[29] as usize)
        }
    }

    thread_local! {
        static STACK_FLOOR: Cell<usize> = const { Cell::new(0) };
    }

    /// The lowest usable address of this thread's stack (above its guard
    /// page), looked up once per thread; 0 if unknown.
    pub(super) fn stack_floor() -> usize {
        let cached = STACK_FLOOR.with(|f| f.get());
        if cached != 0 {
            return cached;
        }
        // SAFETY: querying this thread's own attributes into zeroed
        // out-parameters, and destroying the attribute object we got.
        let floor = unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return 0;
            }
            let mut addr: *mut libc::c_void = ptr::null_mut();
            let mut size: libc::size_t = 0;
            let mut guard: libc::size_t = 0;
            let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
            libc::pthread_attr_getguardsize(&attr, &mut guard);
            libc::pthread_attr_destroy(&mut attr);
            if ok {
                addr as usize + guard
            } else {
                0
            }
        };
        STACK_FLOOR.with(|f| f.set(floor));
        floor
    }

    const ALT_STACK_SIZE: usize = 64 * 1024;

    struct AltStack {
        base: *mut libc::c_void,
        len: usize,
    }

    impl Drop for AltStack {
        fn drop(&mut self) {
            // SAFETY: disable the alternate stack before unmapping it; both
            // calls act on this thread's own state and mapping.
            unsafe {
                let ss = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&ss, ptr::null_mut());
                libc::munmap(self.base, self.len);
            }
        }
    }

    thread_local! {
        static ALT: Cell<bool> = const { Cell::new(false) };
        static ALT_OWNED: std::cell::RefCell<Option<AltStack>> = const { std::cell::RefCell::new(None) };
    }

    /// Gives this thread an alternate signal stack if it has none, so a
    /// handler can run when the thread's own stack is exhausted. The check
    /// is inlined into every entry; the setup is not.
    #[inline(always)]
    pub(super) fn ensure_alt_stack() {
        if !ALT.with(|a| a.get()) {
            install_alt_stack();
        }
    }

    #[cold]
    #[inline(never)]
    fn install_alt_stack() {
        ALT.with(|a| a.set(true));
        // SAFETY: querying and setting this thread's alternate stack; the
        // mapping is owned by a thread-local that unmaps it at thread exit.
        unsafe {
            let mut old: libc::stack_t = std::mem::zeroed();
            libc::sigaltstack(ptr::null(), &mut old);
            if old.ss_flags & libc::SS_DISABLE == 0 && old.ss_size >= ALT_STACK_SIZE {
                return;
            }
            let page = rustix::param::page_size();
            let len = ALT_STACK_SIZE + page;
            let base = libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return;
            }
            let stack = (base as usize + page) as *mut libc::c_void;
            libc::mprotect(stack, ALT_STACK_SIZE, libc::PROT_READ | libc::PROT_WRITE);
            let ss = libc::stack_t {
                ss_sp: stack,
                ss_flags: 0,
                ss_size: ALT_STACK_SIZE,
            };
            libc::sigaltstack(&ss, ptr::null_mut());
            ALT_OWNED.with(|o| *o.borrow_mut() = Some(AltStack { base, len }));
        }
    }
}
