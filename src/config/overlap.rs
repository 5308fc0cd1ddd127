//! Checks across entries that no single entry can see: pairs whose datasets nest (so `purge --all`
//! of one would destroy the other's), pairs that share a fingerprint, and jump hosts that loop.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use toml::Spanned;

use super::model::{HostConfig, Pair, LOCAL};
use super::tree::Cx;

/// Where a pair's `source` and `destination` values are, for the messages.
pub struct PairSpans {
    pub source: Range<usize>,
    pub destination: Range<usize>,
}

/// Every proper ancestor of a dataset path: `a/b/c` gives `a/b` and `a`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

fn describe(p: &Pair) -> String {
    format!("the pair at line {} ({} -> {})", p.line, p.source, p.destination)
}

/// Refuses a destination nested in another pair's destination, a source inside any pair's
/// destination (a replica is rolled back and received over; equal is fine: that is a cascade,
/// sending a replica on), and two pairs with the same fingerprint (they would share a lock and
/// snapshots: `:` is legal in dataset names, so `a:b::c` reads two ways). Each problem is reported
/// on the later pair, naming both. Linear in the number of pairs times the depth of their paths.
pub fn check_pairs(cx: &Cx, pairs: &[Pair], spans: &[PairSpans]) {
    // every destination, and every proper ancestor of one, with the first pair that has it there
    let mut dest: HashMap<(&str, &str), usize> = HashMap::new();
    let mut dest_above: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, p) in pairs.iter().enumerate() {
        dest.entry((&p.destination.host, &p.destination.path)).or_insert(i);
    }
    let mut fingerprints: HashMap<String, usize> = HashMap::new();
    for (j, p) in pairs.iter().enumerate() {
        let host = p.destination.host.as_str();
        // an earlier destination above this one, or below it
        let above = ancestors(&p.destination.path)
            .filter_map(|a| dest.get(&(host, a)).copied())
            .find(|&i| i < j);
        let below = dest_above.get(&(host, p.destination.path.as_str())).copied();
        if let Some(i) = above.or(below) {
            let (outer, inner) = if above.is_some() {
                (&pairs[i], p)
            } else {
                (p, &pairs[i])
            };
            cx.report(cx.err(
                spans[j].destination.clone(),
                "destination",
                &format!(
                    "destination {} of {} is inside destination {} of {}: replicas must not nest \
                     (purge --all of the outer one would destroy the inner one)",
                    inner.destination,
                    describe(inner),
                    outer.destination,
                    describe(outer)
                ),
            ));
        }
        for a in ancestors(&p.destination.path) {
            dest_above.entry((host, a)).or_insert(j);
        }
        if let Some(i) = ancestors(&p.source.path).find_map(|a| dest.get(&(p.source.host.as_str(), a)).copied()) {
            cx.report(cx.err(
                spans[j].source.clone(),
                "source",
                &format!(
                    "source {} of {} is inside destination {} of {}: a replica is rolled back and \
                     overwritten by every update (and purge --all destroys what is under it)",
                    p.source,
                    describe(p),
                    pairs[i].destination,
                    describe(&pairs[i])
                ),
            ));
        }
        if let Some(i) = fingerprints.insert(p.fingerprint(), j) {
            let first = &pairs[i];
            cx.report(cx.err_line(
                p.line,
                "",
                &format!(
                    "{} has the same fingerprint {} as {}: ':' in dataset names makes \
                     \"<source>::<destination>\" read two ways; rename one dataset",
                    describe(p),
                    p.fingerprint(),
                    describe(first)
                ),
            ));
            fingerprints.insert(p.fingerprint(), i);
        }
    }
}

/// `jump` must name a defined host, not `local`, and following jumps must never come back.
pub fn check_jumps(cx: &Cx, jumps: &BTreeMap<String, Spanned<String>>, hosts: &BTreeMap<String, HostConfig>) {
    for (name, j) in jumps {
        let target = j.get_ref();
        if target == LOCAL {
            cx.report(cx.err(
                j.span(),
                "jump",
                "`local` is this machine, not a jump host: name a [hosts.X] entry, or leave jump out",
            ));
            continue;
        }
        if !hosts.contains_key(target) {
            cx.report(cx.err(
                j.span(),
                "jump",
                &format!("undefined host {target:?} (add a [hosts.{target}] table)"),
            ));
            continue;
        }
        // follow the chain; a cycle through this host is reported here, one not through it on its members
        let mut chain = vec![name.as_str()];
        let mut next = Some(target.as_str());
        while let Some(h) = next {
            if h == name {
                chain.push(h);
                cx.report(cx.err(
                    j.span(),
                    "jump",
                    &format!("jump hosts form a cycle: {}", chain.join(" -> ")),
                ));
                break;
            }
            if chain.contains(&h) {
                break;
            }
            chain.push(h);
            next = jumps.get(h).map(|s| s.get_ref().as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_of_a_path() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(ancestors("a").count(), 0);
    }

    #[test]
    fn nesting_is_checked_in_linear_time() {
        // ten thousand pairs under one parent: no quadratic pass
        let mut text = String::new();
        for i in 0..10_000 {
            text.push_str(&format!(
                "[[pair]]\nsource = \"tank/src/s{i}\"\ndestination = \"backup/r/d{i}\"\n"
            ));
        }
        let t = std::time::Instant::now();
        let c = crate::config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        assert_eq!(c.pairs.len(), 10_000);
        assert!(t.elapsed() < std::time::Duration::from_secs(10), "{:?}", t.elapsed());
    }
}
