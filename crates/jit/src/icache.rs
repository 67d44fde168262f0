//! Making freshly written code visible to instruction fetch.
//!
//! # The problem
//!
//! [`CodeMemory::new`](crate::CodeMemory::new) writes machine code with
//! ordinary stores and then lets threads jump to it. On AArch64 that is
//! not enough: the instruction side does not snoop the data side. The
//! stores may sit in the data cache (or past the point the instruction
//! cache refills from) while the instruction cache, or a core's pipeline,
//! still holds whatever those addresses held before: garbage from an
//! earlier module that was unmapped at the same address, say. The
//! architecture (Arm ARM, "Concurrent modification and execution of
//! instructions") makes software responsible, and Linux passes that on to
//! user space for code it writes itself.
//!
//! # What [`make_visible_to_instruction_fetch`] does on AArch64
//!
//! For every data-cache line of the range, `dc cvau` (clean to the point
//! of unification, where instruction and data caches see the same
//! memory), then `dsb ish` so the cleaning is complete for every core of
//! the inner-shareable domain; then for every instruction-cache line,
//! `ic ivau` (invalidate to the point of unification; broadcast to the
//! other cores), `dsb ish` again so the invalidation is complete, and
//! `isb`, so this core refetches. The line sizes come from `CTR_EL0`
//! (`DminLine`, bits 16-19, and `IminLine`, bits 0-3: log2 of the line in
//! 4-byte words), which Linux lets user space read. When `CTR_EL0.IDC`
//! (bit 28) is set the data side needs no cleaning for coherence, and when
//! `CTR_EL0.DIC` (bit 29) is set the instruction side needs no
//! invalidation; only the barriers remain. This is the sequence of
//! `__clear_cache` in compiler-rt and libgcc.
//!
//! The `isb` only resynchronizes the calling core. Another thread that
//! runs the code later, on another core, could still execute stale
//! instructions it fetched before the invalidation. Kiln's modules are
//! `Send + Sync`: a module compiled on one thread is routinely run on
//! another. So the sequence ends with
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)`, which makes
//! every core currently running a thread of this process execute a
//! context-synchronizing event (cores that run none will, when they switch
//! to one of our threads). The command needs a one-time registration
//! (`MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE`), done on first
//! use; a kernel without it (before Linux 4.16) makes loading fail with
//! that error rather than risk stale code.
//!
//! Code that reaches memory through a file mapping
//! ([`CodeMemory::from_file`](crate::CodeMemory::from_file)) was not
//! written by this process: the kernel cleans page-cache pages before it
//! maps them executable (that is how every shared library works), so only
//! the membarrier is needed there, and the mapped pages are not touched
//! (touching them would fault them all in, which mapped loading exists to
//! avoid).
//!
//! # x86-64
//!
//! Instruction fetch is coherent with stores on x86-64, and the code's
//! address reaches other threads only through synchronizing operations
//! (the `Arc` and locks that hand a module over), so nothing is needed;
//! the function is empty there.
//!
//! # What the tests can and cannot show
//!
//! The tests call this code path directly (line sizes, ranges that start
//! and end mid-line, empty ranges, code rewritten and rerun at the same
//! address) and run every compiled module through it. But Kiln's AArch64
//! tests run under qemu-user, which notices writes to translated code by
//! itself: there a *missing* flush passes too. Only real hardware can
//! catch a wrong sequence, so the sequence is kept to the textbook one.

use crate::JitError;

/// Makes `len` bytes of freshly written code at `start` visible to
/// instruction fetch on every core of this process (see the module docs).
/// `written` says whether this process wrote them with ordinary stores
/// (then the caches are maintained by address) or the kernel did (a file
/// mapping: then only other cores are resynchronized).
pub(crate) fn make_visible_to_instruction_fetch(
    start: *const u8,
    len: usize,
    written: bool,
) -> Result<(), JitError> {
    #[cfg(target_arch = "aarch64")]
    {
        if written {
            aarch64::clean_and_invalidate(start as usize, len);
        }
        aarch64::sync_other_cores()?;
    }
    #[cfg(not(target_arch = "aarch64"))]
    let _ = (start, len, written);
    Ok(())
}

#[cfg(target_arch = "aarch64")]
mod aarch64 {
    use crate::JitError;
    use std::sync::OnceLock;

    /// `CTR_EL0`, the cache type register (readable at EL0 on Linux, which
    /// emulates it where a CPU erratum requires).
    pub(super) fn ctr_el0() -> u64 {
        let ctr: u64;
        // SAFETY: reads a system register; no memory, no side effects.
        unsafe {
            std::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags));
        }
        ctr
    }

    /// The smallest data cache line, in bytes (`DminLine`).
    pub(super) fn dline(ctr: u64) -> usize {
        4 << ((ctr >> 16) & 0xf)
    }

    /// The smallest instruction cache line, in bytes (`IminLine`).
    pub(super) fn iline(ctr: u64) -> usize {
        4 << (ctr & 0xf)
    }

    /// Cleans `start..start + len` to the point of unification and
    /// invalidates it from the instruction caches, with the barriers that
    /// complete both, then resynchronizes this core.
    pub(super) fn clean_and_invalidate(start: usize, len: usize) {
        const IDC: u64 = 1 << 28;
        const DIC: u64 = 1 << 29;
        let ctr = ctr_el0();
        let end = start.saturating_add(len);
        if ctr & IDC == 0 {
            let line = dline(ctr);
            let mut p = start & !(line - 1);
            while p < end {
                // SAFETY: cache maintenance by address on memory this
                // process maps (the caller's code range): it changes no
                // memory contents, only where they are cached. `dc cvau`
                // needs the address to be readable, which code is.
                unsafe {
                    std::arch::asm!("dc cvau, {}", in(reg) p, options(nostack, preserves_flags))
                };
                p += line;
            }
        }
        // SAFETY: a barrier; no memory is accessed.
        unsafe { std::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
        if ctr & DIC == 0 {
            let line = iline(ctr);
            let mut p = start & !(line - 1);
            while p < end {
                // SAFETY: as for `dc cvau` above; invalidating instruction
                // cache lines only makes the next fetch read memory.
                unsafe {
                    std::arch::asm!("ic ivau, {}", in(reg) p, options(nostack, preserves_flags))
                };
                p += line;
            }
            // SAFETY: a barrier; no memory is accessed.
            unsafe { std::arch::asm!("dsb ish", options(nostack, preserves_flags)) };
        }
        // SAFETY: an instruction barrier: this core refetches what follows.
        unsafe { std::arch::asm!("isb", options(nostack, preserves_flags)) };
    }

    /// Makes every core that runs a thread of this process execute a
    /// context-synchronizing event, registering for the command first.
    pub(super) fn sync_other_cores() -> Result<(), JitError> {
        use rustix::thread::{membarrier, MembarrierCommand};
        static REGISTERED: OnceLock<Result<(), rustix::io::Errno>> = OnceLock::new();
        let what = "membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE)";
        REGISTERED
            .get_or_init(|| membarrier(MembarrierCommand::RegisterPrivateExpeditedSyncCore))
            .map_err(crate::errno(what))?;
        membarrier(MembarrierCommand::PrivateExpeditedSyncCore).map_err(crate::errno(
            "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data and instruction cache line sizes, in bytes, as this core's
    /// `CTR_EL0` gives them; `None` on other architectures.
    fn cache_line_sizes() -> Option<(usize, usize)> {
        #[cfg(target_arch = "aarch64")]
        {
            let ctr = aarch64::ctr_el0();
            Some((aarch64::dline(ctr), aarch64::iline(ctr)))
        }
        #[cfg(not(target_arch = "aarch64"))]
        None
    }

    /// The line sizes are what the architecture allows: powers of two from
    /// one word to 2 KiB (4 << 15 would be the field's maximum).
    #[test]
    fn cache_line_sizes_are_sane() {
        match cache_line_sizes() {
            Some((d, i)) => {
                for l in [d, i] {
                    assert!(l.is_power_of_two() && (4..=2048).contains(&l), "{l}");
                }
            }
            None => assert_ne!(std::env::consts::ARCH, "aarch64"),
        }
    }

    /// Ranges that start and end inside a line, single bytes and empty
    /// ranges go through the whole sequence without faulting.
    #[test]
    fn flushes_any_range_of_mapped_memory() {
        let buf = vec![0u8; 1000];
        for (at, len) in [(0, 1000), (3, 1), (63, 2), (500, 0), (999, 1), (1, 997)] {
            make_visible_to_instruction_fetch(buf[at..].as_ptr(), len, true).unwrap();
        }
        make_visible_to_instruction_fetch(buf.as_ptr(), buf.len(), false).unwrap();
    }

    /// `return n` as machine code for this architecture.
    fn return_const(n: u8) -> Vec<u8> {
        if cfg!(target_arch = "aarch64") {
            // mov w0, #n; ret
            let mov = 0x5280_0000u32 | (u32::from(n) << 5);
            [mov, 0xd65f_03c0]
                .iter()
                .flat_map(|w| w.to_le_bytes())
                .collect()
        } else {
            // mov eax, n; ret
            vec![0xb8, n, 0, 0, 0, 0xc3]
        }
    }

    /// Code written, flushed, run; then other code written at the same
    /// address, flushed, and run: the second call must see the new code.
    /// (Under qemu-user this passes without the flush too; see the module
    /// docs.)
    #[test]
    fn rewritten_code_runs_at_the_same_address() {
        use rustix::mm::{mmap_anonymous, mprotect, munmap, MapFlags, MprotectFlags, ProtFlags};
        let page = rustix::param::page_size();
        // SAFETY: a fresh private mapping, used only here and unmapped at
        // the end; nothing else refers to it.
        unsafe {
            let p = mmap_anonymous(
                std::ptr::null_mut(),
                page,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
            .unwrap()
            .cast::<u8>();
            // Not at the start of a line (AArch64 code must be 4-aligned).
            let at = if cfg!(target_arch = "aarch64") {
                36
            } else {
                37
            };
            for n in [42u8, 43, 7] {
                mprotect(p.cast(), page, MprotectFlags::READ | MprotectFlags::WRITE).unwrap();
                let code = return_const(n);
                std::ptr::copy_nonoverlapping(code.as_ptr(), p.add(at), code.len());
                make_visible_to_instruction_fetch(p.add(at), code.len(), true).unwrap();
                mprotect(p.cast(), page, MprotectFlags::READ | MprotectFlags::EXEC).unwrap();
                let f = std::mem::transmute::<*mut u8, extern "C" fn() -> u32>(p.add(at));
                assert_eq!(f(), u32::from(n));
            }
            munmap(p.cast(), page).unwrap();
        }
    }
}
