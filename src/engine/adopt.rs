//! Taking over a replica another tool made (`adopt`): the pair's driver proves the destination is
//! a replica of the source and names the snapshot the first update sends from.

use anyhow::Result;

use crate::config::{Adopt, Pair};
use crate::driver::{snapshot_driver, Adoption, VolumeInfo};
use crate::exec::Executor;
use crate::model::Checkpoint;

use super::job::Job;

/// An update adopts when the pair asks for it and the destination exists without ferry's marks.
pub fn wanted(pair: &Pair, source: &VolumeInfo, dest: &VolumeInfo) -> bool {
    pair.adopt == Some(Adopt::Zettabee) && source.exists && dest.exists && dest.fingerprint.is_none()
}

/// How the driver proves a destination that is not ferry's is a replica of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// zettabee's marks (`adopt = "zettabee"`, the first update).
    Zettabee,
    /// Any copy: a snapshot both sides hold as one (`initialize --force`).
    Copy,
}

/// The snapshot to send from into a replica ferry takes over; what the driver found goes to the
/// pair's log.
pub async fn base(
    job: &Job,
    pair: &Pair,
    (src, dst): (&Executor, &Executor),
    src_info: &VolumeInfo,
    dst_info: &VolumeInfo,
    proof: Proof,
) -> Result<Checkpoint> {
    let mut notes = Vec::new();
    let adoption = Adoption {
        pair,
        src,
        dst,
        src_info,
        dst_info,
    };
    let driver = snapshot_driver(pair.kind)?;
    let base = match proof {
        Proof::Zettabee => driver.adopt_base(adoption, &mut notes).await,
        Proof::Copy => driver.copy_base(adoption, &mut notes).await,
    };
    for n in notes {
        job.log.line(&n);
    }
    base.map(|s| Checkpoint {
        name: s.name,
        created: s.created,
    })
}

/// For a pair without `adopt` whose destination is not ferry's: a hint when another tool made it.
pub async fn hint(pair: &Pair, dst: &Executor) -> Option<String> {
    snapshot_driver(pair.kind)
        .ok()?
        .adopt_hint(dst, &pair.destination)
        .await
}
