//! Where a run's commands go: this machine, or a host through the one SSH pool of the run, which
//! this layer owns so nothing above it handles connections.

use std::collections::BTreeMap;

use anyhow::Result;

use super::Executor;
use crate::config::{HostConfig, LOCAL};
use crate::ssh::{self, FirstUse};

/// The run's executors, one connection per host, opened on first use and reused.
pub struct Hosts {
    pool: ssh::Pool,
}

impl Hosts {
    pub fn new(hosts: BTreeMap<String, HostConfig>) -> Self {
        Hosts {
            pool: ssh::Pool::new(hosts),
        }
    }

    /// Where commands for `host` run; opens (or reuses) the host's connection.
    pub async fn executor(&self, host: &str) -> Result<Executor> {
        if host == LOCAL {
            return Ok(Executor::Local);
        }
        Ok(Executor::Remote(self.pool.get(host).await?))
    }

    /// Host keys recorded on first use since the last call (the SSH layer prints nothing).
    pub fn take_notices(&self) -> Vec<FirstUse> {
        self.pool.take_notices()
    }
}
