//! One function per command that acts on pairs: each finds its pair (or pairs), calls the
//! engine, and prints in the shape the contract gives it (text, `--json`, exit code).

use std::io::IsTerminal;

use anyhow::Result;

use crate::config::Pair;
use crate::engine::types::RunState;
use crate::engine::{fleet, kind, observe, setup as setup_check, status as status_of, Engine};
use crate::monitor::metrics as prometheus;

use super::args::{Action, Cli};
use super::report::{error_text, json_error, quiet};
use super::select::one;
use super::{bar, print};

/// `fingerprint [DEST]`: each pair's fingerprint (its state folder's name).
pub async fn fingerprint(cli: &Cli, engine: &Engine, dest: Option<&str>) -> Result<i32> {
    let pairs: Vec<&Pair> = match dest {
        Some(d) => vec![one(engine, d)?],
        None => engine.config.pairs.iter().collect(),
    };
    print::fingerprints(&pairs, dest.is_some(), cli.json);
    Ok(0)
}

/// `verify DEST`: 0 when the destination holds exactly its checkpoint, else 1.
pub async fn verify(cli: &Cli, engine: &Engine, dest: &str) -> Result<i32> {
    let p = one(engine, dest)?;
    let found = kind::verify(engine, p).await?;
    let ok = found.iter().all(|v| v.ok());
    if cli.json {
        outln!("{}", serde_json::json!({"ok": ok, "volumes": found}));
    } else {
        for v in &found {
            match (&v.checkpoint, v.ok()) {
                (Some(cp), true) => outln!("{}: holds its checkpoint {cp}", v.destination),
                _ => {
                    for d in &v.differences {
                        outln!("{}: {d}", v.destination);
                    }
                }
            }
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// `objects DEST [--failed]`: an object pair's keys and their replication state.
pub async fn objects(cli: &Cli, engine: &Engine, dest: &str, failed: bool) -> Result<i32> {
    let p = one(engine, dest)?;
    let list = kind::object_changes(engine, p, "objects")?.list(engine, p, failed)?;
    print::objects(&list, cli.json);
    Ok(0)
}

/// `retry DEST`: an object pair's FAILED changes made due now, then a pass.
pub async fn retry(cli: &Cli, engine: &Engine, dest: &str) -> Result<i32> {
    let p = one(engine, dest)?;
    let changes = kind::object_changes(engine, p, "retry")?;
    let watch = bar::wanted(cli.nagios, cli.json)
        .then(|| bar::Watch::start(engine.state.progress_path(&p.fingerprint()), crate::state::now_unix()));
    let result = changes.retry(engine, p).await;
    if let Some(w) = watch {
        w.finish().await;
    }
    let done = result?;
    if cli.json {
        outln!(
            "{}",
            serde_json::json!({"action": "retry", "destination": p.destination.to_string(),
                "checkpoint": done.snapshot, "bytes": done.bytes, "seconds": done.seconds})
        );
    } else if cli.verbose || cli.debug {
        outln!("{}", print::replicated("retry", p, &done));
    }
    Ok(0)
}

/// `logfile DEST`: where the pair's log is.
pub async fn logfile(engine: &Engine, dest: &str) -> Result<i32> {
    let p = one(engine, dest)?;
    outln!("{}", engine.state.log_path(&p.fingerprint()).display());
    Ok(0)
}

/// `unlock DEST`: removes a dead job's lock (here and in etcd), saying whose it was.
pub async fn unlock(engine: &Engine, dest: &str) -> Result<i32> {
    let p = one(engine, dest)?;
    let u = crate::engine::unlock::unlock(engine, p)?;
    if let Some(o) = &u.orphan {
        outln!(
            "unlocked {}: removed {o} from etcd (no running job's: written by hand or by another program)",
            Engine::dest_name(p)
        );
    }
    match u.lock {
        Some(i) => outln!(
            "unlocked {} (lock of {} by {} started {})",
            Engine::dest_name(p),
            i.action,
            i.who(),
            crate::config::units::format_time(i.started)
        ),
        None if u.orphan.is_none() => outln!("{} was not locked", Engine::dest_name(p)),
        None => {}
    }
    Ok(0)
}

/// `status [DEST] [--full]`: 1 when a pair cannot be read or is Inconsistent, for scripts.
pub async fn status(cli: &Cli, engine: &Engine, dest: Option<&str>, full: bool) -> Result<i32> {
    let pairs: Vec<&Pair> = match dest {
        Some(d) => vec![one(engine, d)?],
        None => engine.config.pairs.iter().collect(),
    };
    let st = kind::status(engine, &pairs).await;
    let unlock = |s: &crate::engine::types::PairStatus| match engine
        .config
        .pairs
        .iter()
        .find(|p| p.fingerprint() == s.fingerprint)
    {
        Some(p) => engine.command("unlock", Some(p)),
        None => "ferry unlock".into(),
    };
    print::status(&st, full, cli.json, unlock);
    if let Some(w) = engine.coordination_warning.lock().unwrap().take() {
        eprintln!("ferry: warning: {w}");
    }
    // a pair that cannot be read or is inconsistent makes status fail, for scripts
    Ok(status_of::exit_code(&st))
}

/// `setup DEST`: the checklist; 0 when every check passed.
pub async fn setup(cli: &Cli, engine: &Engine, dest: &str) -> Result<i32> {
    let p = one(engine, dest)?;
    let items = kind::setup(engine, p).await;
    print::setup(p, &items, &setup_check::next_step(engine, p, &items), cli.json);
    Ok(if items.iter().all(|i| i.ok) { 0 } else { 1 })
}

/// `update --all`: every pair, several at once within each host's limit; 1 when any failed.
pub async fn update_all(cli: &Cli, engine: &Engine, all: bool, force: bool) -> Result<i32> {
    if !all {
        anyhow::bail!("give DEST, or --all for every pair");
    }
    let pairs: Vec<&Pair> = engine.config.pairs.iter().collect();
    let results = fleet::update_all(engine, &pairs, crate::engine::types::Options { force, repair: false }).await;
    let mut failed = 0;
    let mut failed_names: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for (p, r) in &results {
        match r {
            Ok(done) => {
                print::retention_left(p, done);
                if cli.json {
                    rows.push(serde_json::json!({"destination": p.destination.to_string(), "ok": true,
                        "snapshot": done.snapshot, "bytes": done.bytes, "seconds": done.seconds}));
                } else if cli.verbose || cli.debug {
                    outln!("{}", print::replicated("update", p, done));
                }
            }
            Err(e) => {
                failed += 1;
                let msg = error_text(cli, e);
                if cli.json {
                    rows.push(serde_json::json!({"destination": p.destination.to_string(), "ok": false, "error": msg}));
                }
                failed_names.push(Engine::dest_name(p));
                if cli.json {
                    json_error("update", Some(&Engine::dest_name(p)), &msg);
                } else if !cli.nagios {
                    errln!("ferry: error: update {}: {msg}", Engine::dest_name(p));
                }
            }
        }
    }
    if cli.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    }
    if failed > 0 {
        if cli.nagios {
            anyhow::bail!(
                "{failed} of {} pairs failed: {}",
                results.len(),
                failed_names.join(", ")
            );
        }
        return Ok(1);
    }
    Ok(0)
}

/// `initialize DEST` and `update DEST`: silent on success unless -v (or --json).
pub async fn replicate(cli: &Cli, engine: &Engine, action: &Action, dest: &str) -> Result<i32> {
    let p = one(engine, dest)?;
    let opts = crate::engine::types::Options {
        force: matches!(
            action,
            Action::Update { force: true, .. } | Action::Initialize { force: true, .. }
        ),
        repair: matches!(action, Action::Update { repair: true, .. }),
    };
    let watch = bar::wanted(cli.nagios, cli.json)
        .then(|| bar::Watch::start(engine.state.progress_path(&p.fingerprint()), crate::state::now_unix()));
    let result = if matches!(action, Action::Initialize { .. }) {
        kind::initialize(engine, p, opts).await
    } else {
        kind::update(engine, p, opts).await
    };
    if let Some(w) = watch {
        w.finish().await;
    }
    let done = result?;
    print::retention_left(p, &done);
    if cli.json {
        outln!(
            "{}",
            serde_json::json!({"action": action.name(), "destination": p.destination.to_string(),
                "snapshot": done.snapshot, "bytes": done.bytes, "seconds": done.seconds, "pruned": done.pruned})
        );
    } else if cli.verbose || cli.debug {
        outln!("{}", print::replicated(action.name(), p, &done));
    }
    Ok(0)
}

/// `purge [--all] DEST [--yes]`: 1 when something could not be destroyed.
pub async fn purge(cli: &Cli, engine: &Engine, dest: &str, all: bool, yes: bool) -> Result<i32> {
    let p = one(engine, dest)?;
    let spinner = (yes && bar::wanted(cli.nagios, cli.json)).then(|| {
        let what = if all {
            "the replica and this pair's snapshots"
        } else {
            "snapshots beyond keep"
        };
        bar::Spinner::start(format!("purge {}: destroying {what}", Engine::dest_name(p)))
    });
    let plan = kind::purge(engine, p, all, yes).await;
    if let Some(s) = spinner {
        s.finish();
    }
    let plan = plan?;
    print::purge(&plan, cli.json);
    Ok(i32::from(!plan.left.is_empty()))
}

/// `metrics [DEST]`: the pairs' figures in the Prometheus text format.
pub async fn metrics(engine: &Engine, dest: Option<&str>) -> Result<i32> {
    let pairs: Vec<&Pair> = match dest {
        Some(d) => vec![one(engine, d)?],
        None => engine.config.pairs.iter().collect(),
    };
    let st = kind::status(engine, &pairs).await;
    let rows: Vec<prometheus::PairMetrics> = st.iter().map(|s| status_of::metrics(&engine.state, s)).collect();
    out!("{}", prometheus::render(&rows));
    Ok(0)
}

/// Prints the running job's figures each second until it ends.
pub async fn runstatus(engine: &Engine, pair: &Pair, json: bool) -> Result<i32> {
    let fp = pair.fingerprint();
    let name = Engine::dest_name(pair);
    let info = status_of::run_info(&engine.state, pair);
    match info.status {
        RunState::Idle => {
            outln!("no job is running for {name}{}", print::last_suffix(info.last.as_ref()));
            return Ok(0);
        }
        RunState::Locked => {
            outln!(
                "no job is running for {name}: it is Locked by a job that died; check it, then `{}`",
                engine.command("unlock", Some(pair))
            );
            return Ok(1);
        }
        _ => {}
    }
    let started = info.lock.map(|l| l.started).unwrap_or(0);
    // a person at a terminal gets the bar the job's own shell would show; pipes get lines
    let watch = (std::io::stdout().is_terminal() && bar::wanted(quiet(), json))
        .then(|| bar::Watch::start(engine.state.progress_path(&fp), started));
    let lines = watch.is_none();
    let now = observe::follow(&engine.state, pair, started, |p| {
        if lines && json {
            outln!("{}", serde_json::to_string(p)?);
        } else if lines {
            outln!("{}", observe::progress_line(p));
        }
        Ok(())
    })
    .await?;
    if let Some(w) = watch {
        w.finish().await;
    }
    let ok = now.last.as_ref().map(|l| l.ok).unwrap_or(false);
    match now.last {
        Some(l) if !l.ok => outln!("{} failed: {}", l.action, l.error.unwrap_or_default()),
        Some(l) => outln!(
            "{} finished: {} in {:.1}s",
            l.action,
            crate::config::units::format_bytes(l.bytes),
            l.seconds
        ),
        None => outln!("the job ended"),
    }
    Ok(if ok { 0 } else { 1 })
}
