//! Reading the TOML file into the model, with every error naming the file, the line and the key.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::model::*;
use super::names;
use super::units;

/// A config error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else if self.key.is_empty() {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}: key `{}`: {}",
                self.file.display(),
                self.line,
                self.key,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Integers or strings, as operators write `wlag = "2h"` or `wlag = 7200`.
#[derive(Debug, Clone)]
enum Scalar {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string like \"2h\" or \"50M\", or a whole number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<Spanned<String>>,
    max_jobs: Option<Spanned<i64>>,
    max_jobs_per_host: Option<Spanned<i64>>,
    defaults: Option<Spanned<RawEntry>>,
    #[serde(default)]
    hosts: BTreeMap<String, Spanned<RawHost>>,
    #[serde(default, rename = "pair")]
    pairs: Vec<Spanned<RawEntry>>,
    #[serde(default, rename = "cluster")]
    clusters: Vec<Spanned<RawCluster>>,
    console: Option<RawConsole>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawConsole {
    theme: Option<Spanned<String>>,
    refresh: Option<Spanned<Scalar>>,
    #[serde(default)]
    keys: BTreeMap<String, Spanned<String>>,
}

/// "u", "U", "?", "enter", "ctrl-r", "alt-x", "f5": one key, optionally with one modifier.
pub fn check_key(spec: &str) -> Result<(), String> {
    let base = ["ctrl-", "alt-", "shift-"]
        .iter()
        .find_map(|m| spec.strip_prefix(m))
        .unwrap_or(spec);
    let named = [
        "enter",
        "esc",
        "tab",
        "backtab",
        "space",
        "up",
        "down",
        "left",
        "right",
        "home",
        "end",
        "pageup",
        "pagedown",
        "delete",
        "backspace",
        "insert",
    ];
    let ok = base.chars().count() == 1
        || named.contains(&base)
        || base
            .strip_prefix('f')
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| (1..=12).contains(&n));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{spec:?} is not a key (a character, enter, esc, tab, space, arrows, f1..f12, with ctrl-/alt-/shift-)"
        ))
    }
}

/// A `[[pair]]` or the `[defaults]` table: the same keys, the pair-only ones refused in defaults.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    kind: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    destination: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    transport: Option<Spanned<String>>,
    wlag: Option<Spanned<Scalar>>,
    clag: Option<Spanned<Scalar>>,
    wrun: Option<Spanned<Scalar>>,
    crun: Option<Spanned<Scalar>>,
    bwlimit: Option<Spanned<Scalar>>,
    compress: Option<Spanned<String>>,
    keep: Option<Spanned<i64>>,
    mbuffer_address: Option<Spanned<String>>,
    mbuffer_timeout: Option<Spanned<Scalar>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawHost {
    address: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    user: Option<Spanned<String>>,
    key: Option<Spanned<String>>,
    known_hosts: Option<Spanned<String>>,
    trust_on_first_use: Option<bool>,
    jump: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<Scalar>>,
    keepalive_interval: Option<Spanned<Scalar>>,
    keepalive_count: Option<Spanned<i64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Spanned<String>,
    persist_path: Spanned<String>,
    #[serde(default)]
    volumes: Vec<Spanned<RawVolume>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawVolume {
    at: Spanned<String>,
    #[serde(default)]
    listen: bool,
    #[serde(default)]
    update: bool,
}

/// Where the config is looked for: `-c`, `$FERRY_CONFIG`, /etc/ferry/ferry.toml, ~/.config/ferry/ferry.toml.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Ok(p) = std::env::var("FERRY_CONFIG") {
        if !p.is_empty() {
            return Ok(PathBuf::from(p));
        }
    }
    let mut tried = vec![PathBuf::from("/etc/ferry/ferry.toml")];
    if let Some(home) = dirs::home_dir() {
        tried.push(home.join(".config/ferry/ferry.toml"));
    }
    for p in &tried {
        if p.exists() {
            return Ok(p.clone());
        }
    }
    Err(format!(
        "no config file: give -c FILE or set FERRY_CONFIG (looked in {})",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        key: String::new(),
        message: format!("cannot read config: {e}"),
    })?;
    parse(path, &text)
}

/// Validates config text; `path` is used only in messages and to resolve nothing else.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let cx = Cx::new(path, text);
    let raw: RawConfig = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;

    let state_dir = match &raw.state_dir {
        Some(s) if s.get_ref().is_empty() => return Err(cx.err(s.span(), "state_dir", "must not be empty")),
        Some(s) => expand_home(s.get_ref()),
        None => PathBuf::from("/var/lib/ferry"),
    };

    let base = PairOptions::default();
    let defaults = match &raw.defaults {
        Some(d) => {
            let e = d.get_ref();
            for (key, present) in [
                ("source", e.source.as_ref().map(|s| s.span())),
                ("destination", e.destination.as_ref().map(|s| s.span())),
                ("port", e.port.as_ref().map(|s| s.span())),
            ] {
                if let Some(span) = present {
                    return Err(cx.err(span, key, "belongs in a [[pair]], not in [defaults]"));
                }
            }
            if let Some(k) = &e.kind {
                parse_kind(&cx, k)?;
            }
            cx.options(e, &base)?
        }
        None => base,
    };

    let mut hosts = BTreeMap::new();
    for (name, h) in &raw.hosts {
        let span = h.span();
        names::check_host_name(name).map_err(|m| cx.err(span.clone(), &format!("hosts.{name}"), &m))?;
        if name == LOCAL {
            return Err(cx.err(span, &format!("hosts.{name}"), "`local` is reserved for this machine"));
        }
        hosts.insert(name.clone(), cx.host(name, h)?);
    }
    cx.check_jumps(&raw.hosts, &hosts)?;

    let mut pairs = Vec::new();
    let mut seen_dest: HashMap<Endpoint, usize> = HashMap::new();
    let mut seen_port: HashMap<u16, usize> = HashMap::new();
    for p in &raw.pairs {
        let e = p.get_ref();
        let line = cx.line(p.span().start);
        let kind = match &e.kind {
            Some(k) => parse_kind(&cx, k)?,
            None => Kind::Zfs,
        };
        let source = match &e.source {
            Some(s) => cx.endpoint(s, "source", &hosts)?,
            None => return Err(cx.err_line(line, "source", "a [[pair]] needs a source")),
        };
        let destination = match &e.destination {
            Some(s) => cx.endpoint(s, "destination", &hosts)?,
            None => return Err(cx.err_line(line, "destination", "a [[pair]] needs a destination")),
        };
        if let Some(first) = seen_dest.insert(destination.clone(), line) {
            let span = e.destination.as_ref().unwrap().span();
            return Err(cx.err(
                span,
                "destination",
                &format!("duplicate destination {destination}: the pair at line {first} already writes there"),
            ));
        }
        if source == destination {
            let span = e.destination.as_ref().unwrap().span();
            return Err(cx.err(span, "destination", "destination is the same as the source"));
        }
        let port = match &e.port {
            Some(p) => {
                let v = *p.get_ref();
                if !(1..=65535).contains(&v) {
                    return Err(cx.err(p.span(), "port", &format!("port {v} is not in 1..65535")));
                }
                let v = v as u16;
                if let Some(first) = seen_port.insert(v, line) {
                    return Err(cx.err(
                        p.span(),
                        "port",
                        &format!("duplicate mbuffer port {v}: the pair at line {first} already uses it"),
                    ));
                }
                Some(v)
            }
            None => None,
        };
        let options = cx.options(e, &defaults)?;
        if options.transport == TransportKind::Local && !(source.is_local() && destination.is_local()) {
            let span = e.transport.as_ref().map(|t| t.span()).unwrap_or(p.span());
            return Err(cx.err(
                span,
                "transport",
                "transport \"local\" needs a local source and destination",
            ));
        }
        if options.transport == TransportKind::Local && options.compress != Compress::None {
            if let Some(c) = &e.compress {
                return Err(cx.err(
                    c.span(),
                    "compress",
                    "transport \"local\" sends nothing over a wire: compression needs transport ssh or mbuffer",
                ));
            }
        }
        if options.transport == TransportKind::Mbuffer && port.is_none() {
            return Err(cx.err_line(line, "port", "transport \"mbuffer\" needs a port"));
        }
        let mut options = options;
        if options.transport == TransportKind::Mbuffer && options.mbuffer_address.is_none() {
            match hosts.get(&destination.host) {
                Some(h) => options.mbuffer_address = Some(h.address.clone()),
                None => {
                    return Err(cx.err_line(
                        line,
                        "mbuffer_address",
                        "transport \"mbuffer\" with a local destination needs mbuffer_address: the address the source reaches this machine at",
                    ))
                }
            }
        }
        pairs.push(Pair {
            kind,
            source,
            destination,
            port,
            options,
            line,
        });
    }

    let mut clusters = Vec::new();
    let mut seen_cluster: HashMap<String, usize> = HashMap::new();
    for c in &raw.clusters {
        let rc = c.get_ref();
        let name = rc.name.get_ref().clone();
        names::check_host_name(&name)
            .map_err(|m| cx.err(rc.name.span(), "name", &m.replace("host name", "cluster name")))?;
        if let Some(first) = seen_cluster.insert(name.clone(), cx.line(c.span().start)) {
            return Err(cx.err(
                rc.name.span(),
                "name",
                &format!("duplicate cluster {name:?} (first at line {first})"),
            ));
        }
        if rc.persist_path.get_ref().is_empty() {
            return Err(cx.err(rc.persist_path.span(), "persist_path", "must not be empty"));
        }
        let mut volumes = Vec::new();
        for v in &rc.volumes {
            let vol = v.get_ref();
            volumes.push(ClusterVolume {
                at: cx.endpoint(&vol.at, "at", &hosts)?,
                listen: vol.listen,
                update: vol.update,
            });
        }
        clusters.push(Cluster {
            name,
            persist_path: expand_home(rc.persist_path.get_ref()),
            volumes,
        });
    }

    let console = cx.console(raw.console.as_ref())?;
    let mut limits = [4usize, 2usize];
    for (i, (key, v)) in [
        ("max_jobs", &raw.max_jobs),
        ("max_jobs_per_host", &raw.max_jobs_per_host),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(v) = v {
            let n = *v.get_ref();
            if !(1..=256).contains(&n) {
                return Err(cx.err(v.span(), key, &format!("{key} = {n}: must be between 1 and 256")));
            }
            limits[i] = n as usize;
        }
    }
    let [max_jobs, max_jobs_per_host] = limits;
    Ok(Config {
        path: path.to_path_buf(),
        state_dir,
        defaults,
        hosts,
        pairs,
        clusters,
        console,
        max_jobs,
        max_jobs_per_host,
    })
}

fn parse_kind(cx: &Cx, k: &Spanned<String>) -> Result<Kind, ConfigError> {
    match k.get_ref().as_str() {
        "zfs" => Ok(Kind::Zfs),
        "btrfs" | "block" | "object" => Err(cx.err(
            k.span(),
            "kind",
            &format!(
                "kind {:?} is not supported by this version of ferry yet (only \"zfs\")",
                k.get_ref()
            ),
        )),
        other => Err(cx.err(
            k.span(),
            "kind",
            &format!("unknown kind {other:?} (zfs, btrfs, block, object)"),
        )),
    }
}

/// Expands a leading `~/` to the home directory.
pub fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = dirs::home_dir() {
            return home.join(rest);
        }
    }
    PathBuf::from(p)
}

struct Cx<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offset where each line starts: a line lookup is a binary search, not a scan, so
    /// configs with ten thousand pairs load in linear time.
    line_starts: Vec<usize>,
}

impl<'a> Cx<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Cx {
            file,
            text,
            line_starts,
        }
    }

    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    fn err(&self, span: std::ops::Range<usize>, key: &str, message: &str) -> ConfigError {
        self.err_line(self.line(span.start), key, message)
    }

    fn err_line(&self, line: usize, key: &str, message: &str) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    /// Turns a TOML syntax or type error into ours, finding the key from the line it points at.
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let line = if e.span().is_some() { self.line(offset) } else { 0 };
        let mut message = e.message().trim().to_string();
        let mut key = String::new();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            if let Some(end) = rest.find('`') {
                key = rest[..end].to_string();
                message = format!(
                    "unknown key (expected one of{}",
                    rest[end + 1..]
                        .trim_start_matches(", expected one of")
                        .trim_start_matches(", expected")
                );
                if !message.ends_with(')') {
                    message.push(')');
                }
            }
        } else if let Some(text) = self.text.lines().nth(line.saturating_sub(1)) {
            if let Some((k, _)) = text.split_once('=') {
                key = k.trim().to_string();
            }
        }
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            key,
            message,
        }
    }

    fn console(&self, raw: Option<&RawConsole>) -> Result<ConsoleConfig, ConfigError> {
        let mut c = ConsoleConfig {
            theme: None,
            refresh: std::time::Duration::from_secs(10),
            keys: BTreeMap::new(),
        };
        let Some(r) = raw else { return Ok(c) };
        if let Some(t) = &r.theme {
            if t.get_ref().is_empty() {
                return Err(self.err(t.span(), "theme", "must not be empty"));
            }
            c.theme = Some(t.get_ref().clone());
        }
        if let Some(v) = &r.refresh {
            c.refresh = self.duration(v, "refresh")?;
            if c.refresh.as_secs() == 0 {
                return Err(self.err(v.span(), "refresh", "must be at least 1s"));
            }
        }
        let mut seen: HashMap<String, String> = HashMap::new();
        for (action, key) in &r.keys {
            let name = format!("keys.{action}");
            if !CONSOLE_ACTIONS.contains(&action.as_str()) {
                return Err(self.err(
                    key.span(),
                    &name,
                    &format!("unknown console action (one of {})", CONSOLE_ACTIONS.join(", ")),
                ));
            }
            check_key(key.get_ref()).map_err(|m| self.err(key.span(), &name, &m))?;
            if let Some(other) = seen.insert(key.get_ref().clone(), action.clone()) {
                return Err(self.err(
                    key.span(),
                    &name,
                    &format!("key {:?} is already bound to {other}", key.get_ref()),
                ));
            }
            c.keys.insert(action.clone(), key.get_ref().clone());
        }
        Ok(c)
    }

    fn duration(&self, v: &Spanned<Scalar>, key: &str) -> Result<std::time::Duration, ConfigError> {
        match v.get_ref() {
            Scalar::Int(n) if *n >= 0 => Ok(std::time::Duration::from_secs(*n as u64)),
            Scalar::Int(n) => Err(self.err(v.span(), key, &format!("bad duration {n}: must not be negative"))),
            Scalar::Str(s) => units::parse_duration(s).map_err(|m| self.err(v.span(), key, &m)),
        }
    }

    fn options(&self, e: &RawEntry, base: &PairOptions) -> Result<PairOptions, ConfigError> {
        let mut o = base.clone();
        if let Some(t) = &e.transport {
            o.transport = match t.get_ref().as_str() {
                "ssh" => TransportKind::Ssh,
                "mbuffer" => TransportKind::Mbuffer,
                "local" => TransportKind::Local,
                other => {
                    return Err(self.err(
                        t.span(),
                        "transport",
                        &format!("unknown transport {other:?} (ssh, mbuffer, local)"),
                    ))
                }
            };
        }
        for (key, field, slot) in [
            ("wlag", &e.wlag, &mut o.wlag),
            ("clag", &e.clag, &mut o.clag),
            ("wrun", &e.wrun, &mut o.wrun),
            ("crun", &e.crun, &mut o.crun),
        ] {
            if let Some(v) = field {
                *slot = self.duration(v, key)?;
            }
        }
        if let Some(b) = &e.bwlimit {
            o.bwlimit = match b.get_ref() {
                Scalar::Int(n) if *n >= 0 => *n as u64,
                Scalar::Int(n) => {
                    return Err(self.err(b.span(), "bwlimit", &format!("bad size {n}: must not be negative")))
                }
                Scalar::Str(s) => units::parse_size(s).map_err(|m| self.err(b.span(), "bwlimit", &m))?,
            };
        }
        if let Some(c) = &e.compress {
            o.compress = match c.get_ref().as_str() {
                "none" => Compress::None,
                "zstd" => Compress::Zstd,
                other => {
                    return Err(self.err(
                        c.span(),
                        "compress",
                        &format!("unknown compression {other:?} (none, zstd)"),
                    ))
                }
            };
        }
        if let Some(a) = &e.mbuffer_address {
            names::check_address(a.get_ref()).map_err(|m| self.err(a.span(), "mbuffer_address", &m))?;
            o.mbuffer_address = Some(a.get_ref().clone());
        }
        if let Some(t) = &e.mbuffer_timeout {
            o.mbuffer_timeout = self.duration(t, "mbuffer_timeout")?;
            if o.mbuffer_timeout.as_secs() < 1 {
                return Err(self.err(t.span(), "mbuffer_timeout", "must be at least 1s"));
            }
        }
        if let Some(k) = &e.keep {
            let v = *k.get_ref();
            if !(1..=10_000).contains(&v) {
                return Err(self.err(k.span(), "keep", &format!("keep = {v}: must be between 1 and 10000")));
            }
            o.keep = v as u32;
        }
        if o.wlag > o.clag {
            let span = e.wlag.as_ref().or(e.clag.as_ref()).map(|s| s.span()).unwrap_or(0..0);
            return Err(self.err(span, "wlag", "wlag is larger than clag"));
        }
        if o.wrun > o.crun {
            let span = e.wrun.as_ref().or(e.crun.as_ref()).map(|s| s.span()).unwrap_or(0..0);
            return Err(self.err(span, "wrun", "wrun is larger than crun"));
        }
        Ok(o)
    }

    fn host(&self, name: &str, h: &Spanned<RawHost>) -> Result<HostConfig, ConfigError> {
        let r = h.get_ref();
        let address = match &r.address {
            Some(a) => {
                names::check_address(a.get_ref()).map_err(|m| self.err(a.span(), "address", &m))?;
                a.get_ref().clone()
            }
            None => {
                names::check_address(name)
                    .map_err(|_| self.err(h.span(), "address", &format!("host {name:?} needs an address")))?;
                name.to_string()
            }
        };
        let port = match &r.port {
            Some(p) if (1..=65535).contains(p.get_ref()) => *p.get_ref() as u16,
            Some(p) => return Err(self.err(p.span(), "port", &format!("port {} is not in 1..65535", p.get_ref()))),
            None => 22,
        };
        let user = match &r.user {
            Some(u) => {
                names::check_user(u.get_ref()).map_err(|m| self.err(u.span(), "user", &m))?;
                u.get_ref().clone()
            }
            None => "root".to_string(),
        };
        let key = r.key.as_ref().map(|k| expand_home(k.get_ref()));
        let known_hosts = r
            .known_hosts
            .as_ref()
            .map(|k| expand_home(k.get_ref()))
            .unwrap_or_else(|| expand_home("~/.ssh/known_hosts"));
        let connect_timeout = match &r.connect_timeout {
            Some(t) => self.duration(t, "connect_timeout")?,
            None => std::time::Duration::from_secs(15),
        };
        if connect_timeout.is_zero() {
            let span = r.connect_timeout.as_ref().map(|t| t.span()).unwrap_or(0..0);
            return Err(self.err(span, "connect_timeout", "must be at least 1s"));
        }
        let keepalive_interval = match &r.keepalive_interval {
            Some(t) => self.duration(t, "keepalive_interval")?,
            None => std::time::Duration::from_secs(10),
        };
        if keepalive_interval.is_zero() {
            let span = r.keepalive_interval.as_ref().map(|t| t.span()).unwrap_or(0..0);
            return Err(self.err(span, "keepalive_interval", "must be at least 1s"));
        }
        let keepalive_count = match &r.keepalive_count {
            Some(c) if (1..=1000).contains(c.get_ref()) => *c.get_ref() as u32,
            Some(c) => {
                return Err(self.err(
                    c.span(),
                    "keepalive_count",
                    &format!("keepalive_count = {}: must be between 1 and 1000", c.get_ref()),
                ))
            }
            None => 3,
        };
        let jump = match &r.jump {
            Some(j) => {
                names::check_host_name(j.get_ref()).map_err(|m| self.err(j.span(), "jump", &m))?;
                if j.get_ref() == LOCAL || j.get_ref() == name {
                    return Err(self.err(
                        j.span(),
                        "jump",
                        &format!("host {name:?} cannot be reached through {:?}", j.get_ref()),
                    ));
                }
                Some(j.get_ref().clone())
            }
            None => None,
        };
        Ok(HostConfig {
            name: name.to_string(),
            address,
            port,
            user,
            key,
            known_hosts,
            trust_on_first_use: r.trust_on_first_use.unwrap_or(false),
            jump,
            connect_timeout,
            keepalive_interval,
            keepalive_count,
        })
    }

    /// Every `jump` names a defined host, and following them never comes back to where it started.
    fn check_jumps(
        &self,
        raw: &BTreeMap<String, Spanned<RawHost>>,
        hosts: &BTreeMap<String, HostConfig>,
    ) -> Result<(), ConfigError> {
        for (name, h) in hosts {
            let Some(first) = &h.jump else { continue };
            let span = raw[name].get_ref().jump.as_ref().map(|j| j.span()).unwrap_or(0..0);
            let mut seen = vec![name.as_str()];
            let mut next = Some(first);
            while let Some(j) = next {
                let Some(hop) = hosts.get(j) else {
                    return Err(self.err(span, "jump", &format!("undefined host {j:?} (add a [hosts.{j}] table)")));
                };
                if seen.contains(&j.as_str()) {
                    seen.push(j);
                    return Err(self.err(span, "jump", &format!("jump hosts form a loop: {}", seen.join(" -> "))));
                }
                seen.push(j);
                next = hop.jump.as_ref();
            }
        }
        Ok(())
    }

    /// "host:pool/fs" or "pool/fs" (local). The host must be defined; the path must be a valid dataset.
    fn endpoint(
        &self,
        s: &Spanned<String>,
        key: &str,
        hosts: &BTreeMap<String, HostConfig>,
    ) -> Result<Endpoint, ConfigError> {
        let text = s.get_ref();
        let (host, path) = match text.split_once(':') {
            Some((h, p)) if !h.contains('/') => (h.to_string(), p.to_string()),
            _ => (LOCAL.to_string(), text.clone()),
        };
        if host != LOCAL && !hosts.contains_key(&host) {
            return Err(self.err(
                s.span(),
                key,
                &format!("undefined host {host:?} (add a [hosts.{host}] table)"),
            ));
        }
        names::check_dataset(&path).map_err(|m| self.err(s.span(), key, &m))?;
        Ok(Endpoint { host, path })
    }
}
