//! Object pairs through the engine: the same jobs (lock, log, progress, last result), statuses,
//! verify, purge and setup as every pair, over `crate::object`'s passes instead of snapshots. The
//! pair's state (status journal, checkpoint) lives in its state-dir folder under `objects/`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use futures::future::{BoxFuture, LocalBoxFuture};
use futures::FutureExt;

use crate::config::Pair;
use crate::model::{Checkpoint, JobAction, Phase};
use crate::object::bwlimit::RateLimit;
use crate::object::client::ObjectInfo;
use crate::object::open as endpoints;
use crate::object::sync::{self, PassProgress, PassReport, Scope, SyncOptions};
use crate::state::lock::{self, LockState};
use crate::state::object_journal::State as EntryState;
use crate::state::records::Journaled;

use super::assess::State;
use super::job::Job;
use super::replicator::{Fut, ObjectChanges, Replicator};
use super::status::compose;
use super::types::{Item, ObjectStatus, Options, PairStatus, Purge, Replicated, Verified};
use super::Engine;

/// Most differences `verify` names one by one before it counts the rest.
const SHOWN: usize = 50;

/// The pair's object state: `<state>/<fp>/objects/`.
pub fn state_dir(engine: &Engine, pair: &Pair) -> PathBuf {
    engine.state.pair_dir(&pair.fingerprint()).join("objects")
}

fn sync_pair(engine: &Engine, pair: &Pair, progress: PassProgress) -> Result<sync::Pair> {
    let src = endpoints::open(&engine.config, &pair.source).context("source")?;
    let dst = endpoints::open(&engine.config, &pair.destination).context("destination")?;
    let bw = pair.options.bwlimit;
    Ok(sync::Pair {
        src,
        dst,
        state_dir: state_dir(engine, pair),
        options: SyncOptions {
            bwlimit: (bw > 0).then(|| Arc::new(RateLimit::new(bw))),
            progress,
            ..SyncOptions::default()
        },
    })
}

/// The pair's checkpoint from local state alone: when the last finished pass listed the source,
/// held back to the oldest change not yet applied (what the destination is sure to hold).
fn checkpoint(engine: &Engine, pair: &Pair) -> Result<Option<Checkpoint>> {
    Ok(checkpoint_and_unlisted(engine, pair)?.map(|(c, _)| c))
}

/// `checkpoint`, and the names the last pass's listings gave that cannot be keys.
fn checkpoint_and_unlisted(engine: &Engine, pair: &Pair) -> Result<Option<(Checkpoint, Vec<String>)>> {
    let dir = state_dir(engine, pair);
    let cp_path = dir.join("checkpoint.json");
    if !crate::object::checkpoint::Checkpoint::exists(&cp_path) {
        return Ok(None);
    }
    let cp = crate::object::checkpoint::Checkpoint::load(&cp_path)?;
    let journal = crate::state::object_journal::Journal::open_read(&sync::journal_path(&dir))?;
    let listed = cp.listed_ms.unwrap_or(0);
    let oldest = journal.unfinished().iter().map(|e| e.enqueued_ms).min();
    let at_ms = oldest.map_or(listed, |o| o.min(listed));
    let at = chrono::DateTime::from_timestamp_millis(at_ms as i64).unwrap_or_default();
    let named = Checkpoint {
        name: format!("pass {}", at.format("%Y-%m-%dT%H:%M:%SZ")),
        created: at_ms as i64 / 1000,
    };
    Ok(Some((named, cp.unlisted)))
}

/// Runs one pass as the job's work; a pass with failed changes is a failed run that says how to
/// see and retry them.
async fn pass(engine: &Engine, pair: &Pair, job: &Job, scope: Scope, retry: bool) -> Result<Replicated> {
    let started = std::time::Instant::now();
    job.phase(Phase::Inspecting, Some("listing the source"));
    let feed = PassProgress {
        bytes: job.meter.clone(),
        ..PassProgress::default()
    };
    job.follow_objects(feed.clone());
    let p = sync_pair(engine, pair, feed)?;
    let r = if retry {
        p.retry().await
    } else {
        p.pass_scoped(scope).await
    }
    .map_err(anyhow::Error::new)?;
    job.log.line(&summary(&r));
    if r.failed > 0 {
        let journal = p.journal()?;
        let first = journal.failed().first().map(|e| {
            format!(
                " (first: {:?}: {})",
                e.key,
                e.reason.as_deref().unwrap_or("no reason recorded")
            )
        });
        bail!(
            "{} change(s) FAILED{}; they are retried with backoff by the next update, or now by `{}`; list them with `{}`",
            r.failed,
            first.unwrap_or_default(),
            engine.command("retry", Some(pair)),
            engine.command("objects --failed", Some(pair)),
        );
    }
    Ok(Replicated {
        snapshot: checkpoint(engine, pair)?.map(|c| c.name).unwrap_or_default(),
        bytes: r.bytes,
        seconds: started.elapsed().as_secs_f64(),
        pruned: Default::default(),
    })
}

fn summary(r: &PassReport) -> String {
    let mut s = format!(
        "pass: {} copied ({} bytes), {} deleted, {} unchanged, {} gone from the source, {} failed",
        r.copied, r.bytes, r.deleted, r.unchanged, r.gone, r.failed
    );
    if !r.unlisted.is_empty() {
        s.push_str(&format!(
            "; {} name(s) listed that cannot be keys: {}",
            r.unlisted.len(),
            r.unlisted.join("; ")
        ));
    }
    for w in &r.journal_warnings {
        s.push_str(&format!("; status journal: {w}"));
    }
    s
}

/// `initialize`: the first pass, comparing both sides. A destination that holds objects ferry
/// did not put there is refused without `--force` (the pass would delete what the source lacks).
pub async fn initialize(engine: &Engine, pair: &Pair, opts: Options) -> Result<Replicated> {
    Job::run(engine, pair, JobAction::Initialize, async |job| {
        if let Some(cp) = checkpoint(engine, pair)? {
            bail!(
                "pair is already initialized (checkpoint {}); use `{}`",
                cp.name,
                engine.command("update", Some(pair))
            );
        }
        if !opts.force {
            job.phase(Phase::Inspecting, Some("is the destination empty?"));
            let dst = endpoints::open(&engine.config, &pair.destination).context("destination")?;
            let found = dst.probe().await?;
            if found > 0 {
                bail!(
                    "destination {} is not empty: initialize makes it equal to the source, deleting what the source does not have; check it, then `{}`",
                    pair.destination,
                    engine.command("initialize --force", Some(pair))
                );
            }
        }
        pass(engine, pair, job, Scope::Full, false).await
    })
    .await
}

/// `update`: what changed on the source since the checkpoint (`--repair`: both sides compared,
/// mending what was changed on the destination behind ferry's back).
pub async fn update(engine: &Engine, pair: &Pair, opts: Options) -> Result<Replicated> {
    Job::run(engine, pair, JobAction::Update, async |job| {
        if checkpoint(engine, pair)?.is_none() {
            bail!(
                "pair is Uninitialized: run `{}` first",
                engine.command("initialize", Some(pair))
            );
        }
        let scope = if opts.repair || opts.force {
            Scope::Full
        } else {
            Scope::Changes
        };
        pass(engine, pair, job, scope, false).await
    })
    .await
}

/// `retry`: every FAILED change made due now, then a pass.
pub async fn retry(engine: &Engine, pair: &Pair) -> Result<Replicated> {
    Job::run(engine, pair, JobAction::Retry, async |job| {
        if checkpoint(engine, pair)?.is_none() {
            bail!(
                "pair is Uninitialized: run `{}` first",
                engine.command("initialize", Some(pair))
            );
        }
        pass(engine, pair, job, Scope::Changes, true).await
    })
    .await
}

/// `objects DEST [--failed]`: every key the checkpoint holds (COMPLETED) and every change not yet
/// applied (PENDING, FAILED), sorted by key; from local state, no request to either side.
pub fn objects(engine: &Engine, pair: &Pair, failed_only: bool) -> Result<Vec<ObjectStatus>> {
    let dir = state_dir(engine, pair);
    let cp_path = dir.join("checkpoint.json");
    if !crate::object::checkpoint::Checkpoint::exists(&cp_path) && !sync::journal_path(&dir).exists() {
        bail!(
            "pair is Uninitialized: no object has been replicated yet (`{}`)",
            engine.command("initialize", Some(pair))
        );
    }
    let journal = crate::state::object_journal::Journal::open_read(&sync::journal_path(&dir))?;
    let unfinished = journal.unfinished();
    let mut out: Vec<ObjectStatus> = unfinished
        .iter()
        .filter(|e| !failed_only || e.state == EntryState::Failed)
        .map(|e| ObjectStatus::of(e))
        .collect();
    if !failed_only {
        let cp = crate::object::checkpoint::Checkpoint::load(&cp_path)?;
        let busy: std::collections::HashSet<&str> = unfinished.iter().map(|e| e.key.as_str()).collect();
        out.extend(
            cp.keys
                .keys()
                .filter(|k| !busy.contains(k.as_str()))
                .map(|k| ObjectStatus {
                    key: k.clone(),
                    state: EntryState::Completed,
                    op: None,
                    retries: 0,
                    reason: None,
                    enqueued_ms: None,
                    next_retry_ms: None,
                }),
        );
    }
    // FIFO per key: a key's changes stay in journal order
    out.sort_by(|a, b| a.key.cmp(&b.key).then(a.enqueued_ms.cmp(&b.enqueued_ms)));
    Ok(out)
}

/// An object pair's status from its state dir alone (journal, checkpoint, lock): no request goes
/// to either endpoint, so a status of many pairs stays fast. FAILED changes are a warning; the
/// lag runs from the oldest change not yet applied.
pub fn status(engine: &Engine, pair: &Pair, locks: &HashMap<String, LockState>) -> PairStatus {
    let run = super::status::run_info_with(&engine.state, pair, locks);
    let mut unlisted = Vec::new();
    let (state, failed, pending) = match checkpoint_and_unlisted(engine, pair) {
        Ok(Some((cp, odd))) => {
            unlisted = odd;
            let dir = state_dir(engine, pair);
            let (failed, pending) = match crate::state::object_journal::Journal::open_read(&sync::journal_path(&dir)) {
                Ok(j) => (j.failed().len(), j.pending().len()),
                Err(_) => (0, 0),
            };
            (State::Synchronized(cp), failed, pending)
        }
        Ok(None) => (State::Uninitialized, 0, 0),
        Err(e) => (State::Unknown(format!("{e:#}")), 0, 0),
    };
    let mut st = compose_state(pair, state, run);
    if failed > 0 {
        st.warnings.push(format!(
            "{failed} object change(s) FAILED: `{}`",
            engine.command("objects --failed", Some(pair))
        ));
        st.level = st.level.worst(crate::monitor::Level::Warning);
    }
    if pending > 0 {
        st.warnings.push(format!("{pending} object change(s) PENDING"));
    }
    if !unlisted.is_empty() {
        st.warnings.push(format!(
            "{} name(s) in the last listing cannot be keys and are not replicated: {}",
            unlisted.len(),
            crate::text::clip(&unlisted.join("; "), 512)
        ));
        st.level = st.level.worst(crate::monitor::Level::Warning);
    }
    for vol in [&pair.source, &pair.destination] {
        if let Ok(h) = endpoints::host(&engine.config, vol) {
            if h.unencrypted() {
                st.warnings.push(format!(
                    "host {} is reached over plain http ({}): objects cross the network unencrypted",
                    h.name, h.endpoint
                ));
            }
        }
    }
    st
}

/// `compose` with the state already decided: object pairs have no volume listings to assess.
fn compose_state(pair: &Pair, state: State, run: super::types::RunInfo) -> PairStatus {
    use crate::driver::{Snapshot, VolumeInfo};
    let fp = pair.fingerprint();
    match state {
        State::Synchronized(cp) => {
            // one snapshot named as the checkpoint on both sides reads as Synchronized at it
            let side = VolumeInfo {
                exists: true,
                fingerprint: Some(fp.clone()),
                lastsnap: Some(cp.name.clone()),
                snapshots: vec![Snapshot {
                    name: format!("{}{}", crate::model::snapshot_prefix(&fp), cp.name),
                    created: cp.created,
                    id: None,
                }],
                ..VolumeInfo::default()
            };
            let mut st = compose(pair, Ok(&side), Ok(&side), run);
            st.checkpoint = Some(cp.name.clone());
            st.assessed = State::Synchronized(cp);
            st.source_over_keep = None;
            st.destination_over_keep = None;
            st
        }
        State::Uninitialized => {
            let src = VolumeInfo {
                exists: true,
                ..VolumeInfo::default()
            };
            compose(pair, Ok(&src), Ok(&VolumeInfo::default()), run)
        }
        other => {
            let why = other.reason().unwrap_or("unknown").to_string();
            compose(pair, Err(&why), Err(&why), run)
        }
    }
}

/// `verify DEST`: lists the destination and compares it with the checkpoint: every key there
/// with the size and ETag the copy left, nothing else; changes not yet applied are named too.
pub async fn verify(engine: &Engine, pair: &Pair) -> Result<Vec<Verified>> {
    let dir = state_dir(engine, pair);
    let mut v = Verified {
        destination: pair.destination.to_string(),
        checkpoint: None,
        differences: Vec::new(),
    };
    let Some(cp_name) = checkpoint(engine, pair)? else {
        v.differences
            .push("the pair is Uninitialized: there is no checkpoint to verify".into());
        return Ok(vec![v]);
    };
    v.checkpoint = Some(cp_name.name);
    let cp = crate::object::checkpoint::Checkpoint::load(&dir.join("checkpoint.json"))?;
    let src = endpoints::open(&engine.config, &pair.source).context("source")?;
    let dst = endpoints::open(&engine.config, &pair.destination).context("destination")?;
    let (src_listing, dst_listing) = futures::try_join!(src.list(), dst.list())?;
    let listed: std::collections::BTreeMap<String, ObjectInfo> =
        dst_listing.objects.into_iter().map(|o| (o.key.clone(), o)).collect();
    let journal = crate::state::object_journal::Journal::open_read(&sync::journal_path(&dir))?;
    let unfinished = journal.unfinished();
    let busy: std::collections::HashSet<&str> = unfinished.iter().map(|e| e.key.as_str()).collect();
    let mut diffs = Vec::new();
    for (key, c) in &cp.keys {
        match listed.get(key) {
            None => diffs.push(format!("{key}: missing on the destination")),
            Some(o) if c.size.is_some_and(|n| n != o.size) => diffs.push(format!(
                "{key}: {} bytes on the destination, the copy wrote {}",
                o.size,
                c.size.unwrap_or(0)
            )),
            Some(o) if o.etag.is_some() && c.dst_etag.is_some() && o.etag != c.dst_etag => diffs.push(format!(
                "{key}: changed on the destination since the copy (ETag differs)"
            )),
            Some(_) => {}
        }
    }
    for key in listed.keys().filter(|k| !cp.keys.contains_key(*k)) {
        diffs.push(format!("{key}: on the destination, not in the checkpoint"));
    }
    // The source's listing as well: a key the last pass should have copied but that neither the
    // checkpoint nor the destination holds (a key no request named, taken for gone) is found
    // here. Keys written since the last pass listed the source are the next pass's to copy.
    let listed_at = cp.listed_ms.unwrap_or(0) as i64;
    for o in &src_listing.objects {
        let before_pass = o.last_modified.timestamp_millis() <= listed_at;
        if !before_pass || busy.contains(o.key.as_str()) || cp.keys.contains_key(&o.key) {
            continue;
        }
        match listed.get(&o.key) {
            None => diffs.push(format!(
                "{}: on the source, not on the destination, and no change of it is journaled",
                o.key
            )),
            Some(d) if d.size != o.size => diffs.push(format!(
                "{}: {} bytes on the source, {} on the destination",
                o.key, o.size, d.size
            )),
            Some(_) => {}
        }
    }
    for name in src_listing.odd.iter().chain(&cp.unlisted) {
        diffs.push(format!("cannot be replicated: {name}"));
    }
    let (pending, failed) = (journal.pending().len(), journal.failed().len());
    for e in journal.failed().iter().take(SHOWN) {
        diffs.push(format!(
            "{}: {} FAILED: {}",
            e.key,
            e.op.word(),
            e.reason.as_deref().unwrap_or("no reason recorded")
        ));
    }
    if pending + failed > 0 {
        diffs.push(format!(
            "{pending} change(s) PENDING and {failed} FAILED not yet applied (`{}`)",
            engine.command("objects", Some(pair))
        ));
    }
    let more = diffs.len().saturating_sub(SHOWN);
    diffs.truncate(SHOWN);
    if more > 0 {
        diffs.push(format!("and {more} more"));
    }
    v.differences = diffs;
    Ok(vec![v])
}

/// `purge --all DEST [--yes]`: every object under the destination prefix and the pair's object
/// state go, so the pair can be initialized again. Refused while a job runs. (Plain `purge` has
/// nothing to do: object pairs keep no snapshots.)
pub async fn purge_all(engine: &Engine, pair: &Pair, yes: bool) -> Result<Purge> {
    let fp = pair.fingerprint();
    if let LockState::Running(i) = lock::inspect(&engine.state.lock_path(&fp)) {
        bail!(
            "already running: {} (pid {}): purge --all refuses while a job runs",
            i.action,
            i.pid
        );
    }
    let dst = endpoints::open(&engine.config, &pair.destination).context("destination")?;
    let keys: Vec<String> = dst.list().await?.objects.into_iter().map(|o| o.key).collect();
    let mut plan = Purge {
        source: pair.source.to_string(),
        destination: pair.destination.to_string(),
        source_at: String::new(),
        destination_at: Engine::snapshots_at(pair).1,
        destination_snapshots: keys.clone(),
        destroy_destination: true,
        ..Default::default()
    };
    if !yes {
        return Ok(plan);
    }
    Job::run(engine, pair, JobAction::PurgeAll, async |job| {
        job.phase(
            Phase::Destroying,
            Some(&format!("{} object(s) under {}", keys.len(), pair.destination)),
        );
        for k in &keys {
            if let Err(e) = dst.delete(k).await {
                plan.left.push(format!("{k}: {e}"));
            }
        }
        if plan.left.is_empty() {
            let dir = state_dir(engine, pair);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
            let _ = std::fs::remove_file(engine.state.success_path(&fp));
        } else {
            bail!(
                "{} object(s) could not be deleted: {}",
                plan.left.len(),
                plan.left.join("; ")
            );
        }
        plan.done = true;
        Ok(())
    })
    .await?;
    Ok(plan)
}

/// `setup DEST`: the state dir, each side's credentials and bucket (one listing request), and
/// whether the objects cross the network unencrypted.
pub async fn setup(engine: &Engine, pair: &Pair, mut items: Vec<Item>) -> Vec<Item> {
    for (label, vol) in [("source", &pair.source), ("destination", &pair.destination)] {
        let what = format!("{label} bucket {vol}");
        let item = |ok: bool, detail: String| Item {
            ok,
            what: what.clone(),
            detail,
            initialized: false,
        };
        let client = match endpoints::open(&engine.config, vol) {
            Ok(c) => c,
            Err(e) => {
                items.push(item(false, format!("{e:#}")));
                continue;
            }
        };
        let host = endpoints::host(&engine.config, vol).ok();
        let plain = host.is_some_and(|h| h.unencrypted());
        match client.probe().await {
            Ok(n) => items.push(item(
                true,
                format!(
                    "reachable at {}{}; {n} object(s) or prefix(es) at the top",
                    host.map(|h| h.endpoint.as_str()).unwrap_or(""),
                    if plain {
                        " (plain http: objects cross the network unencrypted)"
                    } else {
                        ""
                    }
                ),
            )),
            Err(e) => items.push(item(false, e.to_string())),
        }
    }
    if let Ok(Some(cp)) = checkpoint(engine, pair) {
        items.push(Item {
            ok: true,
            what: "checkpoint".into(),
            detail: cp.name,
            initialized: true,
        });
    }
    items
}

/// The replicator of object pairs: passes over the S3 client instead of snapshots.
pub struct Objects;

impl Replicator for Objects {
    fn initialize<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, opts: Options) -> Fut<'a, Replicated> {
        initialize(engine, pair, opts).boxed_local()
    }
    fn update<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, opts: Options) -> Fut<'a, Replicated> {
        update(engine, pair, opts).boxed_local()
    }
    fn statuses<'a>(
        &'a self,
        engine: &'a Engine,
        pairs: &'a [&'a Pair],
        locks: &'a HashMap<String, LockState>,
    ) -> BoxFuture<'a, Vec<PairStatus>> {
        let all = pairs.iter().map(|p| status(engine, p, locks)).collect();
        async move { all }.boxed()
    }
    fn verify<'a>(&'a self, engine: &'a Engine, pair: &'a Pair) -> Fut<'a, Vec<Verified>> {
        verify(engine, pair).boxed_local()
    }
    fn purge<'a>(&'a self, _engine: &'a Engine, pair: &'a Pair, _yes: bool) -> Fut<'a, Purge> {
        // no snapshots to keep or prune: nothing is ever beyond `keep`
        let plan = Purge {
            source: pair.source.to_string(),
            destination: pair.destination.to_string(),
            done: true,
            ..Purge::default()
        };
        async move { Ok(plan) }.boxed_local()
    }
    fn purge_all<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, yes: bool) -> Fut<'a, Purge> {
        purge_all(engine, pair, yes).boxed_local()
    }
    fn setup<'a>(&'a self, engine: &'a Engine, pair: &'a Pair, items: Vec<Item>) -> LocalBoxFuture<'a, Vec<Item>> {
        setup(engine, pair, items).boxed_local()
    }
    fn objects(&self) -> Option<&dyn ObjectChanges> {
        Some(self)
    }
}

impl ObjectChanges for Objects {
    fn list(&self, engine: &Engine, pair: &Pair, failed_only: bool) -> Result<Vec<ObjectStatus>> {
        objects(engine, pair, failed_only)
    }
    fn retry<'a>(&'a self, engine: &'a Engine, pair: &'a Pair) -> Fut<'a, Replicated> {
        retry(engine, pair).boxed_local()
    }
}
