//! The state dir against planted files and unsafe permissions, through the real binary: a FIFO
//! where the lock, progress or log belongs never hangs `status`, `unlock` or `update`; a symlink
//! never redirects a write; a state dir other users can write to, or owned by another user, is
//! refused by name.

use crate::common;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    /// A config with one local pair (its datasets need not exist: these tests never get that far).
    fn new() -> Setup {
        let dir = tempfile::Builder::new().prefix("ferry-state-").tempdir().unwrap();
        let config = dir.path().join("ferry.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = \"{}\"\n[[pair]]\nsource = \"nopool/src\"\ndestination = \"nopool/dst\"\ntransport = \"local\"\n",
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        Setup { dir, config }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The pair's folder, made as ferry makes it.
    fn pair_dir(&self) -> PathBuf {
        let out = common::runner::bare()
            .arg("-c")
            .arg(&self.config)
            .arg("fingerprint")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let fp = text.split_whitespace().next().unwrap().to_string();
        let d = self.state().join(fp);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Runs ferry; a run that takes longer than 15 s is killed and fails the test as a hang.
    fn ferry(&self, args: &[&str]) -> (i32, String, String) {
        let mut child = common::runner::bare()
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if t.elapsed() > Duration::from_secs(15) {
                child.kill().unwrap();
                let _ = child.wait();
                panic!("ferry {args:?} hung (killed after 15 s)");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", p.display());
}

#[test]
fn fifos_planted_as_lock_progress_and_log_never_hang() {
    let s = Setup::new();
    let d = s.pair_dir();
    for name in ["lock", "progress.json", "log", "last.json"] {
        mkfifo(&d.join(name));
    }
    let (code, out, err) = s.ferry(&["--json", "status"]);
    // the pair's datasets do not exist: Inconsistent, which status reports with exit 1
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // something sits where the lock goes: the pair shows locked, for an operator to look at
    assert_eq!(v[0]["status"], "Locked", "{out}");
    let (code, _, err) = s.ferry(&["unlock", "dst"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "lock {} is a FIFO, not a lock file ferry wrote",
            d.join("lock").display()
        )),
        "{err}"
    );
    let (code, _, err) = s.ferry(&["update", "dst"]);
    assert_eq!(code, 1);
    assert!(err.contains("is a FIFO, not a lock file ferry wrote"), "{err}");
    // the console's log pane reads the log's tail: no hang there either
    let (tx, rx) = std::sync::mpsc::channel();
    let log = d.join("log");
    std::thread::spawn(move || {
        let _ = tx.send(ferry::tui::collect::tail(&log, 10));
    });
    let lines = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the console's log tail blocked on a FIFO");
    assert!(lines.is_empty());
    // with the lock gone, a job runs (and fails on the missing datasets) past the log and progress FIFOs
    std::fs::remove_file(d.join("lock")).unwrap();
    let (code, _, err) = s.ferry(&["update", "dst"]);
    assert_eq!(code, 1);
    assert!(err.contains("source local:nopool/src does not exist"), "{err}");
    assert!(!d.join("lock").exists(), "the failed job left its lock");
}

#[test]
fn a_symlink_planted_as_the_log_is_never_written_through() {
    let s = Setup::new();
    let d = s.pair_dir();
    let victim = s.dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, d.join("log")).unwrap();
    std::os::unix::fs::symlink(&victim, d.join("last.json")).unwrap();
    let (code, _, err) = s.ferry(&["update", "dst"]);
    assert_eq!(code, 1);
    assert!(err.contains("source local:nopool/src does not exist"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    // last.json was replaced (a rename replaces the link itself), the log link left alone
    assert!(std::fs::symlink_metadata(d.join("last.json")).unwrap().is_file());
    assert!(std::fs::symlink_metadata(d.join("log"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_state_dir_others_can_write_to_is_refused_by_name() {
    let s = Setup::new();
    std::fs::create_dir(s.state()).unwrap();
    std::fs::set_permissions(s.state(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, _, err) = s.ferry(&["update", "dst"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "state dir {} is writable by every user (mode 777): refusing it",
            s.state().display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(s.state()).unwrap().count(), 0, "wrote into it anyway");
    std::fs::set_permissions(s.state(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(s.state(), Some(65534), Some(65534)).unwrap();
        let (code, _, err) = s.ferry(&["update", "dst"]);
        assert_eq!(code, 1);
        assert!(
            err.contains(&format!("state dir {} is owned by uid 65534", s.state().display())),
            "{err}"
        );
        // a pair folder that is a symlink (to a dir another user controls) is refused too
        std::os::unix::fs::chown(s.state(), Some(0), Some(0)).unwrap();
        let elsewhere = s.dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let d = s.pair_dir();
        std::fs::remove_dir(&d).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &d).unwrap();
        let (code, _, err) = s.ferry(&["update", "dst"]);
        assert_eq!(code, 1);
        assert!(err.contains("is a symlink, not a directory"), "{err}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }
}
