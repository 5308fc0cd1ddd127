//! `update --all`: every pair at once within the configured limits, over one SSH connection per
//! host, against real zfs-fuse pools and the loopback sshd.

use crate::common;

use common::lab::Lab;
use common::zfs::{remount, tree_checksum, write_random_file};

const PAIRS: usize = 6;

/// Parses `2026-11-22T00:29:38.123Z` at the start of a log line into seconds.
fn stamp(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?;
    let (date, time) = t.strip_suffix('Z')?.split_once('T')?;
    let day: f64 = date.rsplit('-').next()?.parse().ok()?;
    let mut f = time.split(':');
    let (h, m, s): (f64, f64, f64) = (
        f.next()?.parse().ok()?,
        f.next()?.parse().ok()?,
        f.next()?.parse().ok()?,
    );
    Some(day * 86400.0 + h * 3600.0 + m * 60.0 + s)
}

#[test]
fn update_all_runs_pairs_in_parallel_within_limits_sharing_host_connections() {
    let Some(lab) = Lab::new("flt", 256, 256, "") else {
        return;
    };
    let mut extra = String::new();
    let mut pairs = vec![(lab.src_ds.clone(), lab.dst_ds.clone())];
    for i in 1..PAIRS {
        let s = lab.src.create_dataset(&format!("d{i}"));
        let d = lab.dst.ds(&format!("rep/d{i}"));
        extra.push_str(&format!("[[pair]]\nsource = \"store1:{s}\"\ndestination = \"{d}\"\n"));
        pairs.push((s, d));
    }
    let text = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(
        &lab.config,
        format!("max_jobs = 3\nmax_jobs_per_host = 2\n{text}{extra}"),
    )
    .unwrap();
    lab.ok(&["setup", "data"]);
    for (i, (s, d)) in pairs.iter().enumerate() {
        write_random_file(&common::zfs::mountpoint(s).join("a.bin"), 512 << 10, i as u64);
        lab.ok(&["initialize", d]);
    }
    for (i, (s, _)) in pairs.iter().enumerate() {
        write_random_file(&common::zfs::mountpoint(s).join("b.bin"), 2 << 20, 100 + i as u64);
    }
    let accepted = |log: &str| log.matches("Accepted publickey").count();
    let before = accepted(&lab.sshd.log());
    let r = lab.ok(&["--json", "update", "--all"]);
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), PAIRS);
    assert!(rows.as_array().unwrap().iter().all(|r| r["ok"] == true), "{rows}");
    // one Connection per host for the whole run; under it the ssh layer gives each concurrently
    // open channel a TCP session of its own (see src/ssh/mod.rs: no multiplexing, no backpressure
    // deadlock) and reuses them: so sessions = the most channels open at once, never one per pair
    let log = lab.sshd.log();
    let opened = accepted(&log) - before;
    assert!(
        (1..=2).contains(&opened),
        "{opened} SSH sessions for {PAIRS} pairs at most 2 at a time (store1 carries one send channel per job):\n{}",
        log.lines()
            .filter(|l| l.contains("Accepted"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (s, d) in &pairs {
        remount(d);
        assert_eq!(
            tree_checksum(&common::zfs::mountpoint(s)),
            tree_checksum(&common::zfs::mountpoint(d)),
            "{d}"
        );
    }
    // from the pair logs: how many updates ran at once (every pair touches store1 and local: limit 2)
    let mut spans = Vec::new();
    for (s, d) in &pairs {
        let fp = {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' 'store1:{s}::local:{d}' | md5sum | cut -d' ' -f1"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let log = std::fs::read_to_string(lab.state_dir().join(&fp).join("log")).unwrap();
        let last_start = log
            .lines()
            .rfind(|l| l.contains("] update ") && l.ends_with("started"))
            .and_then(stamp)
            .unwrap();
        let last_end = log
            .lines()
            .rfind(|l| l.contains("] update done"))
            .and_then(stamp)
            .unwrap();
        spans.push((last_start, last_end));
    }
    let most = spans
        .iter()
        .map(|(a, _)| spans.iter().filter(|(s, e)| s <= a && a < e).count())
        .max()
        .unwrap();
    assert!(most <= 2, "max_jobs_per_host = 2 but {most} ran at once: {spans:?}");
    assert_eq!(most, 2, "updates ran one after another: {spans:?}");

    // a failing pair fails the run (exit 1, its error on stderr) and the others still update
    common::zfs::run_retry_busy(&format!("zfs destroy -r {}", pairs[1].1));
    let r = lab.ferry(&["update", "--all"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains(&format!("ferry: error: update {}: pair is Uninitialized", pairs[1].1)),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    // --nagios names the pairs that failed; --json puts each error as JSON on stderr
    let r = lab.ferry(&["--nagios", "update", "--all"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stdout.starts_with("FERRY CRITICAL")
            && r.stdout
                .contains(&format!("1 of {} pairs failed: {}", pairs.len(), pairs[1].1)),
        "{}",
        r.stdout
    );
    let r = lab.ferry(&["--json", "update", "--all"]);
    assert_eq!(r.code, 1);
    let err: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stderr));
    assert_eq!(err["error"]["dest"], pairs[1].1.as_str(), "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("Uninitialized"),
        "{err}"
    );
    let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), pairs.len());
    let r = lab.ferry(&["--json", "update", "no/such/pair"]);
    let err: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stderr));
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no pair has destination"),
        "{err}"
    );
    let r = lab.ferry(&["update"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("give DEST, or --all"), "{}", r.stderr);
}
