//! purge: ferry's own replication snapshots of one pair beyond `keep` on both sides (never the
//! checkpoint, never a snapshot that is not this pair's), and `purge --all`: the destination
//! replica, the pair's source snapshots and its state files, so the pair can be initialized again.

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::config::Pair;
use crate::driver::zfs::{commands, Zfs};
use crate::driver::{VolumeDriver, VolumeInfo};
use crate::exec::Executor;
use crate::state::lock::{self, LockError, LockState};
use crate::state::log::PairLog;

use super::assess::{assess, ours, State};
use super::Engine;

/// What a purge destroys (or, without `--yes`, would destroy).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Purge {
    pub source: String,
    pub destination: String,
    /// Snapshot names (the part after `@`) on the source.
    pub source_snapshots: Vec<String>,
    pub destination_snapshots: Vec<String>,
    /// The checkpoint, which is always kept (none for `--all`).
    pub checkpoint: Option<String>,
    /// `--all`: the destination dataset itself goes.
    pub destroy_destination: bool,
    /// Whether anything was destroyed (false for a listing without `--yes`).
    pub done: bool,
}

/// The snapshots of one side beyond `keep`, oldest first; the checkpoint and anything not ours never.
pub fn beyond_keep(info: &VolumeInfo, fp: &str, keep: u32, checkpoint: Option<&str>) -> Vec<String> {
    let ours: Vec<&str> = ours(info, fp).into_iter().map(|s| s.name.as_str()).collect();
    let excess = ours.len().saturating_sub(keep as usize);
    ours[..excess]
        .iter()
        .filter(|n| Some(**n) != checkpoint)
        .map(|n| n.to_string())
        .collect()
}

async fn read(engine: &Engine, pair: &Pair) -> Result<(Executor, Executor, VolumeInfo, VolumeInfo)> {
    let (src, dst) = engine.executors(pair).await?;
    let (sl, dl) = ([pair.source.path.as_str()], [pair.destination.path.as_str()]);
    let (s, d) = tokio::join!(Zfs.inspect(&src, &sl), Zfs.inspect(&dst, &dl));
    let s = s.context("source")?.remove(0);
    let d = d.context("destination")?.remove(0);
    Ok((src, dst, s, d))
}

/// Holds the pair's lock for a purge that destroys: never while a job runs.
fn take_lock(engine: &Engine, pair: &Pair, stale_ok: bool) -> Result<lock::Lock> {
    let fp = pair.fingerprint();
    engine.state.ensure_pair_dir(&fp)?;
    let path = engine.state.lock_path(&fp);
    if stale_ok {
        if let LockState::Stale(_) = lock::inspect(&path) {
            lock::unlock(&path).map_err(|e| anyhow!("{e}"))?;
        }
    }
    lock::acquire(&path, "purge").map_err(|e| match e {
        LockError::Running(_) => anyhow!("{e}: purge refuses while a job runs"),
        e => anyhow!("{e}"),
    })
}

/// Destroys snapshots, retrying a while: a sender that just ended may still hold one ("busy").
async fn destroy_with_retry(ex: &Executor, ds: &str, snaps: &[String]) -> Result<()> {
    let mut last = None;
    for _ in 0..10 {
        // what is already gone stays gone: destroy what is still there
        let present = Zfs.inspect(ex, &[ds]).await?.remove(0);
        let left: Vec<String> = snaps
            .iter()
            .filter(|s| present.snapshots.iter().any(|p| &p.name == *s))
            .cloned()
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        match Zfs.destroy_snapshots(ex, ds, &left).await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(last.unwrap_or_else(|| anyhow!("destroying snapshots of {ds} failed")))
}

/// `purge DEST [--yes]`: lists (and with `yes` destroys) this pair's snapshots beyond `keep`.
pub async fn purge(engine: &Engine, pair: &Pair, yes: bool) -> Result<Purge> {
    let fp = pair.fingerprint();
    let (src, dst, s, d) = read(engine, pair).await?;
    let a = assess(&fp, &s, &d);
    let checkpoint = match a.state {
        State::Synchronized => a.checkpoint.expect("synchronized has a checkpoint").name,
        other => bail!(
            "pair is {}{}: without a checkpoint purge keeps every snapshot (`ferry purge --all {} --yes` starts the pair over)",
            other.word(),
            other.reason().map(|r| format!(" ({r})")).unwrap_or_default(),
            Engine::dest_name(pair)
        ),
    };
    let keep = pair.options.keep;
    let mut plan = Purge {
        source: pair.source.to_string(),
        destination: pair.destination.to_string(),
        source_snapshots: beyond_keep(&s, &fp, keep, Some(&checkpoint)),
        destination_snapshots: beyond_keep(&d, &fp, keep, Some(&checkpoint)),
        checkpoint: Some(checkpoint),
        ..Default::default()
    };
    if !yes || (plan.source_snapshots.is_empty() && plan.destination_snapshots.is_empty()) {
        return Ok(plan);
    }
    let held = take_lock(engine, pair, false)?;
    let log = PairLog::new(&engine.state.log_path(&fp), engine.verbose);
    let result = async {
        for (ex, ds, snaps) in [
            (&src, pair.source.path.as_str(), &plan.source_snapshots),
            (&dst, pair.destination.path.as_str(), &plan.destination_snapshots),
        ] {
            if !snaps.is_empty() {
                log.line(&format!(
                    "purge on {}: {}",
                    ex.host(),
                    commands::destroy_snapshots(ds, snaps)?
                ));
                destroy_with_retry(ex, ds, snaps).await?;
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    held.release();
    if let Err(e) = &result {
        log.line(&format!("purge FAILED: {e:#}"));
    }
    result?;
    plan.done = true;
    Ok(plan)
}

/// `purge --all DEST [--yes]`: the destination replica, this pair's source snapshots and its state
/// files (lock, progress, last result) go; the log stays. Refused while a job runs, and refused when
/// the destination belongs to something else (another pair, or a dataset ferry never wrote).
pub async fn purge_all(engine: &Engine, pair: &Pair, yes: bool) -> Result<Purge> {
    let fp = pair.fingerprint();
    if let LockState::Running(i) = lock::inspect(&engine.state.lock_path(&fp)) {
        bail!(
            "already running: {} (pid {}): purge --all refuses while a job runs",
            i.action,
            i.pid
        );
    }
    let (src, dst, s, d) = read(engine, pair).await?;
    if d.exists {
        let ours_dst = !ours(&d, &fp).is_empty();
        match d.fingerprint.as_deref() {
            Some(f) if f == fp => {}
            Some(other) => bail!(
                "destination {} belongs to another pair (fingerprint {other}); purge --all destroys only this pair's replica",
                pair.destination
            ),
            // a run that died between receive and recording: the replica is ours by its snapshots
            None if ours_dst => {}
            None => bail!(
                "destination {} is not a ferry replica (no ferry:fingerprint); purge --all destroys only this pair's replica",
                pair.destination
            ),
        }
    }
    let mut plan = Purge {
        source: pair.source.to_string(),
        destination: pair.destination.to_string(),
        source_snapshots: ours(&s, &fp).into_iter().map(|x| x.name.clone()).collect(),
        destination_snapshots: ours(&d, &fp).into_iter().map(|x| x.name.clone()).collect(),
        checkpoint: None,
        destroy_destination: d.exists,
        done: false,
    };
    if !yes {
        return Ok(plan);
    }
    let held = take_lock(engine, pair, true)?;
    let log = PairLog::new(&engine.state.log_path(&fp), engine.verbose);
    let result = async {
        if plan.destroy_destination {
            let ds = pair.destination.path.as_str();
            log.line(&format!(
                "purge --all on {}: {}",
                dst.host(),
                commands::destroy_dataset(ds)?
            ));
            let mut last = None;
            for _ in 0..10 {
                match Zfs.destroy_dataset(&dst, ds).await {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) if format!("{e:#}").contains("does not exist") => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            if let Some(e) = last {
                return Err(e);
            }
        }
        if !plan.source_snapshots.is_empty() {
            let ds = pair.source.path.as_str();
            log.line(&format!(
                "purge --all on {}: {}",
                src.host(),
                commands::destroy_snapshots(ds, &plan.source_snapshots)?
            ));
            destroy_with_retry(&src, ds, &plan.source_snapshots).await?;
        }
        for p in [
            engine.state.progress_path(&fp),
            engine.state.last_path(&fp),
            engine.state.success_path(&fp),
        ] {
            let _ = std::fs::remove_file(p);
        }
        log.line("purge --all done: the pair can be initialized again");
        Ok::<_, anyhow::Error>(())
    }
    .await;
    held.release();
    if let Err(e) = &result {
        log.line(&format!("purge --all FAILED: {e:#}"));
    }
    result?;
    plan.done = true;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Snapshot;

    #[test]
    fn keeps_newest_and_checkpoint_and_foreign() {
        let names = [
            "ferry.fp.1",
            "hourly",
            "ferry.fp.2",
            "ferry.zz.1",
            "ferry.fp.3",
            "ferry.fp.4",
        ];
        let info = VolumeInfo {
            exists: true,
            snapshots: names
                .iter()
                .enumerate()
                .map(|(i, n)| Snapshot {
                    name: n.to_string(),
                    created: i as i64,
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            beyond_keep(&info, "fp", 2, Some("ferry.fp.4")),
            vec!["ferry.fp.1", "ferry.fp.2"]
        );
        // an old checkpoint (destination behind) is never listed
        assert_eq!(beyond_keep(&info, "fp", 2, Some("ferry.fp.1")), vec!["ferry.fp.2"]);
        assert!(beyond_keep(&info, "fp", 10, None).is_empty());
    }
}
