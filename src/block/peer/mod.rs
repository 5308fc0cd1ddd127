//! The block peer: `ferry peer block-send` on the source's host and `ferry peer block-receive`
//! on the destination's, started by the job over SSH (or here for a local side) and joined by
//! the job's relay, speaking `proto`'s frames on stdin/stdout as rsync's and borg's remote ends do.
//!
//! Each side keeps its files in its own state directory: the source the manifest of what the
//! replica holds (`source.manifest`, named in `source.name`), the one being committed
//! (`planned.*`) and the point-in-time copy (`snapshot`); the destination its checkpoint
//! (`checkpoint.manifest` + `checkpoint.name`) and the journal of an apply in progress.

pub mod names;
pub mod receive;
pub mod send;
pub mod verify;

use super::proto::PROTOCOL_VERSION;

/// What a peer says it is, in hellos and in `ferry peer version`.
pub fn software() -> String {
    format!("ferry {} block protocol {PROTOCOL_VERSION}", env!("CARGO_PKG_VERSION"))
}

/// Bytes journaled between syncs: what a cut transfer can lose at most and must resend.
pub const SYNC_EVERY: u64 = 32 * 1024 * 1024;

/// Read progress is reported to the job every this many bytes of source read.
pub const PROGRESS_EVERY: u64 = 8 * 1024 * 1024;

/// Makes a peer's state directory (private: manifests describe the data).
pub fn state_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("cannot create the state directory {}: {e}", dir.display()))
}
