//! A cluster of zfs volumes on real zfs-fuse pools: one source over the loopback sshd fanned out
//! to two replicas by `ferry cluster run`, each replica a pair of its own (initialized, then
//! updated every settle).

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::lab::Lab;
use common::zfs::{remount, tree_checksum, write_random_file};

#[test]
fn one_zfs_source_fans_out_to_two_replicas() {
    let Some(lab) = Lab::new("clz", 256, 512, "") else {
        return;
    };
    let (r1, r2) = (lab.dst.ds("r1"), lab.dst.ds("r2"));
    let mut text = std::fs::read_to_string(&lab.config).unwrap();
    // the lab's pair stays; the cluster fans its source out to two more replicas
    text.push_str(&format!(
        "\n[[cluster]]\nname = \"fan\"\npersist_path = \"{}\"\nsettle = \"2s\"\npoll = \"500ms\"\n\
         volumes = [\n  {{ at = \"store1:{}\", listen = true, update = false }},\n  \
         {{ at = \"{r1}\", listen = false, update = true }},\n  {{ at = \"{r2}\", listen = false, update = true }},\n]\n",
        lab.dir.path().join("persist").display(),
        lab.src_ds
    ));
    std::fs::write(&lab.config, text).unwrap();
    lab.ok(&["check"]);
    write_random_file(&lab.src_mnt().join("a.bin"), 1 << 20, 7);
    let mut run = common::runner::bare()
        .arg("-c")
        .arg(&lab.config)
        .args(["cluster", "run", "fan"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let same = |want: &str| {
        [&r1, &r2].iter().all(|r| {
            common::zfs::dataset_exists(r) && {
                remount(r);
                tree_checksum(&common::zfs::mountpoint(r)) == want
            }
        })
    };
    let wait = |what: &str| {
        let want = tree_checksum(&lab.src_mnt());
        let start = Instant::now();
        while !same(&want) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{what}: replicas not in step in 60 s"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    wait("initialize");
    write_random_file(&lab.src_mnt().join("b.bin"), 1 << 20, 8);
    wait("update");
    let st: serde_json::Value = serde_json::from_str(&lab.ok(&["--json", "cluster", "status", "fan"]).stdout).unwrap();
    assert_eq!(st[0]["failed"], 0, "{st}");
    assert!(st[0]["figures"]["applied"].as_u64().unwrap() >= 4, "{st}");
    unsafe {
        libc::kill(run.id() as i32, libc::SIGTERM);
    }
    assert!(run.wait().unwrap().success());
    // each replica is a pair of its own in the state dir: Synchronized, its snapshots ferry's
    for r in [&r1, &r2] {
        let snaps = common::zfs::snapshots(r);
        assert!(
            !snaps.is_empty() && snaps.iter().all(|s| s.contains("@ferry.")),
            "{snaps:?}"
        );
    }
}
