//! The one worker of a cluster under an engine: whoever holds `<prefix>/clusters/<name>/worker` on
//! a lease. The others stand by and try again every quarter lease; a dead worker's key goes with
//! its lease, so one of them takes over within about a lease and a quarter.
//!
//! The store's revision when the key was made is the worker's epoch: it grows with every
//! takeover, and the cluster's journal fences out records of an older epoch.

use crate::config::CoordConfig;
use crate::state::lock::LockInfo;

use super::etcd::{Created, Etcd, EtcdError};
use super::lease::HeldLease;

/// The cluster, worked by this instance.
pub struct Worker {
    etcd: Etcd,
    lease: HeldLease,
    key: String,
    pub epoch: i64,
}

fn key(coord: &CoordConfig, cluster: &str) -> String {
    format!("{}/clusters/{cluster}/worker", coord.prefix)
}

/// Takes the cluster if nobody works it; otherwise gives who does.
pub fn try_take(coord: &CoordConfig, cluster: &str, me: &LockInfo) -> Result<Result<Worker, LockInfo>, EtcdError> {
    let etcd = Etcd::for_lease(&coord.endpoints, coord.lease);
    let key = key(coord, cluster);
    // a look first: standing by costs one read, not a lease granted and revoked
    if let Some(h) = holder(coord, cluster)? {
        return Ok(Err(h));
    }
    let lease = HeldLease::grant(&etcd, coord.lease)?;
    let value = serde_json::to_vec(me).unwrap_or_default();
    let made = etcd.create_leased(&[key.as_str()], &[(key.as_str(), &value, lease.id())], lease.id());
    match made {
        Ok(Created::Made { revision }) => Ok(Ok(Worker {
            etcd,
            lease,
            key,
            epoch: revision,
        })),
        Ok(Created::Held(kvs)) => {
            lease.release();
            let h = kvs
                .into_iter()
                .flatten()
                .next()
                .and_then(|kv| serde_json::from_slice(&kv.value).ok());
            Ok(Err(h.unwrap_or_else(super::unknown_holder)))
        }
        Err(e) => {
            lease.release();
            Err(e)
        }
    }
}

/// Who works the cluster now, if anyone.
pub fn holder(coord: &CoordConfig, cluster: &str) -> Result<Option<LockInfo>, EtcdError> {
    let etcd = Etcd::for_lease(&coord.endpoints, coord.lease);
    Ok(etcd
        .get(&key(coord, cluster))?
        .and_then(|kv| serde_json::from_slice(&kv.value).ok()))
}

impl Worker {
    /// True while this instance certainly still works the cluster.
    pub fn valid(&self) -> bool {
        self.lease.valid()
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
