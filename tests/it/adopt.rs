//! `adopt = "zettabee"`: ferry takes over replicas zettabee made, without a full resend, on real
//! zfs-fuse pools, with the source local and behind the loopback sshd.
//!
//! The replicas are made here with the commands zettabee ran: `zfs snapshot`, `zfs send [-i]`
//! into `zfs receive`, `zfs set zettabee:...` on both sides, and the older snapshot destroyed on
//! both sides after an update. zettabee received with `-o readonly=on -o zettabee:...`; pool v23
//! has no `receive -o`, so those properties are set right after the receive instead.

use crate::common;

use common::lab::Lab;
use common::zfs::{run, run_retry_busy, snapshots, tree_checksum, write_random_file, zfs_get};

/// zettabee's two generations of on-disk names.
#[derive(Clone, Copy)]
enum Generation {
    /// `zettabee.<ts><zone>`, `zettabee:lastsnap`, `zettabee:sourcefs` / `destinfs`.
    First,
    /// `zettabee.<fp>.<ts><zone>`, `zettabee:<fp>:lastsnap`, `zettabee:fingerprint` = fp.
    Fingerprinted,
}

/// zettabee's replica of `src` in `dst`, as zettabee's initialize and one update leave it.
struct Zettabee<'a> {
    src: &'a str,
    dst: &'a str,
    generation: Generation,
    /// zettabee's fingerprint: MD5 of "shost:sfs::dhost:dfs" with zettabee's host names.
    fp: String,
}

impl Zettabee<'_> {
    fn snap(&self, ts: &str) -> String {
        match self.generation {
            Generation::First => format!("zettabee.{ts}"),
            Generation::Fingerprinted => format!("zettabee.{}.{ts}", self.fp),
        }
    }

    fn lastsnap_prop(&self) -> String {
        match self.generation {
            Generation::First => "zettabee:lastsnap".into(),
            Generation::Fingerprinted => format!("zettabee:{}:lastsnap", self.fp),
        }
    }

    fn initialize(&self, ts: &str) -> String {
        let (src, dst) = (self.src, self.dst);
        let snap = self.snap(ts);
        run(&format!("zfs snapshot {src}@{snap}"));
        run(&format!("zfs send {src}@{snap} | zfs receive {dst}"));
        run(&format!("zfs set readonly=on {dst}"));
        match self.generation {
            Generation::First => {
                run(&format!("zfs set zettabee:sourcefs=store1.example.com:{src} {dst}"));
                run(&format!("zfs set zettabee:destinfs=backup1.example.com:{dst} {dst}"));
            }
            Generation::Fingerprinted => {
                let fp = &self.fp;
                run(&format!("zfs set zettabee:{fp}:source=store1.example.com:{src} {src}"));
                run(&format!("zfs set zettabee:{fp}:source=store1.example.com:{src} {dst}"));
                run(&format!(
                    "zfs set zettabee:{fp}:destination=backup1.example.com:{dst} {dst}"
                ));
                run(&format!("zfs set zettabee:fingerprint={fp} {dst}"));
            }
        }
        self.mark(&snap);
        snap
    }

    fn update(&self, last: &str, ts: &str) -> String {
        let (src, dst) = (self.src, self.dst);
        let snap = self.snap(ts);
        run(&format!("zfs snapshot {src}@{snap}"));
        run(&format!("zfs send -i {last} {src}@{snap} | zfs receive {dst}"));
        self.mark(&snap);
        run_retry_busy(&format!("zfs destroy {src}@{last}"));
        run_retry_busy(&format!("zfs destroy {dst}@{last}"));
        snap
    }

    fn mark(&self, snap: &str) {
        let prop = self.lastsnap_prop();
        run(&format!("zfs set {prop}={snap} {}", self.dst));
        run(&format!("zfs set {prop}={snap} {}", self.src));
    }
}

fn md5(text: &str) -> String {
    run(&format!("printf '%s' '{text}' | md5sum | cut -d' ' -f1"))
        .trim()
        .to_string()
}

fn last_bytes(lab: &Lab, fp: &str) -> u64 {
    let p = lab.state_dir().join(fp).join("last.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    v["bytes"].as_u64().unwrap()
}

fn has(ds: &str, snap: &str) -> bool {
    snapshots(ds).iter().any(|s| s.ends_with(&format!("@{snap}")))
}

/// zettabee's replica, then ferry: refused without `adopt`, adopted incrementally with it, then
/// ferry's own names; zettabee's snapshots stay on both sides throughout.
fn adopt_round(lab: &Lab, source: &str, generation: Generation) {
    let src = lab.src_mnt();
    write_random_file(&src.join("big.bin"), 24 << 20, 1);
    std::fs::create_dir_all(src.join("etc")).unwrap();
    write_random_file(&src.join("etc/conf"), 4 << 10, 2);
    run(&format!("zfs create -p {}", lab.dst_ds.rsplit_once('/').unwrap().0));
    let z = Zettabee {
        src: &lab.src_ds,
        dst: &lab.dst_ds,
        generation,
        fp: md5(&format!(
            "store1.example.com:{}::backup1.example.com:{}",
            lab.src_ds, lab.dst_ds
        )),
    };
    let first = z.initialize("20261121230000UTC");
    write_random_file(&src.join("etc/conf"), 8 << 10, 3);
    let last = z.update(&first, "20261122000000UTC");
    assert_eq!(tree_checksum(&src), lab.dst_sum(), "zettabee's replica is a replica");
    assert!(!has(&lab.src_ds, &first) && has(&lab.src_ds, &last));

    // new data since zettabee's last run
    write_random_file(&src.join("new.bin"), 1 << 20, 4);
    let kh = lab.sshd.known_hosts.clone();

    // without adopt: refused, with the way out named, and nothing changed
    lab.write_config_for(source, &lab.dst_ds, "keep = 1", &kh, false);
    let r = lab.ferry(&["update", "data"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("it is a zettabee replica: add `adopt = \"zettabee\"`"),
        "{}",
        r.stderr
    );
    assert_eq!(zfs_get(&lab.dst_ds, "ferry:fingerprint"), "-");

    let endpoint = if source.contains(':') {
        source.to_string()
    } else {
        format!("local:{source}")
    };
    let fp = md5(&format!("{endpoint}::local:{}", lab.dst_ds));

    // with adopt: initialize points at update, which sends incrementally from zettabee's last snapshot
    lab.write_config_for(source, &lab.dst_ds, "keep = 1\nadopt = \"zettabee\"", &kh, false);
    let r = lab.ferry(&["initialize", "data"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // a command to paste: this config (not where ferry looks by default), this pair
    let cmd = format!("run `ferry -c {} update {}`", lab.config.display(), lab.dst_ds);
    assert!(r.stderr.contains(&cmd), "{}", r.stderr);
    assert_eq!(zfs_get(&lab.dst_ds, "ferry:fingerprint"), "-");
    lab.ok(&["update", "data"]);
    let bytes = last_bytes(lab, &fp);
    let total = common::zfs::zfs_get_p(&lab.src_ds, "referenced");
    eprintln!("adoption sent {bytes} bytes of a dataset referencing {total} bytes");
    assert!(
        (1 << 20..4 << 20).contains(&bytes),
        "an incremental of the 1 MiB written, not the 25 MiB dataset: {bytes} bytes"
    );
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    assert_eq!(zfs_get(&lab.dst_ds, "ferry:fingerprint"), fp);
    assert_eq!(zfs_get(&lab.dst_ds, "ferry:source"), endpoint);
    let adopted = zfs_get(&lab.dst_ds, "ferry:lastsnap");
    assert!(adopted.starts_with(&format!("ferry.{fp}.")), "{adopted}");
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized", "{st}");
    assert_eq!(st["checkpoint"], adopted.as_str());
    let log = std::fs::read_to_string(lab.ok(&["logfile", "data"]).stdout.trim()).unwrap();
    assert!(log.contains(&format!("zfs send -I {}@{last} ", lab.src_ds)), "{log}");

    // from now on ferry's own names: the next updates send from ferry's checkpoint
    for (i, seed) in [5u64, 6, 7].iter().enumerate() {
        write_random_file(&src.join(format!("more{i}.bin")), 512 << 10, *seed);
        lab.ok(&["update", "data"]);
        assert!(last_bytes(lab, &fp) < 2 << 20, "{}", last_bytes(lab, &fp));
        assert_eq!(tree_checksum(&src), lab.dst_sum());
    }
    let log = std::fs::read_to_string(lab.ok(&["logfile", "data"]).stdout.trim()).unwrap();
    assert!(log.contains(&format!("zfs send -I {}@{adopted} ", lab.src_ds)), "{log}");
    assert_ne!(zfs_get(&lab.dst_ds, "ferry:lastsnap"), adopted);
    assert_eq!(lab.status()["state"], "Synchronized");
    // retention (keep = 1) pruned ferry's older snapshots, never zettabee's
    assert!(
        has(&lab.src_ds, &last) && has(&lab.dst_ds, &last),
        "{:?}",
        snapshots(&lab.src_ds)
    );
    let ours: Vec<String> = snapshots(&lab.src_ds)
        .into_iter()
        .filter(|s| s.contains("@ferry."))
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
}

#[test]
fn adopts_a_zettabee_replica_of_a_remote_source() {
    let Some(lab) = Lab::new("adr", 256, 256, "") else {
        return;
    };
    adopt_round(&lab, &format!("store1:{}", lab.src_ds), Generation::First);
}

#[test]
fn adopts_a_fingerprinted_zettabee_replica_of_a_local_source() {
    let Some(lab) = Lab::new("adl", 256, 256, "") else {
        return;
    };
    adopt_round(&lab, &lab.src_ds.clone(), Generation::Fingerprinted);
}

/// Adoption refuses, changing nothing, unless zettabee's last snapshot is on both sides with one guid.
#[test]
fn adoption_is_refused_unless_both_sides_hold_zettabees_last_snapshot() {
    let Some(lab) = Lab::new("adx", 128, 128, "") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 1 << 20, 11);
    run(&format!("zfs create -p {}", lab.dst_ds.rsplit_once('/').unwrap().0));
    let source = lab.src_ds.clone();
    lab.write_config_for(
        &source,
        &lab.dst_ds,
        "adopt = \"zettabee\"",
        &lab.sshd.known_hosts.clone(),
        false,
    );
    let z = Zettabee {
        src: &lab.src_ds,
        dst: &lab.dst_ds,
        generation: Generation::First,
        fp: String::new(),
    };
    // a fresh zettabee replica, then `spoil` breaks it; each case must be refused with `why`
    type Spoil = fn(&Zettabee, &str);
    let cases: [(&str, Spoil, &str); 4] = [
        (
            "a snapshot of that name made again on the source",
            |z, last| {
                run_retry_busy(&format!("zfs destroy {}@{last}", z.src));
                run(&format!("zfs snapshot {}@{last}", z.src));
            },
            "differs between the sides (guid",
        ),
        (
            "the snapshot destroyed on the source",
            |z, last| {
                run_retry_busy(&format!("zfs destroy {}@{last}", z.src));
            },
            "is on the destination but not on the source",
        ),
        (
            "lastsnap naming a snapshot the destination lacks",
            |z, _| {
                run(&format!(
                    "zfs set zettabee:lastsnap=zettabee.20990101000000UTC {}",
                    z.dst
                ));
            },
            "zettabee.20990101000000UTC (its lastsnap property) is not on the destination",
        ),
        (
            "no zettabee marks at all",
            |z, _| {
                run(&format!("zfs inherit zettabee:lastsnap {}", z.dst));
            },
            "has no zettabee:lastsnap property, so it is not a zettabee replica",
        ),
    ];
    for (i, (what, spoil, why)) in cases.iter().enumerate() {
        if common::zfs::dataset_exists(&lab.dst_ds) {
            run_retry_busy(&format!("zfs destroy -r {}", lab.dst_ds));
        }
        for s in snapshots(&lab.src_ds) {
            run_retry_busy(&format!("zfs destroy {s}"));
        }
        let last = z.initialize(&format!("2026112200000{i}UTC"));
        spoil(&z, &last);
        let r = lab.ferry(&["update", "data"]);
        assert_eq!(r.code, 1, "{what}: {}", r.stderr);
        assert!(
            r.stderr.contains("cannot adopt zettabee's replica") && r.stderr.contains(why),
            "{what}: {}",
            r.stderr
        );
        assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
        // nothing changed: no ferry marks, no ferry snapshot on either side
        assert_eq!(zfs_get(&lab.dst_ds, "ferry:fingerprint"), "-", "{what}");
        for ds in [&lab.src_ds, &lab.dst_ds] {
            assert!(
                !snapshots(ds).iter().any(|s| s.contains("@ferry.")),
                "{what}: {:?}",
                snapshots(ds)
            );
        }
    }
}

/// `initialize --force` over a copy made by hand (`zfs send | zfs receive`): ferry proves it by a
/// snapshot guid both sides hold, sends only what changed since, and marks it as its replica; a
/// destination that is no copy of the source is refused and left as it was.
#[test]
fn initialize_force_takes_over_a_copy_made_by_hand() {
    let Some(lab) = Lab::new("cpy", 256, 256, "") else {
        return;
    };
    let src_mnt = common::zfs::mountpoint(&lab.src_ds);
    write_random_file(&src_mnt.join("base.bin"), 12 << 20, 31);
    run(&format!("zfs snapshot {}@manual1", lab.src_ds));
    let parent = lab.dst_ds.rsplit_once('/').unwrap().0.to_string();
    run(&format!("zfs create -p {parent}"));
    run(&format!("zfs send {}@manual1 | zfs receive {}", lab.src_ds, lab.dst_ds));
    write_random_file(&src_mnt.join("later.bin"), 1 << 20, 32);

    let r = lab.ferry(&["initialize", "data"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("choose another destination") && r.stderr.contains("initialize --force"),
        "{}",
        r.stderr
    );
    assert_eq!(
        zfs_get(&lab.dst_ds, "ferry:fingerprint"),
        "-",
        "a refusal changes nothing"
    );

    lab.ok(&["initialize", "--force", "data"]);
    let bytes = last_bytes(&lab, &lab.fingerprint());
    assert!(bytes < 4 << 20, "only the change since manual1 was sent: {bytes} bytes");
    assert_eq!(zfs_get(&lab.dst_ds, "ferry:fingerprint"), lab.fingerprint());
    assert_eq!(lab.status()["state"], "Synchronized");
    assert_eq!(tree_checksum(&src_mnt), lab.dst_sum());
    let log = std::fs::read_to_string(lab.state_dir().join(lab.fingerprint()).join("log")).unwrap();
    assert!(log.contains("is a copy of") && log.contains("manual1"), "{log}");

    // a destination that is no copy of this source: refused, untouched
    let other = format!("{parent}/other");
    run(&format!("zfs create {other}"));
    run(&format!("zfs snapshot {other}@mine"));
    let kh = lab.sshd.known_hosts.clone();
    lab.write_config_for(&format!("store1:{}", lab.src_ds), &other, "", &kh, false);
    let r = lab.ferry(&["initialize", "--force", &other]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no guid in common") && r.stderr.contains("not a copy"),
        "{}",
        r.stderr
    );
    assert_eq!(zfs_get(&other, "ferry:fingerprint"), "-");
    assert_eq!(common::zfs::snapshots(&other), vec![format!("{other}@mine")]);
}
