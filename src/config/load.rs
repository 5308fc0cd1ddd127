//! Reading the TOML file into the model, with every error naming the file, the line and the key.
//! Checking goes on after an error, so one run lists every problem of the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::{expand_home, ConfigError, ConfigErrors};
use super::fields::{parse_kind, RawEntry};
use super::keys::{RawCoordination, RawRoot};
use super::model::*;
use super::names;
use super::overlap;
use super::pair::Seen;
use super::read;
use super::sites::Sites;
use super::tree::{Cx, Table};

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

/// Whether `ferry` without `-c` (and without `$FERRY_CONFIG`, which cron and another shell may not
/// have) finds this file: the first of the default locations that exists.
pub fn found_by_default(path: &Path) -> bool {
    let mut defaults = vec![PathBuf::from("/etc/ferry/ferry.toml")];
    if let Some(home) = dirs::home_dir() {
        defaults.push(home.join(".config/ferry/ferry.toml"));
    }
    defaults.into_iter().find(|p| p.exists()).is_some_and(|p| p == path)
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
    let top = RawRoot::read(&root);

    let state_dir = state_dir(cx, top.state_dir);
    let raw_defaults = root.table("defaults").map(|t| RawEntry::read(&t));
    let defaults = defaults(cx, raw_defaults.as_ref());
    let sites = sites(cx, &root);

    let mut pairs = Vec::new();
    let mut spans = Vec::new();
    let mut seen = Seen::default();
    for p in root.tables("pair") {
        if let Some((pair, at)) = super::pair::pair(cx, &p, &defaults, raw_defaults.as_ref(), &sites, &mut seen) {
            pairs.push(pair);
            spans.push(at);
        }
    }
    overlap::check_pairs(cx, &pairs, &spans);

    let coordination = root.table("coordination").and_then(|t| coordination(cx, &t));
    let mut seen_cluster: HashMap<String, usize> = HashMap::new();
    let clusters = root
        .tables("cluster")
        .iter()
        .map(|c| super::cluster::cluster(cx, c, &sites, &coordination, &mut seen_cluster))
        .collect();

    let console = cx.console(root.table("console").as_ref());
    let (max_jobs, max_jobs_per_host) = limits(cx, [top.max_jobs, top.max_jobs_per_host]);
    let Sites {
        hosts, object_hosts, ..
    } = sites;
    Some(Config {
        path: cx.file.to_path_buf(),
        state_dir,
        defaults,
        hosts,
        object_hosts,
        pairs,
        clusters,
        coordination,
        console,
        max_jobs,
        max_jobs_per_host,
    })
}

/// `state_dir`, `~/` expanded; /var/lib/ferry when unset.
fn state_dir(cx: &Cx, value: Option<Spanned<String>>) -> PathBuf {
    match value {
        Some(s) if s.get_ref().is_empty() => {
            cx.report(cx.err(s.span(), "state_dir", "must not be empty"));
            PathBuf::new()
        }
        Some(s) => expand_home(s.get_ref()),
        None => PathBuf::from("/var/lib/ferry"),
    }
}

/// The `[defaults]` table (pair-only keys refused there) and the options it gives every pair.
fn defaults(cx: &Cx, raw: Option<&RawEntry>) -> PairOptions {
    let base = PairOptions::default();
    match raw {
        Some(e) => {
            for (key, present) in [
                ("source", e.source.as_ref().map(|s| s.span())),
                ("destination", e.destination.as_ref().map(|s| s.span())),
                ("port", e.port.as_ref().map(|s| s.span())),
                ("adopt", e.adopt.as_ref().map(|s| s.span())),
                ("snapshot_dir", e.snapshot_dir.as_ref().map(|s| s.span())),
                ("recursive", e.recursive.as_ref().map(|s| s.span())),
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
    }
}

/// The `[hosts]` table: SSH hosts and object-store endpoints, each name checked, and the jump
/// hosts they go through.
fn sites(cx: &Cx, root: &Table) -> Sites {
    let mut s = Sites::default();
    let mut jumps: BTreeMap<String, Spanned<String>> = BTreeMap::new();
    if let Some(ht) = root.table("hosts") {
        for (k, v) in ht.entries() {
            let mut name = k.get_ref().to_string();
            let Some(mut t) = Table::as_table(cx, &format!("hosts.{name}"), v) else {
                continue;
            };
            // `[hosts.backup-01.example.net]` is TOML for nested tables: a host's table never
            // holds one, so a chain of single sub-tables is a dotted name that wanted quotes
            let dotted = t.span.clone();
            let mut nested = false;
            while let Some(sub) = t.only_subtable() {
                name = format!("{name}.{}", sub.0);
                t = sub.1;
                nested = true;
            }
            if nested {
                cx.report(cx.err(
                    dotted,
                    &format!("hosts.{name}"),
                    &format!("TOML reads the dots of [hosts.{name}] as nested tables: quote the host's name, [hosts.\"{name}\"]"),
                ));
            }
            let key = format!("hosts.{name}");
            if let Err(m) = names::check_host_name(&name) {
                cx.report(cx.err(t.span.clone(), &key, &m));
            }
            if name == LOCAL {
                cx.report(cx.err(t.span.clone(), &key, "`local` is reserved for this machine"));
            }
            if t.str("endpoint").is_some() {
                s.object_hosts.insert(name.clone(), cx.object_host(&name, &t));
                continue;
            }
            let (host, jump) = cx.host(&name, &t);
            if let Some(j) = jump {
                jumps.insert(name.clone(), j);
            }
            s.host_lines.insert(name.clone(), t.line());
            s.hosts.insert(name, host);
        }
    }
    overlap::check_jumps(cx, &jumps, &s.hosts);
    s
}

/// `max_jobs` and `max_jobs_per_host` (1..=256; 4 and 2 when unset).
fn limits(cx: &Cx, values: [Option<Spanned<i64>>; 2]) -> (usize, usize) {
    let mut limits = [4usize, 2usize];
    for (i, (key, value)) in ["max_jobs", "max_jobs_per_host"].into_iter().zip(values).enumerate() {
        if let Some(v) = value {
            let n = *v.get_ref();
            if !(1..=256).contains(&n) {
                cx.report(cx.err(v.span(), key, &format!("{key} = {n}: must be between 1 and 256")));
            } else {
                limits[i] = n as usize;
            }
        }
    }
    (limits[0], limits[1])
}

/// The `[coordination]` table: the engine, its endpoints, the lease, ferry's key prefix, and how
/// ferry authenticates to etcd (user, password file) and checks it (TLS files).
fn coordination(cx: &Cx, t: &Table) -> Option<CoordConfig> {
    let r = RawCoordination::read(t);
    let engine = match r.engine {
        Some(e) if e.get_ref() == "etcd" => Some(CoordEngine::Etcd),
        Some(e) => {
            cx.report(cx.err(
                e.span(),
                "engine",
                &format!(
                    "engine {:?} is not supported: \"etcd\" (etcd 3.4 or later, its JSON gateway) is",
                    e.get_ref()
                ),
            ));
            None
        }
        None => {
            cx.report(cx.err_line(t.line(), "engine", "[coordination] needs engine = \"etcd\""));
            None
        }
    };
    let mut endpoints = Vec::new();
    match t.strs("endpoints") {
        Some(list) if !list.is_empty() => {
            for e in list {
                let url = e.get_ref().trim_end_matches('/').to_string();
                if let Err(m) = names::check_endpoint_url(&url) {
                    cx.report(cx.err(e.span(), "endpoints", &m));
                } else {
                    endpoints.push(url);
                }
            }
        }
        Some(_) => cx.report(cx.err_line(
            t.line(),
            "endpoints",
            "endpoints must list at least one http://host:port or https://host:port",
        )),
        // set, but not an array of strings: said already
        None if t.has("endpoints") => {}
        None => cx.report(cx.err_line(
            t.line(),
            "endpoints",
            "[coordination] needs endpoints = [\"http://host:2379\"]",
        )),
    }
    let lease = match r.lease {
        Some(v) => cx
            .ok(cx.duration(&v, "lease"))
            .filter(|d| {
                let ok = d.subsec_nanos() == 0 && d.as_secs() >= 2 && d.as_secs() <= 300;
                if !ok {
                    cx.report(cx.err(
                        v.span(),
                        "lease",
                        "lease must be whole seconds from 2s (etcd's least) to 5min",
                    ));
                }
                ok
            })
            .unwrap_or(DEFAULT_LEASE),
        None => DEFAULT_LEASE,
    };
    let prefix = match r.prefix {
        Some(p) => {
            let v = p.get_ref().trim_end_matches('/').to_string();
            if !v.starts_with('/') || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
                cx.report(cx.err(
                    p.span(),
                    "prefix",
                    "prefix must start with / and hold no spaces or control characters",
                ));
            }
            v
        }
        None => "/ferry".to_string(),
    };
    let auth = coord_auth(cx, t, r.user, r.password_file);
    let tls = coord_tls(cx, &endpoints, [r.ca_file, r.cert_file, r.key_file]);
    Some(CoordConfig {
        engine: engine?,
        endpoints,
        lease,
        prefix,
        auth,
        tls,
    })
}

/// A path-valued key of `[coordination]` (`~/` expanded), refused when empty.
fn coord_path(cx: &Cx, v: Option<Spanned<String>>, key: &str) -> Option<Spanned<PathBuf>> {
    let v = v?;
    if v.get_ref().trim().is_empty() {
        cx.report(cx.err(v.span(), key, &format!("{key} must name a file")));
        return None;
    }
    Some(Spanned::new(v.span(), expand_home(v.get_ref())))
}

/// `user` and `password_file`: both or neither (the password itself is never in the config).
fn coord_auth(
    cx: &Cx,
    t: &Table,
    user: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
) -> Option<CoordAuth> {
    if let Some((k, _)) = t.entries().find(|(k, _)| k.get_ref() == "password") {
        // its value is never repeated: it is a secret put in the wrong place
        cx.report(cx.err(
            k.span(),
            "password",
            "the password never goes in the config: put it in a file only you can read and name it with password_file",
        ));
    }
    let file = coord_path(cx, password_file, "password_file");
    if let Some(u) = &user {
        let name = u.get_ref();
        if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            cx.report(cx.err(
                u.span(),
                "user",
                "user must be etcd's user name: not empty, no spaces or control characters",
            ));
            return None;
        }
    }
    match (user, file) {
        (Some(u), Some(f)) => Some(CoordAuth {
            user: u.into_inner(),
            password_file: f.into_inner(),
        }),
        (Some(u), None) if !t.has("password_file") => {
            cx.report(cx.err(
                u.span(),
                "user",
                "user needs password_file = \"/path\": the file holding etcd's password (never the password in the config)",
            ));
            None
        }
        (None, Some(f)) => {
            cx.report(cx.err(
                f.span(),
                "password_file",
                "password_file needs user = \"name\" (etcd's user)",
            ));
            None
        }
        _ => None,
    }
}

/// `ca_file`, `cert_file` and `key_file`: for https endpoints only; a certificate needs its key.
fn coord_tls(cx: &Cx, endpoints: &[String], [ca, cert, key]: [Option<Spanned<String>>; 3]) -> CoordTls {
    let ca = coord_path(cx, ca, "ca_file");
    let cert = coord_path(cx, cert, "cert_file");
    let key = coord_path(cx, key, "key_file");
    let https = endpoints.iter().any(|e| e.starts_with("https://"));
    for (name, v) in [("ca_file", &ca), ("cert_file", &cert), ("key_file", &key)] {
        if let (Some(v), false, false) = (v, https, endpoints.is_empty()) {
            cx.report(cx.err(
                v.span(),
                name,
                &format!("{name} is for https endpoints, and every endpoint here is http://"),
            ));
        }
    }
    let client = match (cert, key) {
        (Some(c), Some(k)) => Some((c.into_inner(), k.into_inner())),
        (Some(c), None) => {
            cx.report(cx.err(
                c.span(),
                "cert_file",
                "cert_file needs key_file (the certificate's private key)",
            ));
            None
        }
        (None, Some(k)) => {
            cx.report(cx.err(
                k.span(),
                "key_file",
                "key_file needs cert_file (the client certificate)",
            ));
            None
        }
        (None, None) => None,
    };
    CoordTls {
        ca_file: ca.map(Spanned::into_inner),
        client,
    }
}

/// The lease when `[coordination]` sets none.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(5);
