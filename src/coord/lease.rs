//! A lease held in the coordination engine, renewed by a thread of its own while the holder works.
//!
//! `valid()` is the holder's fence: it is true only while the engine cannot have expired the
//! lease yet, reckoned from when the last acknowledged renewal was *sent* (the engine's clock
//! starts later), less a margin. A holder checks it before each step that others must not repeat
//! (a journal append), so a holder that was paused or cut off stops itself before a successor
//! can start.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::etcd::{Etcd, EtcdError};

pub struct HeldLease {
    etcd: Etcd,
    id: i64,
    ttl: Duration,
    base: Instant,
    /// Milliseconds after `base` at which the last acknowledged renewal was sent.
    last_ok_ms: Arc<AtomicU64>,
    /// The engine said the lease is gone.
    lost: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How much of the lease the holder keeps in hand: it stops a quarter of the lease early.
fn margin(ttl: Duration) -> Duration {
    ttl / 4
}

impl HeldLease {
    /// Grants a lease of `ttl` (whole seconds) and starts renewing it every third of it.
    pub fn grant(etcd: &Etcd, ttl: Duration) -> Result<HeldLease, EtcdError> {
        let base = Instant::now();
        let id = etcd.grant(ttl.as_secs().max(1))?;
        let last_ok_ms = Arc::new(AtomicU64::new(0));
        let lost = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (etcd, last_ok_ms, lost, stop) = (etcd.clone(), last_ok_ms.clone(), lost.clone(), stop.clone());
            std::thread::Builder::new()
                .name("ferry-lease".into())
                .spawn(move || renew(etcd, id, ttl, base, last_ok_ms, lost, stop))
                .ok()
        };
        Ok(HeldLease {
            etcd: etcd.clone(),
            id,
            ttl,
            base,
            last_ok_ms,
            lost,
            stop,
            thread,
        })
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// True while the lease certainly still holds (see the module doc).
    pub fn valid(&self) -> bool {
        (self.watch())()
    }

    /// `valid` as a closure that outlives this borrow (for a journal's fence).
    pub fn watch(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let (lost, last_ok_ms, base, ttl) = (self.lost.clone(), self.last_ok_ms.clone(), self.base, self.ttl);
        move || {
            !lost.load(Ordering::SeqCst)
                && base.elapsed() < Duration::from_millis(last_ok_ms.load(Ordering::SeqCst)) + ttl - margin(ttl)
        }
    }

    /// Stops renewing and ends the lease in the engine (its keys go with it).
    pub fn release(mut self) {
        self.halt();
        let _ = self.etcd.revoke(self.id);
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HeldLease {
    /// Dropped without `release` (a holder that gives up): renewals stop and the lease runs out
    /// in the engine, as a dead holder's would.
    fn drop(&mut self) {
        self.halt();
    }
}

fn renew(
    etcd: Etcd,
    id: i64,
    ttl: Duration,
    base: Instant,
    last_ok_ms: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let every = ttl / 3;
    let mut next = Instant::now() + every;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        let sent = base.elapsed();
        match etcd.keepalive(id) {
            Ok(_) => {
                last_ok_ms.store(sent.as_millis() as u64, Ordering::SeqCst);
                next = Instant::now() + every;
            }
            Err(EtcdError::LeaseExpired(_)) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            // unreachable for now: try again soon; `valid` runs out on its own if this lasts
            Err(_) => next = Instant::now() + Duration::from_millis(200),
        }
    }
}
