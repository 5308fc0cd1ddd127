//! The console's one event channel: terminal input and everything the background collectors
//! report. The run loop renders only after an event changed something (coalesced per batch).

use std::sync::Arc;

use crate::config::Config;
use crate::engine::hosts::HostReport;
use crate::engine::types::{PairStatus, RunInfo};

/// A config read again from its file, with the bytes it was read from (to notice the next change).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Arc<Config>,
    pub bytes: Arc<Vec<u8>>,
}

impl PartialEq for Loaded {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for Loaded {}

/// This machine's figures (sysinfo), rates per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemView {
    pub cpu_percent: f32,
    pub mem_used: u64,
    pub mem_total: u64,
    pub net_rx: f64,
    pub net_tx: f64,
    pub disk_read: f64,
    pub disk_write: f64,
}

#[derive(Debug)]
pub enum Event {
    Input(crossterm::event::Event),
    /// Once a second: lags, runtimes and messages move with the clock.
    Tick,
    /// Full status of every pair (config order), from the hosts.
    Status(Vec<PairStatus>),
    /// Lock and progress of every pair (config order), from the state dir: cheap, frequent.
    Runs(Vec<RunInfo>),
    Hosts(Vec<HostReport>),
    /// Each `[[cluster]]`'s status (config order), from its persist path.
    Clusters(Vec<crate::engine::cluster::report::ClusterStatus>),
    System(SystemView),
    /// Last lines of a pair's log, for the detail view.
    LogTail {
        fingerprint: String,
        lines: Vec<String>,
    },
    /// A job was started (or could not be).
    Launched {
        what: String,
        result: Result<u32, String>,
    },
    /// A job the console started has ended; `output` is what it printed.
    JobEnded {
        what: String,
        ok: bool,
        output: String,
    },
    /// Text for a confirmation dialog (what an action will do), read from the engine.
    Preview {
        title: String,
        text: String,
    },
    /// The config file on disk is no longer what the console read.
    ConfigChanged,
    /// The config file is again what the console read (an edit undone).
    ConfigUnchanged,
    /// F5 read the config file again: the new config, or its errors.
    ConfigReloaded(Result<Loaded, String>),
}
