//! The object pair's checkpoint: per key, the source version last copied and the destination
//! ETag it produced, so an update skips unchanged keys without a HEAD on either side.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::changes::Known;
use super::client::ObjectInfo;

/// Most bytes a checkpoint may hold (a few hundred bytes a key: millions of keys fit).
const CHECKPOINT_CAP: u64 = 4 << 30;

/// What the last good copy of one key saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copied {
    /// None when the source's listing carries no ETags.
    pub src_etag: Option<String>,
    /// Source last-modified, Unix milliseconds (changes on a metadata-only rewrite).
    pub src_modified_ms: i64,
    pub dst_etag: Option<String>,
    /// The source's size then (a same-second rewrite on a server that lists no ETags still
    /// shows when the size changed). Absent in checkpoints written before it was kept.
    #[serde(default)]
    pub size: Option<u64>,
}

impl Copied {
    /// The listed source object is the version this copy saw.
    pub fn saw(&self, s: &ObjectInfo) -> bool {
        s.etag == self.src_etag
            && s.last_modified.timestamp_millis() == self.src_modified_ms
            && self.size.is_none_or(|n| n == s.size)
    }
}

/// A pair's record of its source: the version each key had when last copied.
impl Known for Checkpoint {
    fn knows(&self, listed: &ObjectInfo) -> bool {
        self.keys.get(&listed.key).is_some_and(|c| c.saw(listed))
    }

    fn known_keys(&self) -> Vec<&str> {
        self.keys.keys().map(String::as_str).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("object checkpoint {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("object checkpoint {path}: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
}

/// Key -> last copy; saved atomically (temp file, fsync, rename).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    pub keys: BTreeMap<String, Copied>,
    /// Unix milliseconds when the last finished pass listed the source: what the source held
    /// then is on the destination, but for the journal's unfinished entries.
    #[serde(default)]
    pub listed_ms: Option<u64>,
    /// What the last pass's listings named that cannot be a key here (status warns of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unlisted: Vec<String>,
}

impl Checkpoint {
    /// Whether a pass has finished into `path` (the pair is initialized).
    pub fn exists(path: &Path) -> bool {
        path.is_file()
    }

    /// Loads `path`; a missing file is an empty checkpoint (every key gets compared).
    pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
        // no-follow, regular, capped: a planted symlink or FIFO is refused, not read
        match crate::state::files::open_regular(path)
            .and_then(|mut f| crate::state::files::read_capped(&mut f, path, CHECKPOINT_CAP))
        {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| CheckpointError::Parse {
                path: path.into(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint::default()),
            Err(source) => Err(CheckpointError::Io {
                path: path.into(),
                source,
            }),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: path.into(),
            source,
        };
        let json = serde_json::to_vec(self).map_err(|source| CheckpointError::Parse {
            path: path.into(),
            source,
        })?;
        // the state layer's writer: unpredictable temp name, create-new, no-follow, fsync, rename
        crate::state::files::write_atomic(path, &json, true).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_never_writes_through_a_planted_temp_symlink_and_load_refuses_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let p = dir.path().join("checkpoint.json");
        std::os::unix::fs::symlink(&victim, p.with_extension("tmp")).unwrap();
        let c = Checkpoint {
            listed_ms: Some(7),
            ..Checkpoint::default()
        };
        c.save(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(Checkpoint::load(&p).unwrap().listed_ms, Some(7));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            3,
            "a temp file was left"
        );
        let fifo = dir.path().join("fifo");
        let cs = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(cs.as_ptr(), 0o644) }, 0);
        assert!(Checkpoint::load(&fifo).unwrap_err().to_string().contains("FIFO"));
    }
}
