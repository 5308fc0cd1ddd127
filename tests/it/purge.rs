//! `ferry purge` against real zfs-fuse pools over the loopback sshd: retention beyond `keep` on
//! both sides (never the checkpoint, never a snapshot that is not this pair's), and `purge --all`.

use crate::common;

use common::lab::Lab;
use common::zfs::{dataset_exists, remount, run, snapshots, tree_checksum, write_random_file, zfs_get};

fn ferry_snaps(ds: &str, fp: &str) -> Vec<String> {
    snapshots(ds)
        .into_iter()
        .filter(|s| s.contains(&format!("@ferry.{fp}.")))
        .collect()
}

#[test]
fn purge_lists_then_destroys_beyond_keep_and_all_starts_over() {
    let Some(lab) = Lab::new("pg", 192, 192, "keep = 5") else {
        return;
    };
    let fp = lab.fingerprint();
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 1 << 20, 1);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    // a snapshot of someone else (another tool, another pair) travels with -I and must survive
    run(&format!("zfs snapshot {}@hourly-1", lab.src_ds));
    run(&format!(
        "zfs snapshot {}@ferry.0123456789abcdef0123456789abcdef.20200101T000000Z",
        lab.src_ds
    ));
    for i in 0..3 {
        write_random_file(&src.join(format!("u{i}.bin")), 256 << 10, 10 + i);
        lab.ok(&["update", "data"]);
    }
    // within keep = 5 on both sides; lowered to 2, the two oldest of each side are beyond it
    let src_before = ferry_snaps(&lab.src_ds, &fp);
    assert_eq!(src_before.len(), 4);
    let dst_before = ferry_snaps(&lab.dst_ds, &fp);
    assert_eq!(dst_before.len(), 4, "{dst_before:?}");
    lab.write_config("keep = 2", &lab.sshd.known_hosts.clone(), false);
    let checkpoint = zfs_get(&lab.dst_ds, "ferry:lastsnap");

    // listing only
    let r = lab.ok(&["purge", "data"]);
    for old in &dst_before[..2] {
        let name = old.split('@').nth(1).unwrap();
        assert!(
            r.stdout.contains(&format!("would destroy local:{}@{name}", lab.dst_ds)),
            "{}",
            r.stdout
        );
    }
    assert!(
        r.stdout.contains(&format!("checkpoint {checkpoint} is kept")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("add --yes"), "{}", r.stdout);
    assert_eq!(ferry_snaps(&lab.dst_ds, &fp), dst_before, "a listing destroys nothing");
    let j: serde_json::Value = serde_json::from_str(&lab.ok(&["--json", "purge", "data"]).stdout).unwrap();
    assert_eq!(j["destination_snapshots"].as_array().unwrap().len(), 2);
    assert_eq!(j["source_snapshots"].as_array().unwrap().len(), 2);
    assert_eq!(j["done"], false);

    // destroying
    let r = lab.ok(&["purge", "data", "--yes"]);
    assert!(r.stdout.contains("destroyed local:"), "{}", r.stdout);
    assert_eq!(ferry_snaps(&lab.src_ds, &fp), src_before[2..].to_vec());
    let after = ferry_snaps(&lab.dst_ds, &fp);
    assert_eq!(after, dst_before[2..].to_vec());
    assert!(after.last().unwrap().ends_with(&checkpoint));
    let all = snapshots(&lab.dst_ds);
    assert!(all.iter().any(|s| s.ends_with("@hourly-1")), "{all:?}");
    assert!(all.iter().any(|s| s.contains("@ferry.0123456789abcdef")), "{all:?}");
    assert!(lab.ok(&["purge", "data"]).stdout.contains("nothing to purge"));
    assert_eq!(lab.status()["state"], "Synchronized");
    lab.ok(&["update", "data"]);

    // --all refuses while a job holds the lock
    let lock = lab.state_dir().join(&fp).join("lock");
    std::fs::write(
        &lock,
        format!("{{\"pid\":{},\"action\":\"update\",\"started\":1}}", std::process::id()),
    )
    .unwrap();
    // a live job's lock is a flock held on the file (here by this test process)
    let holder = std::fs::File::open(&lock).unwrap();
    holder.lock().unwrap();
    let r = lab.ferry(&["purge", "--all", "data", "--yes"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("already running") && r.stderr.contains("refuses while a job runs"),
        "{}",
        r.stderr
    );
    assert!(dataset_exists(&lab.dst_ds));
    drop(holder);
    // the holder is gone: a stale lock (a dead job's) does not stop purge --all, which starts over anyway

    // --all without --yes lists only
    let r = lab.ok(&["purge", "--all", "data"]);
    assert!(
        r.stdout
            .contains(&format!("would destroy destination local:{}", lab.dst_ds)),
        "{}",
        r.stdout
    );
    assert!(dataset_exists(&lab.dst_ds));

    let r = lab.ok(&["purge", "--all", "data", "--yes"]);
    assert!(r.stdout.contains("destroyed destination"), "{}", r.stdout);
    assert!(!dataset_exists(&lab.dst_ds));
    assert!(ferry_snaps(&lab.src_ds, &fp).is_empty(), "{:?}", snapshots(&lab.src_ds));
    assert!(
        snapshots(&lab.src_ds).iter().any(|s| s.ends_with("@hourly-1")),
        "not ours: kept"
    );
    let st = lab.status();
    assert_eq!(st["state"], "Uninitialized");
    assert_eq!(st["status"], "Idle");
    assert!(!lock.exists());

    // and it starts over
    lab.ok(&["initialize", "data"]);
    remount(&lab.dst_ds);
    assert_eq!(tree_checksum(&src), tree_checksum(&lab.dst_mnt()));
    assert_eq!(lab.status()["state"], "Synchronized");
}

#[test]
fn purge_all_refuses_a_destination_that_is_not_this_pairs() {
    let Some(lab) = Lab::new("pgx", 128, 128, "") else {
        return;
    };
    // a dataset ferry never wrote sits where the destination would be
    run(&format!("zfs create -p {}", lab.dst_ds));
    let r = lab.ferry(&["purge", "--all", "data", "--yes"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with("ferry: error: purge data: destination"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("not a ferry replica"), "{}", r.stderr);
    assert!(dataset_exists(&lab.dst_ds));
    // and plain purge says why it does nothing
    let r = lab.ferry(&["purge", "data"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("purge keeps every snapshot"), "{}", r.stderr);
}

#[test]
fn purge_all_refuses_what_under_the_destination_is_not_this_pairs() {
    let Some(lab) = Lab::new("pgn", 128, 128, "") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 256 << 10, 1);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);

    // another pair's replica nested under this one (the config cannot see a dataset made by hand
    // or by another ferry host)
    let child = format!("{}/nested", lab.dst_ds);
    run(&format!("zfs create -o canmount=off {child}"));
    run(&format!(
        "zfs set ferry:fingerprint=0123456789abcdef0123456789abcdef {child}"
    ));
    for args in [&["purge", "--all", "data"][..], &["purge", "--all", "data", "--yes"]] {
        let r = lab.ferry(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains(&format!(
                "volume {child} (replica of another pair, fingerprint 0123456789abcdef0123456789abcdef)"
            )) && r.stderr.contains("purge --all refuses"),
            "{}",
            r.stderr
        );
    }
    assert!(dataset_exists(&child) && dataset_exists(&lab.dst_ds));
    run(&format!("zfs destroy {child}"));

    // a dataset nobody marked, and a snapshot taken on the replica by hand
    let other = format!("{}/other", lab.dst_ds);
    run(&format!("zfs create -o canmount=off {other}"));
    run(&format!("zfs snapshot {}@mine", lab.dst_ds));
    let r = lab.ferry(&["purge", "--all", "data", "--yes"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains(&format!("volume {other}")), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("snapshot {}@mine (not on the source)", lab.dst_ds)),
        "{}",
        r.stderr
    );
    assert!(dataset_exists(&other) && snapshots(&lab.dst_ds).iter().any(|s| s.ends_with("@mine")));
    run(&format!("zfs destroy {other}"));
    run(&format!("zfs destroy {}@mine", lab.dst_ds));

    // what came from the source along with ferry's snapshots (zfs send -I) is the replica's
    run(&format!("zfs snapshot {}@hourly-1", lab.src_ds));
    lab.ok(&["update", "data"]);
    assert!(snapshots(&lab.dst_ds).iter().any(|s| s.ends_with("@hourly-1")));
    let r = lab.ok(&["purge", "--all", "data", "--yes"]);
    assert!(r.stdout.contains("destroyed destination"), "{}", r.stdout);
    assert!(!dataset_exists(&lab.dst_ds));
    assert!(snapshots(&lab.src_ds).iter().any(|s| s.ends_with("@hourly-1")));
    lab.ok(&["initialize", "data"]);
    assert_eq!(tree_checksum(&src), lab.dst_sum());
}
