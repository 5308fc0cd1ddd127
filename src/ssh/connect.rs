//! Opening one authenticated russh session to a host: TCP (or a tunnel through its jump host) with
//! a timeout, tuned client config, host key verification through known_hosts, then authentication.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use russh::client::{self, Handle};
use russh::keys::{Algorithm, PublicKeyOrCertificate};
use russh::{cipher, Preferred};
use tokio::io::{AsyncRead, AsyncWrite};

use super::auth;
use super::known_hosts::{self, FirstUse, HostLabel, Trust};
use super::message::{io_message, russh_message};
use super::tunnel::Tunnel;
use crate::config::HostConfig;

/// Longest wait for key exchange and authentication after TCP is up.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// AES-GCM first: with AES-NI it is the fastest cipher here (see DESIGN.md).
static CIPHERS: &[cipher::Name] = &[
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// The client configuration for a session to `host`: its keepalives, and host-key algorithms with
/// those known_hosts records for it first (`key_algorithms`).
pub fn client_config(host: &HostConfig, key_algorithms: Vec<Algorithm>) -> Arc<client::Config> {
    Arc::new(client::Config {
        nodelay: true,
        keepalive_interval: Some(host.keepalive_interval),
        keepalive_max: host.keepalive_count as usize,
        inactivity_timeout: None,
        window_size: 8 * 1024 * 1024,
        channel_buffer_size: 128,
        preferred: Preferred {
            cipher: Cow::Borrowed(CIPHERS),
            key: Cow::Owned(key_algorithms),
            ..Preferred::DEFAULT
        },
        ..Default::default()
    })
}

/// The russh handler: checks the server key, remembers why it refused one, and what it trusted on
/// first use (for the caller to tell the operator).
pub struct Client {
    host: HostConfig,
    refusal: Arc<Mutex<Option<String>>>,
    notices: Notices,
}

/// Keys trusted on first use, collected for whoever shows them to the operator.
pub type Notices = Arc<Mutex<Vec<FirstUse>>>;

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
            Ok(Trust::Known) => Ok(true),
            Ok(Trust::FirstUse(note)) => {
                self.notices.lock().unwrap().push(note);
                Ok(true)
            }
            Err(e) => {
                *self.refusal.lock().unwrap() = Some(format!("{e:#}"));
                Ok(false)
            }
        }
    }
}

pub type Session = Handle<Client>;

/// The byte stream a session runs over: a TCP connection, or a tunnel through a jump host.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// Connects to `host` (through `via`, a session to its jump host, when given), verifies its key and
/// authenticates as its user.
pub async fn open(host: &HostConfig, via: Option<(&HostConfig, &Session)>, notices: &Notices) -> Result<Session> {
    let label = HostLabel(host);
    // Read before connecting: a bad file is reported as such, not as a failed handshake.
    let key_algorithms = known_hosts::key_algorithms(&known_hosts::read(host)?, &host.address, host.port);
    let timeout = host.connect_timeout;
    let stream: Box<dyn Stream> = match via {
        None => {
            match tokio::time::timeout(
                timeout,
                tokio::net::TcpStream::connect((host.address.as_str(), host.port)),
            )
            .await
            {
                Err(_) => anyhow::bail!("{label}: connection timed out after {}s", timeout.as_secs()),
                Ok(Err(e)) => anyhow::bail!("{label}: {}", io_message(&e)),
                Ok(Ok(s)) => {
                    s.set_nodelay(true).ok();
                    Box::new(s)
                }
            }
        }
        Some((jump, session)) => {
            let jump_label = HostLabel(jump);
            let open = session.channel_open_direct_tcpip(host.address.as_str(), host.port as u32, "127.0.0.1", 0);
            match tokio::time::timeout(timeout, open).await {
                Err(_) => anyhow::bail!(
                    "{label}: no tunnel through jump {jump_label} within {}s",
                    timeout.as_secs()
                ),
                Ok(Err(e)) => anyhow::bail!(
                    "{label}: jump {jump_label} could not open a tunnel to it: {}",
                    russh_message(&e)
                ),
                Ok(Ok(ch)) => Box::new(Tunnel::new(ch)),
            }
        }
    };
    let refusal = Arc::new(Mutex::new(None));
    let handler = Client {
        host: host.clone(),
        refusal: refusal.clone(),
        notices: notices.clone(),
    };
    let config = client_config(host, key_algorithms);
    let handshake = async {
        let mut session = match client::connect_stream(config, stream, handler).await {
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
