//! The functions of `wasi_snapshot_preview1`, one Rust function each.
//!
//! Each takes the guest's [`WasiCtx`] and memory and returns `Ok(())` or
//! the `errno` the guest sees; `lib.rs` binds them to the linker. The
//! rules that make them safe to hand to a hostile guest:
//!
//! * **Paths never leave a directory handle.** Every path is resolved by
//!   `cap-std` beneath the `Dir` of the descriptor the guest names, one
//!   component at a time with `openat` and no-follow semantics, so `..`,
//!   absolute paths and symlinks that point outside fail (`EPERM`), and a
//!   symlink swapped in while a path is resolved is seen as the symlink
//!   it is, not followed past the sandbox's edge. No host path string is
//!   ever built from a guest path.
//! * **Permissions are checked before the system call.** A directory
//!   without [`DirPerms::MUTATE`] cannot gain, lose or rename entries (so
//!   `O_CREAT` and `O_TRUNC` fail with `EPERM` before `open`), and a file
//!   beneath a directory without [`FilePerms::WRITE`] is never opened for
//!   writing.
//! * **Guest lengths never size a host allocation.** Reads and writes go
//!   straight between the file and the guest's memory slice; listings and
//!   events are written into guest memory as they are produced.

use crate::ctx::{DirPerms, FilePerms, Stream, WasiCtx};
use crate::mem::GuestMem;
use crate::table::{Desc, DirDesc, DirEntry, FileDesc};
use crate::types::*;
use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;

type Mem<'m, 'a> = &'m mut GuestMem<'a>;

fn u64_of(secs: i64, nsec: i64) -> u64 {
    let t = i128::from(secs) * 1_000_000_000 + i128::from(nsec);
    u64::try_from(t.max(0)).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------- args, env

fn sizes(items: &[String], mem: Mem, count_ptr: u32, size_ptr: u32) -> WResult<()> {
    let count = u32::try_from(items.len()).map_err(|_| Errno::Overflow)?;
    let size: usize = items.iter().map(|s| s.len() + 1).sum();
    let size = u32::try_from(size).map_err(|_| Errno::Overflow)?;
    mem.write_u32(count_ptr, count)?;
    mem.write_u32(size_ptr, size)
}

fn strings(items: &[String], mem: Mem, ptrs: u32, buf: u32) -> WResult<()> {
    let mut at = buf;
    for (i, s) in items.iter().enumerate() {
        let slot = ptrs.checked_add(4 * i as u32).ok_or(Errno::Fault)?;
        mem.write_u32(slot, at)?;
        mem.write(at, s.as_bytes())?;
        let end = at.checked_add(s.len() as u32).ok_or(Errno::Fault)?;
        mem.write_u8(end, 0)?;
        at = end.checked_add(1).ok_or(Errno::Fault)?;
    }
    Ok(())
}

pub(crate) fn args_sizes_get(cx: &mut WasiCtx, mem: Mem, argc: u32, size: u32) -> WResult<()> {
    sizes(&cx.args, mem, argc, size)
}
pub(crate) fn args_get(cx: &mut WasiCtx, mem: Mem, argv: u32, buf: u32) -> WResult<()> {
    strings(&cx.args, mem, argv, buf)
}
pub(crate) fn environ_sizes_get(cx: &mut WasiCtx, mem: Mem, n: u32, size: u32) -> WResult<()> {
    sizes(&cx.env, mem, n, size)
}
pub(crate) fn environ_get(cx: &mut WasiCtx, mem: Mem, env: u32, buf: u32) -> WResult<()> {
    strings(&cx.env, mem, env, buf)
}

// ---------------------------------------------------------------- clocks

fn cpu_clock(id: u32) -> Option<rustix::time::ClockId> {
    match id {
        CLOCK_PROCESS_CPUTIME => Some(rustix::time::ClockId::ProcessCPUTime),
        CLOCK_THREAD_CPUTIME => Some(rustix::time::ClockId::ThreadCPUTime),
        _ => None,
    }
}

fn now(cx: &WasiCtx, id: u32) -> WResult<u64> {
    match id {
        CLOCK_REALTIME => Ok(u64::try_from(cx.wall.now().as_nanos()).unwrap_or(u64::MAX)),
        CLOCK_MONOTONIC => Ok(cx.mono.now()),
        _ => {
            let c = cpu_clock(id).ok_or(Errno::Inval)?;
            let t = rustix::time::clock_gettime(c);
            Ok(u64_of(t.tv_sec, t.tv_nsec))
        }
    }
}

pub(crate) fn clock_res_get(cx: &mut WasiCtx, mem: Mem, id: u32, out: u32) -> WResult<()> {
    let res = match id {
        CLOCK_REALTIME => u64::try_from(cx.wall.resolution().as_nanos()).unwrap_or(u64::MAX),
        CLOCK_MONOTONIC => cx.mono.resolution(),
        _ => {
            let c = cpu_clock(id).ok_or(Errno::Inval)?;
            let t = rustix::time::clock_getres(c);
            u64_of(t.tv_sec, t.tv_nsec)
        }
    };
    mem.write_u64(out, res)
}

pub(crate) fn clock_time_get(
    cx: &mut WasiCtx,
    mem: Mem,
    id: u32,
    _precision: u64,
    out: u32,
) -> WResult<()> {
    let t = now(cx, id)?;
    mem.write_u64(out, t)
}

// ---------------------------------------------------------------- helpers

fn filetype_of(ft: rustix::fs::FileType) -> u8 {
    use rustix::fs::FileType as F;
    match ft {
        F::RegularFile => FILETYPE_REGULAR_FILE,
        F::Directory => FILETYPE_DIRECTORY,
        F::Symlink => FILETYPE_SYMBOLIC_LINK,
        F::CharacterDevice => FILETYPE_CHARACTER_DEVICE,
        F::BlockDevice => FILETYPE_BLOCK_DEVICE,
        F::Socket => FILETYPE_SOCKET_STREAM,
        _ => FILETYPE_UNKNOWN,
    }
}

fn filetype_of_cap(ft: cap_std::fs::FileType) -> u8 {
    use cap_std::fs::FileTypeExt;
    if ft.is_dir() {
        FILETYPE_DIRECTORY
    } else if ft.is_file() {
        FILETYPE_REGULAR_FILE
    } else if ft.is_symlink() {
        FILETYPE_SYMBOLIC_LINK
    } else if ft.is_char_device() {
        FILETYPE_CHARACTER_DEVICE
    } else if ft.is_block_device() {
        FILETYPE_BLOCK_DEVICE
    } else if ft.is_socket() {
        FILETYPE_SOCKET_STREAM
    } else {
        FILETYPE_UNKNOWN
    }
}

/// The host descriptor of an inherited standard stream, borrowed from
/// std's handles (which never close it).
fn with_host_stdio<R>(n: i32, f: impl FnOnce(BorrowedFd<'_>) -> R) -> R {
    match n {
        0 => f(std::io::stdin().as_fd()),
        1 => f(std::io::stdout().as_fd()),
        _ => f(std::io::stderr().as_fd()),
    }
}

struct Filestat {
    dev: u64,
    ino: u64,
    filetype: u8,
    nlink: u64,
    size: u64,
    atim: u64,
    mtim: u64,
    ctim: u64,
}

impl Filestat {
    fn zero(filetype: u8) -> Filestat {
        Filestat {
            dev: 0,
            ino: 0,
            filetype,
            nlink: 0,
            size: 0,
            atim: 0,
            mtim: 0,
            ctim: 0,
        }
    }

    fn of_fd(fd: impl AsFd) -> WResult<Filestat> {
        let st = rustix::fs::fstat(fd)?;
        // `st_nlink` is `u32` on AArch64 Linux and `u64` on x86-64.
        #[allow(clippy::useless_conversion)]
        let nlink = u64::from(st.st_nlink);
        Ok(Filestat {
            dev: st.st_dev,
            ino: st.st_ino,
            filetype: filetype_of(rustix::fs::FileType::from_raw_mode(st.st_mode)),
            nlink,
            size: u64::try_from(st.st_size).unwrap_or(0),
            atim: u64_of(st.st_atime, st.st_atime_nsec as i64),
            mtim: u64_of(st.st_mtime, st.st_mtime_nsec as i64),
            ctim: u64_of(st.st_ctime, st.st_ctime_nsec as i64),
        })
    }

    fn of_meta(m: &cap_std::fs::Metadata) -> Filestat {
        use cap_std::fs::MetadataExt;
        Filestat {
            dev: m.dev(),
            ino: m.ino(),
            filetype: filetype_of_cap(m.file_type()),
            nlink: m.nlink(),
            size: m.size(),
            atim: u64_of(m.atime(), m.atime_nsec()),
            mtim: u64_of(m.mtime(), m.mtime_nsec()),
            ctim: u64_of(m.ctime(), m.ctime_nsec()),
        }
    }

    fn write(&self, mem: Mem, at: u32) -> WResult<()> {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&self.dev.to_le_bytes());
        b[8..16].copy_from_slice(&self.ino.to_le_bytes());
        b[16] = self.filetype;
        b[24..32].copy_from_slice(&self.nlink.to_le_bytes());
        b[32..40].copy_from_slice(&self.size.to_le_bytes());
        b[40..48].copy_from_slice(&self.atim.to_le_bytes());
        b[48..56].copy_from_slice(&self.mtim.to_le_bytes());
        b[56..64].copy_from_slice(&self.ctim.to_le_bytes());
        mem.write(at, &b)
    }
}

/// The timestamps `fst_flags` asks for, as `futimens` takes them.
fn timestamps(atim: u64, mtim: u64, fst: u16) -> WResult<rustix::fs::Timestamps> {
    if fst & (FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW) == FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW
        || fst & (FSTFLAGS_MTIM | FSTFLAGS_MTIM_NOW) == FSTFLAGS_MTIM | FSTFLAGS_MTIM_NOW
        || fst & !0xf != 0
    {
        return Err(Errno::Inval);
    }
    let spec = |t: u64, set: u16, now: u16| rustix::fs::Timespec {
        tv_sec: if fst & set != 0 {
            (t / 1_000_000_000) as i64
        } else {
            0
        },
        tv_nsec: if fst & set != 0 {
            (t % 1_000_000_000) as _
        } else if fst & now != 0 {
            rustix::fs::UTIME_NOW
        } else {
            rustix::fs::UTIME_OMIT
        },
    };
    Ok(rustix::fs::Timestamps {
        last_access: spec(atim, FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW),
        last_modification: spec(mtim, FSTFLAGS_MTIM, FSTFLAGS_MTIM_NOW),
    })
}

/// The same, for cap-std's path-relative calls.
fn time_specs(
    atim: u64,
    mtim: u64,
    fst: u16,
) -> WResult<(
    Option<cap_fs_ext::SystemTimeSpec>,
    Option<cap_fs_ext::SystemTimeSpec>,
)> {
    timestamps(atim, mtim, fst)?;
    let spec = |t: u64, set: u16, now: u16| {
        if fst & set != 0 {
            Some(cap_fs_ext::SystemTimeSpec::Absolute(
                cap_std::time::SystemTime::from_std(
                    std::time::UNIX_EPOCH + Duration::from_nanos(t),
                ),
            ))
        } else if fst & now != 0 {
            Some(cap_fs_ext::SystemTimeSpec::SymbolicNow)
        } else {
            None
        }
    };
    Ok((
        spec(atim, FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW),
        spec(mtim, FSTFLAGS_MTIM, FSTFLAGS_MTIM_NOW),
    ))
}

fn need_mutate(d: &DirDesc) -> WResult<()> {
    if d.perms.contains(DirPerms::MUTATE) {
        Ok(())
    } else {
        Err(Errno::Perm)
    }
}

fn need_read(d: &DirDesc) -> WResult<()> {
    if d.perms.contains(DirPerms::READ) {
        Ok(())
    } else {
        Err(Errno::Perm)
    }
}

fn readable(f: &FileDesc) -> WResult<()> {
    if f.read {
        Ok(())
    } else {
        Err(Errno::Badf)
    }
}

fn writable(f: &FileDesc) -> WResult<()> {
    if f.write {
        Ok(())
    } else {
        Err(Errno::Badf)
    }
}

// ---------------------------------------------------------------- fd_*

pub(crate) fn fd_advise(
    cx: &mut WasiCtx,
    _mem: Mem,
    fd: u32,
    offset: u64,
    len: u64,
    advice: u8,
) -> WResult<()> {
    use rustix::fs::Advice;
    let advice = match advice {
        ADVICE_NORMAL => Advice::Normal,
        ADVICE_SEQUENTIAL => Advice::Sequential,
        ADVICE_RANDOM => Advice::Random,
        ADVICE_WILLNEED => Advice::WillNeed,
        ADVICE_DONTNEED => Advice::DontNeed,
        ADVICE_NOREUSE => Advice::NoReuse,
        _ => return Err(Errno::Inval),
    };
    let f = cx.table.file(fd)?;
    rustix::fs::fadvise(&f.file, offset, std::num::NonZeroU64::new(len), advice)?;
    Ok(())
}

pub(crate) fn fd_allocate(
    cx: &mut WasiCtx,
    _mem: Mem,
    fd: u32,
    offset: u64,
    len: u64,
) -> WResult<()> {
    let f = cx.table.file(fd)?;
    writable(f)?;
    if offset.checked_add(len).is_none_or(|e| e > i64::MAX as u64) {
        return Err(Errno::Fbig);
    }
    rustix::fs::fallocate(&f.file, rustix::fs::FallocateFlags::empty(), offset, len)?;
    Ok(())
}

pub(crate) fn fd_close(cx: &mut WasiCtx, _mem: Mem, fd: u32) -> WResult<()> {
    // Dropping the entry closes an owned handle; a borrowed host stdio
    // descriptor stays open for the host.
    cx.table.remove(fd).map(drop)
}

fn sync(cx: &mut WasiCtx, fd: u32, data_only: bool) -> WResult<()> {
    let r = match cx.table.get(fd)? {
        Desc::File(f) if data_only => rustix::fs::fdatasync(&f.file),
        Desc::File(f) => rustix::fs::fsync(&f.file),
        Desc::Dir(d) if data_only => rustix::fs::fdatasync(&d.dir),
        Desc::Dir(d) => rustix::fs::fsync(&d.dir),
        _ => return Err(Errno::Inval),
    };
    Ok(r?)
}

pub(crate) fn fd_datasync(cx: &mut WasiCtx, _mem: Mem, fd: u32) -> WResult<()> {
    sync(cx, fd, true)
}

pub(crate) fn fd_sync(cx: &mut WasiCtx, _mem: Mem, fd: u32) -> WResult<()> {
    sync(cx, fd, false)
}

fn fdflags_of(fd: impl AsFd) -> WResult<u16> {
    use rustix::fs::OFlags;
    let fl = rustix::fs::fcntl_getfl(fd)?;
    let mut out = 0;
    if fl.contains(OFlags::APPEND) {
        out |= FDFLAGS_APPEND;
    }
    if fl.contains(OFlags::NONBLOCK) {
        out |= FDFLAGS_NONBLOCK;
    }
    if fl.contains(OFlags::SYNC) {
        out |= FDFLAGS_SYNC;
    } else if fl.contains(OFlags::DSYNC) {
        out |= FDFLAGS_DSYNC;
    }
    Ok(out)
}

pub(crate) fn fd_fdstat_get(cx: &mut WasiCtx, mem: Mem, fd: u32, out: u32) -> WResult<()> {
    let (filetype, flags, base, inheriting) = match cx.table.get(fd)? {
        Desc::Stream(s) => {
            let (ft, read, write) = match s {
                Stream::Inherit(n) => {
                    let ft = with_host_stdio(*n, |h| {
                        Filestat::of_fd(h).map_or(FILETYPE_UNKNOWN, |s| s.filetype)
                    });
                    // A redirected stdio file still behaves as a stream.
                    let ft = if ft == FILETYPE_CHARACTER_DEVICE {
                        ft
                    } else {
                        FILETYPE_UNKNOWN
                    };
                    (ft, *n == 0, *n != 0)
                }
                Stream::Input(_) | Stream::Empty => (FILETYPE_UNKNOWN, true, false),
                Stream::Output(_) | Stream::Sink => (FILETYPE_UNKNOWN, false, true),
            };
            let mut r = rights::STREAM;
            if !read {
                r &= !rights::FD_READ;
            }
            if !write {
                r &= !rights::FD_WRITE;
            }
            (ft, 0, r, 0)
        }
        Desc::File(f) => {
            let ft = Filestat::of_fd(&f.file)?.filetype;
            let mut r = 0;
            if f.read {
                r |= rights::FILE_READ;
            }
            if f.write {
                r |= rights::FILE_WRITE;
            }
            (ft, fdflags_of(&f.file)?, r, 0)
        }
        Desc::Dir(d) => {
            let mut r = rights::DIR_READ;
            if d.perms.contains(DirPerms::MUTATE) {
                r |= rights::DIR_MUTATE;
            }
            let mut inh = r;
            if d.file_perms.contains(FilePerms::READ) {
                inh |= rights::FILE_READ;
            }
            if d.file_perms.contains(FilePerms::WRITE) {
                inh |= rights::FILE_WRITE;
            }
            (FILETYPE_DIRECTORY, 0, r, inh)
        }
        Desc::Listener(l) => (FILETYPE_SOCKET_STREAM, fdflags_of(l)?, rights::LISTENER, 0),
        Desc::Socket(s) => (FILETYPE_SOCKET_STREAM, fdflags_of(s)?, rights::SOCKET, 0),
    };
    let mut b = [0u8; 24];
    b[0] = filetype;
    b[2..4].copy_from_slice(&flags.to_le_bytes());
    b[8..16].copy_from_slice(&base.to_le_bytes());
    b[16..24].copy_from_slice(&inheriting.to_le_bytes());
    mem.write(out, &b)
}

pub(crate) fn fd_fdstat_set_flags(cx: &mut WasiCtx, _mem: Mem, fd: u32, flags: u16) -> WResult<()> {
    use rustix::fs::OFlags;
    if flags & (FDFLAGS_DSYNC | FDFLAGS_RSYNC | FDFLAGS_SYNC) != 0 {
        // Linux cannot change the synchronisation mode of an open file.
        return Err(Errno::Notsup);
    }
    if flags & !(FDFLAGS_APPEND | FDFLAGS_NONBLOCK) != 0 {
        return Err(Errno::Inval);
    }
    let set = |fd: BorrowedFd<'_>| -> WResult<()> {
        let mut fl = rustix::fs::fcntl_getfl(fd)?;
        fl.set(OFlags::APPEND, flags & FDFLAGS_APPEND != 0);
        fl.set(OFlags::NONBLOCK, flags & FDFLAGS_NONBLOCK != 0);
        rustix::fs::fcntl_setfl(fd, fl)?;
        Ok(())
    };
    match cx.table.get(fd)? {
        Desc::File(f) => {
            if flags & FDFLAGS_APPEND != 0 {
                writable(f)?;
            }
            set(f.file.as_fd())
        }
        Desc::Listener(l) => set(l.as_fd()),
        Desc::Socket(s) => set(s.as_fd()),
        // The host's own stdio descriptors and in-memory pipes keep their
        // mode: changing it would change the host process's streams.
        Desc::Stream(_) if flags == 0 => Ok(()),
        Desc::Stream(_) => Err(Errno::Notsup),
        Desc::Dir(_) => Err(Errno::Badf),
    }
}

pub(crate) fn fd_fdstat_set_rights(
    cx: &mut WasiCtx,
    _mem: Mem,
    fd: u32,
    _base: u64,
    _inheriting: u64,
) -> WResult<()> {
    // Rights are not a capability here (permissions are): like Wasmtime,
    // refuse to pretend they were changed.
    cx.table.get(fd)?;
    Err(Errno::Notsup)
}

pub(crate) fn fd_filestat_get(cx: &mut WasiCtx, mem: Mem, fd: u32, out: u32) -> WResult<()> {
    let st = match cx.table.get(fd)? {
        Desc::File(f) => Filestat::of_fd(&f.file)?,
        Desc::Dir(d) => Filestat::of_fd(&d.dir)?,
        Desc::Stream(Stream::Inherit(n)) => {
            let ft = with_host_stdio(*n, |h| {
                Filestat::of_fd(h).map_or(FILETYPE_UNKNOWN, |s| s.filetype)
            });
            Filestat::zero(if ft == FILETYPE_CHARACTER_DEVICE {
                ft
            } else {
                FILETYPE_UNKNOWN
            })
        }
        Desc::Stream(_) => Filestat::zero(FILETYPE_UNKNOWN),
        Desc::Listener(_) | Desc::Socket(_) => Filestat::zero(FILETYPE_SOCKET_STREAM),
    };
    st.write(mem, out)
}

pub(crate) fn fd_filestat_set_size(cx: &mut WasiCtx, _mem: Mem, fd: u32, size: u64) -> WResult<()> {
    let f = cx.table.file(fd)?;
    writable(f)?;
    if size > i64::MAX as u64 {
        return Err(Errno::Fbig);
    }
    f.file.set_len(size)?;
    Ok(())
}

pub(crate) fn fd_filestat_set_times(
    cx: &mut WasiCtx,
    _mem: Mem,
    fd: u32,
    atim: u64,
    mtim: u64,
    fst: u16,
) -> WResult<()> {
    let ts = timestamps(atim, mtim, fst)?;
    match cx.table.get(fd)? {
        Desc::File(f) => {
            if !f.perms.contains(FilePerms::WRITE) {
                return Err(Errno::Perm);
            }
            rustix::fs::futimens(&f.file, &ts)?;
        }
        Desc::Dir(d) => {
            need_mutate(d)?;
            rustix::fs::futimens(&d.dir, &ts)?;
        }
        _ => return Err(Errno::Badf),
    }
    Ok(())
}

/// Reads into the iovecs with `read`, which returns 0 at the end: a
/// stream stops after the first read that returned anything (a second
/// could block), a file after the first short read.
fn read_iovecs(
    mem: Mem,
    iovs: u32,
    n: u32,
    stream: bool,
    mut read: impl FnMut(&mut [u8]) -> WResult<usize>,
) -> WResult<u32> {
    let mut total: u32 = 0;
    for i in 0..n {
        let (buf, len) = mem.iovec(iovs, i)?;
        if len == 0 {
            continue;
        }
        let dst = mem.slice_mut(buf, len)?;
        let got = read(dst)?;
        total = total.saturating_add(got as u32);
        if got < len as usize || stream {
            break;
        }
    }
    Ok(total)
}

/// Writes the iovecs with `write`, stopping at the first short write.
fn write_iovecs(
    mem: Mem,
    iovs: u32,
    n: u32,
    mut write: impl FnMut(&[u8]) -> WResult<usize>,
) -> WResult<u32> {
    let mut total: u32 = 0;
    for i in 0..n {
        let (buf, len) = mem.iovec(iovs, i)?;
        if len == 0 {
            continue;
        }
        let src = mem.slice(buf, len)?;
        let put = match write(src) {
            Ok(p) => p,
            // Bytes already written count; the error shows next time.
            Err(_) if total > 0 => break,
            Err(e) => return Err(e),
        };
        total = total.saturating_add(put as u32);
        if put < len as usize {
            break;
        }
    }
    Ok(total)
}

fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> WResult<T> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// Writes all of `buf` to a host stdio descriptor.
fn write_all_host(n: i32, mut buf: &[u8]) -> WResult<usize> {
    let len = buf.len();
    while !buf.is_empty() {
        let put = with_host_stdio(n, |h| retry(|| rustix::io::write(h, buf)))?;
        if put == 0 {
            return Err(Errno::Io);
        }
        buf = &buf[put..];
    }
    Ok(len)
}

pub(crate) fn fd_pread(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    iovs: u32,
    n: u32,
    offset: u64,
    out: u32,
) -> WResult<()> {
    let f = match cx.table.get_mut(fd)? {
        Desc::File(f) => f,
        Desc::Dir(_) => return Err(Errno::Isdir),
        _ => return Err(Errno::Spipe),
    };
    readable(f)?;
    let mut at = offset;
    let file = &f.file;
    let total = read_iovecs(mem, iovs, n, false, |dst| {
        let got = file.read_at(dst, at)?;
        at += got as u64;
        Ok(got)
    })?;
    mem.write_u32(out, total)
}

pub(crate) fn fd_pwrite(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    iovs: u32,
    n: u32,
    offset: u64,
    out: u32,
) -> WResult<()> {
    let f = match cx.table.get_mut(fd)? {
        Desc::File(f) => f,
        Desc::Dir(_) => return Err(Errno::Isdir),
        _ => return Err(Errno::Spipe),
    };
    writable(f)?;
    let mut at = offset;
    let file = &f.file;
    let total = write_iovecs(mem, iovs, n, |src| {
        let put = file.write_at(src, at)?;
        at += put as u64;
        Ok(put)
    })?;
    mem.write_u32(out, total)
}

pub(crate) fn fd_prestat_get(cx: &mut WasiCtx, mem: Mem, fd: u32, out: u32) -> WResult<()> {
    match cx.table.get(fd)? {
        Desc::Dir(DirDesc {
            preopen: Some(name),
            ..
        }) => {
            let len = u32::try_from(name.len()).map_err(|_| Errno::Nametoolong)?;
            let mut b = [0u8; 8];
            b[4..8].copy_from_slice(&len.to_le_bytes());
            mem.write(out, &b)
        }
        _ => Err(Errno::Badf),
    }
}

pub(crate) fn fd_prestat_dir_name(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    path: u32,
    len: u32,
) -> WResult<()> {
    match cx.table.get(fd)? {
        Desc::Dir(DirDesc {
            preopen: Some(name),
            ..
        }) => {
            if (len as usize) < name.len() {
                return Err(Errno::Nametoolong);
            }
            mem.write(path, name.as_bytes())
        }
        _ => Err(Errno::Badf),
    }
}

pub(crate) fn fd_read(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    iovs: u32,
    n: u32,
    out: u32,
) -> WResult<()> {
    let total = match cx.table.get_mut(fd)? {
        Desc::File(f) => {
            readable(f)?;
            let file = &mut f.file;
            read_iovecs(mem, iovs, n, false, |dst| Ok(file.read(dst)?))?
        }
        Desc::Dir(_) => return Err(Errno::Isdir),
        Desc::Stream(Stream::Inherit(0)) => read_iovecs(mem, iovs, n, true, |dst| {
            with_host_stdio(0, |h| retry(|| rustix::io::read(h, &mut *dst)))
        })?,
        Desc::Stream(Stream::Input(p)) => {
            let p = p.clone();
            read_iovecs(mem, iovs, n, true, |dst| Ok(p.read(dst)))?
        }
        Desc::Stream(Stream::Empty) => 0,
        Desc::Stream(_) => return Err(Errno::Badf),
        Desc::Socket(s) => read_iovecs(mem, iovs, n, true, |dst| Ok(s.read(dst)?))?,
        Desc::Listener(_) => return Err(Errno::Notconn),
    };
    mem.write_u32(out, total)
}

/// Lists a directory for `fd_readdir`: `.` and `..` first, then the
/// entries in the order the system returns them.
fn list(d: &DirDesc) -> WResult<Vec<DirEntry>> {
    use rustix::fs::DirEntryExt;
    use std::os::unix::ffi::OsStrExt;
    let own = Filestat::of_fd(&d.dir)?.ino;
    let mut out = vec![
        DirEntry {
            name: b".".to_vec(),
            ino: own,
            filetype: FILETYPE_DIRECTORY,
        },
        // The parent may lie outside the sandbox: its inode is not told.
        DirEntry {
            name: b"..".to_vec(),
            ino: 0,
            filetype: FILETYPE_DIRECTORY,
        },
    ];
    for e in d.dir.entries()? {
        let e = e?;
        let filetype = e.file_type().map_or(FILETYPE_UNKNOWN, filetype_of_cap);
        out.push(DirEntry {
            name: e.file_name().as_bytes().to_vec(),
            ino: e.ino(),
            filetype,
        });
    }
    Ok(out)
}

pub(crate) fn fd_readdir(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    buf: u32,
    len: u32,
    cookie: u64,
    out: u32,
) -> WResult<()> {
    let d = cx.table.dir(fd)?;
    need_read(d)?;
    if cookie == 0 || d.entries.is_none() {
        d.entries = Some(list(d)?);
    }
    let entries = d.entries.as_deref().unwrap_or(&[]);
    let dst = mem.slice_mut(buf, len)?;
    let mut pos = 0usize;
    let start = usize::try_from(cookie).unwrap_or(usize::MAX);
    for (i, e) in entries.iter().enumerate().skip(start) {
        let mut head = [0u8; 24];
        head[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        head[8..16].copy_from_slice(&e.ino.to_le_bytes());
        head[16..20].copy_from_slice(&(e.name.len() as u32).to_le_bytes());
        head[20] = e.filetype;
        for part in [&head[..], &e.name[..]] {
            let n = part.len().min(dst.len() - pos);
            dst[pos..pos + n].copy_from_slice(&part[..n]);
            pos += n;
        }
        if pos == dst.len() {
            break;
        }
    }
    mem.write_u32(out, pos as u32)
}

pub(crate) fn fd_renumber(cx: &mut WasiCtx, _mem: Mem, from: u32, to: u32) -> WResult<()> {
    cx.table.renumber(from, to)
}

pub(crate) fn fd_seek(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    offset: i64,
    whence: u8,
    out: u32,
) -> WResult<()> {
    let f = match cx.table.get_mut(fd)? {
        Desc::File(f) => f,
        Desc::Dir(_) => return Err(Errno::Badf),
        _ => return Err(Errno::Spipe),
    };
    let pos = match whence {
        WHENCE_SET => SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::Inval)?),
        WHENCE_CUR => SeekFrom::Current(offset),
        WHENCE_END => SeekFrom::End(offset),
        _ => return Err(Errno::Inval),
    };
    let new = f.file.seek(pos)?;
    mem.write_u64(out, new)
}

pub(crate) fn fd_tell(cx: &mut WasiCtx, mem: Mem, fd: u32, out: u32) -> WResult<()> {
    fd_seek(cx, mem, fd, 0, WHENCE_CUR, out)
}

pub(crate) fn fd_write(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    iovs: u32,
    n: u32,
    out: u32,
) -> WResult<()> {
    let total = match cx.table.get_mut(fd)? {
        Desc::File(f) => {
            writable(f)?;
            let file = &mut f.file;
            write_iovecs(mem, iovs, n, |src| Ok(file.write(src)?))?
        }
        Desc::Dir(_) => return Err(Errno::Isdir),
        Desc::Stream(Stream::Inherit(h @ (1 | 2))) => {
            let h = *h;
            write_iovecs(mem, iovs, n, |src| write_all_host(h, src))?
        }
        Desc::Stream(Stream::Output(p)) => {
            let p = p.clone();
            write_iovecs(mem, iovs, n, |src| {
                if p.write(src) {
                    Ok(src.len())
                } else {
                    Err(Errno::Nospc)
                }
            })?
        }
        Desc::Stream(Stream::Sink) => write_iovecs(mem, iovs, n, |src| Ok(src.len()))?,
        Desc::Stream(_) => return Err(Errno::Badf),
        Desc::Socket(s) => write_iovecs(mem, iovs, n, |src| Ok(s.write(src)?))?,
        Desc::Listener(_) => return Err(Errno::Notconn),
    };
    mem.write_u32(out, total)
}

// ---------------------------------------------------------------- path_*

pub(crate) fn path_create_directory(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    path: u32,
    len: u32,
) -> WResult<()> {
    let path = mem.path(path, len)?;
    let d = cx.table.dir(fd)?;
    need_mutate(d)?;
    d.dir.create_dir(&path)?;
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "the WASI signature")]
pub(crate) fn path_filestat_get(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    flags: u32,
    path: u32,
    len: u32,
    out: u32,
) -> WResult<()> {
    let path = mem.path(path, len)?;
    let d = cx.table.dir(fd)?;
    need_read(d)?;
    let m = if flags & LOOKUP_SYMLINK_FOLLOW != 0 {
        d.dir.metadata(&path)?
    } else {
        d.dir.symlink_metadata(&path)?
    };
    Filestat::of_meta(&m).write(mem, out)
}

#[allow(clippy::too_many_arguments, reason = "the WASI signature")]
pub(crate) fn path_filestat_set_times(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    flags: u32,
    path: u32,
    len: u32,
    atim: u64,
    mtim: u64,
    fst: u16,
) -> WResult<()> {
    let path = mem.path(path, len)?;
    let (a, m) = time_specs(atim, mtim, fst)?;
    let d = cx.table.dir(fd)?;
    need_mutate(d)?;
    if flags & LOOKUP_SYMLINK_FOLLOW != 0 {
        d.dir.set_times(&path, a, m)?;
    } else {
        d.dir.set_symlink_times(&path, a, m)?;
    }
    Ok(())
}

/// Two directory descriptors at once (they may be the same).
fn two_dirs(cx: &mut WasiCtx, a: u32, b: u32) -> WResult<(&DirDesc, &DirDesc)> {
    let da = match cx.table.get(a)? {
        Desc::Dir(d) => d,
        _ => return Err(Errno::Notdir),
    };
    let db = match cx.table.get(b)? {
        Desc::Dir(d) => d,
        _ => return Err(Errno::Notdir),
    };
    Ok((da, db))
}

#[allow(clippy::too_many_arguments, reason = "the WASI signature")]
pub(crate) fn path_link(
    cx: &mut WasiCtx,
    mem: Mem,
    old_fd: u32,
    old_flags: u32,
    old_path: u32,
    old_len: u32,
    new_fd: u32,
    new_path: u32,
    new_len: u32,
) -> WResult<()> {
    let old = mem.path(old_path, old_len)?;
    let new = mem.path(new_path, new_len)?;
    let (od, nd) = two_dirs(cx, old_fd, new_fd)?;
    need_mutate(od)?;
    need_mutate(nd)?;
    if old_flags & LOOKUP_SYMLINK_FOLLOW != 0 {
        // Linking the target of a symlink would let a link point a
        // hard link at whatever the symlink names; refused, as Wasmtime does.
        return Err(Errno::Inval);
    }
    od.dir.hard_link(&old, &nd.dir, &new)?;
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "the WASI signature")]
pub(crate) fn path_open(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    dirflags: u32,
    path: u32,
    len: u32,
    oflags: u16,
    base: u64,
    _inheriting: u64,
    fdflags: u16,
    out: u32,
) -> WResult<()> {
    use cap_std::fs::OpenOptionsExt;
    use rustix::fs::OFlags;
    let path = mem.path(path, len)?;
    let d = cx.table.dir(fd)?;
    need_read(d)?;
    let create = oflags & OFLAGS_CREAT != 0;
    let trunc = oflags & OFLAGS_TRUNC != 0;
    let directory = oflags & OFLAGS_DIRECTORY != 0;
    if oflags & !0xf != 0 {
        return Err(Errno::Inval);
    }
    if create || trunc {
        need_mutate(d)?;
    }
    let want_read = base & (rights::FD_READ | rights::FD_READDIR) != 0;
    let want_write = base
        & (rights::FD_WRITE
            | rights::FD_ALLOCATE
            | rights::FD_FILESTAT_SET_SIZE
            | rights::FD_DATASYNC)
        != 0
        || fdflags & FDFLAGS_APPEND != 0;
    if directory && create {
        return Err(Errno::Inval);
    }
    // Creating or truncating needs write access to the file (the
    // directory's MUTATE permission was checked above).
    let write = !directory && (want_write || create || trunc);
    if write && !d.file_perms.contains(FilePerms::WRITE) {
        return Err(Errno::Perm);
    }
    let read = want_read && d.file_perms.contains(FilePerms::READ);
    let mut opts = cap_std::fs::OpenOptions::new();
    // Some access mode is needed to open at all; what the guest may do
    // is recorded in the descriptor and checked at each call.
    opts.read(read || !write);
    opts.write(write);
    if fdflags & FDFLAGS_APPEND != 0 {
        opts.append(true);
    }
    if create && oflags & OFLAGS_EXCL != 0 {
        opts.create_new(true);
    } else if create {
        opts.create(true);
    }
    if trunc {
        opts.truncate(true);
    }
    opts.follow(if dirflags & LOOKUP_SYMLINK_FOLLOW != 0 {
        FollowSymlinks::Yes
    } else {
        FollowSymlinks::No
    });
    opts.maybe_dir(true);
    let mut custom = OFlags::empty();
    if directory {
        custom |= OFlags::DIRECTORY;
    }
    if fdflags & FDFLAGS_NONBLOCK != 0 {
        custom |= OFlags::NONBLOCK;
    }
    if fdflags & FDFLAGS_SYNC != 0 {
        custom |= OFlags::SYNC;
    } else if fdflags & (FDFLAGS_DSYNC | FDFLAGS_RSYNC) != 0 {
        custom |= OFlags::DSYNC;
    }
    opts.custom_flags(custom.bits() as i32);
    let file = d.dir.open_with(&path, &opts)?.into_std();
    let is_dir = Filestat::of_fd(&file)?.filetype == FILETYPE_DIRECTORY;
    let desc = if is_dir {
        Desc::Dir(DirDesc {
            dir: cap_std::fs::Dir::from_std_file(file),
            perms: d.perms,
            file_perms: d.file_perms,
            preopen: None,
            entries: None,
        })
    } else if directory {
        return Err(Errno::Notdir);
    } else {
        if want_read && !d.file_perms.contains(FilePerms::READ) {
            return Err(Errno::Perm);
        }
        Desc::File(FileDesc {
            file,
            read,
            write,
            perms: d.file_perms,
        })
    };
    let new = cx.table.push(desc)?;
    mem.write_u32(out, new)
}

#[allow(clippy::too_many_arguments, reason = "the WASI signature")]
pub(crate) fn path_readlink(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    path: u32,
    len: u32,
    buf: u32,
    buf_len: u32,
    out: u32,
) -> WResult<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = mem.path(path, len)?;
    let d = cx.table.dir(fd)?;
    need_read(d)?;
    let target = d.dir.read_link_contents(&path)?;
    let bytes = target.as_os_str().as_bytes();
    let n = bytes.len().min(buf_len as usize);
    mem.write(buf, &bytes[..n])?;
    mem.write_u32(out, n as u32)
}

pub(crate) fn path_remove_directory(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    path: u32,
    len: u32,
) -> WResult<()> {
    let path = mem.path(path, len)?;
    let d = cx.table.dir(fd)?;
    need_mutate(d)?;
    d.dir.remove_dir(&path)?;
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "the WASI signature")]
pub(crate) fn path_rename(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    old_path: u32,
    old_len: u32,
    new_fd: u32,
    new_path: u32,
    new_len: u32,
) -> WResult<()> {
    let old = mem.path(old_path, old_len)?;
    let new = mem.path(new_path, new_len)?;
    let (od, nd) = two_dirs(cx, fd, new_fd)?;
    need_mutate(od)?;
    need_mutate(nd)?;
    od.dir.rename(&old, &nd.dir, &new)?;
    Ok(())
}

pub(crate) fn path_symlink(
    cx: &mut WasiCtx,
    mem: Mem,
    old_path: u32,
    old_len: u32,
    fd: u32,
    new_path: u32,
    new_len: u32,
) -> WResult<()> {
    let old = mem.path(old_path, old_len)?;
    let new = mem.path(new_path, new_len)?;
    let d = cx.table.dir(fd)?;
    need_mutate(d)?;
    // `symlink` refuses a target that would lead outside the directory
    // (absolute, or climbing with `..`), so no link made by the guest
    // points out of its sandbox; links the host placed are still never
    // followed out of it.
    if escapes(&new, &old) {
        return Err(Errno::Perm);
    }
    d.dir.symlink(&old, &new)?;
    Ok(())
}

/// Whether a symlink at `link` (relative to a directory handle) with
/// contents `target` would point above that directory, judged from the
/// text alone: absolute, or more `..` than the depth it sits at. Such a
/// link could never be followed out by the guest (resolution is confined
/// anyway), but a host program walking the directory later might follow
/// it, so the guest may not plant it.
fn escapes(link: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    let mut depth: i64 = 0;
    let parent = link
        .trim_end_matches('/')
        .rsplit_once('/')
        .map_or("", |(p, _)| p);
    for c in parent.split('/').chain(target.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

pub(crate) fn path_unlink_file(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    path: u32,
    len: u32,
) -> WResult<()> {
    let path = mem.path(path, len)?;
    let d = cx.table.dir(fd)?;
    need_mutate(d)?;
    if path.ends_with('/') {
        // `unlink("file/")` names a directory; POSIX says ENOTDIR (or
        // EISDIR if it is one), never removal of the file.
        let m = d.dir.symlink_metadata(path.trim_end_matches('/'))?;
        return Err(if m.is_dir() {
            Errno::Isdir
        } else {
            Errno::Notdir
        });
    }
    d.dir.remove_file(&path)?;
    Ok(())
}

// ---------------------------------------------------------------- poll

/// One subscription, as read from guest memory.
struct Sub {
    userdata: u64,
    kind: u8,
    fd: u32,
    clock: u32,
    timeout: u64,
    abstime: bool,
}

fn read_sub(mem: &GuestMem, at: u32) -> WResult<Sub> {
    let b = mem.slice(at, 48)?;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
    Ok(Sub {
        userdata: u64_at(0),
        kind: b[8],
        fd: u32_at(16),
        clock: u32_at(16),
        timeout: u64_at(24),
        abstime: u16::from_le_bytes([b[40], b[41]]) & SUBCLOCK_ABSTIME != 0,
    })
}

fn write_event(
    mem: Mem,
    at: u32,
    userdata: u64,
    error: Errno,
    kind: u8,
    nbytes: u64,
    flags: u16,
) -> WResult<()> {
    let mut b = [0u8; 32];
    b[0..8].copy_from_slice(&userdata.to_le_bytes());
    b[8..10].copy_from_slice(&(error as u16).to_le_bytes());
    b[10] = kind;
    b[16..24].copy_from_slice(&nbytes.to_le_bytes());
    b[24..26].copy_from_slice(&flags.to_le_bytes());
    mem.write(at, &b)
}

/// Whether an fd subscription is ready now, without waiting: `Some` with
/// (error, nbytes, flags), or `None` if it waits on the host's stdin or a
/// socket.
fn fd_ready(cx: &mut WasiCtx, s: &Sub) -> Option<(Errno, u64, u16)> {
    let read = s.kind == EVENTTYPE_FD_READ;
    match cx.table.get(s.fd) {
        Err(e) => Some((e, 0, 0)),
        Ok(Desc::File(f)) => {
            let n = if read {
                let size = f.file.metadata().map(|m| m.len()).unwrap_or(0);
                let mut file = &f.file;
                let pos = file.stream_position().unwrap_or(size);
                size.saturating_sub(pos)
            } else {
                0
            };
            Some((Errno::Success, n, 0))
        }
        Ok(Desc::Stream(st)) => match (st, read) {
            (Stream::Inherit(0), true) => None,
            (Stream::Input(p), true) => {
                let n = p.remaining() as u64;
                Some((
                    Errno::Success,
                    n,
                    if n == 0 { EVENT_FD_READWRITE_HANGUP } else { 0 },
                ))
            }
            (Stream::Empty, true) => Some((Errno::Success, 0, EVENT_FD_READWRITE_HANGUP)),
            (Stream::Inherit(1 | 2) | Stream::Output(_) | Stream::Sink, false) => {
                Some((Errno::Success, 0, 0))
            }
            _ => Some((Errno::Badf, 0, 0)),
        },
        Ok(Desc::Socket(_)) | Ok(Desc::Listener(_)) => None,
        Ok(Desc::Dir(_)) => Some((Errno::Badf, 0, 0)),
    }
}

/// The host descriptor an fd subscription waits on (stdin or a socket).
fn host_fd(cx: &WasiCtx, fd: u32) -> Option<std::os::fd::OwnedFd> {
    match cx.table.get(fd).ok()? {
        Desc::Stream(Stream::Inherit(0)) => std::io::stdin().as_fd().try_clone_to_owned().ok(),
        Desc::Socket(s) => s.as_fd().try_clone_to_owned().ok(),
        Desc::Listener(l) => l.as_fd().try_clone_to_owned().ok(),
        _ => None,
    }
}

/// The most subscriptions that wait on host descriptors in one call (the
/// host's `poll` array is sized by them).
const MAX_POLL_FDS: usize = 1024;

pub(crate) fn poll_oneoff(
    cx: &mut WasiCtx,
    mem: Mem,
    subs: u32,
    events: u32,
    n: u32,
    out: u32,
) -> WResult<()> {
    if n == 0 {
        return Err(Errno::Inval);
    }
    // Bounds first: both arrays must lie in memory.
    mem.slice(subs, n.checked_mul(48).ok_or(Errno::Fault)?)?;
    mem.slice(events, n.checked_mul(32).ok_or(Errno::Fault)?)?;

    // Pass 1: what is ready now, the earliest clock deadline, and the host
    // descriptors to wait on.
    let mut ready = 0u32;
    let mut deadline: Option<u64> = None; // ns from now
    let mut waits: Vec<(u32, std::os::fd::OwnedFd, bool)> = Vec::new();
    for i in 0..n {
        let s = read_sub(mem, subs + 48 * i)?;
        match s.kind {
            EVENTTYPE_CLOCK => {
                let rel = if s.abstime {
                    match now(cx, s.clock) {
                        Ok(t) => s.timeout.saturating_sub(t),
                        Err(_) => 0,
                    }
                } else {
                    if s.clock > CLOCK_THREAD_CPUTIME {
                        0
                    } else {
                        s.timeout
                    }
                };
                if rel == 0 {
                    ready += 1;
                }
                deadline = Some(deadline.map_or(rel, |d| d.min(rel)));
            }
            EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE => match fd_ready(cx, &s) {
                Some(_) => ready += 1,
                None => {
                    if waits.len() >= MAX_POLL_FDS {
                        return Err(Errno::Nobufs);
                    }
                    if let Some(h) = host_fd(cx, s.fd) {
                        waits.push((i, h, s.kind == EVENTTYPE_FD_READ));
                    }
                }
            },
            _ => ready += 1,
        }
    }

    // Wait, unless something is ready already.
    let mut host_ready: Vec<u32> = Vec::new();
    if !waits.is_empty() {
        use rustix::event::{PollFd, PollFlags};
        let timeout = if ready > 0 { Some(0) } else { deadline };
        let mut pfds: Vec<PollFd<'_>> = waits
            .iter()
            .map(|(_, h, r)| PollFd::new(h, if *r { PollFlags::IN } else { PollFlags::OUT }))
            .collect();
        let ts = timeout.map(|ns| rustix::event::Timespec {
            tv_sec: (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as _,
        });
        retry(|| rustix::event::poll(&mut pfds, ts.as_ref()))?;
        for (k, p) in pfds.iter().enumerate() {
            if !p.revents().is_empty() {
                host_ready.push(waits[k].0);
            }
        }
    } else if ready == 0 {
        if let Some(ns) = deadline {
            std::thread::sleep(Duration::from_nanos(ns));
        }
    }

    // Pass 2: report.
    let mut count = 0u32;
    let clocks_fire = ready == 0 && host_ready.is_empty();
    for i in 0..n {
        let s = read_sub(mem, subs + 48 * i)?;
        let at = events + 32 * count;
        match s.kind {
            EVENTTYPE_CLOCK => {
                let rel = if s.abstime {
                    now(cx, s.clock).map_or(0, |t| s.timeout.saturating_sub(t))
                } else if s.clock > CLOCK_THREAD_CPUTIME {
                    0
                } else {
                    s.timeout
                };
                let fired = rel == 0 || (clocks_fire && Some(rel) == deadline);
                if fired {
                    let err = if s.clock > CLOCK_THREAD_CPUTIME {
                        Errno::Inval
                    } else {
                        Errno::Success
                    };
                    write_event(mem, at, s.userdata, err, EVENTTYPE_CLOCK, 0, 0)?;
                    count += 1;
                }
            }
            EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE => {
                if let Some((err, nbytes, flags)) = fd_ready(cx, &s) {
                    write_event(mem, at, s.userdata, err, s.kind, nbytes, flags)?;
                    count += 1;
                } else if host_ready.contains(&i) {
                    write_event(mem, at, s.userdata, Errno::Success, s.kind, 1, 0)?;
                    count += 1;
                }
            }
            other => {
                write_event(mem, at, s.userdata, Errno::Inval, other, 0, 0)?;
                count += 1;
            }
        }
    }
    mem.write_u32(out, count)
}

// ---------------------------------------------------------------- misc

pub(crate) fn random_get(cx: &mut WasiCtx, mem: Mem, buf: u32, len: u32) -> WResult<()> {
    let dst = mem.slice_mut(buf, len)?;
    cx.random.fill(dst);
    Ok(())
}

pub(crate) fn sched_yield(_cx: &mut WasiCtx, _mem: Mem) -> WResult<()> {
    std::thread::yield_now();
    Ok(())
}

pub(crate) fn proc_raise(_cx: &mut WasiCtx, _mem: Mem, _sig: u32) -> WResult<()> {
    // Raising a signal in the host process is no capability a guest gets.
    Err(Errno::Notsup)
}

// ---------------------------------------------------------------- sockets

pub(crate) fn sock_accept(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    flags: u16,
    out: u32,
) -> WResult<()> {
    if flags & !FDFLAGS_NONBLOCK != 0 {
        return Err(Errno::Inval);
    }
    let l = match cx.table.get(fd)? {
        Desc::Listener(l) => l,
        Desc::Socket(_) => return Err(Errno::Inval),
        _ => return Err(Errno::Notsock),
    };
    let (s, _) = l.accept()?;
    s.set_nonblocking(flags & FDFLAGS_NONBLOCK != 0)?;
    let new = cx.table.push(Desc::Socket(s))?;
    mem.write_u32(out, new)
}

fn socket(cx: &mut WasiCtx, fd: u32) -> WResult<&mut std::net::TcpStream> {
    match cx.table.get_mut(fd)? {
        Desc::Socket(s) => Ok(s),
        Desc::Listener(_) => Err(Errno::Notconn),
        _ => Err(Errno::Notsock),
    }
}

#[allow(clippy::too_many_arguments, reason = "the WASI signature")]
pub(crate) fn sock_recv(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    iovs: u32,
    n: u32,
    flags: u16,
    out_len: u32,
    out_flags: u32,
) -> WResult<()> {
    if flags & !(RIFLAGS_RECV_PEEK | RIFLAGS_RECV_WAITALL) != 0 {
        return Err(Errno::Inval);
    }
    let s = socket(cx, fd)?;
    let total = if flags & RIFLAGS_RECV_PEEK != 0 {
        read_iovecs(mem, iovs, n, true, |dst| Ok(s.peek(dst)?))?
    } else if flags & RIFLAGS_RECV_WAITALL != 0 {
        read_iovecs(mem, iovs, n, false, |dst| {
            let mut got = 0;
            while got < dst.len() {
                match s.read(&mut dst[got..])? {
                    0 => break,
                    k => got += k,
                }
            }
            Ok(got)
        })?
    } else {
        read_iovecs(mem, iovs, n, true, |dst| Ok(s.read(dst)?))?
    };
    mem.write_u32(out_len, total)?;
    mem.write_u16(out_flags, 0)
}

pub(crate) fn sock_send(
    cx: &mut WasiCtx,
    mem: Mem,
    fd: u32,
    iovs: u32,
    n: u32,
    flags: u16,
    out: u32,
) -> WResult<()> {
    if flags != 0 {
        return Err(Errno::Inval);
    }
    let s = socket(cx, fd)?;
    let total = write_iovecs(mem, iovs, n, |src| Ok(s.write(src)?))?;
    mem.write_u32(out, total)
}

pub(crate) fn sock_shutdown(cx: &mut WasiCtx, _mem: Mem, fd: u32, how: u8) -> WResult<()> {
    use std::net::Shutdown;
    let how = match how {
        SDFLAGS_RD => Shutdown::Read,
        SDFLAGS_WR => Shutdown::Write,
        x if x == SDFLAGS_RD | SDFLAGS_WR => Shutdown::Both,
        _ => return Err(Errno::Inval),
    };
    socket(cx, fd)?.shutdown(how)?;
    Ok(())
}
