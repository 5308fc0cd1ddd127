//! The engine: actions on pairs, job lifecycle, locks and progress. The CLI and the console call
//! these same functions; nothing above this layer runs a storage command.

pub mod adopt;
pub mod assess;
pub mod cluster;
pub mod fleet;
pub mod hosts;
pub mod job;
pub mod kind;
pub mod objects;
pub mod observe;
pub mod purge;
pub mod replicate;
pub mod replicator;
pub mod retention;
pub mod select;
pub mod setup;
pub mod snapshots;
pub mod status;
pub mod tree;
pub mod types;
pub mod unlock;
pub mod verify;

use std::path::PathBuf;

use anyhow::Result;

use crate::config::{Config, Pair};
use crate::exec::{Executor, Hosts};
use crate::state::StateDir;

/// Everything an action needs: the config, the state dir, and the run's SSH connections.
pub struct Engine {
    pub config: Config,
    pub state: StateDir,
    pub hosts: Hosts,
    /// Echo the pair log to stderr (-v).
    pub verbose: bool,
    /// Why the coordination engine could not be asked at the last status, for the CLI to say
    /// (the console shows this host's locks and says nothing on its screen).
    pub coordination_warning: std::sync::Mutex<Option<String>>,
}

impl Engine {
    pub fn new(config: Config, state_dir: Option<PathBuf>, verbose: bool) -> Self {
        let state = StateDir::new(state_dir.unwrap_or_else(|| config.state_dir.clone()));
        let hosts = Hosts::new(config.hosts.clone());
        Engine {
            config,
            state,
            hosts,
            verbose,
            coordination_warning: Default::default(),
        }
    }

    /// Where commands for `host` run; opens (or reuses) the host's connection.
    pub async fn executor(&self, host: &str) -> Result<Executor> {
        self.hosts.executor(host).await
    }

    /// Both sides' executors, connected concurrently.
    pub async fn executors(&self, pair: &Pair) -> Result<(Executor, Executor)> {
        let (s, d) = tokio::join!(self.executor(&pair.source.host), self.executor(&pair.destination.host));
        Ok((s?, d?))
    }

    /// The kinds of volume the configured pairs keep on `host`, each once; the default kind when
    /// no pair uses the host (the hosts view still shows what it serves).
    pub fn kinds_on(&self, host: &str) -> Vec<crate::model::Kind> {
        let mut kinds = Vec::new();
        for p in &self.config.pairs {
            if (p.source.host == host || p.destination.host == host) && !kinds.contains(&p.kind) {
                kinds.push(p.kind);
            }
        }
        if kinds.is_empty() {
            kinds.push(crate::model::Kind::DEFAULT);
        }
        kinds
    }

    /// A command line to paste: `ferry [-c FILE] [--state-dir DIR] WORDS [DEST]`, with `-c` when
    /// the config is not where ferry looks by default and `--state-dir` when it was overridden,
    /// so the same pair and state are meant wherever it is pasted.
    pub fn command(&self, words: &str, pair: Option<&Pair>) -> String {
        use crate::config::names::shell_quote as q;
        let mut cmd = String::from("ferry");
        if !crate::config::found_by_default(&self.config.path) {
            cmd.push_str(&format!(" -c {}", q(&self.config.path.display().to_string())));
        }
        if self.state.root() != self.config.state_dir.as_path() {
            cmd.push_str(&format!(" --state-dir {}", q(&self.state.root().display().to_string())));
        }
        cmd.push(' ');
        cmd.push_str(words);
        if let Some(p) = pair {
            cmd.push(' ');
            cmd.push_str(&q(&Engine::dest_name(p)));
        }
        cmd
    }

    /// How messages name a snapshot of each side: `host:` and what its name follows (ZFS
    /// `pool/ds@`, btrfs `/snapshot/dir/`); for a kind without snapshots, what its names follow
    /// (an object volume's keys: `host:bucket/prefix/`).
    pub fn snapshots_at(pair: &Pair) -> (String, String) {
        let at = |vol: &crate::config::Endpoint| match crate::driver::for_kind(pair.kind) {
            Some(d) => format!("{}:{}", vol.host, d.snapshot_at(vol)),
            None => format!("{}:{}/", vol.host, vol.path.trim_end_matches('/')),
        };
        (at(&pair.source), at(&pair.destination))
    }

    /// Snapshot names in full after `at`, for a log line: `at a, at b`.
    pub fn named(at: &str, names: &[String]) -> String {
        names.iter().map(|n| format!("{at}{n}")).collect::<Vec<_>>().join(", ")
    }

    /// The name DEST shows in messages: the destination path, with its host when remote.
    pub fn dest_name(pair: &Pair) -> String {
        if pair.destination.is_local() {
            pair.destination.path.clone()
        } else {
            pair.destination.to_string()
        }
    }
}
