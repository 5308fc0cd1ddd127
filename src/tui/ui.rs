//! Painting: the screen layout (the formatting helpers are in `format`). Each area is drawn by one
//! component in `view`, all reading the same `App`.

use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::app::{App, View};
use super::view;

/// The whole screen.
pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    f.render_widget(Block::default().style(app.theme.base), area);
    let running = app.running();
    let transfers_h = if running.is_empty() || area.height < 20 { 0 } else { 9 };
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(5),
            Constraint::Length(transfers_h),
            Constraint::Length(1),
        ])
        .split(area);
    header(f, app, rows[0]);
    match app.view {
        View::Pairs => {
            if app.detail && rows[1].width >= 100 {
                let cols = Layout::default()
                    .direction(Direction::Horizontal)
                    .constraints([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .split(rows[1]);
                view::pairs::draw(f, app, cols[0]);
                view::detail::draw(f, app, cols[1]);
            } else if app.detail {
                let parts = Layout::default()
                    .direction(Direction::Vertical)
                    .constraints([Constraint::Percentage(45), Constraint::Percentage(55)])
                    .split(rows[1]);
                view::pairs::draw(f, app, parts[0]);
                view::detail::draw(f, app, parts[1]);
            } else {
                view::pairs::draw(f, app, rows[1]);
            }
        }
        View::Hosts => view::hosts::draw(f, app, rows[1]),
        View::Clusters => view::clusters::draw(f, app, rows[1]),
    }
    if transfers_h > 0 {
        view::transfers::draw(f, app, rows[2], &running);
    }
    view::statusbar::draw(f, app, rows[3]);
    if app.help {
        view::help::draw(f, app, area);
    }
    if app.dialog.is_some() {
        view::dialog::draw(f, app, area);
    }
}

fn header(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let tab = |name: &str, v: View| {
        if app.view == v {
            Span::styled(format!(" {name} "), t.selected)
        } else {
            Span::styled(format!(" {name} "), t.dim)
        }
    };
    let n = app.config.pairs.len();
    let c = app.counts;
    let (sync, bad, locked, running) = (c.synchronized, c.attention, c.locked, c.running);
    let mut spans = vec![
        Span::styled(" ferry ", t.title),
        tab("Pairs", View::Pairs),
        tab("Hosts", View::Hosts),
        tab("Clusters", View::Clusters),
        Span::raw("  "),
        Span::styled(format!("{n} pairs: "), t.base),
        Span::styled(format!("{sync} synchronized"), t.ok),
    ];
    if running > 0 {
        spans.push(Span::styled(format!(", {running} running"), t.running));
    }
    if locked > 0 {
        spans.push(Span::styled(format!(", {locked} locked"), t.crit));
    }
    if bad > 0 {
        spans.push(Span::styled(format!(", {bad} need attention"), t.crit));
    }
    if app.refreshing {
        spans.push(Span::styled("  reading hosts…", t.dim));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}
