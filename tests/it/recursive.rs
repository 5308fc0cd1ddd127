//! `recursive = true`: a dataset tree replicated as one pair over the loopback sshd, on real
//! zfs-fuse pools: every child with its own checkpoint, new children picked up by the next
//! update, children that vanish reported and kept, status rolled up to the worst member.

use crate::common;

use common::lab::Lab;
use common::zfs::{dataset_exists, run, run_retry_busy, tree_checksum, write_random_file, zfs_get};

fn mountpoint(ds: &str) -> std::path::PathBuf {
    run(&format!("zfs get -H -o value mountpoint '{ds}'")).trim().into()
}

fn sum(lab: &Lab, ds: &str) -> String {
    common::zfs::remount(&format!("'{ds}'"));
    let _ = lab;
    tree_checksum(&mountpoint(ds))
}

#[test]
fn a_dataset_tree_replicates_as_one_pair() {
    let Some(lab) = Lab::new("rec", 384, 384, "recursive = true\nkeep = 2") else {
        return;
    };
    let src = lab.src_ds.clone();
    let dst = lab.dst_ds.clone();
    for child in ["home", "home/alice", "db"] {
        run(&format!("zfs create '{src}/{child}'"));
        write_random_file(
            &mountpoint(&format!("{src}/{child}")).join("f.bin"),
            1 << 20,
            child.len() as u64,
        );
    }
    write_random_file(&lab.src_mnt().join("root.bin"), 1 << 20, 9);

    // update before initialize is refused as for any pair
    let r = lab.ferry(&["update", "data"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Uninitialized"), "{}", r.stderr);

    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    for child in ["", "/home", "/home/alice", "/db"] {
        let (s, d) = (format!("{src}{child}"), format!("{dst}{child}"));
        assert!(dataset_exists(&d), "{d} replicated");
        assert_eq!(sum(&lab, &s), sum(&lab, &d), "{d} holds {s}");
        // each member is a replica of its own, with its own fingerprint
        assert_ne!(zfs_get(&d, "ferry:fingerprint"), "-", "{d}");
    }
    assert_ne!(
        zfs_get(&dst, "ferry:fingerprint"),
        zfs_get(&format!("{dst}/home"), "ferry:fingerprint")
    );
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized", "{st}");
    assert_eq!(st["children"].as_array().unwrap().len(), 3, "{st}");

    // a new child is picked up by the next update, a change in an old one travels
    run(&format!("zfs create '{src}/home/bob'"));
    write_random_file(&mountpoint(&format!("{src}/home/bob")).join("b.bin"), 512 << 10, 40);
    write_random_file(&mountpoint(&format!("{src}/db")).join("more.bin"), 512 << 10, 41);
    let st = lab.status();
    assert!(
        st["warnings"].to_string().contains("home/bob has no replica yet"),
        "a new child is a warning until the next update: {st}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.ok(&["update", "data"]);
    // the run's result counts every member's transfer (two of 512 KiB), not only the last one
    let last: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.state_dir().join(lab.fingerprint()).join("last.json")).unwrap())
            .unwrap();
    assert!(last["bytes"].as_u64().unwrap() >= 1 << 20, "{last}");
    assert_eq!(
        sum(&lab, &format!("{src}/home/bob")),
        sum(&lab, &format!("{dst}/home/bob"))
    );
    assert_eq!(sum(&lab, &format!("{src}/db")), sum(&lab, &format!("{dst}/db")));
    assert_eq!(lab.status()["children"].as_array().unwrap().len(), 4);

    // a child that vanishes from the source: reported, its replica kept
    run_retry_busy(&format!("zfs destroy -r '{src}/db'"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.ok(&["update", "data"]);
    assert!(dataset_exists(&format!("{dst}/db")), "never destroyed without purge");
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized");
    assert!(st["warnings"].to_string().contains("db has no source any more"), "{st}");

    // one member broken: the tree is Inconsistent, and the reason names the member
    let alice = format!("{dst}/home/alice");
    for s in common::zfs::snapshots(&alice) {
        run_retry_busy(&format!("zfs destroy '{s}'"));
    }
    let st = lab.status();
    assert_eq!(st["state"], "Inconsistent", "{st}");
    assert!(st["reason"].as_str().unwrap().contains("home/alice"), "{st}");
    let n = lab.ferry(&["--nagios", "status", "data"]);
    assert_eq!(n.code, 2, "{}", n.stdout);
    // an update works the other members and fails naming the broken one
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = lab.ferry(&["update", "data"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("1 of 4 volumes of the tree failed") && r.stderr.contains("home/alice"),
        "{}",
        r.stderr
    );
    // purge --all of a tree says what to do instead of guessing
    let r = lab.ferry(&["purge", "--all", "--yes", "data"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("recursive"), "{}", r.stderr);
}
