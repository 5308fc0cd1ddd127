//! The block driver: files (VM images) and block devices, replicated by changed chunks. The work
//! is done by two ferry peers (`block::peer`), one on each host, that the job's relay joins; this
//! driver builds their command lines and reads each side's state directory (which checkpoint a
//! side holds, with its manifest's id, and whether an apply is pending) with one shell command.

pub mod commands;
pub mod parse;

use anyhow::{bail, Result};
use futures::FutureExt;

use crate::block::peer::verify::Verdict;
use crate::block::proto::PROTOCOL_VERSION;
use crate::config::units::format_bytes;
use crate::config::Endpoint;
use crate::driver::{
    Base, Capabilities, Check, Descendant, Destroy, Driver, DriverError, Fut, Marks, Storage, Stream, Under, VolumeInfo,
};
use crate::exec::{describe_failure, Executor};
use crate::model::Kind;

#[derive(Debug, Clone, Copy, Default)]
pub struct Block;

/// What a peer's version line must say for the two ends to understand each other.
fn speaks_ours(version: &str) -> bool {
    version.ends_with(&format!("block protocol {PROTOCOL_VERSION}"))
}

/// Which of the volumes are a pair's source (the listing reads differently for those).
fn sources(vols: &[&Endpoint]) -> Vec<bool> {
    vols.iter()
        .map(|v| v.block.as_ref().is_some_and(|b| b.source))
        .collect()
}

/// Runs a listing script on the host; its output, or why it failed.
async fn listing(ex: &Executor, script: &str) -> Result<String> {
    let out = ex.run(script).await?;
    if !out.success() {
        bail!(
            "on {}: reading block volumes failed: {}",
            ex.host(),
            describe_failure(out.code, &out.stderr)
        );
    }
    Ok(out.stdout_text())
}

impl Block {
    async fn inspect(&self, ex: &Executor, vols: &[&Endpoint]) -> Result<Vec<VolumeInfo>> {
        if vols.is_empty() {
            return Ok(Vec::new());
        }
        let text = listing(ex, &commands::inspect(vols)?).await?;
        Ok(parse::inspect(&text, &sources(vols)))
    }

    async fn probe_and_inspect(&self, ex: &Executor, vols: &[&Endpoint]) -> Result<(Capabilities, Vec<VolumeInfo>)> {
        let Some(first) = vols.first() else {
            return Ok((Capabilities::default(), Vec::new()));
        };
        let script = format!(
            "{}; printf '{}'; {}",
            commands::probe(first)?,
            commands::SECTION,
            commands::inspect(vols)?
        );
        let text = listing(ex, &script).await?;
        let (probe, list) = text.split_once(commands::SECTION).unwrap_or(("", text.as_str()));
        let (mut caps, _) = parse::capabilities(probe);
        let info = parse::inspect(list, &sources(vols));
        caps.used_bytes = info.first().and_then(|i| i.referenced);
        Ok((caps, info))
    }

    async fn verify(&self, dst: &Executor, d: &Endpoint, snap: &str) -> Result<Vec<String>> {
        let out = dst.run(&commands::verify(d)?).await?;
        if !out.success() {
            bail!(
                "on {}: verifying {} failed: {}",
                dst.host(),
                d.path,
                describe_failure(out.code, &out.stderr)
            );
        }
        let text = out.stdout_text();
        let v: Verdict = serde_json::from_str(text.trim())
            .map_err(|e| anyhow::anyhow!("on {}: unreadable verify answer ({e}): {}", dst.host(), text.trim()))?;
        let mut differs = Vec::new();
        if v.checkpoint.as_deref() != Some(snap) {
            differs.push(format!(
                "the replica's checkpoint is {}, the source's is {snap}",
                v.checkpoint.as_deref().unwrap_or("unnamed")
            ));
        }
        for (start, end) in &v.ranges {
            differs.push(format!(
                "bytes {start}..{end} ({}) differ from the checkpoint",
                format_bytes(end - start)
            ));
        }
        if v.differing > v.ranges.len() {
            differs.push(format!("{} differing ranges in all", v.differing));
        }
        Ok(differs)
    }
}

impl Driver for Block {
    fn kind(&self) -> Kind {
        Kind::Block
    }

    fn tool(&self) -> &'static str {
        "ferry"
    }

    /// A checkpoint is named after the volume it describes.
    fn snapshot_at(&self, vol: &Endpoint) -> String {
        format!("{}@", vol.path)
    }

    fn caps_scope<'p>(&self, _vol: &'p Endpoint) -> &'p str {
        "(block)"
    }

    fn probe<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, Capabilities> {
        async move { Ok(Block::probe_and_inspect(self, ex, &[vol]).await?.0) }.boxed()
    }

    fn inspect<'a>(&'a self, ex: &'a Executor, vols: &'a [&'a Endpoint]) -> Fut<'a, Vec<VolumeInfo>> {
        Block::inspect(self, ex, vols).boxed()
    }

    fn probe_and_inspect<'a>(
        &'a self,
        ex: &'a Executor,
        vols: &'a [&'a Endpoint],
    ) -> Fut<'a, (Capabilities, Vec<VolumeInfo>)> {
        Block::probe_and_inspect(self, ex, vols).boxed()
    }

    /// The sender takes its point-in-time copy itself, as it starts reading.
    fn snapshot<'a>(&'a self, _ex: &'a Executor, _vol: &'a Endpoint, _snap: &'a str) -> Fut<'a, ()> {
        async { Ok(()) }.boxed()
    }

    /// What will be sent is known only once the source is read; the read's own progress (of the
    /// source's size) is what the job shows.
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

    /// The peers agree on the base themselves (the replica's manifest id), so `from` is only
    /// what the engine believes, and the snapshot is always the sender's own.
    fn send_script(
        &self,
        vol: &Endpoint,
        snap: &str,
        _from: Option<Base>,
        _taken: bool,
        _stream: Stream,
    ) -> Result<String> {
        commands::send(vol, snap)
    }

    fn sends_intermediates(&self) -> bool {
        false
    }

    /// A replica changed by hand cannot be told without reading it: `verify` finds it and
    /// `update --repair` puts it right, so `force` has nothing more to do.
    fn receive_script(
        &self,
        vol: &Endpoint,
        snap: &str,
        _force: bool,
        _resumable: bool,
        _stream: Stream,
    ) -> Result<String> {
        commands::receive(vol, snap, false)
    }

    fn repair_script(&self, vol: &Endpoint, snap: &str) -> Result<String> {
        commands::receive(vol, snap, true)
    }

    fn duplex(&self) -> Option<u8> {
        Some(crate::block::proto::T_PROGRESS)
    }

    fn notes(&self, source: &Endpoint) -> Vec<String> {
        match source.block.as_ref() {
            Some(b) if !b.reflink => vec![
                "not point-in-time: snapshot = \"none\" reads the live source, so a replica of a volume in use \
                 may mix moments (snapshot = \"reflink\" on btrfs or xfs fixes that)"
                    .to_string(),
            ],
            _ => Vec::new(),
        }
    }

    /// The receiver records the checkpoint with the data, atomically with applying it.
    fn record_script(&self, _vol: &Endpoint, _marks: &Marks) -> Result<String> {
        Ok(": the receiver recorded the checkpoint as it applied it".into())
    }

    fn expose<'a>(&'a self, _ex: &'a Executor, _vol: &'a Endpoint) -> Fut<'a, ()> {
        async { Ok(()) }.boxed()
    }

    /// A block volume holds one checkpoint, replaced by each update: older names are gone. What
    /// can go is a run's leftovers (`VolumeInfo::leftovers`): a resumable journal, a clone.
    fn destroy_snapshots<'a>(
        &'a self,
        ex: &'a Executor,
        vol: &'a Endpoint,
        snaps: &'a [String],
    ) -> Fut<'a, Vec<(String, Destroy)>> {
        async move {
            let mut out = Vec::new();
            for s in snaps {
                let done = ex.run_ok(&commands::remove_leftover(vol, s)?).await?;
                let gone = done.stdout_text().starts_with("destroyed");
                out.push((s.clone(), if gone { Destroy::Destroyed } else { Destroy::Absent }));
            }
            Ok(out)
        }
        .boxed()
    }

    fn destroy_volume<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, ()> {
        async move {
            let out = ex.run(&commands::destroy(vol)?).await?;
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
        async move {
            let info = Block::inspect(self, ex, &[vol]).await?.remove(0);
            if !info.exists {
                return Ok(Vec::new());
            }
            let mut out = vec![Descendant {
                name: vol.path.clone(),
                fingerprint: info.fingerprint.clone(),
                under: Under::Itself,
            }];
            out.extend(info.snapshots.iter().map(|s| Descendant {
                name: format!("{}@{}", vol.path, s.name),
                fingerprint: info.fingerprint.clone(),
                under: Under::Snapshot(s.name.clone()),
            }));
            Ok(out)
        }
        .boxed()
    }

    fn parent_exists<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, bool> {
        async move { Ok(ex.run_ok(&commands::parent_exists(vol)?).await?.stdout_text().trim() == "yes") }.boxed()
    }

    fn prepare_parent<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, String> {
        async move {
            let parent = commands::parent(&vol.path);
            if ex.run_ok(&commands::parent_exists(vol)?).await?.stdout_text().trim() == "yes" {
                return Ok(format!("{parent} exists"));
            }
            ex.run_ok(&commands::create_parent(vol)?).await?;
            Ok(format!("{parent} created"))
        }
        .boxed()
    }

    fn volume_checks(&self, label: &str, vol: &Endpoint, caps: &Capabilities) -> Vec<Check> {
        let Some(b) = vol.block.as_ref() else {
            return Vec::new();
        };
        let mut checks = vec![match caps.tool_version.as_deref() {
            Some(v) if speaks_ours(v) => Check {
                ok: true,
                what: format!("{label} ferry"),
                detail: format!("{} answers: {v}", b.ferry),
            },
            Some(v) => Check {
                ok: false,
                what: format!("{label} ferry"),
                detail: format!(
                    "{} answers {v:?}, this ferry speaks block protocol {PROTOCOL_VERSION}: install the same ferry on both hosts",
                    b.ferry
                ),
            },
            None => Check {
                ok: false,
                what: format!("{label} ferry"),
                detail: format!(
                    "no ferry at {:?} on {}: copy this ferry binary there (e.g. scp target/release/ferry {}:/usr/local/bin/ferry) \
                     or set ferry_path in [hosts.{}]",
                    b.ferry, vol.host, vol.host, vol.host
                ),
            },
        }];
        if b.source && b.reflink {
            let fs = caps.filesystem.as_deref().unwrap_or("unknown");
            let ok = fs == "btrfs" || fs == "xfs";
            checks.push(Check {
                ok,
                what: format!("{label} point in time"),
                detail: if ok {
                    format!("snapshot = \"reflink\": {} is on {fs}", vol.path)
                } else {
                    format!(
                        "snapshot = \"reflink\" needs btrfs or xfs; {} is on {fs}: use snapshot = \"none\" (the replica is then not point-in-time)",
                        vol.path
                    )
                },
            });
        } else if b.source {
            checks.push(Check {
                ok: true,
                what: format!("{label} point in time"),
                detail: "snapshot = \"none\": the live source is read, so the replica is not point-in-time".into(),
            });
        }
        checks
    }

    /// Room for the first initialize: every data chunk of the source is journaled in the
    /// replica's state dir, then written to the replica (holes take room in neither; a device
    /// has its room already). Where the two share a filesystem, they need its space twice.
    fn compatibility(&self, source: &Capabilities, destination: &Capabilities) -> Vec<Check> {
        let space = || -> Option<Check> {
            let size = source.used_bytes?;
            let data = source.allocated_bytes.unwrap_or(size).min(size);
            let held = if data < size {
                format!(
                    "a source holding {} of data ({} declared, the rest holes)",
                    format_bytes(data),
                    format_bytes(size)
                )
            } else {
                format!("a source of {}", format_bytes(size))
            };
            let (ok, detail) = match (destination.journal_free_bytes, destination.journal_beside) {
                (Some(jfree), Some(true)) => {
                    let need = data.saturating_mul(2);
                    (
                    jfree >= need,
                    format!(
                        "{} free where the replica and its journal go, for {held}: the first initialize needs {} (the data journaled, then written)",
                        format_bytes(jfree),
                        format_bytes(need)
                    ),
                )
                }
                (Some(jfree), _) => {
                    let replica_ok = destination.device || destination.free_bytes.is_none_or(|f| f >= data);
                    let where_replica = match (destination.device, destination.free_bytes) {
                        (true, _) => "the replica is a block device".to_string(),
                        (false, Some(f)) => format!("{} free where the replica goes", format_bytes(f)),
                        (false, None) => "the replica's free space unknown".to_string(),
                    };
                    (
                        jfree >= data && replica_ok,
                        format!(
                            "{where_replica} and {} free for its journal in the state dir, for {held}: each needs {}",
                            format_bytes(jfree),
                            format_bytes(data)
                        ),
                    )
                }
                (None, _) => {
                    let free = destination.free_bytes?;
                    (
                        free >= data,
                        format!("{} free where the replica goes, for {held}", format_bytes(free)),
                    )
                }
            };
            Some(Check {
                ok,
                what: "destination space".into(),
                detail: if ok {
                    detail
                } else {
                    format!("{detail}: the first initialize would not fit")
                },
            })
        };
        space().into_iter().collect()
    }

    fn storage<'a>(&'a self, _ex: &'a Executor) -> Fut<'a, Vec<Storage>> {
        async { Ok(Vec::new()) }.boxed()
    }

    fn classify(&self, _vol: &Endpoint, failed: &crate::exec::ExecError) -> Option<DriverError> {
        // the reason ends the line (`...: No such file or directory`); a path holding the words is none
        let error = failed.stderr.trim();
        if error
            .lines()
            .any(|l| l.trim_end().ends_with("No such file or directory"))
        {
            Some(DriverError::DoesNotExist(error.to_string()))
        } else {
            None
        }
    }

    fn verify<'a>(
        &'a self,
        _src: &'a Executor,
        dst: &'a Executor,
        _s: &'a Endpoint,
        d: &'a Endpoint,
        snap: &'a str,
    ) -> Fut<'a, Vec<String>> {
        Block::verify(self, dst, d, snap).boxed()
    }
}
