//! A lease held in the coordination engine, renewed by a thread of its own while the holder works.
//!
//! `valid()` is the holder's fence: it is true only while the engine cannot have expired the
//! lease yet, reckoned from when the last acknowledged renewal was *sent* (the engine's clock
//! starts later), less a margin. A holder checks it before each step that others must not repeat
//! (a journal append), so a holder that was paused or cut off stops itself before a successor
//! can start.
//!
//! A lease may also guard a key (`guard`): each renewal then reads the key too, and the lease
//! counts as lost once the key is gone or is not the one made (another create revision or
//! lease): someone deleted it in etcd, and a standby may take it at its next look.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::etcd::{Etcd, EtcdError};

pub struct HeldLease {
    etcd: Etcd,
    id: i64,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Time since boot, counting suspend (CLOCK_BOOTTIME): a host that slept through its lease must
/// not find it still valid when it wakes, as a monotonic clock that stops in suspend would say.
fn boot_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we own; CLOCK_BOOTTIME exists on every Linux ferry runs on
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// What the holder and its renewing thread both see.
struct Shared {
    ttl: Duration,
    /// `boot_now()` when the lease was asked for.
    base: Duration,
    /// Milliseconds after `base` at which the last acknowledged renewal was sent.
    last_ok_ms: AtomicU64,
    /// The engine said the lease is gone.
    lost: AtomicBool,
    stop: AtomicBool,
    /// The key this lease holds, and the create revision it was made at.
    guard: std::sync::Mutex<Option<(String, i64)>>,
    /// What a renewal found instead of the guarded key.
    guard_lost: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn valid(&self) -> bool {
        let last = Duration::from_millis(self.last_ok_ms.load(Ordering::SeqCst));
        !self.lost.load(Ordering::SeqCst) && boot_now().saturating_sub(self.base) < last + self.ttl - margin(self.ttl)
    }
}

/// How much of the lease the holder keeps in hand: it stops a quarter of the lease early.
fn margin(ttl: Duration) -> Duration {
    ttl / 4
}

impl HeldLease {
    /// Grants a lease of `ttl` (whole seconds) and starts renewing it every third of it.
    pub fn grant(etcd: &Etcd, ttl: Duration) -> Result<HeldLease, EtcdError> {
        let base = boot_now();
        let id = etcd.grant(ttl.as_secs().max(1))?;
        let shared = Arc::new(Shared {
            ttl,
            base,
            last_ok_ms: AtomicU64::new(0),
            lost: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            guard: Default::default(),
            guard_lost: Default::default(),
        });
        let thread = {
            let (etcd, shared) = (etcd.clone(), shared.clone());
            std::thread::Builder::new()
                .name("ferry-lease".into())
                .spawn(move || renew(etcd, id, shared))
                .ok()
        };
        Ok(HeldLease {
            etcd: etcd.clone(),
            id,
            shared,
            thread,
        })
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// True while the lease certainly still holds (see the module doc).
    pub fn valid(&self) -> bool {
        self.shared.valid()
    }

    /// From now on each renewal also checks that `key` exists as made at `create_revision` on
    /// this lease; when it does not, the lease counts as lost (see the module doc).
    pub fn guard(&self, key: &str, create_revision: i64) {
        *self.shared.guard.lock().unwrap_or_else(|p| p.into_inner()) = Some((key.to_string(), create_revision));
    }

    /// What a renewal found instead of the guarded key, once it did.
    pub fn guard_lost(&self) -> Option<String> {
        self.shared.guard_lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `valid` as a closure that outlives this borrow (for a journal's fence).
    pub fn watch(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.valid()
    }

    /// Stops renewing and ends the lease in the engine (its keys go with it).
    pub fn release(mut self) {
        self.halt();
        let _ = self.etcd.revoke(self.id);
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
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

fn renew(etcd: Etcd, id: i64, shared: Arc<Shared>) {
    let every = shared.ttl / 3;
    let mut next = Instant::now() + every;
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        let (sent, sent_at) = (boot_now().saturating_sub(shared.base), Instant::now());
        match etcd.keepalive(id).and_then(|_| check_guard(&etcd, id, &shared)) {
            Ok(Some(found)) => {
                *shared.guard_lost.lock().unwrap_or_else(|p| p.into_inner()) = Some(found);
                shared.lost.store(true, Ordering::SeqCst);
                return;
            }
            Ok(None) => {
                shared.last_ok_ms.store(sent.as_millis() as u64, Ordering::SeqCst);
                // a third of the lease after the renewal was sent, however long it took
                next = sent_at + every;
            }
            Err(EtcdError::LeaseExpired(_)) => {
                shared.lost.store(true, Ordering::SeqCst);
                return;
            }
            // unreachable for now: try again soon; `valid` runs out on its own if this lasts
            Err(_) => next = Instant::now() + Duration::from_millis(200),
        }
    }
}

/// After a renewal: `None` while the guarded key (if any) is still ours, else what is there.
fn check_guard(etcd: &Etcd, id: i64, shared: &Shared) -> Result<Option<String>, EtcdError> {
    let Some((key, rev)) = shared.guard.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
        return Ok(None);
    };
    Ok(match etcd.get(&key)? {
        Some(kv) if kv.create_revision == rev && kv.lease == id => None,
        Some(kv) => Some(format!(
            "{key} was made again by someone else ({})",
            super::Orphan::new(&key, &kv).value
        )),
        None => Some(format!("{key} was deleted in etcd")),
    })
}
