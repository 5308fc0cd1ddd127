//! High availability through etcd (Debian's etcd-server on loopback): three `cluster run`
//! instances with one config, exactly one working the cluster; the worker SIGKILLed in a loop and
//! replaced within the lease (takeover times measured and printed); a paused worker fenced out
//! when it wakes; and a pair's lock held as a lease, so two instances never run one pair at once
//! and a dead holder's lease expires into Locked. Real s3s-fs servers and rclone as in
//! tests/cluster.rs.

use crate::common;
use crate::object_util;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use object_util::etcd::{require_etcd, EtcdServer};
use object_util::lab::ObjectLab;
use object_util::{bytes, require_s3s_fs};

const A: &str = "a:photos/shared/";
const B: &str = "b:photos-dr/shared/";
const LEASE: Duration = Duration::from_secs(2);

/// The object lab with etcd as the coordination engine and cluster `shared` coordinated by it.
fn ha_lab(bin: &std::path::Path, etcd: &EtcdServer) -> ObjectLab {
    ha_lab_polling(bin, etcd, "300ms")
}

/// `ha_lab` with the cluster's `poll`.
fn ha_lab_polling(bin: &std::path::Path, etcd: &EtcdServer, poll: &str) -> ObjectLab {
    let lab = ObjectLab::start(bin, "");
    let d = lab.dir.path();
    let text = format!(
        "state_dir = \"{state}\"\n\n\
         [coordination]\nengine = \"etcd\"\nendpoints = [\"{etcd}\"]\nlease = \"{lease}s\"\n\n\
         [hosts.s3a]\nendpoint = \"{ea}\"\ncredentials = \"{d}/a.cred\"\n\n\
         [hosts.s3b]\nendpoint = \"{eb}\"\ncredentials = \"{d}/b.cred\"\n\n\
         [[cluster]]\nname = \"shared\"\npersist_path = \"{d}/persist\"\nsettle = \"500ms\"\npoll = \"{poll}\"\n\
         coordination = \"etcd\"\n\
         volumes = [\n  {{ at = \"s3a:photos/shared\", listen = true, update = true }},\n  \
         {{ at = \"s3b:photos-dr/shared\", listen = true, update = true }},\n]\n",
        state = lab.state_dir().display(),
        etcd = etcd.endpoint(),
        lease = LEASE.as_secs(),
        ea = lab.a.endpoint(),
        eb = lab.b.endpoint(),
        d = d.display(),
    );
    std::fs::write(&lab.config, text).unwrap();
    lab
}

/// Waits until the shared log holds `what`; gives how long that took.
fn wait_log(lab: &ObjectLab, what: &str, within: Duration) -> Duration {
    let t0 = Instant::now();
    while !log(lab).contains(what) {
        assert!(
            t0.elapsed() < within,
            "no {what:?} within {within:?}; log:\n{}",
            log(lab)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

/// Instances of `cluster run`, killed when the test ends however it ends.
struct Instances(Vec<Child>);

impl Instances {
    fn spawn(&mut self, lab: &ObjectLab) {
        let c = common::runner::bare()
            .arg("-c")
            .arg(&lab.config)
            .args(["cluster", "run", "shared"])
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cluster run");
        self.0.push(c);
    }

    fn signal(&mut self, pid: u32, sig: i32) {
        assert!(self.0.iter().any(|c| c.id() == pid), "pid {pid} is not one of ours");
        // SAFETY: a signal to our own child
        unsafe {
            libc::kill(pid as i32, sig);
        }
    }

    /// SIGKILLs `pid` and reaps it.
    fn kill(&mut self, pid: u32) {
        self.signal(pid, libc::SIGKILL);
        if let Some(i) = self.0.iter().position(|c| c.id() == pid) {
            let mut c = self.0.remove(i);
            let _ = c.wait();
        }
    }

    /// Every instance still running (none exited on its own).
    fn all_alive(&mut self) -> bool {
        self.0.iter_mut().all(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn log(lab: &ObjectLab) -> String {
    std::fs::read_to_string(lab.dir.path().join("persist/log")).unwrap_or_default()
}

/// Each "working the cluster (epoch E) (pid P)" line of the shared log, in order.
fn workers(lab: &ObjectLab) -> Vec<(i64, u32)> {
    log(lab)
        .lines()
        .filter_map(|l| {
            let rest = l.split("working the cluster (epoch ").nth(1)?;
            let (epoch, rest) = rest.split_once(") (pid ")?;
            let (pid, _) = rest.split_once(')')?;
            Some((epoch.parse().ok()?, pid.parse().ok()?))
        })
        .collect()
}

/// Waits for the n-th worker line; gives it and how long it took.
fn wait_worker(lab: &ObjectLab, n: usize, within: Duration) -> ((i64, u32), Duration) {
    let t0 = Instant::now();
    loop {
        let w = workers(lab);
        if w.len() >= n {
            return (w[n - 1], t0.elapsed());
        }
        assert!(
            t0.elapsed() < within,
            "no worker #{n} within {within:?}; log:\n{}",
            log(lab)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status(lab: &ObjectLab) -> serde_json::Value {
    lab.json(&["cluster", "status", "shared"])[0].clone()
}

fn converged(lab: &ObjectLab, within: Duration) {
    let start = Instant::now();
    loop {
        let st = status(lab);
        if st["depth"] == 0 && lab.sums(A) == lab.sums(B) {
            return;
        }
        assert!(
            start.elapsed() < within,
            "not converged in {within:?}: {st}\nlog:\n{}",
            log(lab)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every object on both sites is exactly `want`.
fn assert_content(lab: &ObjectLab, want: &std::collections::BTreeMap<String, Vec<u8>>) {
    for site in [A, B] {
        let keys: Vec<String> = lab.listing(site).into_iter().map(|o| o.0).collect();
        assert_eq!(keys, want.keys().cloned().collect::<Vec<_>>(), "keys on {site}");
        for (k, v) in want {
            assert_eq!(&lab.rclone_bytes(&["cat", &format!("{site}{k}")]), v, "{site}{k}");
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn three_instances_one_worker_a_killed_worker_is_replaced_within_the_lease() {
    let (Some(bin), Some(etcd_bin)) = (require_s3s_fs(), require_etcd()) else {
        return;
    };
    let etcd = EtcdServer::start(&etcd_bin);
    let lab = ha_lab(&bin, &etcd);
    let trials: usize = std::env::var("FERRY_HA_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let mut inst = Instances(Vec::new());
    for _ in 0..3 {
        inst.spawn(&lab);
    }
    let ((mut epoch, mut pid), _) = wait_worker(&lab, 1, Duration::from_secs(20));
    // the other two stand by, naming the worker
    let t0 = Instant::now();
    while log(&lab)
        .lines()
        .filter(|l| l.contains("standing by: the cluster is worked by") && l.contains(&format!("pid {pid} ")))
        .count()
        < 2
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "two instances do not stand by:\n{}",
            log(&lab)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = status(&lab);
    assert!(
        st["worker"].as_str().unwrap_or("").contains(&format!("pid {pid} on ")),
        "status names the worker: {st}"
    );

    let mut want = std::collections::BTreeMap::new();
    let mut takeovers = Vec::new();
    for t in 0..trials {
        for (w, site) in [A, B, A].into_iter().enumerate() {
            let key = format!("t{t}/{w}.bin");
            let data = bytes((t * 10 + w) as u64, 1000 + t * 37 + w * 500);
            lab.put(
                &format!("{site}{key}"),
                &data,
                "application/octet-stream",
                ("t", &t.to_string()),
            );
            want.insert(key, data);
        }
        // some trials kill while the writes are being journaled or applied, some after
        std::thread::sleep(Duration::from_millis(200 + (t as u64 * 389) % 1500));
        let before = workers(&lab).len();
        assert_eq!(
            before,
            t + 1,
            "an instance took over while the worker lived:\n{}",
            log(&lab)
        );
        inst.kill(pid);
        let ((e, p), took) = wait_worker(&lab, before + 1, Duration::from_secs(20));
        assert!(e > epoch, "epochs grow: {e} after {epoch}");
        assert_ne!(p, pid, "the killed worker came back");
        assert!(
            took <= 2 * LEASE,
            "trial {t}: takeover took {took:?}, over twice the lease ({:?})",
            2 * LEASE
        );
        takeovers.push(took);
        (epoch, pid) = (e, p);
        inst.spawn(&lab);
    }
    converged(&lab, Duration::from_secs(60));
    assert_content(&lab, &want);
    assert!(inst.all_alive(), "an instance exited on its own:\n{}", log(&lab));
    assert!(!log(&lab).contains("FAILED"), "{}", log(&lab));
    eprintln!(
        "takeover after SIGKILL of the worker, lease {:?}, {} trials: min {:?}, median {:?}, max {:?}",
        LEASE,
        takeovers.len(),
        takeovers.iter().min().unwrap(),
        median(takeovers.clone()),
        takeovers.iter().max().unwrap()
    );
}

#[test]
fn a_paused_worker_is_fenced_out_when_it_wakes() {
    let (Some(bin), Some(etcd_bin)) = (require_s3s_fs(), require_etcd()) else {
        return;
    };
    let etcd = EtcdServer::start(&etcd_bin);
    let lab = ha_lab(&bin, &etcd);
    let mut inst = Instances(Vec::new());
    inst.spawn(&lab);
    inst.spawn(&lab);
    let ((e1, p1), _) = wait_worker(&lab, 1, Duration::from_secs(20));
    let mut want = std::collections::BTreeMap::new();
    for i in 0..3 {
        let data = bytes(i, 2000);
        lab.put(&format!("{A}before/{i}"), &data, "text/plain", ("i", &i.to_string()));
        want.insert(format!("before/{i}"), data);
    }
    converged(&lab, Duration::from_secs(30));
    // paused, not dead: its lease runs out and the other instance takes over
    inst.signal(p1, libc::SIGSTOP);
    let ((e2, p2), took) = wait_worker(&lab, 2, Duration::from_secs(20));
    assert!(e2 > e1 && p2 != p1);
    assert!(took <= 2 * LEASE, "takeover of a paused worker took {took:?}");
    for i in 0..3 {
        let data = bytes(100 + i, 3000);
        lab.put(&format!("{B}during/{i}"), &data, "text/plain", ("i", &i.to_string()));
        want.insert(format!("during/{i}"), data);
    }
    std::thread::sleep(Duration::from_millis(800));
    // it wakes believing it works the cluster; its first journal write finds the lease gone
    inst.signal(p1, libc::SIGCONT);
    let t0 = Instant::now();
    let lost = format!("lost the cluster's lease (epoch {e1}): standing by");
    while !log(&lab).contains(&lost) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the woken worker did not step down:\n{}",
            log(&lab)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    converged(&lab, Duration::from_secs(30));
    assert_content(&lab, &want);
    assert_eq!(workers(&lab).len(), 2, "no third takeover:\n{}", log(&lab));
    let st = status(&lab);
    assert!(
        st["worker"].as_str().unwrap_or("").contains(&format!("pid {p2} on ")),
        "{st}"
    );
    assert!(inst.all_alive());
}

fn ferry_with(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = common::runner::bare()
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("FERRY_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Two configs for one block pair (a VM image), one per site: each its own state dir, both the
/// same etcd. `extra` goes into the pair's table.
fn two_sites(dir: &std::path::Path, etcd: &EtcdServer, extra: &str) -> [std::path::PathBuf; 2] {
    [1, 2].map(|site| {
        let text = format!(
            "state_dir = \"{d}/state{site}\"\n\n\
             [coordination]\nengine = \"etcd\"\nendpoints = [\"{e}\"]\nlease = \"{lease}s\"\n\n\
             [[pair]]\nkind = \"block\"\nsource = \"{d}/a/vm.img\"\ndestination = \"{d}/b/vm.img\"\n{extra}\n",
            d = dir.display(),
            e = etcd.endpoint(),
            lease = LEASE.as_secs(),
        );
        let p = dir.join(format!("site{site}.toml"));
        std::fs::write(&p, text).unwrap();
        p
    })
}

#[test]
fn a_pairs_lock_is_a_lease_two_instances_never_run_it_at_once() {
    let Some(etcd_bin) = require_etcd() else { return };
    let etcd = EtcdServer::start(&etcd_bin);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("a")).unwrap();
    std::fs::create_dir_all(d.join("b")).unwrap();
    let img = d.join("a/vm.img");
    std::fs::write(&img, bytes(1, 32 << 20)).unwrap();
    let dest = d.join("b/vm.img").display().to_string();
    let [site1, site2] = two_sites(d, &etcd, "");
    let (code, out, err) = ferry_with(&site1, &["initialize", &dest]);
    assert_eq!(code, 0, "{out}{err}");
    // 16 MiB changed; under a 4 MiB/s limit the update runs about four seconds
    let [site1, site2] = {
        let _ = (site1, site2);
        two_sites(d, &etcd, "bwlimit = \"4M\"")
    };
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        f.seek(SeekFrom::Start(8 << 20)).unwrap();
        f.write_all(&bytes(2, 16 << 20)).unwrap();
    }
    let mut job = common::runner::bare()
        .arg("-c")
        .arg(&site1)
        .args(["update", &dest])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let (_, out, _) = ferry_with(&site2, &["--json", "status", &dest]);
        if out.contains("\"Running\"") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "site 2 never saw the job run: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // site 2's run of the same pair is refused, naming the job and its host
    let (code, _, err) = ferry_with(&site2, &["update", &dest]);
    assert_ne!(code, 0);
    assert!(
        err.contains("already running: update (pid ") && err.contains(" on "),
        "{err}"
    );
    // the holder dies: once its lease expires the pair is Locked everywhere, not free
    unsafe {
        libc::kill(job.id() as i32, libc::SIGKILL);
    }
    let _ = job.wait();
    std::thread::sleep(LEASE + Duration::from_millis(1500));
    let (_, out, _) = ferry_with(&site2, &["--json", "status", &dest]);
    assert!(out.contains("\"Locked\""), "site 2 status after the holder died: {out}");
    let (code, _, err) = ferry_with(&site2, &["update", &dest]);
    assert_ne!(code, 0);
    assert!(
        err.contains("did not finish") && err.contains("lease expired") && err.contains("unlock"),
        "{err}"
    );
    // an operator checks and unlocks at site 2; the pair runs there, from the replica's checkpoint
    let (code, out, err) = ferry_with(&site2, &["unlock", &dest]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("unlocked") && out.contains(" on "), "{out}");
    let (code, out, err) = ferry_with(&site2, &["update", &dest]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        std::fs::read(&img).unwrap() == std::fs::read(&dest).unwrap(),
        "replica differs"
    );
    // site 1 still has its dead job's lock file: its unlock clears it; nothing is left in etcd
    let (code, out, err) = ferry_with(&site1, &["unlock", &dest]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("unlocked"), "{out}");
    let (code, out, err) = ferry_with(&site1, &["update", &dest]);
    assert_eq!(code, 0, "{out}{err}");
    let left = ferry::coord::etcd::Etcd::new(&[etcd.endpoint()])
        .range_prefix("/ferry/")
        .unwrap();
    assert!(left.is_empty(), "keys left in etcd: {left:?}");
}

#[test]
fn the_etcd_client_against_a_real_etcd() {
    use ferry::coord::etcd::{Created, Etcd, EtcdError};
    let Some(etcd_bin) = require_etcd() else { return };
    let server = EtcdServer::start(&etcd_bin);
    // one member down first in the list: the next one answers
    let etcd = Etcd::new(&["http://127.0.0.1:1".to_string(), server.endpoint()]);
    let lease = etcd.grant(2).unwrap();
    let made = etcd.create(&["/t/k"], &[("/t/k", b"one", lease)]).unwrap();
    let Created::Made { revision } = made else {
        panic!("{made:?}")
    };
    match etcd.create(&["/t/k"], &[("/t/k", b"two", 0)]).unwrap() {
        Created::Held(kvs) => assert_eq!(kvs[0].as_ref().unwrap().value, b"one"),
        other => panic!("a second create made the key: {other:?}"),
    }
    assert!(
        !etcd.delete_if("/t/k", revision + 100).unwrap(),
        "deleted someone else's key"
    );
    assert!(etcd.keepalive(lease).unwrap() > 0);
    // a lease is alive until it runs out, also in its last second; none (0) never is
    for _ in 0..18 {
        assert!(etcd.lease_alive(lease).unwrap(), "a live lease taken for dead");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!etcd.lease_alive(0).unwrap());
    // renewals stop: the key goes with the lease
    std::thread::sleep(Duration::from_millis(1700));
    assert!(!etcd.lease_alive(lease).unwrap(), "an expired lease taken for alive");
    assert!(etcd.get("/t/k").unwrap().is_none());
    assert!(matches!(etcd.keepalive(lease), Err(EtcdError::LeaseExpired(_))));
    etcd.revoke(lease).expect("revoking a lease that is gone is no error");
    // nothing answers: the error names every endpoint
    let down = Etcd::new(&["http://127.0.0.1:1".to_string()]);
    let e = down.get("/t/k").unwrap_err().to_string();
    assert!(e.contains("unreachable") && e.contains("http://127.0.0.1:1"), "{e}");
}

/// A job's description as ferry writes it, claiming pid 1 on a host that does not exist.
const FORGED: &[u8] = br#"{"pid":1,"action":"update","started":0,"host":"nowhere"}"#;

#[test]
fn a_run_key_without_a_lease_is_no_running_job_and_unlock_clears_it() {
    let Some(etcd_bin) = require_etcd() else { return };
    let etcd = EtcdServer::start(&etcd_bin);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("a")).unwrap();
    std::fs::create_dir_all(d.join("b")).unwrap();
    std::fs::write(d.join("a/vm.img"), bytes(3, 4 << 20)).unwrap();
    let dest = d.join("b/vm.img").display().to_string();
    let [site1, _] = two_sites(d, &etcd, "");
    let (code, fp, err) = ferry_with(&site1, &["fingerprint", &dest]);
    assert_eq!(code, 0, "{err}");
    let run = format!("/ferry/pairs/{}/run", fp.trim());
    // anyone who reaches etcd writes the run key by hand, with no lease
    let raw = ferry::coord::etcd::Etcd::new(&[etcd.endpoint()]);
    raw.create(&[run.as_str()], &[(run.as_str(), FORGED, 0)]).unwrap();
    let (code, out, err) = ferry_with(&site1, &["initialize", &dest]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains(&run) && err.contains("pid\\\":1") && err.contains("with no lease") && err.contains("unlock"),
        "the job says what it found (key, value, no lease) and what to do: {err}"
    );
    assert!(
        !err.contains("already running"),
        "a key without a lease is no running job: {err}"
    );
    let (_, out, _) = ferry_with(&site1, &["--json", "status", &dest]);
    assert!(
        out.contains("\"Locked\"") && !out.contains("\"Running\""),
        "status: {out}"
    );
    let (code, out, err) = ferry_with(&site1, &["unlock", &dest]);
    assert_eq!(code, 0, "unlock clears the key: {out}{err}");
    assert!(
        out.contains(&format!("removed {run}")) && out.contains("with no lease"),
        "unlock names what it found: {out}"
    );
    let (code, out, err) = ferry_with(&site1, &["initialize", &dest]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(raw.range_prefix("/ferry/").unwrap().is_empty());
}

#[test]
fn a_worker_key_without_a_lease_is_cleared_and_the_cluster_taken() {
    let (Some(bin), Some(etcd_bin)) = (require_s3s_fs(), require_etcd()) else {
        return;
    };
    let etcd = EtcdServer::start(&etcd_bin);
    let lab = ha_lab(&bin, &etcd);
    let key = "/ferry/clusters/shared/worker";
    let raw = ferry::coord::etcd::Etcd::new(&[etcd.endpoint()]);
    raw.create(&[key], &[(key, FORGED, 0)]).unwrap();
    let mut inst = Instances(Vec::new());
    inst.spawn(&lab);
    wait_worker(&lab, 1, Duration::from_secs(20));
    let l = log(&lab);
    assert!(
        l.contains(&format!("coordination: cleared {key} = ")) && l.contains("with no lease"),
        "the standby names what it cleared:\n{l}"
    );
    assert!(
        !l.contains("pid 1 on nowhere"),
        "a key without a lease is no worker:\n{l}"
    );
}

#[test]
fn a_worker_whose_key_is_deleted_stops_within_a_renewal_before_its_successor_starts() {
    let (Some(bin), Some(etcd_bin)) = (require_s3s_fs(), require_etcd()) else {
        return;
    };
    let etcd = EtcdServer::start(&etcd_bin);
    // a long poll: an idle worker does not come to its next cycle's checks for a long time
    let lab = ha_lab_polling(&bin, &etcd, "1m");
    let mut inst = Instances(Vec::new());
    inst.spawn(&lab);
    inst.spawn(&lab);
    let key = "/ferry/clusters/shared/worker";
    let raw = ferry::coord::etcd::Etcd::new(&[etcd.endpoint()]);
    let ((mut epoch, mut pid), _) = wait_worker(&lab, 1, Duration::from_secs(20));
    // the deletion falls at another point of the worker's renewal cycle each time
    for t in 0..4u64 {
        std::thread::sleep(Duration::from_millis(300 + 137 * t));
        // anyone who reaches etcd deletes the worker's key; its lease still lives
        let kv = raw.get(key).unwrap().expect("the worker's key");
        let t0 = Instant::now();
        assert!(raw.delete_if(key, kv.create_revision).unwrap());
        let stopped =
            format!("lost the cluster (epoch {epoch}): its worker key {key} was deleted in etcd: standing by");
        let took_stop = wait_log(&lab, &stopped, Duration::from_secs(10));
        let ((e2, p2), _) = wait_worker(&lab, t as usize + 2, Duration::from_secs(10));
        let took_new = t0.elapsed();
        assert!(e2 > epoch);
        eprintln!("key deleted: old worker stopped after {took_stop:?}; successor working after {took_new:?}");
        // a renewal every third of the lease reads the key: the old worker stops within about that
        assert!(
            took_stop <= LEASE,
            "the old worker stopped {took_stop:?} after its key was deleted (lease {LEASE:?})"
        );
        // and its successor waited for its lease to end: never two workers at once
        let l = log(&lab);
        let working = format!("working the cluster (epoch {e2})");
        assert!(
            l.find(&stopped).unwrap() < l.find(&working).unwrap(),
            "the successor started before the old worker stopped:\n{l}"
        );
        // (the deposed worker, once it let go, may win the cluster back itself)
        if p2 != pid {
            assert!(
                l.contains("coordination: the worker's key was gone while its lease"),
                "{l}"
            );
        }
        (epoch, pid) = (e2, p2);
    }
    assert!(inst.all_alive());
}

/// A file holding `text`, only its owner may read it.
fn secret_file(path: &std::path::Path, text: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_path_buf()
}

/// One block pair's config against `etcd` with `security` in its [coordination] table.
fn secured_site(dir: &std::path::Path, endpoint: &str, security: &str) -> std::path::PathBuf {
    let text = format!(
        "state_dir = \"{d}/state\"\n\n\
         [coordination]\nengine = \"etcd\"\nendpoints = [\"{endpoint}\"]\nlease = \"{lease}s\"\n{security}\n\
         [[pair]]\nkind = \"block\"\nsource = \"{d}/a/vm.img\"\ndestination = \"{d}/b/vm.img\"\n",
        d = dir.display(),
        lease = LEASE.as_secs(),
    );
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    if !dir.join("a/vm.img").exists() {
        std::fs::write(dir.join("a/vm.img"), bytes(5, 2 << 20)).unwrap();
    }
    let p = dir.join("site.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn etcd_with_authentication_a_token_renewed_and_a_wrong_password_refused() {
    use ferry::coord::etcd::{Created, Etcd, EtcdError};
    let Some(etcd_bin) = require_etcd() else { return };
    let server = EtcdServer::start_with(
        &etcd_bin,
        object_util::etcd::Options {
            token_ttl: Some(2),
            ..Default::default()
        },
    );
    server.enable_auth("ferry-pw-1");
    let dir = tempfile::tempdir().unwrap();
    let good = secret_file(&dir.path().join("good.pw"), "ferry-pw-1\n");
    let bad = secret_file(&dir.path().join("bad.pw"), "wrong-pw-2\n");
    // without a user etcd refuses (so ferry's locks are its user's only)
    let anon = Etcd::new(&[server.endpoint()]);
    assert!(anon.get("/ferry/x").is_err(), "auth is not enforced");
    // a wrong password: refused, saying so, never showing it
    let wrong = Etcd::new(&[server.endpoint()]).with_auth("ferry", &bad);
    match wrong.get("/ferry/x") {
        Err(e @ EtcdError::Auth { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("authentication as user \"ferry\" refused") && m.contains("authentication failed"),
                "{m}"
            );
            assert!(!m.contains("wrong-pw"), "the password is never in an error: {m}");
        }
        other => panic!("a wrong password was not refused as such: {other:?}"),
    }
    // the right one: locks work; keys outside the role's prefix do not
    let etcd = Etcd::new(&[server.endpoint()]).with_auth("ferry", &good);
    let t0 = Instant::now();
    let lease = etcd.grant(5).unwrap();
    let first = t0.elapsed();
    let t0 = Instant::now();
    etcd.get("/ferry/none").unwrap();
    eprintln!(
        "etcd auth: first call (authenticate + grant) {first:?}, next call (token held) {:?}",
        t0.elapsed()
    );
    let made = etcd.create(&["/ferry/t"], &[("/ferry/t", b"v", lease)]).unwrap();
    assert!(matches!(made, Created::Made { .. }), "{made:?}");
    assert!(etcd.lease_alive(lease).unwrap());
    assert!(
        matches!(etcd.get("/other"), Err(EtcdError::Refused { .. })),
        "the role's prefix only"
    );
    let shown = format!("{etcd:?}");
    assert!(
        !shown.contains("ferry-pw") && shown.contains("<redacted>"),
        "Debug redacts: {shown}"
    );
    // the token expires (2 s here): the client authenticates again on its own
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(etcd.get("/ferry/t").unwrap().map(|kv| kv.value), Some(b"v".to_vec()));
    assert!(etcd.keepalive(lease).unwrap() > 0);
    std::thread::sleep(Duration::from_millis(2500));
    // renewals too (a worker's lease thread) get a new token by themselves
    assert!(etcd.keepalive(lease).unwrap() > 0);
    etcd.revoke(lease).unwrap();

    // ferry itself, from a config: a job runs with the user; a wrong password stops it clearly
    let user = |pw: &std::path::Path| format!("user = \"ferry\"\npassword_file = \"{}\"\n", pw.display());
    let site = secured_site(dir.path(), &server.endpoint(), &user(&good));
    let dest = dir.path().join("b/vm.img").display().to_string();
    let (code, out, err) = ferry_with(&site, &["initialize", &dest]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = ferry_with(&site, &["check"]);
    assert!(!out.contains("anyone who reaches etcd"), "{out}");
    let site = secured_site(dir.path(), &server.endpoint(), &user(&bad));
    let (code, out, err) = ferry_with(&site, &["update", &dest]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("authentication as user \"ferry\" refused"), "{err}");
    assert!(!format!("{out}{err}").contains("wrong-pw"), "{out}{err}");
}

#[test]
fn etcd_over_tls_with_client_certificates_and_a_wrong_ca_refused() {
    use ferry::coord::etcd::{Etcd, EtcdError};
    let Some(etcd_bin) = require_etcd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start_with(
        &etcd_bin,
        object_util::etcd::Options {
            tls_in: Some(dir.path().join("certs")),
            client_cert_auth: true,
            ..Default::default()
        },
    );
    let c = server.tls.as_ref().unwrap();
    let ep = [server.endpoint()];
    assert!(ep[0].starts_with("https://127.0.0.1:"));
    // the right CA and a client certificate: it works
    let etcd = server.client();
    let lease = etcd.grant(5).unwrap();
    assert!(etcd.lease_alive(lease).unwrap());
    // a CA that did not sign etcd's certificate: refused as TLS, naming the endpoint
    let wrong = Etcd::new(&ep)
        .with_tls(Some(&c.other_ca), Some((&c.client, &c.client_key)))
        .unwrap();
    match wrong.get("/ferry/x") {
        Err(EtcdError::Tls(m)) => assert!(m.contains(&ep[0]) && m.contains("certificate"), "{m}"),
        other => panic!("a wrong CA was not refused as TLS: {other:?}"),
    }
    // no client certificate: etcd refuses the connection
    let anon = Etcd::new(&ep).with_tls(Some(&c.ca), None).unwrap();
    let e = anon.get("/ferry/x").expect_err("etcd requires a client certificate");
    // TLS 1.3: the server refuses after the client's handshake is done, so the client sees
    // etcd's BadCertificate alert, or a broken pipe when it was writing the request then
    assert!(
        matches!(&e, EtcdError::Tls(m) if m.to_lowercase().contains("certificate"))
            || matches!(&e, EtcdError::Unreachable(m) if m.contains(&ep[0])),
        "refused, naming the certificate or the endpoint: {e:?}"
    );
    // a CA file that is no certificate: said when the client is made
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not PEM\n").unwrap();
    match Etcd::new(&ep).with_tls(Some(&junk), None) {
        Err(EtcdError::Setup(m)) => assert!(m.contains("ca_file") && m.contains("junk.pem"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }

    // ferry itself, from a config
    let files = |ca: &std::path::Path| {
        format!(
            "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            ca.display(),
            c.client.display(),
            c.client_key.display()
        )
    };
    let site = secured_site(dir.path(), &ep[0], &files(&c.ca));
    let dest = dir.path().join("b/vm.img").display().to_string();
    let (code, out, err) = ferry_with(&site, &["initialize", &dest]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = ferry_with(&site, &["check"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("tls: etcd's certificate checked against") && out.contains("client certificate"),
        "{out}"
    );
    // no auth configured: check says so even over TLS
    assert!(
        out.contains("anyone who reaches etcd can take or break ferry's locks"),
        "{out}"
    );
    let site = secured_site(dir.path(), &ep[0], &files(&c.other_ca));
    let (code, out, err) = ferry_with(&site, &["update", &dest]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("etcd TLS:") && err.contains("certificate"), "{err}");
    etcd.revoke(lease).unwrap();
}
