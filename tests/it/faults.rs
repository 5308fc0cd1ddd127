//! Faults against real zfs-fuse pools and the loopback sshd: the link cut mid-transfer, SIGKILL of
//! ferry at many points of initialize and update, a source snapshot deleted by hand, a destination
//! changed by hand, and a stream of more than 2 GiB through one russh channel.

use crate::common;

use std::time::{Duration, Instant};

use common::lab::Lab;
use common::zfs::{dataset_exists, remount, run, snapshots, tree_checksum, write_random_file, zfs_get};

/// Waits until no `zfs receive` into the lab's destination runs (a killed ferry's receiver ends
/// when its input closes).
fn wait_receivers_gone(lab: &Lab) {
    let t = Instant::now();
    loop {
        let out = std::process::Command::new("pgrep")
            .arg("-f")
            .arg(format!("zfs receive.*{}", lab.dst_ds))
            .output()
            .unwrap();
        if out.stdout.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "a zfs receive outlived its ferry by 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for_transfer(lab: &Lab, bytes: u64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if let Some(p) = lab.progress() {
            if p["phase"] == "transfer" && p["bytes"].as_u64().unwrap_or(0) >= bytes {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no transfer progress: {:?}", lab.progress());
}

#[test]
fn link_cut_mid_transfer_fails_fast_and_the_next_update_succeeds() {
    let Some(lab) = Lab::new("cut", 384, 384, "bwlimit = \"20M\"") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 1 << 20, 1);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let (cp, sum) = (zfs_get(&lab.dst_ds, "ferry:lastsnap"), lab.dst_sum());
    write_random_file(&src.join("big.bin"), 120 << 20, 2);
    let job = lab.spawn(&["update", "data"]);
    wait_for_transfer(&lab, 10 << 20);
    let cut = Instant::now();
    assert!(lab.sshd.cut_connections() > 0, "no connection to cut");
    let out = job.wait_with_output().unwrap();
    let took = cut.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(45), "failing took {took:?}");
    assert!(stderr.starts_with("ferry: error: update data: "), "{stderr}");
    eprintln!("link cut after {took:?}: {stderr}");
    wait_receivers_gone(&lab);
    assert_eq!(
        zfs_get(&lab.dst_ds, "ferry:lastsnap"),
        cp,
        "the checkpoint must not move"
    );
    assert_eq!(lab.dst_sum(), sum, "the destination stays at its checkpoint");
    let st = lab.status();
    assert_eq!(
        (st["state"].as_str(), st["status"].as_str()),
        (Some("Synchronized"), Some("Idle")),
        "{st}"
    );
    // the link is back (sshd accepts again): the next update succeeds
    let t = Instant::now();
    loop {
        let r = lab.ferry(&["update", "data"]);
        if r.code == 0 {
            break;
        }
        // the killed sender may keep its snapshot busy for a moment on zfs-fuse
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "update after the cut: {}",
            r.stderr
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(tree_checksum(&src), lab.dst_sum());
}

#[test]
fn sigkill_anywhere_leaves_a_consistent_destination_that_recovers() {
    let Some(lab) = Lab::new("k9", 256, 256, "bwlimit = \"6M\"\nkeep = 2") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 2 << 20, 1);
    lab.ok(&["setup", "data"]);
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut delay = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Duration::from_millis(seed % 1600)
    };
    let recover = |lab: &Lab| {
        let r = lab.ferry(&["unlock", "data"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    };
    // initialize, killed at random points: the destination is absent, or a whole replica
    for i in 0..4 {
        let mut job = lab.spawn(&["initialize", "data"]);
        let d = delay();
        std::thread::sleep(d);
        let _ = job.kill();
        let _ = job.wait();
        wait_receivers_gone(&lab);
        recover(&lab);
        let st = lab.status();
        match st["state"].as_str().unwrap() {
            "Uninitialized" => assert!(!dataset_exists(&lab.dst_ds)),
            "Synchronized" => {
                assert_eq!(lab.dst_sum(), tree_checksum(&src), "kill {i} after {d:?}")
            }
            // received but not yet recorded: initialize finishes the recording
            "Inconsistent" => assert!(st["reason"].as_str().unwrap().contains("no ferry fingerprint"), "{st}"),
            other => panic!("kill {i} after {d:?}: state {other}: {st}"),
        }
        if st["state"] != "Synchronized" {
            lab.ok(&["initialize", "data"]);
        }
        assert_eq!(lab.dst_sum(), tree_checksum(&src), "kill {i} after {d:?}");
        if i < 3 {
            lab.ok(&["purge", "--all", "data", "--yes"]);
        }
    }
    // update, killed at random points: always at a checkpoint whose data is whole
    for i in 0..6 {
        let before = (zfs_get(&lab.dst_ds, "ferry:lastsnap"), lab.dst_sum());
        write_random_file(&src.join(format!("u{i}.bin")), 3 << 20, 10 + i);
        let now = tree_checksum(&src);
        let mut job = lab.spawn(&["update", "data"]);
        let d = delay();
        std::thread::sleep(d);
        let _ = job.kill();
        let _ = job.wait();
        wait_receivers_gone(&lab);
        let st = lab.status();
        assert_eq!(st["state"], "Synchronized", "kill {i} after {d:?}: {st}");
        let cp = zfs_get(&lab.dst_ds, "ferry:lastsnap");
        assert!(
            snapshots(&lab.dst_ds).iter().any(|s| s.ends_with(&format!("@{cp}"))),
            "lastsnap {cp} is on the destination"
        );
        let sum = lab.dst_sum();
        assert!(
            sum == before.1 || sum == now,
            "kill {i} after {d:?}: destination is neither the old checkpoint nor the new one"
        );
        recover(&lab);
        let t = Instant::now();
        loop {
            let r = lab.ferry(&["update", "data"]);
            if r.code == 0 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "kill {i}: update after unlock: {}",
                r.stderr
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        assert_eq!(lab.dst_sum(), now, "kill {i} after {d:?}");
    }
}

#[test]
fn snapshot_deleted_or_destination_changed_by_hand() {
    let Some(lab) = Lab::new("hand", 192, 192, "") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 1 << 20, 1);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);

    // the checkpoint snapshot deleted on the source: Inconsistent, update says what to do. (First:
    // the by-hand case below aborts a send, and zfs-fuse then keeps that send's snapshots busy
    // for minutes, which a destroy here would meet.)
    let cp = zfs_get(&lab.dst_ds, "ferry:lastsnap");
    for s in snapshots(&lab.src_ds).iter().filter(|s| s.contains("@ferry.")) {
        common::zfs::run_retry_busy(&format!("zfs destroy {s}"));
    }
    let st = lab.status();
    assert_eq!(st["state"], "Inconsistent");
    assert!(
        st["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("checkpoint {cp} is missing on the source")),
        "{st}"
    );
    let r = lab.ferry(&["update", "data"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("pair is Inconsistent") && r.stderr.contains("missing on the source"),
        "{}",
        r.stderr
    );
    assert_eq!(zfs_get(&lab.dst_ds, "ferry:lastsnap"), cp, "nothing touched");
    // starting over is the way out
    lab.ok(&["purge", "--all", "data", "--yes"]);
    lab.ok(&["initialize", "data"]);
    assert_eq!(tree_checksum(&src), lab.dst_sum());

    // the destination changed by hand: refused without --force, rolled back with it
    run(&format!("zfs set readonly=off {}", lab.dst_ds));
    remount(&lab.dst_ds);
    write_random_file(&lab.dst_mnt().join("local-change.bin"), 256 << 10, 9);
    run(&format!("zfs set readonly=on {}", lab.dst_ds));
    write_random_file(&src.join("b.bin"), 512 << 10, 2);
    let r = lab.ferry(&["update", "data"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("changed by hand") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert_eq!(lab.status()["state"], "Synchronized");
    lab.ok(&["update", "--force", "data"]);
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    assert!(!lab.dst_mnt().join("local-change.bin").exists());
}

#[test]
fn more_than_2_gib_through_one_russh_channel_arrive_byte_for_byte() {
    use md5::{Digest, Md5};
    use tokio::io::AsyncReadExt;
    let Some(sshd) = common::sshd::Sshd::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = ferry::ssh::Connection::open(sshd.host("store1")).await.unwrap();
        // 2.2 GiB of random bytes; the sender reports their md5 on stderr. russh re-keys every 1 GiB.
        const N: u64 = 2200 << 20;
        let mut p = conn
            .exec(&format!("bash -c 'head -c {N} /dev/urandom | tee >(md5sum >&2)'"))
            .await
            .unwrap();
        drop(p.stdin.take());
        let mut out = p.stdout.take().unwrap();
        let mut h = Md5::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut total: u64 = 0;
        loop {
            let n = out.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            total += n as u64;
        }
        let (code, stderr) = p.done.await.unwrap();
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(total, N);
        let sent = stderr.split_whitespace().next().unwrap_or("").to_string();
        assert_eq!(hex::encode(h.finalize()), sent, "md5 of what arrived vs what was sent");
    });
}

/// A namespace with sshd behind a veth: downing the host end cuts the link silently (no RST, no
/// FIN), as a failed router or cable would.
struct Remote {
    ns: String,
    host_if: String,
    sshd: common::sshd::Sshd,
}

impl Remote {
    fn start() -> Option<Remote> {
        let id = std::process::id() % 10000;
        let (ns, host_if, peer) = (format!("fcut{id}"), format!("fch{id}"), format!("fcn{id}"));
        let net = format!("10.{}.{}", 190 + id / 250 % 10, id % 250);
        let sh = |c: &str| {
            assert!(
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(c)
                    .status()
                    .unwrap()
                    .success(),
                "{c}"
            )
        };
        sh(&format!("ip netns add {ns}"));
        sh(&format!(
            "ip link add {host_if} type veth peer name {peer} && ip link set {peer} netns {ns}"
        ));
        sh(&format!(
            "ip addr add {net}.1/30 dev {host_if} && ip link set {host_if} up"
        ));
        sh(&format!(
            "ip netns exec {ns} ip addr add {net}.2/30 dev {peer} && ip netns exec {ns} ip link set {peer} up && ip netns exec {ns} ip link set lo up"
        ));
        let sshd = common::sshd::Sshd::start_at(Some(&ns), &format!("{net}.2"))?;
        Some(Remote { ns, host_if, sshd })
    }

    fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        let ok = std::process::Command::new("ip")
            .args(["link", "set", &self.host_if, state])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // sshd first (its Drop kills it), then the namespace and the veth
        let _ = std::process::Command::new("kill")
            .arg("-9")
            .arg(self.sshd.pid().to_string())
            .status();
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ip link del {} 2>/dev/null; ip netns del {}",
                self.host_if, self.ns
            ))
            .status();
    }
}

#[test]
fn silent_link_cut_is_detected_within_the_keepalive_bound() {
    let Some(remote) = Remote::start() else {
        return;
    };
    let Some(src_pool) = common::zfs::TestPool::create("silents", 384) else {
        return;
    };
    let Some(dst_pool) = common::zfs::TestPool::create("silentd", 384) else {
        return;
    };
    let src_ds = src_pool.create_dataset("data");
    let dst_ds = dst_pool.ds("rep/data");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ferry.toml");
    let s = &remote.sshd;
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[hosts.far]\naddress = \"{}\"\nport = {}\nuser = \"{}\"\nkey = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\n\
             [[pair]]\nsource = \"far:{src_ds}\"\ndestination = \"{dst_ds}\"\nbwlimit = \"20M\"\n",
            dir.path().join("state").display(),
            s.address,
            s.port,
            s.user,
            s.client_key.display(),
            s.known_hosts.display()
        ),
    )
    .unwrap();
    let ferry = |args: &[&str]| {
        common::runner::bare()
            .arg("-c")
            .arg(&cfg)
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .unwrap()
    };
    let src = common::zfs::mountpoint(&src_ds);
    write_random_file(&src.join("a.bin"), 1 << 20, 1);
    for a in [&["setup", "data"][..], &["initialize", "data"]] {
        let o = ferry(a);
        assert!(o.status.success(), "{a:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let cp = zfs_get(&dst_ds, "ferry:lastsnap");
    write_random_file(&src.join("big.bin"), 150 << 20, 2);
    let job = common::runner::bare()
        .arg("-c")
        .arg(&cfg)
        .args(["update", "data"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let progress = dir.path().join("state");
    let t = Instant::now();
    loop {
        // the pair's folder is the one with a progress file (the state dir also holds hosts/)
        let bytes = std::fs::read_dir(&progress)
            .ok()
            .and_then(|d| d.flatten().find(|e| e.path().join("progress.json").exists()))
            .and_then(|e| std::fs::read(e.path().join("progress.json")).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["bytes"].as_u64())
            .unwrap_or(0);
        if bytes > 10 << 20 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no transfer");
        std::thread::sleep(Duration::from_millis(50));
    }
    remote.link(false);
    let cut = Instant::now();
    let out = job.wait_with_output().unwrap();
    let took = cut.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("silent cut detected after {took:?}: {stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // keepalives every 10 s, 3 unanswered: the link is declared dead in well under a minute
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(
        stderr.starts_with("ferry: error: update data: ") && stderr.contains("far"),
        "{stderr}"
    );
    let wait_recv = Instant::now();
    while std::process::Command::new("pgrep")
        .arg("-f")
        .arg(format!("zfs receive.*{dst_ds}"))
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(wait_recv.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(zfs_get(&dst_ds, "ferry:lastsnap"), cp, "the checkpoint must not move");
    remote.link(true);
    let t = Instant::now();
    loop {
        let o = ferry(&["update", "data"]);
        if o.status.success() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "update after the link came back: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    remount(&dst_ds);
    assert_eq!(tree_checksum(&src), tree_checksum(&common::zfs::mountpoint(&dst_ds)));
}
