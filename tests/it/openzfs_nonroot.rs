//! Non-root operation on real OpenZFS 2.3 (the qemu lab): ferry logs in to both sides as the
//! guest's unprivileged `lab` account with the permissions docs/operations.md lists delegated by
//! `zfs allow`; setup reads them and names what is missing with the command that grants it, and
//! the whole lifecycle (setup, initialize, update, verify, status, purge --all) runs as that
//! account. On Linux only root mounts: the replica is received unmounted, everything else holds.

use crate::common;

use std::time::Instant;

use common::openzfs::{tick, Ferry, OpenZfs, Pools};

#[test]
fn a_whole_lifecycle_runs_as_an_account_with_delegated_permissions() {
    let Some(vm) = OpenZfs::get() else { return };
    let t0 = Instant::now();
    let p = Pools::create(vm, "nonroot", 256);
    vm.sh(&format!("zfs create {0}/data && zfs create {1}/rep", p.src, p.dst));
    let src = format!("{}/data", p.src);
    let dst = format!("{}/rep/site/data", p.dst);
    let parent = format!("{}/rep", p.dst);
    vm.write_random(&format!("/mnt/{src}/a.bin"), 1);
    let f = Ferry::as_user(vm, "lab", &src, &dst, "keep = 2");

    // nothing delegated yet: setup fails on both sides, naming the account, what it lacks and
    // the command that grants it
    let r = f.run(&["setup", "data"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "source permissions: lab lacks send,snapshot,hold,release,bookmark,destroy,mount on {src}"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!(
            "`zfs allow -u lab receive,create,mount,destroy,rollback,hold,release,userprop,readonly {parent}`"
        )),
        "{}",
        r.stdout
    );

    // the source's set, and the destination's but one: setup names the one
    vm.sh(&format!(
        "zfs allow -u lab send,snapshot,hold,release,bookmark,destroy,mount {src}"
    ));
    vm.sh(&format!(
        "zfs allow -u lab receive,create,mount,destroy,rollback,hold,release,userprop {parent}"
    ));
    let r = f.run(&["setup", "data"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("[ ok ] source permissions: lab may"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("lab lacks readonly on {parent}")),
        "{}",
        r.stdout
    );

    // the whole set: the lifecycle runs as lab
    vm.sh(&format!("zfs allow -u lab readonly {parent}"));
    let r = f.ok(&["setup", "data"]);
    // created by the account (the first setup already did: its create and receive were granted)
    assert!(
        r.stdout
            .contains(&format!("[ ok ] destination parent: {}/rep/site", p.dst)),
        "{}",
        r.stdout
    );
    assert!(vm.exists(&format!("{}/rep/site", p.dst)));
    f.ok(&["initialize", "data"]);
    for i in 0..3 {
        tick();
        vm.write_random(&format!("/mnt/{src}/u{i}.bin"), 1);
        f.ok(&["update", "data"]);
    }
    f.ok(&["verify", "data"]);
    let st = f.status();
    assert_eq!(st["state"], "Synchronized", "{st}");
    assert_eq!(vm.get_prop(&dst, "readonly"), "on");
    assert_eq!(vm.get_prop(&dst, "mounted"), "no", "only root mounts on Linux");
    let cp = vm.ferry_snaps(&src).pop().unwrap();
    let tag = cp.rsplit_once('.').unwrap().0.to_string();
    assert_eq!(
        vm.holds(&src),
        [(cp.clone(), tag.clone())],
        "the checkpoint is held as lab"
    );
    assert_eq!(vm.holds(&dst), [(cp.clone(), tag)]);
    assert_eq!(vm.bookmarks(&src), std::slice::from_ref(&cp), "and bookmarked");
    assert!(vm.ferry_snaps(&src).len() <= 2, "retention destroyed as lab");
    // the data, read as root once mounted
    vm.sh(&format!("zfs mount {dst}"));
    assert_eq!(vm.tree_sum(&format!("/mnt/{src}")), vm.tree_sum(&format!("/mnt/{dst}")));
    vm.sh(&format!("zfs unmount {dst}"));

    f.ok(&["purge", "--all", "data", "--yes"]);
    assert!(!vm.exists(&dst), "purge --all as lab left the replica");
    assert!(vm.ferry_snaps(&src).is_empty() && vm.bookmarks(&src).is_empty());
    eprintln!("non-root lifecycle: {:.1} s", t0.elapsed().as_secs_f64());
}
