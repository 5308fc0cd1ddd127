//! `ferry peer block-send`: the source's end of a block update. Learns what the replica holds
//! (a manifest id and the chunks a cut run left journaled), takes the point-in-time copy, reads
//! the source once on every core and sends each chunk whose hash differs, then commits towards
//! the new manifest and, once the destination says it applied it, keeps that manifest as the
//! next run's base.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};

use super::names::{promote, Named};
use super::{software, state_dir, Idle, PROGRESS_EVERY};
use crate::block::proto::{self, Message};
use crate::block::scan::{scan_with, source_size};
use crate::block::{Digest, HashAlgo, Manifest, ManifestError};

/// What the job asks of the sender.
#[derive(Debug, Clone)]
pub struct SendArgs {
    /// The source: a file or a block device.
    pub path: PathBuf,
    /// This pair's state directory on the source's host.
    pub state: PathBuf,
    /// The checkpoint this run makes (`ferry.<fp>.<time>`).
    pub name: String,
    pub chunk: u32,
    pub algo: HashAlgo,
    /// Read a reflink copy (point in time) instead of the live source.
    pub reflink: bool,
    /// zstd-compress chunks where that makes them smaller.
    pub compress: bool,
    /// Seconds without a frame from the receiver (its heartbeats count) before giving up.
    pub idle_timeout: u64,
}

/// Why a scan callback stopped: the source could not be read, or the stream broke.
#[derive(Debug)]
enum Stop {
    Source(ManifestError),
    Stream(proto::ProtoError),
}

impl From<ManifestError> for Stop {
    fn from(e: ManifestError) -> Self {
        Stop::Source(e)
    }
}

/// Runs the sender on stdin/stdout; errors go to stderr and a non-zero exit (the job reports them).
pub fn run(a: &SendArgs) -> Result<()> {
    state_dir(&a.state)?;
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::new(Idle::new(stdin.lock(), a.idle_timeout, "the destination"));
    let out = Mutex::new(BufWriter::with_capacity(1 << 20, std::io::stdout()));
    let result = send(a, &mut input, &out);
    if let Err(e) = &result {
        // tell the receiver why, so it does not wait for a commit that will not come
        let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = proto::write_sync(
            &mut *w,
            &Message::Error {
                message: format!("source: {e:#}"),
            },
        );
        let _ = w.flush();
    }
    result
}

fn send<R: std::io::Read, W: Write + Send>(a: &SendArgs, input: &mut R, out: &Mutex<W>) -> Result<()> {
    let w = || out.lock().unwrap_or_else(|p| p.into_inner());
    proto::handshake_sync(input, &mut *w(), &software()).context("handshake with the destination")?;
    let (id, held) = match answer(input)? {
        Message::Base { id, held } => (id, held),
        Message::Error { message } => bail!("destination: {message}"),
        other => bail!("expected the destination's base, got {}", other.word()),
    };
    let base = if id == [0; 32] {
        None
    } else if let Some(m) = own_manifest(&a.state, &id)? {
        Some(m)
    } else {
        // ours is missing or another (a replica restored by hand, a new source host): ask for it
        proto::write_sync(
            &mut *w(),
            &Message::ManifestRequest {
                path: a.path.display().to_string(),
                chunk_size: a.chunk,
                algo: a.algo,
            },
        )?;
        w().flush()?;
        Some(proto::recv_manifest_sync(input).context("reading the destination's manifest")?)
    };
    if let Some(b) = &base {
        if b.chunk_size != a.chunk || b.algo != a.algo {
            bail!(
                "the replica's checkpoint was made with chunk = {} B and {}, the pair now asks for {} B and {}: \
                 put `chunk` back, or purge --all and initialize again",
                b.chunk_size,
                b.algo.name(),
                a.chunk,
                a.algo.name()
            );
        }
    }
    let read_path = point_in_time(a)?;
    let size = source_size(&read_path)?;
    proto::write_sync(
        &mut *w(),
        &Message::Begin {
            algo: a.algo,
            chunk_size: a.chunk,
            source_size: size,
        },
    )?;
    let old: Vec<Digest> = base.map(|b| b.digests).unwrap_or_default();
    let held: HashMap<u64, Digest> = held.into_iter().collect();
    let read = AtomicU64::new(0);
    let scanned = scan_with(&read_path, a.chunk, a.algo, |index, data, digest| {
        let was = held.get(&index).or_else(|| old.get(index as usize));
        if was != Some(digest) {
            proto::write_sync(&mut *w(), &chunk_message(index, data, a.compress)).map_err(Stop::Stream)?;
        }
        let n = data.len() as u64;
        let done = read.fetch_add(n, Ordering::Relaxed) + n;
        if done / PROGRESS_EVERY != (done - n) / PROGRESS_EVERY {
            let mut w = w();
            proto::write_sync(
                &mut *w,
                &Message::Progress {
                    read: done,
                    total: size,
                },
            )
            .map_err(Stop::Stream)?;
            w.flush().map_err(|e| Stop::Stream(e.into()))?;
        }
        Ok::<(), Stop>(())
    });
    let manifest = match scanned {
        Ok((m, _)) => m,
        Err(Stop::Source(e)) => return Err(e.into()),
        Err(Stop::Stream(e)) => return Err(why_broken(input, e)),
    };
    proto::write_sync(
        &mut *w(),
        &Message::Progress {
            read: size,
            total: size,
        },
    )?;
    // the plan is durable before the commit: if the answer is lost, the next run finds the
    // destination at this manifest and takes it as its base
    manifest.write(&a.state.join("planned.manifest"))?;
    Named::new(&a.name, manifest.id()).write(&a.state.join("planned.name"))?;
    proto::write_sync(
        &mut *w(),
        &Message::Commit {
            manifest_id: manifest.id(),
            source_size: size,
        },
    )?;
    w().flush()?;
    match answer(input) {
        Ok(Message::Ok) => {}
        Ok(Message::Error { message }) => bail!("destination: {message}"),
        Ok(other) => bail!("expected the destination's answer to the commit, got {}", other.word()),
        Err(e) => bail!("no answer to the commit ({e}); the next update finds out whether it was applied"),
    }
    promote(&a.state, "planned", "source")?;
    remove_snapshot(&a.state)?;
    Ok(())
}

/// The message that carries a changed chunk: a zero run as its length, else the bytes,
/// compressed when asked and smaller.
fn chunk_message(index: u64, data: &[u8], compress: bool) -> Message {
    if data.iter().all(|&b| b == 0) {
        return Message::Zero {
            index,
            len: data.len() as u32,
        };
    }
    if compress {
        if let Ok(z) = zstd::bulk::compress(data, 1) {
            if z.len() < data.len() {
                return Message::ChunkZstd {
                    index,
                    len: data.len() as u32,
                    data: z,
                };
            }
        }
    }
    Message::Chunk {
        index,
        data: data.to_vec(),
    }
}

/// After a write failed: the destination's own error says more than "broken pipe".
fn why_broken<R: std::io::Read>(input: &mut R, e: proto::ProtoError) -> anyhow::Error {
    match answer(input) {
        Ok(Message::Error { message }) => anyhow!("destination: {message}"),
        _ => anyhow!("the stream to the destination broke: {e}"),
    }
}

/// The receiver's next message that says something: its heartbeats (empty progress frames,
/// sent while it recovers or applies) only prove it is alive.
fn answer<R: std::io::Read>(input: &mut R) -> Result<Message, proto::ProtoError> {
    loop {
        match proto::read_sync(input)? {
            Message::Progress { .. } => continue,
            m => return Ok(m),
        }
    }
}

/// The manifest this side kept whose id the destination names: the last committed one, or the
/// planned one whose commit answer was lost (then it becomes the committed one).
fn own_manifest(state: &Path, id: &[u8; 32]) -> Result<Option<Manifest>> {
    for stem in ["source", "planned"] {
        let path = state.join(format!("{stem}.manifest"));
        if !path.exists() {
            continue;
        }
        let Ok(m) = Manifest::read(&path) else { continue };
        if &m.id() == id {
            if stem == "planned" {
                promote(state, "planned", "source")?;
            }
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// What to read: the live source, or a fresh reflink copy of it in the state directory.
fn point_in_time(a: &SendArgs) -> Result<PathBuf> {
    if !a.reflink {
        return Ok(a.path.clone());
    }
    remove_snapshot(&a.state)?;
    let snap = a.state.join("snapshot");
    reflink(&a.path, &snap)?;
    Ok(snap)
}

/// Removes the point-in-time copy (a killed run's too).
pub fn remove_snapshot(state: &Path) -> Result<()> {
    let snap = state.join("snapshot");
    match std::fs::remove_file(&snap) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow!("cannot remove the old snapshot {}: {e}", snap.display())),
    }
}

/// Linux's FICLONE ioctl: the new file shares the source's extents (btrfs, xfs with reflink=1).
const FICLONE: libc::c_ulong = 0x4004_9409;

/// Clones `from` into a new file `to` without copying data.
pub fn reflink(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::io::AsRawFd;
    let meta = std::fs::metadata(from).with_context(|| format!("source {}", from.display()))?;
    if meta.file_type().is_block_device() {
        bail!(
            "source {} is a block device, which cannot be reflinked: use snapshot = \"none\" (LVM snapshots are not built)",
            from.display()
        );
    }
    let src = std::fs::File::open(from).with_context(|| format!("source {}", from.display()))?;
    let dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .with_context(|| format!("creating the snapshot {}", to.display()))?;
    // SAFETY: both descriptors are open for the duration of the call; FICLONE takes an int fd.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), FICLONE as _, src.as_raw_fd()) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        drop(dst);
        let _ = std::fs::remove_file(to);
        let why = match e.raw_os_error() {
            Some(libc::EXDEV) => format!(
                "the snapshot directory {} is on another filesystem than the source",
                to.parent().unwrap_or(to).display()
            ),
            Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOTTY) => {
                "the source's filesystem cannot reflink (btrfs and xfs can): use snapshot = \"none\"".to_string()
            }
            _ => e.to_string(),
        };
        bail!("snapshot = \"reflink\" of {} failed: {why}", from.display());
    }
    Ok(())
}
