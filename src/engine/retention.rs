//! Retention: which of a pair's ferry snapshots go beyond `keep` on a side (pure, shared by
//! update and purge), destroying them one by one with each outcome reported, and the pair's
//! record of retention that leaves snapshots behind (`retention.json` in its state dir).

use serde::{Deserialize, Serialize};

use crate::config::Endpoint;
use crate::driver::{Destroy, Driver, DriverError, Snapshot, VolumeInfo};
use crate::exec::Executor;
use crate::state::{now_unix, write_atomic, StateDir};

use super::assess::ours;

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

/// How many of our snapshots a side holds beyond `keep` (`allowance` more are tolerated: a
/// running job has taken its new snapshot and not pruned yet).
pub fn over_keep(info: &VolumeInfo, fp: &str, keep: u32, allowance: u32) -> usize {
    ours(info, fp).len().saturating_sub(keep as usize + allowance as usize)
}

/// The destination's snapshots after an incremental receive from `checkpoint` to `new`
/// (`zfs send -I`): its own up to the checkpoint, then every source snapshot after the
/// checkpoint (the intermediates travel too, where the kind `carried` them), then the new one.
/// Saves listing it again.
pub fn after_receive(dst: &VolumeInfo, src: &VolumeInfo, checkpoint: &str, new: Snapshot, carried: bool) -> VolumeInfo {
    let upto = |list: &[Snapshot]| list.iter().position(|s| s.name == checkpoint);
    let mut snapshots: Vec<Snapshot> = match upto(&dst.snapshots) {
        Some(i) => dst.snapshots[..=i].to_vec(),
        None => dst.snapshots.clone(),
    };
    if let Some(i) = upto(&src.snapshots).filter(|_| carried) {
        snapshots.extend(src.snapshots[i + 1..].iter().filter(|s| s.name != new.name).cloned());
    }
    snapshots.push(new);
    VolumeInfo {
        snapshots,
        ..dst.clone()
    }
}

/// What retention did on one side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Destroyed by this run.
    pub destroyed: Vec<String>,
    /// Still there (busy, held); the next run tries again.
    pub left: Vec<Left>,
}

/// A snapshot retention could not destroy, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Left {
    pub snapshot: String,
    pub error: String,
    /// Kept on purpose (a user hold): retrying within the run is no use, it stays until released.
    #[serde(skip)]
    pub held: bool,
}

/// What retention did on both sides of a pair in one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub source: Pruned,
    pub destination: Pruned,
}

impl Retention {
    /// One clause for a run's summary, empty when retention had nothing to do: what was really
    /// destroyed on each side and how many could not be.
    pub fn summary(&self) -> String {
        let (s, d) = (self.source.destroyed.len(), self.destination.destroyed.len());
        let left = self.source.left.len() + self.destination.left.len();
        let mut parts = Vec::new();
        if s + d > 0 {
            parts.push(format!(
                "{s} old snapshot(s) destroyed on the source, {d} on the destination"
            ));
        }
        if left > 0 {
            parts.push(format!(
                "{left} old snapshot(s) could not be destroyed (tried again next run)"
            ));
        }
        parts.join("; ")
    }

    /// Each snapshot left behind, as `host:dataset@snapshot: why` for a warning (`source` and
    /// `destination` from `Engine::snapshots_at`).
    pub fn left_lines(&self, source: &str, destination: &str) -> Vec<String> {
        let side = |at: &str, p: &Pruned| {
            p.left
                .iter()
                .map(|l| format!("{at}{}: {}", l.snapshot, l.error))
                .collect::<Vec<_>>()
        };
        let mut v = side(source, &self.source);
        v.extend(side(destination, &self.destination));
        v
    }
}

/// `prune`, trying again half a second apart (up to `attempts` in all) while some are still there:
/// a sender that just ended may hold one (busy) a moment. A held one (a user hold) is not tried
/// again: a hold does not go away by waiting, and what it keeps is reported with its reason.
pub async fn destroy_until_gone(
    driver: &dyn Driver,
    ex: &Executor,
    vol: &Endpoint,
    snaps: &[String],
    attempts: usize,
) -> Pruned {
    let mut done = Pruned::default();
    let mut held = Vec::new();
    let mut todo = snaps.to_vec();
    let mut busy = Vec::new();
    for attempt in 0..attempts.max(1) {
        if todo.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        let p = prune(driver, ex, vol, &todo).await;
        done.destroyed.extend(p.destroyed);
        let (h, b): (Vec<Left>, Vec<Left>) = p.left.into_iter().partition(|l| l.held);
        held.extend(h);
        todo = b.iter().map(|l| l.snapshot.clone()).collect();
        busy = b;
    }
    // in the order asked, as one prune reports them
    let mut left: Vec<Left> = held.into_iter().chain(busy).collect();
    left.sort_by_key(|l| snaps.iter().position(|s| *s == l.snapshot));
    done.left = left;
    done
}

/// Runs `op` until it succeeds, up to `attempts` times half a second apart; the last error stays.
pub async fn retry<F, Fut>(attempts: usize, mut op: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut last = Ok(());
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        last = op().await;
        if last.is_ok() {
            break;
        }
    }
    last
}

const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// Destroys each snapshot independently; one that cannot go does not stop the others.
pub async fn prune(driver: &dyn Driver, ex: &Executor, vol: &Endpoint, snaps: &[String]) -> Pruned {
    if snaps.is_empty() {
        return Pruned::default();
    }
    match driver.destroy_snapshots(ex, vol, snaps).await {
        Ok(outcomes) => {
            let mut p = Pruned::default();
            for (name, o) in outcomes {
                match o {
                    Destroy::Destroyed => p.destroyed.push(name),
                    Destroy::Absent => {}
                    Destroy::Failed(error) => p.left.push(Left {
                        snapshot: name,
                        held: matches!(error, DriverError::Held(_)),
                        error: error.to_string(),
                    }),
                }
            }
            p
        }
        Err(e) => Pruned {
            destroyed: vec![],
            left: snaps
                .iter()
                .map(|s| Left {
                    snapshot: s.clone(),
                    error: format!("{e:#}"),
                    held: false,
                })
                .collect(),
        },
    }
}

/// Retention that leaves snapshots behind, run after run, until one run leaves none.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Unix time of the first run in a row that left snapshots behind.
    pub since: i64,
    /// Unix time of the last such run.
    pub last: i64,
    /// How many runs in a row left snapshots behind.
    pub runs: u32,
    /// What the last run left: `host:dataset@snapshot: why`.
    pub left: Vec<String>,
}

impl Record {
    /// Failing for longer than a run interval: a later run could not destroy them either.
    pub fn failing(&self) -> bool {
        self.runs >= 2
    }
}

fn path(state: &StateDir, fp: &str) -> std::path::PathBuf {
    state.retention_path(fp)
}

pub fn read(state: &StateDir, fp: &str) -> Option<Record> {
    serde_json::from_slice(&crate::state::files::read_small(&path(state, fp)).ok()?).ok()
}

/// Notes one run's retention: the record goes when nothing was left, else it counts the run
/// (keeping when the first failure was).
pub fn note(state: &StateDir, fp: &str, left: Vec<String>) -> std::io::Result<()> {
    let p = path(state, fp);
    if left.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let now = now_unix();
    let rec = match read(state, fp) {
        Some(r) => Record {
            since: r.since,
            last: now,
            runs: r.runs.saturating_add(1),
            left,
        },
        None => Record {
            since: now,
            last: now,
            runs: 1,
            left,
        },
    };
    // status and monitoring read it after a crash too
    write_atomic(&p, &serde_json::to_vec_pretty(&rec).expect("record serializes"), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(names: &[&str]) -> VolumeInfo {
        VolumeInfo {
            exists: true,
            snapshots: names
                .iter()
                .enumerate()
                .map(|(i, n)| Snapshot {
                    name: n.to_string(),
                    created: i as i64,
                    id: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_newest_and_checkpoint_and_foreign() {
        let info = vol(&[
            "ferry.fp.1",
            "hourly",
            "ferry.fp.2",
            "ferry.zz.1",
            "ferry.fp.3",
            "ferry.fp.4",
        ]);
        assert_eq!(
            beyond_keep(&info, "fp", 2, Some("ferry.fp.4")),
            vec!["ferry.fp.1", "ferry.fp.2"]
        );
        // an old checkpoint (destination behind) is never listed
        assert_eq!(beyond_keep(&info, "fp", 2, Some("ferry.fp.1")), vec!["ferry.fp.2"]);
        assert!(beyond_keep(&info, "fp", 10, None).is_empty());
        assert_eq!(over_keep(&info, "fp", 2, 0), 2);
        assert_eq!(over_keep(&info, "fp", 2, 1), 1);
        assert_eq!(over_keep(&info, "fp", 5, 0), 0);
    }

    #[test]
    fn destination_after_an_incremental_receive() {
        let src = vol(&["ferry.fp.1", "ferry.fp.2", "hourly", "ferry.fp.3"]);
        // the destination had a snapshot after the checkpoint that -F rolled away
        let dst = vol(&["ferry.fp.0", "ferry.fp.1", "ferry.fp.2", "mine"]);
        let new = Snapshot {
            name: "ferry.fp.4".into(),
            created: 9,
            id: None,
        };
        let after = after_receive(&dst, &src, "ferry.fp.2", new.clone(), true);
        let names: Vec<&str> = after.snapshots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ferry.fp.0",
                "ferry.fp.1",
                "ferry.fp.2",
                "hourly",
                "ferry.fp.3",
                "ferry.fp.4"
            ]
        );
        assert_eq!(
            beyond_keep(&after, "fp", 2, Some("ferry.fp.4")),
            ["ferry.fp.0", "ferry.fp.1", "ferry.fp.2"]
        );
        // a kind whose incremental stream holds only the new snapshot (btrfs send -p)
        let after = after_receive(&dst, &src, "ferry.fp.2", new, false);
        let names: Vec<&str> = after.snapshots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ferry.fp.0", "ferry.fp.1", "ferry.fp.2", "ferry.fp.4"]);
        assert_eq!(
            beyond_keep(&after, "fp", 2, Some("ferry.fp.4")),
            ["ferry.fp.0", "ferry.fp.1"]
        );
    }

    #[test]
    fn record_counts_runs_until_a_clean_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.ensure_pair_dir("fp").unwrap();
        assert_eq!(read(&state, "fp"), None);
        note(&state, "fp", vec!["h:p/d@a: busy".into()]).unwrap();
        let first = read(&state, "fp").unwrap();
        assert_eq!(first.runs, 1);
        assert!(!first.failing());
        note(&state, "fp", vec!["h:p/d@a: busy".into()]).unwrap();
        let second = read(&state, "fp").unwrap();
        assert_eq!((second.runs, second.since), (2, first.since));
        assert!(second.failing());
        note(&state, "fp", vec![]).unwrap();
        assert_eq!(read(&state, "fp"), None);
        note(&state, "fp", vec![]).unwrap();
    }
}
