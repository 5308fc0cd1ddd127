//! Every name ZFS accepts (spaces, colons, leading digits) works end to end: config, setup,
//! initialize, update, status, Nagios, metrics, purge's listing, DEST by path or last component,
//! over the loopback sshd with real zfs-fuse pools.

use crate::common;

use common::lab::Lab;
use common::zfs::{run, tree_checksum, write_random_file};

fn mountpoint(ds: &str) -> std::path::PathBuf {
    run(&format!("zfs get -H -o value mountpoint '{ds}'")).trim().into()
}

#[test]
fn names_with_spaces_colons_and_leading_digits_replicate_and_report() {
    let Some(lab) = Lab::new("nm", 256, 256, "") else {
        return;
    };
    let src = lab.src.create_dataset("my data:v1");
    let dst = lab.dst.ds("rep/9 lives");
    let kh = lab.sshd.known_hosts.clone();
    lab.write_config_for(&format!("store1:{src}"), &dst, "keep = 1", &kh, false);

    let check = lab.ok(&["check"]);
    assert!(check.stdout.contains("my data:v1"), "{}", check.stdout);
    write_random_file(&mountpoint(&src).join("a file.bin"), 2 << 20, 1);
    lab.ok(&["setup", &dst]);
    // DEST by its last component, with the space, as an operator types it in quotes
    lab.ok(&["initialize", "9 lives"]);
    write_random_file(&mountpoint(&src).join("b.bin"), 1 << 20, 2);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.ok(&["update", &dst]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.ok(&["update", &dst]);
    common::zfs::remount(&format!("'{dst}'"));
    assert_eq!(tree_checksum(&mountpoint(&src)), tree_checksum(&mountpoint(&dst)));

    let st = lab.status();
    assert_eq!(st["state"], "Synchronized", "{st}");
    assert_eq!(st["destination"], format!("local:{dst}"));

    // Nagios: the name in the text, the perfdata label quoted
    let n = lab.ferry(&["--nagios", "status", &dst]);
    assert_eq!(n.code, 0, "{}", n.stdout);
    assert!(
        n.stdout.starts_with("FERRY OK - ") && n.stdout.contains("9 lives"),
        "{}",
        n.stdout
    );
    assert!(n.stdout.contains("| 'lag'="), "{}", n.stdout);
    // metrics: label values quoted and escaped as the text format wants
    let m = lab.ok(&["metrics"]);
    assert!(
        m.stdout.contains(&format!("destination=\"local:{dst}\""))
            && m.stdout.contains(&format!("source=\"store1:{src}\"")),
        "{}",
        m.stdout
    );
    // purge's listing names the snapshots in full
    let p = lab.ok(&["purge", &dst]);
    assert!(
        p.stdout.contains("checkpoint") || p.stdout.contains("nothing to purge"),
        "{}",
        p.stdout
    );
    let snaps = run(&format!("zfs list -H -t snapshot -o name -r '{src}'"));
    assert!(
        snaps.lines().all(|l| l.starts_with(&format!("{src}@ferry."))),
        "{snaps}"
    );
    assert_eq!(snaps.lines().count(), 1, "keep = 1 on the source: {snaps}");
    // and purge --all removes the replica whose name has a space
    lab.ok(&["purge", "--all", "--yes", &dst]);
    let (ok, _, _) = common::zfs::try_run(&format!("zfs list -H '{dst}'"));
    assert!(!ok, "the replica is gone");
}
