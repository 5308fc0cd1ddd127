//! purge: ferry's own replication snapshots of one pair beyond `keep` on both sides (never the
//! checkpoint, never a snapshot that is not this pair's), and `purge --all`: the destination
//! replica, the pair's source snapshots and its state files, so the pair can be initialized again.

use anyhow::{anyhow, bail, Context, Result};

use crate::config::{Endpoint, Pair};
use crate::driver::{snapshot_driver, Descendant, Driver, Under, VolumeInfo};
use crate::exec::Executor;
use crate::state::lock::{self, LockState};
use crate::state::log::PairLog;

use crate::model::{JobAction, Phase};

use super::assess::{assess_pair, ours, ours_of, State};
use super::job::Job;
use super::retention::{self, beyond_keep, retry};
use super::types::Purge;
use super::Engine;

async fn read(engine: &Engine, pair: &Pair) -> Result<(Executor, Executor, VolumeInfo, VolumeInfo)> {
    let (src, dst) = engine.executors(pair).await?;
    let (sl, dl) = ([&pair.source], [&pair.destination]);
    let driver = snapshot_driver(pair.kind)?;
    let (s, d) = tokio::join!(driver.inspect(&src, &sl), driver.inspect(&dst, &dl));
    let s = s.context("source")?.remove(0);
    let d = d.context("destination")?.remove(0);
    Ok((src, dst, s, d))
}

/// Tries to destroy a snapshot still there this many times, half a second apart: a sender that
/// just ended may hold it (busy) a moment.
const ATTEMPTS: usize = 10;

/// Destroys on each side and notes in the plan what really went and what is left.
async fn destroy_sides(driver: &dyn Driver, log: &PairLog, plan: &mut Purge, sides: [(&Executor, &Endpoint, bool); 2]) {
    for (ex, vol, source) in sides {
        let (list, at) = if source {
            (&mut plan.source_snapshots, plan.source_at.as_str())
        } else {
            (&mut plan.destination_snapshots, plan.destination_at.as_str())
        };
        if list.is_empty() {
            continue;
        }
        log.line(&format!("purge: destroying {}", Engine::named(at, list)));
        let p = retention::destroy_until_gone(driver, ex, vol, list, ATTEMPTS).await;
        *list = p.destroyed;
        for l in p.left {
            let line = format!("{at}{}: {}", l.snapshot, l.error);
            log.line(&format!("purge left {line}"));
            plan.left.push(line);
        }
    }
}

/// `purge DEST [--yes]`: lists (and with `yes` destroys) this pair's snapshots beyond `keep`.
pub async fn purge(engine: &Engine, pair: &Pair, yes: bool) -> Result<Purge> {
    let fp = pair.fingerprint();
    let (src, dst, s, d) = read(engine, pair).await?;
    let a = assess_pair(pair, &s, &d);
    let checkpoint = match a {
        State::Synchronized(cp) => cp.name,
        other => bail!(
            "pair is {}{}: without a checkpoint purge keeps every snapshot (`{}` starts the pair over)",
            other.word(),
            other.reason().map(|r| format!(" ({r})")).unwrap_or_default(),
            engine.command("purge --all --yes", Some(pair))
        ),
    };
    let keep = pair.options.keep;
    let (source_at, destination_at) = Engine::snapshots_at(pair);
    let mut plan = Purge {
        source: pair.source.to_string(),
        destination: pair.destination.to_string(),
        source_at,
        destination_at,
        source_snapshots: [beyond_keep(&s, &fp, keep, Some(&checkpoint)), s.leftovers.clone()].concat(),
        destination_snapshots: [beyond_keep(&d, &fp, keep, Some(&checkpoint)), d.leftovers.clone()].concat(),
        checkpoint: Some(checkpoint),
        ..Default::default()
    };
    if !yes || (plan.source_snapshots.is_empty() && plan.destination_snapshots.is_empty()) {
        return Ok(plan);
    }
    Job::run(engine, pair, JobAction::Purge, async |job| {
        job.phase(Phase::Destroying, None);
        let sides = [(&src, &pair.source, true), (&dst, &pair.destination, false)];
        destroy_sides(snapshot_driver(pair.kind)?, &job.log, &mut plan, sides).await;
        if plan.left.is_empty() {
            // nothing beyond keep is left: retention is no longer behind
            if let Err(e) = retention::note(&engine.state, &fp, vec![]) {
                job.log.line(&format!("could not clear the retention record: {e}"));
            }
        }
        Ok(())
    })
    .await?;
    plan.done = true;
    Ok(plan)
}

/// What under the destination is not this pair's: child datasets (another pair's replica, or
/// anyone's) and snapshots that are neither ours nor came from the source (`zfs send -I` carries
/// the source's other snapshots along). Returns the names, each with what it is.
fn foreign(fp: &str, source: &VolumeInfo, under: &[Descendant]) -> Vec<String> {
    let prefix = crate::model::snapshot_prefix(fp);
    let mut found = Vec::new();
    for d in under {
        match &d.under {
            // a child's snapshots go with the child, which is named already
            Under::Itself | Under::ChildSnapshot => {}
            Under::Child => found.push(match &d.fingerprint {
                Some(f) if f != fp => format!("volume {} (replica of another pair, fingerprint {f})", d.name),
                _ => format!("volume {}", d.name),
            }),
            Under::Snapshot(snap) => {
                let from_source = source.snapshots.iter().any(|s| s.name == *snap);
                if !snap.starts_with(&prefix) && !from_source {
                    found.push(format!("snapshot {} (not on the source)", d.name));
                }
            }
        }
    }
    found
}

/// This pair's snapshots on the source, and the checkpoints whose snapshot is gone but whose
/// bookmark is left: destroying one of ferry's snapshots destroys its bookmark along.
fn ours_with_bookmarks(s: &VolumeInfo, fp: &str) -> Vec<String> {
    let mut names: Vec<String> = ours(s, fp).into_iter().map(|x| x.name.clone()).collect();
    for b in ours_of(&s.bookmarks, fp) {
        if !names.contains(&b.name) {
            names.push(b.name.clone());
        }
    }
    names
}

/// `purge --all DEST [--yes]`: the destination replica, this pair's source snapshots and its
/// success and retention records go; the log stays, and the job's result says it was purged. Refused while a job runs, and refused when
/// the destination belongs to something else (another pair, or a dataset ferry never wrote).
pub async fn purge_all(engine: &Engine, pair: &Pair, yes: bool) -> Result<Purge> {
    let fp = pair.fingerprint();
    if pair.recursive {
        bail!(
            "purge --all of a recursive pair is not built yet: destroy the replica {} and every volume below it by hand, then `{}`",
            pair.destination,
            engine.command("initialize", Some(pair))
        );
    }
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
                "destination {} is not a ferry replica (no ferry fingerprint); purge --all destroys only this pair's replica",
                pair.destination
            ),
        }
    }
    let dst_ds = pair.destination.path.as_str();
    let driver = snapshot_driver(pair.kind)?;
    let under = if d.exists {
        driver
            .descendants(&dst, &pair.destination)
            .await
            .context("destination")?
    } else {
        Vec::new()
    };
    let found = foreign(&fp, &s, &under);
    if !found.is_empty() {
        let shown = found.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
        let more = found.len().saturating_sub(10);
        bail!(
            "purge --all refuses: under destination {} there is what is not this pair's: {shown}{}; move or destroy it by hand first",
            pair.destination,
            if more > 0 { format!(" and {more} more") } else { String::new() }
        );
    }
    // every snapshot of the destination goes one by one, then the dataset without -r: if
    // something appeared under it since the check, zfs refuses instead of destroying it
    let dst_snaps: Vec<String> = under
        .iter()
        .filter_map(|u| match &u.under {
            Under::Snapshot(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    let (source_at, destination_at) = Engine::snapshots_at(pair);
    let mut plan = Purge {
        source: pair.source.to_string(),
        destination: pair.destination.to_string(),
        source_at,
        destination_at,
        source_snapshots: ours_with_bookmarks(&s, &fp),
        destination_snapshots: ours(&d, &fp).into_iter().map(|x| x.name.clone()).collect(),
        checkpoint: None,
        destroy_destination: d.exists,
        done: false,
        left: vec![],
    };
    if !yes {
        return Ok(plan);
    }
    // a dead job's lock goes: purge --all starts the pair over, whatever that job left
    if let LockState::Stale(_) = lock::inspect(&engine.state.lock_path(&fp)) {
        lock::unlock(&engine.state.lock_path(&fp)).map_err(|e| anyhow!("{e}"))?;
    }
    Job::run(engine, pair, JobAction::PurgeAll, async |job| {
        let log = &job.log;
        job.phase(Phase::Destroying, None);
        if plan.destroy_destination {
            log.line(&format!("purge --all on {}: destroying {dst_ds}", dst.host()));
            let p = retention::destroy_until_gone(driver, &dst, &pair.destination, &dst_snaps, ATTEMPTS).await;
            if let Some(l) = p.left.first() {
                bail!(
                    "destroying {}{} failed: {}; the destination stays",
                    plan.destination_at,
                    l.snapshot,
                    l.error
                );
            }
            // idempotent: a destination already gone is success
            retry(ATTEMPTS, || driver.destroy_volume(&dst, &pair.destination)).await?;
        }
        if !plan.source_snapshots.is_empty() {
            log.line(&format!(
                "purge --all: destroying {}",
                Engine::named(&plan.source_at, &plan.source_snapshots)
            ));
        }
        let p = retention::destroy_until_gone(driver, &src, &pair.source, &plan.source_snapshots, ATTEMPTS).await;
        plan.source_snapshots = p.destroyed;
        for l in p.left {
            plan.left.push(format!("{}{}: {}", plan.source_at, l.snapshot, l.error));
        }
        // the job's own progress and result are written when it finishes: they say it was purged
        for p in [engine.state.success_path(&fp), engine.state.retention_path(&fp)] {
            let _ = std::fs::remove_file(p);
        }
        if plan.left.is_empty() {
            log.line("purge --all done: the pair can be initialized again");
        } else {
            log.line(&format!(
                "purge --all done, but left on the source: {}; the pair can be initialized again",
                plan.left.join("; ")
            ));
        }
        Ok::<_, anyhow::Error>(())
    })
    .await?;
    plan.done = true;
    Ok(plan)
}
