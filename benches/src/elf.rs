//! Just enough ELF64 (little-endian) to read a section's size from Kiln's
//! object and Wasmtime's serialized module, which are both ELF files.

fn u16_at(b: &[u8], off: usize) -> Result<u16, String> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated ELF at {off}"))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, String> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated ELF at {off}"))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64, String> {
    b.get(off..off + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated ELF at {off}"))
}

/// Every section as (name, size).
pub fn sections(b: &[u8]) -> Result<Vec<(String, u64)>, String> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return Err("not a little-endian ELF64 file".into());
    }
    let shoff = u64_at(b, 0x28)? as usize;
    let shentsize = u16_at(b, 0x3a)? as usize;
    let shnum = u16_at(b, 0x3c)? as usize;
    let shstrndx = u16_at(b, 0x3e)? as usize;
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(b, header(shstrndx) + 0x18)? as usize;
    let mut out = Vec::with_capacity(shnum);
    for i in 0..shnum {
        let h = header(i);
        let name_off = strtab + u32_at(b, h)? as usize;
        let name = b
            .get(name_off..)
            .and_then(|s| s.split(|&c| c == 0).next())
            .ok_or("bad section name")?;
        let size = u64_at(b, h + 0x20)?;
        out.push((String::from_utf8_lossy(name).into_owned(), size));
    }
    Ok(out)
}

/// The size of the section called `name`, if there is one.
pub fn section_size(b: &[u8], name: &str) -> Result<Option<u64>, String> {
    Ok(sections(b)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s))
}
