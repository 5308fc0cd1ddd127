//! One replication pass between two buckets/prefixes: decide copy/delete/skip per key, journal
//! each change PENDING before acting, copy (streaming, multipart when large) or delete, then mark
//! COMPLETED or FAILED. Journal entries left from an earlier pass run first, FIFO per key.
//!
//! A pass after the first reads the source's listing against the checkpoint (what the last
//! copies saw) and never lists the destination, so a destination that is down gives FAILED
//! entries to retry rather than no pass at all. The first pass, and a full one (`--repair`),
//! list both sides and compare them, HEAD-ing keys whose listings cannot tell.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use futures::StreamExt;

use super::carry::{carry, Carried};
use super::changes::{detect, Detected};
use super::checkpoint::{Checkpoint, CheckpointError, Copied};
use super::client::{Client, ClientError, ObjectInfo};
use super::endpoint::Endpoint;
pub use super::options::{PassProgress, SyncOptions};
use crate::state::object_journal::{now_ms, Entry, Journal, JournalError, Op};
use crate::state::records::Journaled;

/// Which listings a pass compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The source against the checkpoint (the first pass of a pair compares both sides).
    Changes,
    /// Both sides' listings, whatever the checkpoint says: finds what changed on the destination
    /// behind ferry's back.
    Full,
}

/// What a pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub copied: usize,
    pub deleted: usize,
    /// Keys found equal.
    pub unchanged: usize,
    /// Entries that failed in this pass (now FAILED in the journal).
    pub failed: usize,
    /// Puts whose source key was gone when the copy came to it (a delete follows).
    pub gone: usize,
    pub bytes: u64,
    /// Names a listing gave that cannot be keys here, each with why (never copied: shown).
    pub unlisted: Vec<String>,
    /// What opening the status journal found and survived (a damaged line, kept as a copy).
    pub journal_warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("listing failed: {0}")]
    List(ClientError),
    #[error("object state dir {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
}

/// A pair's local state: the status journal and the checkpoint, in one directory. The
/// endpoints are S3 clients in the product, in-memory buckets in the core's unit tests.
pub struct Pair<E: Endpoint = Client> {
    pub src: E,
    pub dst: E,
    pub state_dir: PathBuf,
    pub options: SyncOptions,
}

/// Files of a pair's state directory.
pub fn journal_path(state_dir: &Path) -> PathBuf {
    state_dir.join("status.journal")
}

fn checkpoint_path(state_dir: &Path) -> PathBuf {
    state_dir.join("checkpoint.json")
}

enum Decision {
    /// Equal on both sides; what to record in the checkpoint when it does not say so yet.
    Same(Option<Copied>),
    Change(Op),
}

impl<E: Endpoint> Pair<E> {
    /// Makes every FAILED entry due now, then runs a pass (the operator's `retry`).
    pub async fn retry(&self) -> Result<PassReport, SyncError> {
        self.open_journal()?.retry_all_now()?;
        self.pass().await
    }

    /// Whether a pass has finished for this pair (it is initialized).
    pub fn initialized(&self) -> bool {
        Checkpoint::exists(&checkpoint_path(&self.state_dir))
    }

    /// The checkpoint as the last pass left it.
    pub fn checkpoint(&self) -> Result<Checkpoint, SyncError> {
        Ok(Checkpoint::load(&checkpoint_path(&self.state_dir))?)
    }

    /// The status journal, opened (and replayed) for reading.
    pub fn journal(&self) -> Result<Journal, SyncError> {
        self.open_journal()
    }

    fn open_journal(&self) -> Result<Journal, SyncError> {
        std::fs::create_dir_all(&self.state_dir).map_err(|source| SyncError::Dir {
            path: self.state_dir.clone(),
            source,
        })?;
        Ok(Journal::open(&journal_path(&self.state_dir))?)
    }

    /// One pass: changes since the checkpoint, or a full comparison for a pair's first pass.
    /// FAILED entries are counted in the report, not returned as an error.
    pub async fn pass(&self) -> Result<PassReport, SyncError> {
        self.pass_scoped(Scope::Changes).await
    }

    pub async fn pass_scoped(&self, scope: Scope) -> Result<PassReport, SyncError> {
        let mut journal = self.open_journal()?;
        let cp_path = checkpoint_path(&self.state_dir);
        let first = !Checkpoint::exists(&cp_path);
        let mut checkpoint = Checkpoint::load(&cp_path)?;
        let listed_ms = now_ms();
        let full = first || scope == Scope::Full;
        let (src, dst) = if full {
            let (s, d) = futures::try_join!(self.src.list(), self.dst.list()).map_err(SyncError::List)?;
            (s, Some(d))
        } else {
            (self.src.list().await.map_err(SyncError::List)?, None)
        };
        let mut report = PassReport {
            journal_warnings: journal.warnings().to_vec(),
            ..PassReport::default()
        };
        report
            .unlisted
            .extend(src.odd.iter().map(|n| format!("source {}: {n}", self.src.location())));
        if let Some(d) = &dst {
            report.unlisted.extend(
                d.odd
                    .iter()
                    .map(|n| format!("destination {}: {n}", self.dst.location())),
            );
        }
        let src: BTreeMap<String, ObjectInfo> = src.objects.into_iter().map(|o| (o.key.clone(), o)).collect();

        let decisions = match dst {
            Some(dst) => {
                let dst: BTreeMap<String, ObjectInfo> = dst.objects.into_iter().map(|o| (o.key.clone(), o)).collect();
                self.compare(&src, &dst, &checkpoint).await
            }
            None => changes(&src, &checkpoint),
        };
        // A put whose key the source no longer lists has nothing to copy: done now, whatever its
        // backoff (a FAILED put of a key deleted since must not wait, or fail, forever).
        let moot: Vec<u64> = journal
            .unfinished()
            .iter()
            .filter(|e| e.op == Op::Put && !src.contains_key(&e.key))
            .map(|e| e.seq)
            .collect();
        for seq in moot {
            journal.complete_lazy(seq)?;
            report.gone += 1;
        }
        let unfinished = journal.unfinished();
        let covered: HashSet<(&str, Op)> = unfinished.iter().map(|e| (e.key.as_str(), e.op)).collect();
        let mut batch = Vec::new();
        let mut same = Vec::new();
        for (key, d) in decisions {
            match d {
                Decision::Same(record) => {
                    report.unchanged += 1;
                    if let Some(r) = record {
                        same.push((key, r));
                    }
                }
                // An unfinished entry of the same op already covers this change.
                Decision::Change(op) if covered.contains(&(key.as_str(), op)) => {}
                Decision::Change(op) => batch.push((key, op)),
            }
        }
        drop(covered);
        drop(unfinished);
        checkpoint.keys.extend(same);
        journal.enqueue_many(&batch)?;
        self.options.progress.applying.store(true, Ordering::Relaxed);

        let journal = Mutex::new(journal);
        let mut attempted: HashSet<u64> = HashSet::new();
        loop {
            let ready: Vec<Entry> = lock(&journal)
                .ready(now_ms())
                .into_iter()
                .filter(|e| !attempted.contains(&e.seq))
                .collect();
            if ready.is_empty() {
                break;
            }
            attempted.extend(ready.iter().map(|e| e.seq));
            let p = &self.options.progress;
            p.total.fetch_add(ready.len() as u64, Ordering::Relaxed);
            let sizes: u64 = ready
                .iter()
                .filter(|e| e.op == Op::Put)
                .filter_map(|e| src.get(&e.key).map(|o| o.size))
                .sum();
            p.expected.fetch_add(sizes, Ordering::Relaxed);
            let results: Vec<(Entry, Result<Outcome, ClientError>)> = futures::stream::iter(ready)
                .map(|e| {
                    let src = &src;
                    async move {
                        let r = self.apply(&e, src.get(&e.key)).await;
                        (e, r)
                    }
                })
                .buffer_unordered(self.options.parallel_objects.max(1))
                .collect()
                .await;
            let mut j = lock(&journal);
            for (e, r) in results {
                self.options.progress.done.fetch_add(1, Ordering::Relaxed);
                match r {
                    Ok(Outcome::Copied { bytes, record }) => {
                        report.copied += 1;
                        report.bytes += bytes;
                        match record {
                            Some(c) => checkpoint.keys.insert(e.key.clone(), c),
                            None => checkpoint.keys.remove(&e.key),
                        };
                        j.complete_lazy(e.seq)?;
                    }
                    Ok(Outcome::Deleted) => {
                        report.deleted += 1;
                        checkpoint.keys.remove(&e.key);
                        j.complete_lazy(e.seq)?;
                    }
                    // the checkpoint keeps what the destination last got: if that is an older
                    // version, the next pass sees the key gone from the source and deletes it
                    Ok(Outcome::Gone) => {
                        report.gone += 1;
                        j.complete_lazy(e.seq)?;
                    }
                    Err(err) => {
                        report.failed += 1;
                        j.fail(e.seq, &err.to_string(), now_ms())?;
                    }
                }
            }
        }
        let mut journal = journal.into_inner().unwrap_or_else(|p| p.into_inner());
        journal.sync()?;
        checkpoint.listed_ms = Some(listed_ms);
        checkpoint.unlisted = report.unlisted.clone();
        checkpoint.save(&cp_path)?;
        // Completed history is dead weight; keep the file near the size of what is unfinished.
        if journal.file_len()? > 1 << 20 {
            journal.compact()?;
        }
        Ok(report)
    }

    /// Decides per key from both listings; keys of equal size whose checkpoint is stale get a
    /// HEAD on both sides (content type and user metadata are compared, not only bytes).
    async fn compare(
        &self,
        src: &BTreeMap<String, ObjectInfo>,
        dst: &BTreeMap<String, ObjectInfo>,
        cp: &Checkpoint,
    ) -> Vec<(String, Decision)> {
        let mut out = Vec::new();
        let mut compare = Vec::new();
        for (key, s) in src {
            match dst.get(key) {
                None => out.push((key.clone(), Decision::Change(Op::Put))),
                Some(d) if d.size != s.size => out.push((key.clone(), Decision::Change(Op::Put))),
                Some(d) if unchanged_since_copy(s, d, cp.keys.get(key)) => {
                    out.push((key.clone(), Decision::Same(None)))
                }
                Some(d) => compare.push((key.clone(), s, d)),
            }
        }
        for key in dst.keys().filter(|k| !src.contains_key(*k)) {
            out.push((key.clone(), Decision::Change(Op::Delete)));
        }
        let compared: Vec<(String, Decision)> = futures::stream::iter(compare)
            .map(|(key, s, d)| async move {
                let heads = futures::try_join!(
                    super::endpoint::head(&self.src, &key),
                    super::endpoint::head(&self.dst, &key)
                );
                let same = matches!(heads, Ok(((Some(se), sa), (Some(de), da))) if se == de && sa == da);
                let decision = if same {
                    // equal now: the checkpoint learns it, so the next pass needs no HEAD
                    Decision::Same(Some(Copied {
                        src_etag: s.etag.clone(),
                        src_modified_ms: s.last_modified.timestamp_millis(),
                        dst_etag: d.etag.clone(),
                        size: Some(s.size),
                    }))
                } else {
                    Decision::Change(Op::Put)
                };
                (key, decision)
            })
            .buffer_unordered(self.options.parallel_objects.max(1))
            .collect()
            .await;
        out.extend(compared);
        out
    }

    /// Carries one journaled change; a put records what the copy saw for the checkpoint.
    async fn apply(&self, e: &Entry, listed: Option<&ObjectInfo>) -> Result<Outcome, ClientError> {
        Ok(
            match carry(&self.src, &self.dst, &e.key, e.op, &self.options, None).await? {
                Carried::Copied { bytes, etag } => Outcome::Copied {
                    bytes,
                    record: listed.map(|l| Copied {
                        src_etag: l.etag.clone(),
                        src_modified_ms: l.last_modified.timestamp_millis(),
                        dst_etag: etag,
                        size: Some(l.size),
                    }),
                },
                Carried::Deleted => Outcome::Deleted,
                Carried::Gone => Outcome::Gone,
            },
        )
    }
}

enum Outcome {
    Copied {
        bytes: u64,
        record: Option<Copied>,
    },
    Deleted,
    /// A put whose source key no longer exists.
    Gone,
}

/// The source's listing against the checkpoint (the shared detector): a key whose version is
/// not the one last copied is put, a key the checkpoint holds and the source no longer has is
/// deleted.
fn changes(src: &BTreeMap<String, ObjectInfo>, cp: &Checkpoint) -> Vec<(String, Decision)> {
    detect(src.values(), cp)
        .into_iter()
        .map(|d| {
            let decision = match d {
                Detected::Same(_) => Decision::Same(None),
                Detected::Put(_) => Decision::Change(Op::Put),
                Detected::Delete(_) => Decision::Change(Op::Delete),
            };
            (d.key().to_string(), decision)
        })
        .collect()
}

/// The source is the version last copied (ETag when listed, and last-modified) and the
/// destination still holds what the copy wrote: its ETag when listed; a server that lists no
/// ETags (s3s-fs) leaves only the size, already compared, to judge the destination by.
fn unchanged_since_copy(s: &ObjectInfo, d: &ObjectInfo, c: Option<&Copied>) -> bool {
    let Some(c) = c else { return false };
    let dst_same = match (&d.etag, &c.dst_etag) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => false,
        (None, _) => true,
    };
    c.saw(s) && dst_same
}

fn lock(j: &Mutex<Journal>) -> std::sync::MutexGuard<'_, Journal> {
    j.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
