//! The command line, zettabee-compatible where zettabee had the word:
//! `ferry [-c FILE] [--state-dir DIR] [-v] [--debug] [--nagios] [--json] ACTION [DEST]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::model::JobAction;

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Asynchronous replication of storage between sites",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Config file (else $FERRY_CONFIG, /etc/ferry/ferry.toml, ~/.config/ferry/ferry.toml)
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State dir (locks, logs, progress); overrides the config's state_dir
    #[arg(long = "state-dir", global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Say what happens (the pair log is echoed to stderr)
    #[arg(short = 'v', long = "verbose", global = true)]
    pub verbose: bool,
    /// Even more detail, including error chains
    #[arg(long, global = true)]
    pub debug: bool,
    /// Print one Nagios plugin line and exit 0/1/2/3
    #[arg(long, global = true)]
    pub nagios: bool,
    /// Machine-readable output
    #[arg(long, global = true)]
    pub json: bool,
    /// Also send the Nagios line as a passive check (service `service/ferry:<fp>`) via send_nsca
    #[arg(long, global = true, value_name = "HOST")]
    pub nsca: Option<String>,
    /// NSCA server port
    #[arg(long = "nsca-port", global = true, value_name = "PORT", default_value_t = 5667)]
    pub nsca_port: u16,
    /// send_nsca config (password, encryption)
    #[arg(
        long = "nsca-config",
        global = true,
        value_name = "FILE",
        default_value = "/etc/send_nsca.cfg"
    )]
    pub nsca_config: PathBuf,
    /// Host name the passive checks belong to (default: this machine's)
    #[arg(long = "nsca-host-name", global = true, value_name = "NAME")]
    pub nsca_host_name: Option<String>,
    #[command(subcommand)]
    pub action: Option<Action>,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Check and prepare everything a first initialize needs; prints a checklist
    Setup { dest: String },
    /// Full transfer of a new snapshot into a new destination
    Initialize {
        dest: String,
        /// Take over an existing copy of the source instead (a snapshot both sides hold, proven
        /// by the kind's id: ZFS guid): an incremental send from it, changes since rolled back
        #[arg(long)]
        force: bool,
    },
    /// Incremental transfer from the last checkpoint
    Update {
        /// The pair (required unless --all)
        dest: Option<String>,
        /// Every pair, several at once (max_jobs overall, max_jobs_per_host per host)
        #[arg(long, conflicts_with = "dest")]
        all: bool,
        /// Roll back changes made on the destination by hand (zfs receive -F)
        #[arg(long)]
        force: bool,
        /// Block volumes: reread the replica, compare it with the source chunk by chunk (hashes
        /// only over the wire) and resend what differs. Object pairs: list both sides and mend
        /// what was changed on the destination behind ferry's back
        #[arg(long, conflicts_with = "all")]
        repair: bool,
    },
    /// One line per pair: state, lag, flags, status, runtime
    Status {
        dest: Option<String>,
        /// Add fingerprint and checkpoint
        #[arg(long = "full", alias = "fullstatus", alias = "full-status")]
        full: bool,
    },
    /// Stream a running job's figures once a second until it ends
    Runstatus { dest: String },
    /// Remove the lock a dead job left (refused while a job runs)
    Unlock { dest: String },
    /// List this pair's ferry snapshots beyond `keep` on both sides; destroy them with --yes.
    /// With --all: the destination replica and the pair's markers, so it can be initialized again
    Purge {
        dest: String,
        /// Destroy the destination replica, this pair's source snapshots and its state files
        #[arg(long)]
        all: bool,
        /// Really destroy (without it, purge only lists)
        #[arg(long)]
        yes: bool,
    },
    /// Print the path of the pair's log
    Logfile { dest: String },
    /// Check that the destination holds exactly its checkpoint (exit 0), else list what differs (exit 1)
    Verify { dest: String },
    /// Print pair fingerprints
    Fingerprint { dest: Option<String> },
    /// Object pairs: each key's replication status (PENDING, COMPLETED, FAILED with reason and
    /// retries), from the pair's journal
    Objects {
        dest: String,
        /// Only the FAILED changes
        #[arg(long)]
        failed: bool,
    },
    /// Object pairs: retry every FAILED change now (not waiting for its backoff), then a pass
    Retry { dest: String },
    /// Volume clusters ([[cluster]]): run, status, diverge, reconcile
    #[command(subcommand)]
    Cluster(ClusterAction),
    /// The far end of a block pair, started by ferry over SSH on the other host (not for people)
    #[command(hide = true, subcommand)]
    Peer(PeerAction),
    /// Prometheus text format for node_exporter's textfile collector: lag, last success, bytes, running, state
    Metrics { dest: Option<String> },
    /// Convert another tool's config to ferry TOML on stdout: `ferry import zettabee FILE`,
    /// `ferry import copycat config.json`
    Import {
        /// The tool whose config FILE is (zettabee, copycat)
        format: String,
        file: PathBuf,
        /// Mark every pair `adopt = "zettabee"`: its first update takes over zettabee's replica
        /// from zettabee's last snapshot instead of a full resend
        #[arg(long)]
        adopt: bool,
    },
    /// Validate the config and print what it says
    Check,
    /// The full-screen console (also what `ferry` with no action opens on a terminal)
    Console,
    /// Print a shell completion script: `ferry completions bash > /etc/bash_completion.d/ferry`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `ferry man > /usr/local/share/man/man1/ferry.1`
    Man,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Setup { .. } => "setup",
            Action::Initialize { .. } => "initialize",
            Action::Update { .. } => "update",
            Action::Status { .. } => "status",
            Action::Runstatus { .. } => "runstatus",
            Action::Unlock { .. } => "unlock",
            Action::Purge { .. } => "purge",
            Action::Logfile { .. } => "logfile",
            Action::Verify { .. } => "verify",
            Action::Fingerprint { .. } => "fingerprint",
            Action::Objects { .. } => "objects",
            Action::Retry { .. } => "retry",
            Action::Cluster(_) => "cluster",
            Action::Check => "check",
            Action::Import { .. } => "import",
            Action::Metrics { .. } => "metrics",
            Action::Console => "console",
            Action::Completions { .. } => "completions",
            Action::Man => "man",
            Action::Peer(_) => "peer",
        }
    }

    /// The job this command line runs, where it runs one: what the console's launcher and the
    /// CLI agree on (the console starts `ferry <word> DEST <args>` for a `JobAction`).
    pub fn job(&self) -> Option<JobAction> {
        match self {
            Action::Setup { .. } => Some(JobAction::Setup),
            Action::Initialize { .. } => Some(JobAction::Initialize),
            Action::Update { .. } => Some(JobAction::Update),
            Action::Unlock { .. } => Some(JobAction::Unlock),
            Action::Retry { .. } => Some(JobAction::Retry),
            Action::Purge {
                all: true, yes: true, ..
            } => Some(JobAction::PurgeAll),
            Action::Purge { yes: true, .. } => Some(JobAction::Purge),
            // listing what a purge would destroy changes nothing
            Action::Purge { .. } => None,
            _ => None,
        }
    }

    pub fn dest(&self) -> Option<&str> {
        match self {
            Action::Setup { dest }
            | Action::Initialize { dest, .. }
            | Action::Runstatus { dest }
            | Action::Unlock { dest }
            | Action::Purge { dest, .. }
            | Action::Logfile { dest }
            | Action::Objects { dest, .. }
            | Action::Retry { dest }
            | Action::Verify { dest } => Some(dest),
            Action::Status { dest, .. }
            | Action::Fingerprint { dest }
            | Action::Metrics { dest }
            | Action::Update { dest, .. } => dest.as_deref(),
            Action::Check | Action::Console | Action::Import { .. } | Action::Cluster(_) => None,
            Action::Completions { .. } | Action::Man | Action::Peer(_) => None,
        }
    }
}

/// What `ferry cluster` does.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Work the cluster (every cluster without NAME) in the foreground until SIGTERM: listen,
    /// journal, settle, apply
    Run { name: Option<String> },
    /// Journal depth, pending and failed changes, per-volume lag, who works the cluster
    Status { name: Option<String> },
    /// List what differs between the cluster's volumes (exit 1 if anything does)
    Diverge { name: String },
    /// Repair what differs: `--policy newest` copies each differing key's newest version to the
    /// volumes that differ; `--policy report` only lists (exit 1 if anything differs)
    Reconcile {
        name: String,
        #[arg(long, value_enum)]
        policy: crate::engine::cluster::diverge::Policy,
    },
}

impl ClusterAction {
    /// The cluster it names, if one.
    pub fn name(&self) -> Option<&str> {
        match self {
            ClusterAction::Run { name } | ClusterAction::Status { name } => name.as_deref(),
            ClusterAction::Diverge { name } | ClusterAction::Reconcile { name, .. } => Some(name),
        }
    }
}

/// What a block peer does on its host; the job builds these command lines (driver::block).
#[derive(Debug, Subcommand)]
pub enum PeerAction {
    /// Print the software and block protocol version (setup checks it on both hosts)
    Version,
    /// Send the changed chunks of a source (stdin/stdout speak the block protocol)
    BlockSend {
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        chunk: u32,
        #[arg(long, default_value = "xxh3")]
        algo: String,
        #[arg(long)]
        reflink: bool,
        #[arg(long)]
        compress: bool,
        /// Give up when the receiver answers nothing (not even a heartbeat) for this many seconds
        #[arg(long, default_value_t = 600)]
        idle_timeout: u64,
    },
    /// Journal and apply what the sender sends into a replica
    BlockReceive {
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        repair: bool,
        /// Give up when the sender sends nothing (not even progress) for this many seconds
        #[arg(long, default_value_t = 600)]
        idle_timeout: u64,
    },
    /// Reread a replica and compare it with its checkpoint; one JSON line
    BlockVerify {
        #[arg(long)]
        path: PathBuf,
        #[arg(long)]
        state: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Every job the console launches parses back, through the real command line, to itself.
    #[test]
    fn console_launches_parse_back_to_the_same_job() {
        for job in JobAction::ALL {
            let mut argv = vec!["ferry", job.word(), "backup/data"];
            argv.extend(job.args());
            let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert_eq!(cli.action.as_ref().and_then(Action::job), Some(job), "{argv:?}");
            assert_eq!(JobAction::from_label(job.label()), Some(job));
        }
        let list = Cli::try_parse_from(["ferry", "purge", "backup/data"]).unwrap();
        assert_eq!(list.action.unwrap().job(), None, "a listing is no job");
    }
}
