//! Clusters: the volumes of each `[[cluster]]` with their listen/update flags, as the config says
//! (the cluster engine comes later).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::super::app::App;
use super::pane;

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let mut lines = Vec::new();
    if app.config.clusters.is_empty() {
        lines.push(Line::from(Span::styled("no [[cluster]] in the config", t.dim)));
    }
    for c in &app.config.clusters {
        lines.push(Line::from(vec![
            Span::styled(c.name.clone(), t.header),
            Span::styled(format!("  persist_path {}", c.persist_path.display()), t.dim),
        ]));
        for v in &c.volumes {
            let flag = |on: bool, word: &str| Span::styled(format!("  {word}"), if on { t.ok } else { t.dim });
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<40}", v.at.to_string()), t.base),
                flag(v.listen, if v.listen { "listen" } else { "no-listen" }),
                flag(v.update, if v.update { "update" } else { "no-update" }),
            ]));
        }
        lines.push(Line::raw(""));
    }
    lines.push(Line::from(Span::styled(
        "the cluster engine (listen/update, persist journal) is not built yet: this view shows the config",
        t.dim,
    )));
    f.render_widget(Paragraph::new(lines).block(pane(app, "Clusters")), area);
}
