//! The btrfs driver: read-only snapshots in the source's snapshot directory, `btrfs send` into
//! `btrfs receive` in the destination directory, the checkpoint's record in a marks file there.
//! A checkpoint counts only where the destination's `received_uuid` is the source's `uuid`.

pub mod commands;
pub mod parse;

use anyhow::{bail, Result};
use futures::FutureExt;

use crate::config::Endpoint;
use crate::driver::{
    Base, Capabilities, Check, Descendant, Destroy, Driver, DriverError, Fut, Marks, Storage, Stream, VolumeInfo,
};
use crate::exec::{describe_failure, ExecError, Executor};
use crate::model::Kind;

#[derive(Debug, Clone, Copy, Default)]
pub struct Btrfs;

/// Reads a btrfs error message into a case; the message stays what the case displays. A case
/// counts only in the shape it is printed: btrfs-progs ends an error line with the system's
/// reason (`ERROR: cannot delete '/b/busybox': Device or resource busy`), ferry's receive script
/// starts its own with `ferry: destination snapshot`; a word in a path is never a reason.
pub fn classify(text: &str) -> DriverError {
    let owned = text.trim().to_string();
    for line in text.lines().map(str::trim) {
        if line.starts_with(MODIFIED_PREFIX) && line.contains(&format!(" {}: ", commands::CHANGED_BY_HAND)) {
            return DriverError::Modified(owned);
        }
        if !line.starts_with("ERROR: ") {
            continue;
        }
        if line.ends_with(": No such file or directory") {
            return DriverError::DoesNotExist(owned);
        }
        if line.ends_with(": Device or resource busy") {
            return DriverError::Busy(owned);
        }
    }
    DriverError::Other(owned)
}

/// How the receive script's line about a replica changed by hand begins (`commands::receive`).
const MODIFIED_PREFIX: &str = "ferry: destination snapshot ";

/// Where the scripts' output says which volume is a source (its snapshots live elsewhere).
fn sources(vols: &[&Endpoint]) -> Vec<bool> {
    vols.iter().map(|v| v.snapshot_dir.is_some()).collect()
}

impl Btrfs {
    async fn inspect(&self, ex: &Executor, vols: &[&Endpoint]) -> Result<Vec<VolumeInfo>> {
        if vols.is_empty() {
            return Ok(Vec::new());
        }
        let out = ex.run(&commands::inspect(vols)?).await?;
        if !out.success() {
            bail!(
                "on {}: reading btrfs volumes failed: {}",
                ex.host(),
                describe_failure(out.code, &out.stderr)
            );
        }
        Ok(parse::inspect(&out.stdout_text(), &sources(vols)))
    }

    async fn probe_and_inspect(&self, ex: &Executor, vols: &[&Endpoint]) -> Result<(Capabilities, Vec<VolumeInfo>)> {
        let out = ex.run(&commands::probe_and_inspect(vols)?).await?;
        if !out.success() {
            bail!(
                "on {}: reading btrfs volumes failed: {}",
                ex.host(),
                describe_failure(out.code, &out.stderr)
            );
        }
        let text = out.stdout_text();
        let (probe, listing) = text.split_once(commands::SECTION).unwrap_or(("", text.as_str()));
        Ok((parse::capabilities(probe), parse::inspect(listing, &sources(vols))))
    }

    async fn probe(&self, ex: &Executor, vol: &Endpoint) -> Result<Capabilities> {
        let out = ex.run(&commands::probe_space(vol)?).await?;
        if !out.success() {
            bail!(
                "probing btrfs on {}: {}",
                ex.host(),
                describe_failure(out.code, &out.stderr)
            );
        }
        let caps = parse::capabilities(&out.stdout_text());
        if caps.tool_version.is_none() {
            bail!(
                "probing btrfs on {}: `btrfs` not found (install btrfs-progs)",
                ex.host()
            );
        }
        Ok(caps)
    }

    async fn destroy_each(&self, ex: &Executor, vol: &Endpoint, snaps: &[String]) -> Result<Vec<(String, Destroy)>> {
        if snaps.is_empty() {
            return Ok(Vec::new());
        }
        let out = ex.run(&commands::destroy_each(vol, snaps)?).await?;
        if out.code.is_none() {
            bail!(
                "on {}: deleting snapshots of {} was cut off: {}",
                ex.host(),
                vol.path,
                describe_failure(out.code, &out.stderr)
            );
        }
        Ok(parse::destroyed(&out.stdout_text(), snaps))
    }

    async fn descendants(&self, ex: &Executor, vol: &Endpoint) -> Result<Vec<Descendant>> {
        let info = self.inspect(ex, &[vol]).await?.remove(0);
        if !info.exists {
            return Ok(Vec::new());
        }
        let out = ex.run_ok(&commands::descendants(vol)?).await?;
        Ok(parse::descendants(&out.stdout_text(), &vol.path, info.fingerprint))
    }

    async fn parent_exists(&self, ex: &Executor, vol: &Endpoint) -> Result<bool> {
        Ok(ex.run_ok(&commands::parent_exists(vol)?).await?.stdout_text().trim() == "yes")
    }

    /// Setup's line about the destination directory: there, or made now.
    async fn prepare_parent(&self, ex: &Executor, vol: &Endpoint) -> Result<String> {
        let out = ex.run_ok(&commands::parent_exists(vol)?).await?;
        let parent = commands::parent(&vol.path);
        if out.stdout_text().trim() == "yes" {
            return Ok(format!("{parent} exists"));
        }
        ex.run_ok(&commands::create_destination(vol)?).await?;
        Ok(format!("{} created", vol.path))
    }

    async fn filesystems(&self, ex: &Executor) -> Result<Vec<Storage>> {
        let out = ex.run_ok(&commands::filesystems()).await?;
        Ok(out
            .stdout_text()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3).then(|| Storage::new(f[0], f[1], f[2], "-"))
            })
            .collect())
    }
}

impl Driver for Btrfs {
    fn kind(&self) -> Kind {
        Kind::Btrfs
    }

    fn tool(&self) -> &'static str {
        "btrfs"
    }

    fn snapshot_at(&self, vol: &Endpoint) -> String {
        format!("{}/", vol.snapshot_dir.as_deref().unwrap_or(&vol.path))
    }

    /// One cache entry per host: the probe is about the tool, which every path shares. The name
    /// cannot be a ZFS pool's (pools have no parentheses).
    fn caps_scope<'p>(&self, _vol: &'p Endpoint) -> &'p str {
        "(btrfs)"
    }

    fn probe<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, Capabilities> {
        Btrfs::probe(self, ex, vol).boxed()
    }

    fn inspect<'a>(&'a self, ex: &'a Executor, vols: &'a [&'a Endpoint]) -> Fut<'a, Vec<VolumeInfo>> {
        Btrfs::inspect(self, ex, vols).boxed()
    }

    fn probe_and_inspect<'a>(
        &'a self,
        ex: &'a Executor,
        vols: &'a [&'a Endpoint],
    ) -> Fut<'a, (Capabilities, Vec<VolumeInfo>)> {
        Btrfs::probe_and_inspect(self, ex, vols).boxed()
    }

    fn snapshot<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint, snap: &'a str) -> Fut<'a, ()> {
        async move {
            ex.run_ok(&commands::snapshot(vol, snap)?).await?;
            Ok(())
        }
        .boxed()
    }

    /// btrfs cannot tell a stream's size before sending it.
    fn estimate<'a>(
        &'a self,
        _ex: &'a Executor,
        _caps: &'a Capabilities,
        _vol: &'a Endpoint,
        _snap: &'a str,
        _from: Option<Base<'a>>,
        _stream: Stream,
    ) -> Fut<'a, Option<u64>> {
        async { Ok(None) }.boxed()
    }

    fn send_script(
        &self,
        vol: &Endpoint,
        snap: &str,
        from: Option<Base>,
        taken: bool,
        _stream: Stream,
    ) -> Result<String> {
        // btrfs keeps no bookmarks: a base is always a snapshot
        let send = commands::send(vol, snap, from.map(|b| b.name()))?;
        if taken {
            Ok(send)
        } else {
            Ok(format!("{} && {send}", commands::snapshot(vol, snap)?))
        }
    }

    /// `btrfs send -p` carries only the new snapshot.
    fn sends_intermediates(&self) -> bool {
        false
    }

    fn receive_script(
        &self,
        vol: &Endpoint,
        snap: &str,
        force: bool,
        _resumable: bool,
        _stream: Stream,
    ) -> Result<String> {
        commands::receive(vol, snap, force)
    }

    fn record_script(&self, vol: &Endpoint, marks: &Marks) -> Result<String> {
        commands::record(vol, marks)
    }

    fn expose<'a>(&'a self, _ex: &'a Executor, _vol: &'a Endpoint) -> Fut<'a, ()> {
        async { Ok(()) }.boxed()
    }

    fn destroy_snapshots<'a>(
        &'a self,
        ex: &'a Executor,
        vol: &'a Endpoint,
        snaps: &'a [String],
    ) -> Fut<'a, Vec<(String, Destroy)>> {
        self.destroy_each(ex, vol, snaps).boxed()
    }

    fn destroy_volume<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, ()> {
        async move {
            let cmd = commands::destroy_volume(vol)?;
            let out = ex.run(&cmd).await?;
            if !out.success() {
                bail!(
                    "on {}: removing {} failed: {}",
                    ex.host(),
                    vol.path,
                    describe_failure(out.code, &out.stderr)
                );
            }
            Ok(())
        }
        .boxed()
    }

    fn descendants<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, Vec<Descendant>> {
        Btrfs::descendants(self, ex, vol).boxed()
    }

    fn parent_exists<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, bool> {
        Btrfs::parent_exists(self, ex, vol).boxed()
    }

    fn prepare_parent<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, String> {
        Btrfs::prepare_parent(self, ex, vol).boxed()
    }

    fn volume_checks(&self, label: &str, vol: &Endpoint, caps: &Capabilities) -> Vec<Check> {
        let mut checks = vec![Check {
            ok: caps.tool_version.is_some(),
            what: format!("{label} btrfs-progs"),
            detail: caps
                .tool_version
                .clone()
                .unwrap_or_else(|| format!("`btrfs` not found on {}", vol.host)),
        }];
        let fs = caps.filesystem.as_deref().unwrap_or("unknown");
        checks.push(Check {
            ok: fs == "btrfs",
            what: format!("{label} filesystem"),
            detail: if fs == "btrfs" {
                format!("{} is on btrfs", vol.path)
            } else {
                format!("{} is on {fs}, not btrfs", vol.path)
            },
        });
        if let (Some(same), Some(dir)) = (caps.snapshots_beside, &vol.snapshot_dir) {
            checks.push(Check {
                ok: same,
                what: format!("{label} snapshot directory"),
                detail: if same {
                    format!("{dir} is on the source's filesystem")
                } else {
                    format!(
                        "{dir} is not on the filesystem of {} (a btrfs snapshot cannot cross filesystems): \
                         set snapshot_dir to a directory on it, e.g. {}/.ferry-snapshots",
                        vol.path, vol.path
                    )
                },
            });
        }
        checks
    }

    /// Room on the destination's filesystem for what the source holds (a full send writes about
    /// that much; btrfs cannot say more precisely before sending).
    fn compatibility(&self, source: &Capabilities, destination: &Capabilities) -> Vec<Check> {
        let space = || -> Option<Check> {
            let size = crate::config::units::format_bytes;
            let free = destination.free_bytes?;
            Some(match source.used_bytes {
                Some(used) => Check {
                    ok: free >= used,
                    what: "destination space".into(),
                    detail: format!(
                        "{} free on the destination's filesystem for a source of {}{}",
                        size(free),
                        size(used),
                        if free >= used {
                            ""
                        } else {
                            ": the first initialize would not fit"
                        }
                    ),
                },
                None => Check {
                    ok: true,
                    what: "destination space".into(),
                    detail: format!(
                        "{} free on the destination's filesystem (the source was too large to measure in 20 s)",
                        size(free)
                    ),
                },
            })
        };
        space().into_iter().collect()
    }

    fn storage<'a>(&'a self, ex: &'a Executor) -> Fut<'a, Vec<Storage>> {
        self.filesystems(ex).boxed()
    }

    fn classify(&self, vol: &Endpoint, failed: &ExecError) -> Option<DriverError> {
        match classify(&failed.stderr) {
            DriverError::Other(_) => None,
            // the receive script's own refusal (exit 3), about a snapshot in this destination
            DriverError::Modified(m) => {
                let ours = format!("{MODIFIED_PREFIX}{}/", vol.path);
                (failed.code == Some(3) && m.lines().any(|l| l.trim().starts_with(&ours)))
                    .then_some(DriverError::Modified(m))
            }
            e => Some(e),
        }
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
            let (sc, dc) = (commands::show(s, snap)?, commands::show(d, snap)?);
            let (a, b) = tokio::join!(src.run_ok(&sc), dst.run_ok(&dc));
            let field = |text: &str, key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key}=")).map(|v| v.trim().to_string()))
            };
            let (a, b) = (a?.stdout_text(), b?.stdout_text());
            let mut differs = Vec::new();
            let (uuid, received) = (field(&a, "UUID"), field(&b, "Received UUID"));
            if uuid.is_none() || uuid != received {
                differs.push(format!(
                    "{snap}: received UUID {} on the destination, the source's UUID is {}: not the same snapshot",
                    received.as_deref().unwrap_or("?"),
                    uuid.as_deref().unwrap_or("?")
                ));
            }
            if !field(&b, "Flags").is_some_and(|f| f.contains("readonly")) {
                differs.push(format!(
                    "{}/{snap} is writable: it may have been changed since it was received",
                    d.path
                ));
            }
            Ok(differs)
        }
        .boxed()
    }

    /// Nested subvolumes; ferry's own snapshots (in `snapshot_dir`, wherever it is) are none.
    fn children<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, Vec<String>> {
        async move {
            let out = ex.run_ok(&commands::tree(vol)?).await?;
            let own = vol.snapshot_dir.as_deref().map(|d| format!("{d}/"));
            Ok(out
                .stdout_text()
                .lines()
                .filter(|l| l.starts_with(&format!("{}/", vol.path)))
                .filter(|l| own.as_ref().is_none_or(|d| !l.starts_with(d.as_str())))
                .filter(|l| crate::model::names::check_btrfs_path(l).is_ok())
                .map(String::from)
                .collect())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::for_kind;

    #[test]
    fn errors_become_cases() {
        let busy = "ERROR: Could not destroy subvolume/snapshot: Device or resource busy";
        assert!(matches!(classify(busy), DriverError::Busy(_)));
        let gone = "ERROR: cannot access '/b/x': No such file or directory";
        assert!(matches!(classify(gone), DriverError::DoesNotExist(_)));
        let failed = |code, stderr: &str| ExecError {
            host: "local".into(),
            command: "btrfs receive".into(),
            code: Some(code),
            stderr: stderr.into(),
        };
        assert_eq!(
            Btrfs.classify(&Endpoint::local("/b"), &failed(1, "No space left on device")),
            None
        );
        // a word in a path is no reason: only the reason ending the line counts
        let named = "ERROR: cannot delete '/b/busybox/ferry.ab.1': Permission denied";
        assert!(matches!(classify(named), DriverError::Other(_)), "{named}");
        let named = "ERROR: cannot access '/b/not found/x': Operation not permitted";
        assert!(matches!(classify(named), DriverError::Other(_)), "{named}");
        // the receive script's refusal counts for the destination it names, and only from it
        let changed = format!(
            "ferry: destination snapshot /b/household/ferry.ab.1 {}: not received over",
            commands::CHANGED_BY_HAND
        );
        let home = Endpoint::local("/b/household");
        assert!(matches!(
            Btrfs.classify(&home, &failed(3, &changed)),
            Some(DriverError::Modified(_))
        ));
        assert_eq!(Btrfs.classify(&Endpoint::local("/b/house"), &failed(3, &changed)), None);
        assert_eq!(Btrfs.classify(&home, &failed(1, &changed)), None);
        let echoed = format!("ERROR: cannot open '/b/x {}: y'", commands::CHANGED_BY_HAND);
        assert!(matches!(classify(&echoed), DriverError::Other(_)));
    }

    #[test]
    fn the_kind_dispatches_to_its_driver() {
        let d = for_kind(Kind::Btrfs).unwrap();
        assert_eq!(d.kind(), Kind::Btrfs);
        let marks = Marks {
            fingerprint: "ab",
            source: "h:/srv/data",
            snapshot: "ferry.ab.20260101T000000Z",
            first: false,
        };
        let script = d.record_script(&Endpoint::local("/b/d"), &marks).unwrap();
        assert!(script.contains("lastsnap=ferry.ab.20260101T000000Z"), "{script}");
        assert!(
            script.contains("mv -f /b/d/.ferry-checkpoint.tmp /b/d/.ferry-checkpoint"),
            "{script}"
        );
    }
}
