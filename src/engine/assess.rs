//! Deciding a pair's replication state from what both sides hold. Pure: no commands run here.

use crate::config::Pair;
use crate::driver::{Snapshot, VolumeInfo};
use crate::model::snapshot_prefix;
pub use crate::model::{Checkpoint, State};

/// Our replication snapshots on one side, oldest first.
pub fn ours<'a>(info: &'a VolumeInfo, fp: &str) -> Vec<&'a Snapshot> {
    ours_of(&info.snapshots, fp)
}

/// Our replication snapshots (or bookmarks) in `list`.
pub fn ours_of<'a>(list: &'a [Snapshot], fp: &str) -> Vec<&'a Snapshot> {
    let prefix = snapshot_prefix(fp);
    list.iter().filter(|s| s.name.starts_with(&prefix)).collect()
}

/// One snapshot on both sides: the same name, and the same id where the kind keeps one (a
/// btrfs replica's received UUID is its source's UUID; a snapshot made by hand under the same
/// name is not it).
fn same(source: &Snapshot, dest: &Snapshot) -> bool {
    source.name == dest.name
        && match (&source.id, &dest.id) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

/// `assess` for a configured pair: a missing source is named (a typo in the config is the usual
/// cause, and re-creating the destination would not help).
pub fn assess_pair(pair: &Pair, source: &VolumeInfo, dest: &VolumeInfo) -> State {
    if !source.exists {
        return State::Inconsistent(format!("source {} does not exist", pair.source));
    }
    assess(&pair.fingerprint(), source, dest)
}

/// The checkpoint is the newest of our snapshots present on both sides; `ferry:lastsnap` is only
/// the record of it, so a job that died between receive and recording loses nothing.
pub fn assess(fp: &str, source: &VolumeInfo, dest: &VolumeInfo) -> State {
    if !source.exists {
        return State::Inconsistent("source volume does not exist".into());
    }
    if !dest.exists {
        return State::Uninitialized;
    }
    match dest.fingerprint.as_deref() {
        Some(f) if f == fp => {}
        Some(other) => {
            return State::Inconsistent(format!("destination belongs to another pair (fingerprint {other})"))
        }
        None => {
            return State::Inconsistent("destination exists but is not a ferry replica (no ferry fingerprint)".into())
        }
    }
    if let Some(why) = &dest.interrupted {
        return State::Inconsistent(why.clone());
    }
    let src = ours(source, fp);
    let dst = ours(dest, fp);
    // a checkpoint whose snapshot another tool destroyed on the source still counts where its
    // bookmark is there: the next incremental starts from that
    let marks = ours_of(&source.bookmarks, fp);
    let common = dst.iter().rev().find_map(|d| {
        src.iter()
            .chain(marks.iter())
            .find(|s| same(s, d))
            .map(|_| (*d).clone())
    });
    match common {
        Some(cp) => State::Synchronized(Checkpoint {
            name: cp.name,
            created: cp.created,
        }),
        None => {
            let impostor = dst.iter().rev().find(|d| src.iter().any(|s| s.name == d.name));
            let reason = match (impostor, dest.lastsnap.as_deref()) {
                (Some(d), _) => format!(
                    "{} on the destination was not received from the source's {} (their ids differ)",
                    d.name, d.name
                ),
                (None, last) => match last {
                    Some(last) if !src.iter().chain(marks.iter()).any(|s| s.name == last) => {
                        format!("checkpoint {last} is missing on the source")
                    }
                    Some(last) => format!("checkpoint {last} is missing on the destination"),
                    None => "no common ferry snapshot on both sides".into(),
                },
            };
            State::Inconsistent(reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(n: &str, t: i64) -> Snapshot {
        Snapshot {
            name: n.into(),
            created: t,
            id: None,
        }
    }

    #[test]
    fn a_snapshot_counts_only_with_the_id_it_came_with() {
        let with = |n: &str, t, id: &str| Snapshot {
            id: Some(id.into()),
            ..snap(n, t)
        };
        let mut s = vol(None, &[]);
        s.snapshots = vec![with("ferry.fp.1", 1, "u1"), with("ferry.fp.2", 2, "u2")];
        let mut d = vol(Some("fp"), &[]);
        d.snapshots = vec![with("ferry.fp.1", 1, "u1"), with("ferry.fp.2", 2, "forged")];
        match assess("fp", &s, &d) {
            State::Synchronized(cp) => assert_eq!(cp.name, "ferry.fp.1"),
            other => panic!("{other:?}"),
        }
        d.snapshots.remove(0);
        match assess("fp", &s, &d) {
            State::Inconsistent(r) => assert!(r.contains("ids differ"), "{r}"),
            other => panic!("{other:?}"),
        }
    }

    fn vol(fp: Option<&str>, snaps: &[(&str, i64)]) -> VolumeInfo {
        VolumeInfo {
            exists: true,
            fingerprint: fp.map(String::from),
            source: None,
            lastsnap: None,
            referenced: None,
            snapshots: snaps.iter().map(|(n, t)| snap(n, *t)).collect(),
            interrupted: None,
            leftovers: Vec::new(),
            resume_token: None,
            encryption: None,
            bookmarks: Vec::new(),
        }
    }

    #[test]
    fn a_checkpoint_destroyed_on_the_source_counts_where_its_bookmark_is_left() {
        let mut s = vol(None, &[("ferry.fp.3", 3)]);
        let d = vol(Some("fp"), &[("ferry.fp.1", 1), ("ferry.fp.2", 2)]);
        assert!(matches!(assess("fp", &s, &d), State::Inconsistent(_)));
        s.bookmarks = vec![snap("ferry.fp.1", 1), snap("ferry.fp.2", 2)];
        assert_eq!(
            assess("fp", &s, &d),
            State::Synchronized(Checkpoint {
                name: "ferry.fp.2".into(),
                created: 2
            })
        );
        // a bookmark of another pair's snapshot is none of ours
        s.bookmarks = vec![snap("ferry.other.2", 2)];
        assert!(matches!(assess("fp", &s, &d), State::Inconsistent(_)));
    }

    #[test]
    fn newest_common_snapshot_is_the_checkpoint() {
        let s = vol(
            None,
            &[("ferry.fp.1", 1), ("hourly", 2), ("ferry.fp.2", 3), ("ferry.fp.3", 4)],
        );
        let d = vol(Some("fp"), &[("ferry.fp.1", 1), ("hourly", 2), ("ferry.fp.2", 3)]);
        let a = assess("fp", &s, &d);
        assert_eq!(
            a,
            State::Synchronized(Checkpoint {
                name: "ferry.fp.2".into(),
                created: 3
            })
        );
    }

    #[test]
    fn states() {
        let s = vol(None, &[("ferry.fp.1", 1)]);
        assert_eq!(assess("fp", &s, &VolumeInfo::default()), State::Uninitialized);
        assert!(matches!(
            assess("fp", &s, &vol(Some("other"), &[])),
            State::Inconsistent(_)
        ));
        assert!(matches!(
            assess("fp", &s, &vol(None, &[("ferry.fp.1", 1)])),
            State::Inconsistent(_)
        ));
        let mut d = vol(Some("fp"), &[("ferry.fp.0", 0)]);
        d.lastsnap = Some("ferry.fp.0".into());
        match assess("fp", &s, &d) {
            State::Inconsistent(r) => assert!(r.contains("missing on the source"), "{r}"),
            other => panic!("{other:?}"),
        }
        // another pair's snapshots never count
        let d = vol(Some("fp"), &[("ferry.zz.1", 1)]);
        assert!(matches!(
            assess("fp", &vol(None, &[("ferry.zz.1", 1)]), &d),
            State::Inconsistent(_)
        ));
    }
}
