//! Checked access to the guest's linear memory.
//!
//! Every pointer and length a guest passes is untrusted: each access goes
//! through [`GuestMem`], which checks `ptr + len` against the memory's
//! current size (with overflow) and answers `EFAULT` otherwise. Slices are
//! handed out *in place*, so reading a file into guest memory or writing
//! guest memory to a file never copies through, or allocates, a host
//! buffer whose size the guest chose.

use crate::types::{Errno, WResult};

/// The guest's memory for the duration of one WASI call.
pub(crate) struct GuestMem<'a> {
    bytes: &'a mut [u8],
}

impl<'a> GuestMem<'a> {
    pub(crate) fn new(bytes: &'a mut [u8]) -> Self {
        GuestMem { bytes }
    }

    fn range(&self, ptr: u32, len: u32) -> WResult<std::ops::Range<usize>> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::Fault)?;
        if end > self.bytes.len() {
            return Err(Errno::Fault);
        }
        Ok(start..end)
    }

    /// `len` bytes at `ptr`.
    pub(crate) fn slice(&self, ptr: u32, len: u32) -> WResult<&[u8]> {
        let r = self.range(ptr, len)?;
        Ok(&self.bytes[r])
    }

    /// `len` bytes at `ptr`, writable.
    pub(crate) fn slice_mut(&mut self, ptr: u32, len: u32) -> WResult<&mut [u8]> {
        let r = self.range(ptr, len)?;
        Ok(&mut self.bytes[r])
    }

    fn array<const N: usize>(&self, ptr: u32) -> WResult<[u8; N]> {
        let s = self.slice(ptr, N as u32)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn read_u32(&self, ptr: u32) -> WResult<u32> {
        Ok(u32::from_le_bytes(self.array(ptr)?))
    }

    /// Copies `data` to `ptr`.
    pub(crate) fn write(&mut self, ptr: u32, data: &[u8]) -> WResult<()> {
        let len = u32::try_from(data.len()).map_err(|_| Errno::Fault)?;
        self.slice_mut(ptr, len)?.copy_from_slice(data);
        Ok(())
    }
    pub(crate) fn write_u8(&mut self, ptr: u32, v: u8) -> WResult<()> {
        self.write(ptr, &[v])
    }
    pub(crate) fn write_u16(&mut self, ptr: u32, v: u16) -> WResult<()> {
        self.write(ptr, &v.to_le_bytes())
    }
    pub(crate) fn write_u32(&mut self, ptr: u32, v: u32) -> WResult<()> {
        self.write(ptr, &v.to_le_bytes())
    }
    pub(crate) fn write_u64(&mut self, ptr: u32, v: u64) -> WResult<()> {
        self.write(ptr, &v.to_le_bytes())
    }

    /// The `(buf, buf_len)` pair of iovec `i` of the array at `iovs`.
    pub(crate) fn iovec(&self, iovs: u32, i: u32) -> WResult<(u32, u32)> {
        let at = iovs
            .checked_add(i.checked_mul(8).ok_or(Errno::Fault)?)
            .ok_or(Errno::Fault)?;
        Ok((
            self.read_u32(at)?,
            self.read_u32(at.checked_add(4).ok_or(Errno::Fault)?)?,
        ))
    }

    /// The guest string at `ptr`, `len` bytes of UTF-8 (`EILSEQ` if not).
    /// Paths longer than [`MAX_PATH`] are refused before any copy.
    pub(crate) fn path(&self, ptr: u32, len: u32) -> WResult<String> {
        if len as usize > MAX_PATH {
            return Err(Errno::Nametoolong);
        }
        let s = self.slice(ptr, len)?;
        let s = std::str::from_utf8(s).map_err(|_| Errno::Ilseq)?;
        if s.contains('\0') {
            return Err(Errno::Inval);
        }
        Ok(s.to_string())
    }
}

/// The longest path a guest may pass (Linux's own limit is 4096): the
/// bound on the one host allocation a path costs.
pub(crate) const MAX_PATH: usize = 64 * 1024;
