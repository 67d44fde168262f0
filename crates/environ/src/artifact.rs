//! The compiled-artifact format: Kiln's own sections in the ELF object.
//!
//! A compiled module is an ELF object whose `.text` holds the code and
//! whose `.kiln.*` sections hold what the runtime needs besides:
//!
//! | section | contents |
//! | --- | --- |
//! | `.kiln.info` | text header: format, Kiln version, compatibility fingerprint, the CPU features the code needs (see `cpu.rs`) |
//! | `.kiln.wasm` | the original module without its code section (the code is in `.text`), re-read at load for its declarations; function names stay raw until a backtrace asks for one |
//! | `.kiln.funcs` | per defined function: body, array and native entry (start, length) as six LE u32, `u32::MAX` for none |
//! | `.kiln.w2n` | per type: the wasm-to-native trampoline (start, length) |
//! | `.kiln.traps` | (code offset u32, trap code u32) pairs, sorted, read in place |
//! | `.kiln.mapsum` | a 64-bit checksum of `.kiln.addrmap` |
//! | `.kiln.framesum` | a 64-bit checksum of `.kiln.frames` |
//! | `.kiln.sum` | a 64-bit checksum of all the sections above |
//! | `.kiln.frames` | the `FrameTable`: per function, the callee-saved registers its prologue saves (see `frames.rs`), read in place |
//! | `.kiln.addrmap` | the `AddressMap`, in its compact encoding, read in place |
//!
//! The sections appear in this order, so that those read at load
//! ([`sections::READ_AT_LOAD`]) are contiguous and the large, rarely read
//! address map comes last. The header's first line names the format
//! (`kiln-artifact 3`); an artifact of another format is refused as
//! incompatible. Bump that number with any change to the encoding of a
//! section or to what a section means (format 3: the frame table no longer
//! records where each prologue's saves end, see `frames.rs`), so that an
//! artifact is never read with another format's rules.
//!
//! The checksum is what lets loading skip re-validating the embedded
//! module: a damaged artifact fails it and is refused, so the declarations
//! read at load are byte for byte those the compiler validated. (It is no
//! defence against a crafted artifact, which can contain any machine code
//! anyway; that is why deserializing is `unsafe`.)
//!
//! Decoding checks every count and every code offset against the text
//! length, so a corrupt artifact is an error, never a jump into the void.
//!
//! # What loading does not touch
//!
//! Loading is meant to cost a mapping and a protection change, whatever the
//! module's size, so it reads only what it must: the header, the
//! declarations and the function and trampoline tables, whose every offset
//! it checks against the text. The trap table is checksummed at load (the
//! signal handler needs it, and cannot report a late error) but not
//! decoded: lookups binary-search the section in place. The
//! address map, the largest section of a call-dense module, is only needed
//! for the Wasm offsets of a backtrace: it stays in the mapped artifact, is
//! looked up in place, and is checked against `.kiln.mapsum` before its
//! first lookup ([`verify_address_map`]). A damaged address map therefore
//! does not fail the load; its backtraces carry no Wasm offsets instead,
//! and lookups in it can never read out of bounds. Function names are
//! likewise parsed on the first backtrace (they are covered by `.kiln.sum`
//! with the rest of `.kiln.wasm`).

use crate::*;

/// Section names.
pub mod sections {
    /// The header.
    pub const INFO: &str = ".kiln.info";
    /// The original Wasm bytes.
    pub const WASM: &str = ".kiln.wasm";
    /// Function locations.
    pub const FUNCS: &str = ".kiln.funcs";
    /// Wasm-to-native trampolines.
    pub const W2N: &str = ".kiln.w2n";
    /// Trap table.
    pub const TRAPS: &str = ".kiln.traps";
    /// Address map.
    pub const ADDRMAP: &str = ".kiln.addrmap";
    /// Frame table.
    pub const FRAMES: &str = ".kiln.frames";
    /// Checksum of the address map, verified before its first lookup.
    pub const MAPSUM: &str = ".kiln.mapsum";
    /// Checksum of the frame table, verified before the first
    /// instantiation ([`verify_frame_table`](crate::verify_frame_table)).
    pub const FRAMESUM: &str = ".kiln.framesum";
    /// Checksum of the [`CHECKED`] sections, verified at load.
    pub const SUM: &str = ".kiln.sum";
    /// The sections the checksum covers, in order.
    pub const CHECKED: [&str; 7] = [INFO, WASM, FUNCS, W2N, TRAPS, MAPSUM, FRAMESUM];
    /// The sections loading reads (the others are read in place, on
    /// demand): in this order in the artifact, so that a loader reading
    /// them from a file needs one read.
    pub const READ_AT_LOAD: [&str; 8] = [INFO, WASM, FUNCS, W2N, TRAPS, MAPSUM, FRAMESUM, SUM];
}

/// A fast 64-bit checksum, to detect damaged artifacts (not an adversary).
///
/// Four independent lanes each take one 8-byte word of every 32-byte
/// block, so the multiplications overlap instead of waiting on each other:
/// several bytes per cycle, which matters because loading checksums every
/// metadata section it trusts.
pub fn checksum<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let word = |c: &[u8]| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        let mut lanes = [h, h ^ 1, h ^ 2, h ^ 3];
        let mut blocks = part.chunks_exact(32);
        for b in &mut blocks {
            for (i, lane) in lanes.iter_mut().enumerate() {
                *lane = step(*lane, word(&b[i * 8..]));
            }
        }
        h = lanes.iter().fold(h, |h, l| step(h, *l));
        let mut words = blocks.remainder().chunks_exact(8);
        for w in &mut words {
            h = step(h, word(w));
        }
        for b in words.remainder() {
            h = step(h, u64::from(*b));
        }
        // Length separates the parts, so bytes cannot move between them.
        h = step(h, part.len() as u64);
    }
    h
}

/// The first line of every header.
pub const ARTIFACT_MAGIC: &str = "kiln-artifact 3";

/// The first line's prefix, common to every format version.
const MAGIC_PREFIX: &str = "kiln-artifact ";

/// Why an artifact could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Not a Kiln artifact at all.
    #[error("not a Kiln compiled module: {0}")]
    NotAnArtifact(String),
    /// Built by another version or with other settings.
    #[error("incompatible compiled module: {0}")]
    Incompatible(String),
    /// Structurally broken.
    #[error("corrupt compiled module: {0}")]
    Corrupt(String),
    /// Compiled for CPU features this host lacks (see `cpu.rs`): running
    /// it could die of an illegal instruction.
    #[error("compiled module needs CPU features this host ({arch}) lacks: {missing}")]
    MissingCpuFeatures {
        /// The host's architecture.
        arch: String,
        /// The missing features, comma-separated, as Rust's
        /// `is_*_feature_detected!` macros name them.
        missing: String,
    },
}

/// The header for an artifact built by this Kiln with `fingerprint`,
/// whose code may use the CPU features of `cpu_features` (a
/// [`cpu_features_line`]).
pub fn artifact_header(fingerprint: &str, cpu_features: &str) -> String {
    format!("{ARTIFACT_MAGIC}\nversion={VERSION}\nsettings={fingerprint}\n{cpu_features}\n")
}

fn u32s(values: impl IntoIterator<Item = u32>) -> Vec<u8> {
    values.into_iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn loc_words(l: Option<FunctionLoc>) -> [u32; 2] {
    l.map_or([u32::MAX, u32::MAX], |l| [l.start, l.length])
}

/// Encodes `info` into the `.kiln.*` sections (all but `.text`).
pub fn encode_sections(
    info: &CompiledModuleInfo,
    wasm: &[u8],
    header: &str,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = vec![
        (sections::INFO, header.as_bytes().to_vec()),
        (sections::WASM, skeleton(wasm)),
        (
            sections::FUNCS,
            u32s(info.funcs.values().flat_map(|f| {
                let [a, b] = loc_words(Some(f.wasm_func));
                let [c, d] = loc_words(f.array_to_wasm);
                let [e, g] = loc_words(f.native_to_wasm);
                [a, b, c, d, e, g]
            })),
        ),
        (
            sections::W2N,
            u32s(
                info.wasm_to_native
                    .values()
                    .flat_map(|l| [l.start, l.length]),
            ),
        ),
        (
            sections::TRAPS,
            u32s(
                info.traps
                    .iter()
                    .flat_map(|t| [t.code_offset, u32::from(t.trap.to_u8())]),
            ),
        ),
    ];
    let map = info.address_map.encode();
    let frames = info.frames.encode();
    out.push((
        sections::MAPSUM,
        checksum([&map[..]]).to_le_bytes().to_vec(),
    ));
    out.push((
        sections::FRAMESUM,
        checksum([&frames[..]]).to_le_bytes().to_vec(),
    ));
    let sum = checksum(out.iter().map(|(_, d)| d.as_slice()));
    out.push((sections::SUM, sum.to_le_bytes().to_vec()));
    // Last, so that the sections read at load lie together in the file.
    out.push((sections::FRAMES, frames));
    out.push((sections::ADDRMAP, map));
    out
}

/// `wasm` without its code section. Loading only needs the module's
/// declarations, which it reads without validating (see
/// `translate_metadata`), so the bodies need no placeholders: not even
/// the one entry per function that the parser would step over at load.
/// Byte offsets in the address map keep referring to the original module.
fn skeleton(wasm: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wasm.len().min(1 << 20));
    let mut copied = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        // The module validated when it was compiled; stop copying smartly
        // at the first surprise and keep the rest verbatim.
        let Ok(payload) = payload else { break };
        if let wasmparser::Payload::CodeSectionStart {
            unchecked_range: range,
            ..
        } = payload
        {
            let range = range.start as usize..range.end as usize;
            // The section header (id, size) precedes `range`; it starts
            // where the previous section ended.
            out.extend_from_slice(&wasm[copied..prev_section_end(wasm, copied, range.start)]);
            copied = range.end;
        }
    }
    out.extend_from_slice(&wasm[copied..]);
    out
}

/// Where the header of the section whose contents start at `contents`
/// begins: the id byte and the LEB128 size sit right before the contents,
/// after `from`.
fn prev_section_end(wasm: &[u8], from: usize, contents: usize) -> usize {
    // Walk back over the LEB128 size (continuation bits set on all but its
    // last byte) and the id byte.
    let mut i = contents - 1; // last byte of the size
    while i > from && wasm[i - 1] & 0x80 != 0 {
        i -= 1;
    }
    i - 1
}

/// Little-endian u32 number `i` of `r` (which must hold it: the callers
/// index records of known length). Always inlined: as a closure, LLVM
/// left it a call per word in the load's hottest loop.
#[inline(always)]
fn le_word(r: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]])
}

/// The records of `N` little-endian u32 words in section `name`, read in
/// place (no intermediate vector of words).
fn records<'a, const N: usize>(
    bytes: &'a [u8],
    name: &str,
) -> Result<impl ExactSizeIterator<Item = [u32; N]> + 'a, ArtifactError> {
    if !bytes.len().is_multiple_of(4 * N) {
        return Err(ArtifactError::Corrupt(format!(
            "section {name} has a partial record"
        )));
    }
    Ok(bytes
        .chunks_exact(4 * N)
        .map(|c| std::array::from_fn(|i| le_word(c, i))))
}

/// The function table, checked against the escaping functions' `slots`
/// and the text length. Its own function, not inlined: in the middle of
/// `decode_sections` the loop's values lived on the stack, and this runs
/// once per function at every load.
#[inline(never)]
fn decode_funcs(
    table: &[u8],
    slots: &[Option<u32>],
    text_len: u32,
) -> Result<PrimaryMap<DefinedFuncIndex, CompiledFunctionInfo>, ArtifactError> {
    let outside = |start: u32, len: u32| {
        ArtifactError::Corrupt(format!(
            "function at {start:#x}+{len:#x} lies outside the text section"
        ))
    };
    let inside = |start: u32, len: u32| start.checked_add(len).is_some_and(|end| end <= text_len);
    let mut funcs = PrimaryMap::with_capacity(slots.len());
    // A plain loop over the bytes: iterator adapters returning arrays
    // through memory cost several times more here (store-forwarding
    // stalls), and this runs for every function at every load.
    for (r, slot) in table.chunks_exact(24).zip(slots) {
        let w = [
            le_word(r, 0),
            le_word(r, 1),
            le_word(r, 2),
            le_word(r, 3),
            le_word(r, 4),
            le_word(r, 5),
        ];
        let none = |i: usize| w[i] == u32::MAX && w[i + 1] == u32::MAX;
        let (has_array, has_native) = (!none(2), !none(4));
        // Non-short-circuiting `&`: one branch per record, not six.
        let ok = inside(w[0], w[1])
            & (!has_array | inside(w[2], w[3]))
            & (!has_native | inside(w[4], w[5]));
        if !ok {
            let bad = [0, 2, 4]
                .into_iter()
                .find(|i| !none(*i) && !inside(w[*i], w[*i + 1]))
                .unwrap_or(0);
            return Err(outside(w[bad], w[bad + 1]));
        }
        if slot.is_some() != has_array || slot.is_some() != has_native {
            return Err(ArtifactError::Corrupt(
                "entry trampolines do not match escaping functions".into(),
            ));
        }
        let loc = |i: usize| FunctionLoc {
            start: w[i],
            length: w[i + 1],
        };
        funcs.push(CompiledFunctionInfo {
            wasm_func: loc(0),
            array_to_wasm: has_array.then(|| loc(2)),
            native_to_wasm: has_native.then(|| loc(4)),
        });
    }
    Ok(funcs)
}

/// Decodes an artifact's sections, checking the header against
/// `expected_header` and every offset against `text_len`.
pub fn decode_sections<'a>(
    section: impl Fn(&str) -> Option<&'a [u8]>,
    expected_header: &str,
    features: wasmparser::WasmFeatures,
    text_len: usize,
) -> Result<CompiledModuleInfo, ArtifactError> {
    let get = |name: &str| {
        section(name).ok_or_else(|| ArtifactError::NotAnArtifact(format!("no {name} section")))
    };
    let header = std::str::from_utf8(get(sections::INFO)?)
        .map_err(|_| ArtifactError::NotAnArtifact("header is not text".into()))?;
    if !header.starts_with(MAGIC_PREFIX) {
        return Err(ArtifactError::NotAnArtifact("bad header".into()));
    }
    if header.lines().next() != Some(ARTIFACT_MAGIC) {
        return Err(ArtifactError::Incompatible(format!(
            "artifact format {:?}, this Kiln reads {ARTIFACT_MAGIC:?}",
            header.lines().next().unwrap_or("")
        )));
    }
    // The CPU features need not match: the host may have more than the
    // code uses. They are checked below, once the header is known to be
    // intact.
    if !without_cpu_features(header).eq(without_cpu_features(expected_header)) {
        let line = |h: &str, k: &str| {
            h.lines()
                .find(|l| l.starts_with(k))
                .unwrap_or("")
                .to_string()
        };
        let what = if line(header, "version=") != line(expected_header, "version=") {
            format!(
                "built by Kiln {}, this is Kiln {VERSION}",
                line(header, "version=").trim_start_matches("version=")
            )
        } else {
            "built with different compiler settings or for another target".to_string()
        };
        return Err(ArtifactError::Incompatible(what));
    }
    let mut parts = Vec::with_capacity(sections::CHECKED.len());
    for name in sections::CHECKED {
        parts.push(get(name)?);
    }
    let stored = get(sections::SUM)?;
    if stored.len() != 8
        || u64::from_le_bytes(stored.try_into().unwrap_or([0; 8])) != checksum(parts)
    {
        return Err(ArtifactError::Corrupt(
            "checksum mismatch: the file is damaged".into(),
        ));
    }
    check_cpu_features(header)?;
    let t = translate::translate_metadata(get(sections::WASM)?, features)
        .map_err(|e| ArtifactError::Corrupt(format!("embedded module: {e}")))?;
    let module = t.module;
    let text_len =
        u32::try_from(text_len).map_err(|_| ArtifactError::Corrupt("text too large".into()))?;
    // Plain functions returning a `Result` only on the cold path: this
    // loop runs once per function at every load.
    let outside = |start: u32, len: u32| {
        ArtifactError::Corrupt(format!(
            "function at {start:#x}+{len:#x} lies outside the text section"
        ))
    };
    let inside = |start: u32, len: u32| start.checked_add(len).is_some_and(|end| end <= text_len);
    let check = |start: u32, len: u32| -> Result<FunctionLoc, ArtifactError> {
        if inside(start, len) {
            Ok(FunctionLoc { start, length: len })
        } else {
            Err(outside(start, len))
        }
    };

    let f = records::<6>(get(sections::FUNCS)?, sections::FUNCS)?;
    if f.len() != module.num_defined_funcs() {
        return Err(ArtifactError::Corrupt(
            "function table does not match the module".into(),
        ));
    }
    let funcs = decode_funcs(
        get(sections::FUNCS)?,
        module.func_ref_slots.values().as_slice(),
        text_len,
    )?;
    let w = records::<2>(get(sections::W2N)?, sections::W2N)?;
    if w.len() != module.types.len() {
        return Err(ArtifactError::Corrupt(
            "trampoline table does not match the module".into(),
        ));
    }
    let mut wasm_to_native = PrimaryMap::with_capacity(w.len());
    for [start, len] in w {
        wasm_to_native.push(check(start, len)?);
    }
    // The trap table is looked up in place ([`lookup_trap`]); its
    // integrity is the checksum's.
    let _ = records::<2>(get(sections::TRAPS)?, sections::TRAPS)?;
    // The address map is only located here, not read (see the module
    // docs): its checksum is verified before its first lookup.
    get(sections::ADDRMAP)?;
    if get(sections::MAPSUM)?.len() != 8 {
        return Err(ArtifactError::Corrupt(
            "address map checksum is malformed".into(),
        ));
    }
    // The frame table too is only located here; it is verified before the
    // module is first instantiated ([`verify_frame_table`]).
    get(sections::FRAMES)?;
    if get(sections::FRAMESUM)?.len() != 8 {
        return Err(ArtifactError::Corrupt(
            "frame table checksum is malformed".into(),
        ));
    }
    Ok(CompiledModuleInfo {
        module,
        funcs,
        wasm_to_native,
        traps: Vec::new(),
        address_map: AddressMap::default(),
        frames: FrameTable::default(),
    })
}

/// The trap recorded at exactly `code_offset` in a `.kiln.traps` section
/// (sorted (code offset, trap code) pairs), read in place by binary
/// search. Never panics or reads out of bounds, however damaged the
/// section: damage can only make it find nothing or a wrong code.
pub fn lookup_trap(section: &[u8], code_offset: u32) -> Option<Trap> {
    let n = section.len() / 8;
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            section.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let at = word(mid * 8)?;
        if at == code_offset {
            return Trap::from_u8(u8::try_from(word(mid * 8 + 4)?).ok()?);
        }
        if at < code_offset {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    None
}

/// Checks the artifact's frame table against its checksum in
/// `.kiln.framesum` (itself covered by `.kiln.sum`, checked at load) and
/// its structure against a text section of `text_len` bytes. The signal
/// handler trusts the table, so this must pass before any of the module's
/// code runs; it reads the whole section, so it runs once, at the first
/// instantiation, rather than at load.
pub fn verify_frame_table<'a>(
    section: impl Fn(&str) -> Option<&'a [u8]>,
    text_len: usize,
) -> Result<(), ArtifactError> {
    let missing = |n: &str| ArtifactError::NotAnArtifact(format!("no {n} section"));
    let frames = section(sections::FRAMES).ok_or_else(|| missing(sections::FRAMES))?;
    let sum = section(sections::FRAMESUM).ok_or_else(|| missing(sections::FRAMESUM))?;
    if sum.len() != 8 || checksum([frames]).to_le_bytes() != sum {
        return Err(ArtifactError::Corrupt(
            "frame table checksum mismatch: the file is damaged".into(),
        ));
    }
    check_frame_table(frames, text_len as u64)
}

/// The artifact's address map, read in place, if it matches its checksum
/// in `.kiln.mapsum` (itself covered by `.kiln.sum`, checked at load).
///
/// This reads the whole section: call it once, before the first lookup,
/// and keep the answer.
pub fn verify_address_map<'a>(
    section: impl Fn(&str) -> Option<&'a [u8]>,
) -> Option<AddressMapView<'a>> {
    let map = section(sections::ADDRMAP)?;
    let sum = u64::from_le_bytes(section(sections::MAPSUM)?.try_into().ok()?);
    if checksum([map]) != sum {
        return None;
    }
    AddressMapView::new(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skeleton_keeps_every_declaration() {
        // (module (type (func (param i32) (result i32)))
        //   (import "a" "b" (func (type 0))) (func (type 0) local.get 0)
        //   (memory 1) (export "f" (func 1)) (data (i32.const 0) "hi"))
        let wasm: &[u8] = &[
            0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, // header
            1, 6, 1, 0x60, 1, 0x7f, 1, 0x7f, // type
            2, 7, 1, 1, b'a', 1, b'b', 0, 0, // import
            3, 2, 1, 0, // function
            5, 3, 1, 0, 1, // memory
            7, 5, 1, 1, b'f', 0, 1, // export
            10, 6, 1, 4, 0, 0x20, 0, 0x0b, // code
            11, 8, 1, 0, 0x41, 0, 0x0b, 2, b'h', b'i', // data
        ];
        let full = translate_module(wasm, default_features()).unwrap().module;
        let sk = skeleton(wasm);
        assert!(sk.len() < wasm.len());
        let meta = translate::translate_metadata(&sk, default_features())
            .unwrap()
            .module;
        assert_eq!(format!("{full:?}"), format!("{meta:?}"));
    }

    /// (module (func (export "f")))
    const ONE_FUNC: &[u8] = &[
        0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 3, 2, 1, 0, 7, 5, 1, 1, b'f', 0, 0,
        10, 4, 1, 2, 0, 0x0b,
    ];
    /// A header of this host with no optional CPU features.
    static HEADER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "kiln-artifact 3\ntest\n{}\n",
            cpu_features_line(HOST_ARCH, &[])
        )
    });

    fn info(body: FunctionLoc) -> CompiledModuleInfo {
        let module = translate_module(ONE_FUNC, default_features())
            .unwrap()
            .module;
        let loc = FunctionLoc {
            start: 0,
            length: 4,
        };
        CompiledModuleInfo {
            module,
            funcs: [CompiledFunctionInfo {
                wasm_func: body,
                array_to_wasm: Some(loc),
                native_to_wasm: Some(loc),
            }]
            .into_iter()
            .collect(),
            wasm_to_native: [loc].into_iter().collect(),
            traps: vec![TrapSite {
                code_offset: 2,
                trap: Trap::UnreachableCodeReached,
            }],
            address_map: AddressMap::default(),
            frames: FrameTable::default(),
        }
    }

    fn decode(
        sections: &[(&'static str, Vec<u8>)],
        text_len: usize,
    ) -> Result<CompiledModuleInfo, ArtifactError> {
        decode_sections(
            |name| {
                sections
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, d)| d.as_slice())
            },
            &HEADER,
            default_features(),
            text_len,
        )
    }

    #[test]
    fn round_trip_and_bounds() {
        let good = encode_sections(
            &info(FunctionLoc {
                start: 8,
                length: 8,
            }),
            ONE_FUNC,
            &HEADER,
        );
        let back = decode(&good, 64).unwrap();
        assert_eq!(back.funcs[DefinedFuncIndex::new(0)].wasm_func.start, 8);
        let traps = &good.iter().find(|(n, _)| *n == sections::TRAPS).unwrap().1;
        assert!(back.traps.is_empty(), "read in place, not decoded");
        assert_eq!(lookup_trap(traps, 2), Some(Trap::UnreachableCodeReached));
        assert_eq!(lookup_trap(traps, 3), None);
        assert_eq!(lookup_trap(&traps[..5], 2), None);
        // The same artifact with a text section too short for its code.
        assert!(matches!(decode(&good, 12), Err(ArtifactError::Corrupt(_))));
        // A function record pointing past the text, with a valid checksum.
        let far = encode_sections(
            &info(FunctionLoc {
                start: 0x7fff_0000,
                length: 8,
            }),
            ONE_FUNC,
            &HEADER,
        );
        assert!(
            matches!(decode(&far, 64), Err(ArtifactError::Corrupt(m)) if m.contains("outside"))
        );
        // Another build's header.
        let other = encode_sections(
            &info(FunctionLoc {
                start: 8,
                length: 8,
            }),
            ONE_FUNC,
            &HEADER.replace("test", "other"),
        );
        assert!(matches!(
            decode(&other, 64),
            Err(ArtifactError::Incompatible(_))
        ));
    }

    #[test]
    fn damage_fails_the_checksum() {
        let good = encode_sections(
            &info(FunctionLoc {
                start: 8,
                length: 8,
            }),
            ONE_FUNC,
            &HEADER,
        );
        for (i, (name, data)) in good.iter().enumerate() {
            // The address map and the frame table are checked lazily
            // (next tests).
            if [
                sections::SUM,
                sections::INFO,
                sections::ADDRMAP,
                sections::FRAMES,
            ]
            .contains(name)
            {
                continue;
            }
            for at in 0..data.len() {
                let mut bad = good.clone();
                bad[i].1[at] ^= 1;
                assert!(
                    matches!(decode(&bad, 64), Err(ArtifactError::Corrupt(_))),
                    "flip in {name} at {at}"
                );
            }
        }
    }

    #[test]
    fn frame_table_is_verified_before_use() {
        let good = encode_sections(
            &info(FunctionLoc {
                start: 8,
                length: 8,
            }),
            ONE_FUNC,
            &HEADER,
        );
        let text_len = 64;
        let lookup = |s: &[(&'static str, Vec<u8>)]| {
            let s = s.to_vec();
            move |n: &str| s.iter().find(|(m, _)| *m == n).map(|(_, d)| d.clone())
        };
        let get = lookup(&good);
        let owned = [sections::FRAMES, sections::FRAMESUM].map(|n| (n, get(n).unwrap()));
        let section = |n: &str| owned.iter().find(|(m, _)| *m == n).map(|(_, d)| &d[..]);
        verify_frame_table(section, text_len).unwrap();
        let at = good
            .iter()
            .position(|(n, _)| *n == sections::FRAMES)
            .unwrap();
        for byte in 0..good[at].1.len() {
            let mut bad = good.clone();
            bad[at].1[byte] ^= 1;
            // Loading does not read the table...
            assert!(decode(&bad, text_len).is_ok());
            // ...verifying it does.
            let frames = bad[at].1.clone();
            let sum = owned[1].1.clone();
            let section = |n: &str| match n {
                sections::FRAMES => Some(&frames[..]),
                sections::FRAMESUM => Some(&sum[..]),
                _ => None,
            };
            assert!(matches!(
                verify_frame_table(section, text_len),
                Err(ArtifactError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn address_map_is_verified_before_use() {
        let mut i = info(FunctionLoc {
            start: 8,
            length: 8,
        });
        let entries: Vec<AddressMapEntry> = (0..100u32)
            .map(|k| AddressMapEntry {
                code_offset: k * 4,
                wasm_offset: 1000 + k,
            })
            .collect();
        i.address_map = AddressMap::new(&entries);
        let good = encode_sections(&i, ONE_FUNC, &HEADER);
        let find = |s: &[(&'static str, Vec<u8>)], n: &str| {
            s.iter()
                .find(|(m, _)| *m == n)
                .map(|(_, d)| d.clone())
                .unwrap()
        };
        // Decoding does not read the map, so damage there still loads...
        let at = good
            .iter()
            .position(|(n, _)| *n == sections::ADDRMAP)
            .unwrap();
        let map = find(&good, sections::ADDRMAP);
        assert!(decode(&good, 64).unwrap().address_map.is_empty());
        let sections_of = |s: &[(&'static str, Vec<u8>)]| {
            let s = s.to_vec();
            move |n: &str| Some(find(&s, n))
        };
        let lookup = |s: &[(&'static str, Vec<u8>)], off: u32| {
            let get = sections_of(s);
            let (map, sum) = (get(sections::ADDRMAP)?, get(sections::MAPSUM)?);
            let v = verify_address_map(|n| match n {
                sections::ADDRMAP => Some(&map[..]),
                sections::MAPSUM => Some(&sum[..]),
                _ => None,
            })?;
            v.lookup(off)
        };
        assert_eq!(lookup(&good, 40), Some(1010));
        for b in 0..map.len() {
            let mut bad = good.clone();
            bad[at].1[b] ^= 0x10;
            assert!(decode(&bad, 64).is_ok());
            // ...but never verifies, so it is never looked up.
            assert_eq!(lookup(&bad, 40), None, "flip at {b}");
        }
    }

    #[test]
    fn missing_cpu_features_are_refused_by_name() {
        let f = FunctionLoc {
            start: 8,
            length: 8,
        };
        // Settings that match, but code that needs a feature no host has.
        let needy = HEADER.replace(
            &cpu_features_line(HOST_ARCH, &[]),
            &cpu_features_line(HOST_ARCH, &["no-such-feature"]),
        );
        let s = encode_sections(&info(f), ONE_FUNC, &needy);
        let e = decode(&s, 64).map(|_| ()).unwrap_err();
        assert!(
            matches!(&e, ArtifactError::MissingCpuFeatures { missing, .. } if missing == "no-such-feature"),
            "{e}"
        );
        // Damage is reported as damage, even in the feature list.
        let mut bad = s.clone();
        let info_at = bad.iter().position(|(n, _)| *n == sections::INFO).unwrap();
        let last = bad[info_at].1.len() - 2;
        bad[info_at].1[last] ^= 1;
        assert!(matches!(decode(&bad, 64), Err(ArtifactError::Corrupt(_))));
    }
}
