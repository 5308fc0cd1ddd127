//! Starting jobs from the console: each runs as a detached `ferry` process in its own session, so
//! it outlives the console (a ten-hour initialize must), and the console watches it through the
//! state dir like any job cron started.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use tokio::sync::mpsc::UnboundedSender;

use crate::engine::{select, Engine};

use super::event::Event;

fn base(exe: &Path, engine: &Engine) -> Command {
    let mut c = Command::new(exe);
    c.arg("-c")
        .arg(&engine.config.path)
        .arg("--state-dir")
        .arg(engine.state.root());
    c
}

/// Runs `ferry ACTION DEST ARGS` detached; its output goes to `<state>/<fp>/console.out`, and when
/// it ends a message (or, for a failure or setup's checklist, a dialog) reports how.
pub fn detached(exe: &Path, engine: &Engine, action: &str, dest: &str, args: &[String], tx: UnboundedSender<Event>) {
    let what = format!("{action} {dest}");
    let fp = match select::select(&engine.config, dest) {
        Ok(p) => p.fingerprint(),
        Err(e) => {
            let _ = tx.send(Event::Launched { what, result: Err(e) });
            return;
        }
    };
    let out_path = match engine.state.ensure_pair_dir(&fp) {
        Ok(dir) => dir.join("console.out"),
        Err(e) => {
            let _ = tx.send(Event::Launched {
                what,
                result: Err(format!("{e:#}")),
            });
            return;
        }
    };
    let out = match std::fs::File::create(&out_path) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Event::Launched {
                what,
                result: Err(format!("{}: {e}", out_path.display())),
            });
            return;
        }
    };
    let err = match out.try_clone() {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Event::Launched {
                what,
                result: Err(e.to_string()),
            });
            return;
        }
    };
    let mut cmd = base(exe, engine);
    if action == "setup" || action == "unlock" || action == "purge" {
        cmd.arg("-v");
    }
    cmd.arg(action)
        .arg(dest)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; it detaches the job from the console's terminal and
    // process group, so quitting (or a closed terminal's SIGHUP) does not stop it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(mut child) => {
            let _ = tx.send(Event::Launched {
                what: what.clone(),
                result: Ok(child.id()),
            });
            // reap it while the console runs, and say how it ended
            std::thread::spawn(move || {
                let status = child.wait();
                let text = std::fs::read_to_string(&out_path).unwrap_or_default();
                let ok = status.map(|s| s.success()).unwrap_or(false);
                let _ = tx.send(Event::JobEnded { what, ok, output: text });
            });
        }
        Err(e) => {
            let _ = tx.send(Event::Launched {
                what,
                result: Err(format!("cannot start {}: {e}", exe.display())),
            });
        }
    }
}

/// Runs `ferry ACTION DEST` without `--yes` (a dry run) and reports its output for a dialog.
pub fn preview(exe: &Path, engine: &Engine, action: &str, dest: &str, tx: UnboundedSender<Event>) {
    let mut cmd = base(exe, engine);
    cmd.arg(action).arg(dest).stdin(Stdio::null());
    let dest = dest.to_string();
    std::thread::spawn(move || {
        let text = match cmd.output() {
            Ok(o) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("cannot run ferry: {e}"),
        };
        let _ = tx.send(Event::Preview { title: dest, text });
    });
}
