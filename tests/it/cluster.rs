//! Object clusters end to end: two real S3 servers (s3s-fs) on loopback as two sites of one
//! namespace, `ferry cluster run` working it, rclone writing on both sides and checking.

use crate::common;
use crate::object_util;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use object_util::lab::ObjectLab;
use object_util::{bytes, require_s3s_fs};

const A: &str = "a:photos/shared/";
const B: &str = "b:photos-dr/shared/";

/// The lab's two servers as a cluster `shared` with both volumes listening and updating.
fn cluster_lab(bin: &std::path::Path) -> ObjectLab {
    let lab = ObjectLab::start(bin, "");
    let d = lab.dir.path();
    let text = format!(
        "state_dir = \"{state}\"\n\n\
         [hosts.s3a]\nendpoint = \"{ea}\"\ncredentials = \"{d}/a.cred\"\n\n\
         [hosts.s3b]\nendpoint = \"{eb}\"\ncredentials = \"{d}/b.cred\"\n\n\
         [[cluster]]\nname = \"shared\"\npersist_path = \"{d}/persist\"\nsettle = \"1s\"\npoll = \"300ms\"\n\
         volumes = [\n  {{ at = \"s3a:photos/shared\", listen = true, update = true }},\n  \
         {{ at = \"s3b:photos-dr/shared\", listen = true, update = true }},\n]\n",
        state = lab.state_dir().display(),
        ea = lab.a.endpoint(),
        eb = lab.b.endpoint(),
        d = d.display(),
    );
    std::fs::write(&lab.config, text).unwrap();
    lab
}

/// A running `cluster run`, killed if the test ends without stopping it (a failed assertion must
/// not leave it polling dead servers).
struct Running(Option<Child>);

impl Running {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, |c| c.id())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_run(lab: &ObjectLab) -> Running {
    Running(Some(spawn_run(lab)))
}

fn spawn_run(lab: &ObjectLab) -> Child {
    common::runner::bare()
        .arg("-c")
        .arg(&lab.config)
        .args(["cluster", "run", "shared"])
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cluster run")
}

fn stop(mut r: Running) -> String {
    let Some(c) = r.0.take() else { return String::new() };
    // SIGTERM: a clean stop
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cluster run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn status(lab: &ObjectLab) -> serde_json::Value {
    let v = lab.json(&["cluster", "status", "shared"]);
    v[0].clone()
}

/// Waits until both sides hold the same keys and bytes and the journal is empty.
fn converged(lab: &ObjectLab, within: Duration) {
    let start = Instant::now();
    loop {
        let st = status(lab);
        if st["depth"] == 0 && lab.sums(A) == lab.sums(B) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "not converged in {within:?}: {st}\nA: {:?}\nB: {:?}",
            lab.sums(A),
            lab.sums(B)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn journaled(lab: &ObjectLab) -> u64 {
    status(lab)["figures"]["journaled"].as_u64().unwrap_or(0)
}

#[test]
fn two_sites_writing_converge_with_no_echo() {
    let Some(bin) = require_s3s_fs() else { return };
    let lab = cluster_lab(&bin);
    for i in 0..10u64 {
        lab.put(&format!("{A}a/{i}.txt"), &bytes(i, 1500), "text/plain", ("site", "a"));
        lab.put(
            &format!("{B}b/{i}.txt"),
            &bytes(100 + i, 1700),
            "text/plain",
            ("site", "b"),
        );
    }
    let run = start_run(&lab);
    converged(&lab, Duration::from_secs(30));
    lab.assert_same_at(A, B);
    // no echo: with nothing written, nothing more is journaled
    let before = journaled(&lab);
    assert_eq!(before, 20, "each written object is one change: {}", status(&lab));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        journaled(&lab),
        before,
        "replicas came back as changes: {}",
        status(&lab)
    );

    // overwrite on b, delete on a, new key with metadata on b, a metadata-only change on a
    lab.put(
        &format!("{B}a/1.txt"),
        &bytes(9001, 900),
        "text/csv",
        ("site", "b-overwrote"),
    );
    lab.rclone(&["deletefile", &format!("{A}b/2.txt")]);
    lab.put(&format!("{B}new.txt"), b"new", "text/plain", ("fresh", "yes"));
    lab.put(
        &format!("{A}a/3.txt"),
        &bytes(3, 1500),
        "application/json",
        ("site", "a-meta"),
    );
    converged(&lab, Duration::from_secs(30));
    lab.assert_same_at(A, B);
    let a = lab.listing(A);
    assert!(a.iter().all(|o| o.0 != "b/2.txt"), "the delete went to b");
    assert!(a.iter().any(|o| o.0 == "a/1.txt" && o.2 == "text/csv"), "{a:?}");
    let steady = journaled(&lab);
    assert_eq!(steady, before + 4, "{}", status(&lab));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(journaled(&lab), steady, "no echo after the second round");

    // the same key written on both sides: the newer write wins everywhere
    lab.put(&format!("{A}both.txt"), b"from a", "text/plain", ("w", "a"));
    std::thread::sleep(Duration::from_millis(1100));
    lab.put(&format!("{B}both.txt"), b"from b, later", "text/plain", ("w", "b"));
    converged(&lab, Duration::from_secs(30));
    let got = lab.rclone(&["cat", &format!("{A}both.txt")]);
    assert_eq!(got, "from b, later");
    let log = stop(run);
    let _ = log;
    let st = status(&lab);
    assert!(st["worker"].is_null(), "a clean stop leaves no worker: {st}");
    assert!(!lab.dir.path().join("persist/lock").exists(), "lock left behind");
}

#[test]
fn diverge_finds_what_changed_behind_the_clusters_back_and_reconcile_mends_it() {
    let Some(bin) = require_s3s_fs() else { return };
    let lab = cluster_lab(&bin);
    for i in 0..6u64 {
        lab.put(
            &format!("{A}k/{i}.bin"),
            &bytes(i, 4000),
            "application/octet-stream",
            ("i", &i.to_string()),
        );
    }
    let run = start_run(&lab);
    converged(&lab, Duration::from_secs(30));
    stop(run);
    let d = lab.ferry(&["cluster", "diverge", "shared"]);
    assert_eq!(d.code, 0, "{}{}", d.stdout, d.stderr);

    // behind its back: a key only on b, other bytes on a (same size), metadata only on b
    lab.put(&format!("{B}only-b.txt"), b"only b", "text/plain", ("x", "y"));
    lab.put(
        &format!("{A}k/1.bin"),
        &bytes(777, 4000),
        "application/octet-stream",
        ("i", "1"),
    );
    std::thread::sleep(Duration::from_millis(1100));
    let (_, same) = (0, bytes(2, 4000));
    lab.put(&format!("{B}k/2.bin"), &same, "application/x-other", ("i", "2"));
    let d = lab.ferry(&["cluster", "diverge", "shared"]);
    assert_eq!(d.code, 1, "{}{}", d.stdout, d.stderr);
    for (key, what) in [
        ("only-b.txt", "missing on s3a:photos/shared"),
        ("k/1.bin", "different content"),
        ("k/2.bin", "different metadata"),
    ] {
        assert!(
            d.stdout.lines().any(|l| l.starts_with(key) && l.contains(what)),
            "{key}: {what}\n{}",
            d.stdout
        );
    }
    let json = lab.json(&["cluster", "diverge", "shared"]);
    assert_eq!(json.as_array().unwrap().len(), 3, "{json}");
    let report = lab.ferry(&["cluster", "reconcile", "shared", "--policy", "report"]);
    assert_eq!(report.code, 1);
    lab.ok(&["cluster", "reconcile", "shared", "--policy", "newest"]);
    assert_eq!(lab.ferry(&["cluster", "diverge", "shared"]).code, 0);
    lab.assert_same_at(A, B);
    // the newest of k/2.bin was b's metadata change
    assert!(lab
        .listing(A)
        .iter()
        .any(|o| o.0 == "k/2.bin" && o.2 == "application/x-other"));
    // a running cluster takes reconcile's copies for its own: nothing is journaled
    let run = start_run(&lab);
    std::thread::sleep(Duration::from_secs(3));
    // the three writes made while it was stopped are changes to it, found already everywhere;
    // reconcile's own copies are not
    let st = status(&lab);
    assert_eq!(st["depth"], 0, "{st}");
    assert_eq!(st["figures"]["journaled"], 3, "{st}");
    assert_eq!(st["figures"]["applied"], 0, "reconcile had done it all: {st}");
    stop(run);
}

#[test]
fn one_instance_at_a_time_and_a_dead_ones_lock_is_taken_over() {
    let Some(bin) = require_s3s_fs() else { return };
    let lab = cluster_lab(&bin);
    lab.put(&format!("{A}x.txt"), b"x", "text/plain", ("k", "v"));
    let mut first = start_run(&lab);
    converged(&lab, Duration::from_secs(30));
    let second = lab.ferry(&["cluster", "run", "shared"]);
    assert_ne!(second.code, 0);
    assert!(
        second.stderr.contains("worked by another instance"),
        "{}",
        second.stderr
    );
    let st = status(&lab);
    assert!(
        st["worker"].as_str().unwrap().contains(&format!("pid {}", first.id())),
        "{st}"
    );
    first.kill();
    let again = start_run(&lab);
    lab.put(&format!("{B}y.txt"), b"y", "text/plain", ("k", "v"));
    converged(&lab, Duration::from_secs(30));
    stop(again);
}

/// SIGKILL of `cluster run` at random moments while both sides change: nothing journaled is
/// lost, nothing applied twice changes the result, no lock or temp file is left after a clean
/// stop. FERRY_CLUSTER_KILLS sets the number of trials (default 30).
#[test]
fn sigkill_in_a_loop_loses_nothing() {
    let Some(bin) = require_s3s_fs() else { return };
    let lab = cluster_lab(&bin);
    let trials: u64 = std::env::var("FERRY_CLUSTER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // the truth both sides must end at: key -> content
    let mut want: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut seed = 0x5eed_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut killed_mid_apply = 0;
    // A delete's time is when a listing first misses the key; a key deleted in the last trials
    // is not written again yet, so no write races a delete the cluster has not seen (which of
    // the two came first is then the cluster's guess, not this test's truth).
    let mut deleted: Vec<(u64, String)> = Vec::new();
    let mut writer: std::collections::BTreeMap<String, &str> = Default::default();
    // (trial, key, site, bytes written; 0 for a delete)
    let mut history: Vec<(u64, String, &str, usize)> = Vec::new();
    for t in 0..trials {
        deleted.retain(|(when, _)| t < when + 3);
        // a few writes on each side (new keys and overwrites, each key once per trial), a delete
        let mut keys = std::collections::BTreeSet::new();
        while keys.len() < 4 {
            let key = format!("t/{}.bin", next() % 40);
            if !deleted.iter().any(|(_, k)| *k == key) {
                keys.insert(key);
            }
        }
        for (w, key) in keys.into_iter().enumerate() {
            let site = if w % 2 == 0 { A } else { B };
            let data = bytes(t * 100 + w as u64, 500 + (next() % 3000) as usize);
            lab.put(
                &format!("{site}{key}"),
                &data,
                "application/octet-stream",
                ("t", &t.to_string()),
            );
            writer.insert(key.clone(), site);
            history.push((t, key.clone(), site, data.len()));
            want.insert(key, data);
        }
        if let Some(k) = want.keys().nth((next() % want.len() as u64) as usize).cloned() {
            // deleted where its last write was made: a delete on the other side could race the
            // cluster's own copy of that write still in flight there, which then lands after
            // it (README, known limits)
            let site = writer[&k];
            lab.rclone(&["deletefile", &format!("{site}{k}")]);
            history.push((t, k.clone(), site, 0));
            want.remove(&k);
            deleted.push((t, k));
        }
        let mut run = start_run(&lab);
        std::thread::sleep(Duration::from_millis(200 + next() % 1800));
        run.kill();
        let st = status(&lab);
        if st["depth"].as_u64().unwrap_or(0) > 0 {
            killed_mid_apply += 1;
        }
        // a key rewritten on both sides in one trial: the later write is the truth
        std::thread::sleep(Duration::from_millis(1100));
    }
    let run = start_run(&lab);
    converged(&lab, Duration::from_secs(60));
    stop(run);
    let got: std::collections::BTreeMap<String, Vec<u8>> = lab
        .listing(A)
        .into_iter()
        .map(|o| {
            let data = lab.rclone_bytes(&["cat", &format!("{A}{}", o.0)]);
            (o.0, data)
        })
        .collect();
    let keys = |m: &std::collections::BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&got), keys(&want), "keys after {trials} kills");
    let log = std::fs::read_to_string(lab.dir.path().join("persist/log")).unwrap_or_default();
    for (k, v) in &want {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(k.as_str())).collect();
        assert!(
            got[k] == *v,
            "{k}: content differs from the last write (got {} bytes, want {} bytes, written on {}):\n{}\nhistory: {:?}",
            got[k].len(),
            v.len(),
            writer[k],
            lines.join("\n"),
            history
                .iter()
                .filter(|h| h.1 == *k || h.3 == got[k].len())
                .collect::<Vec<_>>()
        );
    }
    lab.assert_same_at(A, B);
    let st = status(&lab);
    assert_eq!(st["depth"], 0, "{st}");
    assert!(!lab.dir.path().join("persist/lock").exists());
    let leftovers: Vec<_> = std::fs::read_dir(lab.dir.path().join("persist"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !["journal", "status.json", "log"].contains(&n.as_str()))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!("{trials} kills, {killed_mid_apply} with changes unfinished in the journal");
    assert!(killed_mid_apply > 0, "no kill landed while changes were unfinished");
}

/// Keys outside plain ASCII and an object named like the fan-out's journal key: each reaches
/// the other site (the bug: `café.txt` never did, and no line said so), and the object named
/// `@checkpoint` is an object, not a fan-out round (it made the run start object pair jobs).
#[test]
fn every_key_crosses_and_an_object_named_like_a_round_is_an_object() {
    let Some(bin) = require_s3s_fs() else { return };
    let lab = cluster_lab(&bin);
    let keys = [
        "café.txt",
        "@checkpoint",
        "100%.txt",
        "photo[1].jpg",
        "q?x#y",
        "日本語.txt",
        "a b/c d.txt",
    ];
    for (i, k) in keys.iter().enumerate() {
        lab.put(
            &format!("{A}{k}"),
            &bytes(i as u64, 700 + i),
            "text/plain",
            ("n", &i.to_string()),
        );
    }
    let run = start_run(&lab);
    converged(&lab, Duration::from_secs(30));
    lab.assert_same_at(A, B);
    let b: Vec<String> = lab.listing(B).into_iter().map(|o| o.0).collect();
    for k in keys {
        assert!(b.iter().any(|x| x == k), "{k:?} did not reach site b: {b:?}");
    }
    let log = stop(run);
    // no pair job ran: a job leaves its pair's folder (named by fingerprint) in the state dir
    let jobs: Vec<String> = std::fs::read_dir(lab.state_dir())
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 32 && n.chars().all(|c| c.is_ascii_hexdigit()))
                .collect()
        })
        .unwrap_or_default();
    assert!(jobs.is_empty(), "the cluster ran pair jobs {jobs:?}: {log}");
    let st = status(&lab);
    assert_eq!(st["figures"]["journaled"], keys.len() as u64, "{st}");
}

#[test]
fn a_persist_path_other_users_can_write_into_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let Some(bin) = require_s3s_fs() else { return };
    let lab = cluster_lab(&bin);
    let persist = lab.dir.path().join("persist");
    std::fs::create_dir_all(&persist).unwrap();
    std::fs::set_permissions(&persist, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = lab.ferry(&["cluster", "run", "shared"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("cluster shared") && r.stderr.contains("writable by every user"),
        "{}",
        r.stderr
    );
    assert!(
        std::fs::read_dir(&persist).unwrap().next().is_none(),
        "nothing was written into it"
    );
    // a symlink in its place is refused too, and nothing is written where it points
    std::fs::remove_dir(&persist).unwrap();
    let elsewhere = lab.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &persist).unwrap();
    let r = lab.ferry(&["cluster", "run", "shared"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("is a symlink"), "{}", r.stderr);
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
}
