//! Status of pairs: state from both sides (one listing command per host, hosts in parallel), run
//! status from the lock, lag and runtime against thresholds.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::config::Pair;
use crate::driver::zfs::Zfs;
use crate::driver::{Snapshot, VolumeDriver, VolumeInfo};
use crate::monitor::{self, nagios::Check, Level};
use crate::state::last::LastResult;
use crate::state::lock::{self, LockInfo, LockState};
use crate::state::progress::Progress;
use crate::state::{now_unix, StateDir};

use super::assess::{assess, State};
use super::Engine;

/// How long one host may take to answer a status listing before it shows as unreachable.
pub const HOST_TIMEOUT: Duration = Duration::from_secs(20);

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
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub status: RunState,
    pub lock: Option<LockInfo>,
    pub runtime_secs: Option<u64>,
    pub last: Option<LastResult>,
    #[serde(skip)]
    pub progress: Option<Progress>,
}

pub fn run_info(state: &StateDir, pair: &Pair) -> RunInfo {
    let fp = pair.fingerprint();
    let (status, lock) = match lock::inspect(&state.lock_path(&fp)) {
        LockState::Free => (RunState::Idle, None),
        LockState::Running(i) if i.action == "initialize" => (RunState::Initializing, Some(i)),
        LockState::Running(i) => (RunState::Running, Some(i)),
        LockState::Stale(i) => (RunState::Locked, i),
    };
    let runtime_secs = match (status, &lock) {
        (RunState::Running | RunState::Initializing, Some(i)) if i.started > 0 => {
            Some((now_unix() - i.started).max(0) as u64)
        }
        _ => None,
    };
    let progress = matches!(status, RunState::Running | RunState::Initializing)
        .then(|| Progress::read(&state.progress_path(&fp)))
        .flatten();
    RunInfo {
        status,
        lock,
        runtime_secs,
        last: LastResult::read(&state.last_path(&fp)),
        progress,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PairStatus {
    pub fingerprint: String,
    pub source: String,
    pub destination: String,
    /// "Synchronized", "Uninitialized", "Inconsistent", "Unknown".
    pub state: String,
    pub reason: Option<String>,
    pub checkpoint: Option<String>,
    pub lag_secs: Option<u64>,
    pub lag_level: Level,
    pub run_level: Level,
    /// `L` locked, then the lag flag, then the runtime flag (`+` warning, `!` critical, `-` none).
    pub flags: String,
    pub level: Level,
    #[serde(flatten)]
    pub run: RunInfo,
    #[serde(skip)]
    pub source_snapshots: Vec<Snapshot>,
    #[serde(skip)]
    pub destination_snapshots: Vec<Snapshot>,
}

impl PairStatus {
    pub fn check(&self, pair: &Pair) -> Check {
        let o = &pair.options;
        let mut summary = self.state.clone();
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

/// Combines both sides and the run info into one status line's worth of facts.
pub fn compose(
    pair: &Pair,
    src: Result<&VolumeInfo, &str>,
    dst: Result<&VolumeInfo, &str>,
    run: RunInfo,
) -> PairStatus {
    let fp = pair.fingerprint();
    let (state, checkpoint, ssnaps, dsnaps) = match (src, dst) {
        (Ok(s), Ok(d)) => {
            let a = assess(&fp, s, d);
            (a.state, a.checkpoint, s.snapshots.clone(), d.snapshots.clone())
        }
        (Err(e), _) | (_, Err(e)) => (State::Unknown(e.to_string()), None, vec![], vec![]),
    };
    let o = &pair.options;
    let lag = checkpoint.as_ref().map(|c| (now_unix() - c.created).max(0) as u64);
    let lag_level = lag
        .map(|l| monitor::level(Duration::from_secs(l), o.wlag, o.clag))
        .unwrap_or(Level::Ok);
    let run_level = run
        .runtime_secs
        .map(|r| monitor::level(Duration::from_secs(r), o.wrun, o.crun))
        .unwrap_or(Level::Ok);
    let locked = run.status == RunState::Locked;
    let flags = format!(
        "{}{}{}",
        if locked { 'L' } else { '-' },
        monitor::flag(lag_level),
        monitor::flag(run_level)
    );
    let state_level = match &state {
        State::Synchronized => Level::Ok,
        State::Uninitialized if run.status == RunState::Initializing => Level::Ok,
        State::Uninitialized => Level::Warning,
        State::Inconsistent(_) => Level::Critical,
        State::Unknown(_) => Level::Unknown,
    };
    let level = state_level
        .worst(lag_level)
        .worst(run_level)
        .worst(if locked { Level::Critical } else { Level::Ok });
    PairStatus {
        fingerprint: fp,
        source: pair.source.to_string(),
        destination: pair.destination.to_string(),
        state: state.word().to_string(),
        reason: state.reason().map(String::from),
        checkpoint: checkpoint.map(|c| c.name),
        lag_secs: lag,
        lag_level,
        run_level,
        flags,
        level,
        run,
        source_snapshots: ssnaps,
        destination_snapshots: dsnaps,
    }
}

/// Status of the given pairs with one listing per host, all hosts at once.
pub async fn status(engine: &Engine, pairs: &[&Pair]) -> Vec<PairStatus> {
    let mut by_host: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in pairs {
        for e in [&p.source, &p.destination] {
            let list = by_host.entry(e.host.clone()).or_default();
            if !list.contains(&e.path) {
                list.push(e.path.clone());
            }
        }
    }
    let reads = by_host.iter().map(|(host, datasets)| async move {
        let read = async {
            let ex = engine.executor(host).await?;
            let refs: Vec<&str> = datasets.iter().map(String::as_str).collect();
            Zfs.inspect(&ex, &refs).await
        };
        let r = match tokio::time::timeout(HOST_TIMEOUT, read).await {
            Ok(Ok(infos)) => Ok(datasets.iter().cloned().zip(infos).collect::<HashMap<_, _>>()),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("host {host} did not answer within {}s", HOST_TIMEOUT.as_secs())),
        };
        (host.clone(), r)
    });
    let results: HashMap<String, Result<HashMap<String, VolumeInfo>, String>> =
        futures::future::join_all(reads).await.into_iter().collect();
    pairs
        .iter()
        .map(|p| {
            let side = |e: &crate::config::Endpoint| -> Result<&VolumeInfo, &str> {
                match results.get(&e.host) {
                    Some(Ok(m)) => m.get(&e.path).ok_or("not listed"),
                    Some(Err(msg)) => Err(msg.as_str()),
                    None => Err("not read"),
                }
            };
            compose(p, side(&p.source), side(&p.destination), run_info(&engine.state, p))
        })
        .collect()
}
