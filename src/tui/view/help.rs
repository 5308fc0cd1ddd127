//! The full list of keys (`?`).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::super::app::App;
use super::super::keys::TABLE;
use super::{centered, pane};

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let mut lines: Vec<Line> = TABLE
        .iter()
        .map(|(act, _, help)| {
            Line::from(vec![
                Span::styled(format!(" {:>8}  ", app.keys.label(*act)), t.accent),
                Span::styled(*help, t.base),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::from(Span::styled(
        " mouse: click selects, wheel scrolls; ctrl-z suspends",
        t.dim,
    )));
    lines.push(Line::from(Span::styled(" any key closes this help", t.dim)));
    let r = centered(area, 64, lines.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(pane(app, "Keys")).style(t.base), r);
}
