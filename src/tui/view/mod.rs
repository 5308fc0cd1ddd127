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

/// `fit_tail` for a column of names, so rows stay told apart: where two names would cut to the
/// same text (`…07src/other` for `store1:tank/a07src/other` and `store2:tank/b07src/other`), each
/// keeps its start up to where it differs from the others, then `…`, then as much of its end as fits.
pub fn fit_tails_distinct(names: &[String], w: usize) -> Vec<String> {
    let cut: Vec<String> = names.iter().map(|n| fit_tail(n, w)).collect();
    let mut out = cut.clone();
    for (i, name) in names.iter().enumerate() {
        let clashes: Vec<&String> = names
            .iter()
            .enumerate()
            .filter(|(j, other)| *j != i && cut[*j] == cut[i] && *other != name)
            .map(|(_, o)| o)
            .collect();
        if clashes.is_empty() || w < 4 {
            continue;
        }
        let chars: Vec<char> = name.chars().collect();
        // the first character where this name differs from every name it clashes with
        let differs_at = clashes
            .iter()
            .map(|o| chars.iter().zip(o.chars()).take_while(|(a, b)| **a == *b).count())
            .max()
            .unwrap_or(0);
        let head = differs_at + 1;
        out[i] = if head + 2 <= w {
            let tail = w - 1 - head;
            let mut s: String = chars[..head].iter().collect();
            s.push('…');
            s.extend(&chars[chars.len() - tail..]);
            s
        } else {
            // the difference is deep in a long name: show the part around it
            let start = head - (w - 2);
            let mut s = String::from("…");
            s.extend(&chars[start..head]);
            s.push('…');
            s
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_names_stay_distinct() {
        let names: Vec<String> = [
            "store1:tank/a07src/other",
            "store2:tank/b07src/other",
            "store1:tank/web",
        ]
        .map(String::from)
        .to_vec();
        let plain: Vec<String> = names.iter().map(|n| fit_tail(n, 12)).collect();
        assert_eq!(plain[0], plain[1], "the case the column had: {plain:?}");
        let cut = fit_tails_distinct(&names, 12);
        assert_ne!(cut[0], cut[1], "{cut:?}");
        assert_eq!(cut[0], "store1…other");
        assert_eq!(cut[1], "store2…other");
        assert_eq!(cut[2], "…e1:tank/web", "names without a clash keep the plain cut");
        for c in &cut {
            assert!(c.chars().count() <= 12, "{c}");
        }
        // differing deep inside a long name
        let deep: Vec<String> = ["tank/aaaaaaaaaaaaaaaaaaaa1/x/data", "tank/aaaaaaaaaaaaaaaaaaaa2/x/data"]
            .map(String::from)
            .to_vec();
        let cut = fit_tails_distinct(&deep, 10);
        assert_ne!(cut[0], cut[1], "{cut:?}");
        assert!(cut.iter().all(|c| c.chars().count() <= 10), "{cut:?}");
        // identical names (the same source in two pairs) stay identical
        let same: Vec<String> = ["store1:tank/data/long", "store1:tank/data/long"]
            .map(String::from)
            .to_vec();
        let cut = fit_tails_distinct(&same, 8);
        assert_eq!(cut[0], cut[1]);
    }
}
