//! Joins two peers that talk both ways (block volumes' ferry peers): the sender's output goes to
//! the receiver and the receiver's answers back, each byte counted, the bandwidth limit held on
//! the sender's direction. The relay reads the frames' headers on the way (length u32 big-endian,
//! then a type byte) only to hand the sender's progress frames to the job.

use std::time::Instant;

use anyhow::{anyhow, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{judge, Meter, Throttle, Transferred, Watch, CHUNK};
use crate::exec::Process;

/// What the relay hands a watched frame's payload to.
type OnFrame<'a> = &'a (dyn Fn(&[u8]) + Sync);

/// The longest frame payload the relay keeps to hand over (progress frames are 16 bytes).
const WATCHED_MAX: usize = 64;

/// Follows frame boundaries in a byte stream and collects the payloads of one frame type.
struct Frames {
    header: [u8; 5],
    have: usize,
    remaining: u64,
    watched: bool,
    payload: Vec<u8>,
    watch: u8,
}

impl Frames {
    fn new(watch: u8) -> Frames {
        Frames {
            header: [0; 5],
            have: 0,
            remaining: 0,
            watched: false,
            payload: Vec::new(),
            watch,
        }
    }

    /// Walks `buf`, calling `on_frame` with the payload of each complete watched frame.
    fn feed(&mut self, mut buf: &[u8], on_frame: OnFrame<'_>) {
        while !buf.is_empty() {
            if self.have < 5 {
                let take = (5 - self.have).min(buf.len());
                self.header[self.have..self.have + take].copy_from_slice(&buf[..take]);
                self.have += take;
                buf = &buf[take..];
                if self.have == 5 {
                    let len = u32::from_be_bytes([self.header[0], self.header[1], self.header[2], self.header[3]]);
                    self.remaining = u64::from(len.saturating_sub(1));
                    self.watched = self.header[4] == self.watch;
                    self.payload.clear();
                    if self.remaining == 0 {
                        self.end(on_frame);
                    }
                }
                continue;
            }
            let take = (self.remaining as usize).min(buf.len());
            if self.watched && self.payload.len() + take <= WATCHED_MAX {
                self.payload.extend_from_slice(&buf[..take]);
            }
            self.remaining -= take as u64;
            buf = &buf[take..];
            if self.remaining == 0 {
                self.end(on_frame);
            }
        }
    }

    fn end(&mut self, on_frame: OnFrame<'_>) {
        if self.watched {
            on_frame(&self.payload);
        }
        self.have = 0;
    }
}

/// Copies one direction until its reader ends, then closes the writer (the peer sees EOF).
async fn copy(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    meter: &Meter,
    bwlimit: u64,
    mut frames: Option<(Frames, OnFrame<'_>)>,
    moved: &Moved<'_>,
) -> Result<u64> {
    let mut throttle = Throttle::new(bwlimit);
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if let Some((f, on_frame)) = frames.as_mut() {
            f.feed(&buf[..n], *on_frame);
        }
        to.write_all(&buf[..n]).await?;
        moved.now();
        total += n as u64;
        meter.add(n as u64);
        throttle.pace(total).await;
    }
    to.shutdown().await?;
    Ok(total)
}

/// When bytes last moved in one direction (milliseconds since the relay began; 0: never).
struct Moved<'a> {
    began: Instant,
    last: &'a std::sync::atomic::AtomicU64,
}

impl Moved<'_> {
    fn now(&self) {
        let ms = self.began.elapsed().as_millis() as u64;
        self.last.store(ms.max(1), std::sync::atomic::Ordering::Relaxed);
    }
}

/// Relays `send` and `recv` both ways until both end, then waits for both. Frames of type
/// `watch` from the sender are handed to `on_frame` (their payload) as they pass. When nothing
/// moves either way for `stall.idle` (the peers send progress and heartbeats, so that is a hung
/// peer or link), both are given up.
pub async fn duplex(
    mut send: Process,
    mut recv: Process,
    meter: &Meter,
    bwlimit: u64,
    watch: u8,
    on_frame: OnFrame<'_>,
    stall: &Watch,
) -> Result<Transferred> {
    let started = Instant::now();
    let s_out = send.stdout.take().ok_or_else(|| anyhow!("sender has no stdout"))?;
    let s_in = send.stdin.take().ok_or_else(|| anyhow!("sender has no stdin"))?;
    let r_out = recv.stdout.take().ok_or_else(|| anyhow!("receiver has no stdout"))?;
    let r_in = recv.stdin.take().ok_or_else(|| anyhow!("receiver has no stdin"))?;
    // each direction ends on its own (EOF or a dead peer); its ends are dropped with it, so the
    // other side sees the close and ends too
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let (fwd, bck) = (AtomicU64::new(0), AtomicU64::new(0));
    let (moved_fwd, moved_back) = (
        Moved {
            began: started,
            last: &fwd,
        },
        Moved {
            began: started,
            last: &bck,
        },
    );
    let relay = async {
        tokio::join!(
            copy(
                s_out,
                r_in,
                meter,
                bwlimit,
                Some((Frames::new(watch), on_frame)),
                &moved_fwd
            ),
            copy(r_out, s_in, meter, 0, None, &moved_back)
        )
    };
    let idle_ms = stall.idle.as_millis() as u64;
    let watchdog = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let now = started.elapsed().as_millis() as u64;
            if now.saturating_sub(fwd.load(Relaxed).max(bck.load(Relaxed))) > idle_ms {
                return;
            }
        }
    };
    let (forward, back) = tokio::select! {
        r = relay => r,
        () = watchdog => {
            // the side silent longer is the one that hung (the other was waiting for it); a hung
            // end may never exit, so both are dropped (ended) rather than waited for
            let silent = if bck.load(Relaxed) <= fwd.load(Relaxed) {
                format!("the destination's peer on {} answered nothing", stall.destination)
            } else {
                format!("the source's peer on {} sent nothing", stall.source)
            };
            return Err(stall.stalled(&silent));
        }
    };
    let bytes = forward.as_ref().copied().unwrap_or(0) + back.as_ref().copied().unwrap_or(0);
    let seconds = started.elapsed().as_secs_f64();
    let (s, r) = tokio::join!(send.wait(), recv.wait());
    judge(s, r, Transferred { bytes, seconds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn watched_frames_are_found_across_any_split() {
        let mut stream = Vec::new();
        for (t, payload) in [
            (5u8, vec![1u8; 300]),
            (12, vec![7; 16]),
            (5, vec![2; 10]),
            (12, vec![9; 16]),
        ] {
            stream.extend_from_slice(&((payload.len() + 1) as u32).to_be_bytes());
            stream.push(t);
            stream.extend_from_slice(&payload);
        }
        for split in [1usize, 2, 3, 5, 7, 64, 1000] {
            let seen = Mutex::new(Vec::new());
            let on = |p: &[u8]| seen.lock().unwrap().push(p.to_vec());
            let mut f = Frames::new(12);
            for piece in stream.chunks(split) {
                f.feed(piece, &on);
            }
            assert_eq!(
                *seen.lock().unwrap(),
                vec![vec![7u8; 16], vec![9u8; 16]],
                "split {split}"
            );
        }
    }
}
