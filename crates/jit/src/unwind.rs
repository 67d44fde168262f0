//! Checking an object's `.eh_frame` before the system unwinder sees it.
//!
//! # Why
//!
//! Registering a section with `__register_frame` hands it to the
//! process-wide unwinder (libgcc's), which parses it lazily: the first
//! unwind *anywhere in the process* after the registration (a panic, a
//! `std::backtrace` capture, a C++ exception) walks every registered
//! section to sort its entries, trusting each record's length, each FDE's
//! CIE pointer and each CIE's augmentation string. A damaged section thus
//! crashes an unrelated thread later, inside the unwinder and with its
//! lock held, so even the fault report deadlocks. Fuzzing corrupted
//! artifacts found exactly that.
//!
//! # What is checked
//!
//! [`check_eh_frame`] accepts a section only if the unwinder's own walk
//! over it stays inside it and finds well-formed entries:
//!
//! - records with 32-bit lengths (the registration walker does not know
//!   64-bit ones) that tile the section exactly, followed by the zero
//!   terminator as its last four bytes, and by nothing else;
//! - every CIE and FDE parses completely (`gimli`), every FDE names a CIE
//!   of this section, and its call-frame instructions parse;
//! - every FDE describes code inside the object's text.
//!
//! What the instructions *say* (where registers were saved) is not checked
//! and cannot be: like the code they describe, they are trusted. They are
//! used only when unwinding through this object's own frames, that is
//! while its code runs.

use gimli::{BaseAddresses, CieOrFde, EhFrame, NativeEndian, UnwindSection};
use std::ops::Range;

/// Checks `eh_frame`, which will be registered at address `eh_addr`, for
/// an object whose text occupies the addresses `text`. Returns why it is
/// refused.
pub(crate) fn check_eh_frame(
    eh_frame: &[u8],
    eh_addr: u64,
    text: Range<u64>,
) -> Result<(), String> {
    // The registration walker's view: 32-bit lengths, up to a zero word.
    let mut at = 0usize;
    loop {
        let word = eh_frame
            .get(at..at + 4)
            .ok_or("a record runs past the end of the section")?;
        let len = u32::from_ne_bytes(word.try_into().expect("four bytes"));
        if len == 0 {
            if at + 4 != eh_frame.len() {
                return Err("the terminator is not at the end of the section".into());
            }
            break;
        }
        if len == u32::MAX {
            return Err("a record has a 64-bit length".into());
        }
        // A CIE id or CIE pointer follows the length.
        if len < 4 || (len as usize) > eh_frame.len() - at - 4 {
            return Err(format!("a record at offset {at} has a bad length {len}"));
        }
        at += 4 + len as usize;
    }

    // Every entry, parsed in full.
    let bad = |e: gimli::Error| format!("a malformed entry: {e}");
    let section = EhFrame::new(eh_frame, NativeEndian);
    let bases = BaseAddresses::default()
        .set_eh_frame(eh_addr)
        .set_text(text.start);
    let mut entries = section.entries(&bases);
    while let Some(entry) = entries.next().map_err(bad)? {
        match entry {
            CieOrFde::Cie(cie) => {
                let mut insns = cie.instructions(&section, &bases);
                while insns.next().map_err(bad)?.is_some() {}
            }
            CieOrFde::Fde(partial) => {
                let fde = partial
                    .parse(|s, b, o| s.cie_from_offset(b, o))
                    .map_err(bad)?;
                let start = fde.initial_address();
                let end = start.checked_add(fde.len());
                if start < text.start || end.is_none_or(|end| end > text.end) {
                    return Err(format!(
                        "an entry describes code outside the text ({start:#x}, {} bytes)",
                        fde.len()
                    ));
                }
                let mut insns = fde.instructions(&section, &bases);
                while insns.next().map_err(bad)?.is_some() {}
            }
        }
    }
    Ok(())
}
