//! The command line: parses, calls the engine, prints. Errors go to stderr as
//! `ferry: error: ACTION DEST: message`; initialize and update are silent on success unless -v.

/// println! that ends the process quietly when stdout is a closed pipe (`ferry status | head -1`)
/// instead of panicking; SIGPIPE stays ignored so a receiver that dies never kills a job.
/// Control characters (text a remote chose: properties, error output) are shown escaped.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if !$crate::cli::quiet() {
            let text = format!($($t)*);
            if writeln!(std::io::stdout().lock(), "{}", $crate::text::escape_controls(&text)).is_err() {
                std::process::exit(141);
            }
        }
    }};
}

/// print! with the same handling as `outln!`.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if !$crate::cli::quiet() {
            let text = format!($($t)*);
            if write!(std::io::stdout().lock(), "{}", $crate::text::escape_controls(&text)).is_err() {
                std::process::exit(141);
            }
        }
    }};
}

/// eprintln! with control characters escaped, as `outln!` does.
macro_rules! errln {
    ($($t:tt)*) => {{
        let text = format!($($t)*);
        eprintln!("{}", $crate::text::escape_controls(&text));
    }};
}

mod args;
mod bar;
mod print;

use std::sync::atomic::{AtomicBool, Ordering};

/// Set under --nagios: the action's own output gives way to the one plugin line.
static QUIET: AtomicBool = AtomicBool::new(false);

pub(crate) fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Prints even when the action's output is silenced: the plugin line itself.
fn plugin_line(line: &str) {
    use std::io::Write as _;
    if writeln!(std::io::stdout().lock(), "{}", crate::text::one_line(line)).is_err() {
        std::process::exit(141);
    }
}

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{anyhow, Result};
use clap::{CommandFactory, Parser};

pub use args::{Action, Cli, ClusterAction};

use crate::config::{self, Config, Pair};
use crate::engine::types::RunState;
use crate::engine::{fleet, kind, observe, select, setup, status, Engine};
use crate::monitor::{metrics, nagios, nsca, Level};

/// Runs the binary; returns the process exit code.
pub fn main() -> i32 {
    let mut cli = Cli::parse();
    if cli.action.is_none() {
        if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
            cli.action = Some(Action::Console);
        } else {
            errln!("ferry: no ACTION given and not on a terminal (see ferry --help)");
            return 2;
        }
    }
    let action = cli.action.as_ref().expect("set above");
    if let Action::Peer(what) = action {
        // no config, no runtime: a peer speaks on stdin/stdout and its errors go to stderr
        return match peer(what) {
            Ok(()) => 0,
            Err(e) => {
                errln!("ferry peer: {e:#}");
                1
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            errln!("ferry: error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let code = runtime.block_on(run(&cli, action));
    // remote channels and connections are dropped here without waiting for their tasks
    runtime.shutdown_timeout(Duration::from_millis(200));
    code
}

/// An error chain as printed: bounded, whatever a remote put in it.
fn error_text(cli: &Cli, e: &anyhow::Error) -> String {
    let msg = if cli.debug { format!("{e:?}") } else { format!("{e:#}") };
    crate::text::clip(&msg, ERROR_CAP).into_owned()
}

/// The longest error printed or kept for a job (last.json, progress, the log).
pub const ERROR_CAP: usize = 8 << 10;

/// What went wrong, in the shape the contract wants.
fn fail(cli: &Cli, action: &Action, e: &anyhow::Error) -> i32 {
    let dest = action.dest().map(|d| format!(" {d}")).unwrap_or_default();
    let msg = error_text(cli, e);
    if cli.nagios {
        plugin_line(&format!(
            "FERRY CRITICAL - {}{dest}: {}",
            action.name(),
            msg.lines().next().unwrap_or("")
        ));
        return Level::Critical.exit_code();
    }
    if cli.json {
        json_error(action.name(), action.dest(), &msg);
    } else {
        errln!("ferry: error: {}{dest}: {msg}", action.name());
    }
    1
}

/// An error as one JSON object on stderr (`--json`): scripts parse both streams.
fn json_error(action: &str, dest: Option<&str>, message: &str) {
    let v = serde_json::json!({"error": {"action": action, "dest": dest, "message": message}});
    eprintln!("{v}");
}

fn load_config(cli: &Cli) -> Result<Config> {
    let path = config::locate(cli.config.as_deref()).map_err(|m| anyhow!(m))?;
    config::load(&path).map_err(|e| anyhow!(e))
}

async fn run(cli: &Cli, action: &Action) -> i32 {
    // generated from the clap definitions, so they cannot drift from the parser
    let generated = match action {
        Action::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "ferry", &mut buf);
            Some(buf)
        }
        Action::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut buf)
                .expect("rendering into memory cannot fail");
            Some(buf)
        }
        _ => None,
    };
    if let Some(buf) = generated {
        use std::io::Write as _;
        if std::io::stdout().lock().write_all(&buf).is_err() {
            std::process::exit(141);
        }
        return 0;
    }
    // import reads another tool's file: no ferry config needed
    if let Action::Import { format, file, adopt } = action {
        return match import(format, file, *adopt) {
            Ok(text) => {
                out!("{text}");
                0
            }
            Err(e) => fail(cli, action, &e),
        };
    }
    let config = match load_config(cli) {
        Ok(c) => c,
        Err(e) => {
            if cli.nagios {
                plugin_line(&format!("FERRY UNKNOWN - {}: config: {e:#}", action.name()));
                return Level::Unknown.exit_code();
            }
            return fail(cli, action, &e);
        }
    };
    let engine = Engine::new(config, cli.state_dir.clone(), cli.verbose || cli.debug);
    let code = if cli.nagios || cli.nsca.is_some() {
        monitored(cli, action, &engine).await
    } else {
        match dispatch(cli, action, &engine).await {
            Ok(code) => code,
            Err(e) => fail(cli, action, &e),
        }
    };
    // The ssh layer prints nothing (it may run under the console): host keys it recorded are told here.
    for note in engine.hosts.take_notices() {
        eprintln!("ferry: warning: {note}");
    }
    code
}

/// The pairs an action is about: DEST's, or every pair.
fn pairs_of<'a>(engine: &'a Engine, action: &Action) -> Result<Vec<&'a Pair>> {
    match action.dest() {
        Some(d) => Ok(vec![one(engine, d)?]),
        None => Ok(engine.config.pairs.iter().collect()),
    }
}

/// --nagios / --nsca: runs the action (its own output silenced under --nagios), then reports one
/// plugin line for it: the pairs' status with lag and runtime perfdata, or CRITICAL when the action
/// failed. --nsca sends each pair's line as a passive check of `service/ferry:<fp>`.
async fn monitored(cli: &Cli, action: &Action, engine: &Engine) -> i32 {
    if cli.nagios {
        QUIET.store(true, Ordering::Relaxed);
    }
    let pairs = match pairs_of(engine, action) {
        Ok(p) => p,
        Err(e) => return fail(cli, action, &e),
    };
    // status is the report itself: no need to run it twice
    let outcome = if matches!(action, Action::Status { .. }) {
        Ok(0)
    } else {
        dispatch(cli, action, engine).await
    };
    let dest = action.dest().map(|d| format!(" {d}")).unwrap_or_default();
    let failed = match &outcome {
        Ok(0) => None,
        Ok(code) => Some(format!("{}{dest} failed (exit {code})", action.name())),
        Err(e) => Some(format!(
            "{}{dest}: {}",
            action.name(),
            format!("{e:#}").lines().next().unwrap_or("")
        )),
    };
    let st = kind::status(engine, &pairs).await;
    let checks: Vec<_> = st.iter().zip(&pairs).map(|(s, p)| s.check(p)).collect();
    let (level, line) = match &failed {
        None if pairs.is_empty() && !matches!(action, Action::Status { .. }) => {
            (Level::Ok, format!("FERRY OK - {}: no pairs configured", action.name()))
        }
        _ => nagios::report(&checks, failed.as_deref()),
    };
    let mut code = if cli.nagios {
        plugin_line(&line);
        level.exit_code()
    } else {
        match (&outcome, &failed) {
            (Err(e), _) => fail(cli, action, e),
            (Ok(c), _) => *c,
        }
    };
    if let Some(server) = &cli.nsca {
        let passive: Vec<nsca::Passive> = st
            .iter()
            .zip(&checks)
            .map(|(s, c)| {
                let (l, text) = nagios::report(std::slice::from_ref(c), failed.as_deref());
                nsca::Passive {
                    fingerprint: s.fingerprint.clone(),
                    level: l,
                    line: text,
                }
            })
            .collect();
        let target = nsca::Target {
            server: server.clone(),
            port: cli.nsca_port,
            config: cli.nsca_config.clone(),
            host_name: cli.nsca_host_name.clone().unwrap_or_else(nsca::local_host_name),
        };
        if let Err(e) = nsca::send(&target, &passive).await {
            errln!("ferry: error: {}{dest}: --nsca: {e:#}", action.name());
            if code == 0 {
                code = if cli.nagios { Level::Unknown.exit_code() } else { 1 };
            }
        }
    }
    code
}

/// The clusters a `cluster` action names: NAME's, or every one.
fn clusters_of<'a>(engine: &'a Engine, name: Option<&str>) -> Result<Vec<&'a crate::config::Cluster>> {
    let all = &engine.config.clusters;
    if all.is_empty() {
        anyhow::bail!("{} has no [[cluster]]", engine.config.path.display());
    }
    match name {
        None => Ok(all.iter().collect()),
        Some(n) => match all.iter().find(|c| c.name == n) {
            Some(c) => Ok(vec![c]),
            None => anyhow::bail!(
                "no cluster named {n:?} (clusters: {})",
                all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        },
    }
}

async fn cluster(cli: &Cli, action: &ClusterAction, engine: &Engine) -> Result<i32> {
    use crate::engine::cluster::{diverge, report, run};
    let clusters = clusters_of(engine, action.name())?;
    match action {
        ClusterAction::Run { .. } => {
            let runs = clusters.iter().map(|c| run::run(engine, c));
            for r in futures::future::join_all(runs).await {
                r?;
            }
            Ok(0)
        }
        ClusterAction::Status { .. } => {
            let mut all = Vec::new();
            for c in &clusters {
                all.push(report::status(c)?);
            }
            print::clusters(&all, cli.json);
            Ok(i32::from(all.iter().any(|s| s.failed > 0)))
        }
        ClusterAction::Diverge { .. } => {
            let found = diverge::diverge(engine, clusters[0]).await?;
            print::differences(&found, cli.json);
            Ok(i32::from(!found.is_empty()))
        }
        ClusterAction::Reconcile { policy, .. } => {
            let done = diverge::reconcile(engine, clusters[0], *policy).await?;
            print::reconciled(&done, *policy, cli.json);
            let left = match policy {
                diverge::Policy::Report => !done.differences.is_empty(),
                diverge::Policy::Newest => !done.failed.is_empty(),
            };
            Ok(i32::from(left))
        }
    }
}

fn one<'a>(engine: &'a Engine, dest: &str) -> Result<&'a Pair> {
    select::select(&engine.config, dest).map_err(|m| anyhow!(m))
}

async fn dispatch(cli: &Cli, action: &Action, engine: &Engine) -> Result<i32> {
    match action {
        Action::Check => {
            print::config(&engine.config, cli.json);
            Ok(0)
        }
        Action::Import { format, file, adopt } => {
            out!("{}", import(format, file, *adopt)?);
            Ok(0)
        }
        Action::Console => {
            crate::tui::run(engine).await?;
            Ok(0)
        }
        // answered in `run` before any config is read
        Action::Completions { .. } | Action::Man | Action::Peer(_) => Ok(0),
        Action::Fingerprint { dest } => {
            let pairs: Vec<&Pair> = match dest {
                Some(d) => vec![one(engine, d)?],
                None => engine.config.pairs.iter().collect(),
            };
            print::fingerprints(&pairs, dest.is_some(), cli.json);
            Ok(0)
        }
        Action::Verify { dest } => {
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
        Action::Cluster(c) => cluster(cli, c, engine).await,
        Action::Objects { dest, failed } => {
            let p = one(engine, dest)?;
            let list = kind::object_changes(engine, p, "objects")?.list(engine, p, *failed)?;
            print::objects(&list, cli.json);
            Ok(0)
        }
        Action::Retry { dest } => {
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
        Action::Logfile { dest } => {
            let p = one(engine, dest)?;
            outln!("{}", engine.state.log_path(&p.fingerprint()).display());
            Ok(0)
        }
        Action::Unlock { dest } => {
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
        Action::Status { dest, full } => {
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
            print::status(&st, *full, cli.json, unlock);
            if let Some(w) = engine.coordination_warning.lock().unwrap().take() {
                eprintln!("ferry: warning: {w}");
            }
            // a pair that cannot be read or is inconsistent makes status fail, for scripts
            Ok(status::exit_code(&st))
        }
        Action::Setup { dest } => {
            let p = one(engine, dest)?;
            let items = kind::setup(engine, p).await;
            print::setup(p, &items, &setup::next_step(engine, p, &items), cli.json);
            Ok(if items.iter().all(|i| i.ok) { 0 } else { 1 })
        }
        Action::Update {
            dest: None, all, force, ..
        } => {
            if !*all {
                anyhow::bail!("give DEST, or --all for every pair");
            }
            let pairs: Vec<&Pair> = engine.config.pairs.iter().collect();
            let results = fleet::update_all(
                engine,
                &pairs,
                crate::engine::types::Options {
                    force: *force,
                    repair: false,
                },
            )
            .await;
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
        Action::Initialize { dest, .. } | Action::Update { dest: Some(dest), .. } => {
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
        Action::Purge { dest, all, yes } => {
            let p = one(engine, dest)?;
            let spinner = (*yes && bar::wanted(cli.nagios, cli.json)).then(|| {
                let what = if *all {
                    "the replica and this pair's snapshots"
                } else {
                    "snapshots beyond keep"
                };
                bar::Spinner::start(format!("purge {}: destroying {what}", Engine::dest_name(p)))
            });
            let plan = kind::purge(engine, p, *all, *yes).await;
            if let Some(s) = spinner {
                s.finish();
            }
            let plan = plan?;
            print::purge(&plan, cli.json);
            Ok(i32::from(!plan.left.is_empty()))
        }
        Action::Metrics { dest } => {
            let pairs: Vec<&Pair> = match dest {
                Some(d) => vec![one(engine, d)?],
                None => engine.config.pairs.iter().collect(),
            };
            let st = kind::status(engine, &pairs).await;
            let rows: Vec<metrics::PairMetrics> = st.iter().map(|s| status::metrics(&engine.state, s)).collect();
            out!("{}", metrics::render(&rows));
            Ok(0)
        }
        Action::Runstatus { dest } => {
            let p = one(engine, dest)?;
            runstatus(engine, p, cli.json).await
        }
    }
}

/// Prints the running job's figures each second until it ends.
async fn runstatus(engine: &Engine, pair: &Pair, json: bool) -> Result<i32> {
    let fp = pair.fingerprint();
    let name = Engine::dest_name(pair);
    let info = status::run_info(&engine.state, pair);
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

fn import(format: &str, file: &std::path::Path, adopt: bool) -> Result<String> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow!("cannot read {}: {e}", file.display()))?;
    match format {
        "zettabee" => {}
        "copycat" => {
            if adopt {
                anyhow::bail!("--adopt takes over zettabee's replicas; a CopyCat cluster has none");
            }
            return config::copycat::copycat(file, &text).map_err(|e| anyhow!(e));
        }
        other => anyhow::bail!("unknown format {other:?} (ferry imports: zettabee, copycat)"),
    }
    let options = config::import::Options { adopt };
    config::import::zettabee(file, &text, &nsca::local_host_name(), options).map_err(|e| anyhow!(e))
}

/// Runs one peer action (`ferry peer ...`): the block module does the work.
fn peer(what: &args::PeerAction) -> anyhow::Result<()> {
    use crate::block::peer;
    use args::PeerAction;
    match what {
        PeerAction::Version => {
            println!("{}", peer::software());
            Ok(())
        }
        PeerAction::BlockSend {
            path,
            state,
            name,
            chunk,
            algo,
            reflink,
            compress,
            idle_timeout,
        } => peer::send::run(&peer::send::SendArgs {
            path: path.clone(),
            state: state.clone(),
            name: name.clone(),
            chunk: *chunk,
            algo: crate::block::HashAlgo::from_name(algo)
                .ok_or_else(|| anyhow::anyhow!("unknown hash {algo:?} (xxh3, blake3)"))?,
            reflink: *reflink,
            compress: *compress,
            idle_timeout: *idle_timeout,
        }),
        PeerAction::BlockReceive {
            path,
            state,
            name,
            repair,
            idle_timeout,
        } => peer::receive::run(&peer::receive::ReceiveArgs {
            path: path.clone(),
            state: state.clone(),
            name: name.clone(),
            repair: *repair,
            idle_timeout: *idle_timeout,
        }),
        PeerAction::BlockVerify { path, state } => peer::verify::run(path.clone(), state.clone()),
    }
}
