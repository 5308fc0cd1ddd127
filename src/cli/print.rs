//! Plain-text and JSON renderings of the engine's answers for the command line.

use std::time::Duration;

use crate::config::units::{format_bytes, format_duration, format_time};
use crate::config::{Compress, Config, Pair};
use crate::engine::types::Item;
use crate::engine::types::Replicated;
use crate::engine::types::{PairStatus, RunState};
use crate::engine::Engine;
use crate::state::last::LastResult;

fn secs(s: u64) -> String {
    format_duration(Duration::from_secs(s))
}

/// Left-aligned columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `unlock` is the command that unlocks a pair, to paste.
pub fn status(st: &[PairStatus], full: bool, json: bool, unlock: impl Fn(&PairStatus) -> String) {
    if json {
        outln!("{}", serde_json::to_string_pretty(st).expect("status serializes"));
        return;
    }
    let mut rows = vec![{
        let mut h: Vec<String> = ["SOURCE", "DESTINATION", "STATE", "LAG", "FLAGS", "STATUS"]
            .map(String::from)
            .to_vec();
        if full {
            h.extend(["FINGERPRINT", "CHECKPOINT"].map(String::from));
        }
        h
    }];
    for s in st {
        let status = match s.run.runtime_secs {
            Some(r) => format!("{} ({})", s.run.status.word(), secs(r)),
            None => s.run.status.word().to_string(),
        };
        let mut row = vec![
            s.source.clone(),
            s.destination.clone(),
            s.state.word().to_string(),
            s.lag_secs.map(secs).unwrap_or_else(|| "-".into()),
            s.flags.clone(),
            status,
        ];
        if full {
            row.push(s.fingerprint.clone());
            row.push(s.checkpoint.clone().unwrap_or_else(|| "-".into()));
        }
        rows.push(row);
    }
    out!("{}", table(&rows));
    for s in st {
        if let Some(r) = &s.reason {
            outln!("  {}: {}: {r}", s.destination, s.state);
        }
        for w in &s.warnings {
            outln!("  {}: warning: {w}", s.destination);
        }
        if s.run.status == RunState::Locked {
            outln!(
                "  {}: Locked by a job that did not finish; check the pair, then `{}`",
                s.destination,
                unlock(s)
            );
        }
    }
}

/// A bwlimit as `check` shows it: "none" or "50.0 MiB/s".
fn per_second(bwlimit: u64) -> String {
    if bwlimit == 0 {
        "none".to_string()
    } else {
        format!("{}/s", format_bytes(bwlimit))
    }
}

/// A pair's thresholds and bwlimit as `check` shows them.
fn thresholds(o: &crate::config::PairOptions) -> String {
    format!(
        "wlag {} clag {} wrun {} crun {}  bwlimit {}",
        format_duration(o.wlag),
        format_duration(o.clag),
        format_duration(o.wrun),
        format_duration(o.crun),
        per_second(o.bwlimit)
    )
}

/// `objects DEST`: one line per key (state, op, retries, why), or a JSON array.
pub fn objects(list: &[crate::engine::types::ObjectStatus], json: bool) {
    if json {
        outln!("{}", serde_json::to_string_pretty(list).unwrap_or_else(|_| "[]".into()));
        return;
    }
    if list.is_empty() {
        outln!("no objects");
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|o| {
            let state = o.state.word().to_string();
            let op = o.op.map_or("-", |op| op.word()).to_string();
            let mut why = o.reason.clone().unwrap_or_default();
            if let Some(next) = o.next_retry_ms {
                why = format!(
                    "retry {} at {}: {why}",
                    o.retries + 1,
                    format_time((next / 1000) as i64)
                );
            }
            vec![state, op, o.key.clone(), why]
        })
        .collect();
    out!("{}", table(&rows));
}

pub fn fingerprints(pairs: &[&Pair], single: bool, json: bool) {
    if json {
        let v: Vec<_> = pairs
            .iter()
            .map(|p| serde_json::json!({"fingerprint": p.fingerprint(), "source": p.source.to_string(), "destination": p.destination.to_string()}))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
    } else if single {
        outln!("{}", pairs[0].fingerprint());
    } else {
        let rows: Vec<Vec<String>> = pairs
            .iter()
            .map(|p| vec![p.fingerprint(), p.source.to_string(), p.destination.to_string()])
            .collect();
        out!("{}", table(&rows));
    }
}

/// `next` is the command to paste when every check passed.
pub fn setup(pair: &Pair, items: &[Item], next: &str, json: bool) {
    if json {
        outln!("{}", serde_json::to_string_pretty(items).expect("serializes"));
        return;
    }
    outln!(
        "setup {} ({} -> {})",
        Engine::dest_name(pair),
        pair.source,
        pair.destination
    );
    for i in items {
        outln!("  [{}] {}: {}", if i.ok { " ok " } else { "FAIL" }, i.what, i.detail);
    }
    let failed = items.iter().filter(|i| !i.ok).count();
    if failed == 0 {
        outln!("ready: {next}");
    } else {
        outln!("{failed} check(s) failed");
    }
}

pub fn replicated(action: &str, pair: &Pair, r: &Replicated) -> String {
    let rate = if r.seconds > 0.0 {
        r.bytes as f64 / r.seconds
    } else {
        0.0
    };
    let mut s = format!(
        "{action} {}: {} at {}/s in {:.1}s, checkpoint {}",
        Engine::dest_name(pair),
        format_bytes(r.bytes),
        format_bytes(rate as u64),
        r.seconds,
        r.snapshot
    );
    let pruned = r.pruned.summary();
    if !pruned.is_empty() {
        s.push_str(&format!(", {pruned}"));
    }
    s
}

/// A warning on stderr for each old snapshot an update could not destroy (the update itself
/// succeeded; the next run tries again).
pub fn retention_left(pair: &Pair, r: &Replicated) {
    let (src_at, dst_at) = Engine::snapshots_at(pair);
    for l in r.pruned.left_lines(&src_at, &dst_at) {
        eprintln!(
            "ferry: warning: update {}: could not destroy {l} (tried again next run)",
            Engine::dest_name(pair)
        );
    }
}

pub fn last_suffix(last: Option<&LastResult>) -> String {
    match last {
        Some(l) if l.ok => format!(
            " (last: {} ok at {}, {})",
            l.action,
            format_time(l.finished),
            format_bytes(l.bytes)
        ),
        Some(l) => format!(
            " (last: {} FAILED at {}: {})",
            l.action,
            format_time(l.finished),
            l.error.clone().unwrap_or_default()
        ),
        None => String::new(),
    }
}

pub fn config(c: &Config, json: bool) {
    if json {
        let pairs: Vec<_> = c
            .pairs
            .iter()
            .map(|p| {
                serde_json::json!({
                    "fingerprint": p.fingerprint(), "kind": p.kind, "source": p.source.to_string(),
                    "destination": p.destination.to_string(), "port": p.port, "transport": p.options.transport,
                    "wlag": p.options.wlag.as_secs(), "clag": p.options.clag.as_secs(),
                    "wrun": p.options.wrun.as_secs(), "crun": p.options.crun.as_secs(),
                    "bwlimit": p.options.bwlimit, "compress": p.options.compress, "keep": p.options.keep,
                    "adopt": p.adopt,
                })
            })
            .collect();
        let hosts: Vec<_> = c
            .hosts
            .values()
            .map(|h| {
                serde_json::json!({"name": h.name, "address": h.address, "port": h.port, "user": h.user,
                "key": h.key, "known_hosts": h.known_hosts, "trust_on_first_use": h.trust_on_first_use,
                "jump": h.jump, "connect_timeout": h.connect_timeout.as_secs(),
                "keepalive_interval": h.keepalive_interval.as_secs(), "keepalive_count": h.keepalive_count})
            })
            .collect();
        // the credentials file's path only: its keys are read when a job starts, never shown
        let object_hosts: Vec<_> = c
            .object_hosts
            .values()
            .map(|h| {
                serde_json::json!({"name": h.name, "endpoint": h.endpoint, "region": h.region,
                "credentials": h.credentials, "profile": h.profile, "unencrypted": h.unencrypted()})
            })
            .collect();
        let v = serde_json::json!({"file": c.path, "state_dir": c.state_dir, "hosts": hosts,
            "object_hosts": object_hosts, "pairs": pairs,
            "coordination": c.coordination.as_ref().map(|k| serde_json::json!({"engine": "etcd", "endpoints": k.endpoints,
                "lease_secs": k.lease.as_secs(), "prefix": k.prefix, "unencrypted": k.unencrypted(),
                // the password file's path only: the password is read when ferry authenticates
                "user": k.auth.as_ref().map(|a| &a.user), "password_file": k.auth.as_ref().map(|a| &a.password_file),
                "ca_file": k.tls.ca_file, "cert_file": k.tls.client.as_ref().map(|c| &c.0), "key_file": k.tls.client.as_ref().map(|c| &c.1),
                "open_to_anyone": k.open_to_anyone(), "problems": crate::coord::etcd::file_problems(k)})),
            "clusters": c.clusters.iter().map(|k| serde_json::json!({"name": k.name, "persist_path": k.persist_path,
                "settle_secs": k.settle.as_secs(), "poll_ms": k.poll.as_millis() as u64, "bwlimit": k.bwlimit,
                "coordination": match k.coordination { crate::config::Coordination::Local => "local", crate::config::Coordination::Engine(_) => "etcd" },
                "volumes": k.volumes.iter().map(|v| serde_json::json!({"at": v.at.to_string(), "kind": v.kind, "listen": v.listen, "update": v.update})).collect::<Vec<_>>()})).collect::<Vec<_>>()});
        outln!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
        return;
    }
    outln!("config {}: ok", c.path.display());
    outln!("state_dir {}", c.state_dir.display());
    outln!("hosts: {}", c.hosts.len());
    for h in c.hosts.values() {
        let key = h
            .key
            .as_ref()
            .map(|k| k.display().to_string())
            .unwrap_or_else(|| "agent or default keys".into());
        outln!(
            "  {}  {}@{}:{}  key {}  known_hosts {}{}{}  connect_timeout {}  keepalive {} x{}",
            h.name,
            h.user,
            h.address,
            h.port,
            key,
            h.known_hosts.display(),
            if h.trust_on_first_use {
                "  trust_on_first_use"
            } else {
                ""
            },
            h.jump.as_ref().map(|j| format!("  jump {j}")).unwrap_or_default(),
            format_duration(h.connect_timeout),
            format_duration(h.keepalive_interval),
            h.keepalive_count
        );
    }
    if !c.object_hosts.is_empty() {
        outln!("object-store hosts: {}", c.object_hosts.len());
    }
    for h in c.object_hosts.values() {
        outln!(
            "  {}  {}  region {}  credentials {}{}",
            h.name,
            h.endpoint,
            h.region,
            h.credentials
                .as_ref()
                .map(|p| format!(
                    "{}{}",
                    p.display(),
                    h.profile.as_ref().map(|x| format!(" [{x}]")).unwrap_or_default()
                ))
                .unwrap_or_else(|| "from AWS_* environment".into()),
            if h.unencrypted() {
                "  warning: plain http: objects cross the network unencrypted"
            } else {
                ""
            }
        );
        if let Some(w) = h
            .credentials
            .as_deref()
            .and_then(crate::object::creds::Credentials::exposure)
        {
            outln!("  warning: object host {}: {w}", h.name);
        }
    }
    outln!("pairs: {}", c.pairs.len());
    for p in &c.pairs {
        let o = &p.options;
        if crate::engine::kind::for_kind(p.kind).snapshots().is_none() {
            outln!(
                "  {}  {} -> {}  {}  {}",
                &p.fingerprint()[..12],
                p.source,
                p.destination,
                p.kind.word(),
                thresholds(o)
            );
            continue;
        }
        outln!(
            "  {}  {} -> {}  {}/{}{}  {}  compress {}  keep {}",
            &p.fingerprint()[..12],
            p.source,
            p.destination,
            p.kind.word(),
            match o.transport {
                crate::config::TransportKind::Ssh => "ssh",
                crate::config::TransportKind::Mbuffer => "mbuffer",
                crate::config::TransportKind::Local => "local",
            },
            p.port.map(|x| format!(" port {x}")).unwrap_or_default(),
            thresholds(o),
            if o.compress == Compress::Zstd { "zstd" } else { "none" },
            o.keep
        );
        if !o.raw && p.kind == crate::model::Kind::Zfs {
            outln!("    raw = false: an encrypted source is sent decrypted (a plaintext replica)");
        }
        if o.properties {
            outln!("    properties: sent with the stream (zfs send -p), the destination's mountpoint kept");
        }
        if p.recursive {
            outln!(
                "    recursive: every volume below {} too, each with its own checkpoint",
                p.source
            );
        }
        if let Some(dir) = &p.source.snapshot_dir {
            outln!("    source snapshots in {}:{dir}", p.source.host);
        }
        if p.adopt == Some(crate::config::Adopt::Zettabee) {
            outln!("    adopt zettabee: the first update takes over zettabee's replica from its last snapshot");
        }
        if o.transport == crate::config::TransportKind::Mbuffer {
            outln!(
                "    warning: transport mbuffer sends the stream unencrypted from {} to {}:{} (mbuffer_timeout {})",
                p.source.host,
                o.mbuffer_address.as_deref().unwrap_or("this machine"),
                p.port.unwrap_or(0),
                format_duration(o.mbuffer_timeout)
            );
        }
    }
    if let Some(k) = &c.coordination {
        outln!(
            "coordination: etcd {}  lease {}  prefix {}  (pair locks are leases there too){}",
            k.endpoints.join(", "),
            format_duration(k.lease),
            k.prefix,
            if k.unencrypted() {
                "  warning: plain http: lock holders' names cross the network unencrypted"
            } else {
                ""
            }
        );
        match &k.auth {
            Some(a) => outln!("  etcd user {}, password from {}", a.user, a.password_file.display()),
            None => outln!("  etcd user: none"),
        }
        if k.endpoints.iter().any(|e| e.starts_with("https://")) {
            outln!(
                "  tls: etcd's certificate checked against {}{}",
                k.tls
                    .ca_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the system's CA certificates".into()),
                match &k.tls.client {
                    Some((c, key)) => format!("; client certificate {} (key {})", c.display(), key.display()),
                    None => String::new(),
                }
            );
        }
        if let Some(why) = k.open_to_anyone() {
            outln!("  warning: {why}");
        }
        for p in crate::coord::etcd::file_problems(k) {
            outln!("  warning: {p}");
        }
    }
    if !c.clusters.is_empty() {
        outln!("clusters: {}", c.clusters.len());
        for k in &c.clusters {
            outln!(
                "  {}  persist_path {}  settle {}  poll {}  bwlimit {}  coordination {}",
                k.name,
                k.persist_path.display(),
                crate::config::units::format_duration(k.settle),
                crate::config::units::format_duration(k.poll),
                if k.bwlimit == 0 {
                    "none".to_string()
                } else {
                    format!("{}/s", format_bytes(k.bwlimit))
                },
                match k.coordination {
                    crate::config::Coordination::Local => "local",
                    crate::config::Coordination::Engine(_) => "etcd",
                }
            );
            for v in &k.volumes {
                outln!(
                    "    {} ({})  listen={} update={}",
                    v.at,
                    v.kind.word(),
                    v.listen,
                    v.update
                );
            }
        }
    }
}

/// What purge destroyed or, without --yes, would destroy.
pub fn purge(p: &crate::engine::types::Purge, json: bool) {
    if json {
        outln!("{}", serde_json::to_string_pretty(p).expect("purge serializes"));
        return;
    }
    let verb = if p.done { "destroyed" } else { "would destroy" };
    if p.destroy_destination {
        outln!(
            "{verb} destination {} (the replica and all its snapshots)",
            p.destination
        );
    }
    for (side, at, list) in [
        (&p.source, &p.source_at, &p.source_snapshots),
        (&p.destination, &p.destination_at, &p.destination_snapshots),
    ] {
        if p.destroy_destination && side == &p.destination {
            continue;
        }
        if list.is_empty() && p.left.is_empty() {
            outln!("{side}: nothing to purge");
        }
        for s in list {
            outln!("{verb} {at}{s}");
        }
    }
    if let Some(cp) = &p.checkpoint {
        outln!("checkpoint {cp} is kept");
    }
    for l in &p.left {
        outln!("could not destroy {l}");
    }
    let any = p.destroy_destination || !p.source_snapshots.is_empty() || !p.destination_snapshots.is_empty();
    if !p.done && any {
        outln!("(nothing destroyed: add --yes to do it)");
    }
}

/// `cluster status`: one block per cluster, a line per volume.
pub fn clusters(all: &[crate::engine::cluster::report::ClusterStatus], json: bool) {
    if json {
        outln!("{}", serde_json::to_string_pretty(all).unwrap_or_else(|_| "[]".into()));
        return;
    }
    for c in all {
        let worker = match (&c.worker, c.since) {
            (Some(w), Some(t)) => format!("worked by {w} since {}", format_time(t)),
            (Some(w), None) => format!("worked by {w}"),
            (None, _) => "not worked by any instance".to_string(),
        };
        outln!(
            "cluster {}: {worker}; journal {} change(s) unfinished ({} pending, {} failed fan-outs), {}",
            c.name,
            c.depth,
            c.pending,
            c.failed,
            format_bytes(c.journal_bytes)
        );
        if let (Some(f), Some(age)) = (&c.figures, c.last_cycle_age_secs) {
            outln!(
                "  last cycle {} ago ({:.1}s); since start: {} journaled, {} applied, {} failed attempts",
                format_duration(Duration::from_secs(age)),
                f.cycle_secs,
                f.journaled,
                f.applied,
                f.failed
            );
        }
        let rows: Vec<Vec<String>> = std::iter::once(
            ["VOLUME", "KIND", "ROLE", "OBJECTS", "PENDING", "FAILED", "LAG", "ERROR"]
                .map(String::from)
                .to_vec(),
        )
        .chain(c.volumes.iter().map(|v| {
            let role = match (v.listen, v.update) {
                (true, true) => "listen+update",
                (true, false) => "listen",
                (false, true) => "update",
                (false, false) => "-",
            };
            vec![
                format!("  {}", v.at),
                v.kind.word().to_string(),
                role.to_string(),
                v.objects.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                v.pending.to_string(),
                v.failed.to_string(),
                format_duration(Duration::from_secs(v.lag_secs)),
                v.error.clone().unwrap_or_default(),
            ]
        }))
        .collect();
        out!("{}", table(&rows));
    }
}

/// `cluster diverge`: a line per differing key.
pub fn differences(found: &[crate::engine::cluster::diverge::Difference], json: bool) {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(found).unwrap_or_else(|_| "[]".into())
        );
        return;
    }
    if found.is_empty() {
        outln!("no differences");
        return;
    }
    for d in found {
        use crate::engine::cluster::diverge::Differs;
        let what = match d.differs {
            Differs::Missing => format!("missing on {}", d.missing.join(", ")),
            Differs::Content => "different content".to_string(),
            Differs::Metadata => "different metadata (content type or user metadata)".to_string(),
        };
        outln!("{}: {what}; newest on {}", d.key, d.newest);
    }
}

/// `cluster reconcile`.
pub fn reconciled(
    done: &crate::engine::cluster::diverge::Reconciled,
    policy: crate::engine::cluster::diverge::Policy,
    json: bool,
) {
    if json {
        outln!("{}", serde_json::to_string_pretty(done).unwrap_or_else(|_| "{}".into()));
        return;
    }
    if policy == crate::engine::cluster::diverge::Policy::Report {
        differences(&done.differences, false);
        return;
    }
    for (key, from, to) in &done.copied {
        outln!("{key}: copied {from} -> {to}");
    }
    for (key, to, why) in &done.failed {
        outln!("{key}: copy to {to} FAILED: {why}");
    }
    if done.differences.is_empty() {
        outln!("no differences");
    }
}
