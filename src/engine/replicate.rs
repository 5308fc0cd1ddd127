//! initialize and update: snapshot the source, stream it into the destination, then move the
//! checkpoint, in that order, so a job that dies at any point leaves the last good checkpoint.

use anyhow::{bail, Context, Result};

use crate::config::{Compress, Endpoint, Pair, TransportKind};
use crate::driver::{snapshot_driver, Base, Capabilities, Driver, DriverError, Keep, Marks, Stream, VolumeInfo};
use crate::exec::{ExecError, Executor};
use crate::model::{snapshot_name, JobAction, Phase};
use crate::transport::{self, codec, mbuffer};

use super::adopt;
use super::assess::{assess, ours, State};
use super::job::Job;
use super::retention::{self, after_receive, beyond_keep, Retention};
use super::tree;
use super::types::{Options, Replicated};
use super::Engine;

struct Sides {
    driver: &'static dyn Driver,
    src: Executor,
    dst: Executor,
    src_caps: Capabilities,
    /// What the destination can do: whether its receives are resumable.
    dst_caps: Capabilities,
    src_info: VolumeInfo,
    dst_info: VolumeInfo,
}

/// Reads both sides, one exec each, concurrently.
/// Each side is read as soon as its own connection is up, so a remote side's handshake overlaps
/// the other side's listing.
async fn read_sides(engine: &Engine, pair: &Pair, job: &Job) -> Result<Sides> {
    job.phase(Phase::Inspecting, None);
    let driver = snapshot_driver(pair.kind)?;
    let source = async {
        let ex = engine.executor(&pair.source.host).await?;
        let (caps, mut info) = caps_and_inspect(engine, driver, &ex, &pair.source)
            .await
            .context("source")?;
        Ok::<_, anyhow::Error>((ex, caps, info.remove(0)))
    };
    let destination = async {
        let ex = engine.executor(&pair.destination.host).await?;
        let (caps, mut info) = caps_and_inspect(engine, driver, &ex, &pair.destination)
            .await
            .context("destination")?;
        Ok::<_, anyhow::Error>((ex, caps, info.remove(0)))
    };
    let (s, d) = tokio::join!(source, destination);
    let ((src, src_caps, src_info), (dst, dst_caps, dst_info)) = (s?, d?);
    Ok(Sides {
        driver,
        src,
        dst,
        src_caps,
        dst_caps,
        src_info,
        dst_info,
    })
}

/// The source's listing, with its capabilities from the state dir's cache when a recent probe
/// answered; otherwise probe and listing in one exec, and the answer remembered.
async fn caps_and_inspect(
    engine: &Engine,
    driver: &dyn Driver,
    ex: &Executor,
    vol: &Endpoint,
) -> Result<(Capabilities, Vec<VolumeInfo>)> {
    let scope = driver.caps_scope(vol);
    if let Some(caps) = engine.state.cached_caps::<Capabilities>(&vol.host, scope) {
        return Ok((caps, driver.inspect(ex, &[vol]).await?));
    }
    let (caps, info) = driver.probe_and_inspect(ex, &[vol]).await?;
    engine.state.remember_caps(&vol.host, scope, &caps);
    Ok((caps, info))
}

/// A snapshot name for now that the source does not hold yet (names have one-second resolution).
async fn fresh_name(fp: &str, taken: &VolumeInfo) -> String {
    loop {
        let name = snapshot_name(fp, chrono::Utc::now());
        if !taken.snapshots.iter().any(|s| s.name == name) {
            return name;
        }
        let ms = 1000 - chrono::Utc::now().timestamp_subsec_millis() as u64;
        tokio::time::sleep(std::time::Duration::from_millis(ms + 5)).await;
    }
}

/// Snapshot + send on the source, receive on the destination, bytes through the transport.
async fn transfer(
    pair: &Pair,
    job: &Job,
    sides: &Sides,
    snap: &str,
    from: Option<&str>,
    opts: Options,
) -> Result<transport::Transferred> {
    let (src, dst) = (&pair.source, &pair.destination);
    let driver = sides.driver;
    if let Some(progress_frame) = driver.duplex() {
        return transfer_duplex(pair, job, sides, (snap, from), opts, progress_frame).await;
    }
    let force = opts.force;
    // the checkpoint's snapshot, or its bookmark where another tool destroyed the snapshot
    let base = from.map(|f| Base::on(&sides.src_info, f));
    if let Some(Base::Bookmark(b)) = base {
        job.log.line(&format!(
            "source {}: checkpoint {b} was destroyed; sending the increment from its bookmark",
            pair.source
        ));
    }
    let how = stream_of(pair, sides);
    let expected = if sides.src_caps.send_estimate {
        // the sender can tell the size: snapshot and ask for it first, then send (one more round
        // trip, worth it for the ETA)
        driver
            .snapshot_and_estimate(&sides.src, &sides.src_caps, src, snap, base, how)
            .await?
    } else if from.is_none() {
        sides.src_info.referenced
    } else {
        None
    };
    let send_cmd = driver.send_script(src, snap, base, sides.src_caps.send_estimate, how)?;
    let recv_cmd = driver.receive_script(dst, snap, force, sides.dst_caps.resume_tokens, how)?;
    stream(pair, job, sides, &send_cmd, &recv_cmd, expected).await
}

/// How this pair's stream goes: raw for an encrypted source unless the pair says `raw = false`,
/// with what block features both sides have, with the source's properties where the pair asks.
fn stream_of(pair: &Pair, sides: &Sides) -> Stream {
    let raw = pair.options.raw && sides.src_info.encryption.is_some();
    Stream {
        properties: pair.options.properties,
        ..sides.driver.stream(raw, &sides.src_caps, &sides.dst_caps)
    }
}

/// Runs a send and a receive script through the pair's transport (compression wrapped around
/// them where the pair asks), `expected` bytes for the progress.
async fn stream(
    pair: &Pair,
    job: &Job,
    sides: &Sides,
    send_cmd: &str,
    recv_cmd: &str,
    expected: Option<u64>,
) -> Result<transport::Transferred> {
    let compress = match pair.options.transport {
        TransportKind::Local => Compress::None,
        _ => pair.options.compress,
    };
    let expected = if compress == Compress::None { expected } else { None };
    let send_cmd = codec::compressing(send_cmd, compress);
    let recv_cmd = codec::decompressing(recv_cmd, compress);
    if pair.options.transport == TransportKind::Mbuffer {
        let plan = mbuffer::Plan {
            // None for a local destination without mbuffer_address: found at run time
            address: pair.options.mbuffer_address.clone(),
            port: pair
                .port
                .ok_or_else(|| anyhow::anyhow!("transport mbuffer needs a port"))?,
            bwlimit: pair.options.bwlimit,
            timeout: pair.options.mbuffer_timeout,
        };
        job.begin_transfer(expected);
        let log = |l: &str| job.log.line(l);
        return mbuffer::transfer(&sides.src, &sides.dst, &plan, &send_cmd, &recv_cmd, &job.meter, &log).await;
    }
    job.log.line(&format!("on {}: {recv_cmd}", sides.dst.host()));
    let recv = sides.dst.spawn(&recv_cmd).await?;
    job.log.line(&format!("on {}: {send_cmd}", sides.src.host()));
    let send = sides.src.spawn(&send_cmd).await?;
    job.begin_transfer(expected);
    transport::pipe(send, recv, &job.meter, pair.options.bwlimit, &watch(pair, sides)).await
}

/// The stall watch of a pair's transfer: its `idle_timeout` and the two hosts it names.
fn watch(pair: &Pair, sides: &Sides) -> transport::Watch {
    transport::Watch {
        idle: pair.options.idle_timeout,
        source: sides.src.host().to_string(),
        destination: sides.dst.host().to_string(),
    }
}

/// Two peers that agree between them what to send (block volumes): the receiver first, so it
/// has recovered any interrupted apply before the sender asks what it holds; the sender's read
/// progress drives the job's fraction and ETA. Compression is the peers' own (per chunk).
async fn transfer_duplex(
    pair: &Pair,
    job: &Job,
    sides: &Sides,
    (snap, from): (&str, Option<&str>),
    opts: Options,
    progress_frame: u8,
) -> Result<transport::Transferred> {
    let (src, dst) = (&pair.source, &pair.destination);
    let driver = sides.driver;
    let recv_cmd = if opts.repair {
        driver.repair_script(dst, snap)?
    } else {
        driver.receive_script(dst, snap, opts.force, false, Stream::default())?
    };
    let send_cmd = driver.send_script(src, snap, from.map(Base::Snapshot), false, Stream::default())?;
    job.log.line(&format!("on {}: {recv_cmd}", sides.dst.host()));
    let recv = sides.dst.spawn(&recv_cmd).await?;
    job.log.line(&format!("on {}: {send_cmd}", sides.src.host()));
    let send = sides.src.spawn(&send_cmd).await?;
    job.begin_transfer(None);
    let on_progress = |payload: &[u8]| {
        if let (Some(r), Some(t)) = (payload.get(..8), payload.get(8..16)) {
            let read = u64::from_be_bytes(r.try_into().unwrap_or_default());
            let total = u64::from_be_bytes(t.try_into().unwrap_or_default());
            job.read_progress(read, total);
        }
    };
    transport::duplex::duplex(
        send,
        recv,
        &job.meter,
        pair.options.bwlimit,
        progress_frame,
        &on_progress,
        &watch(pair, sides),
    )
    .await
}

/// A receive cut in an earlier run left what arrived on the destination, with a resume token:
/// only the rest is sent, before anything else, and both sides are read again after it. When the
/// source can no longer send that rest (the snapshot it was sending is gone) or the destination
/// refuses it (changed since), the saved state is dropped and the run starts from the
/// checkpoint, saying so. Gives the sides as they are now and the bytes the resume moved.
async fn finish_cut_receive(engine: &Engine, pair: &Pair, job: &Job, sides: Sides) -> Result<(Sides, u64)> {
    // a missing source is the caller's to say; what the destination saved stays meanwhile
    let Some(token) = sides.dst_info.resume_token.clone().filter(|_| sides.src_info.exists) else {
        return Ok((sides, 0));
    };
    let Some(scripts) = sides
        .driver
        .resume(&pair.source, &pair.destination, &token, stream_of(pair, &sides))
    else {
        return Ok((sides, 0));
    };
    let scripts = scripts?;
    let mut moved = 0;
    match sides.driver.resume_check(&sides.src, &token).await? {
        Err(why) => {
            job.log.line(&format!(
                "destination {}: the receive cut in an earlier run cannot be resumed ({why}): dropping what it saved and starting from the checkpoint",
                pair.destination
            ));
            sides.dst.run_ok(&scripts.abort).await?;
        }
        Ok(expected) => {
            job.phase(Phase::Transfer, Some("resuming the receive an earlier run was cut in"));
            job.log.line(&format!(
                "destination {}: resuming the receive an earlier run was cut in{}",
                pair.destination,
                expected.map(|b| format!(" ({b} bytes left)")).unwrap_or_default()
            ));
            match stream(pair, job, &sides, &scripts.send, &scripts.receive, expected).await {
                Ok(t) => {
                    job.log
                        .line(&format!("resumed: {} byte(s) in {:.1}s", t.bytes, t.seconds));
                    moved = t.bytes;
                }
                Err(e) => {
                    if let Some(DriverError::Modified(_)) =
                        receiver_failure_in(&sides, &pair.destination, &scripts.receive, &e)
                    {
                        job.log.line(&format!(
                            "destination {} was changed since the cut receive: dropping what it saved; the next run starts from the checkpoint",
                            pair.destination
                        ));
                        let _ = sides.dst.run_ok(&scripts.abort).await;
                    }
                    return Err(e.context("resuming the receive an earlier run was cut in"));
                }
            }
        }
    }
    Ok((read_sides(engine, pair, job).await?, moved))
}

/// After a failed transfer: the new snapshot is removed from the source again, unless the
/// destination kept what arrived of it (a resumable receive), which the next run finishes from
/// that snapshot.
async fn after_failed_transfer(job: &Job, pair: &Pair, sides: &Sides, snap: &str) {
    if sides.dst_caps.resume_tokens {
        if let Ok(info) = sides.driver.inspect(&sides.dst, &[&pair.destination]).await {
            if info.first().is_some_and(|i| i.resume_token.is_some()) {
                job.log.line(&format!(
                    "kept {snap} on the source: the destination saved what arrived, and the next run resumes from there"
                ));
                return;
            }
        }
    }
    drop_orphan(job, sides.driver, &sides.src, &pair.source, snap).await;
}

/// Best effort: a snapshot that never reached the destination is removed again. The sender may
/// still be exiting and hold it (busy), hence the short retries.
async fn drop_orphan(job: &Job, driver: &dyn Driver, ex: &Executor, vol: &Endpoint, snap: &str) {
    let p = retention::destroy_until_gone(driver, ex, vol, &[snap.to_string()], 6).await;
    if let Some(l) = p.left.first() {
        let at = format!("{}:{}", ex.host(), driver.snapshot_at(vol));
        job.log
            .line(&format!("could not remove {at}{snap} after the failure: {}", l.error));
    }
}

pub async fn initialize(engine: &Engine, pair: &Pair, opts: Options) -> Result<Replicated> {
    Job::run(engine, pair, JobAction::Initialize, async |job| {
        if pair.recursive {
            // the tree's root decides: initialized already is an error as for any pair
            let root = tree::root(pair);
            let sides = read_sides(engine, &root, job).await?;
            if let State::Synchronized(cp) = assess(&root.fingerprint(), &sides.src_info, &sides.dst_info) {
                bail!(
                    "pair is already initialized (Synchronized at {}); use `{}`",
                    cp.name,
                    engine.command("update", Some(pair))
                );
            }
            return replicate_tree(engine, pair, job, opts).await;
        }
        let sides = read_sides(engine, pair, job).await?;
        initialize_sides(engine, pair, job, opts, sides).await
    })
    .await
}

/// Every member of a recursive pair's tree brought to a checkpoint of its own, parents first: a
/// member without a replica is initialized (a new child), the others updated. One member's
/// failure does not stop the others; the run fails naming each.
async fn replicate_tree(engine: &Engine, pair: &Pair, job: &Job, opts: Options) -> Result<Replicated> {
    let members = tree::members(engine, pair).await?;
    let mut total = Replicated {
        snapshot: String::new(),
        bytes: 0,
        seconds: 0.0,
        pruned: Retention::default(),
    };
    let mut failed = Vec::new();
    let mut broken: Vec<String> = Vec::new();
    for (n, m) in members.iter().enumerate() {
        // a member's replica is received under its parent's: below a failed one, nothing can be
        if let Some(b) = broken.iter().find(|b| m.destination.path.starts_with(&format!("{b}/"))) {
            job.log.line(&format!("tree: {} skipped: {b} failed", m.destination));
            failed.push(format!("{}: skipped ({b} failed)", m.destination.path));
            broken.push(m.destination.path.clone());
            continue;
        }
        job.log.line(&format!(
            "tree: {} -> {} ({} of {})",
            m.source,
            m.destination,
            n + 1,
            members.len()
        ));
        let done = async {
            let sides = read_sides(engine, m, job).await?;
            if sides.dst_info.exists {
                update_sides(engine, m, job, opts, sides).await
            } else {
                initialize_sides(engine, m, job, opts, sides).await
            }
        }
        .await;
        match done {
            Ok(r) => {
                if n == 0 {
                    total.snapshot = r.snapshot.clone();
                    total.pruned = r.pruned;
                }
                total.bytes += r.bytes;
                total.seconds += r.seconds;
            }
            Err(e) => {
                job.log.line(&format!("tree: {} failed: {e:#}", m.destination));
                failed.push(format!("{}: {e:#}", m.destination.path));
                broken.push(m.destination.path.clone());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} volumes of the tree failed: {}",
            failed.len(),
            members.len(),
            failed.join("; ")
        );
    }
    Ok(total)
}

async fn initialize_sides(engine: &Engine, pair: &Pair, job: &Job, opts: Options, sides: Sides) -> Result<Replicated> {
    let fp = pair.fingerprint();
    let (sides, resumed) = finish_cut_receive(engine, pair, job, sides).await?;
    if !sides.src_info.exists {
        bail!("source {} does not exist", pair.source);
    }
    if sides.dst_info.exists {
        let a = assess(&fp, &sides.src_info, &sides.dst_info);
        if let State::Synchronized(cp) = &a {
            bail!(
                "pair is already initialized (Synchronized at {}); use `{}`",
                cp.name,
                engine.command("update", Some(pair))
            );
        }
        // a run that died after its receive and before recording: finish the recording
        let src_ours = ours(&sides.src_info, &fp);
        let resumable = if sides.dst_info.fingerprint.is_none() {
            ours(&sides.dst_info, &fp)
                .into_iter()
                .rev()
                .find(|d| src_ours.iter().any(|s| s.name == d.name))
        } else {
            None
        };
        if let Some(snap) = resumable {
            let detail = format!("destination already holds {}; recording it", snap.name);
            job.phase(Phase::Finishing, Some(&detail));
            record(job, &sides.dst, pair, &snap.name, true).await?;
            hold_checkpoint(job, pair, &sides, None, &snap.name).await;
            return Ok(Replicated {
                snapshot: snap.name.clone(),
                bytes: resumed,
                seconds: 0.0,
                pruned: Retention::default(),
            });
        }
        if adopt::wanted(pair, &sides.src_info, &sides.dst_info) {
            bail!(
                "destination {} exists and the pair has adopt = \"zettabee\": run `{}` to take it over without a full resend",
                pair.destination,
                engine.command("update", Some(pair))
            );
        }
        if opts.force && sides.dst_info.fingerprint.is_none() {
            return take_over_copy(pair, job, &sides).await;
        }
        bail!(
            "destination {} already exists and is not this pair's replica ({}): choose another destination, or if it is a copy of the source, `{}` takes it over (an incremental send from a snapshot both sides hold)",
            pair.destination,
            a.reason().unwrap_or("unknown state"),
            engine.command("initialize --force", Some(pair))
        );
    }
    if !sides.driver.parent_exists(&sides.dst, &pair.destination).await? {
        bail!(
            "the parent of destination {} does not exist; run `{}` first",
            pair.destination,
            engine.command("setup", Some(pair))
        );
    }
    let snap = fresh_name(&fp, &sides.src_info).await;
    let (src_at, _) = Engine::snapshots_at(pair);
    let what = format!("full send of {src_at}{snap}");
    first_replica(pair, job, &sides, &snap, None, &what).await
}

/// A new replica (a full send, or an incremental one into a copy being taken over): the
/// transfer, the snapshot removed again if it failed, then the first marks.
async fn first_replica(
    pair: &Pair,
    job: &Job,
    sides: &Sides,
    snap: &str,
    from: Option<&str>,
    what: &str,
) -> Result<Replicated> {
    job.phase(Phase::Transfer, Some(what));
    // into an existing copy, changes made there since the base are rolled back
    let opts = Options {
        force: from.is_some(),
        repair: false,
    };
    let moved = match transfer(pair, job, sides, snap, from, opts).await {
        Ok(m) => m,
        Err(e) => {
            after_failed_transfer(job, pair, sides, snap).await;
            return Err(e);
        }
    };
    job.phase(Phase::Finishing, Some("marking the destination"));
    record(job, &sides.dst, pair, snap, true).await?;
    hold_checkpoint(job, pair, sides, from, snap).await;
    Ok(Replicated {
        snapshot: snap.to_string(),
        bytes: moved.bytes,
        seconds: moved.seconds,
        pruned: Retention::default(),
    })
}

/// Moves what keeps the checkpoint from the old one to the new one: the pair's hold
/// (`ferry.<fp>`) on each side whose storage keeps holds, so no other tool's pruning can destroy
/// the snapshot the next incremental starts from, and the source's bookmark of it, which the
/// next incremental can start from if it is destroyed all the same. Best effort: the data is
/// safe without them, and what failed is logged.
async fn hold_checkpoint(job: &Job, pair: &Pair, sides: &Sides, old: Option<&str>, new: &str) {
    let tag = crate::model::hold_tag(&pair.fingerprint());
    let keep = |hold, bookmark| Keep {
        tag: &tag,
        old,
        new,
        hold,
        bookmark,
    };
    let (s, d) = tokio::join!(
        hold_side(
            sides.driver,
            &sides.src,
            &pair.source,
            keep(sides.src_caps.holds, sides.src_caps.bookmarks)
        ),
        hold_side(
            sides.driver,
            &sides.dst,
            &pair.destination,
            keep(sides.dst_caps.holds, false)
        )
    );
    for line in [s, d].into_iter().flatten() {
        job.log.line(&line);
    }
}

/// `hold_checkpoint` on one side: what went wrong, if anything.
async fn hold_side(driver: &dyn Driver, ex: &Executor, vol: &Endpoint, keep: Keep<'_>) -> Option<String> {
    if !keep.hold && !keep.bookmark {
        return None;
    }
    let why = match driver.keep_checkpoint(ex, vol, keep).await {
        Ok(None) => return None,
        Ok(Some(why)) => why,
        Err(e) => format!("{e:#}"),
    };
    Some(format!(
        "on {}: could not keep {}@{} as the checkpoint (hold {}{}): {why}",
        ex.host(),
        vol.path,
        keep.new,
        keep.tag,
        if keep.bookmark { ", bookmark" } else { "" }
    ))
}

/// Records the checkpoint with the data: fingerprint, source, lastsnap; readonly on first time.
async fn record(job: &Job, dst: &Executor, pair: &Pair, snap: &str, first: bool) -> Result<()> {
    let driver = snapshot_driver(pair.kind)?;
    let (fingerprint, source) = (pair.fingerprint(), pair.source.to_string());
    let marks = Marks {
        fingerprint: &fingerprint,
        source: &source,
        snapshot: snap,
        first,
    };
    let cmd = driver.record_script(&pair.destination, &marks)?;
    job.log.line(&format!("on {}: {cmd}", dst.host()));
    dst.run_ok(&cmd).await?;
    if first {
        driver.expose(dst, &pair.destination).await?;
    }
    Ok(())
}

/// `initialize --force` over a copy made another way: an incremental send from the newest
/// snapshot the driver proves both sides hold, rolling back changes since, then ferry's marks.
async fn take_over_copy(pair: &Pair, job: &Job, sides: &Sides) -> Result<Replicated> {
    let fp = pair.fingerprint();
    let base = adopt::base(
        job,
        pair,
        (&sides.src, &sides.dst),
        &sides.src_info,
        &sides.dst_info,
        adopt::Proof::Copy,
    )
    .await?;
    let snap = fresh_name(&fp, &sides.src_info).await;
    let what = format!("incremental {}..{snap} into the existing copy", base.name);
    first_replica(pair, job, sides, &snap, Some(&base.name), &what).await
}

pub async fn update(engine: &Engine, pair: &Pair, opts: Options) -> Result<Replicated> {
    Job::run(engine, pair, JobAction::Update, async |job| {
        if pair.recursive {
            // new children are initialized by an update; a tree whose root has no replica yet is not
            let root = tree::root(pair);
            let sides = read_sides(engine, &root, job).await?;
            if sides.src_info.exists && !sides.dst_info.exists {
                bail!(
                    "pair is Uninitialized: run `{}` first",
                    engine.command("initialize", Some(pair))
                );
            }
            return replicate_tree(engine, pair, job, opts).await;
        }
        let sides = read_sides(engine, pair, job).await?;
        update_sides(engine, pair, job, opts, sides).await
    })
    .await
}

async fn update_sides(engine: &Engine, pair: &Pair, job: &Job, opts: Options, sides: Sides) -> Result<Replicated> {
    let fp = pair.fingerprint();
    let (sides, resumed) = finish_cut_receive(engine, pair, job, sides).await?;
    if !sides.src_info.exists {
        bail!(
            "source {} does not exist: check the pair's `source` in the config (nothing was changed)",
            pair.source
        );
    }
    // an apply cut halfway is finished by the receiver before anything else: the checkpoint
    // under it is where this run starts from
    let a = match &sides.dst_info.interrupted {
        Some(why) if sides.driver.duplex().is_some() => {
            job.log.line(&format!("destination: {why}"));
            let mut settled = sides.dst_info.clone();
            settled.interrupted = None;
            assess(&fp, &sides.src_info, &settled)
        }
        _ => assess(&fp, &sides.src_info, &sides.dst_info),
    };
    let a = match a {
        // peers that agree on the base themselves start from the replica's own checkpoint when
        // the source side lost its record of it (the sender asks the receiver for its manifest)
        State::Inconsistent(why) if sides.driver.duplex().is_some() => match replica_checkpoint(&fp, &sides.dst_info) {
            Some(cp) => {
                job.log.line(&format!(
                    "{why}: the sender takes the replica's checkpoint {} from the destination",
                    cp.name
                ));
                State::Synchronized(cp)
            }
            None => State::Inconsistent(why),
        },
        a => a,
    };
    // adopting another tool's replica: its base instead of a checkpoint, ferry's marks set after
    let adopting = adopt::wanted(pair, &sides.src_info, &sides.dst_info);
    let checkpoint = match a {
        State::Synchronized(cp) => cp,
        _ if adopting => {
            let sides_ex = (&sides.src, &sides.dst);
            adopt::base(
                job,
                pair,
                sides_ex,
                &sides.src_info,
                &sides.dst_info,
                adopt::Proof::Zettabee,
            )
            .await?
        }
        State::Uninitialized => bail!(
            "pair is Uninitialized: run `{}` first",
            engine.command("initialize", Some(pair))
        ),
        State::Inconsistent(why) | State::Unknown(why) => {
            if sides.dst_info.exists && sides.dst_info.fingerprint.is_none() {
                if let Some(hint) = adopt::hint(pair, &sides.dst).await {
                    bail!("pair is Inconsistent: {why}; {hint}");
                }
            }
            bail!(
                "pair is Inconsistent: {why}; inspect both sides, then re-create the destination and run `{}`",
                engine.command("initialize", Some(pair))
            )
        }
    };
    let dst_ds = pair.destination.path.as_str();
    let snap = fresh_name(&fp, &sides.src_info).await;
    job.phase(
        Phase::Transfer,
        Some(&format!("incremental {}..{snap}", checkpoint.name)),
    );
    let moved = match transfer(pair, job, &sides, &snap, Some(&checkpoint.name), opts).await {
        Ok(m) => m,
        Err(e) => {
            after_failed_transfer(job, pair, &sides, &snap).await;
            if let Some(DriverError::Modified(_)) = receiver_failure(pair, &sides, &snap, opts.force, &e) {
                let text = format!("{e:#}");
                bail!("{text}; the destination {dst_ds} was changed by hand since the checkpoint: rerun with --force to roll it back (losing those changes)");
            }
            return Err(e);
        }
    };
    job.phase(Phase::Finishing, Some("moving the checkpoint"));
    let pruned = if adopting {
        record(job, &sides.dst, pair, &snap, adopting).await?;
        let pruned = retain(engine, pair, job, &sides, &checkpoint.name, &snap).await;
        hold_checkpoint(job, pair, &sides, Some(&checkpoint.name), &snap).await;
        pruned
    } else {
        // the receive succeeded, so `snap` is on both sides and is what the state is read from
        // (the newest common snapshot); retention never touches it and need not wait for the
        // marker, nor the hold and bookmark moving to it (a run that dies before the marker
        // leaves `snap` held, the newest common snapshot: the checkpoint all the same)
        let (recorded, pruned, ()) = tokio::join!(
            record(job, &sides.dst, pair, &snap, false),
            retain(engine, pair, job, &sides, &checkpoint.name, &snap),
            hold_checkpoint(job, pair, &sides, Some(&checkpoint.name), &snap)
        );
        recorded?;
        pruned
    };
    Ok(Replicated {
        snapshot: snap,
        bytes: moved.bytes + resumed,
        seconds: moved.seconds,
        pruned,
    })
}

/// Why the receiving command of a failed transfer failed, as the driver reads the receiver's own
/// stderr about the destination (never the text of the whole error chain).
fn receiver_failure(pair: &Pair, sides: &Sides, snap: &str, force: bool, e: &anyhow::Error) -> Option<DriverError> {
    let command = sides
        .driver
        .receive_script(
            &pair.destination,
            snap,
            force,
            sides.dst_caps.resume_tokens,
            stream_of(pair, sides),
        )
        .unwrap_or_default();
    receiver_failure_in(sides, &pair.destination, &command, e)
}

/// `receiver_failure` for a receive run as `command`.
fn receiver_failure_in(sides: &Sides, vol: &Endpoint, command: &str, e: &anyhow::Error) -> Option<DriverError> {
    let f = e
        .chain()
        .find_map(|c| c.downcast_ref::<transport::StreamFailed>())?
        .receiver
        .as_ref()?;
    let failed = ExecError {
        host: sides.dst.host().to_string(),
        command: command.to_string(),
        code: f.code,
        stderr: f.stderr.clone(),
    };
    sides.driver.classify(vol, &failed)
}

/// The checkpoint a replica of this pair records, when it is ours and has one.
fn replica_checkpoint(fp: &str, dst: &VolumeInfo) -> Option<crate::model::Checkpoint> {
    if dst.fingerprint.as_deref() != Some(fp) {
        return None;
    }
    let name = dst.lastsnap.as_deref()?;
    let snap = dst.snapshots.iter().find(|s| s.name == name)?;
    Some(crate::model::Checkpoint {
        name: snap.name.clone(),
        created: snap.created,
    })
}

/// Retention on both sides after the checkpoint moved to `snap`: the newest `keep` of ours stay
/// on each side, the checkpoint always. Each snapshot is destroyed on its own, so a busy or held
/// one stays (and is tried again next run) without stopping the others. The data is safe at
/// this point: what is left behind goes to the log and the pair's retention record, not into
/// the run's result.
async fn retain(engine: &Engine, pair: &Pair, job: &Job, sides: &Sides, old: &str, snap: &str) -> Retention {
    let fp = pair.fingerprint();
    let keep = pair.options.keep;
    let new = crate::driver::Snapshot {
        name: snap.to_string(),
        created: chrono::Utc::now().timestamp(),
        id: None,
    };
    let mut src_after = sides.src_info.clone();
    src_after.snapshots.push(new.clone());
    let carried = sides.driver.sends_intermediates();
    let dst_after = after_receive(&sides.dst_info, &sides.src_info, old, new, carried);
    let (src_at, dst_at) = Engine::snapshots_at(pair);
    let doomed = [
        beyond_keep(&src_after, &fp, keep, Some(snap)),
        beyond_keep(&dst_after, &fp, keep, Some(snap)),
    ];
    for (at, list) in [&src_at, &dst_at].into_iter().zip(&doomed) {
        if !list.is_empty() {
            job.log
                .line(&format!("retention: destroying {}", Engine::named(at, list)));
        }
    }
    let (source, destination) = tokio::join!(
        retention::prune(sides.driver, &sides.src, &pair.source, &doomed[0]),
        retention::prune(sides.driver, &sides.dst, &pair.destination, &doomed[1])
    );
    let mut left = Vec::new();
    for (at, p) in [&src_at, &dst_at].into_iter().zip([&source, &destination]) {
        for l in &p.left {
            let line = format!("{at}{}: {}", l.snapshot, l.error);
            job.log.line(&format!("retention left {line} (tried again next run)"));
            left.push(line);
        }
    }
    if let Err(e) = retention::note(&engine.state, &fp, left) {
        job.log.line(&format!("could not write the retention record: {e}"));
    }
    Retention { source, destination }
}
