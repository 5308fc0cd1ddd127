//! Starting jobs from the console: each runs as a detached `ferry` process in its own session, so
//! it outlives the console (a ten-hour initialize must), and the console watches it through the
//! state dir like any job cron started.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use tokio::sync::mpsc::UnboundedSender;

use crate::engine::{select, Engine};
use crate::model::JobAction;

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
pub fn detached(exe: &Path, engine: &Engine, action: JobAction, dest: &str, tx: UnboundedSender<Event>) {
    let what = format!("{} {dest}", action.word());
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
    // the pair's folder is checked (ours, not writable by others); the last run's output is
    // removed (a planted symlink with it, never followed) and a new file created, never opened
    let _ = std::fs::remove_file(&out_path);
    let out = match crate::state::files::create_new(&out_path) {
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
    if action.echoes_log() {
        cmd.arg("-v");
    }
    cmd.arg(action.word())
        .arg(dest)
        .args(action.args())
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
                let ok = status.as_ref().map(|s| s.success()).unwrap_or(false);
                let output = if ok {
                    text
                } else {
                    let how = match &status {
                        Ok(s) => ended(*s),
                        Err(e) => format!("the job could not be waited for: {e}"),
                    };
                    // a job killed outright printed nothing: what the console saw is all there is
                    let text = crate::text::escape_controls(text.trim_end()).into_owned();
                    if text.is_empty() {
                        format!("{how}; it printed nothing ({})", out_path.display())
                    } else {
                        format!("{text}\n{how}")
                    }
                };
                let _ = tx.send(Event::JobEnded { what, ok, output });
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

/// How a job the console started ended, for the operator: by a signal or with an exit code, and
/// what a job killed without warning leaves behind.
pub fn ended(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("the job exited with code {c}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGHUP => "SIGHUP",
                libc::SIGINT => "SIGINT",
                libc::SIGTERM => "SIGTERM",
                libc::SIGKILL => "SIGKILL",
                libc::SIGSEGV => "SIGSEGV",
                libc::SIGABRT => "SIGABRT",
                libc::SIGBUS => "SIGBUS",
                _ => "a signal",
            };
            let stop = format!("the job was killed by {name} (signal {sig})");
            if matches!(sig, libc::SIGINT | libc::SIGTERM | libc::SIGHUP) {
                // ferry stops cleanly on these: streams ended, lock released
                stop
            } else {
                format!(
                    "{stop}: it had no chance to clean up, so its lock stays and the pair shows Locked; \
                     check the pair, then unlock it (L)"
                )
            }
        }
        (None, None) => "the job ended without an exit code".into(),
    }
}

/// Runs `ferry --json purge DEST` without `--yes` (a dry run) and reports what it would destroy,
/// in the console's words (its keys, not the CLI's flags), for the confirmation dialog.
pub fn preview(exe: &Path, engine: &Engine, action: &str, dest: &str, tx: UnboundedSender<Event>) {
    let mut cmd = base(exe, engine);
    cmd.arg("--json").arg(action).arg(dest).stdin(Stdio::null());
    let dest = dest.to_string();
    std::thread::spawn(move || {
        let text = match cmd.output() {
            Ok(o) if o.status.success() => purge_preview(&String::from_utf8_lossy(&o.stdout)),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("cannot run ferry: {e}"),
        };
        let _ = tx.send(Event::Preview { title: dest, text });
    });
}

/// The fields of purge's JSON answer the dialog shows.
#[derive(serde::Deserialize)]
struct PurgePlan {
    source: String,
    destination: String,
    #[serde(default)]
    source_at: String,
    #[serde(default)]
    destination_at: String,
    #[serde(default)]
    source_snapshots: Vec<String>,
    #[serde(default)]
    destination_snapshots: Vec<String>,
    checkpoint: Option<String>,
}

/// What a dry-run purge found, one line each; the dialog's own hint says which key does it.
pub fn purge_preview(json: &str) -> String {
    let plan: PurgePlan = match serde_json::from_str(json) {
        Ok(p) => p,
        Err(e) => return format!("could not read purge's answer: {e}"),
    };
    let mut lines = Vec::new();
    for (side, at, list) in [
        (&plan.source, &plan.source_at, &plan.source_snapshots),
        (&plan.destination, &plan.destination_at, &plan.destination_snapshots),
    ] {
        if list.is_empty() {
            lines.push(format!("{side}: nothing beyond keep"));
        }
        lines.extend(list.iter().map(|s| format!("would destroy {at}{s}")));
    }
    if let Some(cp) = &plan.checkpoint {
        lines.push(format!("the checkpoint {cp} is kept"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn how_a_job_ended_is_said_from_its_wait_status() {
        use std::os::unix::process::ExitStatusExt;
        let killed = super::ended(std::process::ExitStatus::from_raw(libc::SIGKILL));
        assert!(
            killed.contains("SIGKILL (signal 9)") && killed.contains("Locked"),
            "{killed}"
        );
        let term = super::ended(std::process::ExitStatus::from_raw(libc::SIGTERM));
        assert_eq!(term, "the job was killed by SIGTERM (signal 15)");
        assert_eq!(
            super::ended(std::process::ExitStatus::from_raw(1 << 8)),
            "the job exited with code 1"
        );
    }

    #[test]
    fn purge_preview_speaks_the_consoles_language() {
        let json = r#"{"source":"store1:tank/data","destination":"local:backup/data",
            "source_at":"store1:tank/data@","destination_at":"local:backup/data@",
            "source_snapshots":["ferry.fp.1","ferry.fp.2"],"destination_snapshots":[],
            "checkpoint":"ferry.fp.4","destroy_destination":false,"done":false}"#;
        let text = super::purge_preview(json);
        assert_eq!(
            text,
            "would destroy store1:tank/data@ferry.fp.1\nwould destroy store1:tank/data@ferry.fp.2\n\
             local:backup/data: nothing beyond keep\nthe checkpoint ferry.fp.4 is kept"
        );
        assert!(!text.contains("--yes"), "the CLI's flag means nothing in the console");
        // a btrfs source keeps its snapshots in a directory of their own
        let json = r#"{"source":"local:/srv/data","destination":"local:/b/data",
            "source_at":"local:/srv/.ferry-snapshots/","destination_at":"local:/b/data/",
            "source_snapshots":["ferry.fp.1"],"destination_snapshots":["ferry.fp.1"],"checkpoint":"ferry.fp.4"}"#;
        let text = super::purge_preview(json);
        assert!(
            text.starts_with(
                "would destroy local:/srv/.ferry-snapshots/ferry.fp.1\nwould destroy local:/b/data/ferry.fp.1\n"
            ),
            "{text}"
        );
    }
}
