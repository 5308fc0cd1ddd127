//! Progress bars for a person at a terminal (indicatif on stderr): the job's own figures, read
//! from its `progress.json` as every observer reads them, so the bar of `update` and the bar of
//! `runstatus` in another shell show the same numbers. Silent under cron, `--nagios`, `--json`,
//! or when stderr is not a terminal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Notify;

use crate::config::units::{format_bytes, format_duration};
use crate::state::progress::Progress;

/// How often the bar re-reads the job's figures (the job writes them 4 times a second).
const POLL: Duration = Duration::from_millis(250);

/// Whether a bar should be drawn: a person is watching stderr and no machine reads stdout.
pub fn wanted(nagios: bool, json: bool) -> bool {
    !nagios && !json && std::io::stderr().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
}

/// What the bar shows for one reading of the job's figures. Pure, so it is tested exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Before the stream starts: the phase the job is in.
    Phase(String),
    /// Size known and not yet passed: a bar with position and length.
    Bar { pos: u64, len: u64, msg: String },
    /// Size unknown, or the stream already larger than the estimate: bytes and rate only.
    Spinner { msg: String },
}

/// The shape for `p`. An estimate is only an estimate: once the stream passes it the bar does not
/// stop at 100 % with a wrong ETA, it says so and shows bytes and rate.
pub fn shape(p: &Progress) -> Shape {
    if p.before_transfer() {
        return Shape::Phase(format!("{} {}: {}", p.action, p.destination, p.phase));
    }
    let rates = format!(
        "{}/s now, {}/s avg",
        format_bytes(p.rate as u64),
        format_bytes(p.avg_rate as u64)
    );
    let eta = p
        .eta_secs
        .map(|s| format!(", ETA {}", format_duration(Duration::from_secs(s))))
        .unwrap_or_default();
    let rates = match p.objects_line() {
        Some(o) => format!("{rates}, {o}"),
        None => rates,
    };
    if let (Some(read), Some(total)) = (p.read, p.read_total) {
        // the whole source is read to find what changed: the read is the progress
        return Shape::Bar {
            pos: read.min(total),
            len: total.max(1),
            msg: format!(
                "read {} of {}, sent {} ({rates}){eta}",
                format_bytes(read),
                format_bytes(total),
                format_bytes(p.bytes)
            ),
        };
    }
    match p.expected.filter(|e| *e > 0) {
        Some(e) if p.bytes <= e => Shape::Bar {
            pos: p.bytes,
            len: e,
            msg: format!("{} of {}, {rates}{eta}", format_bytes(p.bytes), format_bytes(e)),
        },
        Some(e) => Shape::Spinner {
            msg: format!(
                "{} (past the {} estimate), {rates}",
                format_bytes(p.bytes),
                format_bytes(e)
            ),
        },
        None => Shape::Spinner {
            msg: format!("{} (size unknown), {rates}", format_bytes(p.bytes)),
        },
    }
}

/// A spinner with the time spent, for an action that reports no byte figures (purge destroying
/// snapshots): a person sees that it works, and for how long.
pub struct Spinner(ProgressBar);

impl Spinner {
    pub fn start(msg: String) -> Spinner {
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        pb.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("template is valid"));
        pb.set_message(msg);
        pb.enable_steady_tick(Duration::from_millis(250));
        Spinner(pb)
    }

    /// Clears it: what the action did is printed after.
    pub fn finish(self) {
        self.0.finish_and_clear();
    }
}

/// A bar following one job until `finish`.
pub struct Watch {
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// Follows the figures at `progress` written by a job that started at or after `since`
    /// (Unix seconds), so an older job's leftover file is never shown as this one's.
    pub fn start(progress: PathBuf, since: i64) -> Watch {
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(follow(progress, since, stop.clone()));
        Watch { stop, task }
    }

    /// Clears the bar: the action's own result (or error) is what stays on the screen.
    pub async fn finish(self) {
        self.stop.notify_one();
        let _ = self.task.await;
    }
}

async fn follow(progress: PathBuf, since: i64, stop: Arc<Notify>) {
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    let bar = ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg}")
        .expect("template is valid")
        .progress_chars("=> ");
    let spin = ProgressStyle::with_template("{prefix} {spinner} {msg}").expect("template is valid");
    pb.set_style(spin.clone());
    pb.enable_steady_tick(Duration::from_millis(250));
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            _ = stop.notified() => break,
            _ = tick.tick() => {}
        }
        let Some(p) = Progress::read(&progress).filter(|p| p.started >= since) else {
            continue;
        };
        pb.set_prefix(format!("{} {}", p.action, p.destination));
        match shape(&p) {
            Shape::Phase(m) => {
                pb.set_style(spin.clone());
                pb.set_prefix("");
                pb.set_message(m);
            }
            Shape::Bar { pos, len, msg } => {
                pb.set_style(bar.clone());
                pb.set_length(len);
                pb.set_position(pos);
                pb.set_message(msg);
            }
            Shape::Spinner { msg } => {
                pb.set_style(spin.clone());
                pb.set_message(msg);
            }
        }
        if p.finished {
            break;
        }
    }
    pb.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(bytes: u64, expected: Option<u64>) -> Progress {
        Progress {
            action: "initialize".into(),
            destination: "local:backup/data".into(),
            phase: "transfer".into(),
            bytes,
            expected,
            rate: (10u64 << 20) as f64,
            avg_rate: (8u64 << 20) as f64,
            eta_secs: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn a_source_read_whole_shows_the_read_and_what_was_sent() {
        let mut q = p(3 << 20, None);
        q.read = Some(256 << 20);
        q.read_total = Some(1024 << 20);
        assert_eq!(
            shape(&q),
            Shape::Bar {
                pos: 256 << 20,
                len: 1024 << 20,
                msg: "read 256.0 MiB of 1.0 GiB, sent 3.0 MiB (10.0 MiB/s now, 8.0 MiB/s avg), ETA 2s".into()
            }
        );
    }

    #[test]
    fn bar_while_within_the_estimate_spinner_past_it_or_without_one() {
        assert_eq!(
            shape(&p(100 << 20, Some(144 << 20))),
            Shape::Bar {
                pos: 100 << 20,
                len: 144 << 20,
                msg: "100.0 MiB of 144.0 MiB, 10.0 MiB/s now, 8.0 MiB/s avg, ETA 2s".into()
            }
        );
        // 150.4 MiB of a 144 MiB estimate: no 104 %, no ETA from a size already passed
        let past = shape(&p(150 << 20, Some(144 << 20)));
        assert_eq!(
            past,
            Shape::Spinner {
                msg: "150.0 MiB (past the 144.0 MiB estimate), 10.0 MiB/s now, 8.0 MiB/s avg".into()
            }
        );
        assert!(matches!(shape(&p(5, None)), Shape::Spinner { msg } if msg.contains("size unknown")));
        let mut starting = p(0, None);
        starting.phase = "snapshot".into();
        assert_eq!(
            shape(&starting),
            Shape::Phase("initialize local:backup/data: snapshot".into())
        );
    }
}
