//! The pairs table: every pair with state, lag, flags, status, runtime and current rate, coloured
//! by threshold. Only the visible rows are built, so ten thousand pairs cost what a screenful does.

use crate::model::StateKind;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use crate::engine::types::RunState;
use crate::monitor::Level;

use super::super::app::App;
use super::super::format::{level_style, rate, secs};
use super::{fit_tails_distinct, pane};

pub fn draw(f: &mut Frame, app: &mut App, area: Rect) {
    app.table_area = area;
    let visible = area.height.saturating_sub(3) as usize;
    app.page = visible.max(1);
    // keep the selection on screen after a resize
    if app.selected >= app.offset + app.page {
        app.offset = app.selected + 1 - app.page;
    }
    if app.selected < app.offset {
        app.offset = app.selected;
    }
    let t = app.theme.clone();
    let title = if app.filtering || !app.filter.is_empty() {
        format!(
            "Pairs {}/{}  filter: {}{}",
            app.order.len(),
            app.config.pairs.len(),
            app.filter,
            if app.filtering { "▏" } else { "" }
        )
    } else {
        format!(
            "Pairs {}  sort: {}{}",
            app.config.pairs.len(),
            app.sort.word(),
            if app.reverse { " ↑" } else { "" }
        )
    };
    let block = pane(app, title);
    if app.order.is_empty() {
        let msg = if app.config.pairs.is_empty() {
            "no pairs in the config"
        } else {
            "no pair matches the filter"
        };
        f.render_widget(Paragraph::new(Span::styled(msg, t.dim)).block(block), area);
        return;
    }
    let wide = area.width >= 110;
    // fixed columns: state 13, lag 7, flags 5, status 12, runtime 7, one space between; a wide
    // screen adds kind 6 and rate 12
    let fixed = 13 + 7 + 5 + 12 + 7 + 6 + if wide { 7 + 13 } else { 0 };
    let avail = (area.width as usize).saturating_sub(2 + fixed).max(10);
    let src_w = avail / 2;
    let dst_w = avail - src_w;
    let shown: Vec<usize> = app.order.iter().skip(app.offset).take(visible).copied().collect();
    let sources = fit_tails_distinct(
        &shown
            .iter()
            .map(|&i| app.pair(i).source.to_string())
            .collect::<Vec<_>>(),
        src_w,
    );
    let dests = fit_tails_distinct(&shown.iter().map(|&i| app.dest_name(i)).collect::<Vec<_>>(), dst_w);
    let mut rows = Vec::with_capacity(visible);
    for (row_no, (pos, &i)) in app.order.iter().enumerate().skip(app.offset).take(visible).enumerate() {
        let st = app.statuses[i].as_ref();
        let run = app.run(i);
        let (state, state_style) = match st {
            Some(s) => {
                let l = match s.state {
                    StateKind::Synchronized => Level::Ok,
                    StateKind::Uninitialized => Level::Warning,
                    StateKind::Unknown => Level::Unknown,
                    StateKind::Inconsistent => Level::Critical,
                };
                (s.state.word().to_string(), level_style(&app.theme, l))
            }
            None => ("…".to_string(), t.dim),
        };
        let lag = app.lag_now(i).map(secs).unwrap_or_else(|| "-".into());
        let lag_style = match (st, app.lag_level_now(i)) {
            (Some(_), Some(l)) => level_style(&app.theme, l),
            (Some(s), None) => level_style(&app.theme, s.lag_level),
            (None, _) => t.dim,
        };
        let flags = st.map(|s| s.flags.clone()).unwrap_or_else(|| "---".into());
        let (status, status_style, runtime) = match run {
            Some(r) => {
                let style = match r.status {
                    RunState::Idle => t.base,
                    RunState::Running | RunState::Initializing => t.running,
                    RunState::Locked => t.crit,
                };
                let rt = r.runtime_secs.map(secs).unwrap_or_default();
                (r.status.word().to_string(), style, rt)
            }
            None => ("…".into(), t.dim, String::new()),
        };
        let run_style = st.map(|s| level_style(&app.theme, s.run_level)).unwrap_or(t.dim);
        let cur = run
            .and_then(|r| r.progress.as_ref())
            .map(|p| rate(p.rate))
            .unwrap_or_default();
        // the selected row is one colour: threshold colours on the highlight would not read
        let sel = pos == app.selected;
        let styled = |text: String, style| {
            if sel {
                Span::raw(text)
            } else {
                Span::styled(text, style)
            }
        };
        let mut cells = vec![Cell::from(sources[row_no].clone()), Cell::from(dests[row_no].clone())];
        if wide {
            cells.push(Cell::from(app.pair(i).kind.word()));
        }
        cells.extend([
            Cell::from(styled(state, state_style)),
            Cell::from(styled(lag, lag_style)),
            Cell::from(flags),
            Cell::from(styled(status, status_style)),
            Cell::from(styled(runtime, run_style)),
        ]);
        if wide {
            cells.push(Cell::from(styled(cur, t.running)));
        }
        let row = Row::new(cells).style(if pos == app.selected { t.selected } else { t.base });
        rows.push(row);
    }
    let mut widths = vec![Constraint::Length(src_w as u16), Constraint::Length(dst_w as u16)];
    let mut header = vec!["SOURCE", "DESTINATION"];
    if wide {
        // the longest kind word ("object")
        widths.push(Constraint::Length(6));
        header.push("KIND");
    }
    widths.extend([
        Constraint::Length(13),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(12),
        Constraint::Length(7),
    ]);
    header.extend(["STATE", "LAG", "FLAGS", "STATUS", "RUNTIME"]);
    if wide {
        widths.push(Constraint::Length(12));
        header.push("RATE");
    }
    let header = Row::new(
        header
            .into_iter()
            .map(|h| Cell::from(Line::from(Span::styled(h, t.header)))),
    );
    let table = Table::new(rows, widths).header(header).block(block).column_spacing(1);
    f.render_widget(table, area);
}
