//! The last finished job of a pair: what it did, whether it worked, how much it moved.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LastResult {
    pub action: String,
    pub ok: bool,
    /// Unix seconds.
    pub finished: i64,
    pub seconds: f64,
    pub bytes: u64,
    pub error: Option<String>,
}

impl LastResult {
    pub fn read(path: &Path) -> Option<LastResult> {
        serde_json::from_slice(&super::files::read_small(path).ok()?).ok()
    }

    /// Replaces the file atomically and durably: status and the console rely on it after a crash.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        super::write_atomic(path, &serde_json::to_vec(self).expect("result serializes"), true)
    }
}
