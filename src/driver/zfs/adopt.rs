//! Taking over a replica zettabee (a ZFS tool) made (`adopt = "zettabee"`): the first update sends incrementally
//! from zettabee's newest snapshot that both sides hold with the same guid, then marks the
//! destination as ferry's. zettabee's snapshots are left where they are: they are not ferry's, so
//! retention never counts them.

use anyhow::{bail, Result};

use super::zettabee::{self, Marks};
use crate::driver::{Adoption, Snapshot};
use crate::exec::Executor;
use crate::model::snapshot_prefix;

/// The snapshot the first update sends from, after checking that the destination really is a
/// replica of this source: the snapshot `zettabee:lastsnap` names must be on both sides with one
/// guid. A run of ours that died after its receive and before marking left a newer common
/// snapshot of ours: that one is the base then.
pub async fn base(a: Adoption<'_>, notes: &mut Vec<String>) -> Result<Snapshot> {
    let Adoption {
        pair,
        src,
        dst,
        src_info,
        dst_info,
    } = a;
    let (src_ds, dst_ds) = (pair.source.path.as_str(), pair.destination.path.as_str());
    let (s, d) = tokio::join!(zettabee::read(src, src_ds), zettabee::read(dst, dst_ds));
    let (s, d): (Marks, Marks) = (s?, d?);
    let refuse = |why: String| -> anyhow::Error {
        anyhow::anyhow!(
            "cannot adopt zettabee's replica {}: {why}; nothing was changed (to start over instead, destroy the destination and run `ferry initialize`)",
            pair.destination
        )
    };
    let Some(last) = d.lastsnap(d.fingerprint.as_deref()) else {
        return Err(refuse(format!(
            "the destination has no {} property, so it is not a zettabee replica (or zettabee never finished an initialize)",
            zettabee::PROP_LASTSNAP
        )));
    };
    let Some(dst_guid) = d.guids.get(last) else {
        return Err(refuse(format!(
            "zettabee's last snapshot {last} (its lastsnap property) is not on the destination"
        )));
    };
    let Some(src_guid) = s.guids.get(last) else {
        return Err(refuse(format!(
            "zettabee's last snapshot {last} is on the destination but not on the source {}",
            pair.source
        )));
    };
    if src_guid != dst_guid {
        return Err(refuse(format!(
            "snapshot {last} differs between the sides (guid {src_guid} on the source, {dst_guid} on the destination): the destination is not a replica of this source"
        )));
    }
    if let Some(src_last) = s.lastsnap(d.fingerprint.as_deref()).filter(|l| *l != last) {
        notes.push(format!(
            "adopt: the source's zettabee lastsnap is {src_last}, the destination's {last}; the destination's counts"
        ));
    }
    // newest first: zettabee's snapshots and ours, each on both sides with one guid
    let ours = snapshot_prefix(&pair.fingerprint());
    let base = dst_info
        .snapshots
        .iter()
        .rev()
        .take_while(|snap| snap.name != last)
        .chain(dst_info.snapshots.iter().filter(|snap| snap.name == last))
        .filter(|snap| snap.name.starts_with(zettabee::SNAPSHOT_PREFIX) || snap.name.starts_with(&ours))
        .find(|snap| {
            d.guids
                .get(&snap.name)
                .is_some_and(|g| s.guids.get(&snap.name) == Some(g))
        })
        .and_then(|snap| src_info.snapshots.iter().find(|s| s.name == snap.name))
        .cloned();
    let Some(base) = base else {
        bail!("adopt: {last} vanished while it was being checked");
    };
    notes.push(format!(
        "adopt: zettabee's replica {} of {}: {} on both sides (guid {dst_guid}); sending from {}",
        pair.destination, pair.source, last, base.name
    ));
    Ok(base)
}

/// `initialize --force` over a copy made another way (a `zfs send` by hand, another tool): the
/// newest destination snapshot whose guid a source snapshot has; none means it is no copy of it.
pub async fn copy_base(a: Adoption<'_>, notes: &mut Vec<String>) -> Result<Snapshot> {
    let (src_ds, dst_ds) = (a.pair.source.path.as_str(), a.pair.destination.path.as_str());
    let (s, d) = tokio::join!(zettabee::read(a.src, src_ds), zettabee::read(a.dst, dst_ds));
    let (s, d): (Marks, Marks) = (s?, d?);
    let base = a.dst_info.snapshots.iter().rev().find_map(|snap| {
        let g = d.guids.get(&snap.name)?;
        let (name, _) = s.guids.iter().find(|(_, sg)| *sg == g)?;
        a.src_info
            .snapshots
            .iter()
            .find(|x| &x.name == name)
            .map(|x| (x.clone(), g.clone()))
    });
    let Some((base, guid)) = base else {
        bail!(
            "destination {} holds no snapshot of the source {} (no guid in common): it is not a copy of it; nothing was changed, choose another destination",
            a.pair.destination,
            a.pair.source
        );
    };
    notes.push(format!(
        "initialize --force: {} is a copy of {}: snapshot {} on both sides (guid {guid}); sending from it, changes on the destination since then are rolled back",
        a.pair.destination, a.pair.source, base.name
    ));
    Ok(base)
}

/// For a pair without `adopt` whose destination is not ferry's: a hint when zettabee made it.
pub async fn hint(dst: &Executor, path: &str) -> Option<String> {
    let marks = zettabee::read(dst, path).await.ok()?;
    marks.any().then(|| {
        "it is a zettabee replica: add `adopt = \"zettabee\"` to the pair (or import with `ferry import zettabee --adopt`) and `ferry update` takes it over without a full resend".to_string()
    })
}
