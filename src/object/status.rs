//! Per-object replication status as Backbeat keeps it (PENDING, COMPLETED, FAILED with reason,
//! retry count and backoff), kept as a durable, crash-safe journal on local disk.
//!
//! The journal is an append-only file of lines `<xxh3-64 hex> <json record>\n`; every append is
//! fsynced before the call returns, so an entry a caller was told about survives a crash. A torn
//! last line (a crash mid-write) is dropped on open; a bad line anywhere else is an error naming
//! the file and line. Entries are ordered per key by sequence number: `ready` hands out only the
//! oldest unfinished entry of each key, so a newer version of a key never lands before an older.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// First retry delay; each further failure doubles it up to [`BACKOFF_CAP_MS`].
pub const BACKOFF_BASE_MS: u64 = 1_000;
/// Longest delay between two retries of one entry.
pub const BACKOFF_CAP_MS: u64 = 3_600_000;

/// What a journal entry asks the destination to do with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Put,
    Delete,
}

impl Op {
    pub fn word(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Delete => "delete",
        }
    }
}

/// Backbeat's replication states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Pending,
    Completed,
    Failed,
}

impl State {
    pub fn word(&self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Completed => "COMPLETED",
            State::Failed => "FAILED",
        }
    }
}

/// One change of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub seq: u64,
    pub key: String,
    pub op: Op,
    pub state: State,
    /// How many times the change failed.
    pub retries: u32,
    /// The last failure's reason.
    pub reason: Option<String>,
    /// Unix milliseconds before which a failed entry is not retried.
    pub next_retry_ms: u64,
    /// Unix milliseconds when the change was journaled (lag = now - oldest pending).
    pub enqueued_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "lowercase")]
enum Record {
    /// Sequence numbers start here (written by compaction so numbers never repeat).
    Next {
        seq: u64,
    },
    Enq {
        seq: u64,
        key: String,
        op: Op,
        at: u64,
    },
    Done {
        seq: u64,
    },
    Fail {
        seq: u64,
        reason: String,
        retries: u32,
        next: u64,
    },
    /// A failed entry made due now (operator retry).
    Due {
        seq: u64,
    },
}

/// Errors of the status journal; each names the journal file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("object status journal {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("object status journal {path} line {line}: {what}")]
    Corrupt { path: PathBuf, line: usize, what: String },
    #[error("object status journal {path}: no entry {seq}")]
    NoEntry { path: PathBuf, seq: u64 },
}

/// The journal: in-memory view of every unfinished entry plus the open file to append to.
pub struct Journal {
    path: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry>,
    next_seq: u64,
}

fn line_for(rec: &Record) -> String {
    // Serializing these plain records cannot fail.
    let json = serde_json::to_string(rec).unwrap_or_default();
    format!("{:016x} {}\n", xxhash_rust::xxh3::xxh3_64(json.as_bytes()), json)
}

/// Backoff before retry number `retries` (1 = first retry).
pub fn backoff_ms(retries: u32) -> u64 {
    let shift = retries.saturating_sub(1).min(32);
    BACKOFF_BASE_MS.saturating_mul(1u64 << shift).min(BACKOFF_CAP_MS)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Journal {
    /// Opens (or creates) the journal at `path`, replaying it; a torn last line is cut off.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let mut j = Journal {
            path: path.to_path_buf(),
            file: file.try_clone().map_err(io)?,
            entries: BTreeMap::new(),
            next_seq: 1,
        };
        let mut reader = BufReader::new(&mut file);
        let (mut good_len, mut lineno) = (0u64, 0usize);
        let mut buf = Vec::new();
        let mut torn = false;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            lineno += 1;
            let complete = buf.last() == Some(&b'\n');
            match parse_line(&buf) {
                Ok(rec) if complete => {
                    j.apply(rec, lineno)?;
                    good_len += n as u64;
                }
                Ok(_) => {
                    torn = true;
                    break;
                }
                Err(what) => {
                    // Only the last line may be torn by a crash; anything earlier is damage.
                    let more = reader
                        .fill_buf()
                        .map_err(io)?
                        .iter()
                        .any(|b| !b.is_ascii_whitespace() && *b != 0);
                    if complete && more {
                        return Err(JournalError::Corrupt {
                            path: path.to_path_buf(),
                            line: lineno,
                            what,
                        });
                    }
                    torn = true;
                    break;
                }
            }
        }
        drop(reader);
        if torn || file.metadata().map_err(io)?.len() != good_len {
            file.set_len(good_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        j.file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(j)
    }

    fn apply(&mut self, rec: Record, line: usize) -> Result<(), JournalError> {
        let missing = |seq| JournalError::Corrupt {
            path: self.path.clone(),
            line,
            what: format!("entry {seq} unknown"),
        };
        match rec {
            Record::Next { seq } => self.next_seq = self.next_seq.max(seq),
            Record::Enq { seq, key, op, at } => {
                self.next_seq = self.next_seq.max(seq + 1);
                let e = Entry {
                    seq,
                    key,
                    op,
                    state: State::Pending,
                    retries: 0,
                    reason: None,
                    next_retry_ms: 0,
                    enqueued_ms: at,
                };
                self.entries.insert(seq, e);
            }
            // A completed entry is gone from the view; it may already be gone after compaction.
            Record::Done { seq } => {
                self.entries.remove(&seq);
            }
            Record::Fail {
                seq,
                reason,
                retries,
                next,
            } => {
                let e = self.entries.get_mut(&seq).ok_or_else(|| missing(seq))?;
                e.state = State::Failed;
                e.reason = Some(reason);
                e.retries = retries;
                e.next_retry_ms = next;
            }
            Record::Due { seq } => {
                let e = self.entries.get_mut(&seq).ok_or_else(|| missing(seq))?;
                e.next_retry_ms = 0;
            }
        }
        Ok(())
    }

    fn append(&mut self, rec: Record) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(line_for(&rec).as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.apply(rec, 0)
    }

    /// Journals a change of `key` as PENDING (durable on return) and gives its sequence number.
    pub fn enqueue(&mut self, key: &str, op: Op) -> Result<u64, JournalError> {
        let seq = self.next_seq;
        self.append(Record::Enq {
            seq,
            key: key.to_string(),
            op,
            at: now_ms(),
        })?;
        Ok(seq)
    }

    /// Journals several changes with one fsync; durable on return, sequence numbers in order.
    pub fn enqueue_many(&mut self, changes: &[(String, Op)]) -> Result<Vec<u64>, JournalError> {
        let at = now_ms();
        let mut text = String::new();
        let mut recs = Vec::new();
        for (i, (key, op)) in changes.iter().enumerate() {
            let rec = Record::Enq {
                seq: self.next_seq + i as u64,
                key: key.clone(),
                op: *op,
                at,
            };
            text.push_str(&line_for(&rec));
            recs.push(rec);
        }
        if recs.is_empty() {
            return Ok(Vec::new());
        }
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(text.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        let mut seqs = Vec::new();
        for rec in recs {
            if let Record::Enq { seq, .. } = rec {
                seqs.push(seq);
            }
            self.apply(rec, 0)?;
        }
        Ok(seqs)
    }

    /// Marks an entry COMPLETED without an fsync: losing it in a crash only repeats an
    /// idempotent copy or delete. Call [`Journal::sync`] when a batch is done.
    pub fn complete_lazy(&mut self, seq: u64) -> Result<(), JournalError> {
        self.entry(seq)?;
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file
            .write_all(line_for(&Record::Done { seq }).as_bytes())
            .map_err(io)?;
        self.apply(Record::Done { seq }, 0)
    }

    /// Makes every earlier append durable.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.file.sync_data().map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Marks an entry COMPLETED (it leaves the view).
    pub fn complete(&mut self, seq: u64) -> Result<(), JournalError> {
        self.entry(seq)?;
        self.append(Record::Done { seq })
    }

    /// Marks an entry FAILED with `reason`; its next retry waits the backoff after `now_ms`.
    pub fn fail(&mut self, seq: u64, reason: &str, now_ms: u64) -> Result<(), JournalError> {
        let retries = self.entry(seq)?.retries + 1;
        let next = now_ms.saturating_add(backoff_ms(retries));
        self.append(Record::Fail {
            seq,
            reason: reason.to_string(),
            retries,
            next,
        })
    }

    /// Makes every failed entry due now (operator `retry`); gives how many.
    pub fn retry_all_now(&mut self) -> Result<usize, JournalError> {
        let due: Vec<u64> = self
            .failed()
            .iter()
            .filter(|e| e.next_retry_ms > 0)
            .map(|e| e.seq)
            .collect();
        for seq in &due {
            self.append(Record::Due { seq: *seq })?;
        }
        Ok(self.failed().len())
    }

    /// The entry `seq` if it is unfinished.
    pub fn entry(&self, seq: u64) -> Result<&Entry, JournalError> {
        self.entries.get(&seq).ok_or(JournalError::NoEntry {
            path: self.path.clone(),
            seq,
        })
    }

    /// Every unfinished entry, oldest first.
    pub fn unfinished(&self) -> Vec<&Entry> {
        self.entries.values().collect()
    }

    pub fn pending(&self) -> Vec<&Entry> {
        self.entries.values().filter(|e| e.state == State::Pending).collect()
    }

    pub fn failed(&self) -> Vec<&Entry> {
        self.entries.values().filter(|e| e.state == State::Failed).collect()
    }

    /// True when `key` has an unfinished entry.
    pub fn has_unfinished(&self, key: &str) -> bool {
        self.entries.values().any(|e| e.key == key)
    }

    /// FIFO per key: for each key its oldest unfinished entry, if it is pending or a failed one
    /// whose backoff has passed. Later entries of a key wait until the head completes.
    pub fn ready(&self, now_ms: u64) -> Vec<Entry> {
        let mut heads: BTreeMap<&str, &Entry> = BTreeMap::new();
        for e in self.entries.values() {
            heads.entry(e.key.as_str()).or_insert(e);
        }
        let mut out: Vec<Entry> = heads
            .into_values()
            .filter(|e| e.state == State::Pending || e.next_retry_ms <= now_ms)
            .cloned()
            .collect();
        out.sort_by_key(|e| e.seq);
        out
    }

    /// Age in milliseconds of the oldest unfinished change (replication lag), 0 when none.
    pub fn lag_ms(&self, now_ms: u64) -> u64 {
        self.entries
            .values()
            .map(|e| now_ms.saturating_sub(e.enqueued_ms))
            .max()
            .unwrap_or(0)
    }

    /// Rewrites the journal with only unfinished entries (atomic: temp file, fsync, rename,
    /// fsync of the directory), so completed history does not grow the file forever.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("compact");
        let mut out = String::new();
        out.push_str(&line_for(&Record::Next { seq: self.next_seq }));
        for e in self.entries.values() {
            out.push_str(&line_for(&Record::Enq {
                seq: e.seq,
                key: e.key.clone(),
                op: e.op,
                at: e.enqueued_ms,
            }));
            if e.state == State::Failed {
                let reason = e.reason.clone().unwrap_or_default();
                let rec = Record::Fail {
                    seq: e.seq,
                    reason,
                    retries: e.retries,
                    next: e.next_retry_ms,
                };
                out.push_str(&line_for(&rec));
            }
        }
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(out.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path).map_err(io)?;
        Ok(())
    }

    /// Size of the journal file in bytes.
    pub fn file_len(&self) -> Result<u64, JournalError> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

fn parse_line(buf: &[u8]) -> Result<Record, String> {
    let text = std::str::from_utf8(buf).map_err(|_| "not UTF-8".to_string())?;
    let text = text.trim_end_matches('\n');
    let (sum, json) = text.split_once(' ').ok_or("no checksum")?;
    let want = u64::from_str_radix(sum, 16).map_err(|_| "bad checksum field".to_string())?;
    if xxhash_rust::xxh3::xxh3_64(json.as_bytes()) != want {
        return Err("checksum mismatch".into());
    }
    serde_json::from_str(json).map_err(|e| format!("bad record: {e}"))
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
