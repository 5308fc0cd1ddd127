//! The cluster's lock in `persist_path` (coordination "local"): one instance works a cluster at
//! a time. A lock a dead instance left is taken over: unlike a pair's, the cluster's state is all
//! in its journal, which a restart replays.

use anyhow::{anyhow, Result};

use crate::config::{Cluster, Coordination};
use crate::state::lock::{self, Lock, LockError, LockState};

/// The lock file in a cluster's persist path.
pub fn path(cluster: &Cluster) -> std::path::PathBuf {
    cluster.persist_path.join("lock")
}

/// What the lock's holder is called in status: `cluster run on HOST`.
pub fn label() -> String {
    format!("cluster run on {}", crate::coord::this_host())
}

/// Takes the cluster's lock, taking over one a dead instance left.
pub fn take(cluster: &Cluster) -> Result<Lock> {
    // created if missing, refused if a symlink or writable by another user: the lock, the
    // journal and the log live there
    crate::state::files::ensure_trusted_dir(&cluster.persist_path, "persist_path").map_err(|e| {
        anyhow!(
            "cluster {}: persist_path {}: {e}",
            cluster.name,
            cluster.persist_path.display()
        )
    })?;
    let p = path(cluster);
    match lock::acquire(&p, &label()) {
        Ok(l) => Ok(l),
        Err(LockError::Stale(_)) => {
            lock::unlock(&p).map_err(|e| anyhow!("cluster {}: {e}", cluster.name))?;
            lock::acquire(&p, &label()).map_err(|e| anyhow!("cluster {}: {e}", cluster.name))
        }
        Err(LockError::Running(i)) => Err(anyhow!(
            "cluster {} is worked by another instance: {} (pid {}); one instance works a cluster at a time",
            cluster.name,
            i.action,
            i.pid
        )),
        Err(e) => Err(anyhow!("cluster {}: {e}", cluster.name)),
    }
}

/// Who works the cluster now, if anyone: the local lock's holder, or the lease's in the engine;
/// an error when the engine cannot be asked.
pub fn holder(cluster: &Cluster) -> Result<Option<String>, String> {
    match &cluster.coordination {
        Coordination::Local => Ok(match lock::inspect(&path(cluster)) {
            LockState::Running(i) => Some(format!("{} ({})", i.action, i.who())),
            _ => None,
        }),
        Coordination::Engine(coord) => crate::coord::worker::holder(coord, &cluster.name)
            .map(|h| {
                h.map(|h| match h {
                    Ok(i) => format!("{} ({})", i.action, i.who()),
                    // the next standby to look clears it and takes over
                    Err(o) => format!("nobody alive: {o}"),
                })
            })
            .map_err(|e| e.to_string()),
    }
}
