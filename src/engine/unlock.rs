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
    let removed = lock::unlock(&engine.state.lock_path(&fp)).map_err(|e| anyhow!("{e}"))?;
    if let Some(i) = &removed {
        let log = PairLog::new(&engine.state.log_path(&fp), engine.verbose);
        log.line(&format!(
            "unlock: removed the lock of `{}` by pid {} started {}; the next update starts from the destination's checkpoint",
            i.action,
            i.pid,
            crate::config::units::format_time(i.started)
        ));
    }
    Ok(removed)
}
