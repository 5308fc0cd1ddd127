//! Opening one authenticated russh session to a host: TCP with a timeout, tuned client config,
//! host key verification through known_hosts, then authentication.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, Result};
use russh::client::{self, Handle};
use russh::keys::PublicKeyOrCertificate;
use russh::{cipher, Preferred};

use super::auth;
use super::known_hosts::{self, HostLabel};
use crate::config::HostConfig;

/// Longest wait for the TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for key exchange and authentication after TCP is up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Silence after which a keepalive is sent; after `KEEPALIVE_MAX` unanswered ones the link is dead.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_MAX: usize = 3;

/// AES-GCM first: with AES-NI it is the fastest cipher here (see DESIGN.md).
static CIPHERS: &[cipher::Name] = &[
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// The client configuration every session uses.
pub fn client_config() -> Arc<client::Config> {
    static CONFIG: OnceLock<Arc<client::Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            Arc::new(client::Config {
                nodelay: true,
                keepalive_interval: Some(KEEPALIVE_INTERVAL),
                keepalive_max: KEEPALIVE_MAX,
                inactivity_timeout: None,
                window_size: 8 * 1024 * 1024,
                channel_buffer_size: 128,
                preferred: Preferred {
                    cipher: Cow::Borrowed(CIPHERS),
                    ..Preferred::DEFAULT
                },
                ..Default::default()
            })
        })
        .clone()
}

/// The russh handler: checks the server key and remembers why it refused one.
pub struct Client {
    host: HostConfig,
    refusal: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let verdict = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => known_hosts::verify(&self.host, key),
            PublicKeyOrCertificate::Certificate(_) => Err(anyhow!(
                "{}: the server presented a host certificate; ferry checks plain host keys only",
                HostLabel(&self.host)
            )),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(e) => {
                *self.refusal.lock().unwrap() = Some(format!("{e:#}"));
                Ok(false)
            }
        }
    }
}

pub type Session = Handle<Client>;

/// Connects to `host`, verifies its key and authenticates as its user.
pub async fn open(host: &HostConfig) -> Result<Session> {
    let label = HostLabel(host);
    let stream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.address.as_str(), host.port)),
    )
    .await
    {
        Err(_) => anyhow::bail!("{label}: connection timed out after {}s", CONNECT_TIMEOUT.as_secs()),
        Ok(Err(e)) => anyhow::bail!("{label}: {}", io_message(&e)),
        Ok(Ok(s)) => s,
    };
    stream.set_nodelay(true).ok();
    let refusal = Arc::new(Mutex::new(None));
    let handler = Client {
        host: host.clone(),
        refusal: refusal.clone(),
    };
    let handshake = async {
        let mut session = match client::connect_stream(client_config(), stream, handler).await {
            Ok(s) => s,
            Err(e) => {
                if let Some(msg) = refusal.lock().unwrap().take() {
                    return Err(anyhow!(msg));
                }
                return Err(anyhow!("{label}: ssh handshake failed: {}", russh_message(&e)));
            }
        };
        auth::authenticate(&mut session, host).await?;
        Ok(session)
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Err(_) => anyhow::bail!("{label}: no ssh handshake within {}s", HANDSHAKE_TIMEOUT.as_secs()),
        Ok(r) => r,
    }
}

/// "connection refused" rather than "Connection refused (os error 111)".
fn io_message(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        TimedOut => "connection timed out".into(),
        ConnectionReset => "connection reset".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

pub(crate) fn russh_message(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io_message(io),
        russh::Error::Disconnect => "the server closed the connection".into(),
        russh::Error::NoCommonAlgo { .. } => {
            format!("no algorithm in common with the server ({e})")
        }
        other => other.to_string(),
    }
}
