//! Real ZFS for integration tests: zfs-fuse pools on sparse files.
//!
//! Use from a module of tests/it/ with `use crate::common;` and
//! `use common::zfs::*;`. Every test makes its own pools (`TestPool`), whose
//! names are unique per process, per call and per run, so tests may run in
//! parallel and next to other processes using the same (shared) daemon.
//!
//! zfs-fuse quirks, found by trying them (zfs-fuse 0.7.0, pool version 23),
//! compared with current OpenZFS:
//! - `zfs list -p` does not exist ("invalid option 'p'"): use `zfs get -Hp`
//!   (`zfs get -Hp creation` prints epoch seconds, sizes print as bytes).
//! - `zfs send -P`, `send -n` do not exist; `send -v` is accepted but prints
//!   nothing. Send takes only `-R -D -p -i -I`. No size estimate.
//! - `zfs receive` usage lists only `-v -n -F -d`; `-u` is accepted (leaves
//!   it unmounted) and so is `-e`; no `-s` (resume), `-o`, `-x`.
//!   No `receive_resume_token` property (`zfs get` exits 2 with
//!   "bad property list"), no `zfs bookmark` ("unrecognized command"), no
//!   `written` property. `guid` and `createtxg` exist.
//! - `zpool get version <pool>` answers `23` (source `default`).
//! - `zfs set readonly=on` works (writes fail with EROFS) but `zfs get
//!   readonly` still reports `off  temporary`, and /proc/mounts shows the
//!   mount as `rw`: probe the mount with a write to know (`is_read_only`).
//! - `atime` is on: merely reading files of a received dataset dirties it,
//!   so a later incremental receive fails with "destination has been
//!   modified since most recent snapshot" unless `receive -F` or the
//!   destination is readonly.
//! - `zpool create` prints "Defaulting to 4K blocksize (ashift=12)" on
//!   stderr even on success.
//! - After an incremental `zfs receive` into a MOUNTED dataset, reads of
//!   files read before show the OLD content (kernel FUSE caches: the daemon
//!   runs with fuse-attr/entry-timeout 3600 from /etc/zfs/zfsrc and nothing
//!   invalidates them). `zfs unmount` + `zfs mount` shows the new data: use
//!   `remount` before comparing a received tree.
//! - After a daemon restart pools are re-imported but not mounted
//!   (scripts/zfs-fuse-start.sh runs `zfs mount -a`).
//! - The daemon can deadlock under load (FUSE hangs while `zpool list`
//!   answers); scripts/zfs-fuse-start.sh detects that and says how to
//!   recover.
//! - `zpool destroy` right after use can answer "pool is busy": retry.
//! - `zpool destroy` leaves the (empty) mountpoint directories behind.
//! - `snapshots` sort: `-s creation` has one-second granularity; ties come
//!   out in `createtxg` order, and `createtxg` is also given as a second key.
#![allow(dead_code)]

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where pool files and mountpoints live.
pub const TEST_ROOT: &str = "/var/tmp/ferry-test";
/// Every test pool name starts with this (then prefix, pid, counter, suffix).
pub const POOL_NAME_PREFIX: &str = "ft";

static COUNTER: AtomicU64 = AtomicU64::new(0);
static AVAILABLE: OnceLock<bool> = OnceLock::new();

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Whether real ZFS (zfs-fuse) can be used here. Starts the daemon through
/// `scripts/zfs-fuse-start.sh` if `zpool list` fails (once per process).
/// Unavailable: panics under `CI=true`, otherwise prints a loud SKIP and
/// returns false.
pub fn zfs_available() -> bool {
    let ok = *AVAILABLE.get_or_init(|| {
        let script = repo_root().join("scripts/zfs-fuse-start.sh");
        let out = Command::new("bash").arg(&script).output();
        let (ok, why) = match out {
            Ok(o) if o.status.success() => (true, String::new()),
            Ok(o) => (
                false,
                format!(
                    "{} exited {}: {}{}",
                    script.display(),
                    o.status,
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, format!("cannot run {}: {e}", script.display())),
        };
        if ok {
            cleanup_stale_pools();
        } else {
            if in_ci() {
                panic!("ZFS (zfs-fuse) is required under CI=true but unavailable: {why}");
            }
            eprintln!(
                "\n############################################################\n\
                 ### SKIP: ZFS (zfs-fuse) unavailable, ZFS test skipped.\n\
                 ### {why}\n\
                 ### Run scripts/deps.sh as root to install and start it.\n\
                 ############################################################\n"
            );
        }
        ok
    });
    if !ok && in_ci() {
        panic!("ZFS (zfs-fuse) is required under CI=true but unavailable");
    }
    ok
}

/// Destroy test pools left behind by test processes that died (their pid,
/// part of the name, no longer runs). Pools of live processes are untouched.
fn cleanup_stale_pools() {
    let Ok(out) = Command::new("zpool").args(["list", "-H", "-o", "name"]).output() else {
        return;
    };
    for name in String::from_utf8_lossy(&out.stdout).lines() {
        // ft-<prefix>-<pid>-<n>-<suffix>
        let parts: Vec<&str> = name.split('-').collect();
        if parts.len() != 5 || parts[0] != POOL_NAME_PREFIX {
            continue;
        }
        let Ok(pid) = parts[2].parse::<u32>() else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("zfs harness: destroying stale test pool {name} (pid {pid} is gone)");
        destroy_pool(name);
        let _ = fs::remove_file(Path::new(TEST_ROOT).join("img").join(format!("{name}.img")));
        let _ = fs::remove_dir(Path::new(TEST_ROOT).join("mnt").join(name));
    }
}

/// Exclusive lock serializing `zpool create` / `zpool destroy` across all
/// test threads and processes (flock on one file under TEST_ROOT). zfs-fuse
/// is fragile under concurrent pool administration: the daemon hung once and
/// died once while several tests created pools at the same moment.
/// Those calls take ~40 ms each, so serializing them costs little.
struct AdminLock(fs::File);

fn admin_lock() -> AdminLock {
    use std::os::unix::io::AsRawFd;
    fs::create_dir_all(TEST_ROOT).expect("create test root");
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(Path::new(TEST_ROOT).join(".pool-admin.lock"))
        .expect("open pool admin lock");
    // SAFETY: flock on a descriptor we own; released when the file closes.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock pool admin lock");
    AdminLock(f)
}

fn destroy_pool(name: &str) -> bool {
    let mut last = String::new();
    for attempt in 0..10 {
        let lock = admin_lock();
        let out = Command::new("zpool").args(["destroy", "-f", name]).output();
        drop(lock);
        match out {
            Ok(o) if o.status.success() => return true,
            Ok(o) => last = String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => last = e.to_string(),
        }
        // Already gone (e.g. destroyed by the test itself)?
        let exists = Command::new("zpool")
            .args(["list", "-H", "-o", "name", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !exists {
            return true;
        }
        if attempt < 9 {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    eprintln!("zfs harness: WARNING: could not destroy pool {name}: {last}");
    false
}

fn sanitize(prefix: &str) -> String {
    let s: String = prefix.chars().filter(|c| c.is_ascii_alphanumeric()).take(16).collect();
    if s.is_empty() {
        "t".to_string()
    } else {
        s
    }
}

fn random_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos ^ ((std::process::id() as u64) << 32) ^ COUNTER.load(Ordering::Relaxed);
    x = splitmix64(&mut x);
    format!("{:06x}", x & 0xff_ffff)
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A zfs-fuse pool on a sparse file, destroyed (with its file) on drop.
#[derive(Debug)]
pub struct TestPool {
    /// Pool name, also the name of its root dataset.
    pub name: String,
    /// The sparse file backing the pool.
    pub file: PathBuf,
    /// Mountpoint of the root dataset.
    pub mnt: PathBuf,
}

impl TestPool {
    /// Create a pool of `size_mb` MiB (zfs-fuse needs at least 64 MiB).
    /// `None` when ZFS is unavailable outside CI (a SKIP was printed);
    /// panics when ZFS is there but the pool cannot be made.
    pub fn create(prefix: &str, size_mb: u64) -> Option<TestPool> {
        if !zfs_available() {
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Pool names must start with a letter; '-' is allowed. The pid is
        // the third field: cleanup_stale_pools relies on it.
        let name = format!(
            "{POOL_NAME_PREFIX}-{}-{}-{n}-{}",
            sanitize(prefix),
            std::process::id(),
            random_suffix()
        );
        let img_dir = Path::new(TEST_ROOT).join("img");
        let mnt_dir = Path::new(TEST_ROOT).join("mnt");
        fs::create_dir_all(&img_dir).expect("create image dir");
        fs::create_dir_all(&mnt_dir).expect("create mount dir");
        let file = img_dir.join(format!("{name}.img"));
        let mnt = mnt_dir.join(&name);
        {
            let f = fs::File::create(&file).unwrap_or_else(|e| panic!("create {}: {e}", file.display()));
            f.set_len(size_mb * 1024 * 1024).expect("size pool file");
        }
        let lock = admin_lock();
        let out = Command::new("zpool")
            .arg("create")
            .arg("-f")
            .arg("-m")
            .arg(&mnt)
            .arg(&name)
            .arg(&file)
            .output()
            .expect("run zpool create");
        drop(lock);
        if !out.status.success() {
            let _ = fs::remove_file(&file);
            panic!(
                "zpool create {name} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(TestPool { name, file, mnt })
    }

    /// `pool/sub` (no check that it exists).
    pub fn ds(&self, sub: &str) -> String {
        format!("{}/{}", self.name, sub)
    }

    /// Create dataset `pool/sub` (parents too) and return its name.
    pub fn create_dataset(&self, sub: &str) -> String {
        let ds = self.ds(sub);
        // concurrent `zfs create` (a mount) deadlocked zfs-fuse here in 1 of 2 rounds of
        // two parallel creates; serialized, 15 rounds passed
        let lock = admin_lock();
        run(&format!("zfs create -p '{ds}'"));
        drop(lock);
        ds
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        destroy_pool(&self.name);
        let _ = fs::remove_file(&self.file);
        // zpool destroy leaves mountpoint directories behind
        let _ = fs::remove_dir_all(&self.mnt);
    }
}

/// Run `sh -c cmd`; return stdout. Panics with stderr when it fails.
pub fn run(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh -c {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "command failed ({}): {cmd}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `run` for a command zfs-fuse may answer "busy" right after a receive or mount: retried for
/// up to ten seconds before it fails.
pub fn run_retry_busy(cmd: &str) -> String {
    for _ in 0..20 {
        let (ok, out, err) = try_run(cmd);
        if ok {
            return out;
        }
        if !err.contains("busy") {
            panic!("command failed: {cmd}\nstderr: {err}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    run(cmd)
}

/// Like `run`, but returns (success, stdout, stderr) instead of panicking.
pub fn try_run(cmd: &str) -> (bool, String, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh -c {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Write `bytes` bytes of deterministic pseudo-random data (xorshift64*
/// seeded by `seed`; same seed, same content) to `path`. Incompressible.
pub fn write_random_file(path: &Path, bytes: u64, seed: u64) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    let f = fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut s = seed ^ 0x2545_F491_4F6C_DD1D;
    let mut s2 = s;
    s = splitmix64(&mut s2) | 1; // xorshift state must not be 0
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let v = s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        w.write_all(&buf[..n])
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        left -= n as u64;
    }
    w.flush().unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// SHA-256 (hex) over the tree under `dir`: for each entry, in sorted order
/// of relative path, its path, type, permission bits, and the content
/// (files) or target (symlinks). Two trees with the same names, modes and
/// contents give the same sum; mtimes and owners do not count. `.zfs` is
/// skipped (snapdir is hidden by default anyway).
pub fn tree_checksum(dir: &Path) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    {
        let mut stdin = BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
        feed_tree(dir, Path::new(""), &mut stdin);
        stdin.flush().expect("feed sha256sum");
    }
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .expect("read sha256sum");
    let status = child.wait().expect("wait sha256sum");
    assert!(status.success(), "sha256sum failed");
    out.split_whitespace().next().expect("sha256sum output").to_string()
}

fn feed_tree(root: &Path, rel: &Path, out: &mut impl Write) {
    let dir = root.join(rel);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    entries.sort();
    for name in entries {
        if rel.as_os_str().is_empty() && name == ".zfs" {
            continue;
        }
        let rel_path = rel.join(&name);
        let full = root.join(&rel_path);
        let meta = fs::symlink_metadata(&full).unwrap_or_else(|e| panic!("stat {}: {e}", full.display()));
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_file() {
            'f'
        } else {
            'o'
        };
        use std::os::unix::ffi::OsStrExt;
        out.write_all(rel_path.as_os_str().as_bytes()).unwrap();
        write!(out, "\0{kind}\0{mode:o}\0").unwrap();
        match kind {
            'd' => {
                out.write_all(b"\n").unwrap();
                feed_tree(root, &rel_path, out);
            }
            'l' => {
                let t = fs::read_link(&full).expect("readlink");
                out.write_all(t.as_os_str().as_bytes()).unwrap();
                out.write_all(b"\n").unwrap();
            }
            'f' => {
                write!(out, "{}\0", meta.len()).unwrap();
                let mut f = fs::File::open(&full).unwrap_or_else(|e| panic!("open {}: {e}", full.display()));
                std::io::copy(&mut f, out).unwrap_or_else(|e| panic!("read {}: {e}", full.display()));
                out.write_all(b"\n").unwrap();
            }
            _ => out.write_all(b"\n").unwrap(),
        }
    }
}

/// `zfs get -H -o value <prop> <dataset>`, trimmed. Panics on failure.
pub fn zfs_get(dataset: &str, prop: &str) -> String {
    run(&format!("zfs get -H -o value {prop} {dataset}")).trim().to_string()
}

/// Parsable value: `zfs get -Hp -o value` (zfs-fuse has no `zfs list -p`;
/// `get -p` gives bytes and epoch seconds as on OpenZFS).
pub fn zfs_get_p(dataset: &str, prop: &str) -> String {
    run(&format!("zfs get -Hp -o value {prop} {dataset}"))
        .trim()
        .to_string()
}

/// Whether `dataset` exists.
pub fn dataset_exists(dataset: &str) -> bool {
    try_run(&format!("zfs list -H -o name {dataset}")).0
}

/// Mountpoint of `dataset` (`zfs get -H -o value mountpoint`).
pub fn mountpoint(dataset: &str) -> PathBuf {
    PathBuf::from(zfs_get(dataset, "mountpoint"))
}

/// Makes what an incremental receive wrote into a mounted dataset visible: zfs-fuse leaves the
/// kernel's page cache of its files stale (OpenZFS does not). Drops the caches where it can,
/// else unmounts and mounts the dataset.
pub fn remount(dataset: &str) {
    // Dropping the kernel's clean caches is enough to see what the receive wrote, and unlike an
    // unmount it is never "busy" (a killed job's receiver may still be ending): try that first.
    let _ = Command::new("sync").status();
    if fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok() {
        return;
    }
    remount_by_unmount(dataset);
}

/// The fallback where /proc/sys/vm is read-only: unmount and mount, with retries.
fn remount_by_unmount(dataset: &str) {
    let mut last = String::new();
    for _ in 0..10 {
        let (ok, _, err) = try_run(&format!("zfs unmount {dataset}"));
        if ok {
            // the mount can be "busy" too while zfs-fuse finishes a receive that just ended
            for _ in 0..10 {
                let (ok, _, err) = try_run(&format!("zfs mount {dataset}"));
                if ok {
                    return;
                }
                last = err;
                std::thread::sleep(Duration::from_millis(500));
            }
            panic!("zfs mount {dataset} failed: {last}");
        }
        last = err;
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("zfs unmount {dataset} failed: {last}");
}

/// Snapshots of exactly `dataset` (not of its children), full names
/// (`ds@snap`), oldest first.
pub fn snapshots(dataset: &str) -> Vec<String> {
    // -s creation has 1 s granularity; createtxg breaks ties (zfs-fuse
    // already orders ties by txg, but say so).
    let out = run(&format!(
        "zfs list -H -t snapshot -o name -s creation -s createtxg -r {dataset}"
    ));
    let want = format!("{dataset}@");
    out.lines()
        .filter(|l| l.starts_with(&want))
        .map(|l| l.to_string())
        .collect()
}

/// Whether writes to the mounted `dataset` fail with EROFS. zfs-fuse reports
/// `readonly off temporary` and a `rw` mount even when readonly=on is in
/// force, so only a write tells. The probe file (created and removed when
/// writable) dirties the dataset like any write.
pub fn is_read_only(dataset: &str) -> bool {
    let probe = mountpoint(dataset).join(format!(".ferry-ro-probe-{}", std::process::id()));
    match fs::File::create(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            false
        }
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => true,
        Err(e) => panic!("probe write {}: {e}", probe.display()),
    }
}
