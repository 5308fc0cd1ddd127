//! Taking over another tool's replica on real OpenZFS 2.3 (the qemu lab): a replica made the
//! way syncoid makes one (its `syncoid_<host>_<date>` snapshots, a full `zfs send` into
//! `zfs receive -s -F`, then an `-I` increment) is refused by a plain `initialize` with the hint,
//! and taken over by `initialize --force` with an incremental send from the newest snapshot both
//! sides hold; then ferry's updates go on, syncoid's snapshots stay, and the checkpoint is held
//! and bookmarked as on any pair.

use crate::common;

use std::time::Instant;

use common::openzfs::{tick, Ferry, OpenZfs, Pools};

#[test]
fn initialize_force_takes_over_a_replica_syncoid_made() {
    let Some(vm) = OpenZfs::get() else { return };
    let t0 = Instant::now();
    let p = Pools::create(vm, "adopt", 256);
    vm.sh(&format!("zfs create {0}/data && zfs create {1}/rep", p.src, p.dst));
    let src = format!("{}/data", p.src);
    let dst = format!("{}/rep/data", p.dst);
    vm.write_random(&format!("/mnt/{src}/a.bin"), 8);
    // syncoid's first run and one more, as it names and sends them
    let s1 = "syncoid_ozfs_2026-12-04:10:00:00-GMT00:00";
    let s2 = "syncoid_ozfs_2026-12-04:11:00:00-GMT00:00";
    vm.sh(&format!(
        "zfs snapshot {src}@{s1} && zfs send {src}@{s1} | zfs receive -s -F {dst}"
    ));
    vm.write_random(&format!("/mnt/{src}/b.bin"), 1);
    vm.sh(&format!(
        "zfs snapshot {src}@{s2} && zfs send -I {src}@{s1} {src}@{s2} | zfs receive -s -F {dst}"
    ));
    vm.write_random(&format!("/mnt/{src}/c.bin"), 1);

    let f = Ferry::new(vm, &src, &dst, "keep = 2");
    let r = f.run(&["setup", "data"]);
    assert!(
        r.stdout.contains("exists and is not this pair's replica"),
        "{}",
        r.stdout
    );
    let r = f.run(&["initialize", "data"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("--force"),
        "the refusal names the takeover: {}",
        r.stderr
    );
    assert_eq!(
        vm.snapshots(&dst),
        [s1, s2],
        "the refused initialize touched the replica"
    );

    let r = f.ok(&["--json", "initialize", "--force", "data"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    let bytes = v["bytes"].as_u64().unwrap();
    eprintln!("takeover of syncoid's replica: {bytes} bytes (the data is 10 MiB)");
    assert!(bytes < 3 << 20, "not incremental from {s2}: {bytes} bytes");
    tick();
    vm.write_random(&format!("/mnt/{src}/d.bin"), 1);
    f.ok(&["update", "data"]);
    f.ok(&["verify", "data"]);
    assert_eq!(f.status()["state"], "Synchronized");
    assert_eq!(vm.tree_sum(&format!("/mnt/{src}")), vm.tree_sum(&format!("/mnt/{dst}")));
    for side in [&src, &dst] {
        let snaps = vm.snapshots(side);
        assert!(
            snaps.iter().any(|s| s == s1) && snaps.iter().any(|s| s == s2),
            "syncoid's snapshots went from {side}: {snaps:?}"
        );
    }
    let cp = vm.ferry_snaps(&src).pop().unwrap();
    assert_eq!(vm.bookmarks(&src), std::slice::from_ref(&cp));
    assert_eq!(vm.holds(&dst).len(), 1, "{:?}", vm.holds(&dst));
    eprintln!("adopt: {:.1} s", t0.elapsed().as_secs_f64());
}
