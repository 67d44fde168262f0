//! The on-disk compile cache: [`Cache`], set with [`Config::cache`](crate::Config::cache).
//!
//! # What an entry is keyed by
//!
//! An entry's file name is the SHA-256 of the engine's artifact header and
//! the module's bytes. The header (see `kiln_environ::artifact_header`)
//! already names everything that changes the generated code: the Kiln
//! version, the target, every compiler setting and tunable, and the Wasm
//! features. So two engines that would compile a module differently never
//! share an entry, and one that would compile it the same way always does.
//!
//! # Why a corrupt or foreign entry is never loaded
//!
//! Loading an artifact runs its machine code, and the artifact format's
//! own checksum covers the metadata but not `.text`. An entry therefore
//! carries a SHA-256 of the whole artifact, checked before the artifact is
//! handed to [`Module::deserialize`](crate::Module::deserialize), which
//! then checks the header against the engine (so a file copied in from
//! another Kiln or another configuration is refused too). An entry that
//! fails either check is ignored: the module is compiled and the entry
//! replaced. Entries are written to a temporary file and renamed into
//! place, so a reader never sees half of one, and two processes filling
//! the same entry at once both end with a whole one.
//!
//! The cache is best effort: a directory that cannot be created, read or
//! written costs a compile, never an error.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Where a [`Cache`] lives.
#[derive(Clone, Debug, Default)]
pub struct CacheConfig {
    directory: Option<PathBuf>,
}

impl CacheConfig {
    /// The default: the user's cache directory (`$XDG_CACHE_HOME/kiln`, or
    /// `~/.cache/kiln`).
    pub fn new() -> CacheConfig {
        CacheConfig::default()
    }

    /// Keeps entries in `dir` instead.
    pub fn with_directory(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.directory = Some(dir.into());
        self
    }
}

/// An on-disk cache of compiled modules. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// What an entry starts with, before the artifact's digest and bytes.
const MAGIC: &[u8; 8] = b"KILNC\x001\n";
const HEAD: usize = MAGIC.len() + 32;

impl Cache {
    /// A cache as `config` describes it. Fails only if no directory is
    /// given and none can be found (no `$XDG_CACHE_HOME` and no `$HOME`).
    pub fn new(config: CacheConfig) -> crate::Result<Cache> {
        let dir = match config.directory {
            Some(d) => d,
            None => default_dir().ok_or_else(|| {
                crate::Error::msg("no cache directory: set XDG_CACHE_HOME or HOME, or name one")
            })?,
        };
        Ok(Cache { dir })
    }

    /// The directory entries are kept in.
    pub fn directory(&self) -> &Path {
        &self.dir
    }

    /// The entry of `wasm` compiled under `header`.
    pub(crate) fn entry(&self, header: &str, wasm: &[u8]) -> PathBuf {
        let mut h = Sha256::new();
        h.update((header.len() as u64).to_le_bytes());
        h.update(header.as_bytes());
        h.update(wasm);
        let key = h.finalize();
        let mut name = String::with_capacity(72);
        for b in key {
            name.push_str(&format!("{b:02x}"));
        }
        name.push_str(".kiln");
        self.dir.join(name)
    }

    /// The artifact stored at `entry`, if it is whole; `None` for a
    /// missing, truncated or damaged entry.
    pub(crate) fn load(&self, entry: &Path) -> Option<Vec<u8>> {
        let mut bytes = std::fs::read(entry).ok()?;
        if bytes.len() < HEAD || &bytes[..MAGIC.len()] != MAGIC {
            return None;
        }
        let digest = Sha256::digest(&bytes[HEAD..]);
        if digest[..] != bytes[MAGIC.len()..HEAD] {
            return None;
        }
        bytes.drain(..HEAD);
        Some(bytes)
    }

    /// Stores `artifact` at `entry`, atomically; failures are ignored.
    pub(crate) fn store(&self, entry: &Path, artifact: &[u8]) {
        let _ = self.try_store(entry, artifact);
    }

    fn try_store(&self, entry: &Path, artifact: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(&self.dir)?;
        let tmp = entry.with_extension(format!(
            "tmp{}.{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&Sha256::digest(artifact))?;
            f.write_all(artifact)?;
            f.sync_data()?;
            std::fs::rename(&tmp, entry)
        };
        let r = write();
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r
    }
}

fn default_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(x) if Path::new(&x).is_absolute() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".cache"),
    };
    Some(base.join("kiln"))
}
