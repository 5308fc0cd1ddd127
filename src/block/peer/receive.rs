//! `ferry peer block-receive`: the destination's end of a block update. Brings the target to a
//! consistent checkpoint first (replays a sealed journal, keeps an unsealed one to resume), tells
//! the sender its base, journals the chunks it is sent (hashing each itself), and on the commit
//! checks that base plus chunks is exactly the sender's manifest before it seals, applies and
//! swaps the checkpoint in.

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::names::Named;
use super::{heartbeat_every, software, state_dir, Heartbeat, Idle, SYNC_EVERY};
use crate::block::apply::{Dest, Plan, Recovered, Unsealed};
use crate::block::proto::{self, Message, MAX_HELD};
use crate::block::scan::scan_prefix_with;
use crate::block::{chunk_count, Digest, Manifest, ManifestError};

/// What the job asks of the receiver.
#[derive(Debug, Clone)]
pub struct ReceiveArgs {
    /// The target: a file (made on the first run) or a block device.
    pub path: PathBuf,
    /// The replica's state directory on this host.
    pub state: PathBuf,
    /// The checkpoint this run makes.
    pub name: String,
    /// Reread the target and take what it really holds as the base (resends what differs).
    pub repair: bool,
    /// Seconds without a frame from the sender (progress counts) before giving up.
    pub idle_timeout: u64,
}

/// Runs the receiver on stdin/stdout.
pub fn run(a: &ReceiveArgs) -> Result<()> {
    state_dir(&a.state)?;
    let stdin = std::io::stdin();
    let idle = Idle::new(stdin.lock(), a.idle_timeout, "the source");
    let mut input = BufReader::with_capacity(1 << 20, idle);
    let mut out = BufWriter::new(std::io::stdout());
    let result = receive(a, &mut input, &mut out);
    if let Err(e) = &result {
        let _ = proto::write_sync(
            &mut out,
            &Message::Error {
                message: format!("{e:#}"),
            },
        );
        let _ = out.flush();
    }
    result
}

/// Brings the destination to a consistent checkpoint: a sealed journal is replayed, an unsealed
/// one kept (`keep`) or dropped, and a name file left by a cut commit settled. Every start of a
/// receive (and verify) runs it first.
pub fn recover(dest: &Dest, keep: bool) -> Result<Recovered> {
    let r = dest
        .recover(if keep { Unsealed::Keep } else { Unsealed::Discard })
        .context("recovering the interrupted apply")?;
    settle_name(dest)?;
    Ok(r)
}

/// A `next.name` belongs to the checkpoint once its manifest was swapped in; otherwise it names
/// an apply that never finished and goes.
fn settle_name(dest: &Dest) -> Result<()> {
    let next = dest.state.join("next.name");
    let Some(named) = Named::read(&next)? else {
        return Ok(());
    };
    let applied = dest.checkpoint()?.is_some_and(|m| m.id() == named.id) && !dest.next_path().exists();
    if applied {
        std::fs::rename(&next, dest.state.join("checkpoint.name"))?;
    } else if !dest.next_path().exists() {
        std::fs::remove_file(&next)?;
    }
    std::fs::File::open(&dest.state)?.sync_all()?;
    Ok(())
}

fn receive<R: Read, W: Write + Send>(a: &ReceiveArgs, input: &mut R, out: &mut W) -> Result<()> {
    let dest = Dest::new(&a.path, &a.state);
    proto::handshake_sync(input, out, &software()).context("handshake with the source")?;
    out.flush()?;
    // replaying an interrupted apply may take long: the source hears heartbeats meanwhile
    let beat = heartbeat_every(a.idle_timeout);
    let recovered = Heartbeat::during(out, beat, || recover(&dest, !a.repair))?;
    let checkpoint = dest.checkpoint()?;
    let held: BTreeMap<u64, Digest> = match recovered {
        Recovered::Kept { held } => held,
        _ => BTreeMap::new(),
    };
    // a repair applies over what the target really holds, found by reading it
    let rebase = match (&checkpoint, a.repair) {
        (Some(cp), true) => Some(rescan(&a.path, cp)?),
        (None, true) => bail!(
            "nothing to repair: {} has no checkpoint yet (initialize it)",
            a.path.display()
        ),
        (_, false) => None,
    };
    let base = rebase.as_ref().or(checkpoint.as_ref());
    proto::write_sync(
        out,
        &Message::Base {
            id: base.map(|m| m.id()).unwrap_or([0; 32]),
            held: held.iter().take(MAX_HELD).map(|(i, d)| (*i, *d)).collect(),
        },
    )?;
    out.flush()?;
    let plan = loop {
        match proto::read_sync(input)? {
            Message::ManifestRequest { .. } => match base {
                Some(m) => proto::send_manifest_sync(out, m)?,
                None => bail!("the source asked for a manifest, and this replica has none"),
            },
            Message::Begin {
                algo,
                chunk_size,
                source_size,
            } => {
                break Plan {
                    algo,
                    chunk_size,
                    source_size,
                }
            }
            Message::Error { message } => bail!("{message}"),
            other => bail!("expected the source's plan, got {}", other.word()),
        }
    };
    // Bounded before anything is allocated or written: the declared size is untrusted.
    bound(&a.path, &plan)?;
    let mut room = Room::measure(&a.path, &a.state);
    let mut session = dest.begin_from(plan, rebase.clone())?;
    let count = chunk_count(plan.source_size, plan.chunk_size);
    let chunk = u64::from(plan.chunk_size);
    let mut buf: Vec<u8>;
    // zero frames carry no data: they are journaled as runs and cost no room on the replica
    let zero_full = crate::block::journal::zero_digest(plan.algo, plan.chunk_size);
    let mut unsynced = 0u64;
    let mut received = 0u64;
    let (manifest_id, size) = loop {
        let msg = match proto::read_sync(input) {
            Ok(m) => m,
            Err(e) => {
                // a cut link or a killed sender: what was journaled is kept for the next run
                session.sync()?;
                bail!(
                    "the stream ended before the commit ({e}); {received} chunks journaled this run are kept, \
                     and the next update resumes from them"
                );
            }
        };
        let (index, data, zero): (u64, &[u8], Option<u32>) = match msg {
            Message::Chunk { index, data } => {
                buf = data;
                (index, &buf, None)
            }
            Message::Zero { index, len } => (index, &[], Some(len)),
            Message::ChunkZstd { index, len, data } => {
                buf = zstd::bulk::decompress(&data, len as usize)
                    .map_err(|e| anyhow!("chunk {index}: the compressed data does not decompress: {e}"))?;
                if buf.len() != len as usize {
                    bail!("chunk {index}: decompressed to {} bytes, not {len}", buf.len());
                }
                (index, &buf, None)
            }
            Message::Progress { .. } => continue,
            Message::Commit {
                manifest_id,
                source_size,
            } => break (manifest_id, source_size),
            Message::Error { message } => {
                session.sync()?;
                bail!("{message}");
            }
            other => bail!("expected a chunk or the commit, got {}", other.word()),
        };
        let want = if index < count {
            (plan.source_size - index * chunk).min(chunk) as usize
        } else {
            0
        };
        let len = zero.map_or(data.len(), |l| l as usize);
        if len != want {
            bail!(
                "chunk {index} has {len} bytes; a source of {} bytes in chunks of {chunk} has {want} there",
                plan.source_size
            );
        }
        let journaled = match zero {
            Some(l) => {
                let digest = if l == plan.chunk_size {
                    zero_full
                } else {
                    crate::block::journal::zero_digest(plan.algo, l)
                };
                session.add_zero(index, l, &digest)?
            }
            None => session.add(index, data, &plan.algo.hash(data))?,
        };
        // only a data record (never a zero run, nor a chunk held already) brings data to write
        let written = if journaled >= crate::block::journal::CHUNK_RECORD {
            data.len() as u64
        } else {
            0
        };
        if let Err(e) = room.take(journaled, written) {
            session.sync()?;
            return Err(e);
        }
        received += 1;
        unsynced += journaled;
        if unsynced >= SYNC_EVERY {
            session.sync()?;
            unsynced = 0;
        }
    };
    if size != plan.source_size {
        bail!(
            "the commit names a source of {size} bytes, the plan {}",
            plan.source_size
        );
    }
    let next = expected(session.base(), session.held(), &plan)?;
    if next.id() != manifest_id {
        session.sync()?;
        bail!("the chunks received do not add up to the source's manifest (a chunk changed on the way?); nothing was applied");
    }
    Heartbeat::during(out, beat, || -> Result<()> {
        Named::new(&a.name, next.id()).write(&a.state.join("next.name"))?;
        session.commit(&next)?;
        settle_name(&dest)
    })?;
    proto::write_sync(out, &Message::Ok)?;
    out.flush()?;
    Ok(())
}

/// The manifest base + journaled chunks make: what the target holds once the journal is applied.
fn expected(base: &Manifest, held: &BTreeMap<u64, Digest>, plan: &Plan) -> Result<Manifest> {
    let count = chunk_count(plan.source_size, plan.chunk_size);
    let mut digests = Vec::new();
    // never an abort: a count the host cannot hold is an error (bound() refuses it earlier)
    digests
        .try_reserve_exact(usize::try_from(count).unwrap_or(usize::MAX))
        .map_err(|_| anyhow!("a manifest of {count} chunks does not fit in memory; nothing was applied"))?;
    for i in 0..count {
        match held.get(&i).or_else(|| base.digests.get(i as usize)) {
            Some(d) => digests.push(*d),
            None => bail!("chunk {i} of the grown source was never sent; nothing was applied"),
        }
    }
    Ok(Manifest {
        algo: plan.algo,
        chunk_size: plan.chunk_size,
        source_size: plan.source_size,
        digests,
    })
}

/// Bytes as a person reads them ("1.0 PiB").
fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Receiver memory per chunk of the source (manifests, the held map): measured at ~200 bytes
/// (DESIGN, "Block volumes at size"), rounded up.
const STATE_PER_CHUNK: u64 = 256;

fn phys_mem() -> u64 {
    // SAFETY: sysconf only reads system constants.
    let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    (pages.max(0) as u64).saturating_mul(size.max(0) as u64)
}

/// Refuses a declared source size the destination cannot hold: more than a block device's size,
/// or more chunks than this host could keep per-chunk state for (its memory).
fn bound(target: &Path, plan: &Plan) -> Result<()> {
    use std::io::Seek;
    use std::os::unix::fs::FileTypeExt;
    let size = plan.source_size;
    if let Ok(meta) = std::fs::metadata(target) {
        if meta.file_type().is_block_device() {
            let have = std::fs::File::open(target)
                .and_then(|mut f| f.seek(std::io::SeekFrom::End(0)))
                .with_context(|| format!("reading the size of {}", target.display()))?;
            if size > have {
                bail!(
                    "refusing a source of {size} bytes ({}): the block device {} holds {have} bytes ({})",
                    format_bytes(size),
                    target.display(),
                    format_bytes(have)
                );
            }
        }
    }
    let count = chunk_count(size, plan.chunk_size);
    let mem = phys_mem();
    let max_chunks = mem / STATE_PER_CHUNK;
    if count > max_chunks {
        bail!(
            "refusing a source of {size} bytes ({}): its {count} chunks of {} need per-chunk state beyond this host's memory ({}); the most this receiver takes at that chunk size is {} bytes ({})",
            format_bytes(size),
            format_bytes(u64::from(plan.chunk_size)),
            format_bytes(mem),
            max_chunks.saturating_mul(u64::from(plan.chunk_size)),
            format_bytes(max_chunks.saturating_mul(u64::from(plan.chunk_size)))
        );
    }
    Ok(())
}

/// Free bytes for an unprivileged writer on `path`'s filesystem, and its device.
fn free_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(((st.f_bavail as u64).saturating_mul(st.f_frsize as u64), dev))
}

/// The space this run may take on the destination: its journal in the state dir, then the
/// chunks' data in the replica (a sparse file needs room only for data, not for holes; a device
/// has its room already). Where both are on one filesystem they share its free space.
struct Room {
    journal_free: Option<u64>,
    /// The replica's free space, `None` where it is the journal's (or a device, or unknown).
    target_free: Option<u64>,
    shared: bool,
    journal: u64,
    target: u64,
}

impl Room {
    fn measure(target: &Path, state: &Path) -> Room {
        use std::os::unix::fs::FileTypeExt;
        let device = std::fs::metadata(target).is_ok_and(|m| m.file_type().is_block_device());
        let tdir = if target.exists() {
            target.to_path_buf()
        } else {
            target
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        let (s, t) = (free_space(state), free_space(&tdir));
        let shared = !device && matches!((s, t), (Some((_, sd)), Some((_, td))) if sd == td);
        Room {
            journal_free: s.map(|(f, _)| f),
            target_free: if device || shared { None } else { t.map(|(f, _)| f) },
            shared,
            journal: 0,
            target: 0,
        }
    }

    /// Counts `journal` more bytes for the journal and `target` for the replica's data; refuses
    /// once they would not fit.
    fn take(&mut self, journal: u64, target: u64) -> Result<()> {
        self.journal += journal;
        self.target += target;
        let over = |need: u64, free: u64, what: &str| {
            anyhow!(
                "refusing more chunk data: this run needs {need} bytes ({}) {what}, which has {free} bytes ({}) free; \
                 free space on the destination first (the chunks journaled so far are kept)",
                format_bytes(need),
                format_bytes(free)
            )
        };
        if let Some(free) = self.journal_free {
            let need = if self.shared {
                self.journal + self.target
            } else {
                self.journal
            };
            if need > free {
                let what = if self.shared {
                    "for its journal and the replica's data on the state dir's filesystem"
                } else {
                    "for its journal in the state dir"
                };
                return Err(over(need, free, what));
            }
        }
        if let Some(free) = self.target_free {
            if self.target > free {
                return Err(over(self.target, free, "for the replica's data where the replica is"));
            }
        }
        Ok(())
    }
}

/// A manifest of what the target holds over the checkpoint's size (a device may be larger).
pub fn rescan(target: &Path, cp: &Manifest) -> Result<Manifest> {
    let (m, _) = scan_prefix_with(target, Some(cp.source_size), cp.chunk_size, cp.algo, |_, _, _| {
        Ok::<(), ManifestError>(())
    })
    .with_context(|| format!("reading the replica {}", target.display()))?;
    Ok(m)
}
