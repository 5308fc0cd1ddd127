//! A cluster's durable change journal (`<persist_path>/journal`): every change a listener sees is
//! written here, synced, before anything acts on it; each change's fan-out to each target volume
//! is marked done or failed here; and what each volume was last seen holding is kept here too, so
//! a restart knows what is new and what the cluster wrote itself.
//!
//! Coalescing per key: a change supersedes every unfinished change of the same key that is not
//! newer than it (by the version's modification time, a delete by when it was seen), whatever
//! volume it came from; a change older than one already waiting is superseded on arrival. Each
//! target then gets only the newest state of a key, and a newer version never lands before an
//! older one.
//!
//! Fencing (several instances, one worker at a time through an engine): each write of a worker
//! starts with its epoch, and a replay skips any write of an epoch older than one already seen.
//! A worker that lost its lease but was paused past its own check cannot change what the journal
//! says after its successor's first write; and it checks its lease before each write anyway.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::object_journal::{backoff_ms, Op, State};
use super::records::{Access, Journaled, Records, RecordsError, Replay};

/// The key a fan-out round is journaled under: for people reading the journal only. A round is
/// told from an object's change by its `round` mark, never by its key (an object may be named
/// anything, this too).
pub const CHECKPOINT_KEY: &str = "@checkpoint";

/// A journal bigger than this after a cycle is compacted to what is unfinished plus what each
/// volume was seen holding.
const COMPACT_OVER: u64 = 8 << 20;

/// What one listing (or a HEAD) says about one object: enough to tell a new version from a known one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub size: u64,
    /// Last-modified, Unix milliseconds.
    pub modified_ms: i64,
    /// Where the server gives one (some list without ETags; HEAD has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl Version {
    /// The same version as far as both sides can tell: sizes equal, last-modified equal to the
    /// second (a HEAD's Last-Modified header has no milliseconds, a listing may), ETags equal
    /// where both have one.
    pub fn same_as(&self, other: &Version) -> bool {
        let etags = match (&self.etag, &other.etag) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.size == other.size && self.modified_ms.div_euclid(1000) == other.modified_ms.div_euclid(1000) && etags
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "lowercase")]
enum Record {
    /// Sequence numbers start here (written by compaction).
    Next { seq: u64 },
    /// The records that follow, up to the next epoch, are the writes of the worker of this epoch.
    Epoch { epoch: i64 },
    /// A change seen on `origin`, to be applied to each of `targets`.
    Change {
        seq: u64,
        origin: String,
        key: String,
        op: Op,
        /// Unix milliseconds it was seen.
        at: u64,
        #[serde(default)]
        ver: Option<Version>,
        targets: Vec<String>,
        /// A snapshot source's fan-out round, not an object's change: kept out of the object
        /// key space (an object named like a round's key is an object).
        #[serde(default, skip_serializing_if = "is_false")]
        round: bool,
    },
    /// The change is done on `target`: applied, found there already, or superseded.
    Done { seq: u64, target: String },
    Fail {
        seq: u64,
        target: String,
        reason: String,
        retries: u32,
        next: u64,
    },
    /// A failed fan-out made due now (operator retry).
    Due { seq: u64, target: String },
    /// What `vol` holds for `key` as the cluster last knew it; `None`: absent.
    Seen {
        vol: String,
        key: String,
        #[serde(default)]
        ver: Option<Version>,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Where one change stands on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fanout {
    pub state: State,
    pub retries: u32,
    pub reason: Option<String>,
    pub next_retry_ms: u64,
}

/// One unfinished change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub seq: u64,
    pub origin: String,
    pub key: String,
    pub op: Op,
    pub at_ms: u64,
    pub ver: Option<Version>,
    /// Targets not yet done.
    pub targets: BTreeMap<String, Fanout>,
    /// A fan-out round of a snapshot source (its key means nothing); else an object's change.
    pub round: bool,
}

impl Change {
    /// When the change happened, for "newer beats older": a version's modification time, a
    /// delete's sighting.
    pub fn time_ms(&self) -> i64 {
        match (&self.op, &self.ver) {
            (Op::Put, Some(v)) => v.modified_ms,
            _ => self.at_ms as i64,
        }
    }
}

/// A change as a listener hands it in.
#[derive(Debug, Clone)]
pub struct Seen {
    pub origin: String,
    pub key: String,
    pub op: Op,
    pub ver: Option<Version>,
    pub targets: Vec<String>,
    /// A snapshot source's fan-out round rather than an object's change.
    pub round: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cluster journal {0}")]
    Records(#[from] RecordsError),
    /// The worker's lease ran out: it no longer works the cluster, and wrote nothing more.
    #[error("this instance no longer holds the cluster's lease (epoch {0}); nothing more was journaled")]
    Fenced(i64),
    /// The journal has seen a newer worker than the engine's lease says: the engine lost history.
    #[error(
        "the journal was written by a worker of epoch {journal}, newer than this lease's {ours}: was etcd restored or replaced? \
         Move the journal aside only after checking the volumes (cluster diverge)"
    )]
    EpochBehind { journal: i64, ours: i64 },
}

/// What lets a worker write: its epoch, and the check that its lease still holds.
pub struct Fence {
    pub epoch: i64,
    pub holds: Box<dyn Fn() -> bool + Send + Sync>,
}

#[derive(Default)]
struct View {
    changes: BTreeMap<u64, Change>,
    seen: HashMap<String, HashMap<String, Version>>,
    next_seq: u64,
    /// (target, key) -> unfinished fan-outs of the key to the target (`busy` in constant time).
    busy: HashMap<(String, String), u32>,
    /// The epoch of the write being replayed, and the newest epoch seen (fencing).
    epoch_cur: i64,
    epoch_max: i64,
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
    fn unbusy(&mut self, target: &str, key: &str) {
        let k = (target.to_string(), key.to_string());
        if let Some(n) = self.busy.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                self.busy.remove(&k);
            }
        }
    }
}

impl View {
    fn apply_record(&mut self, rec: Record) -> Result<(), String> {
        if let Record::Epoch { epoch } = rec {
            self.epoch_cur = epoch;
            self.epoch_max = self.epoch_max.max(epoch);
            return Ok(());
        }
        if self.epoch_cur < self.epoch_max {
            // a deposed worker's write, made after its successor's: not the journal's
            return Ok(());
        }
        match rec {
            Record::Epoch { .. } => {}
            Record::Next { seq } => self.next_seq = self.next_seq.max(seq),
            Record::Change {
                seq,
                origin,
                key,
                op,
                at,
                ver,
                targets,
                round,
            } => {
                self.next_seq = self.next_seq.max(seq + 1);
                let targets = targets
                    .into_iter()
                    .map(|t| {
                        let f = Fanout {
                            state: State::Pending,
                            retries: 0,
                            reason: None,
                            next_retry_ms: 0,
                        };
                        (t, f)
                    })
                    .collect::<BTreeMap<_, _>>();
                if !round {
                    for t in targets.keys() {
                        *self.busy.entry((t.clone(), key.clone())).or_default() += 1;
                    }
                }
                if !targets.is_empty() {
                    let c = Change {
                        seq,
                        origin,
                        key,
                        op,
                        at_ms: at,
                        ver,
                        targets,
                        round,
                    };
                    self.changes.insert(seq, c);
                }
            }
            // done twice (a superseded change whose apply also finished) is no damage
            Record::Done { seq, target } => {
                let mut unbusy = None;
                if let Some(c) = self.changes.get_mut(&seq) {
                    if c.targets.remove(&target).is_some() && !c.round {
                        unbusy = Some(c.key.clone());
                    }
                    if c.targets.is_empty() {
                        self.changes.remove(&seq);
                    }
                }
                if let Some(key) = unbusy {
                    self.unbusy(&target, &key);
                }
            }
            Record::Fail {
                seq,
                target,
                reason,
                retries,
                next,
            } => {
                if let Some(f) = self.changes.get_mut(&seq).and_then(|c| c.targets.get_mut(&target)) {
                    f.state = State::Failed;
                    f.reason = Some(reason);
                    f.retries = retries;
                    f.next_retry_ms = next;
                }
            }
            Record::Due { seq, target } => {
                if let Some(f) = self.changes.get_mut(&seq).and_then(|c| c.targets.get_mut(&target)) {
                    f.next_retry_ms = 0;
                }
            }
            Record::Seen { vol, key, ver } => {
                let m = self.seen.entry(vol).or_default();
                match ver {
                    Some(v) => {
                        m.insert(key, v);
                    }
                    None => {
                        m.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }
}

/// An unfinished change as coalescing weighs it: sequence number, time, targets.
type Waiting = (u64, i64, Vec<String>);

/// The open journal with its in-memory view.
pub struct Journal {
    records: Records,
    view: View,
    fence: Option<Fence>,
}

/// The journal's file in a cluster's persist path.
pub fn path_in(persist: &Path) -> PathBuf {
    persist.join("journal")
}

impl Journaled for Journal {
    type Error = JournalError;

    fn open_as(path: &Path, access: Access) -> Result<Journal, JournalError> {
        let (records, view) = Records::replay::<View>(path, access)?;
        Ok(Journal {
            records,
            view,
            fence: None,
        })
    }
}

impl Journal {
    /// Opens the journal for the worker of `fence.epoch`: its epoch is written first, so whatever
    /// an earlier worker writes from now on is fenced out, then the journal is read again with
    /// everything written before that.
    pub fn open_fenced(path: &Path, fence: Fence) -> Result<Journal, JournalError> {
        if !(fence.holds)() {
            return Err(JournalError::Fenced(fence.epoch));
        }
        let mut first = Journal::open(path)?;
        if first.view.epoch_max > fence.epoch {
            // every write of ours would be skipped as a deposed worker's
            return Err(JournalError::EpochBehind {
                journal: first.view.epoch_max,
                ours: fence.epoch,
            });
        }
        first.records.append(&[Record::Epoch { epoch: fence.epoch }])?;
        drop(first);
        let mut j = Journal::open(path)?;
        j.fence = Some(fence);
        Ok(j)
    }

    /// For a worker: its lease still holds and nobody else wrote the journal since its last
    /// write (a successor's append or compaction shows as a longer or another file).
    pub fn check_fence(&self) -> Result<(), JournalError> {
        match &self.fence {
            Some(f) if !(f.holds)() || !self.records.untouched() => Err(JournalError::Fenced(f.epoch)),
            _ => Ok(()),
        }
    }

    /// `check_fence` as a yes or no, for work done between writes (a copy about to start).
    pub fn may_act(&self) -> bool {
        self.check_fence().is_ok()
    }

    fn write(&mut self, mut recs: Vec<Record>, durable: bool) -> Result<(), JournalError> {
        // checked with nothing to write too: a deposed worker learns it at its first step
        self.check_fence()?;
        if recs.is_empty() {
            return Ok(());
        }
        if let Some(f) = &self.fence {
            recs.insert(0, Record::Epoch { epoch: f.epoch });
        } else if self.view.epoch_max > 0 {
            // a single instance after workers: its writes continue the newest epoch
            recs.insert(
                0,
                Record::Epoch {
                    epoch: self.view.epoch_max,
                },
            );
        }
        // one write(2) either way, so a fenced write's records stay behind its epoch
        if durable {
            self.records.append(&recs)?;
        } else {
            self.records.append_lazy(&recs)?;
        }
        for r in recs {
            // replaying our own records cannot fail
            let _ = self.view.apply_record(r);
        }
        Ok(())
    }

    /// What `vol` was last known to hold for `key`.
    pub fn seen(&self, vol: &str, key: &str) -> Option<&Version> {
        self.view.seen.get(vol).and_then(|m| m.get(key))
    }

    /// Every key `vol` was last known to hold.
    pub fn seen_in(&self, vol: &str) -> Vec<&str> {
        self.view
            .seen
            .get(vol)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Whether a change of `key` is still to be applied to `vol` (the cluster is about to write
    /// it there: a listing of it says nothing yet).
    pub fn busy(&self, vol: &str, key: &str) -> bool {
        self.view.busy.contains_key(&(vol.to_string(), key.to_string()))
    }

    /// Journals what the listeners saw, with what each volume now holds, in one synced write:
    /// durable on return. Each change is coalesced against the unfinished ones of its key.
    pub fn record(
        &mut self,
        changes: Vec<Seen>,
        seen: Vec<(String, String, Option<Version>)>,
    ) -> Result<usize, JournalError> {
        let mut recs = Vec::new();
        let at = crate::state::object_journal::now_ms();
        let mut journaled = 0;
        // the unfinished changes of each key, kept current through this batch
        let mut by_key: HashMap<(bool, String), Vec<Waiting>> = HashMap::new();
        for c in self.view.changes.values() {
            by_key.entry((c.round, c.key.clone())).or_default().push((
                c.seq,
                c.time_ms(),
                c.targets.keys().cloned().collect(),
            ));
        }
        let mut seq = self.view.next_seq;
        for s in changes {
            let time = match (&s.op, &s.ver) {
                (Op::Put, Some(v)) => v.modified_ms,
                _ => at as i64,
            };
            let waiting = by_key.entry((s.round, s.key.clone())).or_default();
            if waiting.iter().any(|(_, t, _)| *t > time) {
                // a newer change of the key is on its way, to this change's origin too
                continue;
            }
            for (old, _, targets) in waiting.drain(..) {
                for target in targets {
                    recs.push(Record::Done { seq: old, target });
                }
            }
            waiting.push((seq, time, s.targets.clone()));
            recs.push(Record::Change {
                seq,
                origin: s.origin,
                key: s.key,
                op: s.op,
                at,
                ver: s.ver,
                targets: s.targets,
                round: s.round,
            });
            seq += 1;
            journaled += 1;
        }
        recs.extend(seen.into_iter().map(|(vol, key, ver)| Record::Seen { vol, key, ver }));
        self.write(recs, true)?;
        Ok(journaled)
    }

    /// Records, durably, what `vol` holds for `key` now (before the cluster deletes it there, so a
    /// restart does not take the deletion for a change made on `vol`).
    pub fn set_seen(&mut self, vol: &str, key: &str, ver: Option<Version>) -> Result<(), JournalError> {
        let rec = Record::Seen {
            vol: vol.into(),
            key: key.into(),
            ver,
        };
        self.write(vec![rec], true)
    }

    /// What is ready to apply now: per (key, target), the oldest unfinished fan-out, if it has
    /// settled (seen at least `settle_ms` ago) and is pending or past its backoff.
    pub fn ready(&self, now_ms: u64, settle_ms: u64) -> Vec<(Change, String)> {
        let mut heads: BTreeMap<(bool, &str, &str), (&Change, &str)> = BTreeMap::new();
        for c in self.view.changes.values() {
            for t in c.targets.keys() {
                heads
                    .entry((c.round, c.key.as_str(), t.as_str()))
                    .or_insert((c, t.as_str()));
            }
        }
        let mut out: Vec<(Change, String)> = heads
            .into_values()
            .filter(|(c, t)| {
                let f = &c.targets[*t];
                c.at_ms.saturating_add(settle_ms) <= now_ms && (f.state == State::Pending || f.next_retry_ms <= now_ms)
            })
            .map(|(c, t)| (c.clone(), t.to_string()))
            .collect();
        out.sort_by_key(|(c, t)| (c.seq, t.clone()));
        out
    }

    /// Marks fan-outs done, without a sync each (`sync` after the batch): redoing one after a
    /// crash copies the same object again, which changes nothing.
    pub fn done(&mut self, done: &[(u64, String)]) -> Result<(), JournalError> {
        let recs = done
            .iter()
            .map(|(seq, target)| Record::Done {
                seq: *seq,
                target: target.clone(),
            })
            .collect();
        self.write(recs, false)
    }

    /// Records what the cluster wrote: `vol` now holds `ver` of `key` (not synced: a lost record
    /// costs one HEAD on the next listing, which finds the replica mark).
    pub fn wrote(&mut self, vol: &str, key: &str, ver: Option<Version>) -> Result<(), JournalError> {
        let rec = Record::Seen {
            vol: vol.into(),
            key: key.into(),
            ver,
        };
        self.write(vec![rec], false)
    }

    /// Marks a fan-out FAILED; its next try waits the backoff.
    pub fn fail(&mut self, seq: u64, target: &str, reason: &str, now_ms: u64) -> Result<(), JournalError> {
        let retries = self
            .view
            .changes
            .get(&seq)
            .and_then(|c| c.targets.get(target))
            .map_or(0, |f| f.retries)
            + 1;
        let rec = Record::Fail {
            seq,
            target: target.into(),
            reason: crate::text::clip(reason, crate::state::object_journal::REASON_CAP).into_owned(),
            retries,
            next: now_ms.saturating_add(backoff_ms(retries)),
        };
        self.write(vec![rec], false)
    }

    /// Every failed fan-out due now; gives how many.
    pub fn retry_all_now(&mut self) -> Result<usize, JournalError> {
        let due: Vec<Record> = self
            .view
            .changes
            .values()
            .flat_map(|c| {
                c.targets
                    .iter()
                    .filter(|(_, f)| f.state == State::Failed)
                    .map(|(t, _)| Record::Due {
                        seq: c.seq,
                        target: t.clone(),
                    })
            })
            .collect();
        let n = due.len();
        self.write(due, true)?;
        Ok(n)
    }

    pub fn sync(&mut self) -> Result<(), JournalError> {
        Ok(self.records.sync()?)
    }

    /// Every unfinished change, oldest first.
    pub fn unfinished(&self) -> impl Iterator<Item = &Change> {
        self.view.changes.values()
    }

    /// Rewrites the journal to its live content when it has grown past the threshold.
    pub fn maybe_compact(&mut self) -> Result<bool, JournalError> {
        if self.records.file_len()? <= COMPACT_OVER {
            return Ok(false);
        }
        self.check_fence()?;
        let epoch = match &self.fence {
            Some(f) => f.epoch.max(self.view.epoch_max),
            None => self.view.epoch_max,
        };
        let mut recs = vec![
            Record::Epoch { epoch },
            Record::Next {
                seq: self.view.next_seq,
            },
        ];
        for (vol, m) in &self.view.seen {
            for (key, v) in m {
                recs.push(Record::Seen {
                    vol: vol.clone(),
                    key: key.clone(),
                    ver: Some(v.clone()),
                });
            }
        }
        for c in self.view.changes.values() {
            recs.push(Record::Change {
                seq: c.seq,
                origin: c.origin.clone(),
                key: c.key.clone(),
                op: c.op,
                at: c.at_ms,
                ver: c.ver.clone(),
                targets: c.targets.keys().cloned().collect(),
                round: c.round,
            });
            for (t, f) in &c.targets {
                if f.state == State::Failed {
                    recs.push(Record::Fail {
                        seq: c.seq,
                        target: t.clone(),
                        reason: f.reason.clone().unwrap_or_default(),
                        retries: f.retries,
                        next: f.next_retry_ms,
                    });
                }
            }
        }
        // checked again once the new file is on disk, just before it replaces the journal
        let fence = self.fence.as_ref().map(|f| (&f.holds, f.epoch));
        let replaced = self.records.rewrite_if(&recs, |r| match fence {
            Some((holds, _)) => holds() && r.untouched(),
            None => true,
        })?;
        if let (false, Some((_, epoch))) = (replaced, fence) {
            return Err(JournalError::Fenced(epoch));
        }
        Ok(true)
    }

    pub fn file_len(&self) -> Result<u64, JournalError> {
        Ok(self.records.file_len()?)
    }
}

#[cfg(test)]
#[path = "cluster_journal_tests.rs"]
mod tests;
