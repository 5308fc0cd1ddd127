//! The destination side of an update: journal the changed chunks, seal, apply in place, sync,
//! swap the checkpoint manifest in; and `recover`, run before anything else, which brings any
//! interrupted state back to a consistent checkpoint (replay a sealed journal, keep an unsealed
//! one for resume or discard it).
//!
//! Files in the pair's state dir: `checkpoint.manifest` (what the target holds), `next.manifest`
//! (what it will hold once the sealed journal is applied) and `journal`.

use super::journal::{self, Contents, Entry, Header, JournalError, Writer, ZeroRun};
use super::{Digest, Manifest};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

/// What an apply is heading for, known before the source is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub algo: super::HashAlgo,
    pub chunk_size: u32,
    pub source_size: u64,
}

/// What to do with a journal that was never sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsealed {
    /// Keep it so the next update resumes from the chunks it holds.
    Keep,
    /// Remove it; the next update sends every changed chunk again.
    Discard,
}

/// What `recover` found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// No interrupted apply: the target is at its checkpoint.
    Clean,
    /// A sealed journal was (re)applied: the target is at the new checkpoint.
    Replayed { chunks: usize },
    /// An unsealed journal was kept: the target is at the old checkpoint; these chunks are held.
    Kept { held: BTreeMap<u64, Digest> },
    /// An unsealed (or unreadable) journal was removed: the target is at the old checkpoint.
    Discarded,
}

/// A destination: the target (file or block device) and the state dir holding its checkpoint.
#[derive(Clone, Debug)]
pub struct Dest {
    pub target: PathBuf,
    pub state: PathBuf,
}

/// An apply in progress: chunks are journaled, then `commit` seals and applies them.
pub struct Session<'a> {
    dest: &'a Dest,
    writer: Writer,
    held: BTreeMap<u64, Digest>,
    base: Manifest,
    /// Zero runs not yet journaled, a few at once: a sender reading on every core interleaves
    /// its segments, so each segment's zeros grow their own run.
    zeros: Vec<ZeroRun>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn remove_if_present(path: &Path) -> Result<bool, JournalError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

impl Dest {
    pub fn new(target: impl Into<PathBuf>, state: impl Into<PathBuf>) -> Dest {
        Dest {
            target: target.into(),
            state: state.into(),
        }
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.state.join("checkpoint.manifest")
    }

    pub fn next_path(&self) -> PathBuf {
        self.state.join("next.manifest")
    }

    pub fn journal_path(&self) -> PathBuf {
        self.state.join("journal")
    }

    /// The manifest of what the target holds, `None` before the first apply.
    pub fn checkpoint(&self) -> Result<Option<Manifest>, JournalError> {
        let path = self.checkpoint_path();
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(Manifest::read(&path)?))
    }

    /// Brings the destination to a consistent checkpoint; run it first on every start.
    pub fn recover(&self, unsealed: Unsealed) -> Result<Recovered, JournalError> {
        self.remove_temp_files()?;
        let jpath = self.journal_path();
        if !jpath.exists() {
            // A next manifest without a journal belongs to no apply: drop it.
            if remove_if_present(&self.next_path())? {
                sync_dir(&self.state)?;
            }
            return Ok(Recovered::Clean);
        }
        let Some(mut contents) = journal::read(&jpath)? else {
            self.discard()?;
            return Ok(Recovered::Discarded);
        };
        let base_id = self.checkpoint()?.map(|m| m.id()).unwrap_or([0; 32]);
        match contents.sealed {
            Some(next_id) => {
                let next = self.next_path();
                let planned = if next.exists() {
                    Some(Manifest::read(&next)?)
                } else {
                    None
                };
                if let Some(planned) = planned.filter(|m| m.id() == next_id) {
                    // A resumed journal's header may name an older, smaller size: the manifest rules.
                    contents.header.new_size = planned.source_size;
                    let chunks = contents.chunks() as usize;
                    self.replay(&contents)?;
                    self.finish()?;
                    Ok(Recovered::Replayed { chunks })
                } else if base_id == next_id {
                    // Applied and swapped in already; only the journal's removal was cut.
                    self.finish()?;
                    Ok(Recovered::Replayed {
                        chunks: contents.chunks() as usize,
                    })
                } else {
                    Err(JournalError::Inconsistent {
                        path: jpath,
                        want: hex::encode(next_id),
                    })
                }
            }
            None if unsealed == Unsealed::Keep && contents.header.base_id == base_id => {
                // Cut a torn tail now so a resumed writer appends after whole records.
                drop(Writer::resume(&jpath, &contents)?);
                if remove_if_present(&self.next_path())? {
                    sync_dir(&self.state)?;
                }
                Ok(Recovered::Kept { held: contents.held() })
            }
            None => {
                self.discard()?;
                Ok(Recovered::Discarded)
            }
        }
    }

    /// Starts an apply from the current checkpoint towards a source of `next.source_size`
    /// bytes, or resumes an unsealed journal kept by `recover` for the same checkpoint.
    pub fn begin(&self, next: Plan) -> Result<Session<'_>, JournalError> {
        self.begin_from(next, None)
    }

    /// `begin`, with `rebase` (a fresh scan of the target, for a repair) standing in for the
    /// checkpoint as what the chunks are applied over; the journal still names the checkpoint.
    pub fn begin_from(&self, next: Plan, rebase: Option<Manifest>) -> Result<Session<'_>, JournalError> {
        let checkpoint = self.checkpoint()?;
        let base_id = checkpoint.as_ref().map(|m| m.id()).unwrap_or([0; 32]);
        let base = rebase.or(checkpoint).unwrap_or(Manifest {
            algo: next.algo,
            chunk_size: next.chunk_size,
            source_size: 0,
            digests: Vec::new(),
        });
        if base.algo != next.algo || base.chunk_size != next.chunk_size {
            return Err(JournalError::PlanMismatch {
                path: self.checkpoint_path(),
                what: "the checkpoint was made with another chunk size or hash algorithm",
            });
        }
        if next.source_size < base.source_size {
            return Err(JournalError::Shrink {
                path: self.target.clone(),
                old: base.source_size,
                new: next.source_size,
            });
        }
        self.check_target(!self.checkpoint_path().exists(), next.source_size)?;
        let header = Header {
            algo: next.algo,
            chunk_size: next.chunk_size,
            new_size: next.source_size,
            base_id,
        };
        let jpath = self.journal_path();
        let (writer, held) = match journal::read(&jpath) {
            Err(JournalError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let w = Writer::create(&jpath, header)?;
                sync_dir(&self.state)?;
                (w, BTreeMap::new())
            }
            Err(e) => return Err(e),
            Ok(Some(c)) if c.sealed.is_none() && c.header.base_id == header.base_id => {
                if c.header.algo != header.algo || c.header.chunk_size != header.chunk_size {
                    return Err(JournalError::PlanMismatch {
                        path: jpath,
                        what: "chunk size or hash algorithm",
                    });
                }
                // The size may have grown since; the commit's manifest decides the final size.
                (Writer::resume(&jpath, &c)?, c.held())
            }
            Ok(_) => return Err(JournalError::Pending { path: jpath }),
        };
        Ok(Session {
            dest: self,
            writer,
            held,
            base,
            zeros: Vec::new(),
        })
    }

    /// Refuses a target that can't take `need` bytes: a block device too small, or a regular
    /// file with data but no checkpoint (ferry did not make it). A symlink is followed only to a
    /// block device (`/dev/disk/by-id/…`): one to a file could be planted in a shared directory
    /// to make this write elsewhere. A missing file is made new (never through a dangling link).
    fn check_target(&self, first: bool, need: u64) -> Result<(), JournalError> {
        let t = &self.target;
        match std::fs::symlink_metadata(t) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::state::files::create_new(t).map_err(io(t))?;
                if let Some(dir) = t.parent() {
                    sync_dir(dir)?;
                }
                return Ok(());
            }
            Err(e) => return Err(io(t)(e)),
            Ok(m) if m.file_type().is_symlink() => {
                let device = std::fs::metadata(t).is_ok_and(|to| to.file_type().is_block_device());
                if !device {
                    return Err(io(t)(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "is a symlink to something other than a block device: name the replica's real path",
                    )));
                }
            }
            Ok(_) => {}
        }
        let meta = std::fs::metadata(t).map_err(io(t))?;
        if meta.file_type().is_block_device() {
            let have = File::open(t)
                .and_then(|mut f| f.seek(SeekFrom::End(0)))
                .map_err(io(t))?;
            if have < need {
                return Err(JournalError::TargetTooSmall {
                    path: t.clone(),
                    have,
                    need,
                });
            }
            return Ok(());
        }
        if !meta.is_file() {
            return Err(io(t)(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "is {}, not a file or a block device",
                    crate::state::files::describe(&meta)
                ),
            )));
        }
        if first && meta.len() > 0 {
            return Err(JournalError::TargetNotEmpty {
                path: t.clone(),
                size: meta.len(),
            });
        }
        Ok(())
    }

    /// Writes every journaled chunk in place (idempotent), grows a file target, syncs it. Zero
    /// runs become holes (or zeros written where the target cannot punch them).
    fn replay(&self, c: &Contents) -> Result<(), JournalError> {
        let t = &self.target;
        let target = OpenOptions::new().write(true).open(t).map_err(io(t))?;
        let meta = target.metadata().map_err(io(t))?;
        // bytes past a file's old end are a hole already: zeros there need nothing
        let old_end = if meta.is_file() { meta.len() } else { u64::MAX };
        if meta.is_file() && meta.len() < c.header.new_size {
            target.set_len(c.header.new_size).map_err(io(t))?;
        }
        let jpath = self.journal_path();
        let mut journal = File::open(&jpath).map_err(io(&jpath))?;
        let mut buf = vec![0u8; c.header.chunk_size as usize];
        let chunk = u64::from(c.header.chunk_size);
        let out_of_range = |index: u64, len: u64| JournalError::ChunkOutOfRange {
            index,
            len: len as usize,
            chunk: c.header.chunk_size,
            size: c.header.new_size,
        };
        for e in &c.records {
            match e {
                Entry::Chunk(r) => {
                    let data = &mut buf[..r.len as usize];
                    journal.seek(SeekFrom::Start(r.offset)).map_err(io(&jpath))?;
                    journal.read_exact(data).map_err(io(&jpath))?;
                    let at = r.index * chunk;
                    if at + u64::from(r.len) > c.header.new_size {
                        return Err(out_of_range(r.index, u64::from(r.len)));
                    }
                    target.write_all_at(data, at).map_err(io(t))?;
                }
                Entry::Zeros(z) => {
                    let (at, len) = z.span(c.header.chunk_size);
                    if at.checked_add(len).is_none_or(|end| end > c.header.new_size) {
                        return Err(out_of_range(z.first, len));
                    }
                    if at < old_end {
                        zero_range(&target, at, len.min(old_end - at)).map_err(io(t))?;
                    }
                }
            }
        }
        target.sync_all().map_err(io(t))
    }

    /// After a replay: swap the next manifest in, then remove the journal, each made durable.
    fn finish(&self) -> Result<(), JournalError> {
        let next = self.next_path();
        if next.exists() {
            std::fs::rename(&next, self.checkpoint_path()).map_err(io(&next))?;
            sync_dir(&self.state)?;
        }
        remove_if_present(&self.journal_path())?;
        sync_dir(&self.state)
    }

    fn discard(&self) -> Result<(), JournalError> {
        remove_if_present(&self.next_path())?;
        remove_if_present(&self.journal_path())?;
        sync_dir(&self.state)
    }

    /// Removes temp files of interrupted atomic writes (`.NAME.HEX.tmp`).
    fn remove_temp_files(&self) -> Result<(), JournalError> {
        let dir = std::fs::read_dir(&self.state).map_err(io(&self.state))?;
        for entry in dir {
            let entry = entry.map_err(io(&self.state))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                remove_if_present(&entry.path())?;
            }
        }
        Ok(())
    }
}

impl Session<'_> {
    /// Chunks an unsealed journal already held when this session resumed it (not to resend).
    pub fn held(&self) -> &BTreeMap<u64, Digest> {
        &self.held
    }

    /// The checkpoint this apply starts from.
    pub fn base(&self) -> &Manifest {
        &self.base
    }

    /// Whether the sender must send chunk `index` whose source digest is `digest`: it changed
    /// since the checkpoint and is not held with that digest, or it is held with other data
    /// (the source changed back since the cut) and must be overwritten.
    pub fn needs(&self, index: u64, digest: &Digest) -> bool {
        match self.held.get(&index) {
            Some(h) => h != digest,
            None => self.base.digests.get(index as usize) != Some(digest),
        }
    }

    /// Journals one changed chunk; one already held with the same digest is skipped. A chunk
    /// of zeros is journaled without its data (consecutive ones as one run).
    pub fn add(&mut self, index: u64, data: &[u8], digest: &Digest) -> Result<u64, JournalError> {
        let h = self.writer.header();
        let (chunk, size) = (h.chunk_size, h.new_size.max(self.base.source_size));
        if data.is_empty() || data.len() > chunk as usize {
            return Err(JournalError::ChunkOutOfRange {
                index,
                len: data.len(),
                chunk,
                size,
            });
        }
        if self.held.get(&index) == Some(digest) {
            return Ok(0);
        }
        if journal::is_zero(data) {
            return self.add_zero(index, data.len() as u32, digest);
        }
        // a data record must follow any zero run that holds this chunk (the later record wins)
        let mut journaled = self.flush_zeros_holding(index)?;
        self.writer.append(index, data, digest)?;
        journaled += journal::CHUNK_RECORD + data.len() as u64;
        self.held.insert(index, *digest);
        Ok(journaled)
    }

    /// Journals chunk `index` as `len` zero bytes whose digest is `digest` (the caller knows it
    /// is zeros: a zero frame); consecutive ones become one run. Gives the journal bytes taken.
    pub fn add_zero(&mut self, index: u64, len: u32, digest: &Digest) -> Result<u64, JournalError> {
        let h = self.writer.header();
        let (chunk, size) = (h.chunk_size, h.new_size.max(self.base.source_size));
        if len == 0 || len > chunk {
            return Err(JournalError::ChunkOutOfRange {
                index,
                len: len as usize,
                chunk,
                size,
            });
        }
        if self.held.get(&index) == Some(digest) {
            return Ok(0);
        }
        let mut journaled = self.flush_zeros_holding(index)?;
        if let Some(run) = self.zeros.iter_mut().find(|r| r.extends(index, len, chunk)) {
            run.count += 1;
            run.last_len = len;
        } else {
            if self.zeros.len() >= OPEN_RUNS {
                let oldest = self.zeros.remove(0);
                self.writer.append_zeros(&oldest)?;
                journaled += journal::ZEROS_RECORD;
            }
            self.zeros.push(ZeroRun {
                first: index,
                count: 1,
                last_len: len,
            });
        }
        self.held.insert(index, *digest);
        Ok(journaled)
    }

    /// Writes the pending zero runs that hold chunk `index`; gives the journal bytes taken.
    fn flush_zeros_holding(&mut self, index: u64) -> Result<u64, JournalError> {
        let mut journaled = 0;
        while let Some(at) = self
            .zeros
            .iter()
            .position(|r| (r.first..r.first + r.count).contains(&index))
        {
            let run = self.zeros.remove(at);
            self.writer.append_zeros(&run)?;
            journaled += journal::ZEROS_RECORD;
        }
        Ok(journaled)
    }

    /// Writes every pending zero run.
    fn flush_zeros(&mut self) -> Result<(), JournalError> {
        for run in std::mem::take(&mut self.zeros) {
            self.writer.append_zeros(&run)?;
        }
        Ok(())
    }

    /// Syncs the journaled chunks so far (a resume point).
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.flush_zeros()?;
        self.writer.sync()
    }

    /// Seals the journal for `next`, applies it in place, syncs the target, swaps `next` in as
    /// the checkpoint and removes the journal.
    pub fn commit(mut self, next: &Manifest) -> Result<(), JournalError> {
        self.flush_zeros()?;
        let d = self.dest;
        let jpath = d.journal_path();
        if next.source_size < self.base.source_size {
            return Err(JournalError::Shrink {
                path: d.target.clone(),
                old: self.base.source_size,
                new: next.source_size,
            });
        }
        // Every journaled chunk must hold what `next` says (a resumed journal may hold chunks
        // the source has changed again since; the sender must have resent those).
        if let Some((&i, _)) = self.held.iter().find(|(&i, d)| next.digests.get(i as usize) != Some(d)) {
            return Err(JournalError::StaleChunk { index: i });
        }
        next.write(&d.next_path())?;
        self.writer.seal(&next.id())?;
        let contents = journal::read(&jpath)?.ok_or(JournalError::BadHeader { path: jpath.clone() })?;
        // Replay with the final size (a resumed journal's header may name an older, smaller one).
        let mut contents = contents;
        contents.header.new_size = next.source_size;
        d.replay(&contents)?;
        d.finish()
    }
}

/// Zero runs a session keeps open at once (more than the cores a sender reads on).
const OPEN_RUNS: usize = 64;

/// Makes `len` bytes at `at` read as zeros: a hole punched (a file keeps its size; a block device
/// discards only where it guarantees zeros after), else zeros written where punching is refused.
fn zero_range(f: &File, at: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(());
    }
    let (Ok(off), Ok(n)) = (libc::off_t::try_from(at), libc::off_t::try_from(len)) else {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    };
    // SAFETY: a valid open descriptor and plain integer arguments.
    let r = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            n,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::ENODEV) => {
            let zeros = vec![0u8; 1 << 20];
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(zeros.len() as u64) as usize;
                f.write_all_at(&zeros[..n], at + done)?;
                done += n as u64;
            }
            Ok(())
        }
        _ => Err(e),
    }
}
