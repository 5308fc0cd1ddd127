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

/// A lock key found without a live lease (none at all, or one that is not alive): not a running
/// holder's, whatever its value says, since ferry puts every such key on its holder's lease.
/// Written by hand, or by another program: named in full so an operator can judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub key: String,
    /// The value as text, control characters escaped, cut to a line.
    pub value: String,
    pub lease: i64,
}

/// How much of a found value is shown.
const ORPHAN_VALUE_CHARS: usize = 200;

impl Orphan {
    pub fn new(key: &str, kv: &etcd::Kv) -> Orphan {
        let text = String::from_utf8_lossy(&kv.value);
        let mut value: String = crate::text::one_line(&text).chars().take(ORPHAN_VALUE_CHARS).collect();
        if text.chars().count() > ORPHAN_VALUE_CHARS {
            value.push('…');
        }
        Orphan {
            key: key.to_string(),
            value,
            lease: kv.lease,
        }
    }
}

impl std::fmt::Display for Orphan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {:?} ", self.key, self.value)?;
        match self.lease {
            0 => write!(f, "with no lease"),
            l => write!(f, "on lease {l:x}, which is not alive"),
        }
    }
}

/// The etcd client for `coord`, made once per process and shared (its token with it: etcd's
/// authenticate is slow on purpose, a password hash, so a standby polling every quarter lease
/// must not pay it each time).
pub fn client(coord: &crate::config::CoordConfig) -> Result<etcd::Etcd, etcd::EtcdError> {
    static CLIENTS: std::sync::Mutex<Vec<(crate::config::CoordConfig, etcd::Etcd)>> = std::sync::Mutex::new(Vec::new());
    let mut all = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, e)) = all.iter().find(|(c, _)| c == coord) {
        return Ok(e.clone());
    }
    let e = etcd::Etcd::connect(coord)?;
    all.push((coord.clone(), e.clone()));
    Ok(e)
}

/// Runs a blocking engine call from synchronous code that may be on a runtime thread: under the
/// multi-threaded runtime the thread is handed over meanwhile, so other tasks keep running.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_orphan_is_named_on_one_line_escaped_and_cut() {
        let kv = |value: &[u8], lease| etcd::Kv {
            value: value.to_vec(),
            create_revision: 5,
            mod_revision: 6,
            lease,
        };
        let o = Orphan::new("/ferry/pairs/ab/run", &kv(b"{\"pid\":1}\n\x1b]0;x\x07", 0));
        let shown = o.to_string();
        assert!(
            shown.starts_with("/ferry/pairs/ab/run = ") && shown.ends_with("with no lease"),
            "{shown}"
        );
        assert!(!shown.contains('\x1b') && !shown.contains('\n'), "{shown:?}");
        let long = Orphan::new("/k", &kv(&[b'x'; 5000], 0x2a));
        assert_eq!(long.value.chars().count(), ORPHAN_VALUE_CHARS + 1);
        assert!(long.to_string().ends_with("on lease 2a, which is not alive"), "{long}");
    }
}
