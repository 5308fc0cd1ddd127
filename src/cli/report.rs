//! How errors are shown: clipped to a bound, as text or (`--json`) as one JSON object on stderr.

use std::sync::atomic::{AtomicBool, Ordering};

use super::args::Cli;

/// Set under --nagios: the action's own output gives way to the one plugin line.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether the action's own output is silenced (`outln!` and `out!` print nothing).
pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Silences the action's own output for the rest of the process.
pub fn silence() {
    QUIET.store(true, Ordering::Relaxed);
}

/// An error chain as printed (`--debug`: with its backtrace): bounded, whatever a remote put in it.
pub fn error_text(cli: &Cli, e: &anyhow::Error) -> String {
    let msg = if cli.debug { format!("{e:?}") } else { format!("{e:#}") };
    crate::text::clip(&msg, ERROR_CAP).into_owned()
}

/// The longest error printed or kept for a job (last.json, progress, the log).
pub const ERROR_CAP: usize = 8 << 10;

/// An error as one JSON object on stderr (`--json`): scripts parse both streams.
pub fn json_error(action: &str, dest: Option<&str>, message: &str) {
    let v = serde_json::json!({"error": {"action": action, "dest": dest, "message": message}});
    eprintln!("{v}");
}
