//! `kiln-jit`: puts a compiled object into executable memory.
//!
//! # Who is this crate for?
//!
//! The runtime uses it to load what `kiln-cranelift` produced, either
//! straight after compiling or from a serialized artifact. It knows ELF
//! (through `object`) and page protections; it does not know Cranelift,
//! and it never changes a byte of code.
//!
//! # How loading works
//!
//! An object's text section is page-aligned inside the file. Loading
//! copies (or maps) the file into fresh memory that is read+write, then
//! changes the text pages to read+execute and everything else to read-only.
//! Memory is never writable and executable at once.
//!
//! On AArch64, code this process wrote must then be made visible to
//! instruction fetch (cache maintenance, barriers, and a `membarrier` for
//! the other threads): that happens in one place, `icache.rs`, whose docs
//! give the reasoning, called from the one function that publishes code.
//!
//! **Invariant:** a loaded object has no relocations. [`CodeMemory::new`]
//! refuses an object that carries any, because applying them would mean
//! writing to code; `kiln-cranelift` resolves every call when it lays out
//! the text section.
//!
//! # Example
//!
//! ```
//! let wasm = wat::parse_str(r#"(module (func (export "f") (result i32) i32.const 7))"#)?;
//! let t = kiln_environ::translate_module(&wasm, kiln_environ::default_features())?;
//! let compiled = kiln_cranelift::Compiler::new(Default::default())?.compile_module(t, "")?;
//! let code = kiln_jit::CodeMemory::new(&compiled.object)?;
//! assert!(!code.text().is_empty());
//! // Bytes that are not such an object are refused.
//! assert!(kiln_jit::CodeMemory::new(b"not an object").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

mod icache;
mod unwind;

use object::{Object as _, ObjectSection as _};
use std::ops::Range;

/// An error while loading an object.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    /// The bytes are not an object Kiln can load.
    #[error("not a loadable object: {0}")]
    BadObject(String),
    /// The object carries relocations.
    #[error("object has {0} relocations; Kiln objects must have none")]
    HasRelocations(usize),
    /// A system call failed.
    #[error("{what}: {err}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The error.
        err: std::io::Error,
    },
}

/// Turns a failed system call into a [`JitError::Os`] naming it.
fn errno(what: &'static str) -> impl Fn(rustix::io::Errno) -> JitError {
    move |e| JitError::Os {
        what,
        err: e.into(),
    }
}

/// The contents of section `name` of the ELF object `object`, if it parses
/// and has one; nothing is loaded or checked beyond that. This is how a
/// caller tells an artifact from other bytes before loading it.
pub fn find_section<'a>(object: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let file = object::File::parse(object).ok()?;
    file.section_by_name(name)?.data().ok()
}

/// The sections of a checked object: names and file ranges, read once.
type SectionTable = Vec<(Box<str>, Range<usize>)>;

/// Checks that `object` is a loadable ELF object: parseable, without
/// relocations, every section inside the file, with a page-aligned text
/// section. Returns the section table and the text section's range; the
/// object is parsed this once.
fn check_object<'a, R: object::ReadRef<'a>>(
    object: R,
    object_len: usize,
) -> Result<(SectionTable, Range<usize>), JitError> {
    let file = object::File::parse(object).map_err(|e| JitError::BadObject(e.to_string()))?;
    let mut table = SectionTable::new();
    let mut relocations = 0;
    for s in file.sections() {
        relocations += s.relocations().count();
        let (Ok(name), Some((o, l))) = (s.name(), s.file_range()) else {
            continue;
        };
        let r = usize::try_from(o).ok().zip(usize::try_from(l).ok());
        match r.and_then(|(o, l)| Some(o..o.checked_add(l)?)) {
            Some(r) if r.end <= object_len => table.push((name.into(), r)),
            _ => {
                return Err(JitError::BadObject(format!(
                    "section {name} lies outside the file"
                )))
            }
        }
    }
    if relocations != 0 {
        return Err(JitError::HasRelocations(relocations));
    }
    let text = table
        .iter()
        .find(|(n, _)| &**n == ".text")
        .map(|(_, r)| r.clone())
        .ok_or_else(|| JitError::BadObject("no .text section".into()))?;
    let page = page_size();
    if text.start % page != 0 {
        return Err(JitError::BadObject(format!(
            "text section at {:#x} is not aligned to the {page:#x}-byte page size",
            text.start
        )));
    }
    Ok((table, text))
}

/// What of an ELF file its section table needs, read with `pread` instead
/// of through the mapping: the file header, the section headers, the
/// section names and any relocation sections (so that [`check_object`]
/// counts their entries and refuses them as usual). Parsing from here
/// leaves the mapping untouched.
struct Headers {
    len: u64,
    /// (file offset, bytes).
    chunks: Vec<(u64, Box<[u8]>)>,
}

impl Headers {
    /// The headers of `file` (of `len` bytes), or `None` if it is not a
    /// little-endian ELF64 file whose headers lie inside it: such a file is
    /// parsed from the mapping instead, where `object` reports what is wrong
    /// with it.
    fn read(file: &std::fs::File, len: usize) -> Option<Headers> {
        use std::os::unix::fs::FileExt;
        let len = len as u64;
        let read = |at: u64, size: u64| -> Option<(u64, Box<[u8]>)> {
            if at.checked_add(size)? > len || size > 1 << 24 {
                return None;
            }
            let mut buf = vec![0; usize::try_from(size).ok()?].into_boxed_slice();
            file.read_exact_at(&mut buf, at).ok()?;
            Some((at, buf))
        };
        let (_, h) = read(0, 64)?;
        if h[..4] != *b"\x7fELF" || h[4] != 2 || h[5] != 1 {
            return None;
        }
        let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u64_at = |b: &[u8], i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        let shoff = u64_at(&h, 0x28);
        let (entsize, shnum, shstrndx) = (u16_at(&h, 0x3a), u16_at(&h, 0x3c), u16_at(&h, 0x3e));
        // Extended numbering (0 sections, or escape indices) is left to
        // `object`.
        if entsize != 64 || shnum == 0 || shstrndx >= shnum {
            return None;
        }
        let (_, sh) = read(shoff, u64::from(shnum) * 64)?;
        // What `object` reads when parsing: the names, the symbol table
        // and its strings; and relocations, for `check_object` to count.
        const SHT_SYMTAB: u32 = 2;
        const SHT_STRTAB: u32 = 3;
        const SHT_RELA: u32 = 4;
        const SHT_REL: u32 = 9;
        const SHT_DYNSYM: u32 = 11;
        const SHT_SYMTAB_SHNDX: u32 = 18;
        let mut needed: Vec<(u64, u64)> = Vec::new();
        for (i, hdr) in sh.chunks_exact(64).enumerate() {
            let ty = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
            if i == usize::from(shstrndx)
                || matches!(
                    ty,
                    SHT_SYMTAB | SHT_STRTAB | SHT_RELA | SHT_REL | SHT_DYNSYM | SHT_SYMTAB_SHNDX
                )
            {
                let (at, size) = (u64_at(hdr, 24), u64_at(hdr, 32));
                needed.push((at, at.checked_add(size)?));
            }
        }
        // They sit together at the end of the file, as a rule: one read.
        needed.sort_unstable();
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for (start, end) in needed {
            match spans.last_mut() {
                Some(last) if start <= last.1.saturating_add(4096) => last.1 = last.1.max(end),
                _ => spans.push((start, end)),
            }
        }
        let mut chunks = vec![(0, h), (shoff, sh)];
        for (start, end) in spans {
            chunks.push(read(start, end - start)?);
        }
        Some(Headers { len, chunks })
    }
}

impl<'a> object::ReadRef<'a> for &'a Headers {
    fn len(self) -> Result<u64, ()> {
        Ok(self.len)
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        for (at, bytes) in &self.chunks {
            let Some(start) = offset.checked_sub(*at) else {
                continue;
            };
            let range = usize::try_from(start)
                .ok()
                .zip(usize::try_from(size).ok())
                .and_then(|(s, n)| Some(s..s.checked_add(n)?));
            if let Some(b) = range.and_then(|r| bytes.get(r)) {
                return Ok(b);
            }
        }
        Err(())
    }

    fn read_bytes_at_until(self, range: Range<u64>, delimiter: u8) -> Result<&'a [u8], ()> {
        let size = range.end.checked_sub(range.start).ok_or(())?;
        for (at, bytes) in &self.chunks {
            let Some(start) = range.start.checked_sub(*at) else {
                continue;
            };
            let Ok(start) = usize::try_from(start) else {
                continue;
            };
            let Some(rest) = bytes.get(start..) else {
                continue;
            };
            let rest = &rest[..rest.len().min(usize::try_from(size).unwrap_or(usize::MAX))];
            if let Some(n) = rest.iter().position(|b| *b == delimiter) {
                return Ok(&rest[..n]);
            }
        }
        Err(())
    }
}

/// The largest span of sections [`CodeMemory::from_file`] reads into
/// memory rather than through the mapping.
const EAGER_READ_LIMIT: usize = 32 << 10;

/// Page-granular memory (anonymous or a private file mapping).
struct Mmap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: `Mmap` owns its mapping exclusively; the pointer is never shared
// mutably after publication (the code is read-only then).
unsafe impl Send for Mmap {}
// SAFETY: the `.eh_frame` pointer points into the owned, read-only mapping.
unsafe impl Send for CodeMemory {}
// SAFETY: see `Send`; nothing is mutated after construction.
unsafe impl Sync for CodeMemory {}
// SAFETY: after `CodeMemory::new` returns, the mapping is only read.
unsafe impl Sync for Mmap {}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` is a mapping this struct created and owns.
        unsafe {
            let _ = rustix::mm::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// The size of a transparent huge page (x86-64 and AArch64 with 4 KiB
/// pages).
const HUGE_PAGE: usize = 2 << 20;

/// Objects at least this large are copied into huge pages by
/// [`CodeMemory::new`].
pub const HUGE_PAGE_THRESHOLD: usize = HUGE_PAGE / 2;

impl Mmap {
    /// `len` bytes (at least a page) of read+write memory, faulted in.
    fn populated(len: usize) -> Result<Mmap, JitError> {
        let page = page_size();
        let len = len.next_multiple_of(page).max(page);
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // affected.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                // Every page is written right away: fault them in with one
                // call instead of one fault per page.
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::POPULATE,
            )
        }
        .map_err(errno("mmap"))?;
        Ok(Mmap {
            ptr: ptr.cast(),
            len,
        })
    }

    /// `len` bytes rounded up to whole huge pages of read+write memory,
    /// aligned to a huge page and advised to use them, faulted in.
    fn huge(len: usize) -> Result<Mmap, JitError> {
        use rustix::mm::{madvise, Advice};
        let len = len.next_multiple_of(HUGE_PAGE);
        let reserve = len + HUGE_PAGE;
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // affected. NORESERVE: the slack is given back right below.
        let raw = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                reserve,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
            )
        }
        .map_err(errno("mmap"))?
        .cast::<u8>();
        let head = (raw as usize).next_multiple_of(HUGE_PAGE) - raw as usize;
        // SAFETY: `head < HUGE_PAGE`, so `raw + head` is inside the
        // reservation.
        let ptr = unsafe { raw.add(head) };
        // From here the returned `Mmap` owns `ptr..ptr + len` (and unmaps it
        // on error).
        let mmap = Mmap { ptr, len };
        // SAFETY: the head and the tail of the reservation around `mmap`
        // are ours and nothing refers to them.
        unsafe {
            if head != 0 {
                rustix::mm::munmap(raw.cast(), head).map_err(errno("munmap"))?;
            }
            if reserve - head - len != 0 {
                rustix::mm::munmap(mmap.ptr.add(len).cast(), reserve - head - len)
                    .map_err(errno("munmap"))?;
            }
        }
        // SAFETY: advice on our own mapping; neither changes its contents
        // (fresh memory reads as zero either way). Both are hints: without
        // transparent huge pages the kernel uses small pages, and a kernel
        // older than 5.14 lacks MADV_POPULATE_WRITE, so the copy faults
        // the pages in instead.
        unsafe {
            let _ = madvise(mmap.ptr.cast(), len, Advice::LinuxHugepage);
            let _ = madvise(mmap.ptr.cast(), len, Advice::LinuxPopulateWrite);
        }
        Ok(mmap)
    }
}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// Compiled code loaded into executable memory.
pub struct CodeMemory {
    mmap: Mmap,
    object_len: usize,
    text: Range<usize>,
    /// The registered `.eh_frame`, if the object has one.
    eh_frame: Option<*const u8>,
    sections: SectionTable,
    /// Sections read into memory at load (see [`CodeMemory::from_file`]):
    /// file ranges and their bytes.
    copies: Vec<(Range<usize>, Box<[u8]>)>,
}

extern "C" {
    // libgcc's unwinder (always linked on Linux, Rust's own unwinding uses
    // it): registers a whole `.eh_frame` section, ended by a zero word.
    fn __register_frame(begin: *const u8);
    fn __deregister_frame(begin: *const u8);
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        if let Some(p) = self.eh_frame {
            // SAFETY: registered in `publish` and still mapped (the mapping
            // is dropped after this).
            unsafe { __deregister_frame(p) };
        }
    }
}

impl CodeMemory {
    /// Copies `object` into fresh memory and makes its text executable.
    ///
    /// Most of the cost is the kernel providing fresh pages, one fault's
    /// worth of work per 4 KiB page. An object of at least
    /// [`HUGE_PAGE_THRESHOLD`] bytes therefore goes into memory rounded up
    /// to whole 2 MiB transparent huge pages, where the kernel offers them:
    /// one fault per 2 MiB instead of 512, at the price of up to half the
    /// object's size in unused memory. Smaller objects would waste more than
    /// they save.
    pub fn new(object: &[u8]) -> Result<CodeMemory, JitError> {
        let checked = check_object(object, object.len())?;
        let mmap = if object.len() >= HUGE_PAGE_THRESHOLD {
            Mmap::huge(object.len())?
        } else {
            Mmap::populated(object.len())?
        };
        let ptr = mmap.ptr;
        // SAFETY: the mapping is `len >= object.len()` bytes, writable, and
        // not aliased by anything else yet.
        unsafe {
            std::ptr::copy_nonoverlapping(object.as_ptr(), ptr, object.len());
        }
        Self::publish(mmap, object.len(), checked, false)
    }

    /// Maps the object in file `path` (private, copy-on-write) and makes its
    /// text executable: loading costs a mapping and one protection change,
    /// whatever the size of the code.
    ///
    /// Each page touched through a fresh file mapping costs a fault, and
    /// later a page-table entry for a protection change and for the unmap
    /// to update: that is where the time of a mapped load went. So the
    /// section headers are read with `pread`, and the text is made
    /// executable before anything touches the mapping. The sections named
    /// in `read_eagerly` (those the caller reads at load anyway) are read
    /// into memory too, with as few reads as their layout allows, if they
    /// are small (up to 32 KiB together; more would cost more in fresh heap
    /// pages than in faults); [`CodeMemory::section`] returns them from
    /// there. Every other section, and [`CodeMemory::object`], is read
    /// through the mapping, on demand. `.eh_frame`, which the unwinder must
    /// see in place, is read through the mapping once at load, to check it
    /// before it is registered (see `unwind.rs`).
    pub fn from_file(
        path: &std::path::Path,
        read_eagerly: &[&str],
    ) -> Result<CodeMemory, JitError> {
        use std::os::unix::fs::FileExt;
        let os = |what| move |e: std::io::Error| JitError::Os { what, err: e };
        let file = std::fs::File::open(path).map_err(os("open"))?;
        let object_len = file.metadata().map_err(os("stat"))?.len() as usize;
        if object_len == 0 {
            return Err(JitError::BadObject("empty file".into()));
        }
        let page = page_size();
        let len = object_len.next_multiple_of(page);
        // Parse the section table from `pread`s where the file allows it.
        let headers = Headers::read(&file, object_len);
        let early = headers
            .as_ref()
            .map(|h| check_object(h, object_len))
            .transpose()?;
        // SAFETY: a fresh private mapping of the file; no existing memory is
        // affected. That the file does not change while mapped (private
        // pages not yet copied still show its writes) is the caller's
        // contract, stated on `kiln::Module::deserialize_file`.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::PRIVATE,
                &file,
                0,
            )
        }
        .map_err(errno("mmap"))?
        .cast::<u8>();
        let mmap = Mmap { ptr, len };
        let checked = match early {
            Some(c) => c,
            None => {
                // SAFETY: the mapping holds `object_len` readable bytes.
                let object = unsafe { std::slice::from_raw_parts(ptr, object_len) };
                check_object(object, object_len)?
            }
        };
        // Read the eager sections, merging neighbours (and the small gaps
        // alignment leaves between them) into one read.
        let mut wanted: Vec<Range<usize>> = checked
            .0
            .iter()
            .filter(|(n, _)| read_eagerly.contains(&&**n))
            .map(|(_, r)| r.clone())
            .collect();
        wanted.sort_by_key(|r| r.start);
        let mut spans: Vec<Range<usize>> = Vec::new();
        for r in wanted {
            match spans.last_mut() {
                Some(last) if r.start <= last.end.saturating_add(64) => {
                    last.end = last.end.max(r.end);
                }
                _ => spans.push(r),
            }
        }
        let mut copies = Vec::with_capacity(spans.len());
        // A large span stays in the mapping: fresh heap pages for it would
        // cost more than the faults of reading it in place, where the
        // kernel maps up to 16 page-cache pages a fault.
        for span in spans.into_iter().filter(|s| s.len() <= EAGER_READ_LIMIT) {
            let mut buf = vec![0; span.len()].into_boxed_slice();
            file.read_exact_at(&mut buf, span.start as u64)
                .map_err(os("read"))?;
            copies.push((span, buf));
        }
        let mut code = Self::publish(mmap, object_len, checked, true)?;
        code.copies = copies;
        Ok(code)
    }

    /// Makes the text pages of `mmap` read+execute and the rest read-only
    /// (which it is already if `read_only`: then this is one protection
    /// change).
    fn publish(
        mmap: Mmap,
        object_len: usize,
        (sections, text): (SectionTable, Range<usize>),
        read_only: bool,
    ) -> Result<CodeMemory, JitError> {
        let (ptr, len) = (mmap.ptr, mmap.len);
        let page = page_size();
        let text_pages = text.start..text.end.next_multiple_of(page);
        // SAFETY: both ranges lie inside the mapping we own; after this no
        // page is writable, and the text pages are executable.
        unsafe {
            if !read_only {
                rustix::mm::mprotect(ptr.cast(), len, rustix::mm::MprotectFlags::READ)
                    .map_err(errno("mprotect"))?;
            }
            if !text_pages.is_empty() {
                rustix::mm::mprotect(
                    ptr.add(text_pages.start).cast(),
                    text_pages.len(),
                    rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::EXEC,
                )
                .map_err(errno("mprotect"))?;
            }
        }
        // Before anything can run the code: callers get its address only
        // from the value returned here.
        // SAFETY: `text` lies inside the mapping (checked by
        // `check_object`).
        let text_ptr = unsafe { ptr.add(text.start) };
        icache::make_visible_to_instruction_fetch(text_ptr, text.len(), !read_only)?;
        let text_len = text.len();
        let mut code = CodeMemory {
            mmap,
            object_len,
            text,
            eh_frame: None,
            sections,
            copies: Vec::new(),
        };
        if let Some(r) = code.section_range(".eh_frame") {
            let ends_with_terminator = r.len() >= 4 && code.object()[r.end - 4..r.end] == [0; 4];
            if !ends_with_terminator {
                return Err(JitError::BadObject(".eh_frame lacks its terminator".into()));
            }
            let eh_frame = &code.object()[r];
            let text_start = text_ptr as u64;
            unwind::check_eh_frame(
                eh_frame,
                eh_frame.as_ptr() as u64,
                text_start..text_start + text_len as u64,
            )
            .map_err(|why| JitError::BadObject(format!(".eh_frame: {why}")))?;
            let p = eh_frame.as_ptr();
            // SAFETY: the section is mapped read-only for the lifetime of
            // `code`, and `check_eh_frame` found that every walk the
            // unwinder makes over it stays inside it: well-formed records
            // up to the zero terminator, each describing code of this
            // object's text.
            unsafe { __register_frame(p) };
            code.eh_frame = Some(p);
        }
        Ok(code)
    }

    fn section_range(&self, name: &str) -> Option<Range<usize>> {
        self.sections
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, r)| r.clone())
    }

    /// The contents of section `name` of the loaded object.
    pub fn section(&self, name: &str) -> Option<&[u8]> {
        let r = self.section_range(name)?;
        for (span, bytes) in &self.copies {
            if span.start <= r.start && r.end <= span.end {
                return bytes.get(r.start - span.start..r.end - span.start);
            }
        }
        self.object().get(r)
    }

    /// The whole object, as loaded.
    pub fn object(&self) -> &[u8] {
        // SAFETY: the mapping holds `object_len` initialised bytes and is
        // read-only for the lifetime of `self`.
        unsafe { std::slice::from_raw_parts(self.mmap.ptr, self.object_len) }
    }

    /// The executable text section.
    pub fn text(&self) -> &[u8] {
        &self.object()[self.text.clone()]
    }

    /// The address range of the text section.
    pub fn text_range(&self) -> Range<usize> {
        let start = self.text().as_ptr() as usize;
        start..start + self.text.len()
    }
}
