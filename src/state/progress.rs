//! A job's live figures, rewritten atomically several times a second as `progress.json`, so any
//! process (runstatus, the console) reads the same numbers the job has.

use std::collections::VecDeque;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::Phase;

/// Seconds of per-second rate history kept in the file (for the console's sparkline).
pub const HISTORY_SECS: usize = 180;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    pub pid: u32,
    pub action: String,
    pub fingerprint: String,
    pub source: String,
    pub destination: String,
    /// What the job is doing: a `Phase`'s word ("connecting", "transfer", "done", ...).
    pub phase: String,
    /// Unix seconds the job started.
    pub started: i64,
    /// Unix milliseconds of this write.
    pub updated_ms: i64,
    /// Bytes moved so far by the transfer.
    pub bytes: u64,
    /// Expected stream size where the driver can estimate it.
    pub expected: Option<u64>,
    /// Bytes per second over the last few seconds.
    pub rate: f64,
    /// Bytes per second since the transfer started.
    pub avg_rate: f64,
    /// Seconds left, from the recent rate, when the size is known.
    pub eta_secs: Option<u64>,
    /// Seconds the transfer has run.
    pub elapsed_secs: f64,
    /// Bytes per second of each of the last seconds, oldest first.
    pub history: Vec<f64>,
    pub finished: bool,
    pub error: Option<String>,
    /// Bytes of the source read so far, where the job reads the whole source to find what to
    /// send (block volumes): then the read, not the stream, is what the fraction and ETA follow.
    #[serde(default)]
    pub read: Option<u64>,
    /// The source's size, of which `read` is read.
    #[serde(default)]
    pub read_total: Option<u64>,
    /// Object pairs: changes applied so far (copies and deletes) of `objects_total` found.
    #[serde(default)]
    pub objects: Option<u64>,
    #[serde(default)]
    pub objects_total: Option<u64>,
    /// Object pairs: changes applied per second over the last few seconds.
    #[serde(default)]
    pub objects_rate: Option<f64>,
}

impl Progress {
    /// The phase, when it is one this version knows.
    pub fn current_phase(&self) -> Option<Phase> {
        Phase::from_word(&self.phase)
    }

    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase.word().to_string();
    }

    /// An object pair's count: "objects 12 of 40, 35.2/s"; `None` for other kinds.
    pub fn objects_line(&self) -> Option<String> {
        let done = self.objects?;
        let mut s = format!("objects {done}");
        if let Some(total) = self.objects_total {
            s.push_str(&format!(" of {total}"));
        }
        if let Some(r) = self.objects_rate {
            s.push_str(&format!(", {r:.1}/s"));
        }
        Some(s)
    }

    /// Still before the byte stream: nothing moved, not finished, not transferring.
    pub fn before_transfer(&self) -> bool {
        self.current_phase() != Some(Phase::Transfer) && self.bytes == 0 && !self.finished
    }

    /// The job's figures; None when there is no file, or it is not one ferry could have written
    /// (a FIFO or symlink planted there is refused without blocking).
    pub fn read(path: &Path) -> Option<Progress> {
        let bytes = super::files::read_small(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Replaces the file atomically. Not synced: readers are live processes that see the page
    /// cache, and after a crash the figures of a dead job matter to nobody.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        super::write_atomic(path, &serde_json::to_vec(self).expect("progress serializes"), false)
    }

    /// Fraction done in 0..=1 when the size is known.
    pub fn fraction(&self) -> Option<f64> {
        if let (Some(r), Some(t)) = (self.read, self.read_total) {
            return Some(if t == 0 { 1.0 } else { (r as f64 / t as f64).min(1.0) });
        }
        self.expected
            .filter(|e| *e > 0)
            .map(|e| (self.bytes as f64 / e as f64).min(1.0))
    }
}

/// Turns (time, bytes) samples into the rates `Progress` reports. Pure, so it is tested exactly.
#[derive(Debug, Clone, Default)]
pub struct RateTracker {
    /// (seconds since transfer start, total bytes), oldest first, pruned by age.
    samples: VecDeque<(f64, u64)>,
    /// Completed per-second rates.
    history: VecDeque<f64>,
    last_whole_second: (u64, u64),
    /// When the stream began to flow: the last sample before it passed `FLOWING` bytes. The ETA's
    /// rate counts from here, since the time a command takes to start (an ssh exec, a snapshot, a
    /// sender that writes its header and then reads the disk) says nothing about the link.
    flow_start: Option<f64>,
}

/// Window of the "current" rate and of the rate the ETA uses.
const CURRENT_WINDOW: f64 = 3.0;
const ETA_WINDOW: f64 = 15.0;
/// The ETA waits for this much flowing stream: a first sample of a few header bytes would give
/// an ETA of hours for a stream of seconds.
const MIN_ETA_SPAN: f64 = 0.5;
/// Bytes past a stream's headers: what a sender writes before its data (a zfs stream's begin
/// record is a few hundred bytes) is not yet the flow.
const FLOWING: u64 = 64 * 1024;

impl RateTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `bytes` had moved `t` seconds after the transfer started.
    pub fn sample(&mut self, t: f64, bytes: u64) {
        if self.samples.is_empty() {
            self.samples.push_back((0.0, 0));
        }
        if self.flow_start.is_none() && bytes > FLOWING {
            self.flow_start = self.samples.back().map(|s| s.0);
        }
        self.samples.push_back((t, bytes));
        while self.samples.len() > 2 && t - self.samples[1].0 > ETA_WINDOW {
            self.samples.pop_front();
        }
        // one history point per whole second passed
        let sec = t.floor() as u64;
        while self.last_whole_second.0 < sec {
            let (s0, b0) = self.last_whole_second;
            let next = s0 + 1;
            // bytes at the second boundary, by linear share of this sample step
            let at_next = if next == sec { self.bytes_at(next as f64) } else { bytes };
            self.history.push_back(at_next.saturating_sub(b0) as f64);
            if self.history.len() > HISTORY_SECS {
                self.history.pop_front();
            }
            self.last_whole_second = (next, at_next);
        }
    }

    fn bytes_at(&self, t: f64) -> u64 {
        let mut prev = (0.0, 0u64);
        for &(st, sb) in &self.samples {
            if st >= t {
                if st <= prev.0 {
                    return sb;
                }
                let share = (t - prev.0) / (st - prev.0);
                return prev.1 + ((sb - prev.1) as f64 * share) as u64;
            }
            prev = (st, sb);
        }
        prev.1
    }

    fn rate_over(&self, window: f64) -> f64 {
        let Some(&(t, b)) = self.samples.back() else { return 0.0 };
        let from = self
            .samples
            .iter()
            .find(|(st, _)| t - st <= window)
            .copied()
            .unwrap_or((t, b));
        // a window shorter than a quarter second says nothing yet; fall back to the whole run
        if t - from.0 < 0.25 {
            return if t > 0.0 { b as f64 / t } else { 0.0 };
        }
        (b - from.1) as f64 / (t - from.0)
    }

    pub fn current(&self) -> f64 {
        self.rate_over(CURRENT_WINDOW)
    }

    pub fn average(&self) -> f64 {
        match self.samples.back() {
            Some(&(t, b)) if t > 0.0 => b as f64 / t,
            _ => 0.0,
        }
    }

    /// Seconds left at the recent rate; None without a size or a rate.
    /// The rate is the recent one since the stream began to flow, over at least `MIN_ETA_SPAN`.
    pub fn eta(&self, expected: Option<u64>) -> Option<u64> {
        let expected = expected?;
        let &(t, b) = self.samples.back()?;
        let remaining = expected.saturating_sub(b);
        if remaining == 0 {
            return Some(0);
        }
        let start = self.flow_start?;
        let &(from_t, from_b) = self
            .samples
            .iter()
            .find(|(st, _)| *st >= start && t - st <= ETA_WINDOW)?;
        if t - from_t < MIN_ETA_SPAN {
            return None;
        }
        let rate = (b - from_b) as f64 / (t - from_t);
        (rate > 1.0).then(|| (remaining as f64 / rate).ceil() as u64)
    }

    pub fn history(&self) -> Vec<f64> {
        self.history.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_gives_exact_figures() {
        let mut r = RateTracker::new();
        // 10 MB/s for 10 s, sampled every 0.25 s
        for i in 1..=40 {
            let t = i as f64 * 0.25;
            r.sample(t, (t * 10_000_000.0) as u64);
        }
        assert!((r.current() - 10_000_000.0).abs() < 1.0);
        assert!((r.average() - 10_000_000.0).abs() < 1.0);
        // 200 MB expected, 100 MB done: 10 s left
        assert_eq!(r.eta(Some(200_000_000)), Some(10));
        assert_eq!(r.eta(None), None);
        let h = r.history();
        assert_eq!(h.len(), 10);
        assert!(h.iter().all(|v| (*v - 10_000_000.0).abs() < 2.0), "{h:?}");
    }

    #[test]
    fn current_rate_follows_a_change_and_average_does_not() {
        let mut r = RateTracker::new();
        let mut bytes = 0u64;
        for i in 1..=40 {
            bytes += if i <= 20 { 1_000_000 } else { 4_000_000 }; // 4 MB/s then 16 MB/s
            r.sample(i as f64 * 0.25, bytes);
        }
        assert!((r.current() - 16_000_000.0).abs() < 1.0, "{}", r.current());
        assert!((r.average() - 10_000_000.0).abs() < 1.0);
    }

    #[test]
    fn the_eta_counts_from_the_first_byte_and_waits_for_some_stream() {
        // the command takes 1.5 s to start, a header arrives and the sender reads a second more,
        // then 4 MB/s for an 8 MB stream
        let mut r = RateTracker::new();
        for i in 1..=6 {
            r.sample(i as f64 * 0.25, 0);
        }
        for i in 0..4 {
            r.sample(1.6 + i as f64 * 0.25, 300);
        }
        assert_eq!(r.eta(Some(8_000_300)), None, "a header is no rate");
        let mut t = 2.35;
        r.sample(t, 300);
        let mut bytes = 300u64;
        while t < 3.6 {
            t += 0.25;
            bytes += 1_000_000;
            r.sample(t, bytes);
        }
        // 5 MB done of 8 MB at 4 MB/s (measured from the flow's start, not the command's)
        let eta = r.eta(Some(8_000_300)).unwrap();
        assert_eq!(eta, 1, "{bytes} bytes at {t} s");
    }

    #[test]
    fn stalled_transfer_has_no_eta() {
        let mut r = RateTracker::new();
        for i in 1..=80 {
            r.sample(i as f64 * 0.25, 1000); // 1000 bytes at once, then nothing for 20 s
        }
        assert_eq!(r.current(), 0.0);
        assert_eq!(r.eta(Some(10_000)), None);
    }

    #[test]
    fn write_never_follows_a_symlink_at_a_temp_name() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let p = dir.path().join("progress.json");
        // the temp name progress writes used to go through (predictable: pid)
        std::os::unix::fs::symlink(&victim, p.with_extension(format!("tmp.{}", std::process::id()))).unwrap();
        let pr = Progress {
            action: "update".into(),
            ..Default::default()
        };
        pr.write(&p).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(Progress::read(&p), Some(pr));
    }

    #[test]
    fn concurrent_writers_never_leave_a_torn_or_missing_file() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("progress.json");
        let first = Progress {
            phase: "connecting".into(),
            ..Default::default()
        };
        first.write(&p).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        // two writers (the job's reporter and its finish), each with its own figures, as in a job
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                let (p, stop) = (p.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut errors = 0;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let pr = Progress {
                            phase: "transfer".into(),
                            bytes: n,
                            pid: w as u32,
                            history: vec![w as f64; 100 + (n % 80) as usize],
                            ..Default::default()
                        };
                        if pr.write(&p).is_err() {
                            errors += 1;
                        }
                    }
                    errors
                })
            })
            .collect();
        let mut bad = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut reads = 0;
        while std::time::Instant::now() < deadline {
            reads += 1;
            match Progress::read(&p) {
                Some(pr) if pr.history.iter().all(|v| *v == pr.pid as f64) => {}
                _ => bad += 1,
            }
        }
        stop.store(true, Ordering::Relaxed);
        let errors: u32 = writers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(
            (bad, errors),
            (0, 0),
            "{bad} of {reads} reads torn or missing, {errors} failed writes"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "temp files left: {left:?}");
    }
}
