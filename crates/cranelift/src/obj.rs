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

pub(crate) fn write_object(
    isa: &dyn TargetIsa,
    text: &[u8],
    extra_sections: &[(&'static str, Vec<u8>)],
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
    let bytes = obj
        .write()
        .map_err(|e| CompileError::Setting(format!("writing object: {e}")))?;
    let info = locate_text(&bytes)
        .ok_or_else(|| CompileError::Setting("written object has no text section".to_string()))?;
    Ok((bytes, info))
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
