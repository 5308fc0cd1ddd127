//! Encrypted datasets on real OpenZFS 2.3 (the qemu lab): sent raw (`zfs send -w`) by default,
//! full and incremental, so the replica is encrypted with the source's key, its own encryption
//! root, and its key never loaded on the destination; after `load-key` there its data is the
//! source's. `raw = false` sends plaintext, as the operator chose.

use crate::common;

use std::time::Instant;

use common::openzfs::{tick, Ferry, OpenZfs, Pools};

#[test]
fn an_encrypted_source_is_sent_raw_and_its_replica_needs_the_key_to_be_read() {
    let Some(vm) = OpenZfs::get() else { return };
    let t0 = Instant::now();
    let p = Pools::create(vm, "raw", 256);
    let key = p.encrypted_source();
    let src = format!("{}/data", p.src);
    let dst = format!("{}/rep/data", p.dst);
    let f = Ferry::new(vm, &src, &dst, "keep = 2");
    vm.write_random(&format!("/mnt/{src}/a.bin"), 4);
    f.ok(&["setup", "data"]);
    f.ok(&["initialize", "data"]);
    let props = |ds: &str| vm.sh(&format!("zfs get -H -o value encryption,keystatus,encryptionroot {ds}"));
    let d: Vec<String> = props(&dst).lines().map(String::from).collect();
    eprintln!("replica encryption, keystatus, encryptionroot: {d:?}");
    assert_eq!(d[0], "aes-256-gcm", "the replica is not encrypted: {d:?}");
    assert_eq!(d[1], "unavailable", "the destination holds the key: {d:?}");
    assert_eq!(d[2], dst, "the replica is not its own encryption root: {d:?}");

    // raw incrementals
    for i in 0..2 {
        tick();
        vm.write_random(&format!("/mnt/{src}/u{i}.bin"), 2);
        f.ok(&["update", "data"]);
    }
    assert_eq!(f.status()["state"], "Synchronized");
    f.ok(&["verify", "data"]);
    assert_eq!(props(&dst).lines().nth(1), Some("unavailable"));

    // with the key loaded the replica holds the source's data; unloaded again, updates go on
    vm.sh(&format!("zfs load-key -L file://{key} {dst} && zfs mount {dst}"));
    assert_eq!(vm.tree_sum(&format!("/mnt/{src}")), vm.tree_sum(&format!("/mnt/{dst}")));
    vm.sh(&format!("zfs unmount {dst} && zfs unload-key {dst}"));
    tick();
    vm.write_random(&format!("/mnt/{src}/after.bin"), 1);
    f.ok(&["update", "data"]);

    // raw = false: the operator's choice of a plaintext replica
    let plain = format!("{}/rep/plain", p.dst);
    let g = Ferry::new(vm, &src, &plain, "keep = 2\nraw = false");
    g.ok(&["initialize", "plain"]);
    let pl: Vec<String> = props(&plain).lines().map(String::from).collect();
    assert_eq!(pl[0], "off", "raw = false still sent raw: {pl:?}");
    assert_eq!(
        vm.tree_sum(&format!("/mnt/{src}")),
        vm.tree_sum(&format!("/mnt/{plain}"))
    );
    eprintln!("raw: {:.1} s", t0.elapsed().as_secs_f64());
}
