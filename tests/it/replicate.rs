//! End-to-end replication against real zfs-fuse pools and a real loopback sshd, driving the
//! `ferry` binary as an operator or cron would.

use crate::common;

use std::time::{Duration, Instant};

use common::lab::Lab;
use common::zfs::{is_read_only, run, snapshots, tree_checksum, write_random_file, zfs_get};

fn ferry_snaps(ds: &str) -> Vec<String> {
    snapshots(ds).into_iter().filter(|s| s.contains("@ferry.")).collect()
}

#[test]
fn initialize_update_intermediates_and_noop() {
    let Some(lab) = Lab::new("iu", 256, 256, "keep = 3") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 3 << 20, 1);
    std::fs::create_dir_all(src.join("dir/sub")).unwrap();
    write_random_file(&src.join("dir/sub/b.bin"), 1 << 20, 2);

    let setup = lab.ok(&["setup", "data"]);
    assert!(setup.stdout.contains("[ ok ] destination parent"), "{}", setup.stdout);
    assert!(!setup.stdout.contains("FAIL"), "{}", setup.stdout);
    assert_eq!(lab.status()["state"], "Uninitialized");

    let init = lab.ok(&["initialize", "data"]);
    assert_eq!(init.stdout, "", "initialize is silent on success");
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    assert!(
        is_read_only(&lab.dst_ds),
        "destination must be read-only after initialize"
    );
    assert_eq!(zfs_get(&lab.dst_ds, "ferry:fingerprint"), lab.fingerprint());
    assert_eq!(zfs_get(&lab.dst_ds, "ferry:source"), format!("store1:{}", lab.src_ds));
    let first = zfs_get(&lab.dst_ds, "ferry:lastsnap");
    assert!(first.starts_with(&format!("ferry.{}.", lab.fingerprint())), "{first}");
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized");
    assert_eq!(st["checkpoint"], first.as_str());
    assert!(lab
        .ferry(&["initialize", "data"])
        .stderr
        .contains("already initialized"));

    // change, delete, add; a snapshot taken by hand in between must arrive too
    write_random_file(&src.join("a.bin"), 3 << 20, 3);
    std::fs::remove_file(src.join("dir/sub/b.bin")).unwrap();
    run(&format!("zfs snapshot {}@manual1", lab.src_ds));
    write_random_file(&src.join("c.bin"), 2 << 20, 4);
    assert_ne!(tree_checksum(&src), lab.dst_sum());
    let up = lab.ok(&["-v", "update", "data"]);
    assert!(up.stdout.contains("update "), "-v reports: {}", up.stdout);
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    assert!(
        snapshots(&lab.dst_ds).iter().any(|s| s.ends_with("@manual1")),
        "{:?}",
        snapshots(&lab.dst_ds)
    );
    let second = zfs_get(&lab.dst_ds, "ferry:lastsnap");
    assert_ne!(first, second);

    // nothing changed: still succeeds, moves the checkpoint, data equal
    for _ in 0..3 {
        lab.ok(&["update", "data"]);
    }
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized");
    assert_eq!(st["checkpoint"], zfs_get(&lab.dst_ds, "ferry:lastsnap").as_str());
    // retention: keep = 3 ferry snapshots on the source, the checkpoint among them
    let kept = ferry_snaps(&lab.src_ds);
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.last().unwrap().ends_with(st["checkpoint"].as_str().unwrap()));
    assert!(
        snapshots(&lab.src_ds).iter().any(|s| s.ends_with("@manual1")),
        "retention must not touch other snapshots"
    );

    // the log holds the commands run, timestamped
    let log = std::fs::read_to_string(lab.ok(&["logfile", "data"]).stdout.trim()).unwrap();
    assert!(log.contains("zfs receive") && log.contains("zfs send -I"), "{log}");
}

#[test]
fn update_refuses_an_uninitialized_pair() {
    let Some(lab) = Lab::new("un", 128, 128, "") else {
        return;
    };
    let r = lab.ferry(&["update", "data"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with(&format!(
            "ferry: error: update data: pair is Uninitialized: run `ferry -c {} initialize {}`",
            lab.config.display(),
            lab.dst_ds
        )),
        "{}",
        r.stderr
    );
    let r = lab.ferry(&["update", "nosuchpair"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no pair has destination"), "{}", r.stderr);
}

/// Waits until the running job has moved at least `bytes`.
fn wait_for_bytes(lab: &Lab, bytes: u64, limit: Duration) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(p) = lab.progress() {
            if p["phase"] == "transfer" && p["bytes"].as_u64().unwrap_or(0) >= bytes {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "the job did not reach {bytes} bytes within {limit:?}; progress: {:?}",
        lab.progress()
    );
}

#[test]
fn sigkill_mid_update_leaves_locked_pair_at_old_checkpoint() {
    // the limit makes the 200 MB update last ~5 s, so the kill lands mid-stream
    let Some(lab) = Lab::new("kill", 512, 512, "bwlimit = \"40M\"") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("small.bin"), 1 << 20, 7);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let old_sum = lab.dst_sum();
    let old_cp = zfs_get(&lab.dst_ds, "ferry:lastsnap");
    write_random_file(&src.join("big.bin"), 200 << 20, 8);

    let mut job = lab.spawn(&["update", "data"]);
    wait_for_bytes(&lab, 30 << 20, Duration::from_secs(60));

    // while it runs: a second update is refused at once, unlock is refused, status says Running
    let t = Instant::now();
    let second = lab.ferry(&["update", "data"]);
    assert_eq!(second.code, 1);
    assert!(second.stderr.contains("already running"), "{}", second.stderr);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the second update must exit at once"
    );
    assert!(lab.ferry(&["unlock", "data"]).stderr.contains("already running"));
    assert_eq!(lab.status()["status"], "Running");

    unsafe {
        libc::kill(job.id() as i32, libc::SIGKILL);
    }
    job.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let st = lab.status();
    assert_eq!(st["status"], "Locked", "{st}");
    assert!(st["flags"].as_str().unwrap().starts_with('L'));
    assert_eq!(st["state"], "Synchronized", "destination still at its checkpoint: {st}");
    assert_eq!(st["checkpoint"], old_cp.as_str());
    assert_eq!(zfs_get(&lab.dst_ds, "ferry:lastsnap"), old_cp);
    assert_eq!(lab.dst_sum(), old_sum, "destination readable at the old checkpoint");

    let refused = lab.ferry(&["update", "data"]);
    assert_eq!(refused.code, 1);
    // the command to paste names this config and this pair
    let unlock = format!("`ferry -c {} unlock {}`", lab.config.display(), lab.dst_ds);
    assert!(refused.stderr.contains(&unlock), "{}", refused.stderr);
    let un = lab.ok(&["unlock", "data"]);
    assert!(un.stdout.contains("unlocked"), "{}", un.stdout);
    // unlimited now: rewrite the config without the limit
    lab.write_config("", &lab.sshd.known_hosts.clone(), false);
    lab.ok(&["update", "data"]);
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    assert_eq!(lab.status()["status"], "Idle");
}

#[test]
fn runstatus_figures_match_the_transfer() {
    let Some(lab) = Lab::new("rs", 512, 512, "bwlimit = \"20M\"") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("small.bin"), 1 << 20, 9);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let nothing = lab.ok(&["runstatus", "data"]);
    assert!(
        nothing.stdout.starts_with("no job is running for"),
        "{}",
        nothing.stdout
    );
    write_random_file(&src.join("big.bin"), 100 << 20, 10);

    let job = lab.spawn(&["update", "data"]);
    wait_for_bytes(&lab, 1, Duration::from_secs(60));
    let rs = lab.ok(&["--json", "runstatus", "data"]);
    let out = job.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let lines: Vec<serde_json::Value> = rs.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(lines.len() >= 3, "one line a second while the job runs: {}", rs.stdout);
    let limit = 20.0 * 1048576.0;
    // The figures are checked against what really moved, not against the limit: a loaded machine
    // may move less than the limit allows, and the report must then say so. The limit holds.
    let running: Vec<&serde_json::Value> = lines.iter().filter(|p| p["finished"] != true).collect();
    for p in running.iter().skip(2) {
        let rate = p["rate"].as_f64().unwrap();
        assert!(rate < limit * 1.15, "rate {rate} over the limit {limit}: {p}");
    }
    // the current rate is what moved between two reports a few seconds apart (within 25%)
    if running.len() >= 5 {
        let (a, b) = (running[2], running[running.len() - 1]);
        let moved = b["bytes"].as_f64().unwrap() - a["bytes"].as_f64().unwrap();
        let secs = b["elapsed_secs"].as_f64().unwrap() - a["elapsed_secs"].as_f64().unwrap();
        let measured = moved / secs;
        let reported = b["rate"].as_f64().unwrap();
        assert!(
            (reported - measured).abs() / measured < 0.25,
            "reported rate {reported} vs measured {measured} over {secs:.1}s"
        );
    }
    let last = lines.last().unwrap();
    assert_eq!(last["finished"], true, "the last line is the finished job: {last}");
    // the bytes reported are the bytes of the stream: at least the data written
    let bytes = last["bytes"].as_u64().unwrap();
    assert!((100 << 20..110 << 20).contains(&bytes), "bytes {bytes}");
    // the average is the bytes over the transfer's time, and within the limit
    let avg = last["avg_rate"].as_f64().unwrap();
    let elapsed = last["elapsed_secs"].as_f64().unwrap();
    assert!(
        (avg - bytes as f64 / elapsed).abs() / avg < 0.05,
        "average {avg} vs {bytes} B in {elapsed}s"
    );
    assert!(avg < limit * 1.10, "average {avg} over the limit {limit}");
    assert!(rs.stdout.lines().last().unwrap().contains("finished"), "{}", rs.stdout);
}

#[test]
fn destination_too_small_fails_clearly_and_keeps_the_checkpoint() {
    let Some(lab) = Lab::new("full", 512, 80, "") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("small.bin"), 1 << 20, 11);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let old_cp = zfs_get(&lab.dst_ds, "ferry:lastsnap");
    let old_sum = lab.dst_sum();
    write_random_file(&src.join("big.bin"), 150 << 20, 12);
    let r = lab.ferry(&["update", "data"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("ferry: error: update data: "), "{}", r.stderr);
    assert!(
        r.stderr.to_lowercase().contains("space"),
        "the message must say the destination is out of space: {}",
        r.stderr
    );
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized");
    assert_eq!(st["status"], "Idle", "a failure ferry handled leaves no lock");
    assert_eq!(st["checkpoint"], old_cp.as_str());
    assert_eq!(lab.dst_sum(), old_sum);
    // the source still holds the checkpoint; ferry tries to take the failed snapshot back, but
    // zfs-fuse can keep a snapshot of an aborted remote send busy for seconds, so one may remain
    // (it becomes an intermediate of the next update)
    let snaps = ferry_snaps(&lab.src_ds);
    assert!(snaps.iter().any(|s| s.ends_with(&old_cp)), "{snaps:?}");
    assert!(snaps.len() <= 2, "{snaps:?}");
    // the failure repeats cleanly: no lock, same message
    let again = lab.ferry(&["update", "data"]);
    assert!(again.stderr.to_lowercase().contains("space"), "{}", again.stderr);
    assert_eq!(lab.status()["checkpoint"], old_cp.as_str());
}

#[test]
fn host_keys_unknown_and_changed_are_refused() {
    let Some(lab) = Lab::new("hk", 128, 128, "") else {
        return;
    };
    let kh = lab.dir.path().join("kh");

    // unknown: no entry for the host
    std::fs::write(&kh, "# nothing here\n").unwrap();
    lab.write_config("", &kh, false);
    let r = lab.ferry(&["setup", "data"]);
    assert_ne!(r.code, 0);
    assert!(r.stdout.contains("[FAIL] source host store1"), "{}", r.stdout);
    assert!(r.stdout.to_lowercase().contains("unknown"), "{}", r.stdout);
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        "# nothing here\n",
        "nothing recorded without trust_on_first_use"
    );

    // changed: the entry on line 3 holds another key
    lab.sshd.write_wrong_known_hosts(&kh, 2);
    let r = lab.ferry(&["status"]);
    assert_ne!(r.code, 0);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(&format!("{}:3", kh.display())) || all.contains("line 3"),
        "must name the old entry's line: {all}"
    );

    // changed stays refused even with trust_on_first_use
    lab.write_config("", &kh, true);
    assert!(lab
        .ferry(&["setup", "data"])
        .stdout
        .contains("[FAIL] source host store1"));

    // trust on first use records an unknown key, then works
    std::fs::write(&kh, "").unwrap();
    let r = lab.ok(&["setup", "data"]);
    assert!(r.stdout.contains("[ ok ] source host store1"), "{}", r.stdout);
    assert!(std::fs::read_to_string(&kh).unwrap().contains(&lab.sshd.host_key));
    // the ssh layer returns the verdict; the CLI tells the operator, once
    assert_eq!(
        r.stderr.matches("ferry: warning: host store1").count(),
        1,
        "trust on first use is reported once: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("trusting unknown host key ssh-ed25519"),
        "{}",
        r.stderr
    );
}

/// Initialize, change, update, compare: for a pair whose ends are given as the config writes them.
fn round_trip(lab: &Lab, source: &str, destination: &str) {
    lab.write_config_for(source, destination, "", &lab.sshd.known_hosts.clone(), false);
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 2 << 20, 31);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    write_random_file(&src.join("b.bin"), 8 << 20, 32);
    lab.ok(&["update", "data"]);
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized", "{st}");
    assert_eq!(
        st["destination"],
        destination
            .contains(':')
            .then(|| destination.to_string())
            .unwrap_or(format!("local:{destination}"))
    );
}

#[test]
fn push_local_source_to_a_remote_destination() {
    let Some(lab) = Lab::new("push", 256, 256, "") else {
        return;
    };
    round_trip(&lab, &lab.src_ds.clone(), &format!("store1:{}", lab.dst_ds));
}

#[test]
fn relay_between_two_remote_hosts() {
    let Some(lab) = Lab::new("relay", 256, 256, "") else {
        return;
    };
    round_trip(
        &lab,
        &format!("store1:{}", lab.src_ds),
        &format!("store2:{}", lab.dst_ds),
    );
}

#[test]
fn sigint_or_sigterm_mid_update_stops_cleanly_without_a_lock() {
    let Some(lab) = Lab::new("int", 512, 512, "bwlimit = \"20M\"") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("small.bin"), 1 << 20, 41);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let old_cp = zfs_get(&lab.dst_ds, "ferry:lastsnap");
    let old_sum = lab.dst_sum();
    write_random_file(&src.join("big.bin"), 100 << 20, 42);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let job = lab.spawn(&["update", "data"]);
        wait_for_bytes(&lab, 10 << 20, Duration::from_secs(60));
        unsafe {
            libc::kill(job.id() as i32, sig);
        }
        let out = job.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let name = if sig == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
        assert!(stderr.contains(&format!("interrupted by {name}")), "{stderr}");
        let st = lab.status();
        assert_eq!(st["status"], "Idle", "a stop ferry handled leaves no lock: {st}");
        assert_eq!(st["checkpoint"], old_cp.as_str());
        assert_eq!(lab.dst_sum(), old_sum, "the destination stays at its checkpoint");
    }
    lab.write_config("", &lab.sshd.known_hosts.clone(), false);
    lab.ok(&["update", "data"]);
    assert_eq!(tree_checksum(&src), lab.dst_sum());
}
