//! The descriptor table: what each guest descriptor number stands for.
//!
//! Numbers are allocated lowest-free-first, like POSIX. Closing a
//! standard stream or a preopened directory only drops this table's entry
//! (a borrowed host stdio descriptor is never closed; an owned handle is
//! closed when its entry is dropped), so nothing leaks and the number is
//! free for the next open. `fd_renumber` moves an entry over another
//! open one, closing what was there.

use crate::ctx::{DirPerms, FilePerms, Stream};
use crate::types::{Errno, WResult};

/// An open file.
pub(crate) struct FileDesc {
    pub(crate) file: std::fs::File,
    /// Opened for reading / writing (checked on every read and write).
    pub(crate) read: bool,
    pub(crate) write: bool,
    /// The permissions inherited from the preopen it was opened under.
    pub(crate) perms: FilePerms,
}

/// One entry of a directory listing, as `fd_readdir` reports it.
pub(crate) struct DirEntry {
    pub(crate) name: Vec<u8>,
    pub(crate) ino: u64,
    pub(crate) filetype: u8,
}

/// An open directory.
pub(crate) struct DirDesc {
    pub(crate) dir: cap_std::fs::Dir,
    pub(crate) perms: DirPerms,
    pub(crate) file_perms: FilePerms,
    /// The guest name, for a preopened directory.
    pub(crate) preopen: Option<String>,
    /// The listing `fd_readdir` pages through: read when a guest starts
    /// at cookie 0 and kept for the later calls, so listing a directory
    /// of n entries costs one pass, not one per buffer-full. A cookie is
    /// an index into it.
    pub(crate) entries: Option<Vec<DirEntry>>,
}

pub(crate) enum Desc {
    Stream(Stream),
    File(FileDesc),
    Dir(DirDesc),
    Listener(std::net::TcpListener),
    Socket(std::net::TcpStream),
}

/// The most descriptors a guest may hold (each usually holds a host
/// descriptor too, which the host's own limit bounds).
const MAX_DESCRIPTORS: usize = 1 << 16;

#[derive(Default)]
pub(crate) struct Table {
    slots: Vec<Option<Desc>>,
}

impl Table {
    /// Adds a descriptor the embedder granted (no limit: the embedder
    /// chose them).
    pub(crate) fn push_initial(&mut self, d: Desc) {
        self.slots.push(Some(d));
    }

    pub(crate) fn push(&mut self, d: Desc) -> WResult<u32> {
        let i = match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(d);
                i
            }
            None => {
                if self.slots.len() >= MAX_DESCRIPTORS {
                    return Err(Errno::Mfile);
                }
                self.slots.push(Some(d));
                self.slots.len() - 1
            }
        };
        Ok(i as u32)
    }

    pub(crate) fn get(&self, fd: u32) -> WResult<&Desc> {
        self.slots
            .get(fd as usize)
            .and_then(Option::as_ref)
            .ok_or(Errno::Badf)
    }

    pub(crate) fn get_mut(&mut self, fd: u32) -> WResult<&mut Desc> {
        self.slots
            .get_mut(fd as usize)
            .and_then(Option::as_mut)
            .ok_or(Errno::Badf)
    }

    pub(crate) fn remove(&mut self, fd: u32) -> WResult<Desc> {
        let d = self
            .slots
            .get_mut(fd as usize)
            .and_then(Option::take)
            .ok_or(Errno::Badf)?;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(d)
    }

    /// Moves `from` to `to`, closing what `to` held. Both must be open.
    pub(crate) fn renumber(&mut self, from: u32, to: u32) -> WResult<()> {
        self.get(from)?;
        self.get(to)?;
        if from == to {
            return Ok(());
        }
        let d = self.slots[from as usize].take();
        // The old entry of `to` is dropped here, closing its handle.
        self.slots[to as usize] = d;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(())
    }

    pub(crate) fn file(&mut self, fd: u32) -> WResult<&mut FileDesc> {
        match self.get_mut(fd)? {
            Desc::File(f) => Ok(f),
            Desc::Dir(_) => Err(Errno::Isdir),
            _ => Err(Errno::Badf),
        }
    }

    pub(crate) fn dir(&mut self, fd: u32) -> WResult<&mut DirDesc> {
        match self.get_mut(fd)? {
            Desc::Dir(d) => Ok(d),
            _ => Err(Errno::Notdir),
        }
    }
}
