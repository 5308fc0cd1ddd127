//! Public-key authentication: the configured key file, else ssh-agent identities, else the usual
//! ~/.ssh/id_* files. RSA signs with rsa-sha2-512/256. Key material is never logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use super::files::{self, FileError};
use super::message::russh_message;
use crate::config::HostConfig;
use russh::client::{Handle, Handler};

/// Default identity files tried (in `~/.ssh`) when no key is configured and the agent did not do.
pub const DEFAULT_KEYS: &[&str] = &["id_ed25519", "id_ecdsa", "id_rsa"];

/// Why a key file cannot be used.
#[derive(Debug)]
pub enum KeyFileError {
    Missing,
    Unreadable(String),
    Encrypted,
    Invalid(String),
}

/// Loads an unencrypted private key file (a regular file of at most [`files::KEY_FILE_CAP`]).
pub fn load_key(path: &Path) -> Result<PrivateKey, KeyFileError> {
    let bytes = match files::read_regular(path, files::KEY_FILE_CAP) {
        Ok(b) => b,
        Err(FileError::Missing) => return Err(KeyFileError::Missing),
        Err(e) => return Err(KeyFileError::Unreadable(e.to_string())),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(KeyFileError::Invalid("it is not text".into()));
    };
    match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => Ok(k),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(KeyFileError::Encrypted),
        Err(e) => Err(KeyFileError::Invalid(e.to_string())),
    }
}

/// The message for a configured key that cannot be used.
pub fn key_file_message(path: &Path, e: &KeyFileError) -> String {
    let p = path.display();
    match e {
        KeyFileError::Missing => format!("key file {p} does not exist"),
        KeyFileError::Unreadable(why) => format!("key file {p} cannot be read: {why}"),
        KeyFileError::Encrypted => {
            format!("key file {p} is passphrase-protected; load it into ssh-agent and leave `key` unset")
        }
        KeyFileError::Invalid(why) => format!("key file {p} is not a usable private key: {why}"),
    }
}

/// Authenticates `session` as `host.user`.
pub async fn authenticate<H: Handler>(session: &mut Handle<H>, host: &HostConfig) -> Result<()> {
    let mut tried: Vec<String> = Vec::new();
    if let Some(path) = &host.key {
        let key = load_key(path).map_err(|e| anyhow::anyhow!("host {}: {}", host.name, key_file_message(path, &e)))?;
        if try_key(session, host, key).await? {
            return Ok(());
        }
        tried.push(format!("key {}", path.display()));
        return Err(failed(host, &tried));
    }

    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        match try_agent(session, host).await {
            Ok((true, _)) => return Ok(()),
            Ok((false, n)) => tried.push(format!("ssh-agent ({n} keys)")),
            Err(why) => tried.push(format!("ssh-agent ({why})")),
        }
    }

    let home = dirs::home_dir().unwrap_or_else(|| PathBuf::from("/root"));
    for name in DEFAULT_KEYS {
        let path = home.join(".ssh").join(name);
        match load_key(&path) {
            Ok(key) => {
                if try_key(session, host, key).await? {
                    return Ok(());
                }
                tried.push(path.display().to_string());
            }
            Err(KeyFileError::Missing) => {}
            Err(KeyFileError::Encrypted) => tried.push(format!("{} (passphrase-protected, skipped)", path.display())),
            Err(KeyFileError::Unreadable(why) | KeyFileError::Invalid(why)) => {
                tried.push(format!("{} (unusable: {why})", path.display()))
            }
        }
    }
    if tried.is_empty() {
        tried.push("no ssh-agent and no key in ~/.ssh".into());
    }
    Err(failed(host, &tried))
}

fn failed(host: &HostConfig, tried: &[String]) -> anyhow::Error {
    anyhow::anyhow!(
        "host {}: authentication as {} failed (tried: {})",
        host.name,
        host.user,
        tried.join(", ")
    )
}

/// The hash to sign with for an RSA key: the best the server announces, else rsa-sha2-256.
async fn rsa_hash<H: Handler>(session: &Handle<H>) -> Option<HashAlg> {
    match session.best_supported_rsa_hash().await {
        Ok(Some(h)) => h,
        _ => Some(HashAlg::Sha256),
    }
}

async fn try_key<H: Handler>(session: &mut Handle<H>, host: &HostConfig, key: PrivateKey) -> Result<bool> {
    let hash = if key.algorithm().is_rsa() {
        rsa_hash(session).await
    } else {
        None
    };
    let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
    match session.authenticate_publickey(host.user.clone(), key).await {
        Ok(r) => Ok(r.success()),
        Err(e) => anyhow::bail!(
            "host {}: authentication as {} failed: {}",
            host.name,
            host.user,
            russh_message(&e)
        ),
    }
}

/// Tries every plain key the agent holds. Returns (success, number of keys tried).
async fn try_agent<H: Handler>(session: &mut Handle<H>, host: &HostConfig) -> Result<(bool, usize), String> {
    let mut agent = AgentClient::connect_env()
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    let ids = agent
        .request_identities()
        .await
        .map_err(|e| format!("listing keys: {e}"))?;
    let mut n = 0;
    for id in ids {
        let AgentIdentity::PublicKey { key, .. } = id else {
            continue;
        };
        n += 1;
        let hash = if key.algorithm().is_rsa() {
            rsa_hash(session).await
        } else {
            None
        };
        match session
            .authenticate_publickey_with(host.user.clone(), key, hash, &mut agent)
            .await
        {
            Ok(r) if r.success() => return Ok((true, n)),
            Ok(_) => {}
            // The agent declined or failed to sign with this key: try the next one.
            Err(_) => {}
        }
    }
    Ok((false, n))
}
