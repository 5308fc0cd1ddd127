//! Live transfers: one pane per running job, whoever started it, with bytes, rates, ETA and the
//! rate history of the last minutes. Figures are the job's own (progress.json), as runstatus shows.

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Sparkline};
use ratatui::Frame;

use crate::config::units::format_bytes;

use super::super::app::App;
use super::super::format::{rate, secs};
use super::{fit, pane};

/// At most this many panes side by side; more jobs are summarized in the last one's title.
const MAX_PANES: usize = 4;

pub fn draw(f: &mut Frame, app: &App, area: Rect, running: &[usize]) {
    let shown = &running[..running.len().min(MAX_PANES)];
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints(
            shown
                .iter()
                .map(|_| Constraint::Ratio(1, shown.len() as u32))
                .collect::<Vec<_>>(),
        )
        .split(area);
    for (n, (&i, col)) in shown.iter().zip(cols.iter()).enumerate() {
        let extra = if n + 1 == shown.len() && running.len() > shown.len() {
            format!(" (+{} more)", running.len() - shown.len())
        } else {
            String::new()
        };
        pane_for(f, app, i, *col, &extra);
    }
}

fn pane_for(f: &mut Frame, app: &App, i: usize, area: Rect, extra: &str) {
    let t = &app.theme;
    let Some(p) = app.run(i).and_then(|r| r.progress.as_ref()) else {
        return;
    };
    let title = format!("{} {}{extra}", p.action, app.dest_name(i));
    let block = pane(app, fit(&title, area.width.saturating_sub(4) as usize));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(1),
        ])
        .split(inner);
    let size = match (p.read.zip(p.read_total), p.expected) {
        // a block source is read whole; what changed goes on the wire
        (Some((r, total)), _) => format!(
            "read {} of {}, sent {}",
            format_bytes(r),
            format_bytes(total),
            format_bytes(p.bytes)
        ),
        (None, Some(e)) => format!("{} of {}", format_bytes(p.bytes), format_bytes(e)),
        (None, None) => format!("{} (size unknown)", format_bytes(p.bytes)),
    };
    let size = match p.objects_line() {
        Some(o) => format!("{size}, {o}"),
        None => size,
    };
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(size, t.base),
            Span::styled(format!("  {}", p.phase), t.dim),
        ])),
        rows[0],
    );
    let eta = p.eta_secs.map(|e| format!("  ETA {}", secs(e))).unwrap_or_default();
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(format!("{} now", rate(p.rate)), t.running),
            Span::styled(format!("  {} avg", rate(p.avg_rate)), t.base),
            Span::styled(eta, t.accent),
            Span::styled(format!("  {}", secs(p.elapsed_secs as u64)), t.dim),
        ])),
        rows[1],
    );
    match p.fraction() {
        Some(frac) => f.render_widget(Gauge::default().gauge_style(t.running).ratio(frac), rows[2]),
        None => f.render_widget(
            Paragraph::new(Span::styled("no size estimate on this host", t.dim)),
            rows[2],
        ),
    }
    // the newest seconds at the right edge; headroom above the peak so a steady rate is a line,
    // not a wall
    let width = rows[3].width as usize;
    let recent: Vec<u64> = p.history.iter().rev().take(width).rev().map(|v| *v as u64).collect();
    let mut hist = vec![0u64; width - recent.len()];
    hist.extend(&recent);
    let peak = recent.iter().copied().max().unwrap_or(0);
    f.render_widget(
        Sparkline::default()
            .data(&hist)
            .max(peak + peak / 3 + 1)
            .style(t.sparkline),
        rows[3],
    );
}
