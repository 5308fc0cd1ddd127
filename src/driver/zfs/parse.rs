//! Parsing of zfs output: the probe's key=value lines and `zfs get -Hp -o name,property,value`.

use std::collections::BTreeMap;

use crate::driver::{Capabilities, Encryption, Snapshot, VolumeInfo};

use super::classify;
use super::commands::{
    DESTROYED, FAILED, PROP_ENCRYPTION, PROP_FINGERPRINT, PROP_LASTSNAP, PROP_RESUME_TOKEN, PROP_SOURCE, USERREFS,
};
use crate::driver::{Descendant, Destroy, DriverError, Under};

pub fn capabilities(out: &str) -> Capabilities {
    let mut c = Capabilities::default();
    for line in out.lines() {
        match line.trim().split_once('=') {
            Some(("version", v)) => c.pool_version = v.trim().parse().ok().filter(|v| *v < 5000),
            Some(("listp", v)) => c.list_parsable = v.trim() == "1",
            Some(("resume", v)) => c.resume_tokens = v.trim() == "1",
            Some(("sendP", v)) => c.send_estimate = v.trim() == "1",
            Some(("features", v)) => c.holds = v.trim() == "1",
            Some(("sendc", v)) => c.compressed_send = v.trim() == "1",
            Some(("recvx", v)) => c.receive_exclude = v.trim() == "1",
            Some((feature, v)) if feature.starts_with("feature@") => {
                // `zpool get` says enabled or active where the pool has it; disabled, or nothing
                // (pool v23 knows no feature), where not
                let on = matches!(v.trim(), "enabled" | "active");
                match feature {
                    "feature@bookmarks" => c.bookmarks = on,
                    "feature@large_blocks" => c.large_blocks = on,
                    "feature@embedded_data" => c.embedded_data = on,
                    "feature@encryption" => c.encryption = on,
                    _ => {}
                }
            }
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
    let mut marks: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
    let mut encryption: BTreeMap<&str, Vec<(&str, Option<String>)>> = BTreeMap::new();
    for line in out.lines() {
        let mut f = line.splitn(4, '\t');
        let (Some(name), Some(prop), Some(value)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        // ferry's marks count only where they were set: a dataset below a replica inherits them
        let inherited = f.next().is_some_and(|s| s.starts_with("inherited"));
        let value = if inherited && prop.starts_with("ferry:") {
            "-"
        } else {
            value
        };
        let (ds, snap, into) = match (name.split_once('@'), name.split_once('#')) {
            (Some((d, s)), _) => (d, Some(s), &mut snaps),
            (None, Some((d, b))) => (d, Some(b), &mut marks),
            (None, None) => (name, None, &mut snaps),
        };
        let Some(&key) = datasets.iter().find(|d| **d == ds) else {
            continue;
        };
        match snap {
            Some(s) => {
                if prop == "creation" {
                    if let Ok(t) = value.parse() {
                        into.entry(key).or_default().insert(s.to_string(), t);
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
                    PROP_RESUME_TOKEN => info.resume_token = user_value(value),
                    PROP_ENCRYPTION => {
                        if let Some(cipher) = user_value(value).filter(|v| v != "off") {
                            info.encryption.get_or_insert_with(Encryption::default).cipher = cipher;
                        }
                    }
                    "encryptionroot" | "keyformat" | "keystatus" => {
                        encryption.entry(key).or_default().push((prop, user_value(value)));
                    }
                    _ => {}
                }
            }
        }
    }
    datasets
        .iter()
        .map(|ds| {
            let mut info = by_ds.remove(ds).unwrap_or_default();
            info.snapshots = oldest_first(snaps.remove(ds));
            info.bookmarks = oldest_first(marks.remove(ds));
            // the key's properties count only for an encrypted dataset (zfs prints `none` and `-`
            // for the others)
            if let Some(e) = info.encryption.as_mut() {
                for (prop, value) in encryption.remove(ds).unwrap_or_default() {
                    match prop {
                        "encryptionroot" => e.root = value,
                        "keyformat" => e.key_format = value.filter(|v| v != "none"),
                        _ => e.key_loaded = value.map(|v| v == "available"),
                    }
                }
            }
            info
        })
        .collect()
}

/// Snapshots (or bookmarks) by name with their creation, as a list oldest first.
fn oldest_first(by_name: Option<BTreeMap<String, i64>>) -> Vec<Snapshot> {
    let mut list: Vec<Snapshot> = by_name
        .unwrap_or_default()
        .into_iter()
        .map(|(name, created)| Snapshot {
            name,
            created,
            id: None,
        })
        .collect();
    // creation has one-second resolution: names (with their timestamps) break ties
    list.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    list
}

/// What `commands::verify` printed about one side.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verify {
    pub guid: Option<String>,
    pub snap_referenced: Option<u64>,
    pub written: Option<u64>,
    pub referenced: Option<u64>,
}

pub fn verify(out: &str) -> Verify {
    let (snap, vol) = out.split_once("#volume").unwrap_or((out, ""));
    let get = |text: &str, key: &str| {
        text.lines().find_map(|l| {
            l.split_once('\t')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v.trim().to_string())
        })
    };
    Verify {
        guid: get(snap, "guid").filter(|g| g != "-"),
        snap_referenced: get(snap, "referenced").and_then(|v| v.parse().ok()),
        written: get(vol, "written").and_then(|v| v.parse().ok()),
        referenced: get(vol, "referenced").and_then(|v| v.parse().ok()),
    }
}

/// The byte count in `zfs send -nP` output ("size\t12345").
pub fn estimate(out: &str) -> Option<u64> {
    out.lines()
        .rev()
        .find_map(|l| l.strip_prefix("size").map(|r| r.trim().parse().ok()))
        .flatten()
}

/// The outcome of each snapshot `destroy_each` was given, in the order given. A snapshot the
/// output does not mention (the command was cut off) counts as failed. Why one failed is read
/// about that snapshot alone; a busy one with user references is held (`zfs hold`: it stays
/// until released, so retrying is no use).
pub fn destroyed(out: &str, ds: &str, snaps: &[String]) -> Vec<(String, Destroy)> {
    let mut said: BTreeMap<&str, Destroy> = BTreeMap::new();
    let mut refs: BTreeMap<&str, u64> = BTreeMap::new();
    for line in out.lines() {
        let mut f = line.splitn(3, '\t');
        let (Some(word), Some(name)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(snap) = name.strip_prefix(ds).and_then(|r| r.strip_prefix('@')) else {
            continue;
        };
        let outcome = match word {
            DESTROYED => Destroy::Destroyed,
            FAILED => match classify(name, f.next().unwrap_or("")) {
                DriverError::DoesNotExist(_) => Destroy::Absent,
                e => Destroy::Failed(e),
            },
            USERREFS => {
                if let Some(n) = f.next().and_then(|v| v.trim().parse().ok()) {
                    refs.insert(snap, n);
                }
                continue;
            }
            _ => continue,
        };
        said.insert(snap, outcome);
    }
    snaps
        .iter()
        .map(|s| {
            let o = match said.remove(s.as_str()) {
                Some(Destroy::Failed(DriverError::Busy(why))) if refs.get(s.as_str()).is_some_and(|n| *n > 0) => {
                    let n = refs[s.as_str()];
                    Destroy::Failed(DriverError::Held(format!(
                        "{why} (held: {n} user reference(s); `zfs release` frees it)"
                    )))
                }
                Some(o) => o,
                None => Destroy::Failed(DriverError::Other("no answer from zfs destroy".into())),
            };
            (s.clone(), o)
        })
        .collect()
}

/// `zfs get -H -r -o name,value,source ferry:fingerprint` lines: every dataset and snapshot
/// under a dataset with the fingerprint set on it (not inherited), if any.
pub fn descendants(out: &str, root: &str) -> Vec<Descendant> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let name = (*f.first()?).to_string();
            if name.is_empty() {
                return None;
            }
            let value = f.get(1).copied().unwrap_or("-");
            let source = f.get(2).copied().unwrap_or("-");
            // a value inherited from the parent says nothing about the child itself
            let own = matches!(source, "local" | "received");
            let under = if let Some(snap) = name.strip_prefix(root).and_then(|r| r.strip_prefix('@')) {
                Under::Snapshot(snap.to_string())
            } else if let Some(child) = name.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
                if child.contains('@') {
                    Under::ChildSnapshot
                } else {
                    Under::Child
                }
            } else {
                Under::Itself
            };
            Some(Descendant {
                fingerprint: user_value(value).filter(|_| own),
                name,
                under,
            })
        })
        .collect()
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
                   b/e\tferry:fingerprint\t-\n\
                   b/d/c\tcreation\t5\t-\n\
                   b/d/c\tferry:fingerprint\tabc\tinherited from b/d\n";
        let v = inspect(out, &["b/d", "b/e", "b/missing", "b/d/c"]);
        assert!(v[0].exists);
        assert_eq!(v[0].fingerprint.as_deref(), Some("abc"));
        assert_eq!(v[0].lastsnap.as_deref(), Some("ferry.abc.2"));
        let names: Vec<_> = v[0].snapshots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ferry.abc.1", "ferry.abc.2"]);
        assert!(v[1].exists);
        assert_eq!(v[1].fingerprint, None);
        assert!(v[1].snapshots.is_empty());
        assert!(!v[2].exists);
        assert!(
            v[3].exists && v[3].fingerprint.is_none(),
            "an inherited mark is not the child's"
        );
    }

    #[test]
    fn reads_a_resume_token_and_none_where_zfs_prints_a_dash() {
        let out = "p/r\tcreation\t100\t-\n\
                   p/r\treceive_resume_token\t1-e604ea4bf-e0-789c63a2\t-\n\
                   p/s\tcreation\t100\t-\n\
                   p/s\treceive_resume_token\t-\t-\n";
        let v = inspect(out, &["p/r", "p/s"]);
        assert_eq!(v[0].resume_token.as_deref(), Some("1-e604ea4bf-e0-789c63a2"));
        assert_eq!(v[1].resume_token, None);
    }

    #[test]
    fn reads_an_encrypted_datasets_key() {
        let out = "p/e\tcreation\t100\t-\n\
                   p/e\tencryption\taes-256-gcm\t-\n\
                   p/e\tencryptionroot\tp/e\t-\n\
                   p/e\tkeyformat\tpassphrase\t-\n\
                   p/e\tkeystatus\tunavailable\t-\n\
                   p/p\tcreation\t100\t-\n\
                   p/p\tencryption\toff\tdefault\n\
                   p/p\tencryptionroot\t-\t-\n\
                   p/p\tkeyformat\tnone\tdefault\n\
                   p/p\tkeystatus\t-\t-\n";
        let v = inspect(out, &["p/e", "p/p"]);
        let e = v[0].encryption.as_ref().unwrap();
        assert_eq!(e.cipher, "aes-256-gcm");
        assert_eq!(e.root.as_deref(), Some("p/e"));
        assert_eq!(e.key_format.as_deref(), Some("passphrase"));
        assert_eq!(e.key_loaded, Some(false));
        assert_eq!(v[1].encryption, None);
    }

    #[test]
    fn bookmarks_are_listed_apart_from_snapshots() {
        let out = "p/d\tcreation\t100\t-\n\
                   p/d@ferry.f.2\tcreation\t120\t-\n\
                   p/d#ferry.f.2\tcreation\t120\t-\n\
                   p/d#ferry.f.1\tcreation\t110\t-\n\
                   p/e#ferry.f.1\tcreation\t110\t-\n";
        let v = inspect(out, &["p/d"]);
        let names = |l: &[Snapshot]| l.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&v[0].snapshots), ["ferry.f.2"]);
        assert_eq!(names(&v[0].bookmarks), ["ferry.f.1", "ferry.f.2"]);
        assert_eq!(v[0].bookmarks[0].created, 110);
    }

    #[test]
    fn parses_probe_and_estimate() {
        let c = capabilities("version=23\nlistp=0\nresume=0\nsendP=0\nfeatures=0\n");
        assert_eq!(c.pool_version, Some(23));
        assert!(!c.list_parsable && !c.resume_tokens && !c.send_estimate && !c.holds);
        let c = capabilities(
            "version=-\nlistp=1\nresume=1\nsendP=1\nfeatures=1\nsendc=1\nrecvx=1\nfeature@bookmarks=active\n\
             feature@large_blocks=enabled\nfeature@embedded_data=active\nfeature@encryption=disabled\n",
        );
        assert_eq!(c.pool_version, None);
        assert!(c.send_estimate && c.holds && c.bookmarks && c.compressed_send && c.receive_exclude);
        assert!(c.large_blocks && c.embedded_data && !c.encryption);
        // pool v23 prints no feature at all
        let v23 = capabilities("version=23\nsendc=0\n");
        assert!(!v23.bookmarks && !v23.large_blocks && !v23.compressed_send);
        assert_eq!(estimate("incremental\ta\tb\t999\nsize\t1234\n"), Some(1234));
        assert_eq!(estimate("nothing"), None);
    }

    #[test]
    fn parses_destroy_outcomes() {
        let out = "destroyed\tp/d@a\n\
                   failed\tp/d@b\tcannot destroy 'p/d@b': dataset is busy\n\
                   failed\tp/d@c\tcannot open 'p/d@c': dataset does not exist\n\
                   destroyed\tp/dx@e\n";
        let snaps: Vec<String> = ["a", "b", "c", "e"].map(String::from).to_vec();
        let r = destroyed(out, "p/d", &snaps);
        assert_eq!(r[0], ("a".into(), Destroy::Destroyed));
        assert_eq!(
            r[1],
            (
                "b".into(),
                Destroy::Failed(DriverError::Busy("cannot destroy 'p/d@b': dataset is busy".into()))
            )
        );
        assert_eq!(r[2], ("c".into(), Destroy::Absent));
        // another dataset's line is not this one's answer
        assert!(matches!(&r[3], (n, Destroy::Failed(_)) if n == "e"));
    }

    #[test]
    fn parses_descendants() {
        let out = "b/d\tfp1\tlocal\nb/d@s\tfp1\tinherited from b/d\nb/d/x\tfp2\treceived\nb/d/y\t-\t-\n";
        let v = descendants(out, "b/d");
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].under, Under::Itself);
        assert_eq!(v[1].under, Under::Snapshot("s".into()));
        assert_eq!(v[2].under, Under::Child);
        assert_eq!(v[1].fingerprint, None);
        assert_eq!(v[2].fingerprint.as_deref(), Some("fp2"));
        assert_eq!(v[3].name, "b/d/y");
    }
}
