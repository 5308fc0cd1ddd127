//! The pair lock under contention, as separate processes (ferry jobs and `unlock` are processes):
//! takers acquire and then release or abandon the lock (a job that finished, a job that died),
//! unlockers remove abandoned locks, all at once for a few seconds. Two holders at the same time
//! must never happen, and nothing may be left behind.
//!
//! The test binary runs itself as the workers: with FERRY_LOCK_RACE_ROLE set, the test body is a
//! worker loop instead of the coordinator.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry::state::lock;

const ROLE: &str = "FERRY_LOCK_RACE_ROLE";
const TEST: &str = "lock_race::concurrent_unlock_and_acquire_never_make_two_holders";

/// One line per event, appended with one write(2) each (O_APPEND: lines never interleave, and the
/// file's order is the order the writes happened).
fn journal(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(line.as_bytes()).unwrap();
}

/// A small pseudo-random number (xorshift), so each worker varies its timing.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn worker(role: &str, lock_path: &Path, log: &Path, secs: u64) {
    let me = std::process::id();
    let mut seed = (me as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        match role {
            "taker" => {
                if let Ok(l) = lock::acquire(lock_path, "update") {
                    journal(log, &format!("+{me}\n"));
                    // hold it a moment: the window in which a second holder would show
                    std::thread::sleep(Duration::from_micros(next(&mut seed) % 300));
                    journal(log, &format!("-{me}\n"));
                    if next(&mut seed).is_multiple_of(2) {
                        l.release();
                    } else {
                        drop(l); // as a job that died: the file stays, stale, for an unlocker
                    }
                }
            }
            _ => {
                let _ = lock::unlock(lock_path);
            }
        }
    }
}

#[test]
fn concurrent_unlock_and_acquire_never_make_two_holders() {
    if let Ok(role) = std::env::var(ROLE) {
        let lock_path = std::env::var("FERRY_LOCK_RACE_LOCK").unwrap();
        let log = std::env::var("FERRY_LOCK_RACE_LOG").unwrap();
        worker(&role, Path::new(&lock_path), Path::new(&log), 4);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pair = dir.path().join("pair");
    std::fs::create_dir(&pair).unwrap();
    let lock_path = pair.join("lock");
    let log = dir.path().join("journal");
    std::fs::write(&log, "").unwrap();
    let exe = std::env::current_exe().unwrap();
    let roles = ["taker", "taker", "taker", "unlocker", "unlocker", "unlocker"];
    let children: Vec<_> = roles
        .iter()
        .map(|role| {
            Command::new(&exe)
                .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
                .env(ROLE, role)
                .env("FERRY_LOCK_RACE_LOCK", &lock_path)
                .env("FERRY_LOCK_RACE_LOG", &log)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a worker failed");
    }
    // replay the journal: never more than one holder
    let text = std::fs::read_to_string(&log).unwrap();
    let (mut holders, mut max, mut acquired) = (0i32, 0i32, 0);
    let mut overlaps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('+') {
            holders += 1;
            acquired += 1;
            if holders > 1 {
                overlaps.push(n + 1);
            }
        } else {
            holders -= 1;
        }
        max = max.max(holders);
    }
    assert!(
        acquired > 100,
        "only {acquired} acquisitions: the race was not exercised"
    );
    assert!(
        overlaps.is_empty(),
        "{} times two jobs held the lock at once (journal lines {:?}), in {acquired} acquisitions",
        overlaps.len(),
        &overlaps[..overlaps.len().min(10)]
    );
    assert_eq!(max, 1);
    // a last stale lock may remain (a taker's last drop); unlock clears it, then nothing is left
    let _ = lock::unlock(&lock_path);
    let left: Vec<_> = std::fs::read_dir(&pair)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    eprintln!("{acquired} acquisitions, never two holders");
}
