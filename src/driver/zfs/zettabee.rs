//! zettabee's names on disk, read so ferry can adopt its replicas: the `zettabee:` user properties
//! and the guids of a dataset's snapshots.
//!
//! zettabee wrote two generations of names. The first: snapshots `zettabee.<YYYYmmddHHMMSS><zone>`
//! and `zettabee:lastsnap` on both sides (plus `zettabee:sourcefs`/`destinfs` on the destination).
//! The later one: snapshots `zettabee.<fp>.<YYYYmmddHHMMSS><zone>`, `zettabee:<fp>:lastsnap` on
//! both sides and `zettabee:fingerprint` = `<fp>` on the destination (fp = MD5 of
//! "shost:sfs::dhost:dfs", as zettabee's config named the hosts).

use std::collections::BTreeMap;

use anyhow::Result;

use super::commands::checked;
use crate::config::names::shell_quote as q;
use crate::exec::{describe_failure, Executor};

/// Every zettabee snapshot name starts with this.
pub const SNAPSHOT_PREFIX: &str = "zettabee.";
/// The destination's zettabee fingerprint (later zettabee only).
pub const PROP_FINGERPRINT: &str = "zettabee:fingerprint";
/// The first zettabee's record of the last snapshot both sides hold.
pub const PROP_LASTSNAP: &str = "zettabee:lastsnap";

/// zettabee's marks on one dataset and the guids of its snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// `zettabee:fingerprint`.
    pub fingerprint: Option<String>,
    /// `zettabee:lastsnap` under `None`, `zettabee:<fp>:lastsnap` under `Some(fp)`.
    pub lastsnap: BTreeMap<Option<String>, String>,
    /// Snapshot name (after `@`) -> guid.
    pub guids: BTreeMap<String, String>,
}

impl Marks {
    /// The last snapshot zettabee recorded here for the pair with fingerprint `fp` (the later
    /// zettabee's property), else the first zettabee's.
    pub fn lastsnap(&self, fp: Option<&str>) -> Option<&str> {
        fp.and_then(|f| self.lastsnap.get(&Some(f.to_string())))
            .or_else(|| self.lastsnap.get(&None))
            .map(String::as_str)
    }

    /// Does anything here say zettabee replicated this dataset?
    pub fn any(&self) -> bool {
        self.fingerprint.is_some() || !self.lastsnap.is_empty()
    }
}

/// The dataset's properties (local ones: user properties are only ever local or inherited), then
/// the guid of each snapshot, separated by a marker line.
pub fn read_command(ds: &str) -> Result<String> {
    let d = q(checked(ds)?);
    Ok(format!(
        "zfs get -H -o property,value all {d} && echo '#guids' && zfs get -Hp -d 1 -o name,value guid {d}"
    ))
}

pub fn parse(text: &str, ds: &str) -> Marks {
    let mut m = Marks::default();
    let (props, guids) = text.split_once("#guids").unwrap_or((text, ""));
    for line in props.lines() {
        let Some((prop, value)) = line.split_once('\t') else {
            continue;
        };
        let value = value.trim();
        if value == "-" || value.is_empty() {
            continue;
        }
        if prop == PROP_FINGERPRINT {
            m.fingerprint = Some(value.to_string());
        } else if prop == PROP_LASTSNAP {
            m.lastsnap.insert(None, value.to_string());
        } else if let Some(fp) = prop.strip_prefix("zettabee:").and_then(|r| r.strip_suffix(":lastsnap")) {
            m.lastsnap.insert(Some(fp.to_string()), value.to_string());
        }
    }
    let prefix = format!("{ds}@");
    for line in guids.lines() {
        let Some((name, guid)) = line.split_once('\t') else {
            continue;
        };
        if let Some(snap) = name.strip_prefix(&prefix) {
            m.guids.insert(snap.to_string(), guid.trim().to_string());
        }
    }
    m
}

/// Reads zettabee's marks of one dataset.
pub async fn read(ex: &Executor, ds: &str) -> Result<Marks> {
    let out = ex.run(&read_command(ds)?).await?;
    if !out.success() {
        anyhow::bail!(
            "on {}: reading {ds}'s properties failed: {}",
            ex.host(),
            describe_failure(out.code, &out.stderr)
        );
    }
    Ok(parse(&out.stdout_text(), ds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_generations() {
        let text = "type\tfilesystem\nzettabee:lastsnap\tzettabee.20110315143000PDT\n\
                    zettabee:fingerprint\tabc\nzettabee:abc:lastsnap\tzettabee.abc.20120101000000UTC\n\
                    zettabee:sourcefs\ts:t/a\n#guids\nb/a\t111\nb/a@zettabee.20110315143000PDT\t222\nb/a/c@x\t3\n";
        let m = parse(text, "b/a");
        assert_eq!(m.fingerprint.as_deref(), Some("abc"));
        assert_eq!(m.lastsnap(Some("abc")), Some("zettabee.abc.20120101000000UTC"));
        assert_eq!(m.lastsnap(Some("other")), Some("zettabee.20110315143000PDT"));
        assert_eq!(m.lastsnap(None), Some("zettabee.20110315143000PDT"));
        assert_eq!(m.guids.len(), 1);
        assert_eq!(m.guids["zettabee.20110315143000PDT"], "222");
        assert!(m.any());
        assert!(!parse("type\tfilesystem\nzettabee:lastsnap\t-\n#guids\n", "b/a").any());
    }

    #[test]
    fn quotes_the_dataset() {
        assert!(read_command("b/a;rm").is_err());
        assert!(read_command("b/a").unwrap().contains("guid b/a"));
    }
}
