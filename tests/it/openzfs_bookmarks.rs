//! Bookmarks on real OpenZFS 2.3 (the qemu lab): each checkpoint is bookmarked on the source
//! (`ds#ferry.<fp>.<time>`, only the checkpoint's), so a pair whose source checkpoint snapshot
//! another tool destroyed (hold released first) still updates incrementally, from the bookmark;
//! with `keep = 1` the source keeps its newest snapshot alone; `purge --all` leaves no bookmark,
//! also one whose snapshot is gone.

use crate::common;

use std::time::Instant;

use common::openzfs::{tick, Ferry, OpenZfs, Pools};

/// The pair's log text.
fn log_text(f: &Ferry) -> String {
    std::fs::read_dir(f.state_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("log"))
        .find(|p| p.exists())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

/// Another tool's prune of `snap` on `ds`: the pair's hold released, then destroyed.
fn destroy_behind_ferrys_back(vm: &OpenZfs, ds: &str, snap: &str) {
    let tag = snap.rsplit_once('.').unwrap().0;
    vm.sh(&format!("zfs release {tag} {ds}@{snap} && zfs destroy {ds}@{snap}"));
}

#[test]
fn a_pair_whose_source_checkpoint_was_destroyed_updates_from_its_bookmark() {
    let Some(vm) = OpenZfs::get() else { return };
    let t0 = Instant::now();
    let p = Pools::create(vm, "bmarks", 256);
    vm.sh(&format!("zfs create {0}/data && zfs create {1}/rep", p.src, p.dst));
    let src = format!("{}/data", p.src);
    let dst = format!("{}/rep/data", p.dst);
    let f = Ferry::new(vm, &src, &dst, "keep = 1");
    vm.write_random(&format!("/mnt/{src}/a.bin"), 1);
    f.ok(&["setup", "data"]);
    f.ok(&["initialize", "data"]);
    let caps = f
        .cached_caps("source", &p.src)
        .expect("the source's capabilities are cached");
    assert_eq!(caps["caps"]["bookmarks"], true, "{caps}");
    let cp = vm.ferry_snaps(&src).pop().unwrap();
    assert_eq!(
        vm.bookmarks(&src),
        std::slice::from_ref(&cp),
        "the checkpoint is bookmarked"
    );
    assert!(vm.bookmarks(&dst).is_empty(), "bookmarks are the source's");

    // the bookmark moves with the checkpoint; keep = 1 leaves the newest snapshot alone
    for i in 0..2 {
        tick();
        vm.write_random(&format!("/mnt/{src}/u{i}.bin"), 1);
        f.ok(&["update", "data"]);
        let cp = vm.ferry_snaps(&src).pop().unwrap();
        assert_eq!(
            vm.ferry_snaps(&src),
            std::slice::from_ref(&cp),
            "after update {i}: keep = 1 on the source"
        );
        assert_eq!(
            vm.bookmarks(&src),
            std::slice::from_ref(&cp),
            "after update {i}: only the checkpoint's bookmark"
        );
    }

    // another tool destroys the checkpoint on the source: still Synchronized, and the next update
    // goes incrementally from the bookmark
    let cp = vm.ferry_snaps(&src).pop().unwrap();
    destroy_behind_ferrys_back(vm, &src, &cp);
    assert!(vm.ferry_snaps(&src).is_empty());
    let st = f.status();
    assert_eq!(st["state"], "Synchronized", "{st}");
    tick();
    vm.write_random(&format!("/mnt/{src}/after.bin"), 2);
    let r = f.ok(&["--json", "update", "data"]);
    let log = log_text(&f);
    assert!(
        log.contains("from its bookmark"),
        "the update did not say it used the bookmark:\n{log}"
    );
    assert!(
        log.contains(&format!("-i '{src}#{cp}'")),
        "not an incremental from the bookmark:\n{log}"
    );
    let done: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    let moved = done.to_string();
    eprintln!("update from the bookmark: {moved}");
    // the increment alone (2 MiB), not a full stream of the dataset's 4 MiB
    let bytes = done
        .pointer("/0/bytes")
        .or(done.get("bytes"))
        .and_then(|b| b.as_u64())
        .unwrap_or(0);
    assert!((2 << 20..3 << 20).contains(&bytes), "{moved}");
    assert_eq!(vm.tree_sum(&format!("/mnt/{src}")), vm.tree_sum(&format!("/mnt/{dst}")));
    let cp2 = vm.ferry_snaps(&src).pop().unwrap();
    assert_eq!(
        vm.bookmarks(&src),
        std::slice::from_ref(&cp2),
        "the old checkpoint's bookmark went"
    );
    assert_eq!(
        vm.ferry_snaps(&dst),
        std::slice::from_ref(&cp2),
        "keep = 1 on the destination"
    );
    f.ok(&["verify", "data"]);

    // purge --all leaves no bookmark, the one of a checkpoint destroyed by hand neither
    destroy_behind_ferrys_back(vm, &src, &cp2);
    f.ok(&["purge", "--all", "data", "--yes"]);
    assert!(
        vm.bookmarks(&src).is_empty(),
        "purge --all left {:?}",
        vm.bookmarks(&src)
    );
    assert!(vm.ferry_snaps(&src).is_empty());
    assert!(!vm.exists(&dst));
    // and the pair starts over
    f.ok(&["initialize", "data"]);
    assert_eq!(vm.bookmarks(&src), vm.ferry_snaps(&src));
    eprintln!("bookmarks: {:.1} s", t0.elapsed().as_secs_f64());
}
