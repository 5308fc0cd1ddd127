//! The validated configuration model that every other layer reads: hosts, pairs, clusters, options.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The name a config uses for this machine.
pub const LOCAL: &str = "local";

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (for messages).
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub defaults: PairOptions,
    pub hosts: BTreeMap<String, HostConfig>,
    /// `[hosts.NAME]` tables with an `endpoint`: S3 endpoints, which object pairs name as hosts.
    pub object_hosts: BTreeMap<String, ObjectHost>,
    pub pairs: Vec<Pair>,
    pub clusters: Vec<Cluster>,
    /// `[coordination]`, when instances coordinate through an engine.
    pub coordination: Option<CoordConfig>,
    pub console: ConsoleConfig,
    /// `update --all`: most jobs at once overall (top-level `max_jobs`, default 4).
    pub max_jobs: usize,
    /// `update --all`: most jobs at once touching one host as source or destination
    /// (top-level `max_jobs_per_host`, default 2; each job uses up to 3 SSH channels of the host's
    /// one connection, and sshd's MaxSessions defaults to 10).
    pub max_jobs_per_host: usize,
}

/// The `[console]` table: look and keys of the full-screen console.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// A built-in theme name (dark, light, high-contrast) or a theme TOML file.
    pub theme: Option<String>,
    /// How often pair status is re-read from the hosts.
    pub refresh: Duration,
    /// Action name -> key ("u", "ctrl-r", "f5", "enter").
    pub keys: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Private key file; `None` means: try the ssh-agent, then ~/.ssh/id_ed25519 and id_rsa.
    pub key: Option<PathBuf>,
    pub known_hosts: PathBuf,
    /// Accept and record an unknown host key on first contact. A changed key is refused regardless.
    pub trust_on_first_use: bool,
    /// ferry on this host, for kinds that run it there (block): `ferry_path`, default "ferry".
    pub ferry_path: String,
    /// Reach this host through another configured host (OpenSSH's ProxyJump). Validated at load:
    /// a defined host, never `local`, no cycle.
    pub jump: Option<String>,
    /// Longest wait for the TCP connection (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Silence after which a keepalive is sent (default [`DEFAULT_KEEPALIVE_INTERVAL`]).
    pub keepalive_interval: Duration,
    /// Unanswered keepalives after which the connection is dead (default [`DEFAULT_KEEPALIVE_COUNT`]).
    pub keepalive_count: u32,
}

/// An object-store endpoint (`[hosts.NAME]` with `endpoint`): no SSH, an S3 API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHost {
    pub name: String,
    /// `http://host:port` or `https://…`.
    pub endpoint: String,
    pub region: String,
    /// An AWS shared-credentials file; `None`: the AWS_* environment variables. Only the path is
    /// kept here: the keys are read when a job starts and never printed.
    pub credentials: Option<PathBuf>,
    /// The profile in `credentials` (default "default").
    pub profile: Option<String>,
}

impl ObjectHost {
    /// Plain http to anything but this machine: keys are signed, but the objects travel readable.
    pub fn unencrypted(&self) -> bool {
        plain_http_beyond_loopback(&self.endpoint)
    }
}

/// True for an `http://` URL to anything but this machine: what travels there is readable.
pub fn plain_http_beyond_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    !matches!(host, "localhost" | "127.0.0.1" | "[::1]") && !host.starts_with("127.")
}

impl CoordConfig {
    /// Plain http to an etcd member beyond this machine: lock names and hosts travel readable,
    /// and so would the password and token when `auth` is set.
    pub fn unencrypted(&self) -> bool {
        self.endpoints.iter().any(|e| plain_http_beyond_loopback(e))
    }

    /// Why anyone who reaches etcd (or the network to it) could take or break ferry's locks, if
    /// they can: `check` says it plainly.
    pub fn open_to_anyone(&self) -> Option<&'static str> {
        match (&self.auth, self.unencrypted()) {
            (None, _) => Some("no etcd authentication (user, password_file): anyone who reaches etcd can take or break ferry's locks"),
            (Some(_), true) => Some("plain http beyond loopback: the password and token cross the network readable, so whoever sees the traffic can take or break ferry's locks"),
            (Some(_), false) => None,
        }
    }
}

/// `connect_timeout` when a host does not set it: room for a slow WAN handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// `keepalive_interval` when a host does not set it (the SSH layer's former fixed value).
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// `keepalive_count` when a host does not set it (the SSH layer's former fixed value).
pub const DEFAULT_KEEPALIVE_COUNT: u32 = 3;

pub use crate::model::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Ssh,
    Mbuffer,
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    None,
    Zstd,
}

/// Options every pair inherits from `[defaults]` and may override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairOptions {
    pub transport: TransportKind,
    pub wlag: Duration,
    pub clag: Duration,
    pub wrun: Duration,
    pub crun: Duration,
    /// Bytes per second; 0 = unlimited.
    pub bwlimit: u64,
    pub compress: Compress,
    pub keep: u32,
    /// transport "mbuffer": the address the source reaches the destination's listener at
    /// (default: the destination host's `address`; required when the destination is local).
    pub mbuffer_address: Option<String>,
    /// transport "mbuffer": a listener that gets no connection (or no data) this long ends the run.
    pub mbuffer_timeout: Duration,
    /// A transfer in which nothing moves this long (no bytes, no progress, no heartbeat) is
    /// given up, naming the side that went silent (`idle_timeout`).
    pub idle_timeout: Duration,
    /// An encrypted source is sent raw (ZFS `send -w`): the destination never needs the key and
    /// never stores plaintext. `raw = false` sends it decrypted (the operator's choice, said by
    /// setup).
    pub raw: bool,
    /// ZFS: the dataset's properties go with the stream (`send -p`); the replica's `mountpoint`
    /// stays the destination's (`receive -x mountpoint`), so it never mounts over the source's
    /// path on the destination host (`properties`).
    pub properties: bool,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            transport: TransportKind::Ssh,
            wlag: Duration::from_secs(2 * 3600),
            clag: Duration::from_secs(86400),
            wrun: Duration::from_secs(3600),
            crun: Duration::from_secs(6 * 3600),
            bwlimit: 0,
            compress: Compress::None,
            keep: 3,
            mbuffer_address: None,
            mbuffer_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            raw: true,
            properties: false,
        }
    }
}

/// One side of a pair: a host as the config names it (`local` for this machine) and a path on it.
/// Two endpoints are the same volume when host and path are (what else they carry is how the
/// pair uses it).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub path: String,
    /// Where this volume's snapshots are kept when not under the volume itself (a btrfs source's
    /// `snapshot_dir`); `None` for kinds and sides that keep them with the volume.
    pub snapshot_dir: Option<String>,
    /// A block volume's side: the ferry that runs there and what it is asked to do.
    pub block: Option<BlockSide>,
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        (&self.host, &self.path) == (&other.host, &other.path)
    }
}

impl Eq for Endpoint {}

impl std::hash::Hash for Endpoint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.host, &self.path).hash(state)
    }
}

impl PartialOrd for Endpoint {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Endpoint {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.host, &self.path).cmp(&(&other.host, &other.path))
    }
}

/// What a block volume's side needs beyond its path (built at load from the pair and its host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSide {
    /// The source's side (else the replica's).
    pub source: bool,
    /// ferry on the volume's host (the host's `ferry_path`; this very binary for `local`).
    pub ferry: String,
    /// The side's state directory: manifests, journal, the point-in-time copy.
    pub state: String,
    /// Change-detection granularity in bytes (`chunk`).
    pub chunk: u32,
    /// Read a reflink copy of the source (`snapshot = "reflink"`) instead of the live source.
    pub reflink: bool,
    /// zstd-compress changed chunks on the wire.
    pub compress: bool,
    /// Seconds the peer waits for the other before giving up (the pair's `idle_timeout`).
    pub idle_timeout: u64,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Endpoint {
        Endpoint {
            host: host.into(),
            path: path.into(),
            snapshot_dir: None,
            block: None,
        }
    }

    /// A volume on this machine.
    pub fn local(path: impl Into<String>) -> Endpoint {
        Endpoint::new(LOCAL, path)
    }

    pub fn is_local(&self) -> bool {
        self.host == LOCAL
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.path)
    }
}

#[derive(Debug, Clone)]
pub struct Pair {
    pub kind: Kind,
    pub source: Endpoint,
    pub destination: Endpoint,
    /// mbuffer listening port on the destination.
    pub port: Option<u16>,
    pub options: PairOptions,
    /// Line of the `[[pair]]` header in the config file.
    pub line: usize,
    /// Take over a replica another tool made (`adopt = "zettabee"`) instead of a full initialize.
    pub adopt: Option<Adopt>,
    /// The volume and every descendant (ZFS filesystems and volumes), each with its own
    /// checkpoint; new children are picked up by the next run.
    pub recursive: bool,
}

/// Tools whose replicas ferry can take over without a full resend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Adopt {
    Zettabee,
}

impl Pair {
    /// zettabee's fingerprint: MD5 hex of "<shost>:<sfs>::<dhost>:<dfs>".
    pub fn fingerprint(&self) -> String {
        use md5::{Digest, Md5};
        let text = format!(
            "{}:{}::{}:{}",
            self.source.host, self.source.path, self.destination.host, self.destination.path
        );
        hex::encode(Md5::digest(text.as_bytes()))
    }
}

#[derive(Debug, Clone)]
pub struct ClusterVolume {
    pub at: Endpoint,
    pub kind: Kind,
    pub listen: bool,
    pub update: bool,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub persist_path: PathBuf,
    /// How long changes settle before they fan out (`settle`, default 5 s).
    pub settle: Duration,
    /// How often `cluster run` lists its listen volumes (`poll`, default 1 s).
    pub poll: Duration,
    /// Bytes per second over all of the cluster's copies (`bwlimit`); 0 = none.
    pub bwlimit: u64,
    /// Who may work it: one local instance, or whoever holds its lease in the engine.
    pub coordination: Coordination,
    pub volumes: Vec<ClusterVolume>,
}

/// The engine several instances coordinate through (`[coordination]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordEngine {
    Etcd,
}

/// `[coordination]`: an existing distributed engine that instances sharing this config agree
/// through. With it, a pair's lock is a lease there too, and clusters may say `coordination = "etcd"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordConfig {
    pub engine: CoordEngine,
    /// `http://host:port` of each member, tried in order.
    pub endpoints: Vec<String>,
    /// The lease (whole seconds, 2 s to 5 min): a dead holder's work is taken over within it.
    pub lease: Duration,
    /// Where ferry's keys live in the engine (`/ferry` unless set).
    pub prefix: String,
    /// etcd's user and the file holding its password (`user`, `password_file`); `None`: no
    /// authentication, so anyone who reaches etcd can take or break ferry's locks.
    pub auth: Option<CoordAuth>,
    /// How https endpoints are checked and how ferry proves itself to them.
    pub tls: CoordTls,
}

/// etcd authentication: a user and the file its password is read from when ferry authenticates
/// (only the path is in the config, so neither `Debug` nor `check` can show the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordAuth {
    pub user: String,
    pub password_file: PathBuf,
}

/// TLS to https endpoints: the CA that signed etcd's certificate (`ca_file`; else the system's
/// roots) and a client certificate with its key (`cert_file`, `key_file`) for etcd's
/// `--client-cert-auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoordTls {
    pub ca_file: Option<PathBuf>,
    pub client: Option<(PathBuf, PathBuf)>,
}

/// How a cluster's instances agree on who works it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coordination {
    /// One instance, a lock in `persist_path`.
    Local,
    /// Whoever holds the cluster's lease in the engine; the others stand by.
    Engine(CoordConfig),
}

impl Config {
    pub fn host(&self, name: &str) -> Option<&HostConfig> {
        self.hosts.get(name)
    }
}
