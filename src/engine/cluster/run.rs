//! `cluster run`: one cluster worked in cycles until a signal stops it. A cycle lists every
//! `listen` object volume, journals what changed there (a HEAD tells a replica the cluster wrote,
//! marked `ferry-cluster`, from a change made on that volume), then applies every settled change
//! to every `update` volume but its origin, newest first by version time, and records what it
//! wrote so the writing is not seen as a change again (no echo).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;

use crate::config::{Cluster, Coordination};
use crate::coord::worker;
use crate::engine::kind::for_kind;
use crate::object::bwlimit::RateLimit;
use crate::object::carry::{carry, Carried};
use crate::object::changes::{detect, Detected, Known};
use crate::object::client::{Client, ClientError, ObjectAttrs, ObjectInfo, Stat};
use crate::object::sync::SyncOptions;
use crate::state::lock::LockInfo;
use crate::state::object_journal::{now_ms, Op};

use super::report::{CycleFigures, Report};
use super::{Engine, MARK};
use crate::state::cluster_journal::{Change, Fence, Journal, JournalError, Seen, Version};
use crate::state::records::Journaled;

/// HEADs and copies in flight at once.
const PARALLEL: usize = 16;

/// One object volume of the cluster, opened.
pub struct Volume {
    pub name: String,
    pub client: Client,
    pub listen: bool,
    pub update: bool,
}

impl Version {
    pub fn of(o: &ObjectInfo) -> Version {
        Version {
            size: o.size,
            modified_ms: o.last_modified.timestamp_millis(),
            etag: o.etag.clone(),
        }
    }
}

/// Why one change could not be applied to one target; its text is what the journal keeps with
/// the FAILED change.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The S3 request failed (the client's own error: its kind, location and key).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The target or the origin was taken out of the config.
    #[error("volume no longer in the cluster")]
    Removed,
    /// The copy succeeded, but the target no longer held the key when asked right after.
    #[error("{key} on {target}: gone right after the copy")]
    GoneAfterCopy { key: String, target: String },
    /// The lease was lost meanwhile: the failure's journal write ends this worker.
    #[error("this instance no longer works the cluster")]
    Deposed,
}

/// The cluster's object volumes, each with a client (credentials read now, never printed).
pub fn open_volumes(engine: &Engine, cluster: &Cluster) -> Result<Vec<Volume>> {
    cluster
        .volumes
        .iter()
        .filter(|v| for_kind(v.kind).objects().is_some())
        .map(|v| {
            let client = crate::object::open::open(&engine.config, &v.at)
                .with_context(|| format!("cluster {}: volume {}", cluster.name, v.at))?;
            Ok(Volume {
                name: v.at.to_string(),
                client,
                listen: v.listen,
                update: v.update,
            })
        })
        .collect()
}

/// How a fan-out ended.
enum Done {
    Copied(Version),
    Deleted,
    Skipped(&'static str),
}

/// What a target should get of a change, decided against what it holds now.
enum Apply {
    /// Nothing to do (gone at the origin, already there, or a newer write on the target).
    Skip(&'static str),
    Copy,
    Delete,
}

/// One volume as the cluster's journal knows it: the shared detector's record of that origin.
struct VolumeView<'a> {
    journal: &'a Journal,
    vol: &'a str,
}

impl Known for VolumeView<'_> {
    fn knows(&self, listed: &ObjectInfo) -> bool {
        self.journal
            .seen(self.vol, &listed.key)
            .is_some_and(|s| s.same_as(&Version::of(listed)))
    }

    fn known_keys(&self) -> Vec<&str> {
        self.journal.seen_in(self.vol)
    }

    fn busy(&self, key: &str) -> bool {
        self.journal.busy(self.vol, key)
    }
}

fn is_replica(attrs: &ObjectAttrs, cluster: &str) -> bool {
    attrs.metadata.get(MARK).is_some_and(|v| v == cluster)
}

fn without_mark(a: &ObjectAttrs) -> ObjectAttrs {
    let mut a = a.clone();
    a.metadata.remove(MARK);
    a
}

/// A write made on a volume by someone else beats a change of `time` from `origin` when it is
/// newer (ties go to the greater volume name, so two sites agree on one winner).
fn target_wins(held: &ObjectInfo, target: &str, time_ms: i64, origin: &str) -> bool {
    (held.last_modified.timestamp_millis(), target) > (time_ms, origin)
}

pub struct Runner<'a> {
    pub engine: &'a Engine,
    pub cluster: &'a Cluster,
    /// When the snapshot volumes' last fan-out round was journaled.
    last_round: Option<Instant>,
    pub log: crate::state::log::PairLog,
    pub journal: Journal,
    pub volumes: Vec<Volume>,
    pub options: SyncOptions,
    pub report: Report,
}

impl<'a> Runner<'a> {
    /// Opens the cluster's volumes and its journal, fenced with `fence` when instances coordinate.
    pub fn new(engine: &'a Engine, cluster: &'a Cluster, fence: Option<Fence>) -> Result<Runner<'a>> {
        let volumes = open_volumes(engine, cluster)?;
        crate::state::files::ensure_trusted_dir(&cluster.persist_path, "persist_path").with_context(|| {
            format!(
                "cluster {}: persist_path {}",
                cluster.name,
                cluster.persist_path.display()
            )
        })?;
        let path = crate::state::cluster_journal::path_in(&cluster.persist_path);
        let journal = match fence {
            Some(f) => Journal::open_fenced(&path, f)?,
            None => Journal::open(&path)?,
        };
        let bw = cluster.bwlimit;
        Ok(Runner {
            engine,
            cluster,
            last_round: None,
            log: crate::state::log::PairLog::new(&cluster.persist_path.join("log"), engine.verbose),
            journal,
            volumes,
            options: SyncOptions {
                bwlimit: (bw > 0).then(|| Arc::new(RateLimit::new(bw))),
                ..SyncOptions::default()
            },
            report: Report::new(cluster),
        })
    }

    fn volume(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.name == name)
    }

    fn targets(&self, origin: &str) -> Vec<String> {
        self.volumes
            .iter()
            .filter(|v| v.update && v.name != origin)
            .map(|v| v.name.clone())
            .collect()
    }

    /// One listing of every listen volume, journaled; gives how many changes were journaled.
    pub async fn listen(&mut self, figures: &mut CycleFigures) -> Result<usize> {
        let listeners: Vec<&Volume> = self.volumes.iter().filter(|v| v.listen).collect();
        let listings = futures::future::join_all(
            listeners
                .iter()
                .map(|v| async move { (v.name.clone(), v.client.list().await) }),
        )
        .await;
        let mut changes = Vec::new();
        let mut seen = Vec::new();
        for (name, listing) in listings {
            let listing = match listing {
                Ok(l) => {
                    figures.errors.remove(&name);
                    l
                }
                Err(e) => {
                    // a volume that cannot be listed says nothing: in particular no deletes
                    figures.errors.insert(name, e.to_string());
                    continue;
                }
            };
            figures.listed.insert(name.clone(), listing.objects.len());
            let (c, s, mut odd) = self.diff(&name, listing.objects).await;
            odd.extend(listing.odd);
            if odd.is_empty() {
                figures.unlisted.remove(&name);
            } else {
                figures.unlisted.insert(name.clone(), odd);
            }
            changes.extend(c);
            seen.extend(s);
        }
        let n = self.journal.record(changes, seen)?;
        Ok(n)
    }

    /// What changed on `vol` since the cluster last knew it.
    /// Also gives the keys that could not be read (each with why).
    async fn diff(
        &self,
        vol: &str,
        listing: Vec<ObjectInfo>,
    ) -> (Vec<Seen>, Vec<(String, String, Option<Version>)>, Vec<String>) {
        let mut unreadable = Vec::new();
        let Some(v) = self.volume(vol) else {
            return (Vec::new(), Vec::new(), unreadable);
        };
        let targets = self.targets(vol);
        let view = VolumeView {
            journal: &self.journal,
            vol,
        };
        let mut unknown = Vec::new();
        let mut deleted = Vec::new();
        for d in detect(&listing, &view) {
            match d {
                Detected::Same(_) => {}
                Detected::Put(o) => unknown.push((o.key.clone(), Version::of(o))),
                Detected::Delete(key) => deleted.push(key.to_string()),
            }
        }
        let heads: Vec<(String, Version, Result<Option<Stat>, ClientError>)> = futures::stream::iter(unknown)
            .map(|(key, ver)| async move {
                let r = v.client.stat(&key).await;
                (key, ver, r)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let mut changes = Vec::new();
        let mut seen = Vec::new();
        for (key, ver, head) in heads {
            match head {
                // written by this cluster: known now, not a change made here
                Ok(Some((_, attrs))) if is_replica(&attrs, &self.cluster.name) => {
                    seen.push((vol.to_string(), key, Some(ver)));
                }
                Ok(Some(_)) => {
                    seen.push((vol.to_string(), key.clone(), Some(ver.clone())));
                    changes.push(Seen {
                        origin: vol.to_string(),
                        key,
                        op: Op::Put,
                        ver: Some(ver),
                        targets: targets.clone(),
                        round: false,
                    });
                }
                // gone since the listing: the next cycle looks again
                Ok(None) => {}
                // unreadable now, or a key no request can name: said, and looked at again
                Err(e) => unreadable.push(format!("{key:?}: {}", crate::text::one_line(&e.to_string()))),
            }
        }
        for key in deleted {
            seen.push((vol.to_string(), key.clone(), None));
            changes.push(Seen {
                origin: vol.to_string(),
                key,
                op: Op::Delete,
                ver: None,
                targets: targets.clone(),
                round: false,
            });
        }
        (changes, seen, unreadable)
    }

    /// Applies every settled change to its targets; gives (applied, skipped, failed).
    pub async fn apply(&mut self) -> Result<(usize, usize, usize)> {
        let settle = self.cluster.settle.as_millis() as u64;
        // the snapshot volumes' fan-outs are run by `fanout`
        let ready: Vec<(Change, String)> = self
            .journal
            .ready(now_ms(), settle)
            .into_iter()
            .filter(|(c, _)| !super::fanout::is_round(self.cluster, c) && self.volume(&c.origin).is_some())
            .collect();
        if ready.is_empty() {
            return Ok((0, 0, 0));
        }
        // deletes first record, durably, that the target will not hold the key (a restart must
        // not take the cluster's own delete for one made on the target)
        let mut plans = Vec::new();
        for (c, t) in ready {
            let plan = self.plan(&c, &t).await;
            if let Ok(Apply::Delete) = plan {
                self.journal.set_seen(&t, &c.key, None)?;
            }
            plans.push((c, t, plan));
        }
        let me = &*self;
        let results: Vec<(Change, String, Result<Done, ApplyError>)> = futures::stream::iter(plans)
            .map(|(c, t, plan)| async move {
                let r = match plan {
                    // the lease lost meanwhile: the failure's journal write ends this worker
                    _ if !me.journal.may_act() => Err(ApplyError::Deposed),
                    Err(e) => Err(e),
                    Ok(Apply::Skip(why)) => Ok(Done::Skipped(why)),
                    Ok(Apply::Delete | Apply::Copy) => me.carry(&c, &t).await,
                };
                (c, t, r)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let (mut applied, mut skipped, mut failed) = (0, 0, 0);
        let mut done = Vec::new();
        for (c, t, r) in results {
            match r {
                Ok(d) => {
                    match d {
                        Done::Copied(ver) => {
                            self.journal.wrote(&t, &c.key, Some(ver))?;
                            applied += 1;
                        }
                        Done::Deleted => applied += 1,
                        Done::Skipped(why) => {
                            self.log
                                .line(&format!("{} -> {t}: {:?} not applied: {why}", c.origin, c.key));
                            skipped += 1;
                        }
                    }
                    done.push((c.seq, t));
                }
                Err(e) => {
                    self.log.line(&format!("{} -> {t}: {:?} FAILED: {e}", c.origin, c.key));
                    self.journal.fail(c.seq, &t, &e.to_string(), now_ms())?;
                    failed += 1;
                }
            }
        }
        self.journal.done(&done)?;
        self.journal.sync()?;
        self.journal.maybe_compact()?;
        Ok((applied, skipped, failed))
    }

    /// Decides what `target` gets of change `c` from what it and the origin hold now.
    async fn plan(&self, c: &Change, target: &str) -> Result<Apply, ApplyError> {
        let (Some(t), Some(o)) = (self.volume(target), self.volume(&c.origin)) else {
            // a volume taken out of the config: its changes have nowhere to go
            return Ok(Apply::Skip("volume no longer in the cluster"));
        };
        let held = t.client.stat(&c.key).await?;
        match c.op {
            Op::Delete => match held {
                None => Ok(Apply::Skip("already absent")),
                Some((info, attrs))
                    if !is_replica(&attrs, &self.cluster.name)
                        && target_wins(&info, target, c.time_ms(), &c.origin) =>
                {
                    Ok(Apply::Skip("written on the target after the delete"))
                }
                Some(_) => Ok(Apply::Delete),
            },
            Op::Put => {
                let Some((src, src_attrs)) = o.client.stat(&c.key).await? else {
                    return Ok(Apply::Skip("gone at the origin (its delete follows)"));
                };
                if let Some((info, attrs)) = held {
                    let replica = is_replica(&attrs, &self.cluster.name);
                    if !replica && target_wins(&info, target, src.last_modified.timestamp_millis(), &c.origin) {
                        return Ok(Apply::Skip("a newer write on the target"));
                    }
                    let same_bytes = info.size == src.size && info.etag.is_some() && info.etag == src.etag;
                    if same_bytes && without_mark(&attrs) == without_mark(&src_attrs) {
                        return Ok(Apply::Skip("already there"));
                    }
                }
                Ok(Apply::Copy)
            }
        }
    }

    /// Carries change `c` to `target` through the shared apply step, with the replica mark; a
    /// copy gives the version the target holds now (so the cluster knows its own write).
    async fn carry(&self, c: &Change, target: &str) -> Result<Done, ApplyError> {
        let (Some(t), Some(o)) = (self.volume(target), self.volume(&c.origin)) else {
            return Err(ApplyError::Removed);
        };
        let mark = Some((MARK, self.cluster.name.as_str()));
        match carry(&o.client, &t.client, &c.key, c.op, &self.options, mark).await? {
            Carried::Deleted => Ok(Done::Deleted),
            Carried::Gone => Ok(Done::Skipped("gone at the origin (its delete follows)")),
            Carried::Copied { .. } => match t.client.stat(&c.key).await? {
                Some((info, _)) => Ok(Done::Copied(Version::of(&info))),
                None => Err(ApplyError::GoneAfterCopy {
                    key: c.key.clone(),
                    target: target.to_string(),
                }),
            },
        }
    }

    /// One cycle: listen, journal, apply, report.
    pub async fn cycle(&mut self) -> Result<()> {
        let started = Instant::now();
        self.journal.check_fence()?;
        let mut figures = std::mem::take(&mut self.report.figures);
        let mut journaled = self.listen(&mut figures).await?;
        let (mut applied, skipped, mut failed) = self.apply().await?;
        let (j, a, f) = super::fanout::cycle(
            self.engine,
            self.cluster,
            &mut self.journal,
            &mut self.last_round,
            &self.log,
        )
        .await?;
        journaled += j;
        applied += a;
        failed += f;
        if journaled + applied + skipped + failed > 0 {
            self.log.line(&format!(
                "cycle: {journaled} change(s) journaled, {applied} applied, {skipped} not needed, {failed} failed"
            ));
        }
        figures.cycles += 1;
        figures.journaled += journaled as u64;
        figures.applied += applied as u64;
        figures.failed += failed as u64;
        figures.last_cycle_ms = now_ms();
        figures.cycle_secs = started.elapsed().as_secs_f64();
        self.report.figures = figures;
        self.report.write(&self.cluster.persist_path);
        Ok(())
    }
}

/// Works `cluster` until SIGTERM/SIGINT. Alone (`coordination = "local"`): takes its lock (a dead
/// instance's lock is taken over: the journal holds all it knew), then cycles every `poll`. Under
/// an engine: stands by until it holds the cluster's lease, works it while the lease holds, and
/// stands by again if it loses it.
pub async fn run(engine: &Engine, cluster: &Cluster) -> Result<()> {
    let stop = stop_signal();
    tokio::pin!(stop);
    let coord = match &cluster.coordination {
        Coordination::Engine(c) => c.clone(),
        Coordination::Local => {
            let lock = super::lock::take(cluster)?;
            let r = match Runner::new(engine, cluster, None) {
                Ok(mut runner) => {
                    runner.log.line(&started_line(&runner, "cluster run started"));
                    work(&mut runner, &mut stop).await.map(|_| ())
                }
                Err(e) => Err(e),
            };
            lock.release();
            return r;
        }
    };
    crate::state::files::ensure_trusted_dir(&cluster.persist_path, "persist_path").with_context(|| {
        format!(
            "cluster {}: persist_path {}",
            cluster.name,
            cluster.persist_path.display()
        )
    })?;
    let log = crate::state::log::PairLog::new(&cluster.persist_path.join("log"), engine.verbose);
    let me = LockInfo {
        pid: std::process::id(),
        action: "cluster run".into(),
        started: crate::state::now_unix(),
        host: Some(crate::coord::this_host()),
    };
    let mut said = String::new();
    // the lease of the worker seen at the last look: a standby that finds its key deleted waits for it
    let mut last = 0;
    loop {
        // standing by: one look each quarter lease until the cluster is free to take
        let worker = loop {
            let (c, name, m) = (coord.clone(), cluster.name.clone(), me.clone());
            let tried = tokio::task::spawn_blocking(move || worker::try_take(&c, &name, &m, last)).await?;
            let line = match tried {
                Ok(Ok(w)) => break w,
                Ok(Err(h)) => {
                    last = h.lease;
                    format!(
                        "standing by: the cluster is worked by {} ({})",
                        h.info.action,
                        h.info.who()
                    )
                }
                Err(e) => format!("standing by: coordination: {e}"),
            };
            if line != said {
                log.line(&line);
                said = line;
            }
            tokio::select! {
                _ = tokio::time::sleep(coord.lease / 4) => {}
                _ = &mut stop => {
                    log.line("cluster run stopped by a signal (standing by)");
                    return Ok(());
                }
            }
        };
        said.clear();
        last = 0;
        if let Some((lease, took)) = worker.waited {
            log.line(&format!(
                "coordination: the worker's key was gone while its lease {lease:x} lived (deleted in etcd?): waited {:.1}s for it to end before taking over",
                took.as_secs_f64()
            ));
        }
        if let Some(o) = &worker.replaced {
            log.line(&format!(
                "coordination: cleared {o}: no live worker's (written by hand or by another program)"
            ));
        }
        let epoch = worker.epoch;
        let fence = Fence {
            epoch,
            holds: Box::new(worker.fence()),
        };
        let mut runner = match Runner::new(engine, cluster, Some(fence)) {
            Ok(r) => r,
            Err(e) if fenced(&e) => {
                log.line(&format!(
                    "lost the cluster's lease before working it (epoch {epoch}): standing by"
                ));
                continue;
            }
            Err(e) => {
                log.line(&format!("cluster run FAILED: {e:#}"));
                worker.release();
                return Err(e);
            }
        };
        runner
            .log
            .line(&started_line(&runner, &format!("working the cluster (epoch {epoch})")));
        match work(&mut runner, &mut stop).await {
            Ok(Stopped::Signal) => {
                worker.release();
                return Ok(());
            }
            Ok(Stopped::Deposed) => {
                runner.log.line(&match worker.key_lost() {
                    Some(why) => format!("lost the cluster (epoch {epoch}): its worker key {why}: standing by"),
                    None => format!("lost the cluster's lease (epoch {epoch}): standing by"),
                });
                // our key only (made at our epoch): a successor's is never touched
                worker.release();
            }
            Err(e) => {
                worker.release();
                return Err(e);
            }
        }
    }
}

/// How often an idle worker looks at its fence between cycles.
const FENCE_LOOK: Duration = Duration::from_millis(100);

/// How a worker's cycles ended without an error.
enum Stopped {
    Signal,
    /// Its lease ran out (another instance may work the cluster now).
    Deposed,
}

fn fenced(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<JournalError>(), Some(JournalError::Fenced(_)))
}

fn started_line(runner: &Runner, what: &str) -> String {
    format!(
        "{what} (pid {}): {} volume(s), settle {}, poll {}",
        std::process::id(),
        runner.volumes.len(),
        crate::config::units::format_duration(runner.cluster.settle),
        crate::config::units::format_duration(runner.cluster.poll)
    )
}

/// Cycles every `poll` until a signal, a lost lease or an error.
async fn work(
    runner: &mut Runner<'_>,
    stop: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<Stopped> {
    let poll = runner.cluster.poll;
    let r = {
        let cycles = async {
            loop {
                let next = Instant::now() + poll;
                runner.cycle().await?;
                // between cycles too: a worker whose lease or key went stops now, not a poll later
                while Instant::now() < next {
                    runner.journal.check_fence()?;
                    tokio::time::sleep_until(next.min(Instant::now() + FENCE_LOOK).into()).await;
                }
            }
        };
        tokio::select! {
            r = cycles => r,
            _ = stop => Ok(Stopped::Signal),
        }
    };
    match r {
        Ok(s) => {
            runner.log.line("cluster run stopped by a signal");
            Ok(s)
        }
        Err(e) if fenced(&e) => Ok(Stopped::Deposed),
        Err(e) => {
            runner.log.line(&format!("cluster run FAILED: {e:#}"));
            Err(e)
        }
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
        }
        _ => std::future::pending().await,
    }
}
