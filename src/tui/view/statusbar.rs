//! The bottom line: the main keys, or the latest message.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::super::app::App;
use super::super::keys::Act;

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    if let Some(msg) = app.flash_text() {
        f.render_widget(Paragraph::new(Span::styled(format!(" {msg}"), t.accent)), area);
        return;
    }
    let mut spans = Vec::new();
    let keys = [
        (Act::Update, "update"),
        (Act::Initialize, "init"),
        (Act::Setup, "setup"),
        (Act::Unlock, "unlock"),
        (Act::Purge, "purge"),
        (Act::Detail, "detail"),
        (Act::Filter, "filter"),
        (Act::Sort, "sort"),
        (Act::NextView, "view"),
        (Act::Help, "help"),
        (Act::Quit, "quit"),
    ];
    for (act, word) in keys {
        spans.push(Span::styled(format!(" {} ", app.keys.label(act)), t.selected));
        spans.push(Span::styled(format!(" {word} "), t.dim));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}
