//! Where a message's bytes wait for the end of message: in memory up to
//! [`MEMORY_MAX`], beyond that in an unlinked file in `[limits] spool_dir`,
//! written as the chunks arrive and read back through a read-only memory
//! map. So the resident memory of a transaction does not grow with its
//! message: a mapped file's pages are page cache, which the kernel can
//! write back and drop, not anonymous memory (docs/decisions.md, "Large
//! messages are spooled to a file").
//!
//! The checks and the signer take the message as `&[u8]` whichever way it
//! is stored ([`Bytes`] derefs to one).

use memmap2::Mmap;
use std::{
    fs::File,
    io::{self, BufWriter, Seek, SeekFrom, Write},
    ops::Deref,
    path::{Path, PathBuf},
    sync::Arc,
};

/// The most bytes of one message kept in memory; a larger message goes to
/// a file. 32 KiB keeps ordinary mail (a few KB of text and signatures)
/// off the file system, and bounds what 1,000 connections hold to 32 MiB
/// in the worst case, which with the connections' own state stays far
/// below 100 MiB (docs/decisions.md, "Why 32 KiB").
pub const MEMORY_MAX: usize = 32 * 1024;

/// Writes to the spool file are gathered in a buffer of this size, so that
/// a thousand small header fields past [`MEMORY_MAX`] are not a thousand
/// system calls; body chunks (up to 64 KiB each) go straight to the file.
const WRITE_BUFFER: usize = 8 * 1024;

/// Why a message could not be kept. The message then cannot be checked or
/// signed; the caller answers with a temporary failure (never a pass).
#[derive(Clone, Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot create a spool file in {dir} (limits.spool_dir): {source}")]
    Create {
        dir: PathBuf,
        source: Arc<io::Error>,
    },
    #[error("cannot write the spool file in {dir} (limits.spool_dir): {source}")]
    Write {
        dir: PathBuf,
        source: Arc<io::Error>,
    },
    #[error("cannot map the spool file in {dir} (limits.spool_dir): {source}")]
    Map {
        dir: PathBuf,
        source: Arc<io::Error>,
    },
}

/// Creates (and drops) one spool file in `dir`: at start and on reload, so
/// that a missing or unwritable `limits.spool_dir` is said at once, not at
/// the first large message.
pub(crate) fn check_dir(dir: &Path) -> Result<(), SpoolError> {
    tempfile::tempfile_in(dir)
        .map(drop)
        .map_err(|e| SpoolError::Create {
            dir: dir.to_path_buf(),
            source: Arc::new(e),
        })
}

/// A message's bytes as they arrive.
pub struct Spool {
    dir: PathBuf,
    /// All bytes while the message is small; empty once it is in `file`.
    memory: Vec<u8>,
    file: Option<Spooled>,
    len: u64,
}

/// The unlinked file holding a large message.
struct Spooled {
    writer: BufWriter<File>,
    /// The file mapped for reading, until the next write.
    map: Option<Mmap>,
}

/// A complete message, however it was kept: derefs to its bytes.
pub enum Bytes {
    Memory(Vec<u8>),
    /// A read-only map of the spool file (which is unlinked: it disappears
    /// with the map).
    Mapped(Mmap),
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Self::Memory(_) => "Memory",
            Self::Mapped(_) => "Mapped",
        };
        write!(f, "Bytes::{kind}({} bytes)", self.len())
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Memory(bytes) => bytes,
            Self::Mapped(map) => map,
        }
    }
}

impl Spool {
    /// An empty spool whose file, if one is needed, goes to `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            memory: Vec::new(),
            file: None,
            len: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the bytes are in a file.
    #[cfg(test)]
    pub(crate) fn is_spooled(&self) -> bool {
        self.file.is_some()
    }

    /// Bytes of the message held in this process's heap (the in-memory
    /// buffer, or the file's write buffer): at most [`MEMORY_MAX`].
    pub fn resident(&self) -> usize {
        self.memory.capacity() + self.file.as_ref().map_or(0, |f| f.writer.capacity())
    }

    /// Room for `size` bytes at once (a client's `SIZE=` hint), up to
    /// [`MEMORY_MAX`]: a larger message goes to a file anyway.
    pub(crate) fn reserve(&mut self, size: usize) {
        if self.file.is_none() {
            let wanted = size.min(MEMORY_MAX);
            self.memory
                .reserve_exact(wanted.saturating_sub(self.memory.len()));
        }
    }

    pub fn append(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        let fits = self.memory.len().saturating_add(bytes.len()) <= MEMORY_MAX;
        if self.file.is_none() && fits {
            grow(&mut self.memory, bytes.len());
            self.memory.extend_from_slice(bytes);
        } else {
            let spooled = spool_file(&mut self.file, &mut self.memory, &self.dir)?;
            spooled.map = None;
            spooled
                .writer
                .write_all(bytes)
                .map_err(|e| write_error(&self.dir, e))?;
        }
        self.len = self.len.saturating_add(bytes.len() as u64);
        Ok(())
    }

    /// Keeps the first `len` bytes (a body is replaced).
    pub fn truncate(&mut self, len: u64) -> Result<(), SpoolError> {
        if len >= self.len {
            return Ok(());
        }
        match &mut self.file {
            None => self
                .memory
                .truncate(usize::try_from(len).unwrap_or(usize::MAX)),
            Some(spooled) => {
                spooled.map = None;
                cut(&mut spooled.writer, len).map_err(|e| write_error(&self.dir, e))?;
            }
        }
        self.len = len;
        Ok(())
    }

    /// Hands the bytes over, leaving an empty spool for the same directory.
    pub fn take(&mut self) -> Spool {
        let empty = Spool::new(&self.dir);
        std::mem::replace(self, empty)
    }

    /// Drops what was kept (memory and file); the spool stays usable.
    pub fn clear(&mut self) {
        self.memory = Vec::new();
        self.file = None;
        self.len = 0;
    }

    /// The bytes so far. A spooled message is mapped (once, until the next
    /// write).
    pub(crate) fn view(&mut self) -> Result<&[u8], SpoolError> {
        let Some(spooled) = &mut self.file else {
            return Ok(&self.memory);
        };
        if spooled.map.is_none() {
            spooled.map = Some(map(&mut spooled.writer, &self.dir)?);
        }
        Ok(spooled.map.as_deref().unwrap_or_default())
    }

    /// The bytes, owned: the in-memory buffer itself, or the file's map
    /// (the file descriptor is closed; the map keeps the file).
    pub fn into_bytes(self) -> Result<Bytes, SpoolError> {
        match self.file {
            None => Ok(Bytes::Memory(self.memory)),
            Some(Spooled { map: Some(map), .. }) => Ok(Bytes::Mapped(map)),
            Some(Spooled { mut writer, .. }) => Ok(Bytes::Mapped(map(&mut writer, &self.dir)?)),
        }
    }
}

/// The spool file, created (and the bytes so far moved into it from
/// `memory`) the first time the message outgrows memory.
fn spool_file<'a>(
    file: &'a mut Option<Spooled>,
    memory: &mut Vec<u8>,
    dir: &Path,
) -> Result<&'a mut Spooled, SpoolError> {
    match file {
        Some(spooled) => Ok(spooled),
        None => {
            let created = tempfile::tempfile_in(dir).map_err(|e| SpoolError::Create {
                dir: dir.to_path_buf(),
                source: Arc::new(e),
            })?;
            let mut writer = BufWriter::with_capacity(WRITE_BUFFER, created);
            writer.write_all(memory).map_err(|e| write_error(dir, e))?;
            *memory = Vec::new();
            Ok(file.insert(Spooled { writer, map: None }))
        }
    }
}

/// Shortens the file to `len` bytes; the next write goes there.
fn cut(writer: &mut BufWriter<File>, len: u64) -> io::Result<()> {
    writer.flush()?;
    writer.get_ref().set_len(len)?;
    writer.seek(SeekFrom::Start(len))?;
    Ok(())
}

fn write_error(dir: &Path, e: io::Error) -> SpoolError {
    SpoolError::Write {
        dir: dir.to_path_buf(),
        source: Arc::new(e),
    }
}

/// Flushes the write buffer and maps the file read-only.
fn map(writer: &mut BufWriter<File>, dir: &Path) -> Result<Mmap, SpoolError> {
    writer.flush().map_err(|e| write_error(dir, e))?;
    // SAFETY: a mapped file must not change while the map exists. This
    // file has no name (created unlinked), so no other process can open
    // it; this process writes it only through `Spool`, which drops the map
    // before every write, and a map handed out by `into_bytes` outlives
    // the file descriptor, which is closed. Its length is what was
    // written and flushed, so every mapped page has data (no SIGBUS).
    unsafe { Mmap::map(writer.get_ref()) }.map_err(|e| SpoolError::Map {
        dir: dir.to_path_buf(),
        source: Arc::new(e),
    })
}

/// Room for `more` bytes, growing by a quarter instead of doubling, and
/// never past [`MEMORY_MAX`]: the messages in flight are most of the
/// daemon's memory under load (a thousand connections each holding one,
/// SECURITY.md "Soak"), and doubling leaves up to half of each buffer
/// unused.
fn grow(buf: &mut Vec<u8>, more: usize) {
    if buf.capacity() - buf.len() < more {
        let step = more.max(buf.len() / 4);
        let room = MEMORY_MAX.saturating_sub(buf.len()).max(more);
        buf.reserve_exact(step.min(room));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        std::env::temp_dir()
    }

    #[test]
    fn small_messages_stay_in_memory() {
        let mut spool = Spool::new(&dir());
        spool.append(&[b'x'; MEMORY_MAX]).unwrap();
        assert!(!spool.is_spooled());
        assert_eq!(spool.view().unwrap().len(), MEMORY_MAX);
        assert!(matches!(spool.into_bytes().unwrap(), Bytes::Memory(_)));
    }

    #[test]
    fn a_20_mb_message_holds_at_most_memory_max_in_the_heap() {
        let mut spool = Spool::new(&dir());
        let mut expected = Vec::new();
        // Header fields, then 64 KiB body chunks, as the MTA sends them.
        for i in 0..300 {
            let field = format!("X-Field-{i}: value {i}\r\n");
            spool.append(field.as_bytes()).unwrap();
            expected.extend_from_slice(field.as_bytes());
            assert!(spool.resident() <= MEMORY_MAX, "{}", spool.resident());
        }
        for i in 0..320u32 {
            let chunk = vec![b'a' + (i % 26) as u8; 65_535];
            spool.append(&chunk).unwrap();
            expected.extend_from_slice(&chunk);
            assert!(spool.resident() <= MEMORY_MAX, "{}", spool.resident());
        }
        assert!(spool.is_spooled());
        assert_eq!(spool.len(), expected.len() as u64);
        assert!(spool.view().unwrap() == expected.as_slice());
        let bytes = spool.into_bytes().unwrap();
        assert!(matches!(bytes, Bytes::Mapped(_)));
        assert!(*bytes == *expected);
    }

    #[test]
    fn truncate_and_append_after_a_view() {
        let mut spool = Spool::new(&dir());
        spool.append(&[b'h'; 100]).unwrap();
        spool.append(&vec![b'b'; MEMORY_MAX * 2]).unwrap();
        assert_eq!(spool.view().unwrap().len(), 100 + MEMORY_MAX * 2);
        spool.truncate(100).unwrap();
        spool.append(b"new body").unwrap();
        let mut expected = vec![b'h'; 100];
        expected.extend_from_slice(b"new body");
        assert!(spool.view().unwrap() == expected.as_slice());
        assert!(*spool.into_bytes().unwrap() == *expected);
    }

    #[test]
    fn a_missing_spool_dir_is_an_error_that_names_it() {
        let mut spool = Spool::new(Path::new("/nonexistent/mailkey-spool"));
        spool.append(&[b'x'; 1000]).unwrap();
        let e = spool.append(&vec![b'x'; MEMORY_MAX]).unwrap_err();
        assert!(matches!(e, SpoolError::Create { .. }));
        let text = e.to_string();
        assert!(
            text.starts_with(
                "cannot create a spool file in /nonexistent/mailkey-spool (limits.spool_dir): "
            ),
            "{text}"
        );
    }
}
