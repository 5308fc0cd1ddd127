//! What `cluster status` says: from the journal (depth, pending and failed fan-outs, each
//! volume's lag: the age of the oldest change not yet applied to it), the lock (who works the
//! cluster) and the figures the running instance writes after each cycle (`status.json`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Cluster;
use crate::state::object_journal::{now_ms, State};

use crate::state::cluster_journal::Journal;
use crate::state::records::Journaled;

/// The running instance's running totals and last cycle.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CycleFigures {
    pub cycles: u64,
    /// Changes journaled (after coalescing), applied (fan-outs done) and failed (attempts).
    pub journaled: u64,
    pub applied: u64,
    pub failed: u64,
    /// Unix ms of the last cycle's end, and how long it took.
    pub last_cycle_ms: u64,
    pub cycle_secs: f64,
    /// Objects each listen volume held at its last listing.
    pub listed: BTreeMap<String, usize>,
    /// Why a volume could not be listed in the last cycle.
    pub errors: BTreeMap<String, String>,
    /// Names a volume's last listing gave that cannot be keys, each with why (never applied).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unlisted: BTreeMap<String, Vec<String>>,
}

/// The instance's report file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    pub cluster: String,
    pub pid: u32,
    pub started: i64,
    pub figures: CycleFigures,
}

fn path(persist: &Path) -> std::path::PathBuf {
    persist.join("status.json")
}

impl Report {
    pub fn new(cluster: &Cluster) -> Report {
        Report {
            cluster: cluster.name.clone(),
            pid: std::process::id(),
            started: crate::state::now_unix(),
            figures: CycleFigures::default(),
        }
    }

    /// Written after each cycle (not synced: a lost one is rewritten by the next cycle).
    pub fn write(&self, persist: &Path) {
        if let Ok(json) = serde_json::to_vec_pretty(self) {
            let _ = crate::state::write_atomic(&path(persist), &json, false);
        }
    }

    pub fn read(persist: &Path) -> Option<Report> {
        serde_json::from_slice(&crate::state::files::read_small(&path(persist)).ok()?).ok()
    }
}

/// One volume's line in `cluster status`.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeStatus {
    pub at: String,
    pub kind: crate::model::Kind,
    pub listen: bool,
    pub update: bool,
    /// Fan-outs to this volume not yet done, and how many of those FAILED.
    pub pending: usize,
    pub failed: usize,
    /// Seconds since the oldest change not yet applied here was seen (0: in step).
    pub lag_secs: u64,
    /// Objects at its last listing (listen volumes).
    pub objects: Option<usize>,
    /// Why it could not be listed, if it could not.
    pub error: Option<String>,
}

/// `cluster status NAME`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub name: String,
    pub persist_path: String,
    /// Who works it: `cluster run on HOST (pid N)`; None when nobody does.
    pub worker: Option<String>,
    pub since: Option<i64>,
    /// Unfinished changes in the journal, and fan-outs pending / failed over every volume.
    pub depth: usize,
    pub pending: usize,
    pub failed: usize,
    /// Bytes of the journal file.
    pub journal_bytes: u64,
    pub volumes: Vec<VolumeStatus>,
    /// The running instance's totals (from its last cycle), when one ran.
    pub figures: Option<CycleFigures>,
    /// Seconds since the last cycle ended.
    pub last_cycle_age_secs: Option<u64>,
}

/// Reads a cluster's status without taking its lock (the journal is only read).
pub fn status(cluster: &Cluster) -> anyhow::Result<ClusterStatus> {
    let jpath = crate::state::cluster_journal::path_in(&cluster.persist_path);
    let journal = if jpath.exists() {
        Some(Journal::open_read(&jpath)?)
    } else {
        None
    };
    let now = now_ms();
    let mut per: BTreeMap<String, (usize, usize, u64)> = BTreeMap::new();
    let mut depth = 0;
    if let Some(j) = &journal {
        for c in j.unfinished() {
            depth += 1;
            for (t, f) in &c.targets {
                let e = per.entry(t.clone()).or_default();
                e.0 += 1;
                if f.state == State::Failed {
                    e.1 += 1;
                }
                e.2 = e.2.max(now.saturating_sub(c.at_ms) / 1000);
            }
        }
    }
    let report = Report::read(&cluster.persist_path);
    let holder = super::lock::holder(cluster);
    let volumes = cluster
        .volumes
        .iter()
        .map(|v| {
            let at = v.at.to_string();
            let (pending, failed, lag) = per.get(&at).copied().unwrap_or_default();
            VolumeStatus {
                kind: v.kind,
                listen: v.listen,
                update: v.update,
                pending,
                failed,
                lag_secs: lag,
                objects: report.as_ref().and_then(|r| r.figures.listed.get(&at).copied()),
                error: report.as_ref().and_then(|r| r.figures.errors.get(&at).cloned()),
                at,
            }
        })
        .collect::<Vec<_>>();
    Ok(ClusterStatus {
        name: cluster.name.clone(),
        persist_path: cluster.persist_path.display().to_string(),
        since: match &holder {
            Ok(Some(_)) => report.as_ref().map(|r| r.started),
            _ => None,
        },
        worker: match holder {
            Ok(h) => h,
            Err(e) => Some(format!("unknown ({e})")),
        },
        depth,
        pending: volumes.iter().map(|v| v.pending).sum(),
        failed: volumes.iter().map(|v| v.failed).sum(),
        journal_bytes: journal.as_ref().and_then(|j| j.file_len().ok()).unwrap_or(0),
        last_cycle_age_secs: report
            .as_ref()
            .filter(|r| r.figures.last_cycle_ms > 0)
            .map(|r| now.saturating_sub(r.figures.last_cycle_ms) / 1000),
        figures: report.map(|r| r.figures),
        volumes,
    })
}
