//! The vocabulary every layer shares, depending on nothing else in ferry: volume kinds with their
//! name rules, and the names ferry gives its own snapshots.

pub mod action;
pub mod chunk;
pub mod names;
pub mod phase;
pub mod state;

pub use action::{ConsoleAction, JobAction};
pub use phase::Phase;
pub use state::{Checkpoint, State, StateKind};

/// A volume kind: which driver a pair's volumes go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Zfs,
    Btrfs,
    /// A file (a VM image) or a block device, replicated by changed chunks.
    Block,
    /// An S3 bucket (optionally a prefix in it), replicated object by object.
    Object,
}

impl Kind {
    /// The kind of a pair that names none (and of a cluster's volumes).
    pub const DEFAULT: Kind = Kind::Zfs;

    /// The word the config and the output use for this kind.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Zfs => "zfs",
            Kind::Btrfs => "btrfs",
            Kind::Block => "block",
            Kind::Object => "object",
        }
    }

    /// Where the kind's volumes live, which decides the hosts a config may name for them. How
    /// each kind is replicated is the engine's business (`engine::kind`), not the vocabulary's.
    pub fn home(self) -> Home {
        match self {
            Kind::Zfs | Kind::Btrfs | Kind::Block => Home::Host,
            Kind::Object => Home::ObjectStore,
        }
    }

    /// The kind a config word names; `None` for a word that names no kind this build supports.
    pub fn from_word(word: &str) -> Option<Kind> {
        match word {
            "zfs" => Some(Kind::Zfs),
            "btrfs" => Some(Kind::Btrfs),
            "block" => Some(Kind::Block),
            "object" => Some(Kind::Object),
            _ => None,
        }
    }

    /// Checks a pair's volume path for this kind (called when the config loads, before any path
    /// reaches a command line).
    pub fn check_path(self, path: &str) -> Result<(), String> {
        match self {
            Kind::Zfs => names::check_pair_dataset(path),
            Kind::Btrfs => names::check_btrfs_path(path),
            Kind::Block => names::check_block_path(path),
            Kind::Object => names::check_bucket_path(path),
        }
    }
}

/// Where a kind's volumes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// On an SSH host (or this one): a dataset, subvolume, image or device path.
    Host,
    /// On an object-store endpoint: a bucket, optionally a prefix in it.
    ObjectStore,
}

/// The snapshot name prefix of one pair: `ferry.<fp>.` (every kind names its snapshots so).
pub fn snapshot_prefix(fp: &str) -> String {
    format!("ferry.{fp}.")
}

/// The tag of the pair's hold on its checkpoint snapshots (`zfs hold`): `ferry.<fp>`, which is
/// the pair's snapshot names up to their time.
pub fn hold_tag(fp: &str) -> String {
    format!("ferry.{fp}")
}

/// A new replication snapshot name for now: `ferry.<fp>.<YYYYMMDDThhmmssZ>` (UTC).
pub fn snapshot_name(fp: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{}{}", snapshot_prefix(fp), at.format("%Y%m%dT%H%M%SZ"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_word_and_name_rule() {
        assert_eq!(Kind::from_word(Kind::Zfs.word()), Some(Kind::Zfs));
        assert_eq!(Kind::from_word("tape"), None);
        assert!(Kind::Zfs.check_path("tank/data").is_ok());
        // a ZFS dataset never starts with '/' (a btrfs path will)
        assert!(Kind::Zfs.check_path("/srv/data").is_err());
    }
}
