//! Writing the compiled text section into an ELF object.
//!
//! The text section is aligned to the target's page size inside the file,
//! so the loader can map the file and change the protection of exactly the
//! text pages to read+execute without copying or patching anything.

use crate::CompileError;
use cranelift_codegen::isa::TargetIsa;
use object::write::{Object, StandardSection};
use object::{Architecture, BinaryFormat, Endianness, SectionKind};

/// Where the text section sits inside an object's bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Byte offset of the text section in the file.
    pub text_offset: u64,
    /// Length of the text section.
    pub text_len: u64,
}

/// The page size the text section is aligned to for `isa`'s target. AArch64
/// Linux may run with 64 KiB pages, so it gets the larger alignment.
pub fn text_alignment(isa: &dyn TargetIsa) -> u64 {
    match isa.triple().architecture {
        target_lexicon::Architecture::Aarch64(_) => 0x1_0000,
        _ => 0x1000,
    }
}

/// Unwind information of one function: its text offset and Cranelift's
/// System V description.
pub(crate) type UnwindEntry = (u32, cranelift_codegen::isa::unwind::systemv::UnwindInfo);

/// Builds `.eh_frame` for `entries`, with function addresses written
/// pc-relative for a section that starts `delta` bytes after the text
/// section. The size does not depend on `delta` (addresses are 4-byte
/// pc-relative), which is what lets `write_object` place it first and fill
/// it in afterwards.
fn eh_frame(isa: &dyn TargetIsa, entries: &[UnwindEntry], delta: u64) -> Option<Vec<u8>> {
    use gimli::write::{Address, EhFrame, EndianVec, FrameTable};
    let mut cie = isa.create_systemv_cie()?;
    cie.fde_address_encoding = gimli::constants::DW_EH_PE_pcrel | gimli::constants::DW_EH_PE_sdata4;
    let mut table = FrameTable::default();
    let cie_id = table.add_cie(cie);
    for (start, info) in entries {
        // Relative to the start of .eh_frame, where gimli measures
        // pc-relative addresses from.
        let addr = u64::from(*start).wrapping_sub(delta);
        table.add_fde(cie_id, info.to_fde(Address::Constant(addr)));
    }
    let mut out = EhFrame(EndianVec::new(gimli::LittleEndian));
    table.write_eh_frame(&mut out).ok()?;
    let mut bytes = out.0.into_vec();
    // A zero-length entry ends the table for `__register_frame`.
    bytes.extend_from_slice(&[0; 4]);
    Some(bytes)
}

pub(crate) fn write_object(
    isa: &dyn TargetIsa,
    text: &[u8],
    extra_sections: &[(&'static str, Vec<u8>)],
    unwind: &[UnwindEntry],
) -> Result<(Vec<u8>, ObjectInfo), CompileError> {
    let arch = match isa.triple().architecture {
        target_lexicon::Architecture::X86_64 => Architecture::X86_64,
        target_lexicon::Architecture::Aarch64(_) => Architecture::Aarch64,
        other => {
            return Err(CompileError::Setting(format!(
                "no object format for architecture {other}"
            )))
        }
    };
    let mut obj = Object::new(BinaryFormat::Elf, arch, Endianness::Little);
    let text_id = obj.section_id(StandardSection::Text);
    let align = text_alignment(isa);
    obj.append_section_data(text_id, text, align);
    for (name, data) in extra_sections {
        let id = obj.add_section(
            Vec::new(),
            name.as_bytes().to_vec(),
            SectionKind::ReadOnlyData,
        );
        obj.append_section_data(id, data, 8);
    }
    let placeholder = if unwind.is_empty() {
        None
    } else {
        eh_frame(isa, unwind, 0)
    };
    if let Some(p) = &placeholder {
        let id = obj.add_section(Vec::new(), b".eh_frame".to_vec(), SectionKind::ReadOnlyData);
        obj.append_section_data(id, &vec![0; p.len()], 8);
    }
    let mut bytes = obj
        .write()
        .map_err(|e| CompileError::Setting(format!("writing object: {e}")))?;
    let info = locate_text(&bytes)
        .ok_or_else(|| CompileError::Setting("written object has no text section".to_string()))?;
    if placeholder.is_some() {
        // Now that the layout is known, write the real table in place.
        let range = section_file_range(&bytes, ".eh_frame")
            .ok_or_else(|| CompileError::Setting("written object lost .eh_frame".into()))?;
        let delta = (range.start as u64).wrapping_sub(info.text_offset);
        let real = eh_frame(isa, unwind, delta)
            .ok_or_else(|| CompileError::Setting("writing .eh_frame".into()))?;
        if real.len() != range.len() {
            return Err(CompileError::Setting(".eh_frame changed size".into()));
        }
        bytes[range].copy_from_slice(&real);
    }
    Ok((bytes, info))
}

fn section_file_range(bytes: &[u8], name: &str) -> Option<std::ops::Range<usize>> {
    use object::{Object as _, ObjectSection as _};
    let file = object::File::parse(bytes).ok()?;
    let (o, l) = file.section_by_name(name)?.file_range()?;
    Some(o as usize..(o + l) as usize)
}

/// Finds the text section in an ELF object written by Kiln.
pub fn locate_text(bytes: &[u8]) -> Option<ObjectInfo> {
    use object::{Object as _, ObjectSection as _};
    let file = object::File::parse(bytes).ok()?;
    let text = file.section_by_name(".text")?;
    let (text_offset, text_len) = text.file_range()?;
    Some(ObjectInfo {
        text_offset,
        text_len,
    })
}
