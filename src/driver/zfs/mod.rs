//! The ZFS driver: runs the commands of `commands` through an executor and parses what they print.
//! Works on zfs-fuse (pool v23) and current OpenZFS by probing capabilities first.

pub mod commands;
pub mod parse;
pub mod zettabee;

use anyhow::{bail, Result};

use crate::driver::{Capabilities, VolumeDriver, VolumeInfo};
use crate::exec::{describe_failure, Executor, Process};

#[derive(Debug, Clone, Copy, Default)]
pub struct Zfs;

/// The snapshot name prefix of one pair: `ferry.<fp>.`
pub fn snapshot_prefix(fp: &str) -> String {
    format!("ferry.{fp}.")
}

/// A new replication snapshot name for now: `ferry.<fp>.<YYYYMMDDThhmmssZ>` (UTC).
pub fn snapshot_name(fp: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{}{}", snapshot_prefix(fp), at.format("%Y%m%dT%H%M%SZ"))
}

/// What became of one snapshot `destroy_each` was asked to destroy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destroy {
    Destroyed,
    /// It was already gone: nothing to do, nothing destroyed.
    Absent,
    /// Still there: busy (a sender, a clone) or held (`zfs hold`); the error text says which.
    Failed(String),
}

/// A dataset or snapshot under a dataset, with the ferry fingerprint set on it (not inherited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descendant {
    /// Full name, `pool/ds` or `pool/ds@snap`.
    pub name: String,
    pub fingerprint: Option<String>,
}

impl Zfs {
    /// Destroys each snapshot independently in one exec and reports each one's outcome.
    pub async fn destroy_each(&self, ex: &Executor, ds: &str, snaps: &[String]) -> Result<Vec<(String, Destroy)>> {
        if snaps.is_empty() {
            return Ok(Vec::new());
        }
        let out = ex.run(&commands::destroy_each(ds, snaps)?).await?;
        if out.code.is_none() {
            bail!(
                "on {}: destroying snapshots of {ds} was cut off: {}",
                ex.host(),
                describe_failure(out.code, &out.stderr)
            );
        }
        Ok(parse::destroyed(&out.stdout_text(), ds, snaps))
    }

    /// Everything under `ds`, itself included (empty when it does not exist).
    pub async fn descendants(&self, ex: &Executor, ds: &str) -> Result<Vec<Descendant>> {
        let out = ex.run(&commands::descendants(ds)?).await?;
        if !out.success() && !out.stderr.contains("does not exist") {
            bail!(
                "on {}: listing what is under {ds} failed: {}",
                ex.host(),
                describe_failure(out.code, &out.stderr)
            );
        }
        Ok(parse::descendants(&out.stdout_text()))
    }

    /// Estimated stream size: `send -nP` where it exists, else `referenced` for a full send, else unknown.
    pub async fn estimate(
        &self,
        ex: &Executor,
        caps: &Capabilities,
        ds: &str,
        snap: &str,
        from: Option<&str>,
    ) -> Result<Option<u64>> {
        if caps.send_estimate {
            let out = ex.run(&commands::send_estimate(ds, snap, from)?).await?;
            return Ok(parse::estimate(&out.stdout_text()));
        }
        if from.is_none() {
            let out = ex.run(&commands::referenced(ds, snap)?).await?;
            return Ok(out.stdout_text().trim().parse().ok());
        }
        Ok(None)
    }

    /// Capabilities and volumes of one host in one exec.
    pub async fn probe_and_inspect(&self, ex: &Executor, volumes: &[&str]) -> Result<(Capabilities, Vec<VolumeInfo>)> {
        let out = ex.run(&commands::probe_and_inspect(volumes)?).await?;
        let text = out.stdout_text();
        let (probe, listing) = text.split_once(commands::SECTION).unwrap_or(("", text.as_str()));
        check_inspect(ex, &out)?;
        Ok((parse::capabilities(probe), parse::inspect(listing, volumes)))
    }

    pub async fn set_properties(&self, ex: &Executor, ds: &str, props: &[(&str, &str)]) -> Result<()> {
        ex.run_ok(&commands::set_properties(ds, props)?).await?;
        Ok(())
    }

    pub async fn parent_exists(&self, ex: &Executor, ds: &str) -> Result<bool> {
        match commands::parent_exists(ds)? {
            None => Ok(true),
            Some(cmd) => Ok(ex.run_ok(&cmd).await?.stdout_text().trim() == "yes"),
        }
    }

    pub async fn create_parent(&self, ex: &Executor, ds: &str) -> Result<()> {
        if let Some(cmd) = commands::create_parent(ds)? {
            ex.run_ok(&cmd).await?;
        }
        Ok(())
    }

    pub async fn destroy_dataset(&self, ex: &Executor, ds: &str) -> Result<()> {
        ex.run_ok(&commands::destroy_dataset(ds)?).await?;
        Ok(())
    }

    /// (name, size, allocated, health) of every pool on the host.
    pub async fn pools(&self, ex: &Executor) -> Result<Vec<(String, String, String, String)>> {
        let out = ex.run_ok(&commands::pools()).await?;
        Ok(out
            .stdout_text()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() >= 4).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string(), f[3].to_string()))
            })
            .collect())
    }

    pub async fn mount(&self, ex: &Executor, ds: &str) -> Result<()> {
        ex.run(&commands::mount(ds)?).await?;
        Ok(())
    }
}

/// A listing may exit 1 because some datasets are missing; any other complaint is an error.
fn check_inspect(ex: &Executor, out: &crate::exec::Output) -> Result<()> {
    if out.success() {
        return Ok(());
    }
    // stderr is kept up to a cap: thousands of missing datasets fill it, and its last line is then
    // cut short; only whole lines are judged
    let whole = if out.stderr.len() >= crate::exec::STDERR_CAP {
        out.stderr.rsplit_once('\n').map(|(w, _)| w).unwrap_or("")
    } else {
        out.stderr.as_str()
    };
    let unexpected = whole
        .lines()
        .any(|l| !l.trim().is_empty() && !l.contains("dataset does not exist"));
    if unexpected || out.code.is_none() {
        bail!(
            "on {}: reading datasets failed: {}",
            ex.host(),
            describe_failure(out.code, &out.stderr)
        );
    }
    Ok(())
}

impl VolumeDriver for Zfs {
    async fn probe(&self, ex: &Executor, volume: &str) -> Result<Capabilities> {
        let out = ex.run(&commands::probe(volume)?).await?;
        if !out.success() {
            bail!(
                "probing zfs on {}: {}",
                ex.host(),
                describe_failure(out.code, &out.stderr)
            );
        }
        Ok(parse::capabilities(&out.stdout_text()))
    }

    async fn inspect(&self, ex: &Executor, volumes: &[&str]) -> Result<Vec<VolumeInfo>> {
        if volumes.is_empty() {
            return Ok(Vec::new());
        }
        let out = ex.run(&commands::inspect(volumes)?).await?;
        check_inspect(ex, &out)?;
        Ok(parse::inspect(&out.stdout_text(), volumes))
    }

    async fn snapshot(&self, ex: &Executor, volume: &str, snap: &str) -> Result<()> {
        ex.run_ok(&commands::snapshot(volume, snap)?).await?;
        Ok(())
    }

    async fn snapshot_and_send(&self, ex: &Executor, volume: &str, snap: &str, from: Option<&str>) -> Result<Process> {
        ex.spawn(&commands::snapshot_and_send(volume, snap, from)?).await
    }

    async fn receive(&self, ex: &Executor, volume: &str, force: bool) -> Result<Process> {
        ex.spawn(&commands::receive(volume, force)?).await
    }

    /// Fails naming every snapshot that is still there; the others are destroyed regardless.
    async fn destroy_snapshots(&self, ex: &Executor, volume: &str, snaps: &[String]) -> Result<()> {
        let failed: Vec<String> = self
            .destroy_each(ex, volume, snaps)
            .await?
            .into_iter()
            .filter_map(|(s, o)| match o {
                Destroy::Failed(why) => Some(format!("{volume}@{s}: {why}")),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            bail!("on {}: {}", ex.host(), failed.join("; "));
        }
        Ok(())
    }
}
