//! Non-root operation: the `zfs allow` permissions ferry needs on each side, and setup's reading
//! of what the account it logs in as was delegated (`zfs allow DATASET`), naming what is missing
//! and the command that grants it.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::names::shell_quote as q;
use crate::driver::{Check, Side};

use super::commands::checked;

/// What ferry does on a source: snapshots, sends (raw too), holds and releases the checkpoint,
/// bookmarks it, destroys its own old snapshots (zfs wants `mount` beside `destroy`).
pub const SOURCE: &[&str] = &["send", "snapshot", "hold", "release", "bookmark", "destroy", "mount"];

/// What ferry does under a destination's parent: receives (a new replica is created and, where the
/// account may, mounted), marks it (`readonly`, ferry's user properties), rolls back for `--force`,
/// holds, and destroys its old snapshots and, on `purge --all`, the replica.
pub const DESTINATION: &[&str] = &[
    "receive", "create", "mount", "destroy", "rollback", "hold", "release", "userprop", "readonly",
];

fn needed(side: Side) -> &'static [&'static str] {
    match side {
        Side::Source => SOURCE,
        Side::Destination => DESTINATION,
    }
}

/// A marker line before the account's names, then `zfs allow` of the dataset where ferry works:
/// the source itself; for a destination, its nearest existing ancestor (a replica not received
/// yet is created under it). Root needs nothing delegated: it prints `uid=0` alone.
pub fn script(ds: &str) -> anyhow::Result<String> {
    let ds = q(checked(ds)?);
    Ok(format!(
        "if [ \"$(id -u)\" = 0 ]; then echo uid=0; exit 0; fi; echo \"user=$(id -un)\"; echo \"groups=$(id -Gn)\"; \
         d={ds}; while ! zfs list -H -o name \"$d\" >/dev/null 2>&1; do p=${{d%/*}}; [ \"$p\" = \"$d\" ] && exit 0; d=$p; done; \
         echo \"at=$d\"; zfs allow \"$d\""
    ))
}

/// What `script` printed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// Root: nothing to check.
    pub root: bool,
    pub user: String,
    pub groups: Vec<String>,
    /// The dataset `zfs allow` was asked about (None: nothing of the path exists).
    pub at: Option<String>,
    /// Permissions delegated to the account (its user, groups, everyone) that apply to `at`
    /// itself, and those that apply below it.
    pub here: BTreeSet<String>,
    pub below: BTreeSet<String>,
}

/// How a section's line applies: to the dataset it is on, below it, or both.
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    Local,
    Descendent,
    Both,
    Sets,
}

pub fn parse(out: &str) -> Reading {
    let mut r = Reading::default();
    let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // (on dataset, scope, perms) for the account's lines
    let mut grants: Vec<(String, Scope, Vec<String>)> = Vec::new();
    let mut on = String::new();
    let mut scope = Scope::Local;
    for line in out.lines() {
        if line == "uid=0" {
            r.root = true;
        } else if let Some(u) = line.strip_prefix("user=") {
            r.user = u.trim().to_string();
        } else if let Some(g) = line.strip_prefix("groups=") {
            r.groups = g.split_whitespace().map(String::from).collect();
        } else if let Some(a) = line.strip_prefix("at=") {
            r.at = Some(a.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("---- Permissions on ") {
            on = rest.split_whitespace().next().unwrap_or("").to_string();
        } else if line.starts_with("Permission sets:") {
            scope = Scope::Sets;
        } else if line.starts_with("Local+Descendent permissions:") {
            scope = Scope::Both;
        } else if line.starts_with("Local permissions:") {
            scope = Scope::Local;
        } else if line.starts_with("Descendent permissions:") {
            scope = Scope::Descendent;
        } else if let Some(entry) = line.strip_prefix('\t') {
            let words: Vec<&str> = entry.split_whitespace().collect();
            let list = |w: &str| w.split(',').map(String::from).collect::<Vec<_>>();
            match (scope, words.as_slice()) {
                (Scope::Sets, [name, perms]) => {
                    sets.entry(name.to_string()).or_default().extend(list(perms));
                }
                (_, ["user", name, perms]) if *name == r.user => grants.push((on.clone(), scope, list(perms))),
                (_, ["group", name, perms]) if r.groups.iter().any(|g| g == name) => {
                    grants.push((on.clone(), scope, list(perms)))
                }
                (_, ["everyone", perms]) => grants.push((on.clone(), scope, list(perms))),
                _ => {}
            }
        }
    }
    let at = r.at.clone().unwrap_or_default();
    for (ds, scope, perms) in grants {
        let expanded: Vec<String> = perms
            .iter()
            .flat_map(|p| match p.strip_prefix('@') {
                Some(_) => sets.get(p).cloned().unwrap_or_default(),
                None => vec![p.clone()],
            })
            .collect();
        let is_at = ds == at;
        // `zfs allow X` lists X's own section and its ancestors': an ancestor's local grant is
        // not X's
        let (here, below) = match scope {
            Scope::Local => (is_at, false),
            Scope::Descendent => (!is_at, true),
            Scope::Both => (true, true),
            Scope::Sets => (false, false),
        };
        if here {
            r.here.extend(expanded.iter().cloned());
        }
        if below {
            r.below.extend(expanded);
        }
    }
    r
}

/// Setup's line on the account's delegated permissions; None for root.
pub fn check(side: Side, ds: &str, r: &Reading) -> Option<Check> {
    if r.root {
        return None;
    }
    let what = format!("{} permissions", side.label());
    let Some(at) = &r.at else {
        return Some(Check {
            ok: false,
            what,
            detail: format!("nothing of {ds} exists to delegate on"),
        });
    };
    // the source is worked on itself; a destination below `at` (or at it, once received)
    let applies = |p: &&str| {
        if side == Side::Source || at == ds {
            r.here.contains(*p)
        } else {
            r.below.contains(*p) && (!matches!(*p, "create" | "mount" | "receive") || r.here.contains(*p))
        }
    };
    let needed = needed(side);
    let missing: Vec<&str> = needed.iter().filter(|p| !applies(p)).copied().collect();
    let user = &r.user;
    Some(if missing.is_empty() {
        Check {
            ok: true,
            what,
            detail: format!("{user} may {} on {at} (zfs allow)", needed.join(",")),
        }
    } else {
        Check {
            ok: false,
            what,
            detail: format!(
                "{user} lacks {} on {at}: as root, `zfs allow -u {user} {} {at}`{}",
                missing.join(","),
                needed.join(","),
                if side == Side::Destination {
                    " (on Linux only root mounts: the replica is received unmounted)"
                } else {
                    ""
                }
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "user=lab\ngroups=lab backup\nat=s/data\n\
---- Permissions on s/data -------------------------------------------\n\
Local+Descendent permissions:\n\
\tuser lab bookmark,destroy,hold,mount\n\
\tuser other send\n\
---- Permissions on s ------------------------------------------------\n\
Permission sets:\n\
\t@ferrysrc send,snapshot\n\
Local permissions:\n\
\tuser lab release\n\
Descendent permissions:\n\
\teveryone release\n\
Local+Descendent permissions:\n\
\tgroup backup @ferrysrc\n";

    #[test]
    fn reads_the_accounts_grants_with_sets_groups_and_scopes() {
        let r = parse(OUT);
        assert_eq!(r.user, "lab");
        assert_eq!(r.at.as_deref(), Some("s/data"));
        let here: Vec<&str> = r.here.iter().map(String::as_str).collect();
        // another user's send is none of ours; the parent's local release is not the child's,
        // everyone's descendent one is
        assert_eq!(
            here,
            ["bookmark", "destroy", "hold", "mount", "release", "send", "snapshot"]
        );
        let c = check(Side::Source, "s/data", &r).unwrap();
        assert!(c.ok, "{c:?}");
    }

    #[test]
    fn names_what_is_missing_and_the_command_that_grants_it() {
        let out = "user=lab\ngroups=lab\nat=d/rep\n---- Permissions on d/rep ----\nLocal+Descendent permissions:\n\tuser lab receive,create,mount\n";
        let r = parse(out);
        let c = check(Side::Destination, "d/rep/data", &r).unwrap();
        assert!(!c.ok);
        assert!(
            c.detail
                .starts_with("lab lacks destroy,rollback,hold,release,userprop,readonly on d/rep"),
            "{c:?}"
        );
        assert!(
            c.detail.contains(
                "`zfs allow -u lab receive,create,mount,destroy,rollback,hold,release,userprop,readonly d/rep`"
            ),
            "{c:?}"
        );
        // below only: receiving a new replica needs create there too
        let out = "user=lab\ngroups=lab\nat=d/rep\n---- Permissions on d/rep ----\nDescendent permissions:\n\tuser lab receive,create,mount,destroy,rollback,hold,release,userprop,readonly\n";
        let c = check(Side::Destination, "d/rep/data", &parse(out)).unwrap();
        assert!(
            !c.ok && c.detail.contains("lacks receive,create,mount on d/rep"),
            "{c:?}"
        );
        assert!(check(Side::Source, "s", &parse("uid=0\n")).is_none());
        assert!(!check(Side::Source, "s/x", &parse("user=lab\ngroups=lab\n")).unwrap().ok);
    }

    #[test]
    fn the_script_is_quoted_and_walks_up_to_what_exists() {
        let s = script("d/rep/new data").unwrap();
        assert!(s.contains("d='d/rep/new data'; while ! zfs list"), "{s}");
        assert!(script("d/$(reboot)").is_err());
    }
}
