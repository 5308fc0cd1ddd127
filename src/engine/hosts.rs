//! Host health for the console: reachability, round trip of one command, and the storage served
//! for each kind of volume the host's pairs use.

use crate::driver::Storage;
use std::time::{Duration, Instant};

use super::Engine;

/// One host as a probe found it, and as the console's hosts view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostReport {
    pub name: String,
    pub address: String,
    /// Round trip of one command; None while unknown or unreachable.
    pub rtt: Option<Duration>,
    pub error: Option<String>,
    /// The storage the host serves, the ones the pairs use first.
    pub pools: Vec<Storage>,
    /// How many of `pools` (the first ones) hold a pair's volume (0: show them all).
    pub used_pools: usize,
}

/// Whether storage `name` (a ZFS pool, a btrfs mount point) holds the volume at `path`.
fn holds(name: &str, path: &str) -> bool {
    name == "/" || path == name || path.starts_with(&format!("{}/", name.trim_end_matches('/')))
}

/// The pools the pairs on `host` use first (in the host's order), then the others; and how many
/// are used.
pub fn used_first(engine: &Engine, host: &str, pools: Vec<Storage>) -> (Vec<Storage>, usize) {
    let paths: Vec<&str> = engine
        .config
        .pairs
        .iter()
        .flat_map(|p| [&p.source, &p.destination])
        .filter(|e| e.host == host)
        .map(|e| e.path.as_str())
        .collect();
    // the most specific storage holds a path (a btrfs mount below another)
    let owner = |path: &str| {
        pools
            .iter()
            .filter(|p| holds(&p.name, path))
            .max_by_key(|p| p.name.len())
            .map(|p| p.name.clone())
    };
    let used: Vec<String> = paths.iter().filter_map(|p| owner(p)).collect();
    let (mut first, rest): (Vec<_>, Vec<_>) = pools.into_iter().partition(|p| used.contains(&p.name));
    let n = first.len();
    first.extend(rest);
    (first, n)
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
        used_pools: 0,
    };
    let work = async {
        let ex = engine.executor(host).await?;
        // one bare round trip on the open connection: what every command of a job pays
        let t = Instant::now();
        ex.run_ok("true").await?;
        let rtt = t.elapsed();
        let mut pools = Vec::new();
        for driver in engine.kinds_on(host).into_iter().filter_map(crate::driver::for_kind) {
            pools.extend(driver.storage(&ex).await?);
        }
        anyhow::Ok((rtt, pools))
    };
    match tokio::time::timeout(PROBE_TIMEOUT, work).await {
        Ok(Ok((rtt, pools))) => {
            r.rtt = Some(rtt);
            (r.pools, r.used_pools) = used_first(engine, host, pools);
        }
        Ok(Err(e)) => r.error = Some(format!("{e:#}")),
        Err(_) => r.error = Some(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pools_the_pairs_use_come_first() {
        let c = crate::config::parse(
            std::path::Path::new("t.toml"),
            "[hosts.s]\naddress = \"192.0.2.1\"\n[[pair]]\nsource = \"s:tank/data\"\ndestination = \"backup/data\"\n\
             [[pair]]\nkind = \"btrfs\"\nsource = \"s:/mnt/b/vol\"\ndestination = \"/backup/vol\"\n",
        )
        .unwrap();
        let engine = Engine::new(c, Some(std::env::temp_dir()), false);
        let p = |n: &str| Storage::new(n, "1G", "0", "ONLINE");
        let (pools, used) = used_first(&engine, "s", vec![p("aaa"), p("/"), p("/mnt/b"), p("tank"), p("tankx")]);
        let names: Vec<&str> = pools.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["/mnt/b", "tank", "aaa", "/", "tankx"]);
        assert_eq!(used, 2, "the most specific mount holds a path; tankx is not tank");
    }
}
