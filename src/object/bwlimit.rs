//! A byte-rate limiter for copy streams, shared by every copy of a pass (the pair's bwlimit).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Token bucket: `rate` bytes per second with at most a tenth of a second of burst.
#[derive(Debug)]
pub struct RateLimit {
    rate: u64,
    state: Mutex<(Instant, f64)>,
}

impl RateLimit {
    /// `bytes_per_sec` of 0 means no limit.
    pub fn new(bytes_per_sec: u64) -> RateLimit {
        RateLimit {
            rate: bytes_per_sec,
            state: Mutex::new((Instant::now(), 0.0)),
        }
    }

    /// Waits until `n` more bytes may pass.
    pub async fn take(&self, n: usize) {
        if self.rate == 0 {
            return;
        }
        let wait = {
            let mut s = match self.state.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = Instant::now();
            let burst = self.rate as f64 / 10.0;
            let refill = now.duration_since(s.0).as_secs_f64() * self.rate as f64;
            // Tokens may go negative: the debt is the wait of this and later callers.
            s.1 = (s.1 + refill).min(burst) - n as f64;
            s.0 = now;
            if s.1 < 0.0 {
                Duration::from_secs_f64(-s.1 / self.rate as f64)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_the_rate() {
        let limit = RateLimit::new(400_000);
        let start = Instant::now();
        for _ in 0..50 {
            limit.take(10_000).await; // 500 kB at 400 kB/s: >= 1.25 s minus the 40 kB burst
        }
        let took = start.elapsed().as_secs_f64();
        assert!((1.1..2.5).contains(&took), "took {took}");
        let free = RateLimit::new(0);
        let start = Instant::now();
        free.take(1 << 30).await;
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
