//! Reading the block driver's script output into volumes and capabilities. Pure.

use super::commands::{ALLOC, CLONE, FREE, FS, JOURNAL, NAME, PEER, STATE, VOL};
use crate::driver::{Capabilities, Snapshot, VolumeInfo};

/// What `inspect` printed, per volume; `sources[i]` says whether volume i is a pair's source.
pub fn inspect(text: &str, sources: &[bool]) -> Vec<VolumeInfo> {
    let mut out: Vec<VolumeInfo> = sources.iter().map(|_| VolumeInfo::default()).collect();
    let mut device = vec![false; sources.len()];
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(VOL) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let Some(i) = f
                .first()
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| *i < out.len())
            else {
                continue;
            };
            let size = f.get(2).and_then(|s| s.parse::<u64>().ok());
            match f.get(1).copied() {
                Some("file") => out[i].exists = true,
                Some("device") => {
                    device[i] = true;
                    // a device is a source as it stands; as a destination it is ours once it has a checkpoint
                    out[i].exists = sources[i];
                }
                _ => {}
            }
            out[i].referenced = size;
        } else if let Some(rest) = line.strip_prefix(NAME) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let Some(i) = f
                .first()
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|i| *i < out.len())
            else {
                continue;
            };
            let v = &mut out[i];
            match f.get(1).copied() {
                Some("sealed") => {
                    v.interrupted = Some(
                        "an apply was interrupted (the replica partly written, or its checkpoint not yet \
                         recorded): the next update finishes it before anything else"
                            .into(),
                    )
                }
                Some(w @ (JOURNAL | CLONE)) => v.leftovers.push(w.to_string()),
                Some(which) if f.len() >= 5 => {
                    let (name, created, id) = (f[2], f[3].parse::<i64>().unwrap_or(0), f[4]);
                    if !v.snapshots.iter().any(|s| s.name == name) {
                        v.snapshots.push(Snapshot {
                            name: name.to_string(),
                            created,
                            id: Some(id.to_string()),
                        });
                    }
                    if which == "checkpoint" {
                        v.lastsnap = Some(name.to_string());
                        v.fingerprint = fingerprint_of(name);
                        if device[i] {
                            v.exists = true;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    for v in &mut out {
        v.snapshots.sort_by_key(|s| s.created);
    }
    out
}

/// The pair fingerprint a checkpoint name carries: `ferry.<fp>.<time>`.
fn fingerprint_of(name: &str) -> Option<String> {
    let mut parts = name.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("ferry"), Some(fp), Some(_)) if !fp.is_empty() => Some(fp.to_string()),
        _ => None,
    }
}

/// What `probe` printed: the peer's version line (`tool_version`, `None` when there is no
/// ferry there), the filesystem type, the free bytes.
pub fn capabilities(text: &str) -> (Capabilities, Option<String>) {
    let mut caps = Capabilities::default();
    let mut missing = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix(PEER) {
            match v.strip_prefix("missing ") {
                Some(why) => missing = Some(why.trim().to_string()),
                None => caps.tool_version = Some(v.trim().to_string()),
            }
        } else if let Some(v) = line.strip_prefix(FS) {
            caps.filesystem = Some(v.trim().to_string()).filter(|s| !s.is_empty());
        } else if let Some(v) = line.strip_prefix(FREE) {
            caps.free_bytes = v.trim().parse().ok();
            caps.device = v.trim() == "device";
        } else if let Some(v) = line.strip_prefix(ALLOC) {
            let f: Vec<u64> = v.split_whitespace().filter_map(|n| n.parse().ok()).collect();
            if let [blocks, size] = f[..] {
                caps.allocated_bytes = Some(blocks.saturating_mul(size));
            }
        } else if let Some(v) = line.strip_prefix(STATE) {
            let mut f = v.split_whitespace();
            caps.journal_free_bytes = f.next().and_then(|n| n.parse().ok());
            caps.journal_beside = f.next().map(|w| w == "same");
        }
    }
    (caps, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_with_its_checkpoint_and_a_sealed_journal() {
        let text = "#vol 0 file 1048576\n#name 0 source ferry.ab.20260101T000000Z 100 aa\n\
                    #vol 1 file 1048576\n#name 1 checkpoint ferry.ab.20260101T000000Z 100 aa\n#name 1 sealed -\n";
        let v = inspect(text, &[true, false]);
        assert!(v[0].exists && v[0].fingerprint.is_none());
        assert_eq!(v[0].snapshots[0].id.as_deref(), Some("aa"));
        assert_eq!(v[1].fingerprint.as_deref(), Some("ab"));
        assert_eq!(v[1].referenced, Some(1048576));
        assert!(v[1].interrupted.is_some());
        let v = inspect("#vol 0 file 1\n#name 0 journal -\n#name 0 clone -\n", &[false]);
        assert_eq!(v[0].leftovers, vec!["journal".to_string(), "clone".to_string()]);
    }

    #[test]
    fn a_blank_device_is_no_replica_yet_but_a_device_source_exists() {
        let text = "#vol 0 device 8388608\n#vol 1 device 16777216\n";
        let v = inspect(text, &[true, false]);
        assert!(v[0].exists);
        assert!(!v[1].exists);
        let v = inspect("#vol 0 device 1\n#name 0 checkpoint ferry.ab.1 5 cc\n", &[false]);
        assert!(v[0].exists);
    }

    #[test]
    fn the_probe_tells_a_missing_peer() {
        let (c, m) = capabilities("#peer missing sh: 1: ferry: not found\n#fs ext2/ext3\n#free 100\n");
        assert!(c.tool_version.is_none());
        assert!(m.unwrap().contains("not found"));
        assert_eq!(c.free_bytes, Some(100));
        let (c, m) = capabilities("#peer ferry 0.1.0 block protocol 1\n#fs btrfs\n#free 5\n");
        assert_eq!(c.tool_version.as_deref(), Some("ferry 0.1.0 block protocol 1"));
        assert_eq!(c.filesystem.as_deref(), Some("btrfs"));
        assert!(m.is_none());
        let (c, _) = capabilities("#free 900\n#alloc 2048 512\n#state 800 same\n");
        assert_eq!(
            (c.allocated_bytes, c.journal_free_bytes, c.journal_beside, c.device),
            (Some(1 << 20), Some(800), Some(true), false)
        );
        let (c, _) = capabilities("#free device\n#state 800 apart\n");
        assert_eq!((c.free_bytes, c.journal_beside, c.device), (None, Some(false), true));
    }
}
