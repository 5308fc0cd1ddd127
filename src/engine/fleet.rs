//! Many pairs at once: `update --all` runs every pair's update with a limit overall and per host,
//! all of them sharing the run's one SSH connection per host.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::Semaphore;

use crate::config::Pair;

use super::types::{Options, Replicated};
use super::Engine;

/// Updates `pairs` concurrently: at most `max_jobs` at once, and at most `max_jobs_per_host` at once
/// touching any one host (as source or destination). Results come back in the order of `pairs`.
pub async fn update_all<'a>(engine: &Engine, pairs: &[&'a Pair], opts: Options) -> Vec<(&'a Pair, Result<Replicated>)> {
    let overall = Arc::new(Semaphore::new(engine.config.max_jobs.max(1)));
    let mut per_host: BTreeMap<String, Arc<Semaphore>> = BTreeMap::new();
    for p in pairs {
        for h in [&p.source.host, &p.destination.host] {
            per_host
                .entry(h.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(engine.config.max_jobs_per_host.max(1))));
        }
    }
    let jobs = pairs.iter().map(|p| {
        let overall = overall.clone();
        // both hosts' permits, always in name order so two jobs never wait on each other
        let mut hosts: Vec<Arc<Semaphore>> = Vec::new();
        let mut names = vec![p.source.host.clone(), p.destination.host.clone()];
        names.sort();
        names.dedup();
        for n in &names {
            hosts.push(per_host[n].clone());
        }
        async move {
            let mut held = Vec::new();
            for h in &hosts {
                held.push(h.clone().acquire_owned().await.expect("semaphore open"));
            }
            let _all = overall.acquire_owned().await.expect("semaphore open");
            let r = super::kind::update(engine, p, opts).await;
            drop(held);
            (*p, r)
        }
    });
    futures::future::join_all(jobs).await
}
