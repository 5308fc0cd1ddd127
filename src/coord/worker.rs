//! The one worker of a cluster under an engine: whoever holds `<prefix>/clusters/<name>/worker` on
//! a lease. The others stand by and try again every quarter lease; a dead worker's key goes with
//! its lease, so one of them takes over within about a lease and a quarter.
//!
//! The store's revision when the key was made is the worker's epoch: it grows with every
//! takeover, and the cluster's journal fences out records of an older epoch.
//!
//! The key is trusted only on a live lease: one without (put by hand, or by another program) is
//! no worker's, so a standby clears it (only as it read it) and takes the cluster, naming what it
//! found. A worker checks its own key at each renewal: gone, or made again (another create
//! revision, another lease), and it stops as if its lease had run out. A standby that finds the
//! key gone while the lease of the worker it last saw still lives (the key was deleted, the
//! worker has not noticed yet) waits for that lease to end, at most a lease, before it takes the
//! cluster: the deposed worker finishes its step, notices at its next renewal and revokes it.

use std::time::{Duration, Instant};

use crate::config::CoordConfig;
use crate::state::lock::LockInfo;

use super::etcd::{Created, Etcd, EtcdError};
use super::lease::HeldLease;
use super::Orphan;

/// The cluster, worked by this instance.
pub struct Worker {
    etcd: Etcd,
    lease: HeldLease,
    key: String,
    pub epoch: i64,
    /// A worker key without a live lease that was cleared to take the cluster.
    pub replaced: Option<Orphan>,
    /// The lease of a worker whose key went while it lived, and how long we waited for it.
    pub waited: Option<(i64, Duration)>,
}

/// Who works the cluster, as a standby saw it.
#[derive(Debug, Clone)]
pub struct Held {
    pub info: LockInfo,
    /// The worker's lease: a standby passes it to its next `try_take`.
    pub lease: i64,
}

/// How often a standby asks whether a deposed worker's lease has ended.
const LEASE_LOOK: Duration = Duration::from_millis(100);

fn key(coord: &CoordConfig, cluster: &str) -> String {
    format!("{}/clusters/{cluster}/worker", coord.prefix)
}

/// Takes the cluster if nobody works it; otherwise gives who does. `last` is the lease of the
/// worker this standby saw at its previous look (0: none).
pub fn try_take(
    coord: &CoordConfig,
    cluster: &str,
    me: &LockInfo,
    last: i64,
) -> Result<Result<Worker, Held>, EtcdError> {
    let etcd = super::client(coord)?;
    let key = key(coord, cluster);
    // a look first: standing by costs one read (and one lease look), not a lease granted and revoked
    let (mut replaced, mut waited) = (None, None);
    match etcd.get(&key)? {
        Some(kv) if etcd.lease_alive(kv.lease)? => {
            return Ok(Err(Held {
                info: serde_json::from_slice(&kv.value).unwrap_or_else(|_| super::unknown_holder()),
                lease: kv.lease,
            }));
        }
        // no live worker's: cleared only as read; if it changed meanwhile the create below says who
        Some(kv) if etcd.delete_unchanged(&[(key.as_str(), kv.mod_revision)])? => {
            replaced = Some(Orphan::new(&key, &kv));
        }
        Some(_) => {}
        // gone while the worker's lease lives: deleted under it (or it is handing over)
        None if last != 0 && etcd.lease_alive(last)? => {
            let t0 = Instant::now();
            while t0.elapsed() < coord.lease && etcd.lease_alive(last)? {
                std::thread::sleep(LEASE_LOOK);
            }
            waited = Some((last, t0.elapsed()));
        }
        None => {}
    }
    let lease = HeldLease::grant(&etcd, coord.lease)?;
    let value = serde_json::to_vec(me).unwrap_or_default();
    let made = etcd.create_leased(&[key.as_str()], &[(key.as_str(), &value, lease.id())], lease.id());
    match made {
        Ok(Created::Made { revision }) => {
            // from now on each renewal also checks that the key is still ours
            lease.guard(&key, revision);
            Ok(Ok(Worker {
                etcd,
                lease,
                key,
                epoch: revision,
                replaced,
                waited,
            }))
        }
        Ok(Created::Held(kvs)) => {
            lease.release();
            let kv = kvs.into_iter().flatten().next();
            Ok(Err(Held {
                info: kv
                    .as_ref()
                    .and_then(|kv| serde_json::from_slice(&kv.value).ok())
                    .unwrap_or_else(super::unknown_holder),
                lease: kv.map_or(0, |kv| kv.lease),
            }))
        }
        Err(e) => {
            lease.release();
            Err(e)
        }
    }
}

/// Who works the cluster now: a live worker (`Ok`), a key no live worker holds (`Err`), or
/// nobody.
pub fn holder(coord: &CoordConfig, cluster: &str) -> Result<Option<Result<LockInfo, Orphan>>, EtcdError> {
    let etcd = super::client(coord)?;
    let key = key(coord, cluster);
    let Some(kv) = etcd.get(&key)? else {
        return Ok(None);
    };
    if !etcd.lease_alive(kv.lease)? {
        return Ok(Some(Err(Orphan::new(&key, &kv))));
    }
    Ok(Some(Ok(
        serde_json::from_slice(&kv.value).unwrap_or_else(|_| super::unknown_holder())
    )))
}

impl Worker {
    /// True while this instance certainly still works the cluster.
    pub fn valid(&self) -> bool {
        self.lease.valid()
    }

    /// Why this worker stopped holding the cluster when its key went (deleted, or made again by
    /// someone else) rather than its lease: what the renewal found.
    pub fn key_lost(&self) -> Option<String> {
        self.lease.guard_lost()
    }

    /// A check the journal can hold: shares the lease's view without owning the worker.
    pub fn fence(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        self.lease.watch()
    }

    /// Hands the cluster on: the key goes now, so a standby takes over at its next try.
    pub fn release(self) {
        let _ = self.etcd.delete_if(&self.key, self.epoch);
        self.lease.release();
    }
}
