//! SSH connections with russh: known_hosts verification, key and agent authentication, one reused
//! connection per host, and exec channels exposed as byte streams.
//!
//! INTERFACE CONTRACT (used by src/exec): keep these names and signatures.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Result;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::HostConfig;

/// A command running on a host over one exec channel.
pub struct RemoteProcess {
    /// Writing sends channel data; shutdown() sends EOF.
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// The command's stdout (channel data, stream 0).
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Resolves to (exit code, stderr capped at exec::STDERR_CAP) when the channel closes.
    pub done: Pin<Box<dyn Future<Output = Result<(Option<i32>, String)>> + Send>>,
}

/// One authenticated SSH connection to a configured host.
pub struct Connection {
    host: HostConfig,
}

impl Connection {
    pub fn host(&self) -> &HostConfig {
        &self.host
    }

    /// Opens an exec channel running `command`.
    pub async fn exec(&self, _command: &str) -> Result<RemoteProcess> {
        anyhow::bail!("ssh not built yet")
    }
}

/// Connections by host name, opened on first use and shared by every command of a run.
pub struct Pool {
    hosts: BTreeMap<String, HostConfig>,
}

impl Pool {
    pub fn new(hosts: BTreeMap<String, HostConfig>) -> Self {
        Pool { hosts }
    }

    pub async fn get(&self, host: &str) -> Result<Arc<Connection>> {
        let h = self.hosts.get(host).ok_or_else(|| anyhow::anyhow!("undefined host {host:?}"))?;
        anyhow::bail!("ssh to {} not built yet", h.name)
    }
}
