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
    /// Hosts the engine's unit tests answer for themselves.
    #[cfg(test)]
    fakes: std::sync::Mutex<BTreeMap<String, std::sync::Arc<super::fake::FakeHost>>>,
}

impl Hosts {
    pub fn new(hosts: BTreeMap<String, HostConfig>) -> Self {
        Hosts {
            pool: ssh::Pool::new(hosts),
            #[cfg(test)]
            fakes: Default::default(),
        }
    }

    /// Where commands for `host` run; opens (or reuses) the host's connection.
    pub async fn executor(&self, host: &str) -> Result<Executor> {
        #[cfg(test)]
        if let Some(f) = self.fakes.lock().unwrap().get(host) {
            return Ok(Executor::Fake(f.clone()));
        }
        if host == LOCAL {
            return Ok(Executor::Local);
        }
        Ok(Executor::Remote(self.pool.get(host).await?))
    }

    /// Commands for `fake.name` go to `fake` from now on (the engine's unit tests).
    #[cfg(test)]
    pub fn fake(&self, fake: super::fake::FakeHost) -> std::sync::Arc<super::fake::FakeHost> {
        let f = std::sync::Arc::new(fake);
        self.fakes.lock().unwrap().insert(f.name.clone(), f.clone());
        f
    }

    /// Host keys recorded on first use since the last call (the SSH layer prints nothing).
    pub fn take_notices(&self) -> Vec<FirstUse> {
        self.pool.take_notices()
    }
}
