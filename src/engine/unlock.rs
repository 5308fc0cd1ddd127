//! `unlock`: removes the lock a dead job left, and says so in the pair's log, where whoever reads
//! the history next finds who unlocked what. A live job's lock is refused.

use anyhow::{anyhow, Result};

use crate::config::Pair;
use crate::state::lock::{self, LockInfo};
use crate::state::log::PairLog;

use super::Engine;

/// The lock that was removed, or `None` when the pair was not locked.
pub fn unlock(engine: &Engine, pair: &Pair) -> Result<Option<LockInfo>> {
    let fp = pair.fingerprint();
    let mut removed = lock::unlock(&engine.state.lock_path(&fp)).map_err(|e| anyhow!("{e}"))?;
    if let Some(coord) = &engine.config.coordination {
        use crate::coord::pair_lock::{self, PairLockError};
        match crate::coord::blocking(|| pair_lock::unlock(coord, &fp)) {
            Ok(r) => removed = removed.or(r),
            Err(PairLockError::Running(i)) => return Err(anyhow!("{}", lock::LockError::Running(i))),
            Err(PairLockError::Stale(_)) => {}
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
    Ok(removed)
}
