//! Clusters: per `[[cluster]]`, who works it, its journal (depth, pending, failed), the last
//! cycle, and per volume its role, objects, pending and failed changes and lag, live from the
//! persist path (`cluster status` reads the same).

use std::time::Duration;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::config::units::{format_bytes, format_duration};

use super::super::app::App;
use super::pane;

pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    let mut lines = Vec::new();
    if app.config.clusters.is_empty() {
        lines.push(Line::from(Span::styled("no [[cluster]] in the config", t.dim)));
    }
    for c in &app.config.clusters {
        let st = app.clusters.iter().find(|s| s.name == c.name);
        let worker = match st.and_then(|s| s.worker.clone()) {
            Some(w) => Span::styled(format!("  worked by {w}"), t.ok),
            None => Span::styled("  not running (`ferry cluster run`)", t.warn),
        };
        lines.push(Line::from(vec![
            Span::styled(c.name.clone(), t.header),
            worker,
            Span::styled(
                format!(
                    "  settle {}  poll {}",
                    format_duration(c.settle),
                    format_duration(c.poll)
                ),
                t.dim,
            ),
        ]));
        if let Some(s) = st {
            let failed = if s.failed > 0 { t.crit } else { t.base };
            let mut spans = vec![
                Span::styled(format!("  journal {} unfinished", s.depth), t.base),
                Span::styled(format!(", {} pending", s.pending), t.base),
                Span::styled(format!(", {} failed", s.failed), failed),
                Span::styled(format!(", {}", format_bytes(s.journal_bytes)), t.dim),
            ];
            if let (Some(fig), Some(age)) = (&s.figures, s.last_cycle_age_secs) {
                spans.push(Span::styled(
                    format!(
                        "   last cycle {} ago; {} journaled, {} applied",
                        format_duration(Duration::from_secs(age)),
                        fig.journaled,
                        fig.applied
                    ),
                    t.dim,
                ));
            }
            lines.push(Line::from(spans));
        } else {
            lines.push(Line::from(Span::styled(
                format!("  persist_path {} not read yet", c.persist_path.display()),
                t.dim,
            )));
        }
        for v in &c.volumes {
            let at = v.at.to_string();
            let vs = st.and_then(|s| s.volumes.iter().find(|x| x.at == at));
            let role = match (v.listen, v.update) {
                (true, true) => "listen+update",
                (true, false) => "listen",
                (false, true) => "update",
                (false, false) => "-",
            };
            let mut spans = vec![
                Span::styled(format!("    {at:<28}"), t.base),
                Span::styled(format!(" {:<6}", v.kind.word()), t.dim),
                Span::styled(format!(" {role:<13}"), t.base),
            ];
            if let Some(x) = vs {
                let lag = if x.lag_secs > 0 { t.warn } else { t.ok };
                spans.push(Span::styled(
                    format!(
                        " {:>7} obj",
                        x.objects.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
                    ),
                    t.base,
                ));
                spans.push(Span::styled(format!("  {} pending", x.pending), t.base));
                spans.push(Span::styled(
                    format!("  {} failed", x.failed),
                    if x.failed > 0 { t.crit } else { t.base },
                ));
                spans.push(Span::styled(
                    format!("  lag {}", format_duration(Duration::from_secs(x.lag_secs))),
                    lag,
                ));
                if let Some(e) = &x.error {
                    spans.push(Span::styled(format!("  {e}"), t.crit));
                }
            }
            lines.push(Line::from(spans));
        }
        lines.push(Line::raw(""));
    }
    f.render_widget(Paragraph::new(lines).block(pane(app, "Clusters")), area);
}
