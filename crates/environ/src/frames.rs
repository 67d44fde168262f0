//! Frame tables: what a trap needs to leave a compiled function's frame
//! without running its epilogue.
//!
//! # Why this exists
//!
//! A trap in Wasm does not unwind with `longjmp`, and nothing on the host
//! side saves registers before a call into Wasm. Instead the signal
//! handler *resumes the host* right after its call into the entry
//! trampoline, as if the trampoline had returned. For that it must hand
//! the host back the callee-saved registers it had at the call. Every
//! compiled function that changed one of them saved the caller's value in
//! its frame, at a fixed distance below its frame pointer; this table
//! records, for each function, which registers and where. The handler
//! walks the frame-pointer chain from the trap to the entry trampoline and
//! reloads, frame by frame, the values the skipped frames saved: the same
//! work their epilogues would have done.
//!
//! # Invariants
//!
//! * Every function of a module's text section (bodies and trampolines)
//!   has an entry, sorted by start offset, so a lookup is a binary search.
//! * Saves happen in the prologue, after the frame pointer is set up and
//!   after the stack-limit check. A trap in the innermost frame *before*
//!   `saves_done` (the prologue's stack check) has not saved or changed
//!   anything yet, so its saves must not be applied.
//! * A frame marked [`FrameKind::Entry`] is a host-to-Wasm trampoline: it
//!   was called by the host with the platform C ABI, so after its saves are
//!   applied the host resumes at its return address with the stack pointer
//!   at its frame pointer plus two words (the C ABI's callee never pops
//!   arguments).
//!
//! Registers are named by their DWARF numbers, which are stable across
//! Cranelift versions and are what the runtime maps onto a signal context.

use crate::ArtifactError;

/// What kind of code a frame belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A Wasm body or a trampoline called by Wasm.
    Other,
    /// A host-to-Wasm trampoline (`native_call` or `array_call` of a
    /// Wasm function): where a trap hands control back to the host.
    Entry,
}

/// One callee-saved register saved by a function's prologue.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SavedReg {
    /// DWARF register number.
    pub dwarf_reg: u16,
    /// Offset of the save slot from the frame pointer (negative).
    pub fp_offset: i32,
}

/// The frame description of one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameDesc {
    /// Offset in the function after which every save has happened.
    pub saves_done: u32,
    /// The registers saved.
    pub saves: Vec<SavedReg>,
}

/// One function's entry, as returned by [`lookup_frame`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameEntry<'a> {
    /// Start of the function in the text section.
    pub start: u32,
    /// Its length in bytes.
    pub length: u32,
    /// Entry trampoline or not.
    pub kind: FrameKind,
    /// Offset in the function after which every save has happened.
    pub saves_done: u32,
    /// The registers its prologue saved.
    pub saves: SavedRegs<'a>,
}

/// The registers a function's prologue saved, read from the encoded table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SavedRegs<'a>(&'a [u8]);

impl Iterator for SavedRegs<'_> {
    type Item = SavedReg;
    fn next(&mut self) -> Option<SavedReg> {
        let (rec, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        let [r0, r1, r2, r3, o0, o1, o2, o3] = *rec;
        Some(SavedReg {
            dwarf_reg: u32::from_le_bytes([r0, r1, r2, r3]) as u16,
            fp_offset: i32::from_le_bytes([o0, o1, o2, o3]),
        })
    }
}

/// The frame descriptions of every function in a text section, as the
/// compiler builds them. The runtime never decodes the table: it looks
/// functions up in the encoded section in place ([`lookup_frame`]), so
/// loading a module costs nothing per function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameTable {
    /// (start, length, saves_done, first save, save count | kind << 16)
    funcs: Vec<[u32; 5]>,
    saves: Vec<SavedReg>,
}

const ENTRY_BIT: u32 = 1 << 16;
const HEADER: usize = 8;
const FUNC_SIZE: usize = 20;
const SAVE_SIZE: usize = 8;

impl FrameTable {
    /// Adds the function at `start..start + length`; functions must be
    /// added in increasing order of `start`.
    pub fn push(&mut self, start: u32, length: u32, kind: FrameKind, desc: &FrameDesc) {
        debug_assert!(self.funcs.last().is_none_or(|f| f[0] + f[1] <= start));
        let first = self.saves.len() as u32;
        self.saves.extend_from_slice(&desc.saves);
        let bits = desc.saves.len() as u32
            | if kind == FrameKind::Entry {
                ENTRY_BIT
            } else {
                0
            };
        self.funcs
            .push([start, length, desc.saves_done, first, bits]);
    }

    /// The number of functions.
    pub fn len(&self) -> usize {
        self.funcs.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.funcs.is_empty()
    }

    /// The encoded form (the `.kiln.frames` section): function count, save
    /// count, five LE u32 per function (start, length, saves done, first
    /// save, save count with the entry flag in bit 16), then (register,
    /// offset) as two LE u32 per save.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER + self.funcs.len() * FUNC_SIZE + self.saves.len() * SAVE_SIZE,
        );
        out.extend_from_slice(&(self.funcs.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.saves.len() as u32).to_le_bytes());
        for f in &self.funcs {
            for w in f {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        for s in &self.saves {
            out.extend_from_slice(&u32::from(s.dwarf_reg).to_le_bytes());
            out.extend_from_slice(&s.fp_offset.to_le_bytes());
        }
        out
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Checks that an encoded frame table is consistent in size (counts
/// against length) and that its last function ends inside a text section
/// of `text_len` bytes: constant time, for loading. Lookups check the rest
/// as they go and never read out of bounds.
pub fn check_frame_table(section: &[u8], text_len: u64) -> Result<(), ArtifactError> {
    let bad = |why: &str| ArtifactError::Corrupt(format!("frame table: {why}"));
    let nfuncs = word(section, 0).ok_or_else(|| bad("truncated"))? as usize;
    let nsaves = word(section, 4).ok_or_else(|| bad("truncated"))? as usize;
    let expect = nfuncs
        .checked_mul(FUNC_SIZE)
        .and_then(|a| nsaves.checked_mul(SAVE_SIZE).and_then(|b| a.checked_add(b)))
        .and_then(|n| n.checked_add(HEADER))
        .ok_or_else(|| bad("size overflow"))?;
    if section.len() != expect {
        return Err(bad("wrong size"));
    }
    if nfuncs > 0 {
        let at = HEADER + (nfuncs - 1) * FUNC_SIZE;
        let end = u64::from(word(section, at).unwrap_or(u32::MAX))
            + u64::from(word(section, at + 4).unwrap_or(u32::MAX));
        if end > text_len {
            return Err(bad("functions past the text section"));
        }
    }
    Ok(())
}

/// The function containing `code_offset`, looked up by binary search in
/// an encoded table (a `.kiln.frames` section) in place. Never panics or
/// reads out of bounds, however damaged the section; entries whose saves
/// lie outside the section, or whose save slots are not below the frame
/// pointer within 64 KiB, are treated as missing.
pub fn lookup_frame(section: &[u8], code_offset: u32) -> Option<FrameEntry<'_>> {
    let nfuncs = word(section, 0)? as usize;
    let func = |i: usize| -> Option<[u32; 5]> {
        let at = HEADER + i.checked_mul(FUNC_SIZE)?;
        let mut f = [0u32; 5];
        for (j, w) in f.iter_mut().enumerate() {
            *w = word(section, at + j * 4)?;
        }
        Some(f)
    };
    let (mut lo, mut hi) = (0, nfuncs);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if func(mid)?[0] <= code_offset {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let [start, length, saves_done, first, bits] = func(lo.checked_sub(1)?)?;
    if code_offset - start >= length {
        return None;
    }
    let saves_at =
        HEADER + nfuncs.checked_mul(FUNC_SIZE)? + (first as usize).checked_mul(SAVE_SIZE)?;
    let n = (bits & 0xffff) as usize;
    let saves = SavedRegs(section.get(saves_at..saves_at.checked_add(n * SAVE_SIZE)?)?);
    if { saves }.any(|s| !(-65536..0).contains(&s.fp_offset)) {
        return None;
    }
    Some(FrameEntry {
        start,
        length,
        kind: if bits & ENTRY_BIT != 0 {
            FrameKind::Entry
        } else {
            FrameKind::Other
        },
        saves_done,
        saves,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> FrameTable {
        let mut t = FrameTable::default();
        let saves = vec![
            SavedReg {
                dwarf_reg: 3,
                fp_offset: -16,
            },
            SavedReg {
                dwarf_reg: 12,
                fp_offset: -8,
            },
        ];
        t.push(
            0,
            100,
            FrameKind::Other,
            &FrameDesc {
                saves_done: 20,
                saves,
            },
        );
        t.push(
            112,
            40,
            FrameKind::Entry,
            &FrameDesc {
                saves_done: 8,
                saves: vec![],
            },
        );
        t
    }

    #[test]
    fn lookup_finds_containing_function() {
        let bytes = table().encode();
        let f = lookup_frame(&bytes, 50).unwrap();
        assert_eq!((f.start, f.kind), (0, FrameKind::Other));
        assert_eq!(
            f.saves.collect::<Vec<_>>(),
            vec![
                SavedReg {
                    dwarf_reg: 3,
                    fp_offset: -16
                },
                SavedReg {
                    dwarf_reg: 12,
                    fp_offset: -8
                }
            ]
        );
        assert!(lookup_frame(&bytes, 100).is_none(), "gap between functions");
        let e = lookup_frame(&bytes, 151).unwrap();
        assert_eq!((e.start, e.kind, e.saves_done), (112, FrameKind::Entry, 8));
        assert_eq!(e.saves.count(), 0);
        assert!(lookup_frame(&bytes, 152).is_none());
    }

    #[test]
    fn damage_is_refused_or_harmless() {
        let bytes = table().encode();
        check_frame_table(&bytes, 152).unwrap();
        assert!(check_frame_table(&bytes, 151).is_err(), "past the text");
        assert!(check_frame_table(&bytes[..bytes.len() - 1], 152).is_err());
        // A save slot at or above the frame pointer makes the entry unusable.
        let mut b = bytes.clone();
        b[8 + 20 * 2 + 4..8 + 20 * 2 + 8].copy_from_slice(&0i32.to_le_bytes());
        assert!(lookup_frame(&b, 50).is_none());
        // Saves past the end of the section, and any truncation, find
        // nothing rather than reading out of bounds.
        let mut b = bytes.clone();
        b[8 + 12] = 7;
        assert!(lookup_frame(&b, 50).is_none());
        for len in 0..bytes.len() {
            let _ = lookup_frame(&bytes[..len], 50);
            let _ = lookup_frame(&bytes[..len], 151);
        }
    }
}
