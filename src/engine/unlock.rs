//! `unlock`: removes the lock a dead job left, and says so in the pair's log, where whoever reads
//! the history next finds who unlocked what. A live job's lock is refused; an etcd lock key that
//! no live lease holds is removed and named.

use anyhow::{anyhow, Result};

use crate::config::Pair;
use crate::coord::Orphan;
use crate::state::lock::{self, LockInfo};
use crate::state::log::PairLog;

use super::Engine;

/// What `unlock` removed.
#[derive(Debug, Default)]
pub struct Unlocked {
    /// The dead job's lock (the local file's, else etcd's `held`).
    pub lock: Option<LockInfo>,
    /// An etcd `run` key without a live lease, as found.
    pub orphan: Option<Orphan>,
}

/// The lock that was removed; nothing in it when the pair was not locked.
pub fn unlock(engine: &Engine, pair: &Pair) -> Result<Unlocked> {
    let fp = pair.fingerprint();
    let mut removed = lock::unlock(&engine.state.lock_path(&fp)).map_err(|e| anyhow!("{e}"))?;
    let mut orphan = None;
    if let Some(coord) = &engine.config.coordination {
        use crate::coord::pair_lock::{self, PairLockError};
        match crate::coord::blocking(|| pair_lock::unlock(coord, &fp)) {
            Ok(r) => {
                if let Some(r) = r {
                    removed = removed.or(r.held);
                    orphan = r.orphan;
                }
            }
            Err(PairLockError::Running(i)) => return Err(anyhow!("{}", lock::LockError::Running(i))),
            Err(PairLockError::Stale(_) | PairLockError::Orphan(_)) => {}
            Err(PairLockError::Etcd(e)) => {
                return Err(anyhow!(
                    "coordination: {e}; the pair's lock in etcd stays (the local lock {})",
                    if removed.is_some() {
                        "was removed"
                    } else {
                        "was not there"
                    }
                ))
            }
        }
    }
    if let Some(i) = &removed {
        let log = PairLog::new(&engine.state.log_path(&fp), engine.verbose);
        log.line(&format!(
            "unlock: removed the lock of `{}` by {} started {}; the next update starts from the destination's checkpoint",
            i.action,
            i.who(),
            crate::config::units::format_time(i.started)
        ));
    }
    if let Some(o) = &orphan {
        let log = PairLog::new(&engine.state.log_path(&fp), engine.verbose);
        log.line(&format!("unlock: removed {o} from etcd (no running job's)"));
    }
    Ok(Unlocked { lock: removed, orphan })
}
