//! A `recursive` pair's tree: the pair itself and one member pair per volume below its source,
//! each with its own fingerprint and checkpoint (zettabee's fingerprint of that member's paths),
//! so a tree is many replicas under one lock, one log and one status line.

use anyhow::Result;

use crate::config::Pair;
use crate::driver::snapshot_driver;

use super::Engine;

/// The member pair for the source volume `child` (below the pair's source): the same options,
/// the destination's path extended the same way.
pub fn member(root: &Pair, child: &str) -> Option<Pair> {
    let rest = child.strip_prefix(&root.source.path)?.strip_prefix('/')?;
    let mut m = root.clone();
    m.source.path = child.to_string();
    m.destination.path = format!("{}/{rest}", root.destination.path);
    // every member's snapshots where the root's go (btrfs): the directory is on the filesystem,
    // and beside a nested member it would be inside its parent member
    m.source.snapshot_dir = root.source.snapshot_dir.clone();
    m.recursive = false;
    m.adopt = None;
    Some(m)
}

/// The pair itself, then a member per volume below its source, parents before their children
/// (a child's replica is received under its parent's). A pair that is not recursive is alone.
pub async fn members(engine: &Engine, pair: &Pair) -> Result<Vec<Pair>> {
    let mut all = vec![root(pair)];
    if !pair.recursive {
        return Ok(all);
    }
    let ex = engine.executor(&pair.source.host).await?;
    let children = snapshot_driver(pair.kind)?.children(&ex, &pair.source).await?;
    all.extend(children.iter().filter_map(|c| member(pair, c)));
    Ok(all)
}

/// The pair as the root of its tree: its own volume only.
pub fn root(pair: &Pair) -> Pair {
    let mut r = pair.clone();
    r.recursive = false;
    r
}

/// Replicas below the destination whose source volume is gone: reported, never destroyed
/// (`purge` decides). `members` as `members` returned them.
pub async fn vanished(engine: &Engine, pair: &Pair, members: &[Pair]) -> Result<Vec<String>> {
    if !pair.recursive {
        return Ok(Vec::new());
    }
    let ex = engine.executor(&pair.destination.host).await?;
    let below = snapshot_driver(pair.kind)?.children(&ex, &pair.destination).await?;
    Ok(below
        .into_iter()
        .filter(|d| !members.iter().any(|m| &m.destination.path == d))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_mirror_the_source_tree_under_the_destination() {
        let c = crate::config::parse(
            std::path::Path::new("t.toml"),
            "[[pair]]\nsource = \"tank/data\"\ndestination = \"backup/data\"\nrecursive = true\nkeep = 5\n",
        )
        .unwrap();
        let p = &c.pairs[0];
        let m = member(p, "tank/data/my docs/2026").unwrap();
        assert_eq!(m.source.path, "tank/data/my docs/2026");
        assert_eq!(m.destination.path, "backup/data/my docs/2026");
        assert!(!m.recursive && m.options.keep == 5);
        assert_ne!(m.fingerprint(), p.fingerprint(), "each member has its own checkpoint");
        assert!(
            member(p, "tank/database").is_none(),
            "a sibling with a common prefix is no child"
        );
        assert!(!root(p).recursive);
    }
}
