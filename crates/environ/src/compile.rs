//! The interface between compiling and running: what a compiled module
//! records besides its machine code, and the libcalls code may make.

use crate::{DefinedFuncIndex, Module, PrimaryMap, Trap, TypeIndex};

/// Where a function's code sits in the text section.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct FunctionLoc {
    /// Offset from the start of the text section.
    pub start: u32,
    /// Length in bytes.
    pub length: u32,
}

/// The compiled code of one defined function and its entry trampolines.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct CompiledFunctionInfo {
    /// The body: the `wasm_call` entry point.
    pub wasm_func: FunctionLoc,
    /// The array-to-wasm trampoline, for escaping functions.
    pub array_to_wasm: Option<FunctionLoc>,
    /// The native-to-wasm trampoline, for escaping functions.
    pub native_to_wasm: Option<FunctionLoc>,
}

/// A trap site: the code offset of an instruction that may trap, and why.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TrapSite {
    /// Offset in the text section.
    pub code_offset: u32,
    /// The trap it raises.
    pub trap: Trap,
}

/// Maps a code offset to the Wasm byte offset it was compiled from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AddressMapEntry {
    /// Offset in the text section.
    pub code_offset: u32,
    /// Offset in the original Wasm binary.
    pub wasm_offset: u32,
}

/// Maps the code offsets a backtrace can ask about (trap sites, and the
/// last byte of each call) to Wasm byte offsets, compactly.
///
/// Entries are sorted by code offset and stored in blocks of
/// [`AddressMap::BLOCK`]: each block has a header (first code offset,
/// first Wasm offset, position of its deltas) and the rest of its entries
/// as LEB128 deltas (code: unsigned; Wasm: zigzag signed). A call-dense
/// module has one entry per call, and a delta pair usually fits in two
/// bytes instead of eight; a lookup binary-searches the headers and decodes
/// at most one block.
///
/// The map *is* its encoding (see [`AddressMap::encode`]), which is also the
/// artifact section: a loaded module looks offsets up in the mapped section
/// in place through an [`AddressMapView`], without decoding or copying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressMap {
    bytes: Vec<u8>,
}

impl Default for AddressMap {
    fn default() -> Self {
        AddressMap::new(&[])
    }
}

/// Appends `v` in unsigned LEB128.
pub(crate) fn leb_put(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn leb_get(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

impl AddressMap {
    /// Entries per block.
    pub const BLOCK: usize = 32;

    /// Builds the map from entries sorted by code offset.
    pub fn new(entries: &[AddressMapEntry]) -> AddressMap {
        let mut headers = Vec::new();
        let mut deltas = Vec::new();
        for block in entries.chunks(Self::BLOCK) {
            let first = block[0];
            headers.push((first.code_offset, first.wasm_offset, deltas.len() as u32));
            let mut prev = first;
            for e in &block[1..] {
                leb_put(&mut deltas, u64::from(e.code_offset - prev.code_offset));
                let d = i64::from(e.wasm_offset) - i64::from(prev.wasm_offset);
                leb_put(&mut deltas, ((d << 1) ^ (d >> 63)) as u64);
                prev = *e;
            }
        }
        let mut bytes = Vec::with_capacity(8 + headers.len() * 12 + deltas.len());
        bytes.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&(headers.len() as u32).to_le_bytes());
        for (c, w, p) in &headers {
            for v in [c, w, p] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        bytes.extend_from_slice(&deltas);
        AddressMap { bytes }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.view().map_or(0, |v| v.len())
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn view(&self) -> Option<AddressMapView<'_>> {
        AddressMapView::new(&self.bytes)
    }

    /// The Wasm offset recorded for exactly `code_offset`.
    pub fn lookup(&self, code_offset: u32) -> Option<u32> {
        self.view()?.lookup(code_offset)
    }

    /// The encoded form: `len`, the number of blocks, the headers, then the
    /// deltas (all integers little-endian u32).
    pub fn encode(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// Checks the structure of [`AddressMap::encode`]'s output (every
    /// header, in order) and copies it.
    pub fn decode(bytes: &[u8]) -> Option<AddressMap> {
        let v = AddressMapView::new(bytes)?;
        let mut prev: Option<(u32, u32)> = None;
        for b in 0..v.blocks {
            let (code, _, pos) = v.header(b)?;
            if pos as usize > v.deltas.len() || prev.is_some_and(|(c, p)| c >= code || p > pos) {
                return None;
            }
            prev = Some((code, pos));
        }
        Some(AddressMap {
            bytes: bytes.to_vec(),
        })
    }
}

/// An encoded [`AddressMap`] read in place, e.g. from a mapped artifact.
///
/// Creating one checks only the sizes (constant time); lookups check every
/// read, so a damaged encoding makes them find nothing or a wrong offset,
/// but never panic or read out of bounds. (An artifact's address map is
/// checksummed separately and verified before its first lookup, see
/// `artifact.rs`.)
#[derive(Copy, Clone, Debug)]
pub struct AddressMapView<'a> {
    len: u32,
    blocks: usize,
    headers: &'a [u8],
    deltas: &'a [u8],
}

impl<'a> AddressMapView<'a> {
    /// A view of `bytes`, if their sizes are consistent.
    pub fn new(bytes: &'a [u8]) -> Option<AddressMapView<'a>> {
        let len = le_u32(bytes, 0)?;
        let blocks = le_u32(bytes, 4)? as usize;
        if blocks != (len as usize).div_ceil(AddressMap::BLOCK) {
            return None;
        }
        let deltas_at = blocks.checked_mul(12)?.checked_add(8)?;
        Some(AddressMapView {
            len,
            blocks,
            headers: bytes.get(8..deltas_at)?,
            deltas: bytes.get(deltas_at..)?,
        })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn header(&self, b: usize) -> Option<(u32, u32, u32)> {
        let at = b.checked_mul(12)?;
        Some((
            le_u32(self.headers, at)?,
            le_u32(self.headers, at + 4)?,
            le_u32(self.headers, at + 8)?,
        ))
    }

    /// The Wasm offset recorded for exactly `code_offset`. Never panics,
    /// however damaged the encoding.
    pub fn lookup(&self, code_offset: u32) -> Option<u32> {
        // The last block whose first code offset is <= `code_offset`.
        let (mut lo, mut hi) = (0, self.blocks);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.header(mid)?.0 <= code_offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let b = lo.checked_sub(1)?;
        let (mut code, mut wasm, start) = self.header(b)?;
        if code == code_offset {
            return Some(wasm);
        }
        let end = match self.header(b + 1) {
            Some(h) => h.2 as usize,
            None => self.deltas.len(),
        };
        let mut pos = start as usize;
        while pos < end {
            code = code.checked_add(u32::try_from(leb_get(self.deltas, &mut pos)?).ok()?)?;
            let z = leb_get(self.deltas, &mut pos)?;
            let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
            wasm = u32::try_from(i64::from(wasm) + d).ok()?;
            if code == code_offset {
                return Some(wasm);
            }
            if code > code_offset {
                return None;
            }
        }
        None
    }
}

/// Everything the runtime needs about a compiled module besides its text.
#[derive(Clone, Debug)]
pub struct CompiledModuleInfo {
    /// The module.
    pub module: Module,
    /// Each defined function's code.
    pub funcs: PrimaryMap<DefinedFuncIndex, CompiledFunctionInfo>,
    /// One wasm-to-native trampoline per type of the type section.
    pub wasm_to_native: PrimaryMap<TypeIndex, FunctionLoc>,
    /// Trap sites, sorted by code offset.
    pub traps: Vec<TrapSite>,
    /// Wasm offsets of trap sites and calls, as the compiler produced them.
    /// Loading an artifact leaves this empty: the runtime looks offsets up
    /// in the artifact's `.kiln.addrmap` section in place (an
    /// [`AddressMapView`]) once its checksum has been verified, on first
    /// use.
    pub address_map: AddressMap,
    /// How to leave each function's frame on a trap.
    pub frames: crate::FrameTable,
}

impl CompiledModuleInfo {
    /// The trap at exactly `code_offset`, if one is recorded.
    pub fn lookup_trap(&self, code_offset: u32) -> Option<Trap> {
        let i = self
            .traps
            .binary_search_by_key(&code_offset, |t| t.code_offset)
            .ok()?;
        Some(self.traps[i].trap)
    }

    /// The Wasm byte offset of the instruction at `code_offset`: a trap
    /// site, or the last byte of a call (a return address minus one).
    pub fn lookup_wasm_offset(&self, code_offset: u32) -> Option<u32> {
        self.address_map.lookup(code_offset)
    }

    /// The defined function whose body contains `code_offset`.
    pub fn func_by_text_offset(&self, code_offset: u32) -> Option<DefinedFuncIndex> {
        // Bodies are laid out in index order (see `kiln-cranelift`), so
        // their starts are sorted: binary search, then check containment
        // (trampolines and padding sit between and after bodies). This runs
        // once per frame of a backtrace, so it must not be linear.
        let funcs = self.funcs.values().as_slice();
        let i = match funcs.binary_search_by_key(&code_offset, |f| f.wasm_func.start) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        let f = funcs[i].wasm_func;
        (code_offset < f.start.saturating_add(f.length))
            .then(|| DefinedFuncIndex::from_u32(i as u32))
    }
}

/// The abstract type of a libcall parameter or result.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BuiltinType {
    /// A pointer (`*mut VMContext`, a reference).
    Pointer,
    /// `u32`.
    I32,
    /// `u64`.
    I64,
}

/// Calls macro `$m` with the declaration of every libcall generated code
/// may make, in table order: `name(param types) -> result type;`, each
/// with its doc comment, types named as in [`BuiltinType`]. This is the one
/// declaration of the libcall table: [`BuiltinFunction`] is generated from
/// it here, and `kiln-runtime` generates its table of function pointers
/// from it, checking each function's signature against it, so the
/// compiler's view (index, parameters, result) and the runtime's cannot
/// diverge.
#[macro_export]
macro_rules! foreach_builtin_function {
    ($m:ident) => {
        $m! {
            /// `memory.grow(mem, delta_pages) -> old_pages`, `u64::MAX` when the
            /// memory did not grow, or [`MEMORY_GROW_TRAP`] when the caller must
            /// trap (the runtime has recorded why).
            memory_grow(I32, I64) -> I64;
            /// `memory.fill(mem, dst, byte, len) -> status`.
            memory_fill(I32, I64, I32, I64) -> I32;
            /// `memory.copy(dst_mem, dst, src_mem, src, len) -> status`.
            memory_copy(I32, I64, I32, I64, I64) -> I32;
            /// `memory.init(mem, data, dst, src, len) -> status`.
            memory_init(I32, I32, I64, I32, I32) -> I32;
            /// `data.drop(data)`.
            data_drop(I32);
            /// `table.grow(table, delta, init) -> old_size`, `u32::MAX` when the
            /// table did not grow, or [`TABLE_GROW_TRAP`] when the caller must trap
            /// (the runtime has recorded why).
            table_grow(I32, I32, Pointer) -> I32;
            /// `table.fill(table, dst, val, len) -> status`.
            table_fill(I32, I32, Pointer, I32) -> I32;
            /// `table.copy(dst_table, src_table, dst, src, len) -> status`.
            table_copy(I32, I32, I32, I32, I32) -> I32;
            /// `table.init(table, elem, dst, src, len) -> status`.
            table_init(I32, I32, I32, I32, I32) -> I32;
            /// `elem.drop(elem)`.
            elem_drop(I32);
            /// `new_epoch() -> status`: the engine's epoch reached the store's
            /// deadline. Runs the store's epoch-deadline callback, which either
            /// sets a new deadline (status 0: carry on) or decides that the caller
            /// traps (non-zero; `Interrupt`, unless the runtime has recorded
            /// another reason).
            new_epoch() -> I32;
        }
    };
}

macro_rules! declare_builtins {
    ($($(#[$doc:meta])* $name:ident($($p:ident),*) $(-> $r:ident)?;)*) => {
        /// The libcalls generated code may make, through the
        /// `VMBuiltinFunctions` table of function pointers in the
        /// `VMContext` (index = declaration order). Every one takes the
        /// caller's `vmctx` first. Those returning `I32` as their last
        /// result for a status return 0 on success and non-zero when the
        /// operation must trap; the caller emits the trap.
        #[derive(Copy, Clone, Debug, PartialEq, Eq)]
        #[allow(non_camel_case_types)]
        pub enum BuiltinFunction {
            $($(#[$doc])* $name,)*
        }

        impl BuiltinFunction {
            /// Every builtin, in table order.
            pub const ALL: &'static [BuiltinFunction] = &[$(BuiltinFunction::$name,)*];

            /// Parameter types, after the leading `vmctx`.
            pub fn params(self) -> &'static [BuiltinType] {
                match self {
                    $(BuiltinFunction::$name => &[$(BuiltinType::$p),*],)*
                }
            }

            /// Result type, if any.
            pub fn result(self) -> Option<BuiltinType> {
                match self {
                    $(BuiltinFunction::$name => declare_builtins!(@r $($r)?),)*
                }
            }

            /// Index in the table.
            pub fn index(self) -> u32 {
                self as u32
            }
        }
    };
    (@r) => { None };
    (@r $r:ident) => { Some(BuiltinType::$r) };
}

foreach_builtin_function!(declare_builtins);

/// What the `memory_grow` builtin returns when the grow must trap instead
/// of returning -1 (a resource limiter's error, or
/// `trap_on_grow_failure`). No memory's old size in pages comes near it.
pub const MEMORY_GROW_TRAP: u64 = u64::MAX - 1;

/// What the `table_grow` builtin returns when the grow must trap (see
/// [`MEMORY_GROW_TRAP`]); tables never hold that many elements.
pub const TABLE_GROW_TRAP: u32 = u32::MAX - 1;

/// Settings that both the code generator and the runtime must agree on,
/// because generated code bakes them in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tunables {
    /// Bytes of address space reserved for each 32-bit memory. With the
    /// full 4 GiB reserved, bounds checks for 32-bit addresses vanish:
    /// pages past the current length are inaccessible and fault.
    pub static_memory_reservation: u64,
    /// Bytes of inaccessible guard after each memory's reservation, which
    /// absorbs the static offset of a load or store.
    pub memory_guard_size: u64,
    /// Count fuel in generated code (`Config::consume_fuel`).
    pub consume_fuel: bool,
    /// Check the epoch deadline in generated code
    /// (`Config::epoch_interruption`).
    pub epoch_interruption: bool,
    /// Initialise memories from copy-on-write images where possible
    /// (`Config::memory_init_cow`); does not affect generated code.
    pub memory_images: bool,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            static_memory_reservation: 1 << 32,
            memory_guard_size: 2 << 30,
            consume_fuel: false,
            epoch_interruption: false,
            memory_images: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_map_round_trips_and_looks_up_exactly() {
        let entries: Vec<AddressMapEntry> = (0..1000u32)
            .map(|i| AddressMapEntry {
                code_offset: i * 13 + (i % 7),
                // Wasm offsets go back and forth (inlined order, loops).
                wasm_offset: 5000 + i * 6 - (i % 5) * 40,
            })
            .collect();
        let m = AddressMap::new(&entries);
        assert_eq!(m.len(), 1000);
        for e in &entries {
            assert_eq!(m.lookup(e.code_offset), Some(e.wasm_offset));
            assert_eq!(m.lookup(e.code_offset + 1), None, "only exact offsets");
        }
        let bytes = m.encode();
        assert!(bytes.len() < entries.len() * 3, "about two bytes an entry");
        assert_eq!(AddressMap::decode(&bytes), Some(m.clone()));
        // Damage never panics: it fails to decode or finds nothing.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            if let Some(d) = AddressMap::decode(&b) {
                let _ = d.lookup(entries[500].code_offset);
            }
        }
        assert_eq!(AddressMap::decode(&bytes[..5]), None);
    }
}
