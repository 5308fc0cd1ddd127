//! Reading the TOML file into the model, with every error naming the file, the line and the key.
//! Checking goes on after an error, so one run lists every problem of the file.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::model::*;
use super::names;
use super::overlap;
use super::read;
use super::tree::{Cx, Scalar, Table};
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

/// Every error of one config file, in file order; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    fn one(e: ConfigError) -> Self {
        ConfigErrors { errors: vec![e] }
    }

    /// The first error (file order).
    pub fn first(&self) -> &ConfigError {
        &self.errors[0]
    }
}

/// One error per line; more than one ends with the count.
impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.errors.len() > 1 {
            write!(f, "\n{} errors in the config", self.errors.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

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

/// Keys of a `[[pair]]` and of `[defaults]` (which refuses the pair-only ones).
const ENTRY_KEYS: &[&str] = &[
    "kind",
    "source",
    "destination",
    "port",
    "transport",
    "wlag",
    "clag",
    "wrun",
    "crun",
    "bwlimit",
    "compress",
    "keep",
    "mbuffer_address",
    "mbuffer_timeout",
];

const HOST_KEYS: &[&str] = &[
    "address",
    "port",
    "user",
    "key",
    "known_hosts",
    "trust_on_first_use",
    "jump",
    "connect_timeout",
    "keepalive_interval",
    "keepalive_count",
];

const TOP_KEYS: &[&str] = &[
    "state_dir",
    "max_jobs",
    "max_jobs_per_host",
    "defaults",
    "hosts",
    "pair",
    "cluster",
    "console",
];

/// A `[[pair]]` or the `[defaults]` table: the same keys, the pair-only ones refused in defaults.
#[derive(Debug, Default)]
struct RawEntry {
    /// The table's header.
    span: Range<usize>,
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

impl RawEntry {
    fn read(t: &Table) -> Self {
        t.unknown_keys(ENTRY_KEYS);
        RawEntry {
            span: t.span.clone(),
            kind: t.str("kind"),
            source: t.str("source"),
            destination: t.str("destination"),
            port: t.int("port"),
            transport: t.str("transport"),
            wlag: t.scalar("wlag"),
            clag: t.scalar("clag"),
            wrun: t.scalar("wrun"),
            crun: t.scalar("crun"),
            bwlimit: t.scalar("bwlimit"),
            compress: t.str("compress"),
            keep: t.int("keep"),
            mbuffer_address: t.str("mbuffer_address"),
            mbuffer_timeout: t.scalar("mbuffer_timeout"),
        }
    }
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

/// Reads and validates a config file: a regular file of at most 16 MiB of UTF-8.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let bytes = read::read_capped(path).map_err(|message| {
        ConfigErrors::one(ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            message,
        })
    })?;
    let (text, bad) = read::decode(bytes);
    check(path, &text, bad)
}

/// Validates config text; `path` is used only in messages and to resolve nothing else.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    check(path, text, None)
}

fn check(path: &Path, text: &str, bad: Option<read::BadByte>) -> Result<Config, ConfigErrors> {
    let cx = Cx::new(path, text);
    if let Some(b) = bad {
        cx.report(cx.err_line(
            b.line,
            "",
            &format!("byte {} is not UTF-8 (a config is UTF-8 text)", b.offset),
        ));
    }
    let config = build(&cx);
    let errors = cx.take_errors();
    match config {
        Some(c) if errors.is_empty() => Ok(c),
        _ if !errors.is_empty() => Err(ConfigErrors { errors }),
        // every path that gives up reports why first; this keeps a slip from passing a bad config
        _ => Err(ConfigErrors::one(cx.err_line(1, "", "config not understood"))),
    }
}

/// The whole model, with every problem reported on `cx`; `None` when the text is not TOML at all.
fn build(cx: &Cx) -> Option<Config> {
    let (doc, syntax) = toml::de::DeTable::parse_recoverable(cx.text);
    if !syntax.is_empty() {
        // the parser recovers and goes on, but later complaints on a line are echoes of the first
        let mut lines = std::collections::HashSet::new();
        for e in &syntax {
            let e = cx.toml_error(e);
            if lines.insert(e.line) {
                cx.report(e);
            }
        }
        return None;
    }
    let root = Table::new(cx, doc.get_ref(), 0..0);
    root.unknown_keys(TOP_KEYS);

    let state_dir = match root.str("state_dir") {
        Some(s) if s.get_ref().is_empty() => {
            cx.report(cx.err(s.span(), "state_dir", "must not be empty"));
            PathBuf::new()
        }
        Some(s) => expand_home(s.get_ref()),
        None => PathBuf::from("/var/lib/ferry"),
    };

    let base = PairOptions::default();
    let raw_defaults = root.table("defaults").map(|t| RawEntry::read(&t));
    let defaults = match &raw_defaults {
        Some(e) => {
            for (key, present) in [
                ("source", e.source.as_ref().map(|s| s.span())),
                ("destination", e.destination.as_ref().map(|s| s.span())),
                ("port", e.port.as_ref().map(|s| s.span())),
            ] {
                if let Some(span) = present {
                    cx.report(cx.err(span, key, "belongs in a [[pair]], not in [defaults]"));
                }
            }
            if let Some(k) = &e.kind {
                cx.ok(parse_kind(cx, k));
            }
            cx.options(e, &base)
        }
        None => base,
    };

    let mut hosts = BTreeMap::new();
    let mut host_lines: HashMap<String, usize> = HashMap::new();
    let mut jumps: BTreeMap<String, Spanned<String>> = BTreeMap::new();
    if let Some(ht) = root.table("hosts") {
        for (k, v) in ht.entries() {
            let name = k.get_ref().to_string();
            let key = format!("hosts.{name}");
            let Some(t) = Table::as_table(cx, &key, v) else {
                continue;
            };
            if let Err(m) = names::check_host_name(&name) {
                cx.report(cx.err(t.span.clone(), &key, &m));
            }
            if name == LOCAL {
                cx.report(cx.err(t.span.clone(), &key, "`local` is reserved for this machine"));
            }
            let (host, jump) = cx.host(&name, &t);
            if let Some(j) = jump {
                jumps.insert(name.clone(), j);
            }
            host_lines.insert(name.clone(), t.line());
            hosts.insert(name, host);
        }
    }
    overlap::check_jumps(cx, &jumps, &hosts);

    let mut pairs = Vec::new();
    let mut spans = Vec::new();
    let mut seen_dest: HashMap<Endpoint, usize> = HashMap::new();
    let mut seen_port: HashMap<u16, usize> = HashMap::new();
    for p in root.tables("pair") {
        let e = RawEntry::read(&p);
        let line = p.line();
        let kind = match &e.kind {
            Some(k) => cx.ok(parse_kind(cx, k)),
            None => Some(Kind::Zfs),
        };
        let source = match &e.source {
            Some(s) => cx.ok(cx.endpoint(s, "source", &hosts)),
            None => {
                cx.report(cx.err_line(line, "source", "a [[pair]] needs a source"));
                None
            }
        };
        let destination = match &e.destination {
            Some(s) => cx.ok(cx.endpoint(s, "destination", &hosts)),
            None => {
                cx.report(cx.err_line(line, "destination", "a [[pair]] needs a destination"));
                None
            }
        };
        let port = match &e.port {
            Some(p) => {
                let v = *p.get_ref();
                if !(1..=65535).contains(&v) {
                    cx.report(cx.err(p.span(), "port", &format!("port {v} is not in 1..65535")));
                    None
                } else {
                    let v = v as u16;
                    if let Some(first) = seen_port.insert(v, line) {
                        cx.report(cx.err(
                            p.span(),
                            "port",
                            &format!("duplicate mbuffer port {v}: the pair at line {first} already uses it"),
                        ));
                    }
                    Some(v)
                }
            }
            None => None,
        };
        let options = cx.options(&e, &defaults);
        if options.transport == TransportKind::Local && options.compress != Compress::None {
            if let Some(c) = &e.compress {
                cx.report(cx.err(
                    c.span(),
                    "compress",
                    "transport \"local\" sends nothing over a wire: compression needs transport ssh or mbuffer",
                ));
            }
        }
        if options.transport == TransportKind::Mbuffer && e.port.is_none() {
            cx.report(cx.err_line(line, "port", "transport \"mbuffer\" needs a port"));
        }
        // the checks below need both ends; a bad one has been reported already
        let (Some(kind), Some(source), Some(destination)) = (kind, source, destination) else {
            continue;
        };
        let dest_span = e.destination.as_ref().map(|s| s.span()).unwrap_or(p.span.clone());
        if let Some(first) = seen_dest.insert(destination.clone(), line) {
            cx.report(cx.err(
                dest_span.clone(),
                "destination",
                &format!("duplicate destination {destination}: the pair at line {first} already writes there"),
            ));
        }
        if source == destination {
            cx.report(cx.err(
                dest_span.clone(),
                "destination",
                "destination is the same as the source",
            ));
        }
        if options.transport == TransportKind::Local && !(source.is_local() && destination.is_local()) {
            let span = e.transport.as_ref().map(|t| t.span()).unwrap_or(p.span.clone());
            cx.report(cx.err(
                span,
                "transport",
                "transport \"local\" needs a local source and destination",
            ));
        }
        let mut options = options;
        if options.transport == TransportKind::Mbuffer && options.mbuffer_address.is_none() {
            match hosts.get(&destination.host) {
                Some(h) => options.mbuffer_address = Some(h.address.clone()),
                None => {
                    cx.report(cx.err_line(
                        line,
                        "mbuffer_address",
                        "transport \"mbuffer\" with a local destination needs mbuffer_address: the address the source reaches this machine at",
                    ))
                }
            }
        }
        if options.transport == TransportKind::Mbuffer {
            cx.mbuffer_ipv4(&e, raw_defaults.as_ref(), &source, &destination, &hosts, &host_lines);
        }
        spans.push(overlap::PairSpans {
            source: e.source.as_ref().map(|s| s.span()).unwrap_or(p.span.clone()),
            destination: dest_span,
        });
        pairs.push(Pair {
            kind,
            source,
            destination,
            port,
            options,
            line,
        });
    }
    overlap::check_pairs(cx, &pairs, &spans);

    let mut clusters = Vec::new();
    let mut seen_cluster: HashMap<String, usize> = HashMap::new();
    for c in root.tables("cluster") {
        c.unknown_keys(&["name", "persist_path", "volumes"]);
        let name = match c.str("name") {
            Some(n) => {
                if let Err(m) = names::check_host_name(n.get_ref()) {
                    cx.report(cx.err(n.span(), "name", &m.replace("host name", "cluster name")));
                }
                if let Some(first) = seen_cluster.insert(n.get_ref().clone(), c.line()) {
                    cx.report(cx.err(
                        n.span(),
                        "name",
                        &format!("duplicate cluster {:?} (first at line {first})", n.get_ref()),
                    ));
                }
                n.get_ref().clone()
            }
            None => {
                cx.report(cx.err_line(c.line(), "name", "a [[cluster]] needs a name"));
                String::new()
            }
        };
        let persist_path = match c.str("persist_path") {
            Some(p) if p.get_ref().is_empty() => {
                cx.report(cx.err(p.span(), "persist_path", "must not be empty"));
                PathBuf::new()
            }
            Some(p) => expand_home(p.get_ref()),
            None => {
                cx.report(cx.err_line(c.line(), "persist_path", "a [[cluster]] needs a persist_path"));
                PathBuf::new()
            }
        };
        let mut volumes = Vec::new();
        for v in c.tables("volumes") {
            v.unknown_keys(&["at", "listen", "update"]);
            let listen = v.bool("listen").is_some_and(|b| *b.get_ref());
            let update = v.bool("update").is_some_and(|b| *b.get_ref());
            let at = match v.str("at") {
                Some(at) => cx.ok(cx.endpoint(&at, "at", &hosts)),
                None => {
                    cx.report(cx.err(v.span.clone(), "at", "a volume needs `at`"));
                    None
                }
            };
            if let Some(at) = at {
                volumes.push(ClusterVolume { at, listen, update });
            }
        }
        clusters.push(Cluster {
            name,
            persist_path,
            volumes,
        });
    }

    let console = cx.console(root.table("console").as_ref());
    let mut limits = [4usize, 2usize];
    for (i, key) in ["max_jobs", "max_jobs_per_host"].into_iter().enumerate() {
        if let Some(v) = root.int(key) {
            let n = *v.get_ref();
            if !(1..=256).contains(&n) {
                cx.report(cx.err(v.span(), key, &format!("{key} = {n}: must be between 1 and 256")));
            } else {
                limits[i] = n as usize;
            }
        }
    }
    let [max_jobs, max_jobs_per_host] = limits;
    Some(Config {
        path: cx.file.to_path_buf(),
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

fn is_ipv6(address: &str) -> bool {
    address.parse::<std::net::Ipv6Addr>().is_ok()
}

impl Cx<'_> {
    fn console(&self, raw: Option<&Table>) -> ConsoleConfig {
        let mut c = ConsoleConfig {
            theme: None,
            refresh: Duration::from_secs(10),
            keys: BTreeMap::new(),
        };
        let Some(r) = raw else { return c };
        r.unknown_keys(&["theme", "refresh", "keys"]);
        if let Some(t) = r.str("theme") {
            if t.get_ref().is_empty() {
                self.report(self.err(t.span(), "theme", "must not be empty"));
            } else {
                c.theme = Some(t.get_ref().clone());
            }
        }
        if let Some(v) = r.scalar("refresh") {
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
            if !CONSOLE_ACTIONS.contains(&action.as_str()) {
                self.report(self.err(
                    v.span(),
                    &name,
                    &format!("unknown console action (one of {})", CONSOLE_ACTIONS.join(", ")),
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

    fn duration(&self, v: &Spanned<Scalar>, key: &str) -> Result<Duration, crate::config::ConfigError> {
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
    fn options(&self, e: &RawEntry, base: &PairOptions) -> PairOptions {
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
            let parsed = match b.get_ref() {
                Scalar::Int(0) => Ok(0),
                Scalar::Int(n) if *n < 0 => Err(format!("bad size {n}: must not be negative")),
                // a bare number is refused the same way as the string form, with what to write
                Scalar::Int(n) => units::parse_size(&n.to_string()),
                Scalar::Str(s) => units::parse_size(s),
            };
            match parsed {
                Ok(v) => o.bwlimit = v,
                Err(m) => self.report(self.err(b.span(), "bwlimit", &m)),
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
        if let Some(t) = &e.mbuffer_timeout {
            if let Some(d) = self.ok(self.duration(t, "mbuffer_timeout")) {
                if d.as_secs() < 1 {
                    self.report(self.err(t.span(), "mbuffer_timeout", "must be at least 1s"));
                } else {
                    o.mbuffer_timeout = d;
                }
            }
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
    fn mbuffer_ipv4(
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
    fn host(&self, name: &str, t: &Table) -> (HostConfig, Option<Spanned<String>>) {
        t.unknown_keys(HOST_KEYS);
        let address = match t.str("address") {
            Some(a) => {
                if let Err(m) = names::check_address(a.get_ref()) {
                    self.report(self.err(a.span(), "address", &m));
                }
                a.get_ref().clone()
            }
            None => {
                if names::check_address(name).is_err() {
                    self.report(self.err(t.span.clone(), "address", &format!("host {name:?} needs an address")));
                }
                name.to_string()
            }
        };
        let port = match t.int("port") {
            Some(p) if (1..=65535).contains(p.get_ref()) => *p.get_ref() as u16,
            Some(p) => {
                self.report(self.err(p.span(), "port", &format!("port {} is not in 1..65535", p.get_ref())));
                22
            }
            None => 22,
        };
        let user = match t.str("user") {
            Some(u) => {
                if let Err(m) = names::check_user(u.get_ref()) {
                    self.report(self.err(u.span(), "user", &m));
                }
                u.get_ref().clone()
            }
            None => "root".to_string(),
        };
        let key = t.str("key").map(|k| expand_home(k.get_ref()));
        let known_hosts = t
            .str("known_hosts")
            .map(|k| expand_home(k.get_ref()))
            .unwrap_or_else(|| expand_home("~/.ssh/known_hosts"));
        let trust_on_first_use = t.bool("trust_on_first_use").is_some_and(|b| *b.get_ref());
        let jump = t.str("jump");
        let second = Duration::from_secs(1);
        let day = Duration::from_secs(86400);
        let connect_timeout = self
            .bounded_duration(t.scalar("connect_timeout"), "connect_timeout", second, day)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let keepalive_interval = self
            .bounded_duration(t.scalar("keepalive_interval"), "keepalive_interval", second, day)
            .unwrap_or(DEFAULT_KEEPALIVE_INTERVAL);
        let keepalive_count = match t.int("keepalive_count") {
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
        let host = HostConfig {
            name: name.to_string(),
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

    /// "host:pool/fs" or "pool/fs" (local). The host must be defined; the path must be a valid
    /// dataset with room for ferry's snapshot names.
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
        names::check_pair_dataset(&path).map_err(|m| self.err(s.span(), key, &m))?;
        Ok(Endpoint { host, path })
    }
}
