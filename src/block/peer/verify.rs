//! `ferry peer block-verify`: rereads a replica and compares it with its checkpoint manifest,
//! printing one JSON line: whether they match, and the byte ranges that differ.

use std::path::PathBuf;

use anyhow::{bail, Result};

use super::receive::rescan;
use crate::block::apply::Dest;
use crate::block::diff;

/// Ranges listed at most; the count says how many there were.
const MAX_RANGES: usize = 100;

/// What verify found, as the job reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    pub checkpoint: Option<String>,
    pub size: u64,
    /// Byte ranges `[start, end)` that differ from the checkpoint, the first `MAX_RANGES`.
    pub ranges: Vec<(u64, u64)>,
    /// How many ranges differ in all.
    pub differing: usize,
}

/// Verifies the replica at `path` with its state in `state`; prints the verdict on stdout.
pub fn run(path: PathBuf, state: PathBuf) -> Result<()> {
    let dest = Dest::new(&path, &state);
    if !state.exists() {
        bail!(
            "{} has no ferry state ({}): it was never initialized",
            path.display(),
            state.display()
        );
    }
    // read-only: an update may be running (verify takes no lock), and a journal is its business.
    // A sealed apply pending means the target is partly written: nothing to compare yet.
    if dest.next_path().exists() || state.join("next.name").exists() {
        bail!(
            "{} has an apply pending (interrupted or running): run `ferry update` to finish it, then verify",
            path.display()
        );
    }
    let Some(cp) = dest.checkpoint()? else {
        bail!("{} has no checkpoint yet: nothing to verify against", path.display());
    };
    let name = super::names::Named::read(&state.join("checkpoint.name"))?
        .filter(|n| n.id == cp.id())
        .map(|n| n.name);
    let now = rescan(&path, &cp)?;
    let ranges = diff(&cp, &now)?;
    let verdict = Verdict {
        checkpoint: name,
        size: cp.source_size,
        differing: ranges.len(),
        ranges: ranges
            .iter()
            .take(MAX_RANGES)
            .map(|r| r.bytes(cp.chunk_size, cp.source_size))
            .collect(),
    };
    println!("{}", serde_json::to_string(&verdict)?);
    Ok(())
}
