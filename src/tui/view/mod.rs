//! The console's components, one per area of the screen; each draws from the shared `App`.

pub mod clusters;
pub mod detail;
pub mod dialog;
pub mod help;
pub mod hosts;
pub mod pairs;
pub mod statusbar;
pub mod transfers;

use ratatui::layout::Rect;
use ratatui::widgets::{Block, BorderType, Borders};

use super::app::App;

/// A rectangle of at most `w` x `h` centred in `area`.
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// The bordered box every pane uses.
pub fn pane<'a>(app: &App, title: impl Into<String>) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(app.theme.border)
        .title(ratatui::text::Span::styled(
            format!(" {} ", title.into()),
            app.theme.title,
        ))
}

/// Cuts `s` to `w` characters, marking the cut with an ellipsis.
pub fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else if w == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(w - 1).collect();
        t.push('…');
        t
    }
}

/// Cuts `s` to `w` characters keeping its end (a dataset's own name), marking the cut in front.
pub fn fit_tail(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        s.to_string()
    } else if w == 0 {
        String::new()
    } else {
        let mut t = String::from("…");
        t.extend(s.chars().skip(n - (w - 1)));
        t
    }
}
