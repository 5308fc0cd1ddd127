//! Holds on real OpenZFS 2.3 (the qemu lab): the checkpoint snapshot carries the pair's hold
//! (`ferry.<fp>`) on both sides, and only the checkpoint; the hold moves with each update; another
//! tool's prune cannot destroy it (and the next update still goes incrementally); retention and
//! `purge --all` release ferry's own hold before destroying, leaving nothing behind.

use crate::common;

use std::time::Instant;

use common::openzfs::{tick, Ferry, OpenZfs, Pools};

#[test]
fn the_checkpoint_is_held_on_both_sides_and_the_hold_moves_with_it() {
    let Some(vm) = OpenZfs::get() else { return };
    let t0 = Instant::now();
    let p = Pools::create(vm, "holds", 256);
    vm.sh(&format!("zfs create {0}/data && zfs create {1}/rep", p.src, p.dst));
    let src = format!("{}/data", p.src);
    let dst = format!("{}/rep/data", p.dst);
    let f = Ferry::new(vm, &src, &dst, "keep = 2");
    vm.write_random(&format!("/mnt/{src}/a.bin"), 1);
    f.ok(&["setup", "data"]);
    f.ok(&["initialize", "data"]);
    let cp = vm.ferry_snaps(&src).pop().unwrap();
    let tag = cp.rsplit_once('.').unwrap().0.to_string();
    assert_eq!(vm.holds(&src), vec![(cp.clone(), tag.clone())], "source holds");
    assert_eq!(vm.holds(&dst), vec![(cp.clone(), tag.clone())], "destination holds");

    for i in 0..3 {
        tick();
        vm.write_random(&format!("/mnt/{src}/u{i}.bin"), 1);
        f.ok(&["update", "data"]);
        let cp = vm.ferry_snaps(&src).pop().unwrap();
        assert_eq!(vm.ferry_snaps(&dst).last(), Some(&cp));
        assert_eq!(
            vm.holds(&src),
            vec![(cp.clone(), tag.clone())],
            "after update {i}: only the checkpoint is held"
        );
        assert_eq!(vm.holds(&dst), vec![(cp.clone(), tag.clone())], "after update {i}");
        assert!(
            vm.ferry_snaps(&src).len() <= 2,
            "retention released and destroyed the old ones"
        );
    }

    // another tool pruning everything it sees cannot take the checkpoint
    let cp = vm.ferry_snaps(&src).pop().unwrap();
    let (ok, _, err) = vm.try_sh(&format!("zfs destroy {src}@{cp}"));
    assert!(!ok, "a held checkpoint was destroyed");
    eprintln!("another tool's destroy of the checkpoint: {}", err.trim());
    tick();
    vm.write_random(&format!("/mnt/{src}/after.bin"), 1);
    let r = f.ok(&["update", "data"]);
    eprintln!("update after the refused prune: {}", r.stdout.trim());
    assert_eq!(vm.tree_sum(&format!("/mnt/{src}")), vm.tree_sum(&format!("/mnt/{dst}")));

    // purge --all releases ferry's own holds and leaves nothing; another tool's hold stays
    let cp = vm.ferry_snaps(&src).pop().unwrap();
    vm.sh(&format!("zfs hold other.tool {src}@{cp}"));
    let r = f.run(&["purge", "--all", "data", "--yes"]);
    eprintln!(
        "purge --all with another tool's hold: code {}\n{}{}",
        r.code, r.stdout, r.stderr
    );
    assert_eq!(
        vm.holds(&src),
        vec![(cp.clone(), "other.tool".to_string())],
        "ferry's hold was not released, or the other was"
    );
    vm.sh(&format!("zfs release other.tool {src}@{cp}"));
    f.ok(&["purge", "--all", "data", "--yes"]);
    assert!(vm.ferry_snaps(&src).is_empty(), "{:?}", vm.ferry_snaps(&src));
    assert!(!vm.exists(&dst), "purge --all left the replica");
    eprintln!("holds: {:.1} s", t0.elapsed().as_secs_f64());
}
