//! Per-object replication status as Backbeat keeps it (PENDING, COMPLETED, FAILED with reason,
//! retry count and backoff), kept as a durable, crash-safe journal on local disk.
//!
//! The journal is an append-only file of checksummed records (`records`); every append is
//! fsynced before the call returns, so an entry a caller was told about survives a crash. A torn
//! last line (a crash mid-write) is dropped on open; a bad line anywhere else is an error naming
//! the file and line. Entries are ordered per key by sequence number: `ready` hands out only the
//! oldest unfinished entry of each key, so a newer version of a key never lands before an older.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::records::{Access, Journaled, Records, RecordsError, Replay};

/// The longest failure reason kept per entry.
pub const REASON_CAP: usize = 1024;

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
    #[error("object status journal {0}")]
    Records(#[from] RecordsError),
    #[error("object status journal {path}: no entry {seq}")]
    NoEntry { path: PathBuf, seq: u64 },
}

/// The journal: in-memory view of every unfinished entry plus the open file to append to.
pub struct Journal {
    path: PathBuf,
    records: Records,
    entries: BTreeMap<u64, Entry>,
    next_seq: u64,
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

/// What replaying records builds: the unfinished entries and the next sequence number.
#[derive(Default)]
struct View {
    entries: BTreeMap<u64, Entry>,
    next_seq: u64,
}

impl Replay for View {
    type Record = Record;
    fn start() -> View {
        View {
            next_seq: 1,
            ..View::default()
        }
    }
    fn apply(&mut self, rec: Record, _line: usize) -> Result<(), String> {
        self.apply_record(rec)
    }
}

impl View {
    fn apply_record(&mut self, rec: Record) -> Result<(), String> {
        let missing = |seq| format!("entry {seq} unknown");
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
}

impl Journaled for Journal {
    type Error = JournalError;

    fn open_as(path: &Path, access: Access) -> Result<Journal, JournalError> {
        let (records, view) = Records::replay::<View>(path, access)?;
        Ok(Journal {
            path: path.to_path_buf(),
            records,
            entries: view.entries,
            next_seq: view.next_seq,
        })
    }
}

impl Journal {
    /// What opening found and survived (a damaged last line dropped, with its copy's path).
    pub fn warnings(&self) -> &[String] {
        self.records.warnings()
    }

    /// Applies records already written to the file to the in-memory view.
    fn view(&mut self, recs: Vec<Record>) -> Result<(), JournalError> {
        let mut view = View {
            entries: std::mem::take(&mut self.entries),
            next_seq: self.next_seq,
        };
        let mut r = Ok(());
        for rec in recs {
            if let Err(what) = view.apply_record(rec) {
                r = Err(JournalError::Records(RecordsError::Corrupt {
                    path: self.path.clone(),
                    line: 0,
                    what,
                }));
                break;
            }
        }
        self.entries = view.entries;
        self.next_seq = view.next_seq;
        r
    }

    fn append(&mut self, recs: Vec<Record>) -> Result<(), JournalError> {
        self.records.append(&recs)?;
        self.view(recs)
    }

    /// Journals a change of `key` as PENDING (durable on return) and gives its sequence number.
    pub fn enqueue(&mut self, key: &str, op: Op) -> Result<u64, JournalError> {
        let seq = self.next_seq;
        self.append(vec![Record::Enq {
            seq,
            key: key.to_string(),
            op,
            at: now_ms(),
        }])?;
        Ok(seq)
    }

    /// Journals several changes with one fsync; durable on return, sequence numbers in order.
    pub fn enqueue_many(&mut self, changes: &[(String, Op)]) -> Result<Vec<u64>, JournalError> {
        let at = now_ms();
        let first = self.next_seq;
        let recs: Vec<Record> = changes
            .iter()
            .enumerate()
            .map(|(i, (key, op))| Record::Enq {
                seq: first + i as u64,
                key: key.clone(),
                op: *op,
                at,
            })
            .collect();
        self.append(recs)?;
        Ok((first..first + changes.len() as u64).collect())
    }

    /// Marks an entry COMPLETED without an fsync: losing it in a crash only repeats an
    /// idempotent copy or delete. Call [`Journal::sync`] when a batch is done.
    pub fn complete_lazy(&mut self, seq: u64) -> Result<(), JournalError> {
        self.entry(seq)?;
        self.records.append_lazy(&[Record::Done { seq }])?;
        self.view(vec![Record::Done { seq }])
    }

    /// Makes every earlier append durable.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        Ok(self.records.sync()?)
    }

    /// Marks an entry COMPLETED (it leaves the view).
    pub fn complete(&mut self, seq: u64) -> Result<(), JournalError> {
        self.entry(seq)?;
        self.append(vec![Record::Done { seq }])
    }

    /// Marks an entry FAILED with `reason`; its next retry waits the backoff after `now_ms`.
    pub fn fail(&mut self, seq: u64, reason: &str, now_ms: u64) -> Result<(), JournalError> {
        let retries = self.entry(seq)?.retries + 1;
        let next = now_ms.saturating_add(backoff_ms(retries));
        self.append(vec![Record::Fail {
            seq,
            // a remote's words: bounded, so a hostile error body cannot grow the journal
            reason: crate::text::clip(reason, REASON_CAP).into_owned(),
            retries,
            next,
        }])
    }

    /// Makes every failed entry due now (operator `retry`); gives how many.
    pub fn retry_all_now(&mut self) -> Result<usize, JournalError> {
        let due: Vec<Record> = self
            .failed()
            .iter()
            .filter(|e| e.next_retry_ms > 0)
            .map(|e| Record::Due { seq: e.seq })
            .collect();
        self.append(due)?;
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

    /// Rewrites the journal with only unfinished entries (atomic), so completed history does
    /// not grow the file forever.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        let mut recs = vec![Record::Next { seq: self.next_seq }];
        for e in self.entries.values() {
            recs.push(Record::Enq {
                seq: e.seq,
                key: e.key.clone(),
                op: e.op,
                at: e.enqueued_ms,
            });
            if e.state == State::Failed {
                recs.push(Record::Fail {
                    seq: e.seq,
                    reason: e.reason.clone().unwrap_or_default(),
                    retries: e.retries,
                    next: e.next_retry_ms,
                });
            }
        }
        Ok(self.records.rewrite(&recs)?)
    }

    /// Size of the journal file in bytes.
    pub fn file_len(&self) -> Result<u64, JournalError> {
        Ok(self.records.file_len()?)
    }
}

#[cfg(test)]
#[path = "object_journal_tests.rs"]
mod tests;
