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

/// One function's entry, as returned by [`FrameTable::lookup`].
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
    pub saves: &'a [SavedReg],
}

/// The frame descriptions of every function in a text section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameTable {
    /// (start, length, saves_done, first save, save count | kind << 16)
    funcs: Vec<[u32; 5]>,
    saves: Vec<SavedReg>,
}

const ENTRY_BIT: u32 = 1 << 16;

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

    /// The function containing `code_offset`.
    pub fn lookup(&self, code_offset: u32) -> Option<FrameEntry<'_>> {
        let i = match self.funcs.binary_search_by_key(&code_offset, |f| f[0]) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        let [start, length, saves_done, first, bits] = self.funcs[i];
        if code_offset - start >= length {
            return None;
        }
        let n = (bits & 0xffff) as usize;
        Some(FrameEntry {
            start,
            length,
            kind: if bits & ENTRY_BIT != 0 {
                FrameKind::Entry
            } else {
                FrameKind::Other
            },
            saves_done,
            saves: self.saves.get(first as usize..first as usize + n)?,
        })
    }

    /// The encoded form: function count, save count, five LE u32 per
    /// function, then (register, offset) as two LE u32 per save.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.funcs.len() * 20 + self.saves.len() * 8);
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

    /// Decodes [`FrameTable::encode`]'s output, checking that functions
    /// are sorted, disjoint and inside a text section of `text_len` bytes,
    /// that save ranges are in bounds, and that every save slot lies in
    /// the frame (below the frame pointer, within 64 KiB).
    pub fn decode(bytes: &[u8], text_len: u64) -> Result<FrameTable, ArtifactError> {
        let bad = |why: &str| ArtifactError::Corrupt(format!("frame table: {why}"));
        let word = |i: usize| -> Result<u32, ArtifactError> {
            bytes
                .get(i..i + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or_else(|| bad("truncated"))
        };
        let nfuncs = word(0)? as usize;
        let nsaves = word(4)? as usize;
        let expect = nfuncs
            .checked_mul(20)
            .and_then(|a| nsaves.checked_mul(8).and_then(|b| a.checked_add(b)))
            .and_then(|n| n.checked_add(8))
            .ok_or_else(|| bad("size overflow"))?;
        if bytes.len() != expect {
            return Err(bad("wrong size"));
        }
        let mut t = FrameTable {
            funcs: Vec::with_capacity(nfuncs),
            saves: Vec::with_capacity(nsaves),
        };
        let mut prev_end = 0u64;
        for i in 0..nfuncs {
            let mut f = [0u32; 5];
            for (j, w) in f.iter_mut().enumerate() {
                *w = word(8 + i * 20 + j * 4)?;
            }
            let [start, length, saves_done, first, bits] = f;
            let end = u64::from(start) + u64::from(length);
            let n = u64::from(bits & 0xffff);
            if u64::from(start) < prev_end
                || end > text_len
                || saves_done > length
                || bits & !(ENTRY_BIT | 0xffff) != 0
                || u64::from(first) + n > nsaves as u64
            {
                return Err(bad("function entry out of range"));
            }
            prev_end = end;
            t.funcs.push(f);
        }
        let base = 8 + nfuncs * 20;
        for i in 0..nsaves {
            let reg = word(base + i * 8)?;
            let off = word(base + i * 8 + 4)? as i32;
            if reg > u32::from(u16::MAX) || !(-65536..0).contains(&off) {
                return Err(bad("save slot out of range"));
            }
            t.saves.push(SavedReg {
                dwarf_reg: reg as u16,
                fp_offset: off,
            });
        }
        Ok(t)
    }
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
        let t = table();
        let f = t.lookup(50).unwrap();
        assert_eq!((f.start, f.kind, f.saves.len()), (0, FrameKind::Other, 2));
        assert!(t.lookup(100).is_none(), "gap between functions");
        let e = t.lookup(151).unwrap();
        assert_eq!((e.start, e.kind, e.saves_done), (112, FrameKind::Entry, 8));
        assert!(t.lookup(152).is_none());
    }

    #[test]
    fn round_trip_and_corruption() {
        let t = table();
        let bytes = t.encode();
        assert_eq!(FrameTable::decode(&bytes, 152).unwrap(), t);
        assert!(FrameTable::decode(&bytes, 151).is_err(), "past the text");
        assert!(FrameTable::decode(&bytes[..bytes.len() - 1], 152).is_err());
        let mut b = bytes.clone();
        b[8 + 20 * 2 + 4] = 0; // first save's offset becomes >= 0
        b[8 + 20 * 2 + 5] = 0;
        b[8 + 20 * 2 + 6] = 0;
        b[8 + 20 * 2 + 7] = 0;
        assert!(FrameTable::decode(&b, 152).is_err());
        let mut b = bytes;
        b[8 + 20 + 12] = 7; // first save index past the end
        assert!(FrameTable::decode(&b, 152).is_err());
    }
}
