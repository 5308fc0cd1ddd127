//! Runs a shell command here (a process) or on a host (an SSH exec channel), with one interface.
//!
//! Commands are POSIX shell text built by the drivers from validated, quoted names
//! (`config::names::shell_quote`); locally they run under `sh -c`, remotely the login shell runs them.

#[cfg(test)]
pub mod fake;
pub mod hosts;

pub use hosts::Hosts;

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::config::LOCAL;
use crate::ssh;

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// How a command ended: its exit code (None if killed by a signal or the channel closed without one)
/// and what it wrote to stderr (capped).
#[derive(Debug, Clone)]
pub struct Finished {
    pub code: Option<i32>,
    pub stderr: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A command that ran to its end and did not exit 0: where it ran, what it was, how it ended and
/// what it said on stderr. Drivers read `stderr` into their own cases (`DriverError`), anchored
/// to the name the command was given; the text shown is the one `run_ok` always gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("on {host}: `{command}` failed: {}", describe_failure(*code, stderr))]
pub struct ExecError {
    pub host: String,
    pub command: String,
    /// None when killed by a signal or the channel closed without an exit status.
    pub code: Option<i32>,
    pub stderr: String,
}

/// A finished command with its whole stdout.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// This output as a failure of `command` on `host` (whatever its exit code).
    pub fn failure(&self, host: &str, command: &str) -> ExecError {
        ExecError {
            host: host.to_string(),
            command: command.to_string(),
            code: self.code,
            stderr: self.stderr.clone(),
        }
    }
}

/// A running command: take `stdin` / `stdout` to stream, then `wait`.
pub struct Process {
    pub stdin: Option<BoxWrite>,
    pub stdout: Option<BoxRead>,
    done: Pin<Box<dyn Future<Output = Result<Finished>> + Send>>,
}

impl Process {
    pub fn new(
        stdin: Option<BoxWrite>,
        stdout: Option<BoxRead>,
        done: Pin<Box<dyn Future<Output = Result<Finished>> + Send>>,
    ) -> Self {
        Process { stdin, stdout, done }
    }

    /// Waits for the command to end. Drop `stdin` first if the command reads it to EOF.
    pub async fn wait(self) -> Result<Finished> {
        drop(self.stdin);
        self.done.await
    }
}

/// Where commands run: this machine or a host over a shared SSH connection.
#[derive(Clone)]
pub enum Executor {
    Local,
    Remote(Arc<ssh::Connection>),
    /// A host answering from a table (the engine's unit tests).
    #[cfg(test)]
    Fake(Arc<fake::FakeHost>),
}

impl Executor {
    /// The host name as the config spells it (`local` for this machine).
    pub fn host(&self) -> &str {
        match self {
            Executor::Local => LOCAL,
            Executor::Remote(c) => &c.host().name,
            #[cfg(test)]
            Executor::Fake(f) => &f.name,
        }
    }

    /// The address the host is reached at (its config's `address`); None for this machine.
    pub fn address(&self) -> Option<&str> {
        match self {
            Executor::Local => None,
            Executor::Remote(c) => Some(&c.host().address),
            #[cfg(test)]
            Executor::Fake(f) => Some(&f.name),
        }
    }

    /// Starts `script` with piped stdin and stdout.
    pub async fn spawn(&self, script: &str) -> Result<Process> {
        match self {
            Executor::Local => spawn_local(script),
            #[cfg(test)]
            Executor::Fake(f) => Ok(f.spawn(script)),
            Executor::Remote(conn) => {
                let p = conn.exec(script).await?;
                let (stdin, stdout) = (p.stdin, p.stdout);
                let done = p.done;
                Ok(Process::new(
                    stdin,
                    stdout,
                    Box::pin(async move {
                        let (code, stderr) = done.await?;
                        Ok(Finished { code, stderr })
                    }),
                ))
            }
        }
    }

    /// Runs `script` to completion with empty stdin and returns its output, refusing more than
    /// `STDOUT_CAP` bytes of it (a hostile or broken host must not eat this machine's memory).
    pub async fn run(&self, script: &str) -> Result<Output> {
        self.run_capped(script, STDOUT_CAP).await
    }

    /// `run` with a cap of `cap` bytes of stdout: past it the command is ended (killed here, its
    /// channel closed on a host) and the run fails naming the host and the command.
    pub async fn run_capped(&self, script: &str, cap: usize) -> Result<Output> {
        let mut p = self.spawn(script).await?;
        drop(p.stdin.take());
        let out = p.stdout.take();
        // stdout and the end (stderr, exit status) are read together: a command that fills the
        // stderr pipe before it closes stdout (zfs naming thousands of missing datasets) would
        // otherwise wait on us while we wait on it
        let read = async {
            let mut stdout = Vec::new();
            if let Some(out) = out {
                // read one byte past the cap to tell "exactly the cap" from "more"
                let mut limited = out.take(cap as u64 + 1);
                limited
                    .read_to_end(&mut stdout)
                    .await
                    .with_context(|| format!("reading output of `{script}` on {}", self.host()))?;
            }
            if stdout.len() > cap {
                anyhow::bail!(
                    "on {}: `{script}` wrote more than {} of output: stopped reading it (ferry expects far less)",
                    self.host(),
                    crate::config::units::format_bytes(cap as u64)
                );
            }
            Ok(stdout)
        };
        let wait = p.wait();
        tokio::pin!(read, wait);
        let (mut stdout, mut finished) = (None, None);
        while stdout.is_none() || finished.is_none() {
            tokio::select! {
                // on an error the process (owned by `wait`) is dropped on return, which ends it:
                // kill_on_drop here, the channel closes on a host
                r = &mut read, if stdout.is_none() => stdout = Some(r?),
                f = &mut wait, if finished.is_none() => finished = Some(f?),
            }
        }
        let (stdout, f) = (
            stdout.expect("loop ends with both"),
            finished.expect("loop ends with both"),
        );
        Ok(Output {
            code: f.code,
            stdout,
            stderr: f.stderr,
        })
    }

    /// Runs `script` and fails unless it exits 0; the failure is an `ExecError` (downcast it
    /// to branch on what the command said).
    pub async fn run_ok(&self, script: &str) -> Result<Output> {
        let out = self.run(script).await?;
        if !out.success() {
            return Err(out.failure(self.host(), script).into());
        }
        Ok(out)
    }
}

/// Most stderr ferry keeps of one command (the SSH layer caps its channels at the same size).
pub use crate::ssh::STDERR_CAP;
pub use crate::text::describe_failure;

/// Most stdout `Executor::run` collects of one command. ferry's largest reads are listings (every
/// snapshot of every dataset of a host, some 100 bytes a line): 64 MiB is over half a million lines.
pub const STDOUT_CAP: usize = 64 << 20;

fn spawn_local(script: &str) -> Result<Process> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting `{script}`"))?;
    let stdin = child.stdin.take().map(|s| Box::new(s) as BoxWrite);
    let stdout = child.stdout.take().map(|s| Box::new(s) as BoxRead);
    let mut stderr = child.stderr.take();
    let done = async move {
        let mut buf = Vec::new();
        if let Some(err) = stderr.as_mut() {
            let mut chunk = [0u8; 8192];
            loop {
                let n = err.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                if buf.len() < STDERR_CAP {
                    buf.extend_from_slice(&chunk[..n.min(STDERR_CAP - buf.len())]);
                }
            }
        }
        let status = child.wait().await.context("waiting for a local command")?;
        Ok(Finished {
            code: status.code(),
            stderr: String::from_utf8_lossy(&buf).into_owned(),
        })
    };
    Ok(Process::new(stdin, stdout, Box::pin(done)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_filling_stderr_before_stdout_ends_does_not_hang() {
        // 1 MiB of stderr (far past the pipe's 64 KiB) before the first byte of stdout
        let script = "head -c 1048576 /dev/zero | tr '\\0' e >&2; echo done";
        let out = tokio::time::timeout(std::time::Duration::from_secs(10), Executor::Local.run(script))
            .await
            .expect("the command and ferry waited on each other")
            .unwrap();
        assert_eq!(out.stdout_text().trim(), "done");
        assert_eq!(out.stderr.len(), STDERR_CAP, "stderr is kept up to its cap");
    }

    #[tokio::test]
    async fn output_past_the_cap_fails_naming_host_and_command() {
        let ex = Executor::Local;
        let out = ex.run_capped("head -c 1000 /dev/zero", 1000).await.unwrap();
        assert_eq!(out.stdout.len(), 1000);
        // an endless stream ends at the cap instead of filling memory
        let t = std::time::Instant::now();
        let e = ex.run_capped("yes ferry", 1 << 20).await.unwrap_err().to_string();
        assert!(
            e.contains("on local: `yes ferry` wrote more than 1.0 MiB of output"),
            "{e}"
        );
        assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_failed_command_is_a_typed_error_with_its_words() {
        let e = Executor::Local
            .run_ok("echo \"cannot open 'tank/household': dataset does not exist\" >&2; exit 1")
            .await
            .unwrap_err();
        let x = e.downcast_ref::<ExecError>().expect("run_ok fails with an ExecError");
        assert_eq!((x.host.as_str(), x.code), ("local", Some(1)));
        assert_eq!(x.stderr.trim(), "cannot open 'tank/household': dataset does not exist");
        assert!(x.command.starts_with("echo "), "{x:?}");
        // shown as it always was: host, command, exit code and stderr
        assert_eq!(
            e.to_string(),
            format!(
                "on local: `{}` failed: {}",
                x.command,
                describe_failure(Some(1), &x.stderr)
            )
        );
    }

    #[tokio::test]
    async fn run_keeps_the_default_cap() {
        // one byte over the default cap: refused rather than collected
        let e = Executor::Local
            .run(&format!("head -c {} /dev/zero", STDOUT_CAP + 1))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("wrote more than 64.0 MiB of output"), "{e}");
    }
}
