//! Status of pairs: state from both sides (one listing command per host, hosts in parallel), run
//! status from the lock, lag and runtime against thresholds.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::config::Pair;
use crate::driver::snapshot_driver;
use crate::driver::VolumeInfo;
use crate::model::{Checkpoint, JobAction, Kind};
use crate::monitor::{self, Level};
use crate::state::last::LastResult;
use crate::state::lock::{self, LockState};
use crate::state::progress::Progress;
use crate::state::{now_unix, StateDir};

use super::assess::{assess_pair, State};
use super::retention::{self, over_keep};
use super::tree;
use super::types::{ChildStatus, PairStatus, RunInfo, RunState};
use super::Engine;

/// A checkpoint newer than this by the local clock is "from the future" (clocks disagree).
pub const FUTURE_SLACK_SECS: i64 = 60;

/// How long one host may take to answer a status listing before it shows as unreachable.
pub const HOST_TIMEOUT: Duration = Duration::from_secs(20);

pub fn run_info(state: &StateDir, pair: &Pair) -> RunInfo {
    let fp = pair.fingerprint();
    let (status, lock) = match lock::inspect(&state.lock_path(&fp)) {
        LockState::Free => (RunState::Idle, None),
        LockState::Running(i) if JobAction::from_label(&i.action) == Some(JobAction::Initialize) => {
            (RunState::Initializing, Some(i))
        }
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
        retention: retention::read(state, &fp),
        progress,
    }
}

/// The pairs' locks in the coordination engine, by fingerprint (jobs of every instance); empty
/// when none is configured. An engine that cannot be asked leaves its reason in
/// `engine.coordination_warning`: status then shows this host's locks only.
pub async fn engine_locks(engine: &Engine) -> HashMap<String, LockState> {
    let Some(coord) = engine.config.coordination.clone() else {
        return HashMap::new();
    };
    // blocking HTTP: off the runtime's threads
    let got = tokio::task::spawn_blocking(move || crate::coord::pair_lock::all(&coord)).await;
    let (locks, warning) = match got {
        Ok(Ok(m)) => (m, None),
        Ok(Err(e)) => (
            HashMap::new(),
            Some(format!("coordination: {e}; locks shown are this host's only")),
        ),
        Err(e) => (HashMap::new(), Some(format!("coordination: {e}"))),
    };
    *engine.coordination_warning.lock().unwrap() = warning;
    locks
}

/// The coordination engine's locks, read on this thread (a blocking request: for callers off
/// the runtime's threads, as the console's collector is); empty when none is configured or it
/// cannot be asked (the console then shows this host's locks, and says nothing on its screen).
pub fn coordinated_locks(engine: &Engine) -> HashMap<String, LockState> {
    engine
        .config
        .coordination
        .as_ref()
        .and_then(|c| crate::coord::pair_lock::all(c).ok())
        .unwrap_or_default()
}

/// `run_info` with the engine's view: a pair idle here may be run, or left locked, by another
/// instance.
pub fn run_info_with(state: &StateDir, pair: &Pair, engine_locks: &HashMap<String, LockState>) -> RunInfo {
    let mut run = run_info(state, pair);
    if run.status != RunState::Idle {
        return run;
    }
    match engine_locks.get(&pair.fingerprint()) {
        Some(LockState::Running(i)) => {
            run.status = if JobAction::from_label(&i.action) == Some(JobAction::Initialize) {
                RunState::Initializing
            } else {
                RunState::Running
            };
            run.runtime_secs = (i.started > 0).then(|| (now_unix() - i.started).max(0) as u64);
            run.lock = Some(i.clone());
        }
        Some(LockState::Stale(i)) => {
            run.status = RunState::Locked;
            run.lock = i.clone();
        }
        _ => {}
    }
    run
}

/// What a tree's members add to its root's status: the worst state among them, the oldest
/// checkpoint (the tree's lag), what needs a look, and each member's line.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub worst: Option<State>,
    pub oldest: Option<Checkpoint>,
    pub warnings: Vec<String>,
    pub children: Vec<ChildStatus>,
}

impl Tree {
    /// Rolls the members' statuses up: an Inconsistent or Unknown member makes the tree so (the
    /// reason names it); a member without a replica yet is a warning (the next update makes it);
    /// replicas whose source is gone are warnings too, never destroyed.
    pub fn of(members: &[(PairStatus, Option<Checkpoint>)], vanished: &[String]) -> Tree {
        let mut t = Tree::default();
        for (s, cp) in members {
            let named = |r: Option<&str>| format!("{}: {}", s.destination, r.unwrap_or("?"));
            match &s.assessed {
                State::Inconsistent(r) if !matches!(t.worst, Some(State::Inconsistent(_))) => {
                    t.worst = Some(State::Inconsistent(named(Some(r.as_str()))))
                }
                State::Unknown(r) if t.worst.is_none() => t.worst = Some(State::Unknown(named(Some(r.as_str())))),
                State::Uninitialized => t.warnings.push(format!(
                    "{} has no replica yet: the next update makes it",
                    s.destination
                )),
                _ => {}
            }
            if let Some(c) = cp {
                if t.oldest.as_ref().is_none_or(|o| c.created < o.created) {
                    t.oldest = Some(c.clone());
                }
            }
            t.children.push(ChildStatus {
                source: s.source.clone(),
                destination: s.destination.clone(),
                state: s.state,
                reason: s.reason.clone(),
                checkpoint: s.checkpoint.clone(),
                lag_secs: s.lag_secs,
            });
        }
        for v in vanished {
            t.warnings.push(format!(
                "{v} has no source any more: its replica stays until purged by hand"
            ));
        }
        t
    }
}

/// Combines both sides and the run info into one status line's worth of facts.
pub fn compose(
    pair: &Pair,
    src: Result<&VolumeInfo, &str>,
    dst: Result<&VolumeInfo, &str>,
    run: RunInfo,
) -> PairStatus {
    compose_tree(pair, src, dst, run, None)
}

/// `compose` for a recursive pair's root, its members rolled up (`Tree::of`).
pub fn compose_tree(
    pair: &Pair,
    src: Result<&VolumeInfo, &str>,
    dst: Result<&VolumeInfo, &str>,
    run: RunInfo,
    tree: Option<Tree>,
) -> PairStatus {
    let fp = pair.fingerprint();
    let o = &pair.options;
    let running = matches!(run.status, RunState::Running | RunState::Initializing);
    let mut over = None;
    let mut purgeable = (Vec::new(), Vec::new());
    let mut source_bytes = None;
    // a full send cut in an earlier run: the destination holds what arrived and no marks yet,
    // which is no foreign dataset but a pair still to initialize (and initialize sends the rest)
    let unmarked_partial;
    let first_cut = matches!(dst, Ok(d) if d.resume_token.is_some() && d.fingerprint.is_none());
    let dst = match dst {
        Ok(d) if first_cut => {
            unmarked_partial = VolumeInfo {
                exists: false,
                ..d.clone()
            };
            Ok(&unmarked_partial)
        }
        other => other,
    };
    let cut = matches!(dst, Ok(d) if d.resume_token.is_some()) && !running;
    let (state, checkpoint, ssnaps, dsnaps) = match (src, dst) {
        (Ok(s), Ok(d)) => {
            let a = assess_pair(pair, s, d);
            source_bytes = s.referenced;
            if let Some(cp) = a.checkpoint() {
                purgeable = (
                    retention::beyond_keep(s, &fp, o.keep, Some(&cp.name)),
                    retention::beyond_keep(d, &fp, o.keep, Some(&cp.name)),
                );
            }
            // a running job has taken its new snapshot and not pruned yet
            let allowance = u32::from(running);
            over = Some((
                over_keep(s, &fp, o.keep, allowance),
                over_keep(d, &fp, o.keep, allowance),
            ));
            let checkpoint = a.checkpoint().cloned();
            (a, checkpoint, s.snapshots.clone(), d.snapshots.clone())
        }
        (Err(e), _) | (_, Err(e)) => (State::Unknown(e.to_string()), None, vec![], vec![]),
    };
    let mut warnings = Vec::new();
    if cut {
        let verb = if first_cut { "initialize" } else { "update" };
        warnings.push(format!(
            "a receive cut in an earlier run is saved on the destination: the next {verb} sends only the rest"
        ));
    }
    if let Some(d) = crate::driver::for_kind(pair.kind) {
        warnings.extend(d.notes(&pair.source));
    }
    let mut children = Vec::new();
    // a tree is as good as its worst member, and as old as its oldest checkpoint
    let mut lag_from = checkpoint.clone();
    let state = match tree {
        Some(t) => {
            warnings.extend(t.warnings);
            children = t.children;
            if let (Some(o), Some(r)) = (&t.oldest, &checkpoint) {
                if o.created < r.created {
                    lag_from = Some(o.clone());
                }
            }
            match (state, t.worst) {
                (State::Synchronized(_), Some(w)) => w,
                (s, _) => s,
            }
        }
        None => state,
    };
    let now = now_unix();
    let mut future = false;
    let lag = lag_from.as_ref().map(|c| {
        if c.created > now.saturating_add(FUTURE_SLACK_SECS) {
            future = true;
            warnings.push(format!(
                "checkpoint {} was taken {} in the future by this machine's clock (clocks disagree?); lag unknown",
                c.name,
                crate::config::units::format_duration(Duration::from_secs(c.created.abs_diff(now)))
            ));
        } else if c.created <= 0 {
            warnings.push(format!(
                "checkpoint {} has an impossible creation time ({})",
                c.name, c.created
            ));
        }
        // clamped: a time from the future is no lag, an impossible one counts from 1970
        now.saturating_sub(c.created.max(0)).max(0) as u64
    });
    let lag_level = lag
        .map(|l| monitor::level(Duration::from_secs(l), o.wlag, o.clag))
        .unwrap_or(Level::Ok)
        .worst(if future { Level::Warning } else { Level::Ok });
    let run_level = run
        .runtime_secs
        .map(|r| monitor::level(Duration::from_secs(r), o.wrun, o.crun))
        .unwrap_or(Level::Ok);
    let (src_over, dst_over) = over.unwrap_or_default();
    for (n, side) in [(src_over, "source"), (dst_over, "destination")] {
        if n > 0 {
            warnings.push(format!(
                "retention: {n} ferry snapshot(s) beyond keep = {} on the {side}",
                o.keep
            ));
        }
    }
    let failing = run.retention.as_ref().filter(|r| r.failing());
    if let Some(r) = failing {
        warnings.push(format!(
            "retention failing since {} ({} runs): {}",
            crate::config::units::format_time(r.since),
            r.runs,
            r.left.join("; ")
        ));
    }
    let retention_behind = src_over + dst_over > 0 || failing.is_some();
    let retention_level = if retention_behind { Level::Warning } else { Level::Ok };
    let locked = run.status == RunState::Locked;
    let first = match &state {
        State::Inconsistent(_) => 'X',
        State::Unknown(_) => '?',
        _ if locked => 'L',
        _ if retention_behind => 'R',
        _ => '-',
    };
    let flags = format!("{first}{}{}", monitor::flag(lag_level), monitor::flag(run_level));
    let state_level = match &state {
        State::Synchronized(_) => Level::Ok,
        State::Uninitialized if run.status == RunState::Initializing => Level::Ok,
        State::Uninitialized => Level::Warning,
        State::Inconsistent(_) => Level::Critical,
        State::Unknown(_) => Level::Unknown,
    };
    let level = state_level
        .worst(lag_level)
        .worst(run_level)
        .worst(retention_level)
        .worst(if locked { Level::Critical } else { Level::Ok });
    PairStatus {
        kind: pair.kind,
        fingerprint: fp,
        source: pair.source.to_string(),
        destination: pair.destination.to_string(),
        state: state.kind(),
        reason: state.reason().map(String::from),
        checkpoint: checkpoint.map(|c| c.name),
        lag_secs: lag,
        lag_level,
        run_level,
        flags,
        level,
        source_over_keep: over.map(|o| o.0),
        destination_over_keep: over.map(|o| o.1),
        retention_failing: failing.is_some(),
        purgeable_source: purgeable.0,
        purgeable_destination: purgeable.1,
        source_bytes,
        warnings,
        assessed: state,
        run,
        source_snapshots: ssnaps,
        destination_snapshots: dsnaps,
        children,
    }
}

/// `ferry status`'s exit code: 1 when a pair is Inconsistent or Unknown (scripts act on it), else 0.
pub fn exit_code(st: &[PairStatus]) -> i32 {
    let bad = st
        .iter()
        .any(|s| matches!(s.assessed, State::Inconsistent(_) | State::Unknown(_)));
    i32::from(bad)
}

/// A recursive pair's members and the replicas left without a source, or why they were not listed.
type TreeListing = Result<(Vec<Pair>, Vec<String>), String>;

/// What one host's listing said about each volume asked about.
type Listing<'a> = HashMap<&'a crate::config::Endpoint, VolumeInfo>;

/// Status of snapshot pairs, in their order: one listing per host and kind, all hosts at once.
pub async fn snapshot_status(engine: &Engine, pairs: &[&Pair], locks: &HashMap<String, LockState>) -> Vec<PairStatus> {
    if pairs.is_empty() {
        return Vec::new();
    }
    // recursive pairs: their members, listed on each side (all trees at once)
    let trees: Vec<Option<TreeListing>> = futures::future::join_all(pairs.iter().map(|p| async move {
        if !p.recursive {
            return None;
        }
        let listing = async {
            let m = tree::members(engine, p).await?;
            let v = tree::vanished(engine, p, &m).await?;
            anyhow::Ok((m, v))
        };
        Some(match tokio::time::timeout(HOST_TIMEOUT, listing).await {
            Ok(Ok(x)) => Ok(x),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("the tree was not listed within {}s", HOST_TIMEOUT.as_secs())),
        })
    }))
    .await;
    let roots: Vec<Pair> = pairs.iter().map(|p| tree::root(p)).collect();
    // one listing per host and kind of volume
    let mut every: Vec<&Pair> = Vec::new();
    for (root, t) in roots.iter().zip(&trees) {
        every.push(root);
        if let Some(Ok((members, _))) = t {
            every.extend(members.iter());
        }
    }
    let mut by_host: BTreeMap<(String, Kind), Vec<&crate::config::Endpoint>> = BTreeMap::new();
    for p in every {
        for e in [&p.source, &p.destination] {
            let list = by_host.entry((e.host.clone(), p.kind)).or_default();
            if !list.contains(&e) {
                list.push(e);
            }
        }
    }
    let reads = by_host.iter().map(|((host, kind), datasets)| async move {
        let read = async {
            let ex = engine.executor(host).await?;
            snapshot_driver(*kind)?.inspect(&ex, datasets).await
        };
        let r = match tokio::time::timeout(HOST_TIMEOUT, read).await {
            Ok(Ok(infos)) => Ok(datasets.iter().cloned().zip(infos).collect::<HashMap<_, _>>()),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("host {host} did not answer within {}s", HOST_TIMEOUT.as_secs())),
        };
        ((host.clone(), *kind), r)
    });
    let results: HashMap<(String, Kind), Result<Listing, String>> =
        futures::future::join_all(reads).await.into_iter().collect();
    let side = |kind: Kind, e: &crate::config::Endpoint| -> Result<&VolumeInfo, &str> {
        match results.get(&(e.host.clone(), kind)) {
            Some(Ok(m)) => m.get(e).ok_or("not listed"),
            Some(Err(msg)) => Err(msg.as_str()),
            None => Err("not read"),
        }
    };
    roots
        .iter()
        .zip(&trees)
        .map(|(p, t)| {
            let run = run_info_with(&engine.state, p, locks);
            let tree = t.as_ref().map(|t| match t {
                Ok((members, vanished)) => {
                    let each: Vec<(PairStatus, Option<Checkpoint>)> = members
                        .iter()
                        .skip(1)
                        .map(|m| {
                            let st = compose(
                                m,
                                side(m.kind, &m.source),
                                side(m.kind, &m.destination),
                                RunInfo::idle(),
                            );
                            let cp = st.assessed.checkpoint().cloned();
                            (st, cp)
                        })
                        .collect();
                    Tree::of(&each, vanished)
                }
                Err(e) => Tree {
                    worst: Some(State::Unknown(format!("listing the tree failed: {e}"))),
                    ..Tree::default()
                },
            });
            compose_tree(p, side(p.kind, &p.source), side(p.kind, &p.destination), run, tree)
        })
        .collect()
}

/// A pair's status as metrics: the last success comes from the state dir's success record.
pub fn metrics(state: &StateDir, s: &PairStatus) -> monitor::metrics::PairMetrics {
    let success = LastResult::read(&state.success_path(&s.fingerprint)).or_else(|| s.run.last.clone().filter(|l| l.ok));
    monitor::metrics::PairMetrics {
        fingerprint: s.fingerprint.clone(),
        source: s.source.clone(),
        destination: s.destination.clone(),
        state: s.state,
        lag_secs: s.lag_secs,
        last_success: success.map(|l| l.finished),
        last_bytes: s.run.last.as_ref().map(|l| l.bytes),
        last_seconds: s.run.last.as_ref().map(|l| l.seconds),
        last_ok: s.run.last.as_ref().map(|l| l.ok),
        running: matches!(s.run.status, RunState::Running | RunState::Initializing),
        locked: s.run.status == RunState::Locked,
        runtime_secs: s.run.runtime_secs,
        over_keep: s
            .source_over_keep
            .zip(s.destination_over_keep)
            .map(|(a, b)| (a as u64, b as u64)),
        retention_failing: s.retention_failing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Snapshot;

    fn pair() -> Pair {
        let text = "state_dir = \"/tmp/x\"\n[hosts.store1]\naddress = \"127.0.0.1\"\n\
                    [[pair]]\nsource = \"store1:tank/dtaa\"\ndestination = \"backup/data\"\nkeep = 2\n";
        crate::config::parse(std::path::Path::new("t.toml"), text)
            .unwrap()
            .pairs
            .remove(0)
    }

    fn idle() -> RunInfo {
        RunInfo::idle()
    }

    fn vol(fp: Option<&str>, snaps: &[(&str, i64)]) -> VolumeInfo {
        VolumeInfo {
            exists: true,
            fingerprint: fp.map(String::from),
            snapshots: snaps
                .iter()
                .map(|(n, t)| Snapshot {
                    name: n.to_string(),
                    created: *t,
                    id: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn problem_pairs_stand_out() {
        let p = pair();
        let fp = p.fingerprint();
        let s = vol(None, &[]);
        let st = compose(&p, Ok(&s), Ok(&vol(Some("other"), &[])), idle());
        assert_eq!((st.flags.as_str(), st.level), ("X--", Level::Critical));
        assert_eq!(exit_code(&[st]), 1);
        let st = compose(&p, Err("host store1 did not answer"), Ok(&s), idle());
        assert_eq!((st.flags.as_str(), st.level), ("?--", Level::Unknown));
        assert_eq!(exit_code(&[st]), 1);
        // a source that does not exist is named as such
        let st = compose(&p, Ok(&VolumeInfo::default()), Ok(&vol(Some(&fp), &[])), idle());
        assert_eq!(st.reason.as_deref(), Some("source store1:tank/dtaa does not exist"));
        let snap = format!("ferry.{fp}.1");
        let ok = vol(Some(&fp), &[(&snap, now_unix() - 10)]);
        let st = compose(&p, Ok(&ok), Ok(&ok), idle());
        assert_eq!((st.flags.as_str(), st.level), ("---", Level::Ok));
        assert_eq!(exit_code(&[st]), 0);
    }

    #[test]
    fn a_cut_receive_saved_on_the_destination_is_said_and_a_cut_first_send_is_uninitialized() {
        let p = pair();
        let fp = p.fingerprint();
        let src = vol(None, &[(&format!("ferry.{fp}.1"), now_unix() - 10)]);
        // a full send cut: no marks yet, only what arrived and its token
        let partial = VolumeInfo {
            resume_token: Some("1-abc-def".into()),
            ..vol(None, &[])
        };
        let st = compose(&p, Ok(&src), Ok(&partial), idle());
        assert_eq!(st.state, crate::model::StateKind::Uninitialized, "{:?}", st.reason);
        assert!(
            st.warnings
                .iter()
                .any(|w| w.contains("the next initialize sends only the rest")),
            "{:?}",
            st.warnings
        );
        // an incremental cut: Synchronized at the checkpoint, the saved rest said
        let snap = format!("ferry.{fp}.1");
        let ok = vol(Some(&fp), &[(&snap, now_unix() - 10)]);
        let cut = VolumeInfo {
            resume_token: Some("1-abc-def".into()),
            ..ok.clone()
        };
        let st = compose(&p, Ok(&ok), Ok(&cut), idle());
        assert_eq!(st.state, crate::model::StateKind::Synchronized);
        assert!(
            st.warnings
                .iter()
                .any(|w| w.contains("the next update sends only the rest")),
            "{:?}",
            st.warnings
        );
        let st = compose(&p, Ok(&ok), Ok(&ok), idle());
        assert!(st.warnings.is_empty(), "{:?}", st.warnings);
    }

    #[test]
    fn lag_from_odd_creation_times_is_clamped_and_flagged() {
        let p = pair();
        let fp = p.fingerprint();
        let snap = format!("ferry.{fp}.1");
        let future = vol(Some(&fp), &[(&snap, now_unix() + 86400)]);
        let st = compose(&p, Ok(&future), Ok(&future), idle());
        assert_eq!(st.lag_secs, Some(0));
        assert_eq!((st.lag_level, st.level), (Level::Warning, Level::Warning));
        assert_eq!(st.flags, "-+-");
        assert!(st.warnings[0].contains("in the future"), "{:?}", st.warnings);
        assert!(st.check(&p).summary.contains("in the future"));
        let absurd = vol(Some(&fp), &[(&snap, i64::MIN)]);
        let st = compose(&p, Ok(&absurd), Ok(&absurd), idle());
        assert!(st.lag_secs.unwrap() >= now_unix() as u64, "{:?}", st.lag_secs);
        assert_eq!(st.level, Level::Critical);
        assert!(st.warnings[0].contains("impossible creation time"), "{:?}", st.warnings);
    }

    #[test]
    fn retention_behind_warns() {
        let p = pair();
        let fp = p.fingerprint();
        let now = now_unix();
        let names: Vec<String> = (1..=4).map(|i| format!("ferry.{fp}.{i}")).collect();
        let four: Vec<(&str, i64)> = names.iter().map(|n| (n.as_str(), now - 10)).collect();
        let s = vol(None, &four);
        let d = vol(Some(&fp), &four[2..]);
        let st = compose(&p, Ok(&s), Ok(&d), idle());
        assert_eq!((st.source_over_keep, st.destination_over_keep), (Some(2), Some(0)));
        assert_eq!((st.flags.as_str(), st.level), ("R--", Level::Warning));
        assert!(st.warnings[0].contains("2 ferry snapshot(s) beyond keep = 2 on the source"));
        // a running job may hold one more
        let mut run = idle();
        run.status = RunState::Running;
        let st = compose(&p, Ok(&vol(None, &four[1..])), Ok(&d), run);
        assert_eq!(st.source_over_keep, Some(0));
        // failing retention shows even within keep
        let mut run = idle();
        run.retention = Some(retention::Record {
            since: 1,
            last: 2,
            runs: 2,
            left: vec!["store1:tank/dtaa@x: dataset is busy".into()],
        });
        let st = compose(&p, Ok(&d), Ok(&d), run);
        assert!(st.retention_failing);
        assert_eq!((st.flags.as_str(), st.level), ("R--", Level::Warning));
        assert!(st.warnings[0].contains("dataset is busy"), "{:?}", st.warnings);
    }
}
