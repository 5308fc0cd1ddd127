//! The selected pair's detail: fingerprint, checkpoint, snapshots on both sides, last result and
//! the tail of its log.

use crate::model::StateKind;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::config::units::format_bytes;
use crate::driver::Snapshot;
use crate::engine::retention::Record;
use crate::engine::types::PairStatus;

use super::super::app::App;
use super::super::format::{level_style, secs};
use super::{fit, pane};
use crate::config::units::format_time;

/// `ferry.<fp>.<time>` shortened to `ferry.<fp:8>….<time>`: the fingerprint is shown above.
fn short(name: &str) -> String {
    match name.strip_prefix("ferry.").and_then(|r| r.split_once('.')) {
        Some((fp, time)) if fp.len() > 8 => format!("ferry.{}….{time}", &fp[..8]),
        _ => name.to_string(),
    }
}

/// What retention would do and what it could not, as zrepl's prune view shows: the snapshots
/// `purge` would destroy on each side now, and what earlier runs left behind and why.
fn retention_lines<'a>(app: &App, keep: u32, s: &PairStatus, record: Option<&Record>) -> Vec<Line<'a>> {
    let t = &app.theme;
    let mut out = vec![Line::from(Span::styled(
        format!("retention (keep {keep} per side)"),
        t.header,
    ))];
    let list = |names: &[String]| names.iter().map(|n| short(n)).collect::<Vec<_>>().join(", ");
    if s.purgeable_source.is_empty() && s.purgeable_destination.is_empty() && record.is_none() {
        out.push(Line::from(Span::styled("  nothing beyond keep", t.dim)));
        return out;
    }
    for (side, names) in [
        ("source", &s.purgeable_source),
        ("destination", &s.purgeable_destination),
    ] {
        if !names.is_empty() {
            out.push(Line::from(vec![
                Span::styled(format!("  purge would destroy on the {side}: "), t.dim),
                Span::styled(list(names), t.warn),
            ]));
        }
    }
    if let Some(r) = record {
        let style = if r.failing() { t.crit } else { t.warn };
        out.push(Line::from(Span::styled(
            format!(
                "  left behind by {} run(s) in a row since {}:",
                r.runs,
                format_time(r.since)
            ),
            style,
        )));
        for l in r.left.iter().take(3) {
            out.push(Line::from(Span::styled(format!("    {l}"), style)));
        }
        if r.left.len() > 3 {
            out.push(Line::from(Span::styled(
                format!("    and {} more", r.left.len() - 3),
                style,
            )));
        }
    }
    out
}

fn snap_lines<'a>(app: &App, label: &str, snaps: &[Snapshot], checkpoint: Option<&str>, max: usize) -> Vec<Line<'a>> {
    let t = &app.theme;
    let mut out = vec![Line::from(Span::styled(
        format!("{label} ({} snapshots)", snaps.len()),
        t.header,
    ))];
    let skip = snaps.len().saturating_sub(max);
    if skip > 0 {
        out.push(Line::from(Span::styled(format!("  … {skip} older"), t.dim)));
    }
    for s in &snaps[skip..] {
        let is_cp = Some(s.name.as_str()) == checkpoint;
        let style = if is_cp {
            t.ok
        } else if s.name.starts_with("ferry.") {
            t.base
        } else {
            t.dim
        };
        let mark = if is_cp { " ◀" } else { "" };
        out.push(Line::from(vec![
            Span::styled(format!("  {}  ", format_time(s.created)), t.dim),
            Span::styled(format!("{}{mark}", short(&s.name)), style),
        ]));
    }
    out
}

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(i) = app.selected_index() else {
        f.render_widget(Paragraph::new("no pair selected").block(pane(app, "Detail")), area);
        return;
    };
    let p = app.pair(i);
    let fp = p.fingerprint();
    let mut lines: Vec<Line> = vec![
        Line::from(vec![
            Span::styled("source       ", t.dim),
            Span::styled(p.source.to_string(), t.base),
        ]),
        Line::from(vec![
            Span::styled("destination  ", t.dim),
            Span::styled(p.destination.to_string(), t.base),
        ]),
        Line::from(vec![
            Span::styled("fingerprint  ", t.dim),
            Span::styled(fp.clone(), t.base),
        ]),
        Line::from(vec![
            Span::styled("options      ", t.dim),
            Span::styled(
                format!(
                    "{} wlag {} clag {} wrun {} crun {} keep {}{}",
                    format!("{:?}", p.options.transport).to_lowercase(),
                    secs(p.options.wlag.as_secs()),
                    secs(p.options.clag.as_secs()),
                    secs(p.options.wrun.as_secs()),
                    secs(p.options.crun.as_secs()),
                    p.options.keep,
                    if p.options.bwlimit > 0 {
                        format!(" bwlimit {}/s", format_bytes(p.options.bwlimit))
                    } else {
                        String::new()
                    }
                ),
                t.base,
            ),
        ]),
    ];
    let st = app.statuses[i].as_ref();
    match st {
        Some(s) => {
            let mut state = vec![
                Span::styled("state        ", t.dim),
                Span::styled(s.state.word(), level_style(&app.theme, s.level)),
            ];
            if let Some(r) = &s.reason {
                state.push(Span::styled(format!(" — {r}"), t.warn));
            }
            lines.push(Line::from(state));
            lines.push(Line::from(vec![
                Span::styled("checkpoint   ", t.dim),
                Span::styled(s.checkpoint.as_deref().map(short).unwrap_or_else(|| "-".into()), t.base),
                Span::styled(
                    app.lag_now(i).map(|l| format!("  lag {}", secs(l))).unwrap_or_default(),
                    level_style(&app.theme, app.lag_level_now(i).unwrap_or(s.lag_level)),
                ),
            ]));
        }
        None => lines.push(Line::from(Span::styled("reading status…", t.dim))),
    }
    if let Some(r) = app.run(i) {
        let mut l = vec![
            Span::styled("status       ", t.dim),
            Span::styled(r.status.word(), t.base),
        ];
        if let Some(lock) = &r.lock {
            l.push(Span::styled(
                format!(
                    "  {} by pid {} since {}",
                    lock.action,
                    lock.pid,
                    format_time(lock.started)
                ),
                t.dim,
            ));
        }
        lines.push(Line::from(l));
        if let Some(last) = &r.last {
            let (word, style) = if last.ok { ("ok", t.ok) } else { ("FAILED", t.crit) };
            lines.push(Line::from(vec![
                Span::styled("last result  ", t.dim),
                Span::styled(format!("{} {word}", last.action), style),
                Span::styled(
                    format!(
                        " at {}, {} in {:.1}s",
                        format_time(last.finished),
                        format_bytes(last.bytes),
                        last.seconds
                    ),
                    t.dim,
                ),
            ]));
            if let Some(e) = &last.error {
                lines.push(Line::from(Span::styled(format!("  {e}"), t.crit)));
            }
        }
    }
    if let Some(s) = st {
        let cp = s.checkpoint.as_deref();
        lines.push(Line::raw(""));
        if s.state == StateKind::Unknown {
            // no listing came back: "0 snapshots" would be a claim about the data
            lines.push(Line::from(Span::styled("snapshots    not read", t.header)));
            lines.push(Line::from(Span::styled(
                format!("  {}", s.reason.as_deref().unwrap_or("a host could not be read")),
                t.warn,
            )));
        } else {
            lines.extend(snap_lines(app, "source", &s.source_snapshots, cp, 4));
            lines.extend(snap_lines(app, "destination", &s.destination_snapshots, cp, 4));
            if !s.children.is_empty() {
                lines.push(Line::from(Span::styled(
                    format!("tree ({} below)", s.children.len()),
                    t.header,
                )));
                for c in s.children.iter().take(8) {
                    let style = match c.state {
                        StateKind::Synchronized => t.base,
                        StateKind::Uninitialized => t.warn,
                        StateKind::Inconsistent | StateKind::Unknown => t.crit,
                    };
                    lines.push(Line::from(vec![
                        Span::styled(format!("  {:<13} ", c.state), style),
                        Span::styled(
                            format!("{:>7}  ", c.lag_secs.map(secs).unwrap_or_else(|| "-".into())),
                            t.dim,
                        ),
                        Span::styled(c.destination.clone(), t.base),
                    ]));
                }
                if s.children.len() > 8 {
                    lines.push(Line::from(Span::styled(
                        format!("  and {} more (status --json lists them)", s.children.len() - 8),
                        t.dim,
                    )));
                }
            }
            let record = app.run(i).and_then(|r| r.retention.as_ref());
            lines.extend(retention_lines(app, p.options.keep, s, record));
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(Span::styled("log", t.header)));
    // the newest log lines that fit, one screen line each
    let inner_w = area.width.saturating_sub(4) as usize;
    let room = (area.height as usize).saturating_sub(2 + lines.len()).max(1);
    match app.log_tail.get(&fp) {
        Some(tail) if !tail.is_empty() => {
            for l in &tail[tail.len().saturating_sub(room)..] {
                // drop the date: the time is enough in a tail
                let short = l.get(11..).unwrap_or(l);
                lines.push(Line::from(Span::styled(format!("  {}", fit(short, inner_w)), t.dim)));
            }
        }
        Some(_) => lines.push(Line::from(Span::styled("  (empty)", t.dim))),
        None => lines.push(Line::from(Span::styled("  …", t.dim))),
    }
    let para = Paragraph::new(lines)
        .block(pane(app, format!("Detail {}", app.dest_name(i))))
        .wrap(Wrap { trim: false });
    f.render_widget(para, area);
}
