//! Retention on real zfs-fuse pools over the loopback sshd: a held (or busy) snapshot stays
//! without stopping the others, update prunes both sides, what was really destroyed is reported,
//! and status, Nagios and metrics say so while retention is behind. Then a loop of SIGKILLed
//! updates, each recovered by unlock + update, must leave a bounded number of snapshots.

use crate::common;

use std::time::{Duration, Instant};

use common::lab::Lab;
use common::zfs::{run, snapshots, tree_checksum, try_run, write_random_file};

fn ferry_snaps(ds: &str, fp: &str) -> Vec<String> {
    snapshots(ds)
        .into_iter()
        .filter(|s| s.contains(&format!("@ferry.{fp}.")))
        .collect()
}

/// The part after `@`.
fn short(full: &str) -> &str {
    full.split('@').nth(1).unwrap()
}

fn set_keep(lab: &Lab, keep: u32) {
    lab.write_config(&format!("keep = {keep}"), &lab.sshd.known_hosts.clone(), false);
}

fn metric(text: &str, name: &str, side: Option<&str>) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| side.is_none_or(|s| l.contains(&format!("side=\"{s}\""))))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn held_snapshot_stays_the_rest_go_on_both_sides_and_it_shows() {
    let Some(lab) = Lab::new("rth", 160, 160, "keep = 5") else {
        return;
    };
    let fp = lab.fingerprint();
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 256 << 10, 1);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    for i in 0..4 {
        write_random_file(&src.join(format!("u{i}.bin")), 64 << 10, 10 + i);
        lab.ok(&["update", "data"]);
    }
    let five = ferry_snaps(&lab.src_ds, &fp);
    assert_eq!(five.len(), 5, "{five:?}");
    assert_eq!(ferry_snaps(&lab.dst_ds, &fp).len(), 5);
    // a hold on the second oldest: the one a `destroy a && destroy b && ...` chain stops at
    let held = five[1].clone();
    run(&format!("zfs hold ferrytest {held}"));

    set_keep(&lab, 2);
    let r = lab.ok(&["--json", "update", "data"]);
    // the source keeps the held one beside keep = 2; the destination is pruned to keep
    let s = ferry_snaps(&lab.src_ds, &fp);
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(s[0], held);
    let d = ferry_snaps(&lab.dst_ds, &fp);
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(short(&d[1]), short(s.last().unwrap()), "the checkpoint stays");

    let j: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let destroyed: Vec<&str> = j["pruned"]["source"]["destroyed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(destroyed, [short(&five[0]), short(&five[2]), short(&five[3])], "{j}");
    let left = &j["pruned"]["source"]["left"];
    assert_eq!(left[0]["snapshot"], short(&held), "{j}");
    assert!(left[0]["error"].as_str().unwrap().contains("busy"), "{j}");
    assert_eq!(
        j["pruned"]["destination"]["destroyed"].as_array().unwrap().len(),
        4,
        "{j}"
    );
    assert!(
        r.stderr.contains("ferry: warning: update ")
            && r.stderr.contains(&format!("could not destroy store1:{held}: ")),
        "{}",
        r.stderr
    );
    // status, Nagios and metrics say that retention is behind
    let st = lab.status();
    assert_eq!(st["flags"], "R--", "{st}");
    assert_eq!(st["source_over_keep"], 1, "{st}");
    assert_eq!(st["retention_failing"], false, "one run is not yet failing: {st}");
    let r = lab.ferry(&["status", "data"]);
    assert_eq!(r.code, 0, "a warning is not a state problem: {}", r.stdout);
    assert!(
        r.stdout
            .contains("warning: retention: 1 ferry snapshot(s) beyond keep = 2 on the source"),
        "{}",
        r.stdout
    );
    let r = lab.ferry(&["--nagios", "status", "data"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.starts_with("FERRY WARNING - ")
            && r.stdout.contains(": Synchronized, lag ")
            && r.stdout
                .contains("retention: 1 ferry snapshot(s) beyond keep = 2 on the source"),
        "{}",
        r.stdout
    );
    let m = lab.ok(&["metrics"]).stdout;
    assert_eq!(
        metric(&m, "ferry_snapshots_over_keep", Some("source")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "ferry_snapshots_over_keep", Some("destination")),
        Some(0.0),
        "{m}"
    );
    assert_eq!(metric(&m, "ferry_retention_failing", None), Some(0.0), "{m}");

    // a later run cannot destroy it either: retention is failing, since the first run
    write_random_file(&src.join("v.bin"), 64 << 10, 30);
    let r = lab.ok(&["-v", "update", "data"]);
    assert!(
        r.stdout.contains(
            "1 old snapshot(s) destroyed on the source, 1 on the destination; 1 old snapshot(s) could not be destroyed"
        ),
        "{}",
        r.stdout
    );
    let st = lab.status();
    assert_eq!(st["retention_failing"], true, "{st}");
    assert_eq!(st["retention"]["runs"], 2, "{st}");
    let warnings = st["warnings"].to_string();
    assert!(
        warnings.contains("retention failing since") && warnings.contains(short(&held)),
        "{st}"
    );
    let m = lab.ok(&["metrics"]).stdout;
    assert_eq!(metric(&m, "ferry_retention_failing", None), Some(1.0), "{m}");
    assert_eq!(ferry_snaps(&lab.src_ds, &fp).len(), 3);

    // purge reports the held one as left, not as destroyed, and fails
    let r = lab.ferry(&["purge", "data", "--yes"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("could not destroy store1:{held}: ")) && !r.stdout.contains("destroyed store1"),
        "{}",
        r.stdout
    );

    // released, the next run destroys it and retention is clean again
    run(&format!("zfs release ferrytest {held}"));
    lab.ok(&["update", "data"]);
    let s = ferry_snaps(&lab.src_ds, &fp);
    assert_eq!(s.len(), 2, "{s:?}");
    assert!(!s.contains(&held));
    assert_eq!(ferry_snaps(&lab.dst_ds, &fp).len(), 2);
    let st = lab.status();
    assert_eq!(st["flags"], "---", "{st}");
    assert_eq!(st["retention"], serde_json::Value::Null, "{st}");
    assert_eq!(lab.ferry(&["--nagios", "status", "data"]).code, 0);
    assert_eq!(tree_checksum(&src), lab.dst_sum());
}

/// Snapshots of a dataset that something still holds (a user reference: `zfs hold`, or zfs-fuse
/// after an aborted send).
fn busy(ds: &str) -> Vec<String> {
    let (_, out, _) = try_run(&format!("zfs get -H -r -o name,value userrefs {ds}"));
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(n, v)| n.contains('@') && *v != "0" && *v != "-")
        .map(|(n, _)| n.to_string())
        .collect()
}

/// zfs send / receive processes still working on the lab's datasets.
fn leftover_processes(lab: &Lab) -> Vec<String> {
    let (_, out, _) = try_run("ps -eo pid,args");
    out.lines()
        .filter(|l| {
            (l.contains("zfs send") && l.contains(&lab.src_ds))
                || (l.contains("zfs receive") && l.contains(&lab.dst_ds))
        })
        .map(String::from)
        .collect()
}

/// zfs-fuse keeps the user reference of a send that was killed far longer than a test runs
/// (over ten minutes seen), and `zpool destroy` then answers "pool is busy". `zpool export`
/// works: done on the way out (panicking or not), before the harness destroys the pools.
struct ExportOnDrop(String);

impl Drop for ExportOnDrop {
    fn drop(&mut self) {
        if !busy(&self.0).is_empty() {
            let pool = self.0.split('/').next().unwrap_or_default();
            let _ = try_run(&format!("zpool export {pool}"));
        }
    }
}

#[test]
fn kill_loop_leaves_a_bounded_number_of_snapshots() {
    let keep = 2;
    let Some(lab) = Lab::new("rtk", 128, 128, &format!("keep = {keep}")) else {
        return;
    };
    let _export = ExportOnDrop(lab.src_ds.clone());
    let fp = lab.fingerprint();
    let ours = format!("@ferry.{fp}.");
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 512 << 10, 1);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let rounds = 40;
    let mut killed = 0;
    for i in 0..rounds {
        write_random_file(&src.join(format!("k{}.bin", i % 5)), 2 << 20, 100 + i);
        let mut child = lab.spawn(&["update", "data"]);
        // kill at a different point of the job each round: connecting, sending, finishing
        std::thread::sleep(Duration::from_millis(100 + (i * 37) % 700));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        // recovered as an operator would: unlock (a no-op when the job had finished), update
        let r = lab.ferry(&["unlock", "data"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        lab.ok(&["update", "data"]);
    }
    assert!(
        killed >= rounds / 2,
        "only {killed} of {rounds} updates were killed mid-run"
    );
    lab.ok(&["update", "data"]);
    let s = ferry_snaps(&lab.src_ds, &fp);
    let d = ferry_snaps(&lab.dst_ds, &fp);
    let busy_src: Vec<String> = busy(&lab.src_ds).into_iter().filter(|b| b.contains(&ours)).collect();
    let busy_dst: Vec<String> = busy(&lab.dst_ds).into_iter().filter(|b| b.contains(&ours)).collect();
    eprintln!(
        "kill loop: {killed}/{rounds} killed; source {} ferry snapshots ({} busy), destination {} ({} busy)",
        s.len(),
        busy_src.len(),
        d.len(),
        busy_dst.len()
    );
    // bounded: keep plus what is busy; everything not busy beyond keep is gone
    for (side, list, busy) in [("source", &s, &busy_src), ("destination", &d, &busy_dst)] {
        assert!(list.len() <= keep + busy.len(), "{side} {list:?}, busy {busy:?}");
        let newest = &list[list.len().saturating_sub(keep)..];
        for x in list.iter().filter(|x| !busy.contains(x)) {
            assert!(
                newest.contains(x),
                "{side}: {x} is neither busy nor among the newest {keep}"
            );
        }
    }
    // and it shows: the busy ones beyond keep are counted, flagged, and named once retention
    // has left them on more than one run
    let st = lab.status();
    let over = s.len() - keep.min(s.len());
    assert_eq!(st["source_over_keep"], over, "{st}");
    assert_eq!(st["destination_over_keep"], d.len() - keep.min(d.len()), "{st}");
    if over > 0 {
        assert_eq!(st["flags"], "R--", "{st}");
        assert_eq!(st["retention_failing"], true, "{st}");
        let warnings = st["warnings"].to_string();
        assert!(warnings.contains(short(&s[0])), "the oldest busy one is named: {st}");
    } else {
        assert_eq!(st["flags"], "---", "{st}");
    }
    // the replica is the source's data, nothing is locked
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    assert_eq!(st["state"], "Synchronized", "{st}");
    assert_eq!(st["status"], "Idle", "{st}");
    assert!(!lab.state_dir().join(&fp).join("lock").exists(), "lock left behind");
    // no sender or receiver left behind (a killed sender on the far side of ssh may take a moment)
    let t = Instant::now();
    let mut left = leftover_processes(&lab);
    while !left.is_empty() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(500));
        left = leftover_processes(&lab);
    }
    assert!(left.is_empty(), "{left:?}");
}
