//! The replicator of every kind whose checkpoint is a snapshot both sides hold (ZFS, btrfs,
//! block volumes): the verbs in `replicate`, `status`, `verify`, `purge` and `setup`, over the
//! kind's `driver::Driver`.

use std::collections::HashMap;

use futures::future::{BoxFuture, LocalBoxFuture};
use futures::FutureExt;

use crate::config::Pair;
use crate::driver::Driver;
use crate::state::lock::LockState;

use super::replicator::{Fut, Replicator};
use super::types::{Item, Options, PairStatus, Purge, Replicated, Verified};
use super::{purge, replicate, setup, status, verify, Engine};

/// Snapshot replication through one kind's driver.
pub struct Snapshots(pub &'static dyn Driver);

impl Replicator for Snapshots {
    fn initialize<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, opts: Options) -> Fut<'a, Replicated> {
        replicate::initialize(engine, pair, opts).boxed_local()
    }
    fn update<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, opts: Options) -> Fut<'a, Replicated> {
        replicate::update(engine, pair, opts).boxed_local()
    }
    fn statuses<'a>(
        &'a self,
        engine: &'a Engine,
        pairs: &'a [&'a Pair],
        locks: &'a HashMap<String, LockState>,
    ) -> BoxFuture<'a, Vec<PairStatus>> {
        status::snapshot_status(engine, pairs, locks).boxed()
    }
    fn verify<'a>(&'a self, engine: &'a Engine, pair: &'a Pair) -> Fut<'a, Vec<Verified>> {
        verify::verify(engine, pair).boxed_local()
    }
    fn purge<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, yes: bool) -> Fut<'a, Purge> {
        purge::purge(engine, pair, yes).boxed_local()
    }
    fn purge_all<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, yes: bool) -> Fut<'a, Purge> {
        purge::purge_all(engine, pair, yes).boxed_local()
    }
    fn setup<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, items: Vec<Item>) -> LocalBoxFuture<'a, Vec<Item>> {
        setup::setup(engine, pair, self.0, items).boxed_local()
    }
    fn snapshots(&self) -> Option<&'static dyn Driver> {
        Some(self.0)
    }
}
