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
mod commands;
mod print;
mod report;
mod select;

pub(crate) use report::quiet;

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
use crate::engine::{kind, Engine};
use crate::monitor::{nagios, nsca, Level};
use report::{error_text, json_error};
use select::one;

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
        report::silence();
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
        Action::Fingerprint { dest } => commands::fingerprint(cli, engine, dest.as_deref()).await,
        Action::Verify { dest } => commands::verify(cli, engine, dest).await,
        Action::Cluster(c) => cluster(cli, c, engine).await,
        Action::Objects { dest, failed } => commands::objects(cli, engine, dest, *failed).await,
        Action::Retry { dest } => commands::retry(cli, engine, dest).await,
        Action::Logfile { dest } => commands::logfile(engine, dest).await,
        Action::Unlock { dest } => commands::unlock(engine, dest).await,
        Action::Status { dest, full } => commands::status(cli, engine, dest.as_deref(), *full).await,
        Action::Setup { dest } => commands::setup(cli, engine, dest).await,
        Action::Update {
            dest: None, all, force, ..
        } => commands::update_all(cli, engine, *all, *force).await,
        Action::Initialize { dest, .. } | Action::Update { dest: Some(dest), .. } => {
            commands::replicate(cli, engine, action, dest).await
        }
        Action::Purge { dest, all, yes } => commands::purge(cli, engine, dest, *all, *yes).await,
        Action::Metrics { dest } => commands::metrics(engine, dest.as_deref()).await,
        Action::Runstatus { dest } => commands::runstatus(engine, one(engine, dest)?, cli.json).await,
    }
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
