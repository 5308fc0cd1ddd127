//! A pair's lock in the coordination engine, beside the local lock file: two instances running the
//! same schedule (one per site) never run one pair at once.
//!
//! Two keys per pair: `run` lives on the holder's lease (it says the job is alive) and `held`
//! outlives it (it says a job took the pair and has not finished). A job takes both in one
//! transaction when neither exists and removes both when it ends. A holder that dies leaves
//! `held` without `run` once its lease expires: the pair shows Locked everywhere until an
//! operator runs `unlock`, exactly as a dead job's lock file does on its own host.

use crate::config::CoordConfig;
use crate::state::lock::{LockInfo, LockState};

use super::etcd::{Created, Etcd, EtcdError};
use super::lease::HeldLease;

/// Why the engine refused the pair's lock.
#[derive(Debug, thiserror::Error)]
pub enum PairLockError {
    #[error("{0}")]
    Etcd(#[from] EtcdError),
    /// A live job elsewhere holds it.
    #[error("running elsewhere")]
    Running(LockInfo),
    /// A job that died (its lease expired) left it.
    #[error("locked")]
    Stale(Option<LockInfo>),
}

/// The pair's lock, held.
pub struct PairLease {
    etcd: Etcd,
    lease: HeldLease,
    held_key: String,
    held_rev: i64,
}

fn keys(coord: &CoordConfig, fp: &str) -> (String, String) {
    let base = format!("{}/pairs/{fp}", coord.prefix);
    (format!("{base}/run"), format!("{base}/held"))
}

fn info_of(v: &[u8]) -> Option<LockInfo> {
    serde_json::from_slice(v).ok()
}

/// Takes the pair's lock in the engine for the job `info` describes.
pub fn acquire(coord: &CoordConfig, fp: &str, info: &LockInfo) -> Result<PairLease, PairLockError> {
    let etcd = Etcd::for_lease(&coord.endpoints, coord.lease);
    let (run, held) = keys(coord, fp);
    let lease = HeldLease::grant(&etcd, coord.lease)?;
    let value = serde_json::to_vec(info).unwrap_or_default();
    let made = etcd.create_leased(
        &[run.as_str(), held.as_str()],
        &[(run.as_str(), &value, lease.id()), (held.as_str(), &value, 0)],
        lease.id(),
    );
    match made {
        Ok(Created::Made { revision }) => Ok(PairLease {
            etcd,
            lease,
            held_key: held,
            held_rev: revision,
        }),
        Ok(Created::Held(kvs)) => {
            lease.release();
            match (kvs.first().cloned().flatten(), kvs.get(1).cloned().flatten()) {
                (Some(r), _) => Err(PairLockError::Running(
                    info_of(&r.value).unwrap_or_else(super::unknown_holder),
                )),
                (None, h) => Err(PairLockError::Stale(h.and_then(|h| info_of(&h.value)))),
            }
        }
        Err(e) => {
            lease.release();
            Err(e.into())
        }
    }
}

/// Every pair's lock the engine holds, by fingerprint, in one request (status of many pairs).
pub fn all(coord: &CoordConfig) -> Result<std::collections::HashMap<String, LockState>, EtcdError> {
    let etcd = Etcd::for_lease(&coord.endpoints, coord.lease);
    let base = format!("{}/pairs/", coord.prefix);
    let mut out = std::collections::HashMap::new();
    let kvs = etcd.range_prefix(&base)?;
    // `run` first: a live job wins over its own `held`
    for want in ["run", "held"] {
        for (key, kv) in &kvs {
            let Some((fp, which)) = key.strip_prefix(&base).and_then(|r| r.split_once('/')) else {
                continue;
            };
            if which != want || out.contains_key(fp) {
                continue;
            }
            let state = match which {
                "run" => LockState::Running(info_of(&kv.value).unwrap_or_else(super::unknown_holder)),
                _ => LockState::Stale(info_of(&kv.value)),
            };
            out.insert(fp.to_string(), state);
        }
    }
    Ok(out)
}

/// Removes a dead job's lock from the engine: refused while the job's lease lives. The delete
/// happens only while `run` is absent and `held` is the one read (one transaction), so it never
/// removes the lock of a job that started meanwhile.
pub fn unlock(coord: &CoordConfig, fp: &str) -> Result<Option<LockInfo>, PairLockError> {
    let etcd = Etcd::for_lease(&coord.endpoints, coord.lease);
    let (run, held) = keys(coord, fp);
    for _ in 0..5 {
        if let Some(r) = etcd.get(&run)? {
            return Err(PairLockError::Running(
                info_of(&r.value).unwrap_or_else(super::unknown_holder),
            ));
        }
        let Some(h) = etcd.get(&held)? else {
            return Ok(None);
        };
        if etcd.delete_if_absent(&held, h.create_revision, &[run.as_str()])? {
            return Ok(Some(info_of(&h.value).unwrap_or_else(super::unknown_holder)));
        }
        // a job took the pair between the reads and the delete: look again
    }
    Err(PairLockError::Etcd(EtcdError::Refused {
        endpoint: coord.endpoints.join(", "),
        message: "the pair's lock kept changing: try again".into(),
        code: 0,
    }))
}

impl PairLease {
    /// Ends the job normally: `held` goes (only our own), then the lease and `run` with it. An
    /// engine that cannot be reached then leaves `held`: the pair shows Locked until `unlock`,
    /// and the error says so for the job's log.
    pub fn release(self) -> Result<(), EtcdError> {
        let mut last = Ok(false);
        for _ in 0..3 {
            last = self.etcd.delete_if(&self.held_key, self.held_rev);
            if last.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        self.lease.release();
        last.map(|_| ())
    }
}
