//! Hosts: each configured host with reachability, SSH round trip and pools, and this machine's
//! CPU, memory, network and disk figures.

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use crate::config::units::format_bytes;

use super::super::app::App;
use super::super::format::rate;
use super::{fit, pane};

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let parts = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Min(4), Constraint::Length(4)])
        .split(area);
    let mut rows = Vec::new();
    if app.hosts.is_empty() {
        rows.push(Row::new(vec![Cell::from(Span::styled("reading hosts…", t.dim))]));
    }
    for h in &app.hosts {
        let (state, style) = match (&h.error, h.rtt) {
            (Some(_), _) => ("unreachable", t.crit),
            (None, Some(_)) => ("reachable", t.ok),
            (None, None) => ("…", t.dim),
        };
        let rtt = h
            .rtt
            .map(|d| format!("{} ms", d.as_millis()))
            .unwrap_or_else(|| "-".into());
        let room = (area.width as usize).saturating_sub(2 + 14 + 22 + 12 + 9 + 4);
        let pools = if let Some(e) = &h.error {
            fit(e, room)
        } else {
            // the pools the pairs use, then how many others there are
            let shown = if h.used_pools == 0 { h.pools.len() } else { h.used_pools };
            let mut all: Vec<String> = h
                .pools
                .iter()
                .take(shown)
                .map(|p| format!("{} {}/{} {}", p.name, p.allocated, p.size, p.health))
                .collect();
            if h.pools.len() > shown {
                all.push(format!("+{} more", h.pools.len() - shown));
            }
            fit(&all.join(", "), room)
        };
        rows.push(Row::new(vec![
            Cell::from(h.name.clone()),
            Cell::from(h.address.clone()),
            Cell::from(Span::styled(state, style)),
            Cell::from(rtt),
            Cell::from(Span::styled(pools, if h.error.is_some() { t.crit } else { t.base })),
        ]));
    }
    let header =
        Row::new(["HOST", "ADDRESS", "STATE", "SSH RTT", "POOLS"].map(|h| Cell::from(Span::styled(h, t.header))));
    let widths = [
        Constraint::Length(14),
        Constraint::Length(22),
        Constraint::Length(12),
        Constraint::Length(9),
        Constraint::Min(10),
    ];
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(pane(app, "Hosts"))
            .style(t.base),
        parts[0],
    );

    let lines = match &app.system {
        Some(s) => vec![
            Line::from(vec![
                Span::styled("cpu ", t.dim),
                Span::styled(format!("{:>5.1}%", s.cpu_percent), t.base),
                Span::styled("   memory ", t.dim),
                Span::styled(
                    format!("{} of {}", format_bytes(s.mem_used), format_bytes(s.mem_total)),
                    t.base,
                ),
            ]),
            Line::from(vec![
                Span::styled("net  ", t.dim),
                Span::styled(format!("rx {}  tx {}", rate(s.net_rx), rate(s.net_tx)), t.base),
                Span::styled("   disk ", t.dim),
                Span::styled(
                    format!("read {}  write {}", rate(s.disk_read), rate(s.disk_write)),
                    t.base,
                ),
            ]),
        ],
        None => vec![Line::from(Span::styled("reading…", t.dim))],
    };
    f.render_widget(Paragraph::new(lines).block(pane(app, "This machine")), parts[1]);
}
