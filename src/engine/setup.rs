//! setup: checks (and prepares where it safely can) everything a first initialize needs, as a
//! checklist. Every check runs even after one fails, so the operator sees the whole picture.

use crate::config::Pair;
use crate::driver::{Check, Driver};
use crate::exec::Executor;

use super::types::{item, Item};
use super::Engine;

/// What to run after a setup whose checks all passed, as a command to paste.
pub fn next_step(engine: &Engine, pair: &Pair, items: &[Item]) -> String {
    if items.iter().any(|i| i.initialized) {
        format!(
            "the pair is initialized: run `{}`",
            engine.command("update", Some(pair))
        )
    } else {
        format!("run `{}`", engine.command("initialize", Some(pair)))
    }
}

fn from_check(c: Check) -> Item {
    item(c.ok, c.what, c.detail)
}

/// The first line of every pair's checklist: its folder in the state dir, written to.
pub fn state_dir_item(engine: &Engine, pair: &Pair) -> Item {
    match engine.state.ensure_pair_dir(&pair.fingerprint()) {
        Ok(dir) => match crate::state::files::write_atomic(&dir.join(".write-test"), b"", false) {
            Ok(()) => {
                let _ = std::fs::remove_file(dir.join(".write-test"));
                item(true, "state dir", dir.display().to_string())
            }
            Err(e) => item(false, "state dir", format!("{}: {e}", dir.display())),
        },
        Err(e) => item(false, "state dir", format!("{e:#}")),
    }
}

/// A snapshot pair's checks after `items`: each side's host and tool, the volumes, the programs
/// the transport needs, and whether the two sides' tools can talk.
pub async fn setup(engine: &Engine, pair: &Pair, driver: &'static dyn Driver, mut items: Vec<Item>) -> Vec<Item> {
    async fn side<'a>(
        engine: &'a Engine,
        driver: &'static dyn Driver,
        side: crate::driver::Side,
        vol: &'a crate::config::Endpoint,
    ) -> (Vec<Item>, Option<(Executor, crate::driver::Capabilities)>) {
        let label = side.label();
        let host = vol.host.clone();
        let mut out = Vec::new();
        let ex = match engine.executor(&host).await {
            Ok(ex) => {
                if host != crate::config::LOCAL {
                    out.push(item(
                        true,
                        format!("{label} host {host}"),
                        "SSH reachable, host key verified, authenticated",
                    ));
                }
                ex
            }
            Err(e) => {
                out.push(item(false, format!("{label} host {host}"), format!("{e:#}")));
                return (out, None);
            }
        };
        let caps = match driver.probe(&ex, vol).await {
            Ok(c) => c,
            Err(e) => {
                out.push(item(false, format!("{label} {}", driver.tool()), format!("{e:#}")));
                return (out, None);
            }
        };
        out.extend(driver.volume_checks(label, vol, &caps).into_iter().map(from_check));
        match driver.permission_checks(&ex, side, vol).await {
            Ok(checks) => out.extend(checks.into_iter().map(from_check)),
            Err(e) => out.push(item(false, format!("{label} permissions"), format!("{e:#}"))),
        }
        (out, Some((ex, caps)))
    }
    let ((s_items, s), (d_items, d)) = tokio::join!(
        side(engine, driver, crate::driver::Side::Source, &pair.source),
        side(engine, driver, crate::driver::Side::Destination, &pair.destination)
    );
    items.extend(s_items);
    items.extend(d_items);
    if let (Some((sx, scaps)), Some((dx, dcaps))) = (s, d) {
        items.extend(volumes(driver, pair, (&sx, &dx), &dcaps).await);
        items.extend(programs(pair, &sx, &dx).await);
        items.extend(driver.compatibility(&scaps, &dcaps).into_iter().map(from_check));
    }
    items
}

async fn volumes(
    driver: &dyn Driver,
    pair: &Pair,
    (sx, dx): (&Executor, &Executor),
    dcaps: &crate::driver::Capabilities,
) -> Vec<Item> {
    let mut out = Vec::new();
    let dst = &pair.destination;
    let (sl, dl) = ([&pair.source], [dst]);
    let (src, dst_info) = tokio::join!(driver.inspect(sx, &sl), driver.inspect(dx, &dl));
    let src = src.map(|mut v| v.remove(0));
    let dst_info = dst_info.map(|mut v| v.remove(0));
    out.push(match &src {
        Ok(v) if v.exists => item(true, "source volume", pair.source.to_string()),
        Ok(_) => item(false, "source volume", format!("{} does not exist", pair.source)),
        Err(e) => item(false, "source volume", format!("{e:#}")),
    });
    match &dst_info {
        Ok(v) if v.exists => {
            let ours = v.fingerprint.as_deref() == Some(pair.fingerprint().as_str());
            let mut it = item(
                ours,
                "destination volume",
                if ours {
                    "already initialized by this pair".to_string()
                } else {
                    format!("{} exists and is not this pair's replica", pair.destination)
                },
            );
            it.initialized = ours;
            out.push(it);
        }
        Ok(_) => out.push(item(
            true,
            "destination volume",
            format!("{} absent (initialize creates it)", pair.destination),
        )),
        Err(e) => out.push(item(false, "destination volume", format!("{e:#}"))),
    }
    if let (Ok(s), Ok(d)) = (&src, &dst_info) {
        if s.exists {
            let checks = driver.stream_checks(&pair.options, s, d, dcaps);
            out.extend(checks.into_iter().map(from_check));
        }
    }
    out.push(match driver.prepare_parent(dx, dst).await {
        Ok(detail) => item(true, "destination parent", detail),
        Err(e) => item(false, "destination parent", format!("{e:#}")),
    });
    out
}

/// The programs the pair's transport and compression need, on both hosts (one exec each).
async fn programs(pair: &Pair, sx: &Executor, dx: &Executor) -> Vec<Item> {
    use crate::config::{Compress, TransportKind};
    let mut need: Vec<&str> = Vec::new();
    if pair.options.transport == TransportKind::Mbuffer {
        need.push("mbuffer");
    }
    if pair.options.compress == Compress::Zstd && pair.options.transport != TransportKind::Local {
        need.push("zstd");
    }
    if need.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (label, ex) in [("source", sx), ("destination", dx)] {
        // fixed program names only: nothing from the config reaches this command line
        let cmd = need
            .iter()
            .map(|p| format!("command -v {p} >/dev/null 2>&1 || echo {p}"))
            .collect::<Vec<_>>()
            .join("; ");
        let missing = match ex.run(&cmd).await {
            Ok(o) => o.stdout_text().split_whitespace().map(String::from).collect::<Vec<_>>(),
            Err(e) => vec![format!("({e:#})")],
        };
        out.push(item(
            missing.is_empty(),
            format!("{label} programs"),
            if missing.is_empty() {
                format!("{} found on {}", need.join(", "), ex.host())
            } else {
                format!("missing on {}: {}", ex.host(), missing.join(", "))
            },
        ));
    }
    if pair.options.transport == TransportKind::Mbuffer {
        out.push(item(
            true,
            "transport mbuffer",
            format!(
                "UNENCRYPTED from {} to {}:{}",
                pair.source.host,
                pair.options.mbuffer_address.as_deref().unwrap_or("this machine"),
                pair.port.unwrap_or(0)
            ),
        ));
    }
    out
}
