//! Reads what the btrfs driver's scripts print (see `commands`) into the driver's types.

use crate::driver::{Capabilities, Descendant, Destroy, DriverError, Snapshot, Under, VolumeInfo};

use super::classify;
use super::commands::{EXISTS, MARK, MARKS, RECEIVING, SNAP, VOL};

/// `tool=…` and `fs=…` lines of the probe.
pub fn capabilities(out: &str) -> Capabilities {
    let mut caps = Capabilities {
        list_parsable: true,
        ..Capabilities::default()
    };
    for line in out.lines() {
        if let Some(v) = line.strip_prefix("tool=") {
            caps.tool_version = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        } else if let Some(v) = line.strip_prefix("fs=") {
            caps.filesystem = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        } else if let Some(v) = line.strip_prefix("same=") {
            caps.snapshots_beside = Some(v.trim() == "yes");
        } else if let Some(v) = line.strip_prefix("free=") {
            caps.free_bytes = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("used=") {
            caps.used_bytes = v.trim().parse().ok();
        }
    }
    caps
}

/// `btrfs subvolume show`'s creation time, `2026-11-22 07:34:57 +0000`, as Unix seconds.
fn created(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S %z")
        .ok()
        .map(|t| t.timestamp())
}

/// One snapshot's `show` fields while they are read.
#[derive(Default)]
struct Fields {
    name: String,
    uuid: Option<String>,
    received: Option<String>,
    created: Option<i64>,
}

/// A read `-` is btrfs's "none".
fn value(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty() && v != "-").then(|| v.to_string())
}

/// The inspect script's output, one `VolumeInfo` per volume asked about, in order. On a source
/// (`sources[i]`) a snapshot's id is its UUID; on a destination its received UUID, and a
/// snapshot without one is an interrupted receive: not a checkpoint, left out (the next receive
/// deletes it).
pub fn inspect(out: &str, sources: &[bool]) -> Vec<VolumeInfo> {
    let mut vols: Vec<VolumeInfo> = sources.iter().map(|_| VolumeInfo::default()).collect();
    let mut current: Option<usize> = None;
    let mut snap: Option<Fields> = None;
    let finish = |vols: &mut Vec<VolumeInfo>, at: Option<usize>, f: Option<Fields>| {
        let (Some(i), Some(f)) = (at, f) else { return };
        let source = sources.get(i).copied().unwrap_or(false);
        let id = if source { f.uuid } else { f.received };
        // a snapshot that cannot be read (deleted meanwhile) or an interrupted receive
        let (Some(id), Some(created)) = (id, f.created) else {
            return;
        };
        vols[i].snapshots.push(Snapshot {
            name: f.name,
            created,
            id: Some(id),
        });
    };
    for line in out.lines() {
        if let Some(n) = line.strip_prefix(VOL) {
            finish(&mut vols, current, snap.take());
            current = n.trim().parse().ok().filter(|i| *i < vols.len());
            continue;
        }
        let Some(i) = current else { continue };
        if line == EXISTS {
            vols[i].exists = true;
        } else if let Some(m) = line.strip_prefix(MARK) {
            let (k, v) = m.split_once('=').unwrap_or((m, ""));
            let v = Some(v.to_string()).filter(|v| !v.is_empty());
            match k {
                "fingerprint" => vols[i].fingerprint = v,
                "source" => vols[i].source = v,
                "lastsnap" => vols[i].lastsnap = v,
                _ => {}
            }
        } else if let Some(n) = line.strip_prefix(SNAP) {
            finish(&mut vols, current, snap.take());
            snap = Some(Fields {
                name: n.to_string(),
                ..Fields::default()
            });
        } else if let (Some(f), Some((k, v))) = (snap.as_mut(), line.split_once('=')) {
            match k {
                "UUID" => f.uuid = value(v),
                "Received UUID" => f.received = value(v),
                "Creation time" => f.created = created(v),
                _ => {}
            }
        }
    }
    finish(&mut vols, current, snap.take());
    for v in &mut vols {
        // names carry the time to the second: oldest first, as every driver lists them
        v.snapshots
            .sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    }
    vols
}

/// `destroyed|absent|failed <name>[\t<error>]` lines, one outcome per snapshot asked about.
pub fn destroyed(out: &str, snaps: &[String]) -> Vec<(String, Destroy)> {
    snaps
        .iter()
        .map(|s| {
            let outcome = out.lines().find_map(|l| {
                let (word, rest) = l.split_once(' ')?;
                let (name, error) = rest.split_once('\t').unwrap_or((rest, ""));
                (name == s).then(|| match word {
                    "destroyed" => Destroy::Destroyed,
                    "absent" => Destroy::Absent,
                    _ => Destroy::Failed(classify(error.trim())),
                })
            });
            let outcome = outcome
                .unwrap_or_else(|| Destroy::Failed(DriverError::Other("no answer from btrfs subvolume delete".into())));
            (s.clone(), outcome)
        })
        .collect()
}

/// The destination directory's entries: ferry's snapshots, and what else is there (the marks file
/// goes with the directory itself). `fingerprint` is the one its marks record.
pub fn descendants(out: &str, root: &str, fingerprint: Option<String>) -> Vec<Descendant> {
    let mut all = vec![Descendant {
        name: root.to_string(),
        fingerprint: fingerprint.clone(),
        under: Under::Itself,
    }];
    // ferry's own files go with the directory
    for entry in out.lines().filter(|l| !l.is_empty() && *l != MARKS && *l != RECEIVING) {
        let name = format!("{root}/{entry}");
        let under = if entry.starts_with("ferry.") {
            Under::Snapshot(entry.to_string())
        } else {
            Under::Child
        };
        all.push(Descendant {
            name,
            fingerprint: None,
            under,
        });
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sources_and_destinations() {
        let out = "#vol 0\n#exists\n#snap ferry.ab.2\nUUID=u2\nReceived UUID=-\nCreation time=2026-11-22 07:35:00 +0000\nFlags=readonly\n\
                   #snap ferry.ab.1\nUUID=u1\nReceived UUID=-\nCreation time=2026-11-22 07:34:57 +0000\nFlags=readonly\n\
                   #vol 1\n#exists\n#mark fingerprint=ab\n#mark source=h:/srv/data\n#mark lastsnap=ferry.ab.1\n\
                   #snap ferry.ab.1\nUUID=x1\nReceived UUID=u1\nCreation time=2026-11-22 07:36:00 +0000\nFlags=readonly\n\
                   #snap ferry.ab.2\nUUID=x2\nReceived UUID=-\nCreation time=2026-11-22 07:36:10 +0000\nFlags=-\n\
                   #vol 2\n";
        let v = inspect(out, &[true, false, false]);
        assert!(v[0].exists);
        let names: Vec<_> = v[0]
            .snapshots
            .iter()
            .map(|s| (s.name.as_str(), s.id.as_deref()))
            .collect();
        assert_eq!(names, [("ferry.ab.1", Some("u1")), ("ferry.ab.2", Some("u2"))]);
        assert_eq!(v[0].snapshots[0].created, 1_795_332_897); // 2026-11-22 07:34:57 UTC
        assert_eq!(v[1].fingerprint.as_deref(), Some("ab"));
        assert_eq!(v[1].source.as_deref(), Some("h:/srv/data"));
        assert_eq!(v[1].lastsnap.as_deref(), Some("ferry.ab.1"));
        // the interrupted receive (no received UUID) is no checkpoint
        let names: Vec<_> = v[1]
            .snapshots
            .iter()
            .map(|s| (s.name.as_str(), s.id.as_deref()))
            .collect();
        assert_eq!(names, [("ferry.ab.1", Some("u1"))]);
        assert!(!v[2].exists && v[2].snapshots.is_empty());
    }

    #[test]
    fn reads_destroy_outcomes_and_entries() {
        let out = "destroyed ferry.a.1\nabsent ferry.a.2\nfailed ferry.a.3\tERROR: Could not destroy subvolume/snapshot: Device or resource busy\n";
        let snaps: Vec<String> = ["ferry.a.1", "ferry.a.2", "ferry.a.3", "ferry.a.4"]
            .map(String::from)
            .into();
        let d = destroyed(out, &snaps);
        assert_eq!(d[0].1, Destroy::Destroyed);
        assert_eq!(d[1].1, Destroy::Absent);
        assert!(matches!(d[2].1, Destroy::Failed(DriverError::Busy(_))));
        assert!(matches!(d[3].1, Destroy::Failed(DriverError::Other(_))));
        let all = descendants(
            ".ferry-checkpoint\n.ferry-receiving\nferry.a.1\nnotes\n",
            "/b/d",
            Some("a".into()),
        );
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].under, Under::Snapshot("ferry.a.1".into()));
        assert_eq!(all[2].under, Under::Child);
        assert_eq!(all[2].name, "/b/d/notes");
    }

    #[test]
    fn probe_lines() {
        let c = capabilities("tool=btrfs-progs v6.2\nfs=btrfs\n");
        assert_eq!(c.tool_version.as_deref(), Some("btrfs-progs v6.2"));
        assert_eq!(c.filesystem.as_deref(), Some("btrfs"));
        assert_eq!(c.snapshots_beside, None);
        let c = capabilities("tool=x\nfs=btrfs\nfree=1048576\nused=\n");
        assert_eq!(c.free_bytes, Some(1 << 20));
        assert_eq!(c.used_bytes, None, "du ran out of time");
        let c = capabilities("tool=\nfs=ext2/ext3\nsame=no\n");
        assert_eq!(c.tool_version, None);
        assert_eq!(c.snapshots_beside, Some(false));
    }
}
