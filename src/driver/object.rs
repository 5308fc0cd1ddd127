//! The object kind's side of the seam: opening a pair's S3 locations from the config (endpoint,
//! region, bucket, prefix, credentials). Its replication is `crate::object` driven by
//! `engine::objects`; the snapshot `Driver` below only refuses, so a caller that reaches it by
//! mistake gets an error naming the pair's kind instead of a panic.

use anyhow::{anyhow, bail, Context, Result};
use futures::FutureExt;

use crate::config::{Config, Endpoint, ObjectHost};
use crate::driver::{Capabilities, Check, Descendant, Destroy, Driver, DriverError, Fut, Marks, Storage, VolumeInfo};
use crate::exec::Executor;
use crate::model::Kind;
use crate::object::client::{Client, Location};
use crate::object::creds::Credentials;

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

#[derive(Debug, Clone, Copy, Default)]
pub struct Object;

fn refuse<T>() -> Result<T> {
    bail!("object volumes have no snapshots: their pairs are replicated object by object")
}

impl Driver for Object {
    fn kind(&self) -> Kind {
        Kind::Object
    }
    fn snapshot_at(&self, vol: &Endpoint) -> String {
        format!("{}/", vol.path.trim_end_matches('/'))
    }
    fn tool(&self) -> &'static str {
        "an S3 endpoint"
    }
    fn caps_scope<'p>(&self, vol: &'p Endpoint) -> &'p str {
        &vol.path
    }
    fn probe<'a>(&'a self, _ex: &'a Executor, _vol: &'a Endpoint) -> Fut<'a, Capabilities> {
        async { refuse() }.boxed()
    }
    fn inspect<'a>(&'a self, _ex: &'a Executor, _vols: &'a [&'a Endpoint]) -> Fut<'a, Vec<VolumeInfo>> {
        async { refuse() }.boxed()
    }
    fn probe_and_inspect<'a>(
        &'a self,
        _ex: &'a Executor,
        _vols: &'a [&'a Endpoint],
    ) -> Fut<'a, (Capabilities, Vec<VolumeInfo>)> {
        async { refuse() }.boxed()
    }
    fn snapshot<'a>(&'a self, _ex: &'a Executor, _vol: &'a Endpoint, _snap: &'a str) -> Fut<'a, ()> {
        async { refuse() }.boxed()
    }
    fn estimate<'a>(
        &'a self,
        _ex: &'a Executor,
        _caps: &'a Capabilities,
        _vol: &'a Endpoint,
        _snap: &'a str,
        _from: Option<&'a str>,
    ) -> Fut<'a, Option<u64>> {
        async { refuse() }.boxed()
    }
    fn send_script(&self, _vol: &Endpoint, _snap: &str, _from: Option<&str>, _taken: bool) -> Result<String> {
        refuse()
    }
    fn sends_intermediates(&self) -> bool {
        false
    }
    fn receive_script(&self, _vol: &Endpoint, _snap: &str, _force: bool) -> Result<String> {
        refuse()
    }
    fn record_script(&self, _vol: &Endpoint, _marks: &Marks) -> Result<String> {
        refuse()
    }
    fn expose<'a>(&'a self, _ex: &'a Executor, _vol: &'a Endpoint) -> Fut<'a, ()> {
        async { refuse() }.boxed()
    }
    fn destroy_snapshots<'a>(
        &'a self,
        _ex: &'a Executor,
        _vol: &'a Endpoint,
        _snaps: &'a [String],
    ) -> Fut<'a, Vec<(String, Destroy)>> {
        async { refuse() }.boxed()
    }
    fn destroy_volume<'a>(&'a self, _ex: &'a Executor, _vol: &'a Endpoint) -> Fut<'a, ()> {
        async { refuse() }.boxed()
    }
    fn descendants<'a>(&'a self, _ex: &'a Executor, _vol: &'a Endpoint) -> Fut<'a, Vec<Descendant>> {
        async { refuse() }.boxed()
    }
    fn parent_exists<'a>(&'a self, _ex: &'a Executor, _vol: &'a Endpoint) -> Fut<'a, bool> {
        async { refuse() }.boxed()
    }
    fn prepare_parent<'a>(&'a self, _ex: &'a Executor, _vol: &'a Endpoint) -> Fut<'a, String> {
        async { refuse() }.boxed()
    }
    fn volume_checks(&self, _label: &str, _vol: &Endpoint, _caps: &Capabilities) -> Vec<Check> {
        Vec::new()
    }
    fn compatibility(&self, _source: &Capabilities, _destination: &Capabilities) -> Option<Check> {
        None
    }
    fn storage<'a>(&'a self, _ex: &'a Executor) -> Fut<'a, Vec<Storage>> {
        async { Ok(Vec::new()) }.boxed()
    }
    fn classify(&self, _vol: &Endpoint, _failed: &crate::exec::ExecError) -> Option<DriverError> {
        None
    }
}
