//! `cluster diverge` and `cluster reconcile`: the volumes themselves compared, key by key, behind
//! the journal's back (autosync's gap: nothing told the operator when sites had drifted apart).
//! A key differs when some volume lacks it, when its bytes differ (size, then ETag, then the
//! bytes themselves where ETags cannot tell), or when its content type or user metadata differ
//! (the cluster's replica mark aside).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::config::Cluster;
use crate::engine::kind::for_kind;
use crate::object::client::{Client, ObjectAttrs, ObjectInfo};

use super::run::{open_volumes, Volume};
use super::{Engine, MARK};

const PARALLEL: usize = 16;

/// How a key differs across the volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Differs {
    /// Some volumes lack it.
    Missing,
    /// Not the same bytes everywhere.
    Content,
    /// Same bytes, different content type or user metadata.
    Metadata,
}

/// One differing key.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub key: String,
    pub differs: Differs,
    /// The volumes holding it, with each one's size and last-modified (Unix ms).
    pub held: BTreeMap<String, (u64, i64)>,
    /// The volumes lacking it.
    pub missing: Vec<String>,
    /// The volume whose version `reconcile --policy newest` spreads.
    pub newest: String,
}

/// How `reconcile` repairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// The newest version of each differing key (by last-modified; ties to the greater volume
    /// name) is copied to every volume that differs, missing ones included.
    Newest,
    /// Only say what differs (exit 1 when anything does).
    Report,
}

fn stripped(a: &ObjectAttrs) -> ObjectAttrs {
    let mut a = a.clone();
    a.metadata.remove(MARK);
    a
}

/// The bytes of `key` hashed as they stream (for ETags that cannot be compared: multipart, or
/// none listed).
async fn content_hash(c: &Client, key: &str) -> Result<u128> {
    let (_, _, stream) = c.get_stream(key).await?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut stream = stream;
    while let Some(chunk) = stream.try_next().await? {
        h.update(&chunk);
    }
    Ok(h.digest128())
}

fn objects_only(cluster: &Cluster) -> Result<()> {
    if cluster.volumes.iter().any(|v| for_kind(v.kind).snapshots().is_some()) {
        bail!(
            "cluster {}: diverge and reconcile compare object volumes; its snapshot volumes are replicated as pairs (`ferry verify`)",
            cluster.name
        );
    }
    Ok(())
}

/// Every key that differs between the cluster's volumes, sorted by key.
pub async fn diverge(engine: &Engine, cluster: &Cluster) -> Result<Vec<Difference>> {
    objects_only(cluster)?;
    let vols = open_volumes(engine, cluster)?;
    diverge_volumes(&vols).await
}

async fn diverge_volumes(vols: &[Volume]) -> Result<Vec<Difference>> {
    let listings = futures::future::try_join_all(vols.iter().map(|v| async move {
        let l = v.client.list().await?;
        anyhow::Ok((
            v.name.clone(),
            l.objects
                .into_iter()
                .map(|o| (o.key.clone(), o))
                .collect::<BTreeMap<_, _>>(),
        ))
    }))
    .await?;
    let keys: BTreeSet<&String> = listings.iter().flat_map(|(_, l)| l.keys()).collect();
    let mut out = Vec::new();
    let mut to_compare = Vec::new();
    for key in keys {
        let held: BTreeMap<String, &ObjectInfo> = listings
            .iter()
            .filter_map(|(n, l)| l.get(key).map(|o| (n.clone(), o)))
            .collect();
        let missing: Vec<String> = listings
            .iter()
            .filter(|(_, l)| !l.contains_key(key))
            .map(|(n, _)| n.clone())
            .collect();
        let sizes: BTreeSet<u64> = held.values().map(|o| o.size).collect();
        let differs = if !missing.is_empty() {
            Some(Differs::Missing)
        } else if sizes.len() > 1 {
            Some(Differs::Content)
        } else {
            to_compare.push(key.clone());
            None
        };
        if let Some(d) = differs {
            out.push(difference(key, d, &held, missing));
        }
    }
    // same size everywhere: HEADs, and the bytes where ETags cannot tell
    let compared: Vec<Result<Option<Difference>>> = futures::stream::iter(to_compare)
        .map(|key| {
            let listings = &listings;
            async move {
                let heads = futures::future::try_join_all(vols.iter().map(|v| {
                    let key = key.clone();
                    async move { anyhow::Ok((v, v.client.stat(&key).await?)) }
                }))
                .await?;
                let mut found = Vec::new();
                for (v, h) in heads {
                    match h {
                        Some((info, attrs)) => found.push((v, info, stripped(&attrs))),
                        // deleted since the listing: the next diverge sees it
                        None => return Ok(None),
                    }
                }
                let etags: BTreeSet<Option<&String>> = found.iter().map(|(_, i, _)| i.etag.as_ref()).collect();
                let plain = found
                    .iter()
                    .all(|(_, i, _)| i.etag.as_deref().is_some_and(|e| !e.contains('-')));
                let same_bytes = if plain {
                    etags.len() == 1
                } else {
                    let hashes =
                        futures::future::try_join_all(found.iter().map(|(v, _, _)| content_hash(&v.client, &key)))
                            .await?;
                    hashes.iter().collect::<BTreeSet<_>>().len() == 1
                };
                let attrs: BTreeSet<String> = found.iter().map(|(_, _, a)| format!("{a:?}")).collect();
                let differs = if !same_bytes {
                    Some(Differs::Content)
                } else if attrs.len() > 1 {
                    Some(Differs::Metadata)
                } else {
                    None
                };
                let held: BTreeMap<String, &ObjectInfo> = listings
                    .iter()
                    .filter_map(|(n, l)| l.get(&key).map(|o| (n.clone(), o)))
                    .collect();
                Ok(differs.map(|d| difference(&key, d, &held, Vec::new())))
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    for c in compared {
        if let Some(d) = c? {
            out.push(d);
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn difference(key: &str, differs: Differs, held: &BTreeMap<String, &ObjectInfo>, missing: Vec<String>) -> Difference {
    let newest = held
        .iter()
        .max_by_key(|(n, o)| (o.last_modified.timestamp_millis(), (*n).clone()))
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    Difference {
        key: key.to_string(),
        differs,
        held: held
            .iter()
            .map(|(n, o)| (n.clone(), (o.size, o.last_modified.timestamp_millis())))
            .collect(),
        missing,
        newest,
    }
}

/// What `reconcile` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reconciled {
    pub differences: Vec<Difference>,
    /// Copies made: (key, from, to).
    pub copied: Vec<(String, String, String)>,
    /// Copies that failed: (key, to, why).
    pub failed: Vec<(String, String, String)>,
}

/// Repairs (or, with `Policy::Report`, only lists) what differs. Copies carry the cluster's
/// replica mark, so a running `cluster run` takes them for the cluster's own writing.
pub async fn reconcile(engine: &Engine, cluster: &Cluster, policy: Policy) -> Result<Reconciled> {
    objects_only(cluster)?;
    let vols = open_volumes(engine, cluster)?;
    let differences = diverge_volumes(&vols).await?;
    let mut done = Reconciled {
        differences,
        ..Reconciled::default()
    };
    if policy == Policy::Report {
        return Ok(done);
    }
    let by_name: BTreeMap<&str, &Volume> = vols.iter().map(|v| (v.name.as_str(), v)).collect();
    let options = crate::object::sync::SyncOptions::default();
    let mark = Some((MARK, cluster.name.as_str()));
    for d in &done.differences {
        let Some(from) = by_name.get(d.newest.as_str()) else {
            continue;
        };
        for to in vols.iter().filter(|v| v.name != d.newest && v.update) {
            match crate::object::copy::copy(&from.client, &to.client, &d.key, &options, mark).await {
                Ok(_) => done.copied.push((d.key.clone(), from.name.clone(), to.name.clone())),
                Err(e) => done.failed.push((d.key.clone(), to.name.clone(), e.to_string())),
            }
        }
    }
    Ok(done)
}
