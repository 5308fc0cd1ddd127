//! Real btrfs for tests: a sparse file formatted with mkfs.btrfs and loop-mounted in a temp dir,
//! unmounted and removed on drop. Missing btrfs fails under CI=true and skips loudly otherwise.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestFs {
    dir: tempfile::TempDir,
    pub mnt: PathBuf,
}

fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env(
            "PATH",
            format!("{}:/usr/sbin:/sbin", std::env::var("PATH").unwrap_or_default()),
        )
        .output()
        .expect("running sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs a shell command and panics with its output unless it succeeds.
pub fn run(cmd: &str) -> String {
    let (ok, text) = sh(cmd);
    assert!(ok, "`{cmd}` failed: {text}");
    text
}

impl TestFs {
    /// A fresh btrfs of `size_mb` MiB (at least 300: mkfs.btrfs refuses tiny ones).
    pub fn create(size_mb: u64) -> Option<TestFs> {
        let dir = tempfile::Builder::new().prefix("ferry-btrfs-").tempdir().unwrap();
        let img = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let (ok, why) = sh(&format!(
            "truncate -s {size_mb}M {img} && mkfs.btrfs -q -f {img} >/dev/null && mount -o loop {img} {mnt}",
            img = img.display(),
            mnt = mnt.display()
        ));
        if !ok {
            if in_ci() {
                panic!("btrfs is required under CI=true but could not be made: {why}");
            }
            eprintln!("\n### SKIP: btrfs unavailable ({why}); run scripts/deps.sh as root\n");
            return None;
        }
        Some(TestFs { dir, mnt })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Creates a subvolume at `rel` and returns its absolute path.
    pub fn subvolume(&self, rel: &str) -> String {
        let p = self.path(rel);
        run(&format!("btrfs subvolume create {} >/dev/null", p.display()));
        p.display().to_string()
    }
}

impl Drop for TestFs {
    fn drop(&mut self) {
        let m = self.mnt.display().to_string();
        for _ in 0..20 {
            if sh(&format!("umount {m}")).0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        let _ = sh(&format!("umount -l {m}"));
    }
}

/// `btrfs subvolume show` fields of a subvolume: (uuid, received uuid, read-only).
pub fn show(path: &Path) -> (String, String, bool) {
    let text = run(&format!("btrfs subvolume show {}", path.display()));
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(k).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    (
        field("UUID:"),
        field("Received UUID:"),
        field("Flags:").contains("readonly"),
    )
}

/// Names of the `ferry.*` entries in a directory, sorted.
pub fn ferry_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ferry."))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
