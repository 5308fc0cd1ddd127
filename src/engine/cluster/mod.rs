//! Volume clusters (`[[cluster]]`): listeners that journal every change seen on a `listen`
//! volume, and updaters that apply each, coalesced and settled, to every `update` volume except
//! the one it came from. The journal in `persist_path` is the only state; `cluster run` works
//! it, `cluster status` reads it, `cluster diverge` / `reconcile` compare the volumes themselves.

pub mod diverge;
pub mod fanout;
pub mod lock;
pub mod report;
pub mod run;

pub use super::Engine;

/// The user-metadata name a cluster marks its replicas with (`x-amz-meta-ferry-cluster: NAME`):
/// a listener that finds it knows the object was written by the cluster, not changed on that
/// volume, and does not send it back (no echo). Compared objects ignore it.
pub const MARK: &str = "ferry-cluster";
