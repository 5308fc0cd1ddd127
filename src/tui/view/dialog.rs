//! Dialogs: confirmations that show exactly what an action will do before it runs.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::super::app::{App, Dialog};
use super::{centered, pane};

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let Some(d) = &app.dialog else { return };
    let (title, mut lines, hint) = match d {
        Dialog::Confirm { title, body, .. } => (
            title.clone(),
            body.clone(),
            "y: do it   any other key: cancel".to_string(),
        ),
        Dialog::Info { title, body } => (title.clone(), body.clone(), "any key closes".to_string()),
        Dialog::Purge { dest, text } => {
            let body = match text {
                None => vec!["asking ferry what purge would destroy…".to_string()],
                Some(t) => t.lines().map(String::from).collect(),
            };
            (
                format!("Purge {dest}"),
                body,
                "y: destroy the snapshots listed   A: remove the whole replica…   esc: cancel".to_string(),
            )
        }
        Dialog::TypeToConfirm { title, body, typed, .. } => {
            let mut b = body.clone();
            b.push(format!("> {typed}▏"));
            (title.clone(), b, "enter: confirm   esc: cancel".to_string())
        }
    };
    lines.push(String::new());
    let mut text: Vec<Line> = lines.into_iter().map(|l| Line::from(Span::styled(l, t.base))).collect();
    text.push(Line::from(Span::styled(hint, t.accent)));
    let w = (area.width as usize * 3 / 4).clamp(40, 100) as u16;
    let h = (text.len() as u16 + 4).min(area.height);
    let r = centered(area, w, h);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text)
            .block(pane(app, title))
            .wrap(Wrap { trim: false })
            .style(t.base),
        r,
    );
}
