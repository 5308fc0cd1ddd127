//! Watching a job from outside: the figures `runstatus` prints and the console's transfer panes show,
//! read from the state dir so it does not matter who started the job.

use crate::config::units::{format_bytes, format_duration};
use crate::config::Pair;
use crate::state::progress::Progress;
use crate::state::StateDir;

use super::status::run_info;
use super::types::{RunInfo, RunState};

/// "update local:backup/data: 120.0 MiB of 200.0 MiB (60%), 45.1 MiB/s now, 40.0 MiB/s avg, ETA 2s"
pub fn progress_line(p: &Progress) -> String {
    let mut s = format!("{} {}: ", p.action, p.destination);
    if p.before_transfer() {
        s.push_str(&p.phase);
        return s;
    }
    s.push_str(&format_bytes(p.bytes));
    match (p.expected, p.fraction()) {
        (Some(e), Some(f)) => s.push_str(&format!(" of {} ({:.0}%)", format_bytes(e), f * 100.0)),
        _ => s.push_str(" (size unknown)"),
    }
    s.push_str(&format!(
        ", {}/s now, {}/s avg",
        format_bytes(p.rate as u64),
        format_bytes(p.avg_rate as u64)
    ));
    if let Some(o) = p.objects_line() {
        s.push_str(&format!(", {o}"));
    }
    match p.eta_secs {
        Some(eta) if !p.finished => s.push_str(&format!(
            ", ETA {}",
            format_duration(std::time::Duration::from_secs(eta))
        )),
        _ => {}
    }
    s.push_str(&format!(
        ", {} elapsed",
        format_duration(std::time::Duration::from_secs_f64(p.elapsed_secs))
    ));
    if p.finished {
        s.push_str(if p.error.is_some() { " — failed" } else { " — done" });
    }
    s
}

/// Follows a running job through the state dir once a second until it ends, whoever started
/// it: `each` gets every progress figure of this job (not an older job's, from before
/// `started`); returns what the state dir says once the job is over.
pub async fn follow(
    state: &StateDir,
    pair: &Pair,
    started: i64,
    mut each: impl FnMut(&Progress) -> anyhow::Result<()>,
) -> anyhow::Result<RunInfo> {
    let path = state.progress_path(&pair.fingerprint());
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let p = Progress::read(&path);
        let now = run_info(state, pair);
        if let Some(p) = p.as_ref().filter(|p| p.started >= started) {
            each(p)?;
        }
        if !matches!(now.status, RunState::Running | RunState::Initializing) {
            return Ok(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_size_rate_and_eta() {
        let p = Progress {
            action: "update".into(),
            destination: "local:backup/data".into(),
            phase: "transfer".into(),
            bytes: 120 << 20,
            expected: Some(200 << 20),
            rate: (40u64 << 20) as f64,
            avg_rate: (40u64 << 20) as f64,
            eta_secs: Some(2),
            elapsed_secs: 3.0,
            ..Default::default()
        };
        assert_eq!(
            progress_line(&p),
            "update local:backup/data: 120.0 MiB of 200.0 MiB (60%), 40.0 MiB/s now, 40.0 MiB/s avg, ETA 2s, 3s elapsed"
        );
    }
}
