//! An update with both ends on this host: recover the destination, read the source once,
//! journal what changed since the checkpoint (or since the kept journal), commit.

use super::apply::{Dest, Plan, Recovered, Unsealed};
use super::journal::JournalError;
use super::scan::{scan_with, source_size};
use super::HashAlgo;
use std::path::Path;
use std::sync::Mutex;

/// What an update did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Source bytes read (the whole source, once).
    pub bytes_read: u64,
    /// Chunks journaled by this run.
    pub chunks_sent: u64,
    /// Bytes journaled by this run.
    pub bytes_sent: u64,
    /// Chunks an earlier, cut run had journaled already (not sent again).
    pub chunks_held: u64,
}

/// Brings `dest` to the current content of `source`.
pub fn update(source: &Path, dest: &Dest, chunk_size: u32, algo: HashAlgo) -> Result<UpdateStats, JournalError> {
    let held = match dest.recover(Unsealed::Keep)? {
        Recovered::Kept { held } => held.len() as u64,
        _ => 0,
    };
    let plan = Plan {
        algo,
        chunk_size,
        source_size: source_size(source)?,
    };
    let session = Mutex::new(dest.begin(plan)?);
    let sent = Mutex::new((0u64, 0u64));
    let (next, scanned) = scan_with(source, chunk_size, algo, |index, data, digest| {
        let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
        if s.needs(index, digest) {
            s.add(index, data, digest)?;
            let mut sent = sent.lock().unwrap_or_else(|p| p.into_inner());
            sent.0 += 1;
            sent.1 += data.len() as u64;
        }
        Ok::<(), JournalError>(())
    })?;
    let session = session.into_inner().unwrap_or_else(|p| p.into_inner());
    session.commit(&next)?;
    let (chunks_sent, bytes_sent) = sent.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(UpdateStats {
        bytes_read: scanned.bytes_read,
        chunks_sent,
        bytes_sent,
        chunks_held: held,
    })
}
