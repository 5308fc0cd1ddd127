//! The real console binary in a pseudo-terminal (tmux) against zfs-fuse pools and a loopback sshd:
//! an update started from the keyboard shows its rate pane, finishes, and the data arrives; a job
//! started from the console outlives it.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::lab::Lab;
use common::zfs::{remount, tree_checksum, write_random_file, zfs_get};

struct Tmux {
    session: String,
}

impl Tmux {
    fn available() -> bool {
        let ok = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("tmux is missing and CI=true: install tmux");
            }
            eprintln!("\n********** SKIP: tmux is not installed; console end-to-end tests did not run **********\n");
        }
        ok
    }

    fn start(name: &str, cmd: &str) -> Tmux {
        let session = format!("ferry-e2e-{name}-{}", std::process::id());
        let st = Command::new("tmux")
            .args(["new-session", "-d", "-x", "140", "-y", "40", "-s", &session])
            .arg(cmd)
            .env_remove("NO_COLOR")
            .status()
            .unwrap();
        assert!(st.success(), "tmux new-session failed");
        Tmux { session }
    }

    fn screen(&self) -> String {
        let o = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let st = Command::new("tmux")
            .args(["send-keys", "-t", &self.session, keys])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits until the screen satisfies `pred`; panics with the screen after `limit`.
    fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let t = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if t.elapsed() > limit {
                panic!("waited {limit:?} for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.session])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn console_cmd(lab: &Lab) -> String {
    format!("{} -c {}", env!("CARGO_BIN_EXE_ferry"), lab.config.display())
}

#[test]
fn update_from_the_keyboard_shows_its_rate_and_finishes() {
    if !Tmux::available() {
        return;
    }
    let Some(lab) = Lab::new("tui", 512, 512, "bwlimit = \"16M\"") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 1 << 20, 21);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let before = zfs_get(&lab.dst_ds, "ferry:lastsnap");
    write_random_file(&src.join("big.bin"), 64 << 20, 22);

    let tm = Tmux::start("upd", &console_cmd(&lab));
    tm.wait_for("the pair as Synchronized", Duration::from_secs(30), |s| {
        s.contains("Synchronized") && s.contains("Idle")
    });
    tm.keys("u");
    // the rate pane: bytes of the expected size unknown on zfs-fuse, a rate near the limit
    let s = tm.wait_for("the transfer pane", Duration::from_secs(30), |s| {
        s.contains("MiB/s now") && s.contains("update ")
    });
    assert!(s.contains("Running"), "the table shows the job: {s}");
    let s = tm.wait_for("a rate near the limit", Duration::from_secs(30), |s| {
        s.lines()
            .any(|l| l.contains("MiB/s now") && (l.contains("15.") || l.contains("16.") || l.contains("17.")))
    });
    assert!(s.contains("elapsed") || s.contains("s "), "{s}");
    // it ends: the pane goes, the pair is idle again with a new checkpoint
    tm.wait_for("the job to finish", Duration::from_secs(60), |s| {
        !s.contains("MiB/s now") && s.contains("finished")
    });
    tm.wait_for("the pair idle", Duration::from_secs(30), |s| {
        s.contains("Idle") && !s.contains("Running")
    });
    let after = zfs_get(&lab.dst_ds, "ferry:lastsnap");
    assert_ne!(before, after, "the checkpoint moved");
    remount(&lab.dst_ds);
    assert_eq!(tree_checksum(&src), tree_checksum(&lab.dst_mnt()));

    tm.keys("q");
    let t = Instant::now();
    while tm.alive() && t.elapsed() < Duration::from_secs(5) {
        // the console exits; tmux closes the session with it
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!tm.alive(), "q quits the console");
}

#[test]
fn a_job_started_from_the_console_outlives_it() {
    if !Tmux::available() {
        return;
    }
    let Some(lab) = Lab::new("tuiq", 512, 512, "bwlimit = \"16M\"") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 1 << 20, 23);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let before = zfs_get(&lab.dst_ds, "ferry:lastsnap");
    write_random_file(&src.join("big.bin"), 48 << 20, 24);

    let tm = Tmux::start("quit", &console_cmd(&lab));
    tm.wait_for("the pair", Duration::from_secs(30), |s| s.contains("Synchronized"));
    tm.keys("u");
    tm.wait_for("the transfer pane", Duration::from_secs(30), |s| {
        s.contains("MiB/s now")
    });
    tm.keys("q");
    drop(tm);
    // the job goes on without the console; runstatus (another process) follows it to the end
    let rs = lab.ok(&["runstatus", "data"]);
    assert!(rs.stdout.contains("update finished"), "{}", rs.stdout);
    assert_ne!(zfs_get(&lab.dst_ds, "ferry:lastsnap"), before);
    remount(&lab.dst_ds);
    assert_eq!(tree_checksum(&src), tree_checksum(&lab.dst_mnt()));
}
