//! Opening an object volume from the config: its host's endpoint and region, its bucket and
//! prefix, and the credentials read now (never printed). Object pairs and clusters both open
//! their volumes here; `engine::objects` replicates them.

use anyhow::{anyhow, Context, Result};

use super::client::{Client, Location};
use super::creds::Credentials;
use crate::config::{Config, Endpoint, ObjectHost};

/// The object-store host an object volume names.
pub fn host<'c>(config: &'c Config, vol: &Endpoint) -> Result<&'c ObjectHost> {
    config
        .object_hosts
        .get(&vol.host)
        .ok_or_else(|| anyhow!("{vol}: host {:?} has no endpoint (not an object-store host)", vol.host))
}

/// Where an object volume is: its host's endpoint and region, its bucket and prefix.
pub fn location(config: &Config, vol: &Endpoint) -> Result<Location> {
    let h = host(config, vol)?;
    Ok(Location::new(&h.endpoint, &h.region, &vol.path))
}

/// A client for an object volume, its keys read now from the host's credentials file (or the
/// AWS_* environment). Errors name the host and the file, never a key.
pub fn open(config: &Config, vol: &Endpoint) -> Result<Client> {
    let h = host(config, vol)?;
    let creds = Credentials::load(h.credentials.as_deref(), h.profile.as_deref())
        .with_context(|| format!("host {}: credentials", h.name))?;
    // said once a process per file (a job opens its clients many times); stderr is the job's log
    static SAID: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    if let Some(path) = h.credentials.as_deref() {
        if let Some(w) = Credentials::exposure(path) {
            let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
            if !said.iter().any(|p| p == path) {
                said.push(path.to_path_buf());
                eprintln!("ferry: warning: host {}: {w}", h.name);
            }
        }
    }
    Client::new(&location(config, vol)?, &creds).with_context(|| format!("{vol}"))
}
