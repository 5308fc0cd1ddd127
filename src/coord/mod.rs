//! Coordination through an existing engine (etcd) when several ferry instances share one config:
//! a pair's lock held as a lease beside the local lock file, and the one worker of a cluster.
//! Nothing here names a volume kind; the engine layer decides what a lock guards.

pub mod etcd;
pub mod lease;
pub mod pair_lock;
pub mod worker;

/// This host's name as other instances see it in a lock.
pub fn this_host() -> String {
    sysinfo::System::host_name()
        .ok()
        .unwrap_or_else(|| "unknown host".to_string())
}

/// A lock whose holder's description cannot be read (written by another version, or damaged).
pub fn unknown_holder() -> crate::state::lock::LockInfo {
    crate::state::lock::LockInfo {
        pid: 0,
        action: "a job".into(),
        started: 0,
        host: None,
    }
}

/// Runs a blocking engine call from synchronous code that may be on a runtime thread: under the
/// multi-threaded runtime the thread is handed over meanwhile, so other tasks keep running.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}
