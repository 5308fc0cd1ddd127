//! What every kind of pair can be asked (`Replicator`) and what only some can (`ObjectChanges`
//! and the other capabilities a replicator returns or not, as rclone's `Features`). Each kind's
//! replicator implements it (`engine::snapshots`, `engine::objects`); `engine::kind` picks one.

use std::collections::HashMap;

use anyhow::Result;
use futures::future::{BoxFuture, LocalBoxFuture};

use crate::config::Pair;
use crate::driver::Driver;
use crate::state::lock::LockState;

use super::types::{Item, ObjectStatus, Options, PairStatus, Purge, Replicated, Verified};
use super::Engine;

/// A verb's asynchronous answer; boxed so the trait stays object-safe. A job runs on the thread
/// that started it (its transfer's log callbacks are not `Send`); statuses are `Send`, as the
/// console collects them on a task of its own.
pub type Fut<'a, T> = LocalBoxFuture<'a, Result<T>>;

/// How one kind of pair is replicated.
pub trait Replicator: Send + Sync {
    /// The first copy: refused when the pair is initialized already.
    fn initialize<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, opts: Options) -> Fut<'a, Replicated>;
    /// What changed since the checkpoint; refused while the pair is Uninitialized.
    fn update<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, opts: Options) -> Fut<'a, Replicated>;
    /// The statuses of `pairs` (all of this kind), in their order; never fails: what could not
    /// be read is each pair's Unknown state with the reason.
    fn statuses<'a>(
        &'a self,
        engine: &'a Engine,
        pairs: &'a [&'a Pair],
        locks: &'a HashMap<String, LockState>,
    ) -> BoxFuture<'a, Vec<PairStatus>>;
    /// Does the destination hold exactly its checkpoint? One verdict per volume.
    fn verify<'a>(&'a self, engine: &'a Engine, pair: &'a Pair) -> Fut<'a, Vec<Verified>>;
    /// What is beyond the pair's retention (destroyed with `yes`).
    fn purge<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, yes: bool) -> Fut<'a, Purge>;
    /// The replica and the pair's records, so it can be initialized again (done with `yes`).
    fn purge_all<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, yes: bool) -> Fut<'a, Purge>;
    /// The kind's checks after the common ones in `items`.
    fn setup<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, items: Vec<Item>) -> LocalBoxFuture<'a, Vec<Item>>;

    /// Snapshot kinds: the driver their volumes go through.
    fn snapshots(&self) -> Option<&'static dyn Driver> {
        None
    }
    /// Kinds that journal each key's change: listing keys and retrying failed changes.
    fn objects(&self) -> Option<&dyn ObjectChanges> {
        None
    }
}

/// What a pair that journals each key's change can do besides the common verbs.
pub trait ObjectChanges: Send + Sync {
    /// The keys the pair's journal holds (with `failed_only`, its FAILED changes).
    fn list(&self, engine: &Engine, pair: &Pair, failed_only: bool) -> Result<Vec<ObjectStatus>>;
    /// Every FAILED change made due now, then a pass.
    fn retry<'a>(&'a self, engine: &'a Engine, pair: &'a Pair) -> Fut<'a, Replicated>;
}
