//! Catching traps: signal handlers that resume the host, and the
//! per-thread record of the trap being reported.
//!
//! # How a trap reaches the host
//!
//! A call from the host into Wasm is an ordinary call of a function
//! pointer (`native_call` or `array_call`) wrapped in [`call_wasm`], which
//! saves nothing: no `setjmp`, no activation record. When Wasm faults, the
//! kernel delivers a synchronous signal (SIGSEGV/SIGBUS for a guard-page
//! hit, SIGILL for a trap instruction, SIGFPE for x86 division) to the
//! faulting thread. Our handler runs on the thread's alternate signal
//! stack, so even a thread whose stack is exhausted gets here.
//!
//! The handler asks: is this thread inside a call into Wasm (a
//! thread-local marker, set by [`call_wasm`], that names the store's
//! limits), and is the faulting pc inside code of that store
//! (`StoreCode`, a lock-free list), at a recorded trap site? If so, it walks the
//! frame-pointer chain from the faulting frame up to the *entry
//! trampoline*, the first Kiln frame the host called. For every frame it
//! skips, it reloads the callee-saved registers that frame's prologue had
//! saved (the module's `FrameTable`, see `kiln_environ::FrameTable`): the
//! work the skipped epilogues would have done. Then it rewrites the signal
//! context so that, when the handler returns, the thread continues right
//! after the host's call into the entry trampoline, with the stack pointer,
//! frame pointer and callee-saved registers the host had at that call: to
//! the host, the call simply returned. The trap itself waits in a
//! thread-local slot, which [`call_wasm`] checks after every call. Nothing
//! is unwound: Wasm frames have no destructors, and no Rust frame is ever
//! skipped. A fault that is not a Wasm trap is forwarded to the handler
//! installed before ours (or the default action), so a crash in host code
//! stays a crash.
//!
//! # Host functions that fail
//!
//! A host function never jumps anywhere either. Its shim catches the error
//! or panic and calls [`host_call_failed`], which stores the trap in the
//! slot and, when the caller is Wasm, overwrites the return address of the
//! wasm-to-host trampoline (whose frame pointer the trampoline saved in
//! `VMRuntimeLimits::last_wasm_exit_fp`) with a one-instruction stub that
//! traps. The shim and the trampoline then return normally, restoring
//! every register as usual, and the stub's trap is handled like any other,
//! starting from the Wasm frame that made the call. A host function called
//! directly by the host just returns, and the host finds the slot set.
//!
//! # What the handler may do
//!
//! A signal can interrupt host code holding any lock, the allocator's
//! included, so until the handler knows the fault is a Wasm trap of this
//! thread it only reads thread-locals (const-initialised, without
//! destructors: plain loads from the thread's TLS block) and the store's
//! lock-free code list, and forwards everything else untouched. Once it
//! knows the faulting pc is Wasm code of this thread, it still allocates
//! and frees nothing: it writes the trap code and the raw frames of the
//! backtrace (pc and module per frame) into the thread's `FaultSlot`,
//! allocated by the thread's first [`call_wasm`], outside any handler,
//! with room for [`FRAME_CAPACITY`] frames (a deeper backtrace keeps the
//! innermost frames and is marked truncated). It parses nothing: the trap
//! table and frame table are read in place, and frames are symbolized
//! (function names, Wasm offsets, a lazily verified address map) and the
//! `TrapRecord` allocated by the host side in [`call_wasm`], after the
//! handler has returned. Only kernel-generated signals (`si_code > 0`)
//! are considered; a signal sent with `kill` or `tgkill` is forwarded.
//!
//! # The stack limit
//!
//! The outermost entry of a store makes `VMRuntimeLimits::stack_limit` the
//! current stack pointer minus the configured maximum Wasm stack. Nested
//! entries (host to Wasm to host to Wasm) keep the outer limit, so the whole
//! chain shares one budget and can never exhaust the native stack. An
//! interrupt stores [`INTERRUPT_SENTINEL`] instead; see `translate/budget.rs` in
//! `kiln-cranelift` for the checks that read it. A stack-overflow trap seen
//! while the sentinel is in place is reported as an interrupt.
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

use crate::module::{CompiledModule, FrameInfo};
use crate::vmcontext::{VMContext, VMRuntimeLimits, INTERRUPT_SENTINEL};
use kiln_environ::{FrameKind, Trap, VMOffsets};
use std::any::Any;
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Once;

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
    /// The Wasm backtrace (empty for a panic, which resumes as it was).
    pub backtrace: Vec<FrameInfo>,
    /// The trap unwound through more than [`FRAME_CAPACITY`] Wasm frames:
    /// `backtrace` holds the innermost of them only.
    pub backtrace_truncated: bool,
}

/// Wasm frames a backtrace records at most; a deeper one keeps the
/// innermost frames and says it is truncated. 32 Ki frames of 16 bytes
/// (512 KiB of address space per thread that runs Wasm, of which pages
/// are touched only as deep as backtraces go) cover the default 512 KiB
/// Wasm stack, whose frames take at least 16 bytes each.
pub const FRAME_CAPACITY: usize = 32 * 1024;

/// One frame as the signal handler records it: no names, no lookups.
#[derive(Debug, Clone, Copy)]
struct RawFrame {
    module: *const CompiledModule,
    pc: usize,
}

/// What the signal handler records about a trap, allocated once per
/// thread by its first [`call_wasm`] (outside any handler), so that the
/// handler itself allocates and frees nothing.
struct FaultSlot {
    /// The Wasm trap the handler recorded and no [`call_wasm`] has taken
    /// yet (`PENDING` is then [`HANDLER_TRAP`] or a stale record).
    trap: Option<Trap>,
    /// The raw frames of the last trap, innermost first. Its capacity is
    /// [`FRAME_CAPACITY`] and the handler never grows it.
    frames: Vec<RawFrame>,
    /// `frames[0].pc` is the faulting instruction, not a return address.
    first_exact: bool,
    /// The walk met more Wasm frames than `frames` has room for.
    truncated: bool,
}

impl FaultSlot {
    fn new() -> FaultSlot {
        FaultSlot {
            trap: None,
            frames: Vec::with_capacity(FRAME_CAPACITY),
            first_exact: false,
            truncated: false,
        }
    }

    /// Forgets the recorded frames, keeping their storage.
    fn clear_frames(&mut self) {
        self.frames.clear();
        self.first_exact = false;
        self.truncated = false;
    }

    /// Records a frame if there is room, without ever allocating.
    fn push_frame(&mut self, frame: RawFrame) {
        if self.frames.len() < self.frames.capacity() {
            // Below capacity, `push` writes in place.
            self.frames.push(frame);
        } else {
            self.truncated = true;
        }
    }
}

/// The value of `PENDING` that says "the trap is in this thread's
/// `FaultSlot`"; never the address of a `TrapRecord` (1 is not aligned
/// for one).
const HANDLER_TRAP: *mut TrapRecord = ptr::without_provenance_mut(1);

/// Owns this thread's [`FaultSlot`] and frees it at thread exit, after
/// clearing the pointer the handler reads.
struct FaultSlotOwner(*mut FaultSlot);

impl Drop for FaultSlotOwner {
    fn drop(&mut self) {
        FAULT.with(|f| f.set(ptr::null_mut()));
        // SAFETY: the pointer came from `Box::into_raw` in
        // `prepare_thread`, and with `FAULT` cleared nothing else can
        // reach it.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

thread_local! {
    /// The limits of the store whose Wasm this thread is running (set by
    /// the innermost [`call_wasm`]), or null outside Wasm: the "in Wasm"
    /// marker the signal handler checks before anything else.
    static ACTIVE: Cell<*const VMRuntimeLimits> = const { Cell::new(ptr::null()) };
    /// The trap being reported to the innermost [`call_wasm`] of this
    /// thread: a `Box<TrapRecord>` (a failing host function's, set outside
    /// the handler), [`HANDLER_TRAP`], or null.
    static PENDING: Cell<*mut TrapRecord> = const { Cell::new(ptr::null_mut()) };
    /// This thread's `FaultSlot`, or null before its first [`call_wasm`]
    /// (and after the thread's destructors freed it). A plain cell
    /// without destructor, so the handler reads it with one TLS load.
    static FAULT: Cell<*mut FaultSlot> = const { Cell::new(ptr::null_mut()) };
    /// Frees `FAULT`'s slot at thread exit.
    static FAULT_OWNER: std::cell::RefCell<Option<FaultSlotOwner>> =
        const { std::cell::RefCell::new(None) };
    /// The return address into Wasm that [`host_call_failed`] replaced
    /// with the trap stub, or 0.
    static RAISE_PC: Cell<usize> = const { Cell::new(0) };
    /// Set by [`raise_from_libcall`]: the next Wasm trap of this thread is
    /// the libcall's caller trapping for the reason already pending.
    static LIBCALL_RAISED: Cell<bool> = const { Cell::new(false) };
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
fn stack_limit_for(sp: usize, max_wasm_stack: usize) -> usize {
    let floor = sys::stack_floor()
        .saturating_add(HOST_STACK_RESERVE)
        .min(sp);
    sp.saturating_sub(max_wasm_stack).max(floor)
}

/// The current stack pointer: one register read.
#[inline(always)]
fn current_sp() -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer register; touches nothing.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags));
    }
    sp
}

/// Installs the stack limit for an outermost entry at `sp` when the last
/// outermost entry was elsewhere (see "The stack limit" above).
#[cold]
#[inline(never)]
fn update_stack_limit(l: &VMRuntimeLimits, sp: usize, cur: usize) {
    let limit = stack_limit_for(sp, l.max_wasm_stack);
    // An interrupt requested while no Wasm ran stays in force.
    if cur != limit && cur != INTERRUPT_SENTINEL {
        let _ = l
            .stack_limit
            .compare_exchange(cur, limit, Ordering::SeqCst, Ordering::Relaxed);
    }
    if l.stack_limit.load(Ordering::Relaxed) == limit {
        // SAFETY: the cache is only touched by the store's own thread.
        unsafe { *l.entry_cache.get() = (sp, limit) };
    }
}

/// Runs `f`, a call of a Wasm or host function's `native_call` or
/// `array_call`: a trap raised inside comes back as `Err`.
///
/// # Safety
///
/// `limits` must be the store's limits, valid for the whole call, and `f`
/// must not unwind (panics inside must be caught before reaching here).
#[inline(always)]
pub unsafe fn call_wasm<R>(
    limits: *const VMRuntimeLimits,
    f: impl FnOnce() -> R,
) -> Result<R, Box<TrapRecord>> {
    if FAULT.with(|s| s.get()).is_null() {
        prepare_thread();
    }
    // SAFETY: the caller guarantees `limits` is valid.
    let l = unsafe { &*limits };
    let depth_ptr = l.depth.get();
    // SAFETY: `depth` and `last_wasm_exit_fp` are only touched by the
    // store's own thread; no reference to them lives across `f`.
    let depth = unsafe { *depth_ptr };
    let mut saved_exit = 0;
    if depth == 0 {
        let sp = current_sp();
        let cur = l.stack_limit.load(Ordering::Relaxed);
        // SAFETY: as above.
        if (sp, cur) != unsafe { *l.entry_cache.get() } {
            update_stack_limit(l, sp, cur);
        }
    } else {
        // A nested entry: the host function that made it was called from
        // Wasm through a trampoline whose frame is recorded here, and may
        // still fail after this call returns; restore the record then.
        // SAFETY: as above.
        saved_exit = unsafe { *l.last_wasm_exit_fp.get() };
    }
    // SAFETY: as above.
    unsafe { *depth_ptr = depth + 1 };
    let outer = ACTIVE.with(|a| a.replace(limits));
    let r = f();
    ACTIVE.with(|a| a.set(outer));
    // SAFETY: as above.
    unsafe {
        *depth_ptr = depth;
        if depth != 0 {
            *l.last_wasm_exit_fp.get() = saved_exit;
        }
    }
    if !PENDING.with(|p| p.get()).is_null() {
        return Err(take_pending(l, depth == 0));
    }
    Ok(r)
}

/// What a thread needs before it first runs Wasm, set up outside any
/// signal handler: an alternate signal stack and the [`FaultSlot`] the
/// handler writes traps into.
#[cold]
#[inline(never)]
fn prepare_thread() {
    sys::ensure_alt_stack();
    let slot = Box::into_raw(Box::new(FaultSlot::new()));
    FAULT.with(|f| f.set(slot));
    let owned = FAULT_OWNER.try_with(|o| *o.borrow_mut() = Some(FaultSlotOwner(slot)));
    // Wasm run by another thread-local's destructor after ours has run:
    // the slot has no owner left and lives until the process ends, which
    // at thread exit is a small, bounded leak.
    let _ = owned;
}

/// This thread's `FaultSlot`.
///
/// # Safety
///
/// Only outside the signal handler, after this thread's [`call_wasm`]
/// prepared it, and with no other reference to the slot alive.
unsafe fn fault_slot<'a>() -> Option<&'a mut FaultSlot> {
    let p = FAULT.with(|f| f.get());
    // SAFETY: non-null `FAULT` points at this thread's live slot, and the
    // caller holds no other reference; the handler only writes it while
    // this thread runs Wasm, which is not now.
    unsafe { p.as_mut() }
}

/// Takes this thread's pending trap, telling an interrupt from a stack
/// overflow by the sentinel, consuming the interrupt in the outermost
/// entry, and symbolizing the frames the handler recorded.
///
/// Post-invariant: the thread's trap slot is empty and its `FaultSlot`
/// holds no trap and no frames.
#[cold]
#[inline(never)]
fn take_pending(l: &VMRuntimeLimits, outermost: bool) -> Box<TrapRecord> {
    let p = PENDING.with(|p| p.replace(ptr::null_mut()));
    // SAFETY: we are in `call_wasm`, after `f` returned: outside the
    // handler, with the slot prepared and no reference to it alive.
    let slot = unsafe { fault_slot() }.expect("call_wasm prepares the fault slot");
    let host = if p.is_null() || p == HANDLER_TRAP {
        None
    } else {
        // SAFETY: besides `HANDLER_TRAP`, `PENDING` only ever holds
        // pointers from `Box::into_raw`, and replacing it with null
        // transferred ownership here.
        Some(unsafe { Box::from_raw(p) })
    };
    // A trap the handler recorded is the one that ended the call; a host
    // record beside it can only be stale, and is dropped.
    let mut rec = match (slot.trap.take(), host) {
        (Some(t), _) => Box::new(TrapRecord {
            reason: TrapReason::Wasm(t),
            backtrace: Vec::new(),
            backtrace_truncated: false,
        }),
        (None, Some(h)) => h,
        (None, None) => unreachable!("HANDLER_TRAP is set only with the slot's trap"),
    };
    if !matches!(rec.reason, TrapReason::Panic(_)) {
        rec.backtrace = slot
            .frames
            .iter()
            .enumerate()
            // SAFETY: the frames were recorded during this call, from
            // modules of this store, which it keeps alive.
            .filter_map(|(i, f)| unsafe {
                (*f.module).frame_info(f.pc, i == 0 && slot.first_exact)
            })
            .collect();
        rec.backtrace_truncated = slot.truncated;
    }
    slot.clear_frames();
    let sentinel = l.stack_limit.load(Ordering::SeqCst) == INTERRUPT_SENTINEL;
    if sentinel && matches!(rec.reason, TrapReason::Wasm(Trap::StackOverflow)) {
        rec.reason = TrapReason::Wasm(Trap::Interrupt);
    }
    if outermost && matches!(rec.reason, TrapReason::Wasm(Trap::Interrupt)) {
        // The interrupt has been reported: consume it.
        let _ = l.stack_limit.compare_exchange(
            INTERRUPT_SENTINEL,
            usize::MAX,
            Ordering::SeqCst,
            Ordering::Relaxed,
        );
    }
    rec
}

/// Stores `rec` as this thread's pending trap, dropping any stale one.
/// Never called by the signal handler.
fn set_pending(rec: Box<TrapRecord>) {
    let old = PENDING.with(|p| p.replace(Box::into_raw(rec)));
    // SAFETY: host functions run inside `call_wasm`, outside the handler,
    // and hold no reference to the slot.
    if let Some(slot) = unsafe { fault_slot() } {
        slot.trap = None;
        slot.clear_frames();
    }
    if !old.is_null() && old != HANDLER_TRAP {
        // SAFETY: see `take_pending`.
        drop(unsafe { Box::from_raw(old) });
    }
}

/// Reports that a host function called with `caller_vmctx` failed. When
/// the caller is Wasm, the Wasm caller traps as soon as the host function
/// returns (see "Host functions that fail" above); when it is the host,
/// the host's [`call_wasm`] finds the trap on return. Either way the shim
/// must then return normally, with any value.
///
/// # Safety
///
/// `caller_vmctx` must be the `caller_vmctx` the host function received,
/// and the host function must return right after this call.
pub unsafe fn host_call_failed(caller_vmctx: *mut VMContext, reason: TrapReason) {
    set_pending(Box::new(TrapRecord {
        reason,
        backtrace: Vec::new(),
        backtrace_truncated: false,
    }));
    let base = caller_vmctx.cast::<u8>();
    // SAFETY: every context (instance or store) has the fixed header; only
    // instance contexts have an instance pointer, and only Wasm passes an
    // instance context as the caller.
    let (limits, from_wasm) = unsafe {
        (
            *(base.add(VMOffsets::RUNTIME_LIMITS as usize) as *const *const VMRuntimeLimits),
            !(*(base.add(VMOffsets::INSTANCE as usize) as *const *const u8)).is_null(),
        )
    };
    if from_wasm {
        // SAFETY: the wasm-to-host trampoline that called this host
        // function stored its frame pointer; its frame is live (we are
        // inside the call it makes) and holds the return address into
        // Wasm one word above the saved frame pointer.
        unsafe {
            let fp = *(*limits).last_wasm_exit_fp.get();
            let slot = (fp + RETURN_ADDRESS_OFFSET) as *mut usize;
            RAISE_PC.with(|r| r.set(*slot));
            *slot = sys::host_trap_stub();
        }
    }
}

/// Records `reason` as the trap a libcall's Wasm caller is about to raise:
/// the libcall returns a value that makes generated code execute a trap
/// instruction right away (see `kiln_environ::MEMORY_GROW_TRAP`), and the
/// handler then reports `reason` instead of that instruction's trap code,
/// with the backtrace from the caller.
///
/// # Safety
///
/// Only from a libcall called by Wasm, which must return right after this
/// with the value that makes its caller trap.
pub(crate) unsafe fn raise_from_libcall(reason: TrapReason) {
    set_pending(Box::new(TrapRecord {
        reason,
        backtrace: Vec::new(),
        backtrace_truncated: false,
    }));
    LIBCALL_RAISED.with(|r| r.set(true));
}

/// Where a frame keeps its return address, above the saved frame pointer.
const RETURN_ADDRESS_OFFSET: usize = 8;

/// Where the host resumes after a trap.
struct Resume {
    pc: usize,
    sp: usize,
    fp: usize,
}

/// Frames a walk visits at most, against a corrupted (cyclic) chain.
const MAX_FRAMES: usize = 10_000_000;

/// Walks from the frame of `pc` (with frame pointer `fp`) to the entry
/// trampoline, reloading into `regs` the callee-saved registers each
/// skipped frame saved and recording the Wasm frames into `slot`, whose
/// frames must be empty (it allocates nothing: see [`FaultSlot`]).
/// `trap` is the trap code when `pc` is the faulting instruction itself,
/// `None` when it is a return address (a failing host function's caller).
/// `None` if the chain leaves the store's code first.
///
/// # Safety
///
/// `fp` must be the frame pointer of the frame of `pc`, on this thread's
/// stack, with every frame up to the entry trampoline live; `code` must
/// be the code of the store running on this thread.
unsafe fn unwind_to_entry(
    code: &crate::module::StoreCode,
    mut pc: usize,
    mut fp: usize,
    trap: Option<Trap>,
    regs: &mut sys::CalleeSaved,
    slot: &mut FaultSlot,
) -> Option<Resume> {
    let mut exact = trap.is_some();
    slot.first_exact = exact;
    for _ in 0..MAX_FRAMES {
        let m = code.lookup(pc)?;
        let off = u32::try_from(pc - m.text_start()).ok()?;
        // A return address points after its call: look up the call.
        let at = if exact { off } else { off.checked_sub(1)? };
        let f = m.lookup_frame(at)?;
        // Every Kiln frame is 16-aligned and lies above the one it called.
        if !fp.is_multiple_of(16) {
            return None;
        }
        slot.push_frame(RawFrame { module: m, pc });
        // The prologue's stack check is the only trap with this code, and
        // it fires before the prologue saves anything (see
        // `kiln_environ::frames`): that frame has nothing to restore.
        let before_saves = exact && trap == Some(Trap::StackOverflow);
        if !before_saves {
            for s in f.saves {
                let slot = fp.checked_add_signed(s.fp_offset as isize)?;
                // SAFETY: the save slot lies in this live frame.
                regs.set(s.dwarf_reg, unsafe { *(slot as *const usize) })?;
            }
        }
        // SAFETY: every Kiln frame keeps the caller's frame pointer at
        // `fp` and the return address above it.
        let (caller_fp, ret) = unsafe {
            (
                *(fp as *const usize),
                *((fp + RETURN_ADDRESS_OFFSET) as *const usize),
            )
        };
        if f.kind == FrameKind::Entry {
            // The host called this trampoline with the C ABI: on return
            // its stack pointer is just above the return address.
            return Some(Resume {
                pc: ret,
                sp: fp + 2 * RETURN_ADDRESS_OFFSET,
                fp: caller_fp,
            });
        }
        if caller_fp <= fp {
            // A caller's frame lies above its callee's: a chain that does
            // not climb is corrupt.
            return None;
        }
        pc = ret;
        fp = caller_fp;
        exact = false;
    }
    None
}

/// Called by the signal handler with the faulting thread's context:
/// decides whether the fault is a Wasm trap and, if so, records it and
/// rewrites the context to resume the host. Returns `false` if it is not
/// ours.
///
/// # Safety
///
/// Only from the signal handler, with the faulting thread's context.
unsafe fn handle_trap(ctx: *mut libc::c_void) -> bool {
    // Nothing shared is touched before these two checks: a thread-local
    // marker, then the store's lock-free code list (see "What the handler
    // may do").
    let limits = ACTIVE.with(|a| a.get());
    if limits.is_null() {
        return false;
    }
    // SAFETY: `ACTIVE` is only non-null inside `call_wasm`, whose caller
    // keeps the limits alive for the whole call.
    let code = unsafe { &(*limits).code };
    // SAFETY: forwarded contract.
    let (pc, fp) = unsafe { sys::pc_fp(ctx) };
    let (trap, start) = if pc == sys::host_trap_stub() {
        // A host function failed (see `host_call_failed`): start at the
        // return address into Wasm it replaced.
        let raise = RAISE_PC.with(|r| r.replace(0));
        if raise == 0 || PENDING.with(|p| p.get()).is_null() {
            return false;
        }
        (None, raise)
    } else {
        let Some(module) = code.lookup(pc) else {
            return false;
        };
        let Some(trap) = module.lookup_trap(pc) else {
            return false;
        };
        (Some(trap), pc)
    };
    // From here on the fault is a trap of Wasm code this thread runs.
    // Nothing below allocates, frees or locks.
    let slot = FAULT.with(|f| f.get());
    // SAFETY: `call_wasm` prepared this thread's slot before it set
    // `ACTIVE` (it is null only after the thread's destructors freed it,
    // when no `call_wasm` can have set `ACTIVE` without preparing a new
    // one). This thread is executing Wasm, so no host code of this thread
    // holds a reference to the slot: the host only touches it before and
    // after its calls into Wasm, never across one.
    let Some(slot) = (unsafe { slot.as_mut() }) else {
        return false;
    };
    slot.clear_frames();
    // SAFETY: forwarded contract.
    let mut regs = unsafe { sys::CalleeSaved::read(ctx) };
    // SAFETY: `fp` is the faulting frame's (or, at the stub, the Wasm
    // caller's) frame pointer; Kiln code keeps frame pointers; `code` is
    // the running store's.
    let Some(resume) = (unsafe { unwind_to_entry(code, start, fp, trap, &mut regs, slot) }) else {
        // Not resumable: the fault is forwarded, and leaves no frames.
        slot.clear_frames();
        return false;
    };
    let raised = LIBCALL_RAISED.with(|r| r.replace(false));
    if let Some(t) = trap {
        let pending = PENDING.with(|p| p.get());
        // A libcall that recorded why its caller traps
        // (`raise_from_libcall`) has that record reported by
        // `take_pending`, with the frames just recorded in the slot.
        let from_libcall = raised && !pending.is_null() && pending != HANDLER_TRAP;
        if !from_libcall {
            // A stale host record in `PENDING` stays for `take_pending` to
            // free; the handler frees nothing.
            slot.trap = Some(t);
            if pending.is_null() {
                PENDING.with(|p| p.set(HANDLER_TRAP));
            }
        }
    }
    // SAFETY: forwarded contract.
    unsafe { sys::resume(ctx, &regs, resume.pc, resume.sp, resume.fp) };
    true
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
        // Only a fault the kernel raised for this thread's own instruction
        // (`si_code > 0`) can be a trap; `kill`/`tgkill` are forwarded.
        // SAFETY: the kernel passes a valid `siginfo_t` with SA_SIGINFO,
        // and we are in the signal handler with this thread's context.
        if unsafe { (*info).si_code > 0 && super::handle_trap(ctx) } {
            // Returning resumes the host with the rewritten context.
            return;
        }
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

    // The trap stub a failing host function returns into (see
    // `host_call_failed`): one trapping instruction, outside any module, so
    // the handler recognises it by address.
    macro_rules! trap_stub {
        ($trap:literal) => {
            std::arch::global_asm!(
                ".pushsection .text.kiln_host_trap_stub,\"ax\",@progbits",
                ".globl kiln_host_trap_stub",
                ".hidden kiln_host_trap_stub",
                ".p2align 4",
                "kiln_host_trap_stub:",
                $trap,
                ".popsection",
            );
        };
    }
    #[cfg(target_arch = "x86_64")]
    trap_stub!("ud2");
    #[cfg(target_arch = "aarch64")]
    trap_stub!("udf #0");
    extern "C" {
        fn kiln_host_trap_stub();
    }

    /// The address of the trap stub.
    pub(super) fn host_trap_stub() -> usize {
        kiln_host_trap_stub as *const () as usize
    }

    /// The callee-saved registers of a signal context that a trap may have
    /// to restore, indexed by position in `DWARF`.
    pub(super) struct CalleeSaved {
        values: [u64; DWARF.len()],
    }

    impl CalleeSaved {
        /// Sets the register with DWARF number `reg`; `None` for a
        /// register this architecture's frames never save.
        pub(super) fn set(&mut self, reg: u16, value: usize) -> Option<()> {
            let i = DWARF.iter().position(|r| *r == reg)?;
            self.values[i] = value as u64;
            Some(())
        }
    }

    /// The registers the System V ABI makes callee-saved, besides the frame
    /// pointer: rbx, r12-r15 (DWARF numbering).
    #[cfg(target_arch = "x86_64")]
    const DWARF: [u16; 5] = [3, 12, 13, 14, 15];
    #[cfg(target_arch = "x86_64")]
    const GREGS: [libc::c_int; 5] = [
        libc::REG_RBX,
        libc::REG_R12,
        libc::REG_R13,
        libc::REG_R14,
        libc::REG_R15,
    ];

    #[cfg(target_arch = "x86_64")]
    pub(super) unsafe fn pc_fp(ctx: *mut libc::c_void) -> (usize, usize) {
        // SAFETY: `ctx` is a `ucontext_t` from the kernel.
        unsafe {
            let uc = &*(ctx as *const libc::ucontext_t);
            (
                uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize,
                uc.uc_mcontext.gregs[libc::REG_RBP as usize] as usize,
            )
        }
    }

    #[cfg(target_arch = "x86_64")]
    impl CalleeSaved {
        pub(super) unsafe fn read(ctx: *mut libc::c_void) -> CalleeSaved {
            // SAFETY: `ctx` is a `ucontext_t` from the kernel.
            let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
            CalleeSaved {
                values: GREGS.map(|r| uc.uc_mcontext.gregs[r as usize] as u64),
            }
        }
    }

    /// Makes the interrupted thread continue at `pc` with these stack and
    /// frame pointers and callee-saved registers.
    #[cfg(target_arch = "x86_64")]
    pub(super) unsafe fn resume(
        ctx: *mut libc::c_void,
        regs: &CalleeSaved,
        pc: usize,
        sp: usize,
        fp: usize,
    ) {
        // SAFETY: `ctx` is a `ucontext_t` from the kernel; the kernel
        // restores these registers when the handler returns.
        let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
        let g = &mut uc.uc_mcontext.gregs;
        for (r, v) in GREGS.iter().zip(regs.values) {
            g[*r as usize] = v as i64;
        }
        g[libc::REG_RIP as usize] = pc as i64;
        g[libc::REG_RSP as usize] = sp as i64;
        g[libc::REG_RBP as usize] = fp as i64;
    }

    /// AAPCS64 callee-saved registers besides the frame pointer: x19-x28
    /// and the low halves of v8-v15 (DWARF 72-79).
    #[cfg(target_arch = "aarch64")]
    const DWARF: [u16; 18] = [
        19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 72, 73, 74, 75, 76, 77, 78, 79,
    ];

    #[cfg(target_arch = "aarch64")]
    pub(super) unsafe fn pc_fp(ctx: *mut libc::c_void) -> (usize, usize) {
        // SAFETY: `ctx` is a `ucontext_t` from the kernel.
        unsafe {
            let uc = &*(ctx as *const libc::ucontext_t);
            (uc.uc_mcontext.pc as usize, uc.uc_mcontext.regs[29] as usize)
        }
    }

    /// The `fpsimd_context` record in the signal frame's reserved area,
    /// where the kernel keeps the vector registers.
    #[cfg(target_arch = "aarch64")]
    unsafe fn fpsimd(ctx: *mut libc::c_void) -> Option<*mut u8> {
        const FPSIMD_MAGIC: u32 = 0x4650_8001;
        // SAFETY: `ctx` is a `ucontext_t` from the kernel; the reserved
        // area (4 KiB, 16-aligned) follows `pstate` and holds records of
        // (magic u32, size u32, payload), ended by a zero magic.
        unsafe {
            let uc = &mut *(ctx as *mut libc::ucontext_t);
            let after = std::ptr::addr_of_mut!(uc.uc_mcontext.pstate) as usize + 8;
            let mut p = (after + 15) & !15;
            let end = p + 4096;
            while p + 8 <= end {
                let magic = *(p as *const u32);
                let size = *((p + 4) as *const u32) as usize;
                if magic == FPSIMD_MAGIC {
                    return Some(p as *mut u8);
                }
                if magic == 0 || size < 8 {
                    return None;
                }
                p += size;
            }
            None
        }
    }

    #[cfg(target_arch = "aarch64")]
    impl CalleeSaved {
        pub(super) unsafe fn read(ctx: *mut libc::c_void) -> CalleeSaved {
            // SAFETY: `ctx` is a `ucontext_t` from the kernel.
            let uc = unsafe { &*(ctx as *const libc::ucontext_t) };
            let mut values = [0u64; DWARF.len()];
            values[..10].copy_from_slice(&uc.uc_mcontext.regs[19..29]);
            // SAFETY: `ctx` is the kernel's context; the fpsimd record's
            // payload, after its 8-byte header, is fpsr and fpcr (u32
            // each), then 32 16-byte vector registers, whose low halves
            // are the d registers.
            unsafe {
                if let Some(f) = fpsimd(ctx) {
                    for i in 0..8 {
                        values[10 + i] = *(f.add(16 + (8 + i) * 16) as *const u64);
                    }
                }
            }
            CalleeSaved { values }
        }
    }

    #[cfg(target_arch = "aarch64")]
    pub(super) unsafe fn resume(
        ctx: *mut libc::c_void,
        regs: &CalleeSaved,
        pc: usize,
        sp: usize,
        fp: usize,
    ) {
        // SAFETY: `ctx` is a `ucontext_t` from the kernel; the kernel
        // restores these registers when the handler returns.
        unsafe {
            let uc = &mut *(ctx as *mut libc::ucontext_t);
            for i in 0..10 {
                uc.uc_mcontext.regs[19 + i] = regs.values[i];
            }
            if let Some(f) = fpsimd(ctx) {
                for i in 0..8 {
                    *(f.add(16 + (8 + i) * 16) as *mut u64) = regs.values[10 + i];
                }
            }
            uc.uc_mcontext.regs[29] = fp as u64;
            uc.uc_mcontext.sp = sp as u64;
            uc.uc_mcontext.pc = pc as u64;
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
    /// handler can run when the thread's own stack is exhausted.
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
