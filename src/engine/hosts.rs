//! Host health for the console: reachability, round trip of one command, and the storage served
//! for each kind of volume the host's pairs use.

use std::time::{Duration, Instant};

use crate::driver::for_kind;

use super::Engine;

#[derive(Debug, Clone, PartialEq)]
pub struct HostReport {
    pub name: String,
    pub address: String,
    pub rtt: Option<Duration>,
    pub error: Option<String>,
    /// (name, size, allocated, health).
    pub pools: Vec<(String, String, String, String)>,
}

/// How long a host may take before it shows as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects (or reuses the connection), times one command, and lists the pools.
pub async fn probe(engine: &Engine, host: &str) -> HostReport {
    let address = engine
        .config
        .hosts
        .get(host)
        .map(|h| format!("{}:{}", h.address, h.port))
        .unwrap_or_else(|| "this machine".into());
    let mut r = HostReport {
        name: host.to_string(),
        address,
        rtt: None,
        error: None,
        pools: Vec::new(),
    };
    let work = async {
        let ex = engine.executor(host).await?;
        // one bare round trip on the open connection: what every command of a job pays
        let t = Instant::now();
        ex.run_ok("true").await?;
        let rtt = t.elapsed();
        let mut pools = Vec::new();
        for kind in engine.kinds_on(host) {
            pools.extend(for_kind(kind).storage(&ex).await?);
        }
        anyhow::Ok((rtt, pools))
    };
    match tokio::time::timeout(PROBE_TIMEOUT, work).await {
        Ok(Ok((rtt, pools))) => {
            r.rtt = Some(rtt);
            r.pools = pools;
        }
        Ok(Err(e)) => r.error = Some(format!("{e:#}")),
        Err(_) => r.error = Some(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
    }
    r
}
