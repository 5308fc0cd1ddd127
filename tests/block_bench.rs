//! The driver of scripts/bench-block.sh (ignored in normal runs): scan rates of a cached file
//! per hash algorithm and chunk size, best of a few runs, printed one line each for the script.

use ferry::block::{scan, HashAlgo};
use std::time::Instant;

/// CPU seconds (user + system) this process has used so far, over all its threads.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given and has no other effect.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[test]
#[ignore = "benchmark: run by scripts/bench-block.sh on a release build"]
fn scan_rates() {
    let path = std::env::var("FERRY_BENCH_FILE").expect("FERRY_BENCH_FILE names the file to scan");
    let path = std::path::Path::new(&path);
    let runs: usize = std::env::var("FERRY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let size = std::fs::metadata(path).unwrap().len();
    for algo in [HashAlgo::Blake3, HashAlgo::Xxh3] {
        for chunk in [4096u32, 16384, 65536, 1 << 20] {
            let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
            for _ in 0..runs {
                let cpu = cpu_secs();
                let (m, stats) = scan(path, chunk, algo).unwrap();
                best_cpu = best_cpu.min(cpu_secs() - cpu);
                assert_eq!(stats.bytes_read, size);
                assert_eq!(m.digests.len() as u64, size.div_ceil(u64::from(chunk)));
                best = best.min(stats.elapsed.as_secs_f64());
            }
            println!(
                "scan algo={} chunk={chunk} secs={best:.4} mbps={:.1} cpu={best_cpu:.4} cpu_mbps={:.1}",
                algo.name(),
                size as f64 / best / 1e6,
                size as f64 / best_cpu / 1e6
            );
        }
    }
    // For reference: BLAKE3 of the whole file as one input, on blake3's own rayon threads.
    let data = std::fs::read(path).unwrap();
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..runs {
        let (t, cpu) = (Instant::now(), cpu_secs());
        let mut h = blake3::Hasher::new();
        h.update_rayon(&data);
        std::hint::black_box(h.finalize());
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_secs() - cpu);
    }
    println!(
        "whole algo=blake3-rayon-in-memory secs={best:.4} mbps={:.1} cpu={best_cpu:.4} cpu_mbps={:.1}",
        size as f64 / best / 1e6,
        size as f64 / best_cpu / 1e6
    );
}
