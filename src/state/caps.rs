//! What a host's storage tooling can do, remembered between runs: probing it costs several
//! commands on every job, and it only changes when the host's software does.

use std::path::PathBuf;
use std::time::Duration;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{files, now_unix, StateDir};

/// How long a probe's answer is trusted. An upgraded host is seen again within this time.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// What a probe asks, by ferry's version of the question: an answer to an older question (from
/// before ferry asked about bookmarks or stream features) is asked again at once, not read as
/// "the host has none of it" for a day.
const SCHEMA: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Entry<T> {
    /// Unix seconds of the probe.
    probed: i64,
    #[serde(default)]
    schema: u32,
    caps: T,
}

impl StateDir {
    /// `hosts/<host>.<volume root>.json` (both names are validated at config load: no `/`).
    fn caps_path(&self, host: &str, root: &str) -> PathBuf {
        self.root().join("hosts").join(format!("{host}.{root}.json"))
    }

    /// The capabilities probed on `host` for volumes under `root` (a pool), if fresh enough.
    pub fn cached_caps<T: DeserializeOwned>(&self, host: &str, root: &str) -> Option<T> {
        let bytes = files::read_small(&self.caps_path(host, root)).ok()?;
        let e: Entry<T> = serde_json::from_slice(&bytes).ok()?;
        let age = now_unix().saturating_sub(e.probed);
        (e.schema == SCHEMA && (0..MAX_AGE.as_secs() as i64).contains(&age)).then_some(e.caps)
    }

    /// Remembers a probe's answer; a cache that cannot be written only costs the next run a probe.
    pub fn remember_caps<T: Serialize>(&self, host: &str, root: &str, caps: &T) {
        if self.check().is_err() {
            return;
        }
        let p = self.caps_path(host, root);
        if let Some(dir) = p.parent() {
            if files::create_dirs(dir).is_err() {
                return;
            }
        }
        let e = Entry {
            probed: now_unix(),
            schema: SCHEMA,
            caps,
        };
        let _ = files::write_atomic(&p, &serde_json::to_vec(&e).expect("caps serialize"), false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_answers_come_back_and_old_or_foreign_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let st = StateDir::new(dir.path().join("state"));
        assert_eq!(st.cached_caps::<Vec<u32>>("store1", "tank"), None);
        st.remember_caps("store1", "tank", &vec![23u32]);
        assert_eq!(st.cached_caps::<Vec<u32>>("store1", "tank"), Some(vec![23]));
        assert_eq!(st.cached_caps::<Vec<u32>>("store1", "other"), None, "per pool");
        // an entry older than MAX_AGE (or from the future) is probed again
        let old = Entry {
            probed: now_unix() - MAX_AGE.as_secs() as i64 - 1,
            schema: SCHEMA,
            caps: vec![1u32],
        };
        std::fs::write(st.caps_path("store1", "tank"), serde_json::to_vec(&old).unwrap()).unwrap();
        assert_eq!(st.cached_caps::<Vec<u32>>("store1", "tank"), None);
        let future = Entry {
            probed: now_unix() + 3600,
            schema: SCHEMA,
            caps: vec![1u32],
        };
        std::fs::write(st.caps_path("store1", "tank"), serde_json::to_vec(&future).unwrap()).unwrap();
        assert_eq!(st.cached_caps::<Vec<u32>>("store1", "tank"), None);
        // an answer to an older question (an earlier ferry's cache, no schema) is asked again
        let earlier = format!("{{\"probed\":{},\"caps\":[1]}}", now_unix());
        std::fs::write(st.caps_path("store1", "tank"), earlier).unwrap();
        assert_eq!(st.cached_caps::<Vec<u32>>("store1", "tank"), None);
    }
}
