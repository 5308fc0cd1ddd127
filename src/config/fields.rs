//! Reading one table's keys into model values: pair options, hosts, endpoints, the console.
//! A bad key is reported on the context and a default stands in, so checking goes on.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use toml::Spanned;

use super::error::{check_key, expand_home, ConfigError};
pub(super) use super::keys::RawEntry;
use super::keys::{RawConsole, RawHost, RawObjectHost, HOST_KEYS, OBJECT_HOST_KEYS};
use super::model::*;
use super::names;
use super::tree::{Cx, Scalar, Table};
use super::units;
use crate::model::Home;

/// A btrfs source's snapshot directory when the pair names none, in the source's parent directory.
pub const DEFAULT_SNAPSHOT_DIR: &str = ".ferry-snapshots";

fn is_ipv6(address: &str) -> bool {
    address.parse::<std::net::Ipv6Addr>().is_ok()
}

impl Cx<'_> {
    pub(super) fn console(&self, raw: Option<&Table>) -> ConsoleConfig {
        let mut c = ConsoleConfig {
            theme: None,
            refresh: Duration::from_secs(10),
            keys: BTreeMap::new(),
        };
        let Some(r) = raw else { return c };
        let raw = RawConsole::read(r);
        if let Some(t) = raw.theme {
            if t.get_ref().is_empty() {
                self.report(self.err(t.span(), "theme", "must not be empty"));
            } else {
                c.theme = Some(t.get_ref().clone());
            }
        }
        if let Some(v) = raw.refresh {
            if let Some(d) = self.ok(self.duration(&v, "refresh")) {
                if d.as_secs() == 0 {
                    self.report(self.err(v.span(), "refresh", "must be at least 1s"));
                } else {
                    c.refresh = d;
                }
            }
        }
        let mut seen: HashMap<String, String> = HashMap::new();
        let Some(keys) = r.table("keys") else { return c };
        for (action, v) in keys.entries() {
            let action = action.get_ref().to_string();
            let name = format!("keys.{action}");
            let key = match v.get_ref() {
                toml::de::DeValue::String(s) => s.to_string(),
                _ => {
                    self.report(self.err(v.span(), &name, "expected a key name as a string, like \"u\""));
                    continue;
                }
            };
            if crate::model::ConsoleAction::from_word(&action).is_none() {
                let all: Vec<&str> = crate::model::ConsoleAction::ALL.iter().map(|a| a.word()).collect();
                self.report(self.err(
                    v.span(),
                    &name,
                    &format!("unknown console action (one of {})", all.join(", ")),
                ));
                continue;
            }
            if let Err(m) = check_key(&key) {
                self.report(self.err(v.span(), &name, &m));
                continue;
            }
            if let Some(other) = seen.insert(key.clone(), action.clone()) {
                self.report(self.err(v.span(), &name, &format!("key {key:?} is already bound to {other}")));
                continue;
            }
            c.keys.insert(action, key);
        }
        c
    }

    pub(super) fn duration(&self, v: &Spanned<Scalar>, key: &str) -> Result<Duration, ConfigError> {
        match v.get_ref() {
            Scalar::Int(n) if *n >= 0 => Ok(Duration::from_secs(*n as u64)),
            Scalar::Int(n) => Err(self.err(v.span(), key, &format!("bad duration {n}: must not be negative"))),
            Scalar::Str(s) => units::parse_duration(s).map_err(|m| self.err(v.span(), key, &m)),
        }
    }

    /// A duration key within `min..=max`: `None` when absent, and `None` with the error reported
    /// when bad.
    fn bounded_duration(
        &self,
        v: Option<Spanned<Scalar>>,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let v = v?;
        let d = self.ok(self.duration(&v, key))?;
        if d < min || d > max {
            self.report(self.err(
                v.span(),
                key,
                &format!(
                    "must be at least {} and at most {}",
                    units::format_duration(min),
                    units::format_duration(max)
                ),
            ));
            return None;
        }
        Some(d)
    }

    /// The options of a pair or of `[defaults]` over `base`; a bad key is reported and keeps `base`'s value.
    pub(super) fn options(&self, e: &RawEntry, base: &PairOptions) -> PairOptions {
        let mut o = base.clone();
        if let Some(t) = &e.transport {
            match t.get_ref().as_str() {
                "ssh" => o.transport = TransportKind::Ssh,
                "mbuffer" => o.transport = TransportKind::Mbuffer,
                "local" => o.transport = TransportKind::Local,
                other => self.report(self.err(
                    t.span(),
                    "transport",
                    &format!("unknown transport {other:?} (ssh, mbuffer, local)"),
                )),
            };
        }
        for (key, field, slot) in [
            ("wlag", &e.wlag, &mut o.wlag),
            ("clag", &e.clag, &mut o.clag),
            ("wrun", &e.wrun, &mut o.wrun),
            ("crun", &e.crun, &mut o.crun),
        ] {
            if let Some(v) = field {
                if let Some(d) = self.ok(self.duration(v, key)) {
                    *slot = d;
                }
            }
        }
        if let Some(b) = &e.bwlimit {
            if let Some(v) = self.bwlimit(b) {
                o.bwlimit = v;
            }
        }
        if let Some(c) = &e.compress {
            match c.get_ref().as_str() {
                "none" => o.compress = Compress::None,
                "zstd" => o.compress = Compress::Zstd,
                other => self.report(self.err(
                    c.span(),
                    "compress",
                    &format!("unknown compression {other:?} (none, zstd)"),
                )),
            };
        }
        if let Some(a) = &e.mbuffer_address {
            match names::check_address(a.get_ref()) {
                Ok(()) => o.mbuffer_address = Some(a.get_ref().clone()),
                Err(m) => self.report(self.err(a.span(), "mbuffer_address", &m)),
            }
        }
        // timeouts: a duration of at least a second
        for (key, raw, to) in [
            ("mbuffer_timeout", &e.mbuffer_timeout, &mut o.mbuffer_timeout),
            ("idle_timeout", &e.idle_timeout, &mut o.idle_timeout),
        ] {
            if let Some(t) = raw {
                if let Some(d) = self.ok(self.duration(t, key)) {
                    if d.as_secs() < 1 {
                        self.report(self.err(t.span(), key, "must be at least 1s"));
                    } else {
                        *to = d;
                    }
                }
            }
        }
        if let Some(r) = &e.raw {
            o.raw = *r.get_ref();
        }
        if let Some(p) = &e.properties {
            o.properties = *p.get_ref();
        }
        if let Some(k) = &e.keep {
            let v = *k.get_ref();
            if !(1..=10_000).contains(&v) {
                self.report(self.err(k.span(), "keep", &format!("keep = {v}: must be between 1 and 10000")));
            } else {
                o.keep = v as u32;
            }
        }
        // inherited values have no place in this entry: then the entry's header is the place
        if o.wlag > o.clag {
            let span = e
                .wlag
                .as_ref()
                .or(e.clag.as_ref())
                .map(|s| s.span())
                .unwrap_or(e.span.clone());
            self.report(self.err(span, "wlag", "wlag is larger than clag"));
        }
        if o.wrun > o.crun {
            let span = e
                .wrun
                .as_ref()
                .or(e.crun.as_ref())
                .map(|s| s.span())
                .unwrap_or(e.span.clone());
            self.report(self.err(span, "wrun", "wrun is larger than crun"));
        }
        o
    }

    /// Transport mbuffer runs `mbuffer -4`: an IPv6 listener address, or a source or destination
    /// host at an IPv6 address, cannot work, so it is refused here rather than at the first run.
    pub(super) fn mbuffer_ipv4(
        &self,
        e: &RawEntry,
        defaults: Option<&RawEntry>,
        source: &Endpoint,
        destination: &Endpoint,
        hosts: &BTreeMap<String, HostConfig>,
        host_lines: &HashMap<String, usize>,
    ) {
        const WHY: &str = "ferry runs mbuffer with -4 (IPv4 only): use an IPv4 address or transport \"ssh\"";
        let explicit = e
            .mbuffer_address
            .as_ref()
            .or(defaults.and_then(|d| d.mbuffer_address.as_ref()));
        if let Some(a) = explicit {
            if is_ipv6(a.get_ref()) {
                self.report(self.err(
                    a.span(),
                    "mbuffer_address",
                    &format!("mbuffer_address {} is IPv6; {WHY}", a.get_ref()),
                ));
            }
        }
        let at = e.transport.as_ref().map(|t| t.span()).unwrap_or(e.span.clone());
        // the destination's address matters only when it is the listener's (no explicit address)
        let ends = [(source, true), (destination, explicit.is_none())];
        for (end, relevant) in ends {
            let Some(h) = hosts.get(&end.host).filter(|_| relevant) else {
                continue;
            };
            if is_ipv6(&h.address) {
                self.report(self.err(
                    at.clone(),
                    "transport",
                    &format!(
                        "transport \"mbuffer\": host {} (line {}) has the IPv6 address {}; {WHY}",
                        h.name,
                        host_lines.get(&h.name).copied().unwrap_or(0),
                        h.address
                    ),
                ));
            }
        }
    }

    /// A `[hosts.NAME]` table; a bad key is reported and a default stands in, so pairs naming the
    /// host are still checked. The jump is returned with its place for the checks across hosts.
    pub(super) fn host(&self, name: &str, t: &Table) -> (HostConfig, Option<Spanned<String>>) {
        let r = RawHost::read(t);
        let address = match r.address {
            Some(a) => {
                if let Err(m) = names::check_address(a.get_ref()) {
                    self.report(self.err(a.span(), "address", &m));
                }
                a.get_ref().clone()
            }
            None => {
                if names::check_address(name).is_err() {
                    self.report(self.err(r.span.clone(), "address", &format!("host {name:?} needs an address")));
                }
                name.to_string()
            }
        };
        let port = match r.port {
            Some(p) if (1..=65535).contains(p.get_ref()) => *p.get_ref() as u16,
            Some(p) => {
                self.report(self.err(p.span(), "port", &format!("port {} is not in 1..65535", p.get_ref())));
                22
            }
            None => 22,
        };
        let user = match r.user {
            Some(u) => {
                if let Err(m) = names::check_user(u.get_ref()) {
                    self.report(self.err(u.span(), "user", &m));
                }
                u.get_ref().clone()
            }
            None => "root".to_string(),
        };
        let key = r.key.map(|k| expand_home(k.get_ref()));
        let known_hosts = r
            .known_hosts
            .map(|k| expand_home(k.get_ref()))
            .unwrap_or_else(|| expand_home("~/.ssh/known_hosts"));
        let trust_on_first_use = r.trust_on_first_use.is_some_and(|b| *b.get_ref());
        let jump = r.jump;
        let second = Duration::from_secs(1);
        let day = Duration::from_secs(86400);
        let connect_timeout = self
            .bounded_duration(r.connect_timeout, "connect_timeout", second, day)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let keepalive_interval = self
            .bounded_duration(r.keepalive_interval, "keepalive_interval", second, day)
            .unwrap_or(DEFAULT_KEEPALIVE_INTERVAL);
        let keepalive_count = match r.keepalive_count {
            Some(n) if (1..=1000).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                self.report(self.err(
                    n.span(),
                    "keepalive_count",
                    &format!("keepalive_count = {}: must be between 1 and 1000", n.get_ref()),
                ));
                DEFAULT_KEEPALIVE_COUNT
            }
            None => DEFAULT_KEEPALIVE_COUNT,
        };
        let ferry_path = match r.ferry_path {
            Some(f) => match names::check_command_path(f.get_ref()) {
                Ok(()) => f.get_ref().clone(),
                Err(m) => {
                    self.report(self.err(f.span(), "ferry_path", &m));
                    "ferry".to_string()
                }
            },
            None => "ferry".to_string(),
        };
        let host = HostConfig {
            name: name.to_string(),
            ferry_path,
            address,
            port,
            user,
            key,
            known_hosts,
            trust_on_first_use,
            jump: jump.as_ref().map(|j| j.get_ref().clone()),
            connect_timeout,
            keepalive_interval,
            keepalive_count,
        };
        (host, jump)
    }

    /// A `[hosts.NAME]` table with `endpoint`: an S3 endpoint. SSH keys there are refused by
    /// name (an object-store host is reached over its S3 API, not SSH).
    pub(super) fn object_host(&self, name: &str, t: &Table) -> ObjectHost {
        // refused by name, whatever their value: they belong to SSH hosts
        for (k, v) in t.entries().filter(|(k, _)| HOST_KEYS.contains(&k.get_ref().as_ref())) {
            let k = k.get_ref().as_ref();
            self.report(self.err(
                v.span(),
                k,
                &format!(
                    "host {name:?} has an endpoint (an object store reached over S3); {k} belongs to SSH hosts (an object-store host takes {})",
                    OBJECT_HOST_KEYS.join(", ")
                ),
            ));
        }
        t.unknown_keys(&[HOST_KEYS, OBJECT_HOST_KEYS].concat());
        let r = RawObjectHost::read_declared(t);
        let endpoint = match r.endpoint {
            Some(e) => {
                if let Err(m) = names::check_endpoint_url(e.get_ref()) {
                    self.report(self.err(e.span(), "endpoint", &m));
                }
                e.get_ref().trim_end_matches('/').to_string()
            }
            None => String::new(),
        };
        let region = match r.region {
            Some(r)
                if !r.get_ref().is_empty() && r.get_ref().chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
            {
                r.get_ref().clone()
            }
            Some(r) => {
                self.report(self.err(
                    r.span(),
                    "region",
                    &format!("region {:?}: letters, digits and '-' only (as us-east-1)", r.get_ref()),
                ));
                "us-east-1".to_string()
            }
            None => "us-east-1".to_string(),
        };
        let profile = r.profile.map(|p| {
            if p.get_ref().is_empty() || p.get_ref().contains([']', '[', '\n']) {
                self.report(self.err(p.span(), "profile", "a profile name: not empty, no brackets"));
            }
            p.get_ref().clone()
        });
        ObjectHost {
            name: name.to_string(),
            endpoint,
            region,
            credentials: r.credentials.map(|c| expand_home(c.get_ref())),
            profile,
        }
    }

    /// A `bwlimit` value in bytes per second ("50M" style; 0 = none); `None` after reporting a bad one.
    pub(super) fn bwlimit(&self, b: &Spanned<Scalar>) -> Option<u64> {
        let parsed = match b.get_ref() {
            Scalar::Int(0) => Ok(0),
            Scalar::Int(n) if *n < 0 => Err(format!("bad size {n}: must not be negative")),
            // a bare number is refused the same way as the string form, with what to write
            Scalar::Int(n) => units::parse_size(&n.to_string()),
            Scalar::Str(s) => units::parse_size(s),
        };
        match parsed {
            Ok(v) => Some(v),
            Err(m) => {
                self.report(self.err(b.span(), "bwlimit", &m));
                None
            }
        }
    }

    /// An object pair refuses, by name, the keys that shape a snapshot stream (set on the pair;
    /// inherited defaults do not apply to it).
    pub(super) fn object_pair_keys(&self, e: &RawEntry) {
        let spans = [
            ("transport", e.transport.as_ref().map(|s| s.span())),
            ("compress", e.compress.as_ref().map(|s| s.span())),
            ("keep", e.keep.as_ref().map(|s| s.span())),
            ("raw", e.raw.as_ref().map(|s| s.span())),
            ("properties", e.properties.as_ref().map(|s| s.span())),
            ("port", e.port.as_ref().map(|s| s.span())),
            ("mbuffer_address", e.mbuffer_address.as_ref().map(|s| s.span())),
            ("mbuffer_timeout", e.mbuffer_timeout.as_ref().map(|s| s.span())),
            ("idle_timeout", e.idle_timeout.as_ref().map(|s| s.span())),
        ];
        for (key, span) in spans {
            if let Some(span) = span {
                self.report(self.err(
                    span,
                    key,
                    &format!("{key} shapes a snapshot stream; an object pair copies objects over the S3 API (its keys: wlag, clag, wrun, crun, bwlimit)"),
                ));
            }
        }
    }

    /// Where a btrfs source's snapshots go: `snapshot_dir`, else `.ferry-snapshots` beside the
    /// source (in its parent directory, as btrbk keeps them in the volume, not inside the
    /// subvolume: snapshots nested in the source would leave placeholders in every later snapshot
    /// that the replica lacks). Setup checks that it is on the source's filesystem, which a btrfs
    /// snapshot needs. Other kinds keep snapshots with the volume and refuse the key.
    pub(super) fn snapshot_dir(&self, e: &RawEntry, kind: crate::model::Kind, source: &Endpoint) -> Option<String> {
        use crate::model::Kind;
        match (kind, &e.snapshot_dir) {
            (Kind::Btrfs | Kind::Block, Some(d)) => match crate::model::names::check_btrfs_path(d.get_ref()) {
                Ok(()) => Some(d.get_ref().clone()),
                Err(m) => {
                    self.report(self.err(d.span(), "snapshot_dir", &m));
                    None
                }
            },
            (Kind::Btrfs, None) => Some(match source.path.rsplit_once('/') {
                Some(("", _)) | None => format!("/{DEFAULT_SNAPSHOT_DIR}"),
                Some((parent, _)) => format!("{parent}/{DEFAULT_SNAPSHOT_DIR}"),
            }),
            (other, Some(d)) => {
                self.report(self.err(
                    d.span(),
                    "snapshot_dir",
                    &format!(
                        "snapshot_dir applies to btrfs and block pairs; a {} pair keeps its snapshots with the volume",
                        other.word()
                    ),
                ));
                None
            }
            (_, None) => None,
        }
    }

    /// "host:path" or "path" (local). The host must be defined; the path must follow the name
    /// rule of the volume's kind (for ZFS: a valid dataset with room for ferry's snapshot names).
    pub(super) fn endpoint(
        &self,
        s: &Spanned<String>,
        key: &str,
        hosts: &BTreeMap<String, HostConfig>,
        objects: &BTreeMap<String, ObjectHost>,
        kind: crate::model::Kind,
    ) -> Result<Endpoint, ConfigError> {
        let text = s.get_ref();
        let (host, path) = match text.split_once(':') {
            Some((h, p)) if !h.contains('/') => (h.to_string(), p.to_string()),
            _ => (LOCAL.to_string(), text.clone()),
        };
        let object_host = objects.contains_key(&host);
        if host != LOCAL && !hosts.contains_key(&host) && !object_host {
            return Err(self.err(
                s.span(),
                key,
                &format!("undefined host {host:?} (add a [hosts.{host}] table)"),
            ));
        }
        if kind.home() == Home::Host && object_host {
            return Err(self.err(
                s.span(),
                key,
                &format!(
                    "host {host:?} is an object-store endpoint: a {} volume lives on an SSH host or local (kind = \"object\" for buckets)",
                    kind.word()
                ),
            ));
        }
        if kind.home() == Home::ObjectStore && !object_host {
            return Err(self.err(
                s.span(),
                key,
                &format!(
                    "an object volume is host:bucket[/prefix] on a host with an endpoint; {host:?} is {}",
                    if host == LOCAL {
                        "this machine (no S3 endpoint)".to_string()
                    } else {
                        "an SSH host".to_string()
                    }
                ),
            ));
        }
        kind.check_path(&path).map_err(|m| self.err(s.span(), key, &m))?;
        Ok(Endpoint::new(host, path))
    }
}

impl Cx<'_> {
    /// A block pair's sides: `snapshot` and `chunk` read and checked, each side's ferry and state
    /// directory placed. Other kinds refuse the two keys.
    pub(super) fn block_sides(
        &self,
        e: &RawEntry,
        kind: crate::model::Kind,
        pair: &mut Pair,
        hosts: &BTreeMap<String, HostConfig>,
    ) {
        use crate::model::Kind;
        if kind != Kind::Block {
            for (key, span) in [
                ("snapshot", e.snapshot.as_ref().map(|s| s.span())),
                ("chunk", e.chunk.as_ref().map(|s| s.span())),
            ] {
                if let Some(span) = span {
                    self.report(self.err(
                        span,
                        key,
                        &format!("{key} applies to block pairs; this pair's kind is {}", kind.word()),
                    ));
                }
            }
            return;
        }
        let reflink = match &e.snapshot {
            None => false,
            Some(s) => match s.get_ref().as_str() {
                "none" => false,
                "reflink" => true,
                other => {
                    self.report(self.err(
                        s.span(),
                        "snapshot",
                        &format!("unknown snapshot {other:?} (none, reflink; LVM snapshots are not built)"),
                    ));
                    false
                }
            },
        };
        let chunk = match &e.chunk {
            None => crate::model::chunk::DEFAULT_CHUNK,
            Some(c) => {
                let parsed = match c.get_ref() {
                    Scalar::Int(n) => units::parse_size(&n.to_string()),
                    Scalar::Str(s) => units::parse_size(s),
                };
                match parsed.and_then(|n| {
                    u32::try_from(n)
                        .ok()
                        .filter(|n| crate::model::chunk::chunk_size_ok(*n))
                        .ok_or_else(|| {
                            format!(
                                "chunk must be a multiple of 4K between 4K and {}M",
                                crate::model::chunk::MAX_CHUNK >> 20
                            )
                        })
                }) {
                    Ok(n) => n,
                    Err(m) => {
                        self.report(self.err(c.span(), "chunk", &m));
                        crate::model::chunk::DEFAULT_CHUNK
                    }
                }
            }
        };
        if pair.options.transport == TransportKind::Mbuffer {
            let span = e.transport.as_ref().map(|t| t.span()).unwrap_or(e.span.clone());
            self.report(self.err(
                span,
                "transport",
                "transport \"mbuffer\" carries one-way streams; a block pair's two ferry peers talk both ways: use ssh (or local)",
            ));
        }
        let ferry = |host: &str| match hosts.get(host) {
            Some(h) => h.ferry_path.clone(),
            // this machine's peer is this very binary
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.to_str().map(str::to_string))
                .unwrap_or_else(|| "ferry".to_string()),
        };
        let fp = pair.fingerprint();
        let compress = pair.options.compress == Compress::Zstd;
        let idle_timeout = pair.options.idle_timeout.as_secs();
        pair.source.block = Some(BlockSide {
            source: true,
            ferry: ferry(&pair.source.host),
            state: crate::model::names::block_source_state(&pair.source.path, pair.source.snapshot_dir.as_deref(), &fp),
            chunk,
            reflink,
            compress,
            idle_timeout,
        });
        pair.destination.block = Some(BlockSide {
            source: false,
            ferry: ferry(&pair.destination.host),
            state: crate::model::names::block_replica_state(&pair.destination.path),
            chunk,
            reflink: false,
            compress,
            idle_timeout,
        });
    }
}

/// The kind a `kind` key names.
pub(super) fn parse_kind(cx: &Cx, k: &Spanned<String>) -> Result<Kind, ConfigError> {
    if let Some(kind) = Kind::from_word(k.get_ref()) {
        return Ok(kind);
    }
    Err(cx.err(
        k.span(),
        "kind",
        &format!("unknown kind {:?} (zfs, btrfs, block, object)", k.get_ref()),
    ))
}
