//! `verify DEST`: does the destination hold exactly its checkpoint? The pair must be
//! Synchronized, and the driver proves the checkpoint is one snapshot on both sides (ZFS guid,
//! btrfs received UUID) and that the replica was not changed since (ZFS: nothing written after
//! it; btrfs: the snapshot still read-only). A recursive pair verifies every member.

use anyhow::Result;

use crate::config::Pair;
use crate::driver::snapshot_driver;

use super::assess::{assess_pair, State};
use super::types::Verified;
use super::{tree, Engine};

/// Verifies the pair (each member of a tree).
pub async fn verify(engine: &Engine, pair: &Pair) -> Result<Vec<Verified>> {
    let members = tree::members(engine, pair).await?;
    let (src, dst) = engine.executors(pair).await?;
    let driver = snapshot_driver(pair.kind)?;
    let mut out = Vec::new();
    for m in &members {
        let (sl, dl) = ([&m.source], [&m.destination]);
        let (s, d) = tokio::join!(driver.inspect(&src, &sl), driver.inspect(&dst, &dl));
        let (s, d) = (s?.remove(0), d?.remove(0));
        let mut v = Verified {
            destination: m.destination.to_string(),
            checkpoint: None,
            differences: Vec::new(),
        };
        match assess_pair(m, &s, &d) {
            State::Synchronized(cp) => {
                v.differences = driver.verify(&src, &dst, &m.source, &m.destination, &cp.name).await?;
                // the replica recorded a newer checkpoint than the newest intact one: that one
                // was changed or broken since (names carry the time, so they sort by it)
                if let Some(last) = d.lastsnap.as_deref().filter(|l| *l > cp.name.as_str()) {
                    v.differences.push(format!(
                        "the recorded checkpoint {last} is not intact on the destination (changed by hand?); the newest intact one is {}",
                        cp.name
                    ));
                }
                v.checkpoint = Some(cp.name);
            }
            other => v.differences.push(format!(
                "the pair is {}{}: there is no checkpoint to verify",
                other.word(),
                other.reason().map(|r| format!(" ({r})")).unwrap_or_default()
            )),
        }
        out.push(v);
    }
    Ok(out)
}
