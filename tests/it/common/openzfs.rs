//! Real OpenZFS for integration tests: one qemu guest per test binary (scripts/openzfs-lab.sh up),
//! shared by its tests, killed when the binary exits; pools named per test on file vdevs on the
//! guest's two site disks (/site1 for sources, /site2 for destinations).
//!
//! ferry runs on the host and reaches the guest as two hosts, `source` and `destination`
//! (127.0.0.1, the forwarded port, the lab's known_hosts and key, root whose shell is /bin/sh).
//!
//! `OpenZfs::get()` returns None after a loud SKIP when no image is cached (scripts/test.sh
//! builds it), and panics instead under `CI=true`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

pub struct OpenZfs {
    /// The lab directory (overlay, site disks, lab.env); removed at exit.
    pub dir: PathBuf,
    pub port: u16,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    pub qemu_pid: u32,
    /// Seconds from qemu's start to SSH answering, and to the guest being ready.
    pub boot_seconds: u64,
    pub ready_seconds: u64,
}

static VM: OnceLock<Option<OpenZfs>> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo_root().join("scripts/openzfs-lab.sh")
}

fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

/// Runs at exit (atexit): the guest goes with the test binary, which a OnceLock would never drop.
extern "C" fn lab_down() {
    if let Some(Some(vm)) = VM.get() {
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&vm.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&vm.dir);
    }
}

impl OpenZfs {
    /// The binary's guest, booted on first use.
    pub fn get() -> Option<&'static OpenZfs> {
        VM.get_or_init(Self::boot).as_ref()
    }

    fn boot() -> Option<OpenZfs> {
        let image = Command::new("bash")
            .arg(script())
            .arg("image")
            .output()
            .expect("running openzfs-lab.sh");
        if !image.status.success() {
            let why = String::from_utf8_lossy(&image.stderr).trim().to_string();
            if in_ci() {
                panic!("CI=true and the OpenZFS lab has no image: {why}");
            }
            eprintln!("\n*** SKIP: OpenZFS lab unavailable ({why}); run scripts/openzfs-lab.sh build ***\n");
            return None;
        }
        let dir = PathBuf::from(format!("/var/tmp/ferry-openzfs-{}", std::process::id()));
        let t0 = Instant::now();
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .arg(&dir)
            .env("FERRY_BIN", env!("CARGO_BIN_EXE_ferry"))
            .stdin(Stdio::null())
            .output()
            .expect("running openzfs-lab.sh up");
        // from here on the guest exists (or half does): take it down at exit either way, and
        // also when this process dies without exiting (SIGKILL, abort): a watchdog in its own
        // session waits for our pid to go
        unsafe { libc::atexit(lab_down) };
        let me = std::process::id();
        let _ = Command::new("setsid")
            .arg("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null; do sleep 2; done; bash '{}' down '{}' >/dev/null 2>&1; rm -rf '{}'",
                script().display(),
                dir.display(),
                dir.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let env = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "openzfs-lab.sh up failed\nstdout: {env}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("lab.env lacks {k}: {env}"))
                .to_string()
        };
        let vm = OpenZfs {
            dir,
            port: get("PORT").parse().unwrap(),
            key: get("KEY").into(),
            known_hosts: get("KNOWN_HOSTS").into(),
            qemu_pid: get("PID").parse().unwrap(),
            boot_seconds: get("BOOT_SECONDS").parse().unwrap(),
            ready_seconds: get("READY_SECONDS").parse().unwrap(),
        };
        eprintln!(
            "openzfs lab: up in {:.0} s (ssh after {} s, accel {}), port {}",
            t0.elapsed().as_secs_f64(),
            vm.boot_seconds,
            get("ACCEL"),
            vm.port
        );
        Some(vm)
    }

    fn ssh_command(&self, user: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-i")
            .arg(&self.key)
            .args(["-p", &self.port.to_string()])
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg(format!("{user}@127.0.0.1"));
        c
    }

    /// Runs a shell command in the guest as root: (success, stdout, stderr).
    pub fn try_sh(&self, cmd: &str) -> (bool, String, String) {
        let out = self
            .ssh_command("root")
            .arg(cmd)
            .stdin(Stdio::null())
            .output()
            .expect("running ssh");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs a shell command in the guest as root and panics unless it succeeds; its stdout.
    pub fn sh(&self, cmd: &str) -> String {
        let (ok, out, err) = self.try_sh(cmd);
        assert!(ok, "guest: {cmd}\nstdout: {out}\nstderr: {err}");
        out
    }

    /// `zfs get -Hp -o value PROP DS` in the guest.
    pub fn get_prop(&self, ds: &str, prop: &str) -> String {
        self.sh(&format!("zfs get -Hp -o value {prop} {ds}")).trim().to_string()
    }

    /// Snapshot names (after `@`) of `ds`, oldest first.
    pub fn snapshots(&self, ds: &str) -> Vec<String> {
        self.sh(&format!("zfs list -H -p -o name -t snapshot -s createtxg -d 1 {ds}"))
            .lines()
            .filter_map(|l| l.split_once('@').map(|(_, s)| s.to_string()))
            .collect()
    }

    pub fn exists(&self, ds: &str) -> bool {
        self.try_sh(&format!("zfs list -H -o name {ds}")).0
    }

    /// Writes `mib` MiB of random data to `path` in the guest, synced.
    pub fn write_random(&self, path: &str, mib: u64) {
        self.sh(&format!(
            "dd if=/dev/urandom of={path} bs=1M count={mib} status=none conv=fsync"
        ));
    }

    /// ferry's snapshots (names after `@`) of `ds`, oldest first.
    pub fn ferry_snaps(&self, ds: &str) -> Vec<String> {
        self.snapshots(ds)
            .into_iter()
            .filter(|s| s.starts_with("ferry."))
            .collect()
    }

    /// Bookmark names (after `#`) of `ds`, oldest first.
    pub fn bookmarks(&self, ds: &str) -> Vec<String> {
        self.sh(&format!("zfs list -H -o name -t bookmark -s createtxg -d 1 {ds}"))
            .lines()
            .filter_map(|l| l.split_once('#').map(|(_, s)| s.to_string()))
            .collect()
    }

    /// (snapshot, tag) of every hold on `ds`'s snapshots.
    pub fn holds(&self, ds: &str) -> Vec<(String, String)> {
        let out = self.sh(&format!(
            "zfs list -H -o name -t snapshot -d 1 {ds} | xargs -r zfs holds -H"
        ));
        out.lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let snap = f.next()?.split_once('@')?.1.to_string();
                Some((snap, f.next()?.to_string()))
            })
            .collect()
    }

    /// A checksum of every file under a mounted dataset (relative names and contents).
    pub fn tree_sum(&self, mnt: &str) -> String {
        self.sh(&format!(
            "cd {mnt} && find . -type f | LC_ALL=C sort | xargs -r sha256sum | sha256sum | cut -d' ' -f1"
        ))
        .trim()
        .to_string()
    }
}

/// A source pool on /site1 and a destination pool on /site2, named after the test; destroyed on
/// drop (with their file vdevs).
pub struct Pools {
    pub vm: &'static OpenZfs,
    pub src: String,
    pub dst: String,
}

impl Pools {
    pub fn create(vm: &'static OpenZfs, name: &str, mib: u64) -> Pools {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let src = format!("oz{name}{n}s");
        let dst = format!("oz{name}{n}d");
        for (pool, site) in [(&src, "site1"), (&dst, "site2")] {
            // atime=off: reading a received dataset would otherwise modify it and fail the next
            // incremental receive (DESIGN.md, "OpenZFS gotchas")
            vm.sh(&format!(
                "zpool destroy -f {pool} 2>/dev/null; truncate -s {mib}M /{site}/{pool}.img && \
                 zpool create -f -o ashift=12 -O atime=off -m /mnt/{pool} {pool} /{site}/{pool}.img"
            ));
        }
        Pools { vm, src, dst }
    }
}

impl Pools {
    /// The `zfs send`/`receive` processes in the guest working on these pools: the guest is
    /// shared by tests running at once, so a process is counted only when it names one of them
    /// (a `send -t TOKEN` is asked what its token sends).
    pub fn zfs_processes(&self) -> Vec<String> {
        let ours = |text: &str| {
            [&self.src, &self.dst].iter().any(|p| {
                text.split(|c: char| c.is_whitespace() || c == '\'' || c == '=')
                    .any(|w| w == p.as_str() || w.starts_with(&format!("{p}/")) || w.starts_with(&format!("{p}@")))
            })
        };
        let out = self.vm.sh("pgrep -a -f 'zfs (send|recv|receive)' || true");
        out.lines()
            .filter(|l| !l.contains("pgrep"))
            .filter(
                |l| match l.split("send -t ").nth(1).and_then(|t| t.split_whitespace().next()) {
                    Some(token) => ours(&self.vm.sh(&format!("zfs send -nvt {token} 2>&1 || true"))),
                    None => ours(l),
                },
            )
            .map(String::from)
            .collect()
    }
}

impl Pools {
    /// `<src>/data` encrypted with a passphrase kept in a key file in the guest (given back), and
    /// `<dst>/rep` to receive under.
    pub fn encrypted_source(&self) -> String {
        let key = format!("/root/{}.key", self.src);
        self.vm.sh(&format!(
            "printf 'correct horse battery' > {key} && chmod 600 {key} && \
             zfs create -o encryption=on -o keyformat=passphrase -o keylocation=file://{key} {0}/data && \
             zfs create {1}/rep",
            self.src, self.dst
        ));
        key
    }
}

impl Drop for Pools {
    fn drop(&mut self) {
        for (pool, site) in [(&self.src, "site1"), (&self.dst, "site2")] {
            let _ = self.vm.try_sh(&format!(
                "zpool destroy -f {pool}; rm -f /{site}/{pool}.img; rmdir /mnt/{pool} 2>/dev/null; true"
            ));
        }
    }
}

pub use super::runner::Run;

/// Waits past the second: snapshot names carry seconds, and two runs in one would collide.
pub fn tick() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// A ferry config on the host with the guest as `source` and `destination`, and a state dir.
pub struct Ferry {
    pub vm: &'static OpenZfs,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The account ferry logs in to the guest as.
    pub user: String,
}

impl Ferry {
    /// One pair `source:<src> -> destination:<dst>` plus `pair_extra` TOML lines.
    pub fn new(vm: &'static OpenZfs, src: &str, dst: &str, pair_extra: &str) -> Ferry {
        Ferry::as_user(vm, "root", src, dst, pair_extra)
    }

    /// `new`, logging in to the guest as `user` (the lab's `lab` account is not root).
    pub fn as_user(vm: &'static OpenZfs, user: &str, src: &str, dst: &str, pair_extra: &str) -> Ferry {
        let dir = tempfile::Builder::new().prefix("ferry-ozfs-").tempdir().unwrap();
        let config = dir.path().join("ferry.toml");
        let f = Ferry {
            vm,
            dir,
            config,
            user: user.to_string(),
        };
        f.write_config(src, dst, pair_extra);
        f
    }

    pub fn write_config(&self, src: &str, dst: &str, pair_extra: &str) {
        let mut text = format!("state_dir = \"{}\"\n\n", self.state_dir().display());
        for name in ["source", "destination"] {
            text.push_str(&format!(
                "[hosts.{name}]\naddress = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\nkey = \"{}\"\n\
                 known_hosts = \"{}\"\n\n",
                self.vm.port,
                self.user,
                self.vm.key.display(),
                self.vm.known_hosts.display()
            ));
        }
        text.push_str(&format!(
            "[[pair]]\nsource = \"source:{src}\"\ndestination = \"destination:{dst}\"\n{pair_extra}\n"
        ));
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        super::runner::command(&self.config, args)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        super::runner::run(&self.config, args)
    }

    /// Runs ferry and panics with its output unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "ferry {args:?} failed\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// The pair's status as `status --json` reports it.
    pub fn status(&self) -> serde_json::Value {
        let r = self.run(&["--json", "status"]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}\nstdout: {}\nstderr: {}", r.stdout, r.stderr));
        v[0].clone()
    }

    /// The probe answers remembered for `host`'s pool `pool` (the caps cache, src/state/caps.rs).
    pub fn cached_caps(&self, host: &str, pool: &str) -> Option<serde_json::Value> {
        let p = self.state_dir().join("hosts").join(format!("{host}.{pool}.json"));
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
