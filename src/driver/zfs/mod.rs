//! The ZFS driver: runs the commands of `commands` through an executor and parses what they print.
//! Works on zfs-fuse (pool v23) and current OpenZFS by probing capabilities first.

pub mod adopt;
pub mod allow;
pub mod commands;
pub mod encryption;
pub mod errors;
pub mod parse;
pub mod zettabee;

use anyhow::{bail, Result};
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::config::Endpoint;
use crate::driver::{
    Adoption, Base, Capabilities, Check, Descendant, Destroy, Driver, DriverError, Fut, Keep, Marks, Resume, Side,
    Snapshot, Storage, Stream, VolumeInfo,
};
use crate::exec::{describe_failure, ExecError, Executor};
use crate::model::Kind;

#[derive(Debug, Clone, Copy, Default)]
pub struct Zfs;

pub use errors::classify;

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
        if !out.success() && !matches!(classify(ds, &out.stderr), DriverError::DoesNotExist(_)) {
            bail!(
                "on {}: listing what is under {ds} failed: {}",
                ex.host(),
                describe_failure(out.code, &out.stderr)
            );
        }
        Ok(parse::descendants(&out.stdout_text(), ds))
    }

    /// Estimated stream size: `send -nP` where it exists, else `referenced` for a full send, else unknown.
    pub async fn estimate(
        &self,
        ex: &Executor,
        caps: &Capabilities,
        ds: &str,
        snap: &str,
        from: Option<Base<'_>>,
        stream: Stream,
    ) -> Result<Option<u64>> {
        if caps.send_estimate {
            let out = ex.run(&commands::send_estimate(ds, snap, from, stream)?).await?;
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
        check_inspect(ex, &out, volumes)?;
        Ok((parse::capabilities(probe), parse::inspect(listing, volumes)))
    }

    pub async fn probe(&self, ex: &Executor, volume: &str) -> Result<Capabilities> {
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

    pub async fn inspect(&self, ex: &Executor, volumes: &[&str]) -> Result<Vec<VolumeInfo>> {
        if volumes.is_empty() {
            return Ok(Vec::new());
        }
        let out = ex.run(&commands::inspect(volumes)?).await?;
        check_inspect(ex, &out, volumes)?;
        Ok(parse::inspect(&out.stdout_text(), volumes))
    }

    pub async fn parent_exists(&self, ex: &Executor, ds: &str) -> Result<bool> {
        match commands::parent_exists(ds)? {
            None => Ok(true),
            Some(cmd) => Ok(ex.run_ok(&cmd).await?.stdout_text().trim() == "yes"),
        }
    }

    /// Setup's line about the parent dataset: there, created, or none needed.
    async fn prepare_parent(&self, ex: &Executor, ds: &str) -> Result<String> {
        let Some((p, _)) = ds.rsplit_once('/') else {
            return Ok("destination is a pool's top dataset".into());
        };
        if self.parent_exists(ex, ds).await? {
            return Ok(format!("{p} exists"));
        }
        if let Some(cmd) = commands::create_parent(ds)? {
            ex.run_ok(&cmd).await?;
        }
        Ok(format!("{p} created"))
    }

    /// Without -r, so zfs refuses when anything is still under it; already gone is success.
    async fn destroy_dataset(&self, ex: &Executor, ds: &str) -> Result<()> {
        let cmd = commands::destroy_dataset(ds)?;
        let out = ex.run(&cmd).await?;
        if out.success() || (out.code.is_some() && matches!(classify(ds, &out.stderr), DriverError::DoesNotExist(_))) {
            return Ok(());
        }
        bail!(
            "on {}: `{cmd}` failed: {}",
            ex.host(),
            describe_failure(out.code, &out.stderr)
        )
    }

    /// Every pool on the host: name, size, allocated, health.
    pub async fn pools(&self, ex: &Executor) -> Result<Vec<Storage>> {
        let out = ex.run_ok(&commands::pools()).await?;
        Ok(out
            .stdout_text()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() >= 4).then(|| Storage::new(f[0], f[1], f[2], f[3]))
            })
            .collect())
    }

    pub async fn mount(&self, ex: &Executor, ds: &str) -> Result<()> {
        ex.run(&commands::mount(ds)?).await?;
        Ok(())
    }
}

/// Setup's line on how streams go: the block features sent as they are, and for each one that is
/// not, which side lacks it.
fn stream_detail(source: &Capabilities, destination: &Capabilities) -> String {
    let features = [
        (
            "-L (large blocks)",
            "feature@large_blocks",
            source.large_blocks,
            destination.large_blocks,
        ),
        (
            "-e (embedded data)",
            "feature@embedded_data",
            source.embedded_data,
            destination.embedded_data,
        ),
        (
            "-c (compressed)",
            "a zfs with send -c",
            source.compressed_send,
            destination.compressed_send,
        ),
    ];
    let mut used = Vec::new();
    let mut lacking = Vec::new();
    for (flag, feature, s, d) in features {
        match (s, d) {
            (true, true) => used.push(flag),
            (s, d) => {
                let who = match (s, d) {
                    (false, false) => "both sides lack",
                    (false, _) => "the source lacks",
                    _ => "the destination lacks",
                };
                lacking.push(format!("without {flag}: {who} {feature}"));
            }
        }
    }
    let mut detail = if used.is_empty() {
        "plain stream".to_string()
    } else {
        format!("sends {}", used.join(" "))
    };
    if !lacking.is_empty() {
        detail.push_str("; ");
        detail.push_str(&lacking.join("; "));
    }
    detail
}

/// The pool a dataset lives in.
fn pool_of(ds: &str) -> &str {
    ds.split('/').next().unwrap_or(ds)
}

fn paths<'a>(vols: &[&'a Endpoint]) -> Vec<&'a str> {
    vols.iter().map(|v| v.path.as_str()).collect()
}

/// A listing may exit 1 because some of the datasets it named are missing; any other complaint
/// is an error.
fn check_inspect(ex: &Executor, out: &crate::exec::Output, volumes: &[&str]) -> Result<()> {
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
    let unexpected = !errors::only_missing(volumes, whole);
    if unexpected || out.code.is_none() {
        bail!(
            "on {}: reading datasets failed: {}",
            ex.host(),
            describe_failure(out.code, &out.stderr)
        );
    }
    Ok(())
}

impl Driver for Zfs {
    fn kind(&self) -> Kind {
        Kind::Zfs
    }

    fn tool(&self) -> &'static str {
        "zfs"
    }

    fn snapshot_at(&self, vol: &Endpoint) -> String {
        format!("{}@", vol.path)
    }

    fn caps_scope<'p>(&self, vol: &'p Endpoint) -> &'p str {
        pool_of(&vol.path)
    }

    fn probe<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, Capabilities> {
        Zfs::probe(self, ex, &vol.path).boxed()
    }

    fn inspect<'a>(&'a self, ex: &'a Executor, vols: &'a [&'a Endpoint]) -> Fut<'a, Vec<VolumeInfo>> {
        async move { Zfs::inspect(self, ex, &paths(vols)).await }.boxed()
    }

    fn probe_and_inspect<'a>(
        &'a self,
        ex: &'a Executor,
        vols: &'a [&'a Endpoint],
    ) -> Fut<'a, (Capabilities, Vec<VolumeInfo>)> {
        async move { Zfs::probe_and_inspect(self, ex, &paths(vols)).await }.boxed()
    }

    fn snapshot<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint, snap: &'a str) -> Fut<'a, ()> {
        async move {
            ex.run_ok(&commands::snapshot(&vol.path, snap)?).await?;
            Ok(())
        }
        .boxed()
    }

    fn estimate<'a>(
        &'a self,
        ex: &'a Executor,
        caps: &'a Capabilities,
        vol: &'a Endpoint,
        snap: &'a str,
        from: Option<Base<'a>>,
        stream: Stream,
    ) -> Fut<'a, Option<u64>> {
        Zfs::estimate(self, ex, caps, &vol.path, snap, from, stream).boxed()
    }

    /// One exec where the sender estimates (`zfs snapshot … || exit; zfs send -nP …`).
    fn snapshot_and_estimate<'a>(
        &'a self,
        ex: &'a Executor,
        caps: &'a Capabilities,
        vol: &'a Endpoint,
        snap: &'a str,
        from: Option<Base<'a>>,
        stream: Stream,
    ) -> Fut<'a, Option<u64>> {
        async move {
            if !caps.send_estimate {
                Driver::snapshot(self, ex, vol, snap).await?;
                return Ok(Zfs::estimate(self, ex, caps, &vol.path, snap, from, stream)
                    .await
                    .unwrap_or(None));
            }
            let out = ex
                .run_ok(&commands::snapshot_and_estimate(&vol.path, snap, from, stream)?)
                .await?;
            Ok(parse::estimate(&out.stdout_text()))
        }
        .boxed()
    }

    fn send_script(
        &self,
        vol: &Endpoint,
        snap: &str,
        from: Option<Base>,
        taken: bool,
        stream: Stream,
    ) -> Result<String> {
        if taken {
            commands::send(&vol.path, snap, from, stream)
        } else {
            commands::snapshot_and_send(&vol.path, snap, from, stream)
        }
    }

    /// Each block feature goes as it is where both pools have it: a large-block, embedded or
    /// compressed stream into a pool without the feature would be refused (or, for `-c`, is not
    /// understood by an old zfs); without them zfs rewrites those blocks into plain ones.
    fn stream(&self, raw: bool, source: &Capabilities, destination: &Capabilities) -> Stream {
        Stream {
            raw,
            properties: false,
            large_blocks: source.large_blocks && destination.large_blocks,
            embedded: source.embedded_data && destination.embedded_data,
            compressed: source.compressed_send && destination.compressed_send,
        }
    }

    fn sends_intermediates(&self) -> bool {
        true
    }

    fn resume(&self, src: &Endpoint, dst: &Endpoint, token: &str, stream: Stream) -> Option<Result<Resume>> {
        let scripts = (|| {
            let _ = commands::checked(&src.path)?;
            Ok(Resume {
                send: commands::resume_send(token)?,
                receive: commands::receive(&dst.path, false, true, stream.properties)?,
                abort: commands::abort_resume(&dst.path)?,
            })
        })();
        Some(scripts)
    }

    fn keep_checkpoint<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint, keep: Keep<'a>) -> Fut<'a, Option<String>> {
        async move {
            let out = ex.run(&commands::keep_checkpoint(&vol.path, &keep)?).await?;
            let text = out.stdout_text();
            Ok((!text.trim().is_empty()).then(|| crate::text::one_line(text.trim()).to_string()))
        }
        .boxed()
    }

    fn resume_check<'a>(
        &'a self,
        ex: &'a Executor,
        token: &'a str,
    ) -> Fut<'a, std::result::Result<Option<u64>, String>> {
        async move {
            let out = ex.run(&commands::resume_estimate(token)?).await?;
            let text = out.stdout_text();
            if out.success() {
                Ok(Ok(parse::estimate(&text)))
            } else {
                Ok(Err(crate::text::one_line(text.trim()).to_string()))
            }
        }
        .boxed()
    }

    fn receive_script(
        &self,
        vol: &Endpoint,
        _snap: &str,
        force: bool,
        resumable: bool,
        stream: Stream,
    ) -> Result<String> {
        commands::receive(&vol.path, force, resumable, stream.properties)
    }

    fn record_script(&self, vol: &Endpoint, marks: &Marks) -> Result<String> {
        let mut props: Vec<(&str, &str)> = Vec::new();
        if marks.first {
            props.push(("readonly", "on"));
            props.push((commands::PROP_FINGERPRINT, marks.fingerprint));
            props.push((commands::PROP_SOURCE, marks.source));
        }
        props.push((commands::PROP_LASTSNAP, marks.snapshot));
        commands::set_properties(&vol.path, &props)
    }

    fn expose<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, ()> {
        self.mount(ex, &vol.path).boxed()
    }

    fn destroy_snapshots<'a>(
        &'a self,
        ex: &'a Executor,
        vol: &'a Endpoint,
        snaps: &'a [String],
    ) -> Fut<'a, Vec<(String, Destroy)>> {
        self.destroy_each(ex, &vol.path, snaps).boxed()
    }

    fn destroy_volume<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, ()> {
        self.destroy_dataset(ex, &vol.path).boxed()
    }

    fn descendants<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, Vec<Descendant>> {
        Zfs::descendants(self, ex, &vol.path).boxed()
    }

    fn parent_exists<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, bool> {
        Zfs::parent_exists(self, ex, &vol.path).boxed()
    }

    fn prepare_parent<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, String> {
        Zfs::prepare_parent(self, ex, &vol.path).boxed()
    }

    fn volume_checks(&self, label: &str, vol: &Endpoint, caps: &Capabilities) -> Vec<Check> {
        let (host, pool) = (&vol.host, pool_of(&vol.path));
        let found = caps.pool_version.is_some() || caps.list_parsable;
        let detail = if !found {
            format!("pool {pool} not found on {host}")
        } else {
            caps.pool_version
                .map(|v| format!("pool version {v}"))
                .unwrap_or_else(|| "feature-flag pool".into())
        };
        vec![Check {
            ok: found,
            what: format!("{label} pool {pool}"),
            detail,
        }]
    }

    fn permission_checks<'a>(&'a self, ex: &'a Executor, side: Side, vol: &'a Endpoint) -> Fut<'a, Vec<Check>> {
        async move {
            let out = ex.run(&allow::script(&vol.path)?).await?;
            if !out.success() {
                bail!(
                    "on {}: reading zfs allow for {}: {}",
                    ex.host(),
                    vol.path,
                    describe_failure(out.code, &out.stderr)
                );
            }
            Ok(allow::check(side, &vol.path, &allow::parse(&out.stdout_text()))
                .into_iter()
                .collect())
        }
        .boxed()
    }

    fn stream_checks(
        &self,
        options: &crate::config::PairOptions,
        source: &VolumeInfo,
        destination: &VolumeInfo,
        dst_caps: &Capabilities,
    ) -> Vec<Check> {
        let mut checks = encryption::checks(options.raw, source, destination, dst_caps);
        if options.properties {
            checks.push(Check {
                ok: dst_caps.receive_exclude,
                what: "properties".into(),
                detail: if dst_caps.receive_exclude {
                    "sent with the stream (zfs send -p); the replica keeps the destination's mountpoint (receive -x mountpoint)".into()
                } else {
                    "`properties = true` needs a destination zfs that can leave the source's mountpoint out (receive -x, OpenZFS): this one cannot, and the replica would mount over the source's path there".into()
                },
            });
        }
        checks
    }

    fn compatibility(&self, source: &Capabilities, destination: &Capabilities) -> Vec<Check> {
        // a stream from a newer pool version may not be receivable by an older one
        let ok = match (source.pool_version, destination.pool_version) {
            (Some(s), Some(d)) => s <= d,
            (None, Some(_)) => false,
            _ => true,
        };
        let fmt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "feature flags".into());
        vec![
            Check {
                ok,
                what: "pool versions".into(),
                detail: format!(
                    "source {} → destination {}",
                    fmt(source.pool_version),
                    fmt(destination.pool_version)
                ),
            },
            Check {
                ok: true,
                what: "stream".into(),
                detail: stream_detail(source, destination),
            },
        ]
    }

    fn storage<'a>(&'a self, ex: &'a Executor) -> Fut<'a, Vec<Storage>> {
        self.pools(ex).boxed()
    }

    fn classify(&self, vol: &Endpoint, failed: &ExecError) -> Option<DriverError> {
        match classify(&vol.path, &failed.stderr) {
            DriverError::Other(_) => None,
            e => Some(e),
        }
    }

    fn adopt_base<'a>(&'a self, adoption: Adoption<'a>, notes: &'a mut Vec<String>) -> Fut<'a, Snapshot> {
        adopt::base(adoption, notes).boxed()
    }

    fn verify<'a>(
        &'a self,
        src: &'a Executor,
        dst: &'a Executor,
        s: &'a Endpoint,
        d: &'a Endpoint,
        snap: &'a str,
    ) -> Fut<'a, Vec<String>> {
        async move {
            let (sc, dc) = (commands::verify(&s.path, snap)?, commands::verify(&d.path, snap)?);
            let (a, b) = tokio::join!(src.run_ok(&sc), dst.run_ok(&dc));
            let (a, b) = (parse::verify(&a?.stdout_text()), parse::verify(&b?.stdout_text()));
            let mut differs = Vec::new();
            if a.guid.is_none() || a.guid != b.guid {
                differs.push(format!(
                    "{snap}: guid {} on the source, {} on the destination: not the same snapshot",
                    a.guid.as_deref().unwrap_or("?"),
                    b.guid.as_deref().unwrap_or("?")
                ));
            }
            match (b.written, b.referenced, b.snap_referenced) {
                (Some(w), _, _) if w > 0 => differs.push(format!(
                    "{}: {w} bytes written since {snap} (changed by hand since the checkpoint)",
                    d.path
                )),
                // pool v23 has no `written`: a changed dataset refers to other bytes than its snapshot
                (None, Some(r), Some(sr)) if r != sr => differs.push(format!(
                    "{}: refers to {r} bytes, {snap} to {sr} (changed since the checkpoint)",
                    d.path
                )),
                _ => {}
            }
            Ok(differs)
        }
        .boxed()
    }

    fn children<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, Vec<String>> {
        async move {
            let out = ex.run(&commands::tree(&vol.path)?).await?;
            if !out.success() {
                if let DriverError::DoesNotExist(_) = classify(&vol.path, &out.stderr) {
                    return Ok(Vec::new());
                }
                bail!(
                    "on {}: listing the datasets under {} failed: {}",
                    ex.host(),
                    vol.path,
                    describe_failure(out.code, &out.stderr)
                );
            }
            let prefix = format!("{}/", vol.path);
            Ok(out
                .stdout_text()
                .lines()
                .filter(|l| l.starts_with(&prefix))
                .map(String::from)
                .collect())
        }
        .boxed()
    }

    fn copy_base<'a>(&'a self, adoption: Adoption<'a>, notes: &'a mut Vec<String>) -> Fut<'a, Snapshot> {
        adopt::copy_base(adoption, notes).boxed()
    }

    fn adopt_hint<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> BoxFuture<'a, Option<String>> {
        adopt::hint(ex, &vol.path).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::for_kind;

    #[test]
    fn errors_become_cases_that_keep_the_tool_words() {
        let gone = "cannot open 'p/d@x': dataset does not exist";
        assert_eq!(classify("p/d@x", gone), DriverError::DoesNotExist(gone.into()));
        assert_eq!(classify("p/d@x", gone).to_string(), gone);
        let busy = "cannot destroy 'p/d@b': dataset is busy";
        assert_eq!(classify("p/d@b", busy), DriverError::Busy(busy.into()));
        let held = "cannot destroy snapshot p/d@b: it's being held";
        assert!(matches!(classify("p/d@b", held), DriverError::Held(_)));
        let modified = "cannot receive incremental stream: destination p/d has been modified";
        assert!(matches!(classify("p/d", modified), DriverError::Modified(_)));
        let failed = ExecError {
            host: "local".into(),
            command: "zfs receive p/d".into(),
            code: Some(1),
            stderr: "out of space".into(),
        };
        assert_eq!(Zfs.classify(&Endpoint::local("p/d"), &failed), None);
    }

    #[test]
    fn the_kind_dispatches_to_its_driver() {
        let d = for_kind(Kind::Zfs).unwrap();
        assert_eq!(d.kind(), Kind::Zfs);
        assert_eq!(d.caps_scope(&Endpoint::local("tank/a/b")), "tank");
        let marks = Marks {
            fingerprint: "f",
            source: "h:tank/a",
            snapshot: "ferry.f.1",
            first: false,
        };
        let script = d.record_script(&Endpoint::local("tank/a"), &marks).unwrap();
        assert!(
            script.contains("ferry:lastsnap") && !script.contains("ferry:fingerprint"),
            "{script}"
        );
        assert!(d.record_script(&Endpoint::local("tank/a;x"), &marks).is_err());
    }
}
