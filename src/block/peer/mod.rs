//! The block peer: `ferry peer block-send` on the source's host and `ferry peer block-receive`
//! on the destination's, started by the job over SSH (or here for a local side) and joined by
//! the job's relay, speaking `proto`'s frames on stdin/stdout as rsync's and borg's remote ends do.
//!
//! Each side keeps its files in its own state directory: the source the manifest of what the
//! replica holds (`source.manifest`, named in `source.name`), the one being committed
//! (`planned.*`) and the point-in-time copy (`snapshot`); the destination its checkpoint
//! (`checkpoint.manifest` + `checkpoint.name`) and the journal of an apply in progress.

pub mod names;
pub mod receive;
pub mod send;
pub mod verify;

use super::proto::PROTOCOL_VERSION;

/// What a peer says it is, in hellos and in `ferry peer version`.
pub fn software() -> String {
    format!("ferry {} block protocol {PROTOCOL_VERSION}", env!("CARGO_PKG_VERSION"))
}

/// Bytes journaled between syncs: what a cut transfer can lose at most and must resend.
pub const SYNC_EVERY: u64 = 32 * 1024 * 1024;

/// Read progress is reported to the job every this many bytes of source read.
pub const PROGRESS_EVERY: u64 = 8 * 1024 * 1024;

/// Makes a peer's state directory (private: manifests describe the data) and refuses one it
/// cannot trust: a symlink, or one another user owns or can write into (it could plant the
/// files this peer writes and replays, in a shared parent such as a world-writable one).
pub fn state_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| anyhow::anyhow!("cannot create the state directory {}: {e}", dir.display()))?;
    }
    crate::state::files::ensure_trusted_dir(dir, "block state directory").map_err(|e| anyhow::anyhow!("{e}"))
}

/// Stdin that gives up when nothing arrives for `secs`: a peer that goes silent (not dead, which
/// the pipe tells) would otherwise hold this one, the job and the pair's lock forever.
pub struct Idle<R> {
    inner: R,
    secs: u64,
    /// Who is silent, for the error ("the source").
    who: &'static str,
}

impl<R> Idle<R> {
    pub fn new(inner: R, secs: u64, who: &'static str) -> Idle<R> {
        Idle {
            inner,
            secs: secs.max(1),
            who,
        }
    }
}

impl<R: std::io::Read> std::io::Read for Idle<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut fds = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(self.secs.saturating_mul(1000)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut fds, 1, ms) };
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{} sent nothing for {}s (idle timeout)", self.who, self.secs),
            ));
        }
        self.inner.read(buf)
    }
}

/// How often a peer busy without a word to say (recovering, applying) tells the other it lives:
/// well inside any idle timeout the other may have (1 s at the least).
pub fn heartbeat_every(idle_timeout: u64) -> std::time::Duration {
    std::time::Duration::from_secs((idle_timeout / 4).clamp(1, 30))
}

/// Sends empty progress frames on `out` every `every` while `work` runs (the other peer skips
/// them), so a long silent step is told from a hung peer. `work` must not write to `out`.
pub struct Heartbeat;

impl Heartbeat {
    pub fn during<W: std::io::Write + Send, T>(out: &mut W, every: std::time::Duration, work: impl FnOnce() -> T) -> T {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            s.spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(every) {
                    let beat = super::proto::Message::Progress { read: 0, total: 0 };
                    if super::proto::write_sync(out, &beat).is_err() || out.flush().is_err() {
                        break;
                    }
                }
            });
            let r = work();
            drop(done);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_beats_while_the_work_runs_and_stops_with_it() {
        let mut out = Vec::new();
        let got = Heartbeat::during(&mut out, std::time::Duration::from_millis(100), || {
            std::thread::sleep(std::time::Duration::from_millis(550));
            7
        });
        assert_eq!(got, 7);
        let beat = crate::block::proto::encode(&crate::block::proto::Message::Progress { read: 0, total: 0 });
        let beats = out.len() / beat.len();
        assert!(
            out.len() % beat.len() == 0 && (3..=6).contains(&beats),
            "{beats} beats in {} bytes",
            out.len()
        );
        assert_eq!(&out[..beat.len()], &beat[..]);
        assert_eq!(heartbeat_every(600), std::time::Duration::from_secs(30));
        assert_eq!(heartbeat_every(2), std::time::Duration::from_secs(1));
    }
}
