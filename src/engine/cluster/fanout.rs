//! Snapshot kinds in a cluster (zfs, btrfs, block): each `listen` volume is a source fanned out
//! to every `update` volume of its kind. Every `settle` the run journals one change per source
//! (`@checkpoint`: "bring the replicas to a new checkpoint") with its replicas as targets, then
//! runs each replica's pair as `update` (or `initialize` while it has no replica yet) through
//! the engine, so its lock, log, progress and status are a pair's, under the fingerprint of
//! `source -> replica`. A killed run leaves the fan-outs unfinished in the journal; the next one
//! runs them again (an update from the last checkpoint is always safe to repeat).

use std::time::Instant;

use anyhow::Result;

use crate::config::{Cluster, Pair};
use crate::engine::kind::for_kind;
use crate::model::Kind;
use crate::state::object_journal::{now_ms, Op};

use super::Engine;
use crate::state::cluster_journal::{Change, Journal, Seen};

pub use crate::state::cluster_journal::CHECKPOINT_KEY;

/// Whether `c` is a fan-out round of one of `cluster`'s snapshot sources. Journals written before
/// rounds were marked hold them unmarked under [`CHECKPOINT_KEY`]; an unmarked one counts only
/// from a snapshot source, which never journals object changes.
pub fn is_round(cluster: &Cluster, c: &Change) -> bool {
    c.round
        || (c.key == CHECKPOINT_KEY
            && cluster
                .volumes
                .iter()
                .any(|v| v.at.to_string() == c.origin && for_kind(v.kind).snapshots().is_some()))
}

/// The pair that replicates `source` into `replica` (the config's defaults as its options).
pub fn pair_of(engine: &Engine, cluster: &Cluster, source: &str, replica: &str) -> Option<Pair> {
    let find = |at: &str| cluster.volumes.iter().find(|v| v.at.to_string() == at);
    let (s, r) = (find(source)?, find(replica)?);
    Some(Pair {
        kind: s.kind,
        source: s.at.clone(),
        destination: r.at.clone(),
        port: None,
        options: engine.config.defaults.clone(),
        line: 0,
        adopt: None,
        recursive: false,
    })
}

/// The sources and each one's replicas (same kind, update, not itself).
pub fn fanouts(cluster: &Cluster) -> Vec<(String, Kind, Vec<String>)> {
    cluster
        .volumes
        .iter()
        .filter(|v| for_kind(v.kind).snapshots().is_some() && v.listen)
        .map(|s| {
            let replicas = cluster
                .volumes
                .iter()
                .filter(|r| r.kind == s.kind && r.update && r.at != s.at)
                .map(|r| r.at.to_string())
                .collect();
            (s.at.to_string(), s.kind, replicas)
        })
        .collect()
}

/// The fan-out half of a cycle: a new round journaled when the last one is `settle` old, then
/// every ready fan-out run; gives (journaled, applied, failed).
pub async fn cycle(
    engine: &Engine,
    cluster: &Cluster,
    journal: &mut Journal,
    last_round: &mut Option<Instant>,
    log: &crate::state::log::PairLog,
) -> Result<(usize, usize, usize)> {
    let mut journaled = 0;
    if last_round.is_none_or(|t| t.elapsed() >= cluster.settle) {
        *last_round = Some(Instant::now());
        let changes: Vec<Seen> = fanouts(cluster)
            .into_iter()
            .filter(|(_, _, replicas)| !replicas.is_empty())
            .map(|(source, _, replicas)| Seen {
                origin: source,
                key: CHECKPOINT_KEY.into(),
                op: Op::Put,
                ver: None,
                targets: replicas,
                round: true,
            })
            .collect();
        journaled = journal.record(changes, Vec::new())?;
    }
    let ready: Vec<_> = journal
        .ready(now_ms(), 0)
        .into_iter()
        .filter(|(c, _)| is_round(cluster, c))
        .collect();
    let (mut applied, mut failed) = (0, 0);
    for (c, target) in ready {
        // a worker that lost its lease runs no more replicas' jobs
        journal.check_fence()?;
        let Some(pair) = pair_of(engine, cluster, &c.origin, &target) else {
            // a volume taken out of the config: nowhere to go
            journal.done(&[(c.seq, target)])?;
            continue;
        };
        let r = replicate(engine, &pair).await;
        match r {
            Ok(what) => {
                log.line(&format!("{} -> {target}: {what}", c.origin));
                journal.done(&[(c.seq, target)])?;
                applied += 1;
            }
            Err(e) => {
                log.line(&format!("{} -> {target}: FAILED: {e:#}", c.origin));
                journal.fail(c.seq, &target, &format!("{e:#}"), now_ms())?;
                failed += 1;
            }
        }
        journal.sync()?;
    }
    Ok((journaled, applied, failed))
}

/// `initialize` while the replica does not exist, `update` after.
async fn replicate(engine: &Engine, pair: &Pair) -> Result<String> {
    use crate::engine::kind::{initialize, update};
    use crate::engine::types::Options;
    let st = crate::engine::kind::status(engine, &[pair]).await;
    let uninitialized = st
        .first()
        .is_some_and(|s| s.state == crate::model::StateKind::Uninitialized);
    let done = if uninitialized {
        initialize(engine, pair, Options::default()).await?
    } else {
        update(engine, pair, Options::default()).await?
    };
    Ok(format!(
        "{} {} bytes, checkpoint {}",
        if uninitialized { "initialized" } else { "updated" },
        done.bytes,
        done.snapshot
    ))
}
