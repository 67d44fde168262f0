//! The compiled-artifact format: Kiln's own sections in the ELF object.
//!
//! A compiled module is an ELF object whose `.text` holds the code and
//! whose `.kiln.*` sections hold what the runtime needs besides:
//!
//! | section | contents |
//! | --- | --- |
//! | `.kiln.info` | text header: format, Kiln version, compatibility fingerprint |
//! | `.kiln.wasm` | the original module without its code section (the code is in `.text`), re-read at load for its declarations; function names stay raw until a backtrace asks for one |
//! | `.kiln.funcs` | per defined function: body, array and native entry (start, length) as six LE u32, `u32::MAX` for none |
//! | `.kiln.w2n` | per type: the wasm-to-native trampoline (start, length) |
//! | `.kiln.traps` | (code offset u32, trap code u32) pairs, sorted |
//! | `.kiln.addrmap` | the `AddressMap`, in its compact encoding, read in place |
//! | `.kiln.mapsum` | a 64-bit checksum of `.kiln.addrmap` |
//! | `.kiln.sum` | a 64-bit checksum of all the sections above but `.kiln.addrmap` |
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
//! declarations, the function and trampoline tables and the trap table (the
//! signal handler needs the latter, and cannot report a late error). The
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
    /// Checksum of the address map, verified before its first lookup.
    pub const MAPSUM: &str = ".kiln.mapsum";
    /// Checksum of the [`CHECKED`] sections, verified at load.
    pub const SUM: &str = ".kiln.sum";
    /// The sections the checksum covers, in order.
    pub const CHECKED: [&str; 6] = [INFO, WASM, FUNCS, W2N, TRAPS, MAPSUM];
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
pub const ARTIFACT_MAGIC: &str = "kiln-artifact 2";

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
}

/// The header for an artifact built by this Kiln with `fingerprint`.
pub fn artifact_header(fingerprint: &str) -> String {
    format!("{ARTIFACT_MAGIC}\nversion={VERSION}\nsettings={fingerprint}\n")
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
    out.push((sections::MAPSUM, checksum([&map[..]]).to_le_bytes().to_vec()));
    out.push((sections::ADDRMAP, map));
    let sum = checksum(
        sections::CHECKED
            .iter()
            .filter_map(|n| out.iter().find(|(m, _)| m == n))
            .map(|(_, d)| d.as_slice()),
    );
    out.push((sections::SUM, sum.to_le_bytes().to_vec()));
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
        if let wasmparser::Payload::CodeSectionStart { range, .. } = payload {
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

/// The records of `N` little-endian u32 words in section `name`, read in
/// place (no intermediate vector of words).
fn records<'a, const N: usize>(
    bytes: &'a [u8],
    name: &str,
) -> Result<impl ExactSizeIterator<Item = [u32; N]> + 'a, ArtifactError> {
    if bytes.len() % (4 * N) != 0 {
        return Err(ArtifactError::Corrupt(format!(
            "section {name} has a partial record"
        )));
    }
    Ok(bytes.chunks_exact(4 * N).map(|c| {
        std::array::from_fn(|i| u32::from_le_bytes([c[4 * i], c[4 * i + 1], c[4 * i + 2], c[4 * i + 3]]))
    }))
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
    if header != expected_header {
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
    let t = translate::translate_metadata(get(sections::WASM)?, features)
        .map_err(|e| ArtifactError::Corrupt(format!("embedded module: {e}")))?;
    let module = t.module;
    let text_len =
        u32::try_from(text_len).map_err(|_| ArtifactError::Corrupt("text too large".into()))?;
    let check = |start: u32, len: u32| -> Result<FunctionLoc, ArtifactError> {
        match start.checked_add(len) {
            Some(end) if end <= text_len => Ok(FunctionLoc { start, length: len }),
            _ => Err(ArtifactError::Corrupt(format!(
                "function at {start:#x}+{len:#x} lies outside the text section"
            ))),
        }
    };
    let opt = |start: u32, len: u32| -> Result<Option<FunctionLoc>, ArtifactError> {
        if start == u32::MAX && len == u32::MAX {
            Ok(None)
        } else {
            check(start, len).map(Some)
        }
    };

    let f = records::<6>(get(sections::FUNCS)?, sections::FUNCS)?;
    if f.len() != module.num_defined_funcs() {
        return Err(ArtifactError::Corrupt(
            "function table does not match the module".into(),
        ));
    }
    let mut funcs = PrimaryMap::with_capacity(f.len());
    for (slot, w) in module.func_ref_slots.values().zip(f) {
        let info = CompiledFunctionInfo {
            wasm_func: check(w[0], w[1])?,
            array_to_wasm: opt(w[2], w[3])?,
            native_to_wasm: opt(w[4], w[5])?,
        };
        if slot.is_some() != info.array_to_wasm.is_some()
            || info.array_to_wasm.is_some() != info.native_to_wasm.is_some()
        {
            return Err(ArtifactError::Corrupt(
                "entry trampolines do not match escaping functions".into(),
            ));
        }
        funcs.push(info);
    }
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
    let tr = records::<2>(get(sections::TRAPS)?, sections::TRAPS)?;
    let mut traps = Vec::with_capacity(tr.len());
    let mut prev = 0;
    for [code_offset, code] in tr {
        let trap = u8::try_from(code)
            .ok()
            .and_then(Trap::from_u8)
            .ok_or_else(|| ArtifactError::Corrupt(format!("unknown trap code {code}")))?;
        if code_offset >= text_len {
            return Err(ArtifactError::Corrupt(
                "trap site outside the text section".into(),
            ));
        }
        if code_offset < prev {
            return Err(ArtifactError::Corrupt("trap table is not sorted".into()));
        }
        prev = code_offset;
        traps.push(TrapSite { code_offset, trap });
    }
    // The address map is only located here, not read (see the module
    // docs): its checksum is verified before its first lookup.
    get(sections::ADDRMAP)?;
    if get(sections::MAPSUM)?.len() != 8 {
        return Err(ArtifactError::Corrupt(
            "address map checksum is malformed".into(),
        ));
    }
    Ok(CompiledModuleInfo {
        module,
        funcs,
        wasm_to_native,
        traps,
        address_map: AddressMap::default(),
    })
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
    const HEADER: &str = "kiln-artifact 2\ntest\n";

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
            HEADER,
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
            HEADER,
        );
        let back = decode(&good, 64).unwrap();
        assert_eq!(back.funcs[DefinedFuncIndex::new(0)].wasm_func.start, 8);
        assert_eq!(back.traps.len(), 1);
        // The same artifact with a text section too short for its code.
        assert!(matches!(decode(&good, 12), Err(ArtifactError::Corrupt(_))));
        // A function record pointing past the text, with a valid checksum.
        let far = encode_sections(
            &info(FunctionLoc {
                start: 0x7fff_0000,
                length: 8,
            }),
            ONE_FUNC,
            HEADER,
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
            "kiln-artifact 2\nother\n",
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
            HEADER,
        );
        for (i, (name, data)) in good.iter().enumerate() {
            // The address map is checked lazily (next test).
            if *name == sections::SUM || *name == sections::INFO || *name == sections::ADDRMAP {
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
        let good = encode_sections(&i, ONE_FUNC, HEADER);
        let find = |s: &[(&'static str, Vec<u8>)], n: &str| {
            s.iter()
                .find(|(m, _)| *m == n)
                .map(|(_, d)| d.clone())
                .unwrap()
        };
        // Decoding does not read the map, so damage there still loads...
        let at = good.iter().position(|(n, _)| *n == sections::ADDRMAP).unwrap();
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
}
