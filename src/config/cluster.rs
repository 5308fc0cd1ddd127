//! Reading one `[[cluster]]`: its name, persist_path, settle and poll, bandwidth, coordination
//! and volumes.

use std::collections::HashMap;
use std::path::PathBuf;

use super::error::expand_home;
use super::fields::parse_kind;
use super::keys::{RawCluster, RawVolume};
use super::model::*;
use super::names;
use super::sites::Sites;
use super::tree::{Cx, Table};

/// How often `cluster run` lists a cluster's listen volumes when `poll` is not set.
pub const DEFAULT_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a cluster's changes settle before they fan out when `settle` is not set.
pub const DEFAULT_SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// One `[[cluster]]`: its name (unique), where it keeps its journal, its timing, how its
/// instances coordinate, and its volumes.
pub(super) fn cluster(
    cx: &Cx,
    c: &Table,
    sites: &Sites,
    coordination: &Option<CoordConfig>,
    seen: &mut HashMap<String, usize>,
) -> Cluster {
    let r = RawCluster::read(c);
    let name = match r.name {
        Some(n) => {
            if let Err(m) = names::check_host_name(n.get_ref()) {
                cx.report(cx.err(n.span(), "name", &m.replace("host name", "cluster name")));
            }
            if let Some(first) = seen.insert(n.get_ref().clone(), c.line()) {
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
    let persist_path = match r.persist_path {
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
    let settle = match r.settle {
        Some(v) => cx.ok(cx.duration(&v, "settle")).unwrap_or(DEFAULT_SETTLE),
        None => DEFAULT_SETTLE,
    };
    let poll = match r.poll {
        Some(v) => cx
            .ok(cx.duration(&v, "poll"))
            .filter(|d| {
                let ok = *d >= std::time::Duration::from_millis(100) && *d <= std::time::Duration::from_secs(3600);
                if !ok {
                    cx.report(cx.err(v.span(), "poll", "poll must be between 100ms and 1h"));
                }
                ok
            })
            .unwrap_or(DEFAULT_POLL),
        None => DEFAULT_POLL,
    };
    let bwlimit = r.bwlimit.and_then(|b| cx.bwlimit(&b)).unwrap_or(0);
    let coord = match r.coordination {
        None => Coordination::Local,
        Some(k) => match (k.get_ref().as_str(), &coordination) {
            ("local", _) => Coordination::Local,
            ("etcd", Some(e)) if e.engine == CoordEngine::Etcd => Coordination::Engine(e.clone()),
            ("etcd", _) => {
                cx.report(cx.err(
                    k.span(),
                    "coordination",
                    "coordination \"etcd\" needs a [coordination] table with engine = \"etcd\" and its endpoints",
                ));
                Coordination::Local
            }
            (other, _) => {
                cx.report(cx.err(
                    k.span(),
                    "coordination",
                    &format!("coordination {other:?}: \"local\" (one instance, a lock in persist_path) or \"etcd\" (the [coordination] engine)"),
                ));
                Coordination::Local
            }
        },
    };
    let mut volumes = Vec::new();
    for v in c.tables("volumes") {
        let vr = RawVolume::read(&v);
        let listen = vr.listen.is_some_and(|b| *b.get_ref());
        let update = vr.update.is_some_and(|b| *b.get_ref());
        let kind = match vr.kind {
            Some(k) => cx.ok(parse_kind(cx, &k)).unwrap_or(Kind::DEFAULT),
            // a volume on an object-store host is an object volume without saying so
            None => match &vr.at {
                Some(at)
                    if at
                        .get_ref()
                        .split_once(':')
                        .is_some_and(|(h, _)| sites.object_hosts.contains_key(h)) =>
                {
                    Kind::Object
                }
                _ => Kind::DEFAULT,
            },
        };
        let at = match vr.at {
            Some(at) => cx.ok(cx.endpoint(&at, "at", &sites.hosts, &sites.object_hosts, kind)),
            None => {
                cx.report(cx.err(v.span.clone(), "at", "a volume needs `at`"));
                None
            }
        };
        if let Some(at) = at {
            volumes.push(ClusterVolume {
                at,
                kind,
                listen,
                update,
            });
        }
    }
    Cluster {
        name,
        persist_path,
        settle,
        poll,
        bwlimit,
        coordination: coord,
        volumes,
    }
}
