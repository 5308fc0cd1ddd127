//! The object pair's checkpoint: per key, the source version last copied and the destination
//! ETag it produced, so an update skips unchanged keys without a HEAD on either side.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
        match std::fs::read(path) {
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
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec(self).map_err(|source| CheckpointError::Parse {
            path: path.into(),
            source,
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}
