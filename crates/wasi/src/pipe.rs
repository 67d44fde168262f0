//! In-memory standard streams, so an embedder can feed a guest's input and
//! capture its output without touching the process's own descriptors.
//!
//! Both pipes are cheap handles to shared buffers: keep a clone, give the
//! other to [`WasiCtxBuilder`](crate::WasiCtxBuilder), and read the output
//! (or check how much input was consumed) after the guest has run.

use std::sync::{Arc, Mutex, MutexGuard};

/// A guest's input, read from bytes given up front; reads past the end
/// return end-of-file.
#[derive(Clone, Debug)]
pub struct MemoryInputPipe {
    inner: Arc<Mutex<(Vec<u8>, usize)>>,
}

impl MemoryInputPipe {
    /// A pipe that yields `bytes`, then end-of-file.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        MemoryInputPipe {
            inner: Arc::new(Mutex::new((bytes.into(), 0))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, (Vec<u8>, usize)> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads into `buf`, returning the bytes read (0 at the end).
    pub(crate) fn read(&self, buf: &mut [u8]) -> usize {
        let mut g = self.lock();
        let (data, pos) = &mut *g;
        let n = buf.len().min(data.len() - *pos);
        buf[..n].copy_from_slice(&data[*pos..*pos + n]);
        *pos += n;
        n
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        let g = self.lock();
        g.0.len() - g.1
    }
}

/// A guest's output, collected in memory up to a capacity; a write that
/// would exceed it fails with `ENOSPC`, so a runaway guest cannot make
/// the host allocate without bound.
#[derive(Clone, Debug)]
pub struct MemoryOutputPipe {
    inner: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl MemoryOutputPipe {
    /// A pipe that holds at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        MemoryOutputPipe {
            inner: Arc::new(Mutex::new(Vec::new())),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `data`; `false` if the pipe is full (nothing is written).
    pub(crate) fn write(&self, data: &[u8]) -> bool {
        let mut g = self.lock();
        if data.len() > self.capacity - g.len() {
            return false;
        }
        g.extend_from_slice(data);
        true
    }

    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().clone()
    }

    /// Takes everything written so far, leaving the pipe empty.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.lock())
    }
}
