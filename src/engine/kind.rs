//! The seam between the engine's verbs and the kinds of volume: each kind's `Replicator` is
//! chosen here, once per pair, and the verbs the CLI, the console and the cluster engine call go
//! through it; nothing else in the engine, the CLI or the console branches on a pair's kind.

use anyhow::{bail, Result};

use crate::config::Pair;
use crate::model::Kind;

use super::objects::Objects;
use super::replicator::{ObjectChanges, Replicator};
use super::setup::state_dir_item;
use super::snapshots::Snapshots;
use super::types::{Item, Options, PairStatus, Purge, Replicated, Verified};
use super::Engine;

static ZFS: Snapshots = Snapshots(&crate::driver::zfs::Zfs);
static BTRFS: Snapshots = Snapshots(&crate::driver::btrfs::Btrfs);
static BLOCK: Snapshots = Snapshots(&crate::driver::block::Block);
static OBJECTS: Objects = Objects;

/// The replicator of a kind: the only match on a pair's kind outside the config and the drivers.
pub fn for_kind(kind: Kind) -> &'static dyn Replicator {
    match kind {
        Kind::Zfs => &ZFS,
        Kind::Btrfs => &BTRFS,
        Kind::Block => &BLOCK,
        Kind::Object => &OBJECTS,
    }
}

pub async fn initialize(engine: &Engine, pair: &Pair, opts: Options) -> Result<Replicated> {
    for_kind(pair.kind).initialize(engine, pair, opts).await
}

pub async fn update(engine: &Engine, pair: &Pair, opts: Options) -> Result<Replicated> {
    for_kind(pair.kind).update(engine, pair, opts).await
}

pub async fn verify(engine: &Engine, pair: &Pair) -> Result<Vec<Verified>> {
    for_kind(pair.kind).verify(engine, pair).await
}

/// `purge DEST [--yes]`, and with `all` `purge --all DEST [--yes]`.
pub async fn purge(engine: &Engine, pair: &Pair, all: bool, yes: bool) -> Result<Purge> {
    let r = for_kind(pair.kind);
    match all {
        true => r.purge_all(engine, pair, yes).await,
        false => r.purge(engine, pair, yes).await,
    }
}

/// `setup DEST`: the state dir first (every pair has one), then the kind's checks. Every check
/// runs even after one fails, so the operator sees the whole picture.
pub async fn setup(engine: &Engine, pair: &Pair) -> Vec<Item> {
    let items = vec![state_dir_item(engine, pair)];
    for_kind(pair.kind).setup(engine, pair, items).await
}

/// The pair's per-key changes, or an error naming the pair's kind when it has none.
pub fn object_changes(engine: &Engine, pair: &Pair, verb: &str) -> Result<&'static dyn ObjectChanges> {
    match for_kind(pair.kind).objects() {
        Some(o) => Ok(o),
        None => bail!(
            "{} is a {} pair: `{verb}` is for object pairs (their keys and FAILED changes); run `{}`",
            Engine::dest_name(pair),
            pair.kind.word(),
            engine.command("update", Some(pair))
        ),
    }
}

/// Status of the given pairs, in their order: each kind's pairs together (snapshot kinds with
/// one listing per host, all hosts at once; object pairs from their state dirs), every kind at
/// once, under one read of the coordination engine's locks.
pub async fn status(engine: &Engine, pairs: &[&Pair]) -> Vec<PairStatus> {
    let locks = super::status::engine_locks(engine).await;
    let mut kinds: Vec<Kind> = pairs.iter().map(|p| p.kind).collect();
    kinds.sort();
    kinds.dedup();
    let groups: Vec<Vec<&Pair>> = kinds
        .iter()
        .map(|k| pairs.iter().copied().filter(|p| p.kind == *k).collect())
        .collect();
    let answers = futures::future::join_all(
        kinds
            .iter()
            .zip(&groups)
            .map(|(k, g)| for_kind(*k).statuses(engine, g, &locks)),
    )
    .await;
    let mut answers: Vec<std::vec::IntoIter<PairStatus>> = answers.into_iter().map(Vec::into_iter).collect();
    pairs
        .iter()
        .filter_map(|p| {
            let i = kinds.iter().position(|k| *k == p.kind)?;
            answers[i].next()
        })
        .collect()
}

#[cfg(test)]
#[path = "kind_tests.rs"]
mod tests;
