//! SSH connections with russh: known_hosts verification, key and agent authentication, one reused
//! connection per host, and exec channels exposed as byte streams.
//!
//! INTERFACE CONTRACT (used by src/exec): keep these names and signatures.
//!
//! A [`Connection`] is one per configured host and serves any number of concurrent channels. Under
//! it, each open channel has an SSH session (TCP connection) to itself; a session is reused for the
//! next channel once its channel closes, so sequential commands cost one exec round trip and no new
//! handshake. Why not multiplex channels on one session: russh's client grants window to the server
//! as soon as data arrives, so the only way to stop a fast sender for a slow reader is to stop
//! reading the whole TCP connection — which, with a `zfs send` channel feeding a `zfs recv` channel
//! on the same host, would also stop the window adjustments the `recv` side waits for: a deadlock.
//! With a session per open channel, backpressure on one stream never stalls another.
//!
//! A host with `jump` is reached through its jump host's [`Connection`]: each of its sessions runs
//! over a direct-tcpip channel on one session to the jump host, shared by every host behind it
//! (see `tunnel` for why that cannot stall). Host keys are checked at each hop against that hop's
//! known_hosts.

mod auth;
mod channel;
mod connect;
pub mod files;
pub mod known_hosts;
mod message;
mod tunnel;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use crate::config::HostConfig;
pub use auth::{key_file_message, load_key, KeyFileError, DEFAULT_KEYS};
pub use connect::HANDSHAKE_TIMEOUT;
use connect::{Notices, Session};
pub use known_hosts::FirstUse;

/// Most stderr ferry keeps of one command; errors are short, and this bounds memory.
pub const STDERR_CAP: usize = 64 * 1024;
use known_hosts::HostLabel;

/// Idle sessions a connection keeps for reuse; more are closed when their channel ends.
pub const MAX_IDLE_SESSIONS: usize = 4;

/// A command running on a host over one exec channel.
pub struct RemoteProcess {
    /// Writing sends channel data; shutdown() sends EOF.
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// The command's stdout (channel data, stream 0).
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Resolves to (exit code, stderr capped at STDERR_CAP) when the channel closes.
    #[allow(clippy::type_complexity)]
    pub done: Pin<Box<dyn Future<Output = Result<(Option<i32>, String)>> + Send>>,
}

/// One authenticated SSH connection to a configured host.
pub struct Connection {
    host: HostConfig,
    /// The jump host's connection, when this host is reached through one.
    via: Option<Arc<Connection>>,
    /// Sessions with no open channel, ready for the next exec.
    idle: Arc<Mutex<Vec<Session>>>,
    /// Held while a new session is being opened: one handshake at a time per host, so a burst of
    /// commands does not trip sshd's MaxStartups.
    connecting: tokio::sync::Mutex<()>,
    opened: AtomicUsize,
    /// The one session that carries the tunnels of every host jumping through this one.
    tunnels: tokio::sync::Mutex<Option<Arc<Session>>>,
    notices: Notices,
}

impl Connection {
    /// Connects to `host` (verifying its key and authenticating) and keeps the session for the first exec.
    pub async fn open(host: HostConfig) -> Result<Connection> {
        Self::open_with(host, None, Notices::default()).await
    }

    /// Connects to `host` through `via`, the connection to the host it names as `jump`.
    pub async fn open_via(host: HostConfig, via: Arc<Connection>) -> Result<Connection> {
        Self::open_with(host, Some(via), Notices::default()).await
    }

    async fn open_with(host: HostConfig, via: Option<Arc<Connection>>, notices: Notices) -> Result<Connection> {
        let conn = Connection {
            host,
            via,
            idle: Arc::new(Mutex::new(Vec::new())),
            connecting: tokio::sync::Mutex::new(()),
            opened: AtomicUsize::new(0),
            tunnels: tokio::sync::Mutex::new(None),
            notices,
        };
        let session = conn.connect().await?;
        conn.idle.lock().unwrap().push(session);
        Ok(conn)
    }

    /// A new session to this host, directly or through its jump host.
    fn connect(&self) -> Pin<Box<dyn Future<Output = Result<Session>> + Send + '_>> {
        // Boxed: the jump host may itself be reached through another.
        Box::pin(async move {
            let session = match &self.via {
                None => connect::open(&self.host, None, &self.notices).await?,
                Some(jump) => {
                    let carrier = jump.tunnel_session().await?;
                    connect::open(&self.host, Some((&jump.host, &carrier)), &self.notices).await?
                }
            };
            self.opened.fetch_add(1, Ordering::Relaxed);
            Ok(session)
        })
    }

    /// The session tunnels to hosts behind this one run on: opened on first use, again if it died.
    async fn tunnel_session(&self) -> Result<Arc<Session>> {
        let mut slot = self.tunnels.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        // A host opened only to be jumped through has its first session idle: it becomes the carrier,
        // so such a host costs one TCP connection.
        let s = match self.take_idle() {
            Some(s) => s,
            None => self.connect().await?,
        };
        let s = Arc::new(s);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// Host keys trusted on first use since the last call (for the caller to show the operator).
    pub fn take_notices(&self) -> Vec<FirstUse> {
        std::mem::take(&mut *self.notices.lock().unwrap())
    }

    pub fn host(&self) -> &HostConfig {
        &self.host
    }

    /// How many SSH sessions (TCP connections) this connection has opened so far.
    pub fn sessions_opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Opens an exec channel running `command`.
    pub async fn exec(&self, command: &str) -> Result<RemoteProcess> {
        loop {
            let (session, fresh) = self.session().await?;
            match session.channel_open_session().await {
                Ok(ch) => {
                    let idle = self.idle.clone();
                    let release: channel::Release = Box::new(move |reusable| {
                        if reusable && !session.is_closed() {
                            let mut idle = idle.lock().unwrap();
                            if idle.len() < MAX_IDLE_SESSIONS {
                                idle.push(session);
                            }
                        }
                    });
                    return channel::start(&self.host, ch, command, release).await;
                }
                // An idle session that died meanwhile: drop it and take another or a new one.
                Err(_) if !fresh => continue,
                Err(e) => anyhow::bail!(
                    "{}: cannot open a channel for `{command}`: {}",
                    HostLabel(&self.host),
                    message::russh_message(&e)
                ),
            }
        }
    }

    /// An idle session, else a new one. The flag is true for a new one.
    async fn session(&self) -> Result<(Session, bool)> {
        if let Some(s) = self.take_idle() {
            return Ok((s, false));
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(s) = self.take_idle() {
            return Ok((s, false));
        }
        let s = self.connect().await?;
        Ok((s, true))
    }

    fn take_idle(&self) -> Option<Session> {
        let mut idle = self.idle.lock().unwrap();
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }
}

/// Connections by host name, opened on first use and shared by every command of a run.
pub struct Pool {
    hosts: BTreeMap<String, HostConfig>,
    conns: Mutex<BTreeMap<String, Arc<tokio::sync::OnceCell<Arc<Connection>>>>>,
    notices: Notices,
}

impl Pool {
    pub fn new(hosts: BTreeMap<String, HostConfig>) -> Self {
        Pool {
            hosts,
            conns: Mutex::new(BTreeMap::new()),
            notices: Notices::default(),
        }
    }

    /// The connection to `host`, opened by the first caller; concurrent first callers wait for that
    /// one. A host with `jump` is reached through the pool's connection to its jump host, so every
    /// host behind one bastion shares it. A failed open is not remembered: the next call tries again.
    pub fn get<'a>(&'a self, host: &'a str) -> Pin<Box<dyn Future<Output = Result<Arc<Connection>>> + Send + 'a>> {
        // Boxed: a jump host may itself have a jump host.
        Box::pin(async move {
            let h = self
                .hosts
                .get(host)
                .ok_or_else(|| anyhow::anyhow!("undefined host {host:?}"))?;
            let cell = self.conns.lock().unwrap().entry(host.to_string()).or_default().clone();
            let conn = cell
                .get_or_try_init(|| async {
                    let via =
                        match &h.jump {
                            None => None,
                            Some(j) => Some(self.get(j).await.map_err(|e| {
                                e.context(format!("{}: cannot reach its jump host {j:?}", HostLabel(h)))
                            })?),
                        };
                    Connection::open_with(h.clone(), via, self.notices.clone())
                        .await
                        .map(Arc::new)
                })
                .await?;
            Ok(conn.clone())
        })
    }

    /// Host keys trusted on first use since the last call, on any connection of this pool.
    pub fn take_notices(&self) -> Vec<FirstUse> {
        std::mem::take(&mut *self.notices.lock().unwrap())
    }

    /// Time of one exec round trip (`true`) on the host's connection, opening it first if needed.
    pub async fn round_trip(&self, host: &str) -> Result<Duration> {
        let conn = self.get(host).await?;
        let start = Instant::now();
        let mut p = conn.exec("true").await?;
        drop(p.stdin.take());
        if let Some(mut out) = p.stdout.take() {
            let mut sink = Vec::new();
            out.read_to_end(&mut sink).await?;
        }
        let (code, stderr) = p.done.await?;
        if code != Some(0) {
            anyhow::bail!(
                "{}: `true` failed: {}",
                HostLabel(conn.host()),
                crate::text::describe_failure(code, &stderr)
            );
        }
        Ok(start.elapsed())
    }
}
