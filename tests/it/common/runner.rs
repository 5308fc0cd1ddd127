//! Running the ferry binary under test with a config: one way for every harness (the zfs lab,
//! the OpenZFS lab, the object labs), with what the caller's environment could slip in removed.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// What one run printed and how it ended (-1: killed by a signal).
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The ferry binary under test, not yet started and with no arguments: no FERRY_CONFIG,
/// ssh-agent or CA bundle from the caller's environment (the AWS SDKs and rclone read
/// AWS_CA_BUNDLE; an agent would offer keys).
pub fn bare() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.env_remove("FERRY_CONFIG")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("AWS_CA_BUNDLE");
    c
}

/// `ferry -c CONFIG ARGS…`, not yet started, as `bare` leaves it.
pub fn command(config: &Path, args: &[&str]) -> Command {
    let mut c = bare();
    c.arg("-c").arg(config).args(args);
    c
}

/// Runs it to the end with no input.
pub fn run(config: &Path, args: &[&str]) -> Run {
    command(config, args)
        .stdin(Stdio::null())
        .output()
        .expect("running ferry")
        .into()
}
