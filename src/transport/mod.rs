//! Joins a send stream to a receive stream, counting every byte in-process and honouring a
//! bandwidth limit. Where the streams run (here or on a host) is the exec layer's business.

pub mod codec;
pub mod duplex;
pub mod mbuffer;
pub mod meter;

use std::time::Instant;

use anyhow::{anyhow, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::exec::{describe_failure, Finished, Process};
pub use meter::Meter;

/// Chunk size of the copy loop: large enough that per-chunk work is noise at 1 GB/s.
const CHUNK: usize = 256 * 1024;

/// Holds a bandwidth limit (bytes per second, 0: none): after each write, sleeps until the bytes
/// since its origin are back under the limit. A stream that fell behind (a stalled link, a
/// loaded machine) may not make up for it in a burst above the limit: the credit it can save up
/// is capped at `CREDIT`, so the rate over any few seconds stays at the limit.
pub(crate) struct Throttle {
    limit: u64,
    origin: Instant,
    base: u64,
}

/// The most time a throttled stream may be behind its limit and catch up on.
const CREDIT: std::time::Duration = std::time::Duration::from_millis(250);

impl Throttle {
    pub(crate) fn new(limit: u64) -> Throttle {
        Throttle {
            limit,
            origin: Instant::now(),
            base: 0,
        }
    }

    /// Called with the stream's running total after each write.
    pub(crate) async fn pace(&mut self, total: u64) {
        if self.limit == 0 {
            return;
        }
        let due = std::time::Duration::from_secs_f64(total.saturating_sub(self.base) as f64 / self.limit as f64);
        let now = self.origin.elapsed();
        if due > now {
            tokio::time::sleep(due - now).await;
        } else if now - due > CREDIT {
            // behind by more than the credit: start counting again from here, CREDIT behind
            self.origin = Instant::now() - CREDIT;
            self.base = total;
        }
    }
}

/// A transfer that ended with a failed command: the text it always said, and the receiving
/// command's end where it failed, kept whole so the driver can read why (a destination changed
/// by hand) from the receiver's own words instead of from this text.
#[derive(Debug, thiserror::Error)]
#[error("{text}")]
pub struct StreamFailed {
    pub text: String,
    pub receiver: Option<Finished>,
}

impl StreamFailed {
    fn error(text: String, receiver: Option<&Finished>) -> anyhow::Error {
        StreamFailed {
            text,
            receiver: receiver.filter(|r| !r.success()).cloned(),
        }
        .into()
    }
}

/// What a finished transfer moved.
#[derive(Debug, Clone, Copy)]
pub struct Transferred {
    pub bytes: u64,
    pub seconds: f64,
}

/// How long a transfer may stand still, and who its two ends are (for the error that names the
/// silent one): the pair's `idle_timeout`, the source's and destination's hosts.
#[derive(Debug, Clone)]
pub struct Watch {
    pub idle: std::time::Duration,
    pub source: String,
    pub destination: String,
}

impl Watch {
    fn stalled(&self, what: &str) -> anyhow::Error {
        anyhow!(
            "{what} for {}s (idle_timeout): the transfer was given up; the next run takes it up again",
            self.idle.as_secs()
        )
    }
}

/// Copies `send`'s stdout into `recv`'s stdin until the sender ends, then waits for both.
/// The receiver's complaint wins when both fail: "out of space" says more than "broken pipe".
pub async fn pipe(
    mut send: Process,
    mut recv: Process,
    meter: &Meter,
    bwlimit: u64,
    watch: &Watch,
) -> Result<Transferred> {
    let mut from = send.stdout.take().ok_or_else(|| anyhow!("sender has no stdout"))?;
    let mut to = recv.stdin.take().ok_or_else(|| anyhow!("receiver has no stdin"))?;
    let started = Instant::now();
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    let mut throttle = Throttle::new(bwlimit);
    let mut stalled = false;
    let copied: Result<()> = async {
        loop {
            let Ok(n) = tokio::time::timeout(watch.idle, from.read(&mut buf)).await else {
                stalled = true;
                return Err(watch.stalled(&format!("the sending side on {} sent nothing", watch.source)));
            };
            let n = n?;
            if n == 0 {
                break;
            }
            if tokio::time::timeout(watch.idle, to.write_all(&buf[..n])).await.is_err() {
                stalled = true;
                return Err(watch.stalled(&format!("the receiving side on {} took nothing", watch.destination)));
            }
            total += n as u64;
            meter.add(n as u64);
            throttle.pace(total).await;
        }
        to.shutdown().await?;
        Ok(())
    }
    .await;
    drop(to);
    let seconds = started.elapsed().as_secs_f64();
    if stalled {
        // a stalled end may never exit: both are dropped (ended) rather than waited for
        return Err(copied.err().unwrap_or_else(|| anyhow!("the transfer stalled")));
    }
    if copied.is_err() {
        // the receiver is gone or the link broke: stop the sender instead of draining it
        drop(from);
        let r = recv.wait().await;
        drop(send);
        return Err(failure("receive", r, copied.err()));
    }
    drop(from);
    let (s, r) = tokio::join!(send.wait(), recv.wait());
    judge(s, r, Transferred { bytes: total, seconds })
}

/// The outcome of a transfer whose streams both ended: which side failed and why. The receiver's
/// complaint wins when both fail and the sender only died of the broken pipe.
fn judge(s: Result<Finished>, r: Result<Finished>, moved: Transferred) -> Result<Transferred> {
    let Transferred { bytes: total, seconds } = moved;
    match (s, r) {
        (Ok(s), Ok(r)) if s.success() && r.success() => Ok(Transferred { bytes: total, seconds }),
        (Ok(s), Ok(r)) if !s.success() && !r.success() => {
            let (sm, rm) = (describe_failure(s.code, &s.stderr), describe_failure(r.code, &r.stderr));
            // a sender killed by a broken pipe is the receiver's victim; otherwise the sender is the cause
            if s.code.is_none() || s.code == Some(141) || s.stderr.contains("Broken pipe") {
                Err(StreamFailed::error(
                    format!("receive failed: {rm} (send: {sm})"),
                    Some(&r),
                ))
            } else {
                Err(StreamFailed::error(
                    format!("send failed: {sm} (receive: {rm})"),
                    Some(&r),
                ))
            }
        }
        (Ok(_), Ok(r)) if !r.success() => Err(StreamFailed::error(
            format!("receive failed: {}", describe_failure(r.code, &r.stderr)),
            Some(&r),
        )),
        (Ok(s), Ok(_)) => Err(StreamFailed::error(
            format!("send failed: {}", describe_failure(s.code, &s.stderr)),
            None,
        )),
        (Err(e), _) => Err(e.context("send")),
        (_, Err(e)) => Err(e.context("receive")),
    }
}

fn failure(side: &str, r: Result<Finished>, other: Option<anyhow::Error>) -> anyhow::Error {
    match r {
        Ok(f) if !f.success() => StreamFailed::error(
            format!("{side} failed: {}", describe_failure(f.code, &f.stderr)),
            Some(&f),
        ),
        Ok(_) => match other {
            Some(e) => anyhow!("stream broke: {e:#}"),
            None => anyhow!("stream broke"),
        },
        Err(e) => e.context(format!("{side} failed")),
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_that_fell_behind_does_not_burst_above_the_limit() {
        let mut t = Throttle::new(1_000_000);
        t.pace(100_000).await; // 0.1 s at the limit
        tokio::time::sleep(std::time::Duration::from_millis(500)).await; // a stall
        let start = Instant::now();
        for total in (200_000..=600_000).step_by(100_000) {
            t.pace(total).await;
        }
        // 500 KB after the stall: at most CREDIT (0.25 s) of it free, the rest at the limit;
        // averaging since the start would have let all of it through at once
        assert!(
            start.elapsed() >= std::time::Duration::from_millis(150),
            "{:?}",
            start.elapsed()
        );
    }
}

#[cfg(test)]
mod judge_tests {
    use super::*;

    fn end(code: i32, stderr: &str) -> Result<Finished> {
        Ok(Finished {
            code: Some(code),
            stderr: stderr.into(),
        })
    }

    #[test]
    fn only_the_receivers_own_failure_is_kept_for_the_driver() {
        let moved = Transferred { bytes: 0, seconds: 0.0 };
        let modified = "cannot receive incremental stream: destination b/household has been modified";
        // the sender saying the words is not the receiver failing
        let e = judge(end(1, modified), end(0, ""), moved).unwrap_err();
        let f = e.downcast_ref::<StreamFailed>().expect("typed");
        assert!(f.receiver.is_none(), "{f:?}");
        assert_eq!(e.to_string(), format!("send failed: exit 1: {modified}"));
        // the receiver's end is kept whole, the text is as it always was
        let e = judge(end(141, ""), end(1, modified), moved).unwrap_err();
        let f = e.downcast_ref::<StreamFailed>().expect("typed");
        assert_eq!(f.receiver.as_ref().map(|r| r.stderr.as_str()), Some(modified));
        assert_eq!(
            e.to_string(),
            format!("receive failed: exit 1: {modified} (send: exit 141)")
        );
    }
}
