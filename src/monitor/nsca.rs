//! Nagios passive checks through `send_nsca` (Debian package nsca-client): the same line
//! `--nagios` prints, with service `service/ferry:<fp>`.

use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use tokio::io::AsyncWriteExt;

use super::Level;

/// Where the passive checks go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The NSCA server.
    pub server: String,
    pub port: u16,
    /// send_nsca's config (password, encryption); `/etc/send_nsca.cfg` by default.
    pub config: std::path::PathBuf,
    /// The host the services belong to in Nagios: this machine's name unless given.
    pub host_name: String,
}

/// One passive service check.
#[derive(Debug, Clone)]
pub struct Passive {
    pub fingerprint: String,
    pub level: Level,
    /// The plugin line, `FERRY OK - ...`.
    pub line: String,
}

/// The Nagios service name of a pair.
pub fn service(fp: &str) -> String {
    format!("service/ferry:{fp}")
}

/// This machine's host name (what Nagios knows the ferry host as, by default).
pub fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// send_nsca's input: `host<TAB>service<TAB>code<TAB>output` per check, checks separated by
/// send_nsca's block delimiter ETB (0x17; a newline would become part of the output). Tabs and
/// line breaks inside the output would split fields, so they become spaces.
pub fn input(host_name: &str, checks: &[Passive]) -> String {
    checks
        .iter()
        .map(|c| {
            let line = crate::text::escape_controls(&c.line.replace(['\t', '\n', '\r', '\x17'], " ")).into_owned();
            format!(
                "{host_name}\t{}\t{}\t{line}",
                service(&c.fingerprint),
                c.level.exit_code()
            )
        })
        .collect::<Vec<_>>()
        .join("\x17")
}

/// Runs send_nsca once for all the checks; fails with its output if it does not say it sent them.
pub async fn send(target: &Target, checks: &[Passive]) -> Result<()> {
    if checks.is_empty() {
        return Ok(());
    }
    if !Path::new(&target.config).exists() {
        bail!(
            "send_nsca config {} does not exist (give --nsca-config FILE)",
            target.config.display()
        );
    }
    let mut child = tokio::process::Command::new("send_nsca")
        .arg("-H")
        .arg(&target.server)
        .arg("-p")
        .arg(target.port.to_string())
        .arg("-to")
        .arg("10")
        .arg("-c")
        .arg(&target.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting send_nsca (Debian package nsca-client)")?;
    let mut stdin = child.stdin.take().expect("piped");
    // send_nsca may exit (server unreachable) before it reads its input: its own exit status and
    // message then say more than our broken pipe, so look at those first
    let written = stdin.write_all(input(&target.host_name, checks).as_bytes()).await;
    drop(stdin);
    let out = child.wait_with_output().await.context("waiting for send_nsca")?;
    if out.status.success() {
        written.context("writing to send_nsca")?;
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("send_nsca to {}:{} failed: {}", target.server, target.port, text.trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_lines() {
        let c = Passive {
            fingerprint: "ab12".into(),
            level: Level::Warning,
            line: "FERRY WARNING - x\ty".into(),
        };
        assert_eq!(
            input("h1", &[c.clone(), c]),
            "h1\tservice/ferry:ab12\t1\tFERRY WARNING - x y\x17h1\tservice/ferry:ab12\t1\tFERRY WARNING - x y"
        );
    }
}
