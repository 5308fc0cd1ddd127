//! `verify DEST`: does the destination hold exactly its checkpoint? The pair must be
//! Synchronized, and the driver proves the checkpoint is one snapshot on both sides (ZFS guid,
//! btrfs received UUID) and that the replica was not changed since (ZFS: nothing written after
//! it; btrfs: the snapshot still read-only). A recursive pair verifies every member.

use anyhow::Result;
use serde::Serialize;

use crate::config::Pair;
use crate::driver::for_kind;

use super::assess::{assess_pair, State};
use super::{tree, Engine};

/// One volume's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub destination: String,
    pub checkpoint: Option<String>,
    /// What differs; empty when the destination holds exactly its checkpoint.
    pub differences: Vec<String>,
}

impl Verified {
    pub fn ok(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Verifies the pair (each member of a tree).
pub async fn verify(engine: &Engine, pair: &Pair) -> Result<Vec<Verified>> {
    if !pair.kind.has_snapshots() {
        return super::objects::verify(engine, pair).await;
    }
    let members = tree::members(engine, pair).await?;
    let (src, dst) = engine.executors(pair).await?;
    let driver = for_kind(pair.kind);
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
