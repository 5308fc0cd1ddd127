//! What changed on an origin since the replicator last knew it: the one change detector pairs
//! and clusters share. A pair's record is its checkpoint (the source version last copied); a
//! cluster's is its journal's view of each volume (the version last seen there). Either answers
//! the same three questions (`Known`), and `detect` turns a listing into puts and deletes.

use super::client::ObjectInfo;

/// What a replicator knows of one origin.
pub trait Known {
    /// Whether `listed` is the version of its key this record last knew on the origin (each
    /// record says what "the same version" means: a checkpoint to the millisecond, a HEAD-fed
    /// cluster view to the second).
    fn knows(&self, listed: &ObjectInfo) -> bool;
    /// Every key the record holds for the origin: one the listing lacks was deleted there.
    fn known_keys(&self) -> Vec<&str>;
    /// A key with a change still in flight: not judged again until it is done.
    fn busy(&self, _key: &str) -> bool {
        false
    }
}

/// What a listing says of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected<'a> {
    /// The version the record knows.
    Same(&'a ObjectInfo),
    /// New, or another version than the record knows.
    Put(&'a ObjectInfo),
    /// The record knows this key and the listing does not have it.
    Delete(&'a str),
}

impl Detected<'_> {
    pub fn key(&self) -> &str {
        match self {
            Detected::Same(o) | Detected::Put(o) => &o.key,
            Detected::Delete(k) => k,
        }
    }
}

/// Every listed key, then every known key the listing lacks, each with what it is (busy keys
/// are left out). `listing` is sorted by key (as listings are), so the puts come in key order.
pub fn detect<'a, K: Known + ?Sized>(
    listing: impl IntoIterator<Item = &'a ObjectInfo>,
    known: &'a K,
) -> Vec<Detected<'a>> {
    let mut listed = std::collections::HashSet::new();
    let mut out = Vec::new();
    for o in listing {
        listed.insert(o.key.as_str());
        if known.busy(&o.key) {
            continue;
        }
        out.push(if known.knows(o) {
            Detected::Same(o)
        } else {
            Detected::Put(o)
        });
    }
    for key in known.known_keys() {
        if !listed.contains(key) && !known.busy(key) {
            out.push(Detected::Delete(key));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    struct Record {
        versions: BTreeMap<String, i64>,
        busy: BTreeSet<String>,
    }

    impl Known for Record {
        fn knows(&self, o: &ObjectInfo) -> bool {
            self.versions.get(&o.key) == Some(&o.last_modified.timestamp_millis())
        }
        fn known_keys(&self) -> Vec<&str> {
            self.versions.keys().map(String::as_str).collect()
        }
        fn busy(&self, key: &str) -> bool {
            self.busy.contains(key)
        }
    }

    fn obj(key: &str, ms: i64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size: 1,
            etag: None,
            last_modified: chrono::DateTime::from_timestamp_millis(ms).unwrap(),
        }
    }

    #[test]
    fn puts_new_and_changed_keys_deletes_vanished_ones_and_leaves_busy_keys_alone() {
        let record = Record {
            versions: [
                ("café.txt", 1),
                ("a b/?#%", 2),
                ("gone", 3),
                ("busy-gone", 4),
                ("busy", 5),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            busy: ["busy-gone", "busy"].into_iter().map(String::from).collect(),
        };
        let listing = [
            obj("a b/?#%", 2),
            obj("busy", 9),
            obj("café.txt", 7),
            obj("new/日本語 🙂", 1),
        ];
        let got = detect(&listing, &record);
        assert_eq!(
            got,
            vec![
                Detected::Same(&listing[0]),
                Detected::Put(&listing[2]),
                Detected::Put(&listing[3]),
                Detected::Delete("gone"),
            ]
        );
    }

    #[test]
    fn an_empty_record_puts_everything_and_an_empty_listing_deletes_everything_known() {
        let empty = Record {
            versions: BTreeMap::new(),
            busy: BTreeSet::new(),
        };
        let listing = [obj("x", 1), obj("y", 1)];
        assert!(detect(&listing, &empty).iter().all(|d| matches!(d, Detected::Put(_))));
        let full = Record {
            versions: [("x".to_string(), 1)].into_iter().collect(),
            busy: BTreeSet::new(),
        };
        assert_eq!(detect(&[], &full), vec![Detected::Delete("x")]);
        assert_eq!(detect(&[], &full)[0].key(), "x");
    }
}
