//! The destination side of an update: journal the changed chunks, seal, apply in place, sync,
//! swap the checkpoint manifest in; and `recover`, run before anything else, which brings any
//! interrupted state back to a consistent checkpoint (replay a sealed journal, keep an unsealed
//! one for resume or discard it).
//!
//! Files in the pair's state dir: `checkpoint.manifest` (what the target holds), `next.manifest`
//! (what it will hold once the sealed journal is applied) and `journal`.

use super::journal::{self, Contents, Header, JournalError, Writer};
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
                    let chunks = contents.records.len();
                    self.replay(&contents)?;
                    self.finish()?;
                    Ok(Recovered::Replayed { chunks })
                } else if base_id == next_id {
                    // Applied and swapped in already; only the journal's removal was cut.
                    self.finish()?;
                    Ok(Recovered::Replayed {
                        chunks: contents.records.len(),
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
        })
    }

    /// Refuses a target that can't take `need` bytes: a block device too small, or a regular
    /// file with data but no checkpoint (ferry did not make it).
    fn check_target(&self, first: bool, need: u64) -> Result<(), JournalError> {
        let t = &self.target;
        match std::fs::metadata(t) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                File::create(t).map_err(io(t))?;
                if let Some(dir) = t.parent() {
                    sync_dir(dir)?;
                }
                Ok(())
            }
            Err(e) => Err(io(t)(e)),
            Ok(meta) if meta.file_type().is_block_device() => {
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
                Ok(())
            }
            Ok(meta) if first && meta.len() > 0 => Err(JournalError::TargetNotEmpty {
                path: t.clone(),
                size: meta.len(),
            }),
            Ok(_) => Ok(()),
        }
    }

    /// Writes every journaled chunk in place (idempotent), grows a file target, syncs it.
    fn replay(&self, c: &Contents) -> Result<(), JournalError> {
        let t = &self.target;
        let target = OpenOptions::new().write(true).open(t).map_err(io(t))?;
        let meta = target.metadata().map_err(io(t))?;
        if meta.is_file() && meta.len() < c.header.new_size {
            target.set_len(c.header.new_size).map_err(io(t))?;
        }
        let jpath = self.journal_path();
        let mut journal = File::open(&jpath).map_err(io(&jpath))?;
        let mut buf = vec![0u8; c.header.chunk_size as usize];
        let chunk = u64::from(c.header.chunk_size);
        for r in &c.records {
            let data = &mut buf[..r.len as usize];
            journal.seek(SeekFrom::Start(r.offset)).map_err(io(&jpath))?;
            journal.read_exact(data).map_err(io(&jpath))?;
            let at = r.index * chunk;
            if at + u64::from(r.len) > c.header.new_size {
                return Err(JournalError::ChunkOutOfRange {
                    index: r.index,
                    len: r.len as usize,
                    chunk: c.header.chunk_size,
                    size: c.header.new_size,
                });
            }
            target.write_all_at(data, at).map_err(io(t))?;
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

    /// Journals one changed chunk; one already held with the same digest is skipped.
    pub fn add(&mut self, index: u64, data: &[u8], digest: &Digest) -> Result<(), JournalError> {
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
            return Ok(());
        }
        self.writer.append(index, data, digest)?;
        self.held.insert(index, *digest);
        Ok(())
    }

    /// Syncs the journaled chunks so far (a resume point).
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.writer.sync()
    }

    /// Seals the journal for `next`, applies it in place, syncs the target, swaps `next` in as
    /// the checkpoint and removes the journal.
    pub fn commit(self, next: &Manifest) -> Result<(), JournalError> {
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
