//! btrfs pairs through the driver seam, on real btrfs filesystems on loop devices: local, and
//! with the source behind the loopback sshd (plain account). Every run is the real `ferry` binary.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::btrfs::{ferry_entries, run, show, TestFs};
use common::sshd::Sshd;
use common::zfs::{tree_checksum, write_random_file};

struct Setup {
    /// Holds the config and state dir for as long as the test runs.
    _dir: tempfile::TempDir,
    config: PathBuf,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Setup {
    /// A config with one btrfs pair `source -> destination` (plus `extra` pair lines), the hosts
    /// of `sshd` as `store1` when given.
    fn new(source: &str, destination: &str, extra: &str, sshd: Option<&Sshd>) -> Setup {
        let dir = tempfile::Builder::new().prefix("ferry-btrfs-cfg-").tempdir().unwrap();
        let config = dir.path().join("ferry.toml");
        let mut text = format!("state_dir = \"{}\"\n\n", dir.path().join("state").display());
        if let Some(s) = sshd {
            text.push_str(&format!(
                "[hosts.store1]\naddress = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\nkey = \"{}\"\nknown_hosts = \"{}\"\n\n",
                s.port,
                s.user,
                s.client_key.display(),
                s.known_hosts.display()
            ));
        }
        text.push_str(&format!(
            "[[pair]]\nkind = \"btrfs\"\nsource = \"{source}\"\ndestination = \"{destination}\"\n{extra}\n"
        ));
        std::fs::write(&config, text).unwrap();
        Setup { _dir: dir, config }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = common::runner::bare();
        c.arg("-c").arg(&self.config).args(args);
        c.env_remove("FERRY_CONFIG").env_remove("SSH_AUTH_SOCK");
        c.stdin(Stdio::null());
        c
    }

    fn ferry(&self, args: &[&str]) -> Out {
        let o = self.command(args).output().unwrap();
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> Out {
        let r = self.ferry(args);
        assert_eq!(
            r.code, 0,
            "ferry {args:?} failed\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r
    }

    /// The pair's folder in the state dir (the only one: one pair per config here).
    fn pair_dir(&self) -> PathBuf {
        let state = self._dir.path().join("state");
        std::fs::read_dir(&state)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.join("log").exists())
            .expect("a pair folder with a log")
    }

    fn status(&self) -> serde_json::Value {
        let r = self.ferry(&["--json", "status"]);
        let v: serde_json::Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {} {}", r.stdout, r.stderr));
        v[0].clone()
    }
}

/// The newest `ferry.*` snapshot in a directory.
fn newest(dir: &Path) -> PathBuf {
    dir.join(ferry_entries(dir).last().expect("a ferry snapshot"))
}

/// The destination holds the source's newest snapshot, byte for byte, tied by received UUID.
fn assert_replica(snapdir: &Path, dest: &Path) {
    let (s, d) = (newest(snapdir), newest(dest));
    assert_eq!(s.file_name(), d.file_name(), "newest snapshots differ");
    let (suuid, _, sro) = show(&s);
    let (_, received, dro) = show(&d);
    assert!(sro && dro, "snapshots must be read-only");
    assert_eq!(
        received, suuid,
        "the replica's received UUID is the source snapshot's UUID"
    );
    let list = |p: &Path| run(&format!("cd {} && find . -printf '%p %m %s %y\\n' | sort", p.display()));
    assert_eq!(list(&s), list(&d), "replica tree differs from the source snapshot");
    assert_eq!(
        tree_checksum(&s),
        tree_checksum(&d),
        "replica content differs from the source snapshot"
    );
}

#[test]
fn local_pair_lifecycle_setup_initialize_update_retention_status_purge() {
    let Some(a) = TestFs::create(400) else { return };
    let Some(b) = TestFs::create(400) else { return };
    let src = a.subvolume("data");
    write_random_file(&a.path("data/one.bin"), 3 << 20, 1);
    write_random_file(&a.path("data/dir/two.bin"), 1 << 20, 2);
    let dest = b.path("replicas/data");
    let dest_s = dest.display().to_string();
    let lab = Setup::new(&src, &dest_s, "transport = \"local\"\nkeep = 2", None);

    let check = lab.ok(&["check"]);
    assert!(
        check.stdout.contains("btrfs") || check.stderr.is_empty(),
        "{}",
        check.stdout
    );
    let setup = lab.ok(&["setup", &dest_s]);
    assert!(
        setup.stdout.contains("filesystem"),
        "setup names the filesystem check: {}",
        setup.stdout
    );
    assert!(dest.is_dir(), "setup made the destination directory");
    assert_eq!(lab.status()["state"], "Uninitialized");

    lab.ok(&["initialize", &dest_s]);
    let snapdir = a.path(".ferry-snapshots");
    assert_replica(&snapdir, &dest);
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized", "{st}");
    assert_eq!(st["kind"], "btrfs", "{st}");
    let marks = std::fs::read_to_string(dest.join(".ferry-checkpoint")).unwrap();
    assert!(marks.contains(&format!("source=local:{src}")), "{marks}");

    // changes, deletions and a new file travel incrementally
    for round in 0..4u64 {
        write_random_file(&a.path(&format!("data/r{round}.bin")), 512 << 10, 10 + round);
        if round == 1 {
            std::fs::remove_file(a.path("data/one.bin")).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(1100));
        lab.ok(&["update", &dest_s]);
        assert_replica(&snapdir, &dest);
    }
    // an update with nothing to send still moves the checkpoint to a new snapshot
    let before = ferry_entries(&dest);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.ok(&["update", &dest_s]);
    assert_replica(&snapdir, &dest);
    assert_ne!(
        ferry_entries(&dest).last(),
        before.last(),
        "a no-op update moves the checkpoint"
    );
    // keep = 2 on each side, the newest being the checkpoint
    assert_eq!(ferry_entries(&snapdir).len(), 2, "{:?}", ferry_entries(&snapdir));
    assert_eq!(ferry_entries(&dest).len(), 2, "{:?}", ferry_entries(&dest));
    let marks = std::fs::read_to_string(dest.join(".ferry-checkpoint")).unwrap();
    let newest_name = ferry_entries(&dest).last().unwrap().clone();
    assert!(marks.contains(&format!("lastsnap={newest_name}")), "{marks}");
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized");
    assert_eq!(st["checkpoint"], newest_name.as_str(), "{st}");

    // the replica made writable and changed by hand: update refuses and keeps the change;
    // --force deletes it and replicates (as zfs receive -F rolls back)
    let replica = newest(&dest);
    run(&format!("btrfs property set -f -ts {} ro false", replica.display()));
    std::fs::write(replica.join("by-hand.txt"), "operator's edit").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let v = lab.ferry(&["verify", &dest_s]);
    assert_eq!(v.code, 1, "verify sees the edited replica: {}", v.stdout);
    assert!(v.stdout.contains("not intact"), "{}", v.stdout);
    let r = lab.ferry(&["update", &dest_s]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("changed by hand") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert!(replica.join("by-hand.txt").exists(), "a refused update touches nothing");
    lab.ok(&["update", "--force", &dest_s]);
    assert!(!replica.exists(), "--force deleted the changed replica");
    let v = lab.ok(&["verify", &dest_s]);
    assert!(v.stdout.contains("holds its checkpoint"), "{}", v.stdout);
    assert_replica(&snapdir, &dest);
    assert!(!dest.join(".ferry-receiving").exists());

    // a snapshot made by hand under the checkpoint's name is not the checkpoint
    let newest_name = ferry_entries(&dest).last().unwrap().clone();
    let cp = dest.join(&newest_name);
    run(&format!("btrfs subvolume delete {} >/dev/null", cp.display()));
    // a real received snapshot of something else, renamed to the checkpoint's name
    let other = a.subvolume("other");
    run(&format!("btrfs subvolume snapshot -r {other} {other}.ro >/dev/null"));
    run(&format!(
        "btrfs send -q {other}.ro | btrfs receive -q {}",
        dest.display()
    ));
    run(&format!("mv {}/other.ro {}", dest.display(), cp.display()));
    // (after the forced update the two sides share only that snapshot: source [B, C], replica [A, C])
    let st = lab.status();
    assert_eq!(st["state"], "Inconsistent", "{st}");
    let reason = st["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("was not received from the source's") && reason.contains("ids differ"),
        "{st}"
    );
    run(&format!("btrfs subvolume delete {} >/dev/null", cp.display()));

    // purge --all: the replica directory and the source's snapshots go, the source stays
    let plan = lab.ok(&["purge", "--all", &dest_s]);
    assert!(dest.exists(), "without --yes nothing goes: {}", plan.stdout);
    let first = ferry_entries(&snapdir)[0].clone();
    assert!(
        plan.stdout.contains(&format!("local:{}/{first}", snapdir.display())),
        "the listing names the source's snapshots where they are: {}",
        plan.stdout
    );
    lab.ok(&["purge", "--all", "--yes", &dest_s]);
    assert!(!dest.exists(), "purge --all removed the destination");
    // purge ran as a job: its result and final progress say so, its lock is gone
    let last: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.pair_dir().join("last.json")).unwrap()).unwrap();
    assert_eq!(last["action"], "purge --all", "{last}");
    assert_eq!(last["ok"], true, "{last}");
    let progress: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.pair_dir().join("progress.json")).unwrap()).unwrap();
    assert_eq!(progress["action"], "purge --all");
    assert_eq!(progress["phase"], "done");
    assert!(!lab.pair_dir().join("lock").exists());
    assert!(
        !lab.pair_dir().join("success.json").exists(),
        "a purge is no replication success"
    );
    assert!(ferry_entries(&snapdir).is_empty(), "{:?}", ferry_entries(&snapdir));
    assert!(a.path("data/dir/two.bin").exists());
    assert_eq!(lab.status()["state"], "Uninitialized");
    // and the pair starts again
    lab.ok(&["initialize", &dest_s]);
    assert_replica(&snapdir, &dest);
}

#[test]
fn remote_source_over_ssh_initialize_update_and_foreign_destination_refused() {
    let Some(a) = TestFs::create(400) else { return };
    let Some(b) = TestFs::create(400) else { return };
    let Some(sshd) = Sshd::start() else { return };
    let src = a.subvolume("vol");
    write_random_file(&a.path("vol/big.bin"), 8 << 20, 3);
    let dest = b.path("dr/vol");
    let dest_s = dest.display().to_string();
    let lab = Setup::new(&format!("store1:{src}"), &dest_s, "", Some(&sshd));
    lab.ok(&["setup", &dest_s]);
    lab.ok(&["initialize", &dest_s]);
    let snapdir = a.path(".ferry-snapshots");
    assert_replica(&snapdir, &dest);
    write_random_file(&a.path("vol/more.bin"), 2 << 20, 4);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = lab.ok(&["-v", "update", &dest_s]);
    assert_replica(&snapdir, &dest);
    assert!(r.stdout.contains("update") || r.stderr.is_empty(), "{}", r.stdout);
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized", "{st}");
    assert!(st["lag_secs"].as_i64().unwrap() < 60, "{st}");

    // a destination directory holding something else is not initialized over
    let other = b.path("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let lab2 = Setup::new(&format!("store1:{src}"), &other.display().to_string(), "", Some(&sshd));
    let r = lab2.ferry(&["initialize", &other.display().to_string()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not this pair's replica"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(other.join("keep.txt")).unwrap(), "mine");
}

#[test]
fn config_rules_for_btrfs_pairs() {
    let cases = [
        ("source = \"data\"", "source", "absolute"),
        ("source = \"/srv/a$b\"", "source", "contains"),
        (
            "source = \"/srv/x\"\nsnapshot_dir = \"rel\"",
            "snapshot_dir",
            "absolute",
        ),
        ("source = \"/srv/x\"\nadopt = \"zettabee\"", "adopt", "kind is btrfs"),
    ];
    for (lines, key, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ferry.toml");
        std::fs::write(
            &config,
            format!("[[pair]]\nkind = \"btrfs\"\n{lines}\ndestination = \"/backup/x\"\n"),
        )
        .unwrap();
        let o = common::runner::bare()
            .arg("-c")
            .arg(&config)
            .arg("check")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(0), "{lines}");
        assert!(err.contains(key) && err.contains(words), "{lines}: {err}");
        assert!(err.contains("ferry.toml:"), "names the file and line: {err}");
    }
    // snapshot_dir on a ZFS pair is refused, not ignored
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        "[[pair]]\nsource = \"tank/a\"\ndestination = \"backup/a\"\nsnapshot_dir = \"/x\"\n",
    )
    .unwrap();
    let o = common::runner::bare()
        .arg("-c")
        .arg(&config)
        .arg("check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("snapshot_dir applies to btrfs"), "{err}");
}

/// Pids of `btrfs send|receive` processes working on paths under `root`.
fn btrfs_workers(root: &Path) -> Vec<String> {
    let out = run(&format!(
        "for p in /proc/[0-9]*; do c=$(cat $p/cmdline 2>/dev/null | tr '\\0' ' '); case \"$c\" in 'btrfs send'*{r}*|'btrfs receive'*{r}*) echo \"${{p#/proc/}} $c\";; esac; done; true",
        r = root.display()
    ));
    out.lines().map(String::from).collect()
}

/// SIGKILL of `ferry update` at a different moment in each trial (snapshot, mid-stream, marking,
/// retention): afterwards no btrfs worker is left, the destination's checkpoint is a complete
/// read-only snapshot, status never calls a half-received snapshot the checkpoint, and after
/// `unlock` the next update succeeds, cleans the interrupted receive and leaves at most `keep`
/// snapshots on each side. Trials: FERRY_BTRFS_KILLS (default 30).
#[test]
fn sigkill_during_update_leaves_a_consistent_replica_and_nothing_behind() {
    let Some(a) = TestFs::create(1200) else { return };
    let Some(b) = TestFs::create(1200) else { return };
    let src = a.subvolume("data");
    write_random_file(&a.path("data/base.bin"), 16 << 20, 7);
    let dest = b.path("rep/data");
    let dest_s = dest.display().to_string();
    let lab = Setup::new(&src, &dest_s, "transport = \"local\"\nkeep = 2", None);
    lab.ok(&["setup", &dest_s]);
    lab.ok(&["initialize", &dest_s]);
    let snapdir = a.path(".ferry-snapshots");
    let trials: u64 = std::env::var("FERRY_BTRFS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // how long a good update of this size takes here (the fastest of three): the kills are
    // spread over it, so most land inside a run however fast this machine is
    let mut span = u64::MAX;
    for round in 0..3 {
        write_random_file(&a.path("data/c0.bin"), 48 << 20, 90 + round);
        std::thread::sleep(std::time::Duration::from_millis(1050));
        let t = std::time::Instant::now();
        lab.ok(&["update", &dest_s]);
        span = span.min(t.elapsed().as_millis() as u64);
    }
    let span = span.max(100);
    let (mut partials, mut killed_mid) = (0, 0);
    for i in 0..trials {
        write_random_file(&a.path(&format!("data/c{}.bin", i % 3)), 48 << 20, 100 + i);
        std::thread::sleep(std::time::Duration::from_millis(1050));
        let mut child = lab.command(&["update", &dest_s]).spawn().unwrap();
        // spread the kills over the run (snapshot, stream, finishing): 0..90 % of a good run
        let delay = (i * 37) % (span * 9 / 10);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if !finished {
            killed_mid += 1;
        }
        // the workers end with their pipes: none may stay behind
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !btrfs_workers(&b.mnt).is_empty() || !btrfs_workers(&a.mnt).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "trial {i}: btrfs workers left: {:?} {:?}",
                btrfs_workers(&a.mnt),
                btrfs_workers(&b.mnt)
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let st = lab.status();
        if let Some(cp) = st["checkpoint"].as_str() {
            let (_, received, ro) = show(&dest.join(cp));
            assert!(
                ro && received != "-",
                "trial {i}: checkpoint {cp} is not a complete receive: {st}"
            );
        } else {
            panic!("trial {i}: no checkpoint after a kill: {st}");
        }
        partials += ferry_entries(&dest)
            .iter()
            .filter(|n| show(&dest.join(n)).1 == "-")
            .count();
        // a job that died leaves its lock: the operator decides (DESIGN)
        if !finished {
            let r = lab.ferry(&["unlock", &dest_s]);
            if r.stdout.starts_with("unlocked") {
                let log = std::fs::read_to_string(lab.pair_dir().join("log")).unwrap();
                assert!(
                    log.lines()
                        .last()
                        .unwrap()
                        .contains("unlock: removed the lock of `update`"),
                    "trial {i}: unlock is in the pair's log"
                );
            }
        }
        lab.ok(&["update", &dest_s]);
        assert_replica(&snapdir, &dest);
        for n in ferry_entries(&dest) {
            let (_, received, ro) = show(&dest.join(&n));
            assert!(
                ro && received != "-",
                "trial {i}: {n} left incomplete after a good update"
            );
        }
        assert!(ferry_entries(&dest).len() <= 2, "trial {i}: {:?}", ferry_entries(&dest));
        assert!(
            ferry_entries(&snapdir).len() <= 2,
            "trial {i}: {:?}",
            ferry_entries(&snapdir)
        );
        assert!(!dest.join(".ferry-checkpoint.tmp").exists());
        assert!(
            !dest.join(".ferry-receiving").exists(),
            "trial {i}: the receive note outlived a good receive"
        );
    }
    eprintln!("{trials} trials over {span} ms runs, {killed_mid} killed before the end, {partials} interrupted receives seen and cleaned");
    assert!(killed_mid >= trials / 2, "most kills must land inside the run");
}

/// setup measures the source and the destination's free space: a source that cannot fit fails
/// the checklist (exit 1) before an initialize would fill the destination.
#[test]
fn setup_refuses_a_destination_too_small_for_the_source() {
    let Some(a) = TestFs::create(600) else { return };
    let Some(b) = TestFs::create(300) else { return };
    let src = a.subvolume("big");
    let dest = b.path("rep/big");
    let dest_s = dest.display().to_string();
    let lab = Setup::new(&src, &dest_s, "transport = \"local\"", None);
    write_random_file(&a.path("big/small.bin"), 8 << 20, 5);
    let ok = lab.ok(&["setup", &dest_s]);
    assert!(
        ok.stdout.contains("destination space: ") && ok.stdout.contains("for a source of 8.0 MiB"),
        "{}",
        ok.stdout
    );
    write_random_file(&a.path("big/large.bin"), 400 << 20, 6);
    let r = lab.ferry(&["setup", &dest_s]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("[FAIL] destination space") && r.stdout.contains("would not fit"),
        "{}",
        r.stdout
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// btrfs streams go through every transport: mbuffer (with zstd) from the remote source, ssh
/// with zstd and a bandwidth limit; each replica checked against its source snapshot.
#[test]
fn btrfs_over_mbuffer_and_compressed_limited_ssh() {
    let Some(a) = TestFs::create(400) else { return };
    let Some(b) = TestFs::create(400) else { return };
    let Some(sshd) = Sshd::start() else { return };
    let port = free_port();
    for (name, extra) in [
        (
            "mb",
            format!("transport = \"mbuffer\"\nport = {port}\nmbuffer_address = \"127.0.0.1\"\ncompress = \"zstd\""),
        ),
        ("zs", "compress = \"zstd\"\nbwlimit = \"4M\"".to_string()),
    ] {
        let src = a.subvolume(name);
        write_random_file(&a.path(&format!("{name}/seed.bin")), 2 << 20, 20);
        let dest = b.path(&format!("rep/{name}"));
        let dest_s = dest.display().to_string();
        // each pair its own snapshot directory: the newest snapshot there is this pair's
        let snapdir = a.path(&format!("snaps-{name}"));
        let extra = format!("{extra}\nsnapshot_dir = \"{}\"", snapdir.display());
        let lab = Setup::new(&format!("store1:{src}"), &dest_s, &extra, Some(&sshd));
        lab.ok(&["setup", &dest_s]);
        lab.ok(&["initialize", &dest_s]);
        assert_replica(&snapdir, &dest);
        write_random_file(&a.path(&format!("{name}/more.bin")), 8 << 20, 21);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let t = std::time::Instant::now();
        lab.ok(&["update", &dest_s]);
        let took = t.elapsed();
        assert_replica(&snapdir, &dest);
        let log = std::fs::read_to_string(lab.pair_dir().join("log")).unwrap();
        assert!(log.contains("zstd"), "{name}: the stream was compressed");
        if name == "mb" {
            assert!(log.contains("mbuffer"), "{name}: the stream went through mbuffer");
        } else {
            // 8 MiB of incompressible data at 4 MiB/s cannot take less than about 2 s
            assert!(took.as_secs_f64() >= 1.5, "bwlimit 4M moved 8 MiB in {took:?}");
        }
        assert_eq!(lab.status()["state"], "Synchronized");
    }
}

/// A member of a tree: its replica's newest snapshot is the source snapshot of the same name in
/// the shared snapshot directory, received from it and equal to it.
fn assert_member(snapdir: &Path, dest: &Path) {
    let d = newest(dest);
    let s = snapdir.join(d.file_name().unwrap());
    let (suuid, _, _) = show(&s);
    let (_, received, ro) = show(&d);
    assert!(ro && received == suuid, "{} came from {}", d.display(), s.display());
    // a nested member shows in its parent's snapshot as an empty placeholder directory (inode 2),
    // which btrfs send does not carry: the member's own replica holds that data
    let listing = |p: &Path| {
        run(&format!(
            "cd {} && find . -mindepth 1 \\( -type d -inum 2 -prune \\) -o -printf '%P %y %m %s\\n' | sort && \
             find . -mindepth 1 \\( -type d -inum 2 -prune \\) -o -type f -print | sort | xargs -r -d '\\n' md5sum",
            p.display()
        ))
    };
    assert_eq!(listing(&s), listing(&d), "{}", d.display());
}

/// `recursive = true` on btrfs: nested subvolumes are members with their own checkpoints, their
/// snapshots in the root's snapshot directory; a nested subvolume made later joins on the next
/// update.
#[test]
fn nested_subvolumes_replicate_as_one_recursive_pair() {
    let Some(a) = TestFs::create(400) else { return };
    let Some(b) = TestFs::create(400) else { return };
    let src = a.subvolume("data");
    a.subvolume("data/a");
    a.subvolume("data/a/b");
    for (rel, seed) in [("data/top.bin", 1), ("data/a/a.bin", 2), ("data/a/b/b.bin", 3)] {
        write_random_file(&a.path(rel), 1 << 20, seed);
    }
    let dest = b.path("rep/data");
    let dest_s = dest.display().to_string();
    let lab = Setup::new(&src, &dest_s, "transport = \"local\"\nrecursive = true", None);
    lab.ok(&["setup", &dest_s]);
    lab.ok(&["initialize", &dest_s]);
    let snapdir = a.path(".ferry-snapshots");
    for rel in ["", "/a", "/a/b"] {
        assert_member(&snapdir, &PathBuf::from(format!("{dest_s}{rel}")));
    }
    let st = lab.status();
    assert_eq!(st["state"], "Synchronized", "{st}");
    assert_eq!(st["children"].as_array().unwrap().len(), 2, "{st}");

    a.subvolume("data/c");
    write_random_file(&a.path("data/c/c.bin"), 1 << 20, 4);
    write_random_file(&a.path("data/a/more.bin"), 1 << 20, 5);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.ok(&["update", &dest_s]);
    for rel in ["", "/a", "/a/b", "/c"] {
        assert_member(&snapdir, &PathBuf::from(format!("{dest_s}{rel}")));
    }
    assert_eq!(lab.status()["children"].as_array().unwrap().len(), 3);
}
