//! What the engine's verbs take and give back, for every kind of pair: run options, a run's
//! result, setup's checklist items, verify's verdicts, purge plans, statuses. It imports no verb
//! module, so every verb (and each kind's replicator) can use it without an import circle.

use std::time::Duration;

use serde::Serialize;

use crate::config::Pair;
use crate::driver::Snapshot;
use crate::model::{Kind, StateKind};
use crate::monitor::{nagios::Check, Level};
use crate::state::last::LastResult;
use crate::state::lock::LockInfo;
use crate::state::progress::Progress;

use super::assess::State;
use super::retention::{self, Retention};
use super::Engine;

/// What a successful run did.
#[derive(Debug, Clone)]
pub struct Replicated {
    pub snapshot: String,
    pub bytes: u64,
    pub seconds: f64,
    /// Old ferry snapshots destroyed (or left behind) on each side.
    pub pruned: Retention,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Receive with -F: roll back changes made on the destination by hand.
    pub force: bool,
    /// Reread the replica and resend whatever differs from the source (block volumes).
    pub repair: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    pub ok: bool,
    pub what: String,
    pub detail: String,
    /// This check found the pair already initialized (the next step is an update).
    #[serde(skip)]
    pub initialized: bool,
}

pub fn item(ok: bool, what: impl Into<String>, detail: impl Into<String>) -> Item {
    Item {
        ok,
        what: what.into(),
        detail: detail.into(),
        initialized: false,
    }
}

/// One volume's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub destination: String,
    pub checkpoint: Option<String>,
    /// What differs; empty when the destination holds exactly its checkpoint.
    pub differences: Vec<String>,
}

impl Verified {
    pub fn ok(&self) -> bool {
        self.differences.is_empty()
    }
}

/// What a purge destroys (or, without `--yes`, would destroy).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Purge {
    pub source: String,
    pub destination: String,
    /// What each side's snapshot names follow to name them in full (`host:pool/ds@`,
    /// `host:/snapshot/dir/`): `Engine::snapshots_at`.
    pub source_at: String,
    pub destination_at: String,
    /// Snapshot names (the part after `@`) on the source.
    pub source_snapshots: Vec<String>,
    pub destination_snapshots: Vec<String>,
    /// The checkpoint, which is always kept (none for `--all`).
    pub checkpoint: Option<String>,
    /// `--all`: the destination dataset itself goes.
    pub destroy_destination: bool,
    /// Whether the purge ran (false for a listing without `--yes`).
    pub done: bool,
    /// What could not be destroyed (busy, held): `host:dataset@snapshot: why`. The lists above
    /// then name only what was destroyed.
    pub left: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RunState {
    Idle,
    Running,
    Initializing,
    /// A lock left by a job that died.
    Locked,
}

impl RunState {
    pub fn word(self) -> &'static str {
        match self {
            RunState::Idle => "Idle",
            RunState::Running => "Running",
            RunState::Initializing => "Initializing",
            RunState::Locked => "Locked",
        }
    }
}

/// What the state dir says about a pair's jobs: no remote command needed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    pub status: RunState,
    pub lock: Option<LockInfo>,
    pub runtime_secs: Option<u64>,
    pub last: Option<LastResult>,
    /// Retention runs that left snapshots behind, since the last clean one (`retention.json`).
    pub retention: Option<retention::Record>,
    #[serde(skip)]
    pub progress: Option<Progress>,
}

impl RunInfo {
    /// No job, no record: a tree member's (its tree's job is the pair's).
    pub fn idle() -> RunInfo {
        RunInfo {
            status: RunState::Idle,
            lock: None,
            runtime_secs: None,
            last: None,
            retention: None,
            progress: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PairStatus {
    pub fingerprint: String,
    pub kind: Kind,
    pub source: String,
    pub destination: String,
    /// Serialised as "Synchronized", "Uninitialized", "Inconsistent", "Unknown".
    pub state: StateKind,
    pub reason: Option<String>,
    pub checkpoint: Option<String>,
    pub lag_secs: Option<u64>,
    pub lag_level: Level,
    pub run_level: Level,
    /// Three characters. First what is wrong with the pair, worst first: `X` Inconsistent, `?`
    /// Unknown, `L` locked, `R` retention behind (snapshots beyond `keep`, or failing); then the
    /// lag flag, then the runtime flag (`+` warning, `!` critical, `-` none).
    pub flags: String,
    pub level: Level,
    /// Our snapshots beyond `keep` on each side (one more is allowed while a job runs); None
    /// when the sides could not be read.
    pub source_over_keep: Option<usize>,
    pub destination_over_keep: Option<usize>,
    /// Retention has left snapshots behind on more than one run in a row.
    pub retention_failing: bool,
    /// What `purge` would destroy now on each side: ferry snapshots beyond `keep`, never the
    /// checkpoint (empty without one, or when the sides could not be read).
    pub purgeable_source: Vec<String>,
    pub purgeable_destination: Vec<String>,
    /// The source's size where the kind tells it (ZFS `referenced`): about what a full send moves.
    pub source_bytes: Option<u64>,
    /// What needs a look besides the state (retention, a checkpoint from the future), one line each.
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub assessed: State,
    #[serde(flatten)]
    pub run: RunInfo,
    /// A recursive pair's members (itself excluded), each with its own state and checkpoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildStatus>,
    #[serde(skip)]
    pub source_snapshots: Vec<Snapshot>,
    #[serde(skip)]
    pub destination_snapshots: Vec<Snapshot>,
}

impl PairStatus {
    pub fn check(&self, pair: &Pair) -> Check {
        let o = &pair.options;
        let mut summary = self.state.word().to_string();
        if let Some(r) = &self.reason {
            summary.push_str(&format!(" ({r})"));
        }
        if let Some(lag) = self.lag_secs {
            summary.push_str(&format!(
                ", lag {}",
                crate::config::units::format_duration(Duration::from_secs(lag))
            ));
        }
        if self.run.status != RunState::Idle {
            summary.push_str(&format!(", {}", self.run.status.word()));
        }
        for w in &self.warnings {
            summary.push_str(&format!(", {w}"));
        }
        Check {
            name: Engine::dest_name(pair),
            level: self.level,
            summary,
            lag: self.lag_secs.map(Duration::from_secs),
            runtime: self.run.runtime_secs.map(Duration::from_secs),
            wlag: o.wlag,
            clag: o.clag,
            wrun: o.wrun,
            crun: o.crun,
        }
    }
}

/// One member of a recursive pair's tree, as the pair's status lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChildStatus {
    pub source: String,
    pub destination: String,
    pub state: StateKind,
    pub reason: Option<String>,
    pub checkpoint: Option<String>,
    pub lag_secs: Option<u64>,
}

/// One key's replication status, as `ferry objects` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectStatus {
    pub key: String,
    /// PENDING, COMPLETED or FAILED.
    pub state: crate::state::object_journal::State,
    /// What the change does: "put" or "delete" (none for a COMPLETED key at rest).
    pub op: Option<crate::state::object_journal::Op>,
    pub retries: u32,
    pub reason: Option<String>,
    /// Unix milliseconds: when the change was journaled; when a FAILED one is retried next.
    pub enqueued_ms: Option<u64>,
    pub next_retry_ms: Option<u64>,
}

impl ObjectStatus {
    pub fn of(e: &crate::state::object_journal::Entry) -> ObjectStatus {
        ObjectStatus {
            key: e.key.clone(),
            state: e.state.clone(),
            op: Some(e.op),
            retries: e.retries,
            reason: e.reason.clone(),
            enqueued_ms: Some(e.enqueued_ms),
            next_retry_ms: (e.state == crate::state::object_journal::State::Failed).then_some(e.next_retry_ms),
        }
    }
}
