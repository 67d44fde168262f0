//! [`WasiCtx`], the per-store state of a WASI guest, and the
//! [`WasiCtxBuilder`] that grants it its capabilities.
//!
//! A guest reaches the outside world only through the descriptor table
//! built here: the standard streams, the preopened directories (each a
//! `cap_std::fs::Dir` handle, with what may be done inside it) and
//! preopened sockets. Descriptor numbers are indices into this table, not
//! host descriptors, so there is no number a guest can guess to reach a
//! host descriptor it was not given.

use crate::pipe::{MemoryInputPipe, MemoryOutputPipe};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// What a guest may do with a preopened directory (and the directories it
/// opens beneath it).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DirPerms(u8);

impl DirPerms {
    /// List, stat and open entries.
    pub const READ: DirPerms = DirPerms(1);
    /// Create, remove, rename and link entries, set their times, and
    /// create or truncate files.
    pub const MUTATE: DirPerms = DirPerms(2);
    /// Both.
    pub const fn all() -> DirPerms {
        DirPerms(3)
    }
    /// Whether every permission of `other` is in `self`.
    pub const fn contains(self, other: DirPerms) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for DirPerms {
    type Output = DirPerms;
    fn bitor(self, o: DirPerms) -> DirPerms {
        DirPerms(self.0 | o.0)
    }
}

/// What a guest may do with the files it opens beneath a preopened
/// directory.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FilePerms(u8);

impl FilePerms {
    /// Read files.
    pub const READ: FilePerms = FilePerms(1);
    /// Write, truncate, allocate and set times of files.
    pub const WRITE: FilePerms = FilePerms(2);
    /// Both.
    pub const fn all() -> FilePerms {
        FilePerms(3)
    }
    /// Whether every permission of `other` is in `self`.
    pub const fn contains(self, other: FilePerms) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for FilePerms {
    type Output = FilePerms;
    fn bitor(self, o: FilePerms) -> FilePerms {
        FilePerms(self.0 | o.0)
    }
}

/// A wall clock (`CLOCK_REALTIME`).
pub trait WallClock: Send + Sync {
    /// Time since the Unix epoch.
    fn now(&self) -> Duration;
    /// The clock's resolution.
    fn resolution(&self) -> Duration;
}

/// A monotonic clock (`CLOCK_MONOTONIC`).
pub trait MonotonicClock: Send + Sync {
    /// Nanoseconds since an arbitrary fixed point.
    fn now(&self) -> u64;
    /// The clock's resolution, in nanoseconds.
    fn resolution(&self) -> u64;
}

/// A source of random bytes (`random_get`).
pub trait RandomSource: Send {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

struct HostWallClock;
impl WallClock for HostWallClock {
    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
    }
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
}

struct HostMonotonicClock(Instant);
impl MonotonicClock for HostMonotonicClock {
    fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    fn resolution(&self) -> u64 {
        1
    }
}

/// The operating system's random numbers (`getrandom`).
struct HostRandom;
impl RandomSource for HostRandom {
    fn fill(&mut self, mut buf: &mut [u8]) {
        while !buf.is_empty() {
            match rustix::rand::getrandom(&mut *buf, rustix::rand::GetRandomFlags::empty()) {
                Ok(n) => buf = &mut buf[n..],
                Err(rustix::io::Errno::INTR) => {}
                // getrandom only fails for bad arguments or before the
                // kernel's pool is ready; spin until it is.
                Err(_) => std::thread::yield_now(),
            }
        }
    }
}

/// A standard stream as the guest sees it.
#[derive(Clone, Debug)]
pub(crate) enum Stream {
    /// The host process's stdin (0), stdout (1) or stderr (2), borrowed:
    /// closing it in the guest never closes the host's.
    Inherit(i32),
    /// Input from memory.
    Input(MemoryInputPipe),
    /// Output to memory.
    Output(MemoryOutputPipe),
    /// Reads end-of-file at once.
    Empty,
    /// Swallows output.
    Sink,
}

pub(crate) struct Preopen {
    pub(crate) dir: cap_std::fs::Dir,
    pub(crate) guest: String,
    pub(crate) perms: DirPerms,
    pub(crate) file_perms: FilePerms,
}

/// Builds a [`WasiCtx`]: what the guest is given. Nothing is granted by
/// default: no arguments, no environment, stdin at end-of-file, stdout and
/// stderr discarded, no directories, no sockets; clocks and randomness are
/// the host's unless replaced.
pub struct WasiCtxBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Stream,
    stdout: Stream,
    stderr: Stream,
    preopens: Vec<Preopen>,
    listeners: Vec<std::net::TcpListener>,
    wall: Box<dyn WallClock>,
    mono: Box<dyn MonotonicClock>,
    random: Box<dyn RandomSource>,
}

impl Default for WasiCtxBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl WasiCtxBuilder {
    /// A builder that grants nothing.
    pub fn new() -> Self {
        WasiCtxBuilder {
            args: Vec::new(),
            env: Vec::new(),
            stdin: Stream::Empty,
            stdout: Stream::Sink,
            stderr: Stream::Sink,
            preopens: Vec::new(),
            listeners: Vec::new(),
            wall: Box::new(HostWallClock),
            mono: Box::new(HostMonotonicClock(Instant::now())),
            random: Box::new(HostRandom),
        }
    }

    /// Appends one argument (the first is the program name, `argv[0]`).
    pub fn arg(&mut self, arg: impl AsRef<str>) -> &mut Self {
        self.args.push(arg.as_ref().to_string());
        self
    }

    /// Appends arguments.
    pub fn args(&mut self, args: &[impl AsRef<str>]) -> &mut Self {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Gives the guest the host process's arguments.
    pub fn inherit_args(&mut self) -> &mut Self {
        self.args = std::env::args().collect();
        self
    }

    /// Sets one environment variable (replacing an earlier one of the
    /// same name).
    pub fn env(&mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> &mut Self {
        let (name, value) = (name.as_ref(), value.as_ref());
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets environment variables.
    pub fn envs(&mut self, vars: &[(impl AsRef<str>, impl AsRef<str>)]) -> &mut Self {
        for (n, v) in vars {
            self.env(n, v);
        }
        self
    }

    /// Gives the guest the host process's environment (variables whose
    /// name or value is not UTF-8 are left out).
    pub fn inherit_env(&mut self) -> &mut Self {
        for (n, v) in std::env::vars_os() {
            if let (Some(n), Some(v)) = (n.to_str(), v.to_str()) {
                self.env(n, v);
            }
        }
        self
    }

    /// Reads the guest's stdin from `pipe`.
    pub fn stdin(&mut self, pipe: MemoryInputPipe) -> &mut Self {
        self.stdin = Stream::Input(pipe);
        self
    }

    /// Collects the guest's stdout in `pipe`.
    pub fn stdout(&mut self, pipe: MemoryOutputPipe) -> &mut Self {
        self.stdout = Stream::Output(pipe);
        self
    }

    /// Collects the guest's stderr in `pipe`.
    pub fn stderr(&mut self, pipe: MemoryOutputPipe) -> &mut Self {
        self.stderr = Stream::Output(pipe);
        self
    }

    /// The guest reads the host process's stdin.
    pub fn inherit_stdin(&mut self) -> &mut Self {
        self.stdin = Stream::Inherit(0);
        self
    }

    /// The guest writes to the host process's stdout, unbuffered: every
    /// `fd_write` is a `write` system call, so nothing is left to flush
    /// however the guest ends.
    pub fn inherit_stdout(&mut self) -> &mut Self {
        self.stdout = Stream::Inherit(1);
        self
    }

    /// The guest writes to the host process's stderr, unbuffered.
    pub fn inherit_stderr(&mut self) -> &mut Self {
        self.stderr = Stream::Inherit(2);
        self
    }

    /// All three standard streams are the host process's.
    pub fn inherit_stdio(&mut self) -> &mut Self {
        self.inherit_stdin().inherit_stdout().inherit_stderr()
    }

    /// Grants the directory `host_path` to the guest as `guest_path`, with
    /// `perms` on it (and on directories beneath it) and `file_perms` on
    /// the files beneath it. Every guest path is resolved beneath this
    /// directory's handle; `..`, absolute paths and symlinks cannot leave
    /// it.
    pub fn preopened_dir(
        &mut self,
        host_path: impl AsRef<Path>,
        guest_path: impl AsRef<str>,
        perms: DirPerms,
        file_perms: FilePerms,
    ) -> std::io::Result<&mut Self> {
        let dir =
            cap_std::fs::Dir::open_ambient_dir(host_path.as_ref(), cap_std::ambient_authority())?;
        self.preopens.push(Preopen {
            dir,
            guest: guest_path.as_ref().to_string(),
            perms,
            file_perms,
        });
        Ok(self)
    }

    /// Grants a listening TCP socket, which the guest finds as a
    /// descriptor after the preopened directories and uses with
    /// `sock_accept`.
    pub fn preopened_socket(&mut self, listener: std::net::TcpListener) -> &mut Self {
        self.listeners.push(listener);
        self
    }

    /// Replaces the wall clock.
    pub fn wall_clock(&mut self, clock: impl WallClock + 'static) -> &mut Self {
        self.wall = Box::new(clock);
        self
    }

    /// Replaces the monotonic clock.
    pub fn monotonic_clock(&mut self, clock: impl MonotonicClock + 'static) -> &mut Self {
        self.mono = Box::new(clock);
        self
    }

    /// Replaces the source of `random_get` (for deterministic tests).
    pub fn secure_random(&mut self, random: impl RandomSource + 'static) -> &mut Self {
        self.random = Box::new(random);
        self
    }

    /// The context. The builder is left granting nothing.
    pub fn build(&mut self) -> WasiCtx {
        let b = std::mem::take(self);
        let mut table = crate::table::Table::default();
        table.push_initial(crate::table::Desc::Stream(b.stdin));
        table.push_initial(crate::table::Desc::Stream(b.stdout));
        table.push_initial(crate::table::Desc::Stream(b.stderr));
        for p in b.preopens {
            table.push_initial(crate::table::Desc::Dir(crate::table::DirDesc {
                dir: p.dir,
                perms: p.perms,
                file_perms: p.file_perms,
                preopen: Some(p.guest),
                entries: None,
            }));
        }
        for l in b.listeners {
            table.push_initial(crate::table::Desc::Listener(l));
        }
        WasiCtx {
            args: b.args,
            env: b.env.into_iter().map(|(n, v)| format!("{n}={v}")).collect(),
            table,
            wall: b.wall,
            mono: b.mono,
            random: b.random,
        }
    }
}

/// A WASI guest's state: its arguments, environment, descriptor table,
/// clocks and randomness. Keep it in the store's data and hand
/// [`add_to_linker`](crate::add_to_linker) a way to reach it.
pub struct WasiCtx {
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) table: crate::table::Table,
    pub(crate) wall: Box<dyn WallClock>,
    pub(crate) mono: Box<dyn MonotonicClock>,
    pub(crate) random: Box<dyn RandomSource>,
}

impl WasiCtx {
    /// A builder.
    pub fn builder() -> WasiCtxBuilder {
        WasiCtxBuilder::new()
    }
}
