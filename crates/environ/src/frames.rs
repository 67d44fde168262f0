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
//!   after the stack-limit check. The only trap that can fire before them
//!   is that check, and it is the only trap site with the `StackOverflow`
//!   code (the loop-header interrupt check has a code of its own), so a
//!   trap with that code in the innermost frame has saved nothing yet and
//!   its saves must not be applied. Note that this is decided by *what*
//!   the trap site is, not by *where* it lies: Cranelift emits the check's
//!   trap instruction out of line, after the function body, so an offset
//!   comparison with the last save would call every such trap "after the
//!   saves" and reload registers from slots the prologue never wrote.
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
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SavedReg {
    /// DWARF register number.
    pub dwarf_reg: u16,
    /// Offset of the save slot from the frame pointer (negative).
    pub fp_offset: i32,
}

/// The frame description of one function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameDesc {
    /// The registers saved.
    pub saves: Vec<SavedReg>,
}

/// One function's entry, as returned by [`lookup_frame`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameEntry<'a> {
    /// Start of the function in the text section.
    pub start: u32,
    /// Entry trampoline or not.
    pub kind: FrameKind,
    /// The registers its prologue saved.
    pub saves: SavedRegs<'a>,
}

/// The registers a function's prologue saved, read from the encoded table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SavedRegs<'a>(&'a [u8]);

impl Iterator for SavedRegs<'_> {
    type Item = SavedReg;
    fn next(&mut self) -> Option<SavedReg> {
        let (rec, rest) = self.0.split_first_chunk::<SAVE_SIZE>()?;
        self.0 = rest;
        let [r0, r1, o0, o1] = *rec;
        Some(SavedReg {
            dwarf_reg: u16::from_le_bytes([r0, r1]),
            fp_offset: -i32::from(u16::from_le_bytes([o0, o1])) * 8,
        })
    }
}

/// Why a frame description cannot be encoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameTableError {
    /// A save slot is not a multiple of 8 bytes below the frame pointer
    /// within 512 KiB.
    #[error("save slot at frame pointer {0:+} is out of range")]
    SlotOutOfRange(i32),
    /// More distinct sets of saved registers than the encoding can name.
    #[error("too many distinct sets of saved registers")]
    TooManyShapes,
}

/// The frame descriptions of every function in a text section, as the
/// compiler builds them. The runtime never decodes the table: it looks
/// functions up in the encoded section in place ([`lookup_frame`]), so
/// loading a module costs nothing per function.
///
/// Most functions save one of a handful of register sets ("shapes"), so
/// the encoding stores each shape once and gives each function 6 bytes:
/// its start and its shape. A function extends to
/// the next one's start; only trap sites and return addresses, which are
/// always inside a function, are ever looked up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameTable {
    /// (start, shape | entry bit)
    funcs: Vec<(u32, u16)>,
    shapes: Vec<Vec<SavedReg>>,
    shape_index: std::collections::HashMap<Vec<SavedReg>, u16>,
}

const ENTRY_BIT: u16 = 1 << 15;
/// Function count, shape count.
const HEADER: usize = 8;
/// Start (u32), shape with the entry bit (u16).
const FUNC_SIZE: usize = 6;
/// Per shape: the byte offset of its saves (u32) and their count (u32).
const SHAPE_SIZE: usize = 8;
/// Per save: DWARF register (u16), slot distance below the frame pointer
/// in 8-byte units (u16).
const SAVE_SIZE: usize = 4;

impl FrameTable {
    /// Adds the function starting at `start`; functions must be added in
    /// increasing order of `start`.
    pub fn push(
        &mut self,
        start: u32,
        kind: FrameKind,
        desc: &FrameDesc,
    ) -> Result<(), FrameTableError> {
        debug_assert!(self.funcs.last().is_none_or(|f| f.0 <= start));
        for s in &desc.saves {
            if s.fp_offset >= 0 || s.fp_offset % 8 != 0 || -s.fp_offset / 8 > i32::from(u16::MAX) {
                return Err(FrameTableError::SlotOutOfRange(s.fp_offset));
            }
        }
        let shape = match self.shape_index.get(&desc.saves) {
            Some(i) => *i,
            None => {
                let i = u16::try_from(self.shapes.len())
                    .ok()
                    .filter(|i| *i < ENTRY_BIT)
                    .ok_or(FrameTableError::TooManyShapes)?;
                self.shapes.push(desc.saves.clone());
                self.shape_index.insert(desc.saves.clone(), i);
                i
            }
        };
        let bits = shape
            | if kind == FrameKind::Entry {
                ENTRY_BIT
            } else {
                0
            };
        self.funcs.push((start, bits));
        Ok(())
    }

    /// The number of functions.
    pub fn len(&self) -> usize {
        self.funcs.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.funcs.is_empty()
    }

    /// The encoded form (the `.kiln.frames` section), all little-endian:
    /// function count and shape count (u32 each); per function its start
    /// (u32) and shape (u16, bit 15 marking entry trampolines); per shape the byte offset of its saves from the start
    /// of the section and their count (u32 each); then the saves, each a
    /// DWARF register (u16) and its slot's distance below the frame
    /// pointer in 8-byte units (u16).
    pub fn encode(&self) -> Vec<u8> {
        let nsaves: usize = self.shapes.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(
            HEADER
                + self.funcs.len() * FUNC_SIZE
                + self.shapes.len() * SHAPE_SIZE
                + nsaves * SAVE_SIZE,
        );
        out.extend_from_slice(&(self.funcs.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.shapes.len() as u32).to_le_bytes());
        for (start, bits) in &self.funcs {
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&bits.to_le_bytes());
        }
        let mut at = HEADER + self.funcs.len() * FUNC_SIZE + self.shapes.len() * SHAPE_SIZE;
        for shape in &self.shapes {
            out.extend_from_slice(&(at as u32).to_le_bytes());
            out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
            at += shape.len() * SAVE_SIZE;
        }
        for s in self.shapes.iter().flatten() {
            out.extend_from_slice(&s.dwarf_reg.to_le_bytes());
            out.extend_from_slice(&((-s.fp_offset / 8) as u16).to_le_bytes());
        }
        out
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn half(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// Checks that an encoded frame table is consistent in size and that every
/// function starts inside a text section of `text_len` bytes, in order, with
/// a shape that exists, and every shape's saves lie in the section: what
/// [`lookup_frame`] relies on to give the signal handler the right answer.
pub fn check_frame_table(section: &[u8], text_len: u64) -> Result<(), ArtifactError> {
    let bad = |why: &str| ArtifactError::Corrupt(format!("frame table: {why}"));
    let nfuncs = word(section, 0).ok_or_else(|| bad("truncated"))? as usize;
    let nshapes = word(section, 4).ok_or_else(|| bad("truncated"))? as usize;
    let shapes_at = nfuncs
        .checked_mul(FUNC_SIZE)
        .and_then(|n| n.checked_add(HEADER))
        .ok_or_else(|| bad("size overflow"))?;
    let saves_at = nshapes
        .checked_mul(SHAPE_SIZE)
        .and_then(|n| n.checked_add(shapes_at))
        .filter(|n| *n <= section.len())
        .ok_or_else(|| bad("truncated"))?;
    let mut prev = 0u32;
    for i in 0..nfuncs {
        let at = HEADER + i * FUNC_SIZE;
        let (start, bits) = (word(section, at), half(section, at + 4));
        let (Some(start), Some(bits)) = (start, bits) else {
            return Err(bad("truncated"));
        };
        if start < prev || u64::from(start) >= text_len || usize::from(bits & !ENTRY_BIT) >= nshapes
        {
            return Err(bad("function entry out of range"));
        }
        prev = start;
    }
    for i in 0..nshapes {
        let at = shapes_at + i * SHAPE_SIZE;
        let (Some(first), Some(n)) = (word(section, at), word(section, at + 4)) else {
            return Err(bad("truncated"));
        };
        let end = (n as usize)
            .checked_mul(SAVE_SIZE)
            .and_then(|b| b.checked_add(first as usize));
        if (first as usize) < saves_at || end.is_none_or(|e| e > section.len()) {
            return Err(bad("shape out of range"));
        }
    }
    Ok(())
}

/// The function containing `code_offset`, looked up by binary search in
/// an encoded table (a `.kiln.frames` section) in place. Never panics or
/// reads out of bounds, however damaged the section (a damaged section is
/// refused by [`check_frame_table`] before any code runs).
pub fn lookup_frame(section: &[u8], code_offset: u32) -> Option<FrameEntry<'_>> {
    let nfuncs = word(section, 0)? as usize;
    let start_of = |i: usize| word(section, HEADER + i * FUNC_SIZE);
    let (mut lo, mut hi) = (0, nfuncs);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if start_of(mid)? <= code_offset {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let at = HEADER + lo.checked_sub(1)? * FUNC_SIZE;
    let start = word(section, at)?;
    let bits = half(section, at + 4)?;
    let shape = HEADER + nfuncs * FUNC_SIZE + usize::from(bits & !ENTRY_BIT) * SHAPE_SIZE;
    let first = word(section, shape)? as usize;
    let n = word(section, shape + 4)? as usize;
    let saves = section.get(first..first.checked_add(n.checked_mul(SAVE_SIZE)?)?)?;
    Some(FrameEntry {
        start,
        kind: if bits & ENTRY_BIT != 0 {
            FrameKind::Entry
        } else {
            FrameKind::Other
        },
        saves: SavedRegs(saves),
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
        let desc = FrameDesc { saves };
        t.push(0, FrameKind::Other, &desc).unwrap();
        t.push(112, FrameKind::Entry, &FrameDesc { saves: vec![] })
            .unwrap();
        // Same shape as the first: stored once.
        t.push(160, FrameKind::Other, &desc).unwrap();
        t
    }

    #[test]
    fn lookup_finds_containing_function() {
        let t = table();
        let bytes = t.encode();
        assert_eq!(bytes.len(), 8 + 3 * 6 + 2 * 8 + 2 * 4, "shapes are shared");
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
        let e = lookup_frame(&bytes, 151).unwrap();
        assert_eq!((e.start, e.kind), (112, FrameKind::Entry));
        assert_eq!(e.saves.count(), 0);
        assert_eq!(lookup_frame(&bytes, 170).unwrap().saves.count(), 2);
    }

    #[test]
    fn bad_descriptions_are_refused() {
        let mut t = FrameTable::default();
        let one = |off| FrameDesc {
            saves: vec![SavedReg {
                dwarf_reg: 3,
                fp_offset: off,
            }],
        };
        assert!(t.push(0, FrameKind::Other, &one(0)).is_err());
        assert!(t.push(0, FrameKind::Other, &one(-12)).is_err());
        assert!(t.push(0, FrameKind::Other, &one(-8 * 70_000)).is_err());
    }

    #[test]
    fn damage_is_refused_or_harmless() {
        let bytes = table().encode();
        check_frame_table(&bytes, 200).unwrap();
        assert!(check_frame_table(&bytes, 160).is_err(), "past the text");
        for len in 0..bytes.len() {
            assert!(check_frame_table(&bytes[..len], 200).is_err());
            let _ = lookup_frame(&bytes[..len], 50);
            let _ = lookup_frame(&bytes[..len], 151);
        }
        // Out of order, a missing shape, saves outside the section.
        let mut b = bytes.clone();
        b[8..12].copy_from_slice(&150u32.to_le_bytes());
        assert!(check_frame_table(&b, 200).is_err());
        let mut b = bytes.clone();
        b[8 + 4] = 9;
        assert!(check_frame_table(&b, 200).is_err());
        let mut b = bytes;
        let shape0 = 8 + 3 * 6;
        b[shape0 + 4..shape0 + 8].copy_from_slice(&100u32.to_le_bytes());
        assert!(check_frame_table(&b, 200).is_err());
        for code in [0, 50, 151, 170] {
            let _ = lookup_frame(&b, code);
        }
    }
}
