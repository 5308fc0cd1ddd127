//! A pair's lock in the coordination engine, beside the local lock file: two instances running the
//! same schedule (one per site) never run one pair at once.
//!
//! Two keys per pair: `run` lives on the holder's lease (it says the job is alive) and `held`
//! outlives it (it says a job took the pair and has not finished). A job takes both in one
//! transaction when neither exists and removes both when it ends. A holder that dies leaves
//! `held` without `run` once its lease expires: the pair shows Locked everywhere until an
//! operator runs `unlock`, exactly as a dead job's lock file does on its own host.
//!
//! A `run` key is trusted only while its lease lives (etcd is asked): one without a live lease
//! was not put by a running job (by hand, or by another program), so the job that finds it says
//! what it found and `unlock` clears it.

use crate::config::CoordConfig;
use crate::state::lock::{LockInfo, LockState};

use super::etcd::{Created, Etcd, EtcdError};
use super::lease::HeldLease;
use super::Orphan;

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
    /// A `run` key without a live lease: no running job's, whatever it says.
    #[error("locked by a key no running job holds: {0}")]
    Orphan(Orphan),
}

/// What `unlock` removed from the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlocked {
    /// The `held` key's job (a job that did not finish).
    pub held: Option<LockInfo>,
    /// A `run` key without a live lease, as found.
    pub orphan: Option<Orphan>,
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
    let etcd = super::client(coord)?;
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
                (Some(r), _) if etcd.lease_alive(r.lease)? => Err(PairLockError::Running(
                    info_of(&r.value).unwrap_or_else(super::unknown_holder),
                )),
                (Some(r), _) => Err(PairLockError::Orphan(Orphan::new(&run, &r))),
                (None, h) => Err(PairLockError::Stale(h.and_then(|h| info_of(&h.value)))),
            }
        }
        Err(e) => {
            lease.release();
            Err(e.into())
        }
    }
}

/// Every pair's lock the engine holds, by fingerprint, in one request (status of many pairs), and
/// one more for each `run` key's lease: one without a live lease shows Locked, not Running.
pub fn all(coord: &CoordConfig) -> Result<std::collections::HashMap<String, LockState>, EtcdError> {
    let etcd = super::client(coord)?;
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
                "run" if etcd.lease_alive(kv.lease)? => {
                    LockState::Running(info_of(&kv.value).unwrap_or_else(super::unknown_holder))
                }
                _ => LockState::Stale(info_of(&kv.value)),
            };
            out.insert(fp.to_string(), state);
        }
    }
    Ok(out)
}

/// Removes a dead job's lock from the engine: refused while a job's lease lives. A `run` key
/// without a live lease goes too, named in what is returned. The delete happens only while both
/// keys are as read (one transaction), so it never removes the lock of a job that started
/// meanwhile.
pub fn unlock(coord: &CoordConfig, fp: &str) -> Result<Option<Unlocked>, PairLockError> {
    let etcd = super::client(coord)?;
    let (run, held) = keys(coord, fp);
    for _ in 0..5 {
        let r = etcd.get(&run)?;
        let orphan = match &r {
            Some(r) if etcd.lease_alive(r.lease)? => {
                return Err(PairLockError::Running(
                    info_of(&r.value).unwrap_or_else(super::unknown_holder),
                ))
            }
            Some(r) => Some(Orphan::new(&run, r)),
            None => None,
        };
        let h = etcd.get(&held)?;
        if r.is_none() && h.is_none() {
            return Ok(None);
        }
        let rev = |kv: &Option<super::etcd::Kv>| kv.as_ref().map_or(0, |kv| kv.mod_revision);
        if etcd.delete_unchanged(&[(run.as_str(), rev(&r)), (held.as_str(), rev(&h))])? {
            return Ok(Some(Unlocked {
                held: h.map(|h| info_of(&h.value).unwrap_or_else(super::unknown_holder)),
                orphan,
            }));
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
