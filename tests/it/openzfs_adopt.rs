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

/// A replica zettabee made (its fingerprinted generation: `zettabee.<fp>.<ts>` snapshots,
/// `zettabee:<fp>:lastsnap` on both sides, `zettabee:fingerprint` on the destination) is refused
/// without `adopt = "zettabee"` and taken over with it by an incremental update from zettabee's
/// last snapshot, which stays.
#[test]
fn adopt_zettabee_takes_over_its_replica_incrementally() {
    let Some(vm) = OpenZfs::get() else { return };
    let t0 = Instant::now();
    let p = Pools::create(vm, "zbee", 256);
    vm.sh(&format!("zfs create {0}/data && zfs create {1}/rep", p.src, p.dst));
    let src = format!("{}/data", p.src);
    let dst = format!("{}/rep/data", p.dst);
    vm.write_random(&format!("/mnt/{src}/big.bin"), 8);
    let zfp = vm
        .sh(&format!(
            "printf '%s' 'store1.example.com:{src}::backup1.example.com:{dst}' | md5sum | cut -d' ' -f1"
        ))
        .trim()
        .to_string();
    // zettabee's initialize and one update, with the commands it ran
    let (s1, s2) = (
        format!("zettabee.{zfp}.20261121230000UTC"),
        format!("zettabee.{zfp}.20261122000000UTC"),
    );
    vm.sh(&format!(
        "zfs snapshot {src}@{s1} && zfs send {src}@{s1} | zfs receive {dst} && zfs set readonly=on {dst} && \
         zfs set zettabee:{zfp}:source=store1.example.com:{src} {src} && \
         zfs set zettabee:{zfp}:source=store1.example.com:{src} {dst} && \
         zfs set zettabee:{zfp}:destination=backup1.example.com:{dst} {dst} && \
         zfs set zettabee:fingerprint={zfp} {dst} && \
         zfs set zettabee:{zfp}:lastsnap={s1} {dst} && zfs set zettabee:{zfp}:lastsnap={s1} {src}"
    ));
    vm.write_random(&format!("/mnt/{src}/conf"), 1);
    vm.sh(&format!(
        "zfs snapshot {src}@{s2} && zfs send -i {s1} {src}@{s2} | zfs receive {dst} && \
         zfs set zettabee:{zfp}:lastsnap={s2} {dst} && zfs set zettabee:{zfp}:lastsnap={s2} {src} && \
         zfs destroy {src}@{s1} && zfs destroy {dst}@{s1}"
    ));
    vm.write_random(&format!("/mnt/{src}/new.bin"), 1);

    let f = Ferry::new(vm, &src, &dst, "keep = 1");
    let r = f.run(&["update", "data"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("it is a zettabee replica: add `adopt = \"zettabee\"`"),
        "{}",
        r.stderr
    );
    assert_eq!(vm.get_prop(&dst, "ferry:fingerprint"), "-");

    f.write_config(&src, &dst, "keep = 1\nadopt = \"zettabee\"");
    let r = f.ok(&["--json", "update", "data"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    let bytes = v["bytes"].as_u64().unwrap();
    eprintln!("zettabee's replica adopted with {bytes} bytes (the dataset holds 10 MiB)");
    assert!(
        (1 << 20..3 << 20).contains(&bytes),
        "not an increment of the 1 MiB written: {bytes}"
    );
    assert_eq!(vm.tree_sum(&format!("/mnt/{src}")), vm.tree_sum(&format!("/mnt/{dst}")));
    assert_eq!(f.status()["state"], "Synchronized");
    tick();
    vm.write_random(&format!("/mnt/{src}/more.bin"), 1);
    f.ok(&["update", "data"]);
    f.ok(&["verify", "data"]);
    for side in [&src, &dst] {
        assert!(
            vm.snapshots(side).contains(&s2),
            "zettabee's last snapshot went from {side}"
        );
    }
    eprintln!("adopt zettabee: {:.1} s", t0.elapsed().as_secs_f64());
}
