//! Reading one `[[pair]]`: its kind, its two ends on the config's hosts, its options, and the
//! checks that need both ends (same destination twice, transport against where the ends are).

use std::collections::HashMap;

use super::fields::{parse_kind, RawEntry};
use super::model::*;
use super::overlap;
use super::sites::Sites;
use super::tree::{Cx, Table};
use crate::model::Home;

/// What earlier pairs took that a later one may not take again: destinations and mbuffer ports,
/// each with the line of the pair that took it.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) destinations: HashMap<Endpoint, usize>,
    pub(super) ports: HashMap<u16, usize>,
}

/// One `[[pair]]`: its ends, options and the checks that need both ends, with where its
/// source and destination are written (for the overlap checks); None when an end is unusable
/// (already reported).
pub(super) fn pair(
    cx: &Cx,
    p: &Table,
    defaults: &PairOptions,
    raw_defaults: Option<&RawEntry>,
    sites: &Sites,
    seen: &mut Seen,
) -> Option<(Pair, overlap::PairSpans)> {
    let e = RawEntry::read(p);
    let line = p.line();
    let kind = match &e.kind {
        Some(k) => cx.ok(parse_kind(cx, k)),
        None => Some(Kind::DEFAULT),
    };
    let source = match &e.source {
        Some(s) => cx.ok(cx.endpoint(
            s,
            "source",
            &sites.hosts,
            &sites.object_hosts,
            kind.unwrap_or(Kind::DEFAULT),
        )),
        None => {
            cx.report(cx.err_line(line, "source", "a [[pair]] needs a source"));
            None
        }
    };
    let destination = match &e.destination {
        Some(s) => cx.ok(cx.endpoint(
            s,
            "destination",
            &sites.hosts,
            &sites.object_hosts,
            kind.unwrap_or(Kind::DEFAULT),
        )),
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
                if let Some(first) = seen.ports.insert(v, line) {
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
    let mut options = cx.options(&e, defaults);
    // an object pair moves objects over the S3 API: the stream keys mean nothing to it
    if kind.is_some_and(|k| k.home() == Home::ObjectStore) {
        cx.object_pair_keys(&e);
        options.transport = TransportKind::Ssh;
        options.compress = Compress::None;
    }
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
    let (Some(kind), Some(mut source), Some(destination)) = (kind, source, destination) else {
        return None;
    };
    source.snapshot_dir = cx.snapshot_dir(&e, kind, &source);
    let dest_span = e.destination.as_ref().map(|s| s.span()).unwrap_or(p.span.clone());
    if let Some(first) = seen.destinations.insert(destination.clone(), line) {
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
    if options.transport == TransportKind::Mbuffer && options.mbuffer_address.is_none() {
        // a local destination has none: the source host tells at run time ($SSH_CONNECTION)
        if let Some(h) = sites.hosts.get(&destination.host) {
            options.mbuffer_address = Some(h.address.clone());
        }
    }
    if options.transport == TransportKind::Mbuffer {
        cx.mbuffer_ipv4(&e, raw_defaults, &source, &destination, &sites.hosts, &sites.host_lines);
    }
    let spans = overlap::PairSpans {
        source: e.source.as_ref().map(|s| s.span()).unwrap_or(p.span.clone()),
        destination: dest_span,
    };
    let recursive = match &e.recursive {
        Some(r) if *r.get_ref() && !matches!(kind, Kind::Zfs | Kind::Btrfs) => {
            cx.report(cx.err(
                r.span(),
                "recursive",
                &format!(
                    "recursive applies to zfs and btrfs pairs (a tree of volumes); this pair's kind is {}",
                    kind.word()
                ),
            ));
            false
        }
        Some(r) => *r.get_ref(),
        None => false,
    };
    if kind != Kind::Zfs {
        if let Some(p) = e.properties.as_ref().filter(|p| *p.get_ref()) {
            cx.report(cx.err(
                p.span(),
                "properties",
                &format!(
                    "properties sends a ZFS dataset's properties with it; this pair's kind is {}",
                    kind.word()
                ),
            ));
        }
        // a `[defaults]` properties = true means the zfs pairs
        options.properties = false;
    }
    let adopt = match &e.adopt {
        Some(a) if kind != Kind::Zfs => {
            cx.report(cx.err(
                a.span(),
                "adopt",
                &format!(
                    "adopt takes over zettabee's ZFS replicas; this pair's kind is {}",
                    kind.word()
                ),
            ));
            None
        }
        Some(a) if a.get_ref() == "zettabee" => Some(Adopt::Zettabee),
        Some(a) => {
            cx.report(cx.err(
                a.span(),
                "adopt",
                &format!("ferry can adopt replicas of \"zettabee\", not {:?}", a.get_ref()),
            ));
            None
        }
        None => None,
    };
    let mut pair = Pair {
        kind,
        source,
        destination,
        port,
        options,
        line,
        adopt,
        recursive,
    };
    cx.block_sides(&e, kind, &mut pair, &sites.hosts);
    Some((pair, spans))
}
