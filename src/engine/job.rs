//! One run of one action on one pair: holds the pair's lock, keeps its log, and publishes its
//! progress to the state dir several times a second for any other process to read.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::config::Pair;
use crate::model::{JobAction, Phase};
use crate::state::last::LastResult;
use crate::state::lock::{self, Lock};
use crate::state::log::PairLog;
use crate::state::now_unix;
use crate::state::progress::{Progress, RateTracker};
use crate::transport::Meter;

/// Interval of progress writes: four a second, so a reader polling each second never sees stale data.
const REPORT_EVERY: Duration = Duration::from_millis(250);

struct Shared {
    progress: Progress,
    tracker: RateTracker,
    /// When the current transfer began (rates count from here, not from the job's start).
    transfer_start: Option<Instant>,
    /// Meter reading when the transfer began.
    base: u64,
    /// The sender's read of a source it reads whole: (read, total), and its rates.
    read: Option<(u64, u64)>,
    read_tracker: RateTracker,
    /// An object pair's pass: changes applied of those found, and its byte figures.
    objects: Option<crate::object::sync::PassProgress>,
    objects_tracker: RateTracker,
}

pub struct Job {
    lock: Option<Lock>,
    /// The pair's lock in the coordination engine, when one is configured.
    lease: Option<crate::coord::pair_lock::PairLease>,
    pub log: PairLog,
    pub meter: Meter,
    shared: Arc<Mutex<Shared>>,
    reporter: tokio::task::JoinHandle<()>,
    path: std::path::PathBuf,
    last_path: std::path::PathBuf,
    success_path: std::path::PathBuf,
    started: Instant,
    action: JobAction,
}

impl Job {
    /// Takes the pair's lock (refusing if a job runs or a dead job's lock remains) and starts reporting.
    fn start(engine: &super::Engine, pair: &Pair, action: JobAction) -> Result<Job> {
        let state = &engine.state;
        let fp = pair.fingerprint();
        state.ensure_pair_dir(&fp)?;
        let label = action.label();
        let held = lock::acquire(&state.lock_path(&fp), label).map_err(|e| match e {
            lock::LockError::Stale(_) => anyhow!("{e}: check it, then run `{}`", engine.command("unlock", Some(pair))),
            e => anyhow!("{e}"),
        })?;
        let lease = match &engine.config.coordination {
            None => None,
            Some(coord) => match crate::coord::blocking(|| coordinated(engine, coord, pair, &held.info)) {
                Ok(l) => Some(l),
                Err(e) => {
                    held.release();
                    return Err(e);
                }
            },
        };
        let log = PairLog::new(&state.log_path(&fp), engine.verbose);
        log.line(&format!("{label} {} -> {} started", pair.source, pair.destination));
        let progress = Progress {
            pid: std::process::id(),
            action: label.to_string(),
            fingerprint: fp.clone(),
            source: pair.source.to_string(),
            destination: pair.destination.to_string(),
            phase: Phase::Connecting.word().into(),
            started: now_unix(),
            ..Default::default()
        };
        let shared = Arc::new(Mutex::new(Shared {
            progress,
            tracker: RateTracker::new(),
            transfer_start: None,
            base: 0,
            read: None,
            read_tracker: RateTracker::new(),
            objects: None,
            objects_tracker: RateTracker::new(),
        }));
        let meter = Meter::new();
        let path = state.progress_path(&fp);
        let reporter = {
            let (shared, meter, path) = (shared.clone(), meter.clone(), path.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(REPORT_EVERY);
                loop {
                    tick.tick().await;
                    // written under the lock `finish` writes the last figures under: one writer at
                    // a time, and never a stale snapshot over the final one
                    let mut s = shared.lock().unwrap();
                    if s.progress.finished {
                        return;
                    }
                    refresh(&mut s, meter.get());
                    let _ = s.progress.write(&path);
                }
            })
        };
        Ok(Job {
            lock: Some(held),
            lease,
            log,
            meter,
            shared,
            reporter,
            path,
            last_path: state.last_path(&fp),
            success_path: state.success_path(&fp),
            started: Instant::now(),
            action,
        })
    }

    /// One job of `action` on `pair` around `work`: the lock taken first (refused while another
    /// job holds it), the work stopped by SIGINT/SIGTERM, and its outcome recorded (progress,
    /// last result, log) and the lock released, whatever became of it. Every job runs so.
    pub async fn run<T>(
        engine: &super::Engine,
        pair: &Pair,
        action: JobAction,
        work: impl AsyncFnOnce(&Job) -> Result<T>,
    ) -> Result<T> {
        let job = Job::start(engine, pair, action)?;
        let result = job.guard(work(&job)).await;
        job.finish(&result);
        result
    }

    /// Runs the job's work until it ends or a SIGINT/SIGTERM stops it; `finish` comes after.
    async fn guard<T>(&self, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            r = work => r,
            sig = interrupted() => Err(stopped(sig).await),
        }
    }

    /// Enters `phase`; the log says it with what is happening in it, when there is more to say.
    pub fn phase(&self, phase: Phase, detail: Option<&str>) {
        match detail {
            Some(d) => self.log.line(&format!("{}: {d}", phase.word())),
            None => self.log.line(phase.word()),
        }
        self.shared.lock().unwrap().progress.set_phase(phase);
    }

    /// How far the sender has read a source it reads whole (block volumes): `read` of `total`.
    pub fn read_progress(&self, read: u64, total: u64) {
        let mut s = self.shared.lock().unwrap();
        s.read = Some((read, total));
    }

    /// Follows an object pair's pass: the transfer begins when its changes are journaled, its
    /// bytes are counted on the job's meter (the pass's `bytes` must be `self.meter`).
    pub fn follow_objects(&self, feed: crate::object::sync::PassProgress) {
        self.shared.lock().unwrap().objects = Some(feed);
    }

    /// Marks the start of the byte stream; `expected` is the driver's estimate, if any.
    pub fn begin_transfer(&self, expected: Option<u64>) {
        let mut s = self.shared.lock().unwrap();
        s.progress.set_phase(Phase::Transfer);
        s.progress.expected = expected;
        s.transfer_start = Some(Instant::now());
        s.base = self.meter.get();
        s.tracker = RateTracker::new();
        s.read = None;
        s.read_tracker = RateTracker::new();
    }

    /// Records the outcome, writes the final progress and last result, and releases the lock.
    /// The lock goes on failure too: a failure ferry saw and handled leaves the destination at its
    /// checkpoint. Only a job that dies without getting here leaves its lock for `unlock`.
    fn finish<T>(mut self, result: &Result<T>) {
        self.reporter.abort();
        let seconds = self.started.elapsed().as_secs_f64();
        // bounded: the chain may carry a remote's words (its own parts are clipped too)
        let error = result
            .as_ref()
            .err()
            .map(|e| crate::text::clip(&format!("{e:#}"), 8 << 10).into_owned());
        let bytes = {
            let mut s = self.shared.lock().unwrap();
            refresh(&mut s, self.meter.get());
            s.progress.finished = true;
            s.progress
                .set_phase(if error.is_some() { Phase::Failed } else { Phase::Done });
            s.progress.error = error.clone();
            s.progress.eta_secs = None;
            let _ = s.progress.write(&self.path);
            // every transfer of the job (a tree's members each have one), not only the last
            self.meter.get().max(s.progress.bytes)
        };
        let last = LastResult {
            action: self.action.label().to_string(),
            ok: error.is_none(),
            finished: now_unix(),
            seconds,
            bytes,
            error: error.clone(),
        };
        let _ = last.write(&self.last_path);
        if last.ok && self.action.moves_checkpoint() {
            let _ = last.write(&self.success_path);
        }
        let label = self.action.label();
        match &error {
            None if bytes > 0 || self.action.moves_checkpoint() => {
                self.log.line(&format!("{label} done: {bytes} bytes in {seconds:.1}s"))
            }
            None => self.log.line(&format!("{label} done in {seconds:.1}s")),
            Some(e) => self.log.line(&format!("{label} FAILED: {e}")),
        }
        if let Some(l) = self.lease.take() {
            if let Err(e) = crate::coord::blocking(|| l.release()) {
                self.log.line(&format!(
                    "coordination: the pair's lock in etcd could not be released ({e}): other instances see it Locked until `ferry unlock`"
                ));
            }
        }
        if let Some(l) = self.lock.take() {
            l.release();
        }
    }
}

/// Takes the pair's lock in the coordination engine too, as `host`'s job: refused when a job on
/// any instance holds it, when a dead one left it, or when the engine cannot be asked (another
/// instance might be running the pair).
fn coordinated(
    engine: &super::Engine,
    coord: &crate::config::CoordConfig,
    pair: &Pair,
    local: &lock::LockInfo,
) -> Result<crate::coord::pair_lock::PairLease> {
    use crate::coord::pair_lock::{self, PairLockError};
    let info = lock::LockInfo {
        host: Some(crate::coord::this_host()),
        ..local.clone()
    };
    pair_lock::acquire(coord, &pair.fingerprint(), &info).map_err(|e| match e {
        PairLockError::Running(i) => anyhow!("{}", lock::LockError::Running(i)),
        PairLockError::Stale(i) => anyhow!(
            "{} (lease expired in etcd): check it, then run `{}`",
            lock::LockError::Stale(i),
            engine.command("unlock", Some(pair))
        ),
        PairLockError::Orphan(o) => anyhow!(
            "locked in etcd, but by no running job: {o} (ferry puts its run key on the job's lease, so this one was written by hand or by another program): check it, then run `{}`",
            engine.command("unlock", Some(pair))
        ),
        PairLockError::Etcd(e) => anyhow!(
            "coordination: {e}; not running {} -> {} (an instance elsewhere may be running it)",
            pair.source,
            pair.destination
        ),
    })
}

/// Resolves when the process is asked to stop (SIGINT from a terminal's ctrl-c, SIGTERM from a
/// service manager); never resolves if the handlers cannot be installed.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        _ => std::future::pending().await,
    }
}

/// A job stopped by a signal: the work future was dropped, which kills the local receive (a
/// receive that does not finish leaves the destination at its checkpoint, as a cut stream does)
/// and closes the remote channels. The checkpoint only moves after a receive succeeded, so the
/// pair is consistent and the lock can go, unlike after SIGKILL, where nothing gets to check.
async fn stopped(sig: &str) -> anyhow::Error {
    // let the killed receiver exit before the lock is released
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    anyhow::anyhow!("interrupted by {sig}; the destination stays at its last checkpoint")
}

fn refresh(s: &mut Shared, meter: u64) {
    s.progress.updated_ms = chrono::Utc::now().timestamp_millis();
    let applying = s
        .objects
        .as_ref()
        .is_some_and(|f| f.applying.load(std::sync::atomic::Ordering::Relaxed));
    if applying && s.transfer_start.is_none() {
        // the listings took their time; rates count from the first copy
        s.progress.set_phase(Phase::Transfer);
        s.transfer_start = Some(Instant::now());
        s.base = meter;
    }
    if let (Some(f), Some(_)) = (&s.objects, s.transfer_start) {
        let (done, total) = f.objects();
        let expected = f.expected.load(std::sync::atomic::Ordering::Relaxed);
        s.progress.objects = Some(done);
        s.progress.objects_total = Some(total);
        s.progress.expected = Some(expected);
    }
    let Some(start) = s.transfer_start else { return };
    let t = start.elapsed().as_secs_f64();
    let bytes = meter.saturating_sub(s.base);
    s.tracker.sample(t, bytes);
    let p = &mut s.progress;
    p.bytes = bytes;
    p.elapsed_secs = t;
    p.rate = s.tracker.current();
    p.avg_rate = s.tracker.average();
    // an estimate that the stream outgrew is no estimate: show no size rather than a wrong one
    if p.expected.is_some_and(|e| bytes > e) {
        p.expected = None;
    }
    p.eta_secs = s.tracker.eta(p.expected);
    p.history = s.tracker.history();
    if let Some(done) = p.objects {
        s.objects_tracker.sample(t, done);
        s.progress.objects_rate = Some(s.objects_tracker.current());
    }
    if let Some((read, total)) = s.read {
        // the read decides how long is left: the stream only carries what changed
        s.read_tracker.sample(t, read);
        let p = &mut s.progress;
        p.read = Some(read);
        p.read_total = Some(total);
        p.eta_secs = s.read_tracker.eta(Some(total));
    }
}
