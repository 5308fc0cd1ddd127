//! Volume drivers: one module per kind, each building its own commands and parsing their output.
//!
//! Only `zfs` exists so far. The engine talks to a driver through `VolumeDriver`, so btrfs, block and
//! object volumes can follow without touching the replication logic.

pub mod zfs;

use anyhow::Result;

use crate::exec::{Executor, Process};

/// A snapshot of a volume with its creation time (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The part after `@`.
    pub name: String,
    pub created: i64,
}

/// What one host's tooling can do; probed once per host and run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// Pool version (`None` for feature-flag pools, which report "-" / 5000).
    pub pool_version: Option<u32>,
    /// `zfs send -nP` prints a size estimate.
    pub send_estimate: bool,
    /// `zfs receive -s` and `receive_resume_token` exist.
    pub resume_tokens: bool,
    /// `zfs list -p` exists (otherwise `zfs get -Hp` is used for numbers).
    pub list_parsable: bool,
}

/// What ferry reads about a volume in one command: does it exist, its ferry markers, its snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeInfo {
    pub exists: bool,
    pub fingerprint: Option<String>,
    pub source: Option<String>,
    pub lastsnap: Option<String>,
    /// Bytes the dataset refers to: the estimate of a full stream where `send -nP` is missing.
    pub referenced: Option<u64>,
    /// Snapshots oldest first.
    pub snapshots: Vec<Snapshot>,
}

/// One volume kind's operations, run through an executor on the volume's host.
#[allow(async_fn_in_trait)]
pub trait VolumeDriver {
    async fn probe(&self, ex: &Executor, volume: &str) -> Result<Capabilities>;
    /// Reads many volumes of one host with one command; missing volumes come back with `exists = false`.
    async fn inspect(&self, ex: &Executor, volumes: &[&str]) -> Result<Vec<VolumeInfo>>;
    async fn snapshot(&self, ex: &Executor, volume: &str, snap: &str) -> Result<()>;
    /// Takes snapshot `snap` and starts sending it (full, or incremental with every intermediate
    /// snapshot from `from`) in one remote command.
    async fn snapshot_and_send(&self, ex: &Executor, volume: &str, snap: &str, from: Option<&str>) -> Result<Process>;
    async fn receive(&self, ex: &Executor, volume: &str, force: bool) -> Result<Process>;
    async fn destroy_snapshots(&self, ex: &Executor, volume: &str, snaps: &[String]) -> Result<()>;
}
