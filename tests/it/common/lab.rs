//! A replication lab for integration tests: a source pool reached over a real loopback sshd
//! (host `store1`), a local destination pool, a config file and a state dir, and a way to run
//! the real `ferry` binary against them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::sshd::Sshd;
use super::zfs::TestPool;

pub struct Lab {
    pub src: TestPool,
    pub dst: TestPool,
    pub sshd: Sshd,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// Source dataset (without host) and destination dataset.
    pub src_ds: String,
    pub dst_ds: String,
}

pub use super::runner::Run;

impl Lab {
    /// Pools of the given sizes (MiB), a dataset `data` on the source, and a config with one pair
    /// `store1:<src>/data -> <dst>/rep/data` plus `pair_extra` TOML lines.
    pub fn new(name: &str, src_mb: u64, dst_mb: u64, pair_extra: &str) -> Option<Lab> {
        Lab::with_sshd(name, src_mb, dst_mb, pair_extra, Sshd::start)
    }

    /// `new` with an sshd the caller starts (another address, a namespace).
    pub fn with_sshd(
        name: &str,
        src_mb: u64,
        dst_mb: u64,
        pair_extra: &str,
        start: impl FnOnce() -> Option<Sshd>,
    ) -> Option<Lab> {
        let src = TestPool::create(&format!("{name}s"), src_mb)?;
        let dst = TestPool::create(&format!("{name}d"), dst_mb)?;
        let sshd = start()?;
        let src_ds = src.create_dataset("data");
        let dst_ds = dst.ds("rep/data");
        let dir = tempfile::Builder::new().prefix("ferry-lab-").tempdir().unwrap();
        let config = dir.path().join("ferry.toml");
        let lab = Lab {
            src,
            dst,
            sshd,
            dir,
            config,
            src_ds,
            dst_ds,
        };
        lab.write_config(pair_extra, &lab.sshd.known_hosts.clone(), false);
        Some(lab)
    }

    pub fn write_config(&self, pair_extra: &str, known_hosts: &Path, tofu: bool) {
        let (src, dst) = (format!("store1:{}", self.src_ds), self.dst_ds.clone());
        self.write_config_for(&src, &dst, pair_extra, known_hosts, tofu);
    }

    /// A config whose one pair goes from `source` to `destination` as written (`store1:` and
    /// `store2:` are both this lab's sshd, under two names).
    pub fn write_config_for(&self, source: &str, destination: &str, pair_extra: &str, known_hosts: &Path, tofu: bool) {
        let mut text = format!("state_dir = \"{}\"\n\n", self.state_dir().display());
        for name in ["store1", "store2"] {
            text.push_str(&format!(
                "[hosts.{name}]\naddress = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\n\
                 key = \"{key}\"\nknown_hosts = \"{kh}\"\ntrust_on_first_use = {tofu}\n\n",
                port = self.sshd.port,
                user = self.sshd.user,
                key = self.sshd.client_key.display(),
                kh = known_hosts.display(),
            ));
        }
        text.push_str(&format!(
            "[[pair]]\nsource = \"{source}\"\ndestination = \"{destination}\"\n{pair_extra}\n"
        ));
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// zettabee's fingerprint, computed here independently of ferry.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf '%s' 'store1:{}::local:{}' | md5sum | cut -d' ' -f1",
                self.src_ds, self.dst_ds
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn src_mnt(&self) -> PathBuf {
        super::zfs::mountpoint(&self.src_ds)
    }

    pub fn dst_mnt(&self) -> PathBuf {
        super::zfs::mountpoint(&self.dst_ds)
    }

    /// Checksum of the destination as stored: zfs-fuse keeps stale page cache across an
    /// incremental receive into a mounted dataset, so the caches go first (see `zfs::remount`).
    pub fn dst_sum(&self) -> String {
        super::zfs::remount(&self.dst_ds);
        super::zfs::tree_checksum(&self.dst_mnt())
    }

    fn command(&self, args: &[&str]) -> Command {
        super::runner::command(&self.config, args)
    }

    pub fn ferry(&self, args: &[&str]) -> Run {
        super::runner::run(&self.config, args)
    }

    /// Runs ferry and panics with its output unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.ferry(args);
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
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The pair's status as `status --json` reports it.
    pub fn status(&self) -> serde_json::Value {
        let r = self.ferry(&["--json", "status"]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}\nstdout: {}\nstderr: {}", r.stdout, r.stderr));
        v[0].clone()
    }

    pub fn progress(&self) -> Option<serde_json::Value> {
        let p = self.state_dir().join(self.fingerprint()).join("progress.json");
        serde_json::from_slice(&std::fs::read(p).ok()?).ok()
    }
}
