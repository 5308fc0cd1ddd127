//! Parsing of zfs output: the probe's key=value lines and `zfs get -Hp -o name,property,value`.

use std::collections::BTreeMap;

use crate::driver::{Capabilities, Snapshot, VolumeInfo};

use super::commands::{PROP_FINGERPRINT, PROP_LASTSNAP, PROP_SOURCE};

pub fn capabilities(out: &str) -> Capabilities {
    let mut c = Capabilities::default();
    for line in out.lines() {
        match line.trim().split_once('=') {
            Some(("version", v)) => c.pool_version = v.trim().parse().ok().filter(|v| *v < 5000),
            Some(("listp", v)) => c.list_parsable = v.trim() == "1",
            Some(("resume", v)) => c.resume_tokens = v.trim() == "1",
            Some(("sendP", v)) => c.send_estimate = v.trim() == "1",
            _ => {}
        }
    }
    c
}

/// A user property's value, or None where zfs prints "-" (unset).
/// The value is the remote's to choose, so control characters come back escaped.
fn user_value(v: &str) -> Option<String> {
    (v != "-" && !v.is_empty()).then(|| crate::text::escape_controls(v).into_owned())
}

/// Groups `zfs get` lines into one VolumeInfo per requested dataset (in request order).
pub fn inspect(out: &str, datasets: &[&str]) -> Vec<VolumeInfo> {
    let mut by_ds: BTreeMap<&str, VolumeInfo> = BTreeMap::new();
    let mut snaps: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    for line in out.lines() {
        let mut f = line.splitn(3, '\t');
        let (Some(name), Some(prop), Some(value)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (ds, snap) = match name.split_once('@') {
            Some((d, s)) => (d, Some(s)),
            None => (name, None),
        };
        let Some(&key) = datasets.iter().find(|d| **d == ds) else {
            continue;
        };
        match snap {
            Some(s) => {
                if prop == "creation" {
                    if let Ok(t) = value.parse() {
                        snaps.entry(key).or_default().insert(s.to_string(), t);
                    }
                }
            }
            None => {
                let info = by_ds.entry(key).or_default();
                info.exists = true;
                match prop {
                    PROP_FINGERPRINT => info.fingerprint = user_value(value),
                    PROP_SOURCE => info.source = user_value(value),
                    PROP_LASTSNAP => info.lastsnap = user_value(value),
                    "referenced" => info.referenced = value.parse().ok(),
                    _ => {}
                }
            }
        }
    }
    datasets
        .iter()
        .map(|ds| {
            let mut info = by_ds.remove(ds).unwrap_or_default();
            let mut list: Vec<Snapshot> = snaps
                .remove(ds)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, created)| Snapshot { name, created })
                .collect();
            // creation has one-second resolution: names (with their timestamps) break ties
            list.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
            info.snapshots = list;
            info
        })
        .collect()
}

/// The byte count in `zfs send -nP` output ("size\t12345").
pub fn estimate(out: &str) -> Option<u64> {
    out.lines()
        .rev()
        .find_map(|l| l.strip_prefix("size").map(|r| r.trim().parse().ok()))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inspect_output() {
        let out = "b/d\tcreation\t100\t-\n\
                   b/d\tferry:fingerprint\tabc\n\
                   b/d\tferry:source\ts:t/d\n\
                   b/d\tferry:lastsnap\tferry.abc.2\n\
                   b/d@ferry.abc.2\tcreation\t200\n\
                   b/d@ferry.abc.1\tcreation\t200\n\
                   b/d@ferry.abc.2\tferry:fingerprint\tabc\n\
                   b/d/child\tcreation\t5\n\
                   b/e\tcreation\t1\n\
                   b/e\tferry:fingerprint\t-\n";
        let v = inspect(out, &["b/d", "b/e", "b/missing"]);
        assert!(v[0].exists);
        assert_eq!(v[0].fingerprint.as_deref(), Some("abc"));
        assert_eq!(v[0].lastsnap.as_deref(), Some("ferry.abc.2"));
        let names: Vec<_> = v[0].snapshots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ferry.abc.1", "ferry.abc.2"]);
        assert!(v[1].exists);
        assert_eq!(v[1].fingerprint, None);
        assert!(v[1].snapshots.is_empty());
        assert!(!v[2].exists);
    }

    #[test]
    fn parses_probe_and_estimate() {
        let c = capabilities("version=23\nlistp=0\nresume=0\nsendP=0\n");
        assert_eq!(c.pool_version, Some(23));
        assert!(!c.list_parsable && !c.resume_tokens && !c.send_estimate);
        let c = capabilities("version=-\nlistp=1\nresume=1\nsendP=1\n");
        assert_eq!(c.pool_version, None);
        assert!(c.send_estimate);
        assert_eq!(estimate("incremental\ta\tb\t999\nsize\t1234\n"), Some(1234));
        assert_eq!(estimate("nothing"), None);
    }
}
