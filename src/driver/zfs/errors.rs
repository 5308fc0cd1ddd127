//! Reads zfs's error messages into `DriverError` cases, anchored to the dataset or snapshot the
//! command named: a message counts only in the shape zfs prints it (`cannot <verb> '<name>':
//! <reason>`, OpenZFS's `cannot destroy snapshot <name>: <reason>`), about that name, with one
//! of the reasons zfs really gives. A word inside a name (`tank/household`, `pool/busybox`) is
//! never taken for a reason.

use crate::driver::DriverError;

/// One complaint zfs printed: about `name`, because of `reason` (the text after the name's `: `).
#[derive(Debug, PartialEq, Eq)]
struct Complaint<'a> {
    name: Option<&'a str>,
    reason: &'a str,
}

/// Splits one stderr line into what it is about and why, where it has zfs's shape.
fn complaint(line: &str) -> Option<Complaint<'_>> {
    let line = line.trim();
    // OpenZFS, destroying snapshots by list: `cannot destroy snapshot tank/x@s: dataset is busy`
    if let Some(rest) = line.strip_prefix("cannot destroy snapshot ") {
        // a name may hold `: ` (spaces and colons are allowed), zfs's reasons never do
        let (name, reason) = rest.rsplit_once(": ")?;
        return Some(Complaint {
            name: Some(name),
            reason,
        });
    }
    // `cannot receive incremental stream: destination tank/x has been modified` (the rest,
    // `since most recent snapshot`, on the next line)
    if let Some(rest) = line.strip_prefix("cannot receive incremental stream: destination ") {
        let name = rest.strip_suffix(" has been modified")?;
        return Some(Complaint {
            name: Some(name),
            reason: "has been modified",
        });
    }
    // `cannot destroy 'tank/x@s': dataset is busy`, `cannot open 'tank/x': dataset does not exist`,
    // `cannot release 'tag' from 'tank/x@s': no such tag on this dataset`: the last quoted name
    // before `': ` is the dataset (zfs names never hold a quote)
    if line.starts_with("cannot ") {
        let (head, reason) = line.split_once("': ")?;
        let name = head.rsplit_once('\'')?.1;
        return Some(Complaint {
            name: Some(name),
            reason,
        });
    }
    // OpenZFS, destroying a snapshot that is not there: the name is the command's own
    if line == "could not find any snapshots to destroy; check snapshot names." {
        return Some(Complaint {
            name: None,
            reason: "dataset does not exist",
        });
    }
    None
}

/// What a reason zfs gives means, where ferry acts on it.
fn case(reason: &str) -> Option<fn(String) -> DriverError> {
    // zfs's hint on the next line (`use '-R' to destroy the following datasets:`) comes on the
    // same line where `destroy_each` folded the message onto one
    let reason = reason.split(" use '-").next().unwrap_or(reason).trim();
    Some(match reason.trim_end_matches('.') {
        "dataset does not exist" => DriverError::DoesNotExist,
        // EBUSY: a send's hold, a mount, and (both zfs-fuse and OpenZFS) a user hold too, which
        // only the snapshot's `userrefs` tells apart (see `parse::destroyed`)
        "dataset is busy" | "pool or dataset is busy" | "snapshot has dependent clones" | "snapshot is cloned" => {
            DriverError::Busy
        }
        "it's being held" | "it has holds" | "snapshot is held" | "tag already exists on this dataset" => {
            DriverError::Held
        }
        "has been modified" => DriverError::Modified,
        _ => return None,
    })
}

/// Whether a complaint about `said` is about `named`: the same name, or (for a dataset that does
/// not exist) a dataset above it, as `zfs hold t tank/gone@s` says `cannot open 'tank/gone'`.
fn about(said: &str, named: &str, gone: bool) -> bool {
    said == named
        || (gone
            && named
                .strip_prefix(said)
                .is_some_and(|r| r.starts_with('/') || r.starts_with('@')))
}

/// Reads the stderr of a zfs command that named `named` (a dataset or `ds@snap`) into a case;
/// `Other` unless a line says, in zfs's words, why `named` itself failed. The whole text stays
/// what the case displays.
pub fn classify(named: &str, stderr: &str) -> DriverError {
    let text = stderr.trim().to_string();
    for line in stderr.lines() {
        let Some(c) = complaint(line) else { continue };
        let Some(make) = case(c.reason) else { continue };
        let gone = c.reason.starts_with("dataset does not exist");
        if c.name.is_none_or(|n| about(n, named, gone)) {
            return make(text);
        }
    }
    DriverError::Other(text)
}

/// Whether every non-empty line of a listing's stderr says that one of `named` does not exist
/// (a listing of many datasets exits 1 when some are missing; anything else is a failure).
pub fn only_missing(named: &[&str], stderr: &str) -> bool {
    stderr.lines().filter(|l| !l.trim().is_empty()).all(|l| {
        complaint(l).is_some_and(|c| {
            c.reason == "dataset does not exist" && c.name.is_some_and(|n| named.iter().any(|d| about(n, d, true)))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: &DriverError) -> &'static str {
        match e {
            DriverError::DoesNotExist(_) => "gone",
            DriverError::Busy(_) => "busy",
            DriverError::Held(_) => "held",
            DriverError::Modified(_) => "modified",
            DriverError::Other(_) => "other",
        }
    }

    /// Messages as zfs-fuse 0.7 (pool v23) printed them here, and OpenZFS 2.x's libzfs shapes,
    /// on datasets whose names hold the words the old substring match took for reasons.
    #[test]
    fn real_messages_are_read_about_the_named_dataset_only() {
        let cases: &[(&str, &str, &str)] = &[
            // zfs-fuse: a snapshot with a user hold (`zfs hold`) and one a send holds, alike
            ("tank/household@s1", "cannot destroy 'tank/household@s1': dataset is busy", "busy"),
            ("tank/held@s1", "cannot destroy 'tank/held@s1': dataset is busy", "busy"),
            ("pool/busybox@s1", "cannot destroy 'pool/busybox@s1': dataset is busy", "busy"),
            // OpenZFS 2.x, destroying snapshots (zfs_destroy_snaps_nvl)
            ("tank/household@s", "cannot destroy snapshot tank/household@s: dataset is busy", "busy"),
            ("tank/a-b_c.d:e@s", "cannot destroy snapshot tank/a-b_c.d:e@s: dataset is busy", "busy"),
            ("tank/held@s", "cannot destroy snapshot tank/held@s: snapshot is cloned", "busy"),
            // names may hold spaces and colons, even `: `
            ("tank/my data:v1@s", "cannot destroy snapshot tank/my data:v1@s: dataset is busy", "busy"),
            ("tank/a: it has holds@s", "cannot destroy snapshot tank/a: it has holds@s: dataset is busy", "busy"),
            ("tank/a: it has holds@s", "cannot destroy 'tank/a: it has holds@s': dataset is busy", "busy"),
            ("tank/x is held@s", "cannot open 'tank/x is held@s': dataset does not exist", "gone"),
            ("tank/x@s", "cannot destroy snapshot tank/x@s: it's being held", "held"),
            ("tank/x@s", "cannot destroy snapshot tank/x@s: snapshot is held", "held"),
            ("tank/household@s1", "cannot hold 'tank/household@s1': tag already exists on this dataset", "held"),
            // zfs-fuse: a clone keeps its origin
            (
                "pool/busybox@s1",
                "cannot destroy 'pool/busybox@s1': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\npool/busyclone",
                "busy",
            ),
            // the same, folded onto one line by `destroy_each`
            (
                "pool/busybox@s1",
                "cannot destroy 'pool/busybox@s1': snapshot has dependent clones use '-R' to destroy the following datasets: pool/busyclone",
                "busy",
            ),
            // not there: itself, or the dataset above it
            ("tank/household@nosuch", "cannot open 'tank/household@nosuch': dataset does not exist", "gone"),
            ("tank/nosuch@s1", "cannot open 'tank/nosuch': dataset does not exist", "gone"),
            ("tank/held@s", "could not find any snapshots to destroy; check snapshot names.", "gone"),
            // another dataset's absence is not this one's
            ("tank/held", "cannot open 'tank/held-old': dataset does not exist", "other"),
            ("tank/held@s", "cannot open 'tank/he': dataset does not exist", "other"),
            ("tank/a", "cannot open 'tank/a/b': dataset does not exist", "other"),
            // a busy error about another dataset is not this one's
            ("tank/household@s", "cannot destroy 'tank/household@t': dataset is busy", "other"),
            // reasons ferry does not act on, whatever the name says
            (
                "tank/household",
                "cannot destroy 'tank/household': filesystem has children\nuse '-r' to destroy the following datasets:\ntank/household@s1",
                "other",
            ),
            ("tank/busy-held", "cannot destroy 'tank/busy-held': out of space", "other"),
            ("tank/household@s1,s2", "cannot open 'tank/household@s1,s2': invalid dataset name", "other"),
            (
                "tank/household@s1",
                "cannot release 'nosuch' from 'tank/household@s1': no such tag on this dataset",
                "other",
            ),
            // receive into a destination changed by hand (zfs-fuse, two lines)
            (
                "backup/household",
                "cannot receive incremental stream: destination backup/household has been modified\nsince most recent snapshot",
                "modified",
            ),
            (
                "backup/held",
                "cannot receive incremental stream: destination backup/held.old has been modified\nsince most recent snapshot",
                "other",
            ),
            ("tank/x", "", "other"),
        ];
        for (named, msg, want) in cases {
            let e = classify(named, msg);
            assert_eq!(kind(&e), *want, "{named}: {msg}");
            assert_eq!(e.to_string(), msg.trim(), "the case shows zfs's words");
        }
    }

    #[test]
    fn a_listing_fails_unless_only_named_datasets_are_missing() {
        let named = ["tank/household", "tank/held"];
        assert!(only_missing(
            &named,
            "cannot open 'tank/household': dataset does not exist\n\ncannot open 'tank/held': dataset does not exist\n"
        ));
        assert!(only_missing(&named, ""));
        assert!(!only_missing(
            &named,
            "cannot open 'tank/other': dataset does not exist"
        ));
        assert!(!only_missing(&named, "cannot open 'tank/household': dataset is busy"));
        assert!(!only_missing(&named, "internal error: dataset does not exist"));
    }
}
