//! Console themes: TOML files (built-ins from `themes/` compiled in, or a path), and a monochrome
//! theme when `NO_COLOR` is set.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// Built-in themes, in the order the theme key cycles through them.
pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("high-contrast", include_str!("../../themes/high-contrast.toml")),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTheme {
    fg: String,
    bg: String,
    dim: String,
    accent: String,
    title: String,
    ok: String,
    warn: String,
    crit: String,
    running: String,
    selected_fg: String,
    selected_bg: String,
    header: String,
    border: String,
    sparkline: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub base: Style,
    pub dim: Style,
    pub accent: Style,
    pub title: Style,
    pub ok: Style,
    pub warn: Style,
    pub crit: Style,
    pub running: Style,
    pub selected: Style,
    pub header: Style,
    pub border: Style,
    pub sparkline: Style,
}

fn color(name: &str) -> Result<Color> {
    if let Some(hex) = name.strip_prefix('#') {
        if hex.len() == 6 {
            let v = u32::from_str_radix(hex, 16).map_err(|_| anyhow!("bad colour {name:?}"))?;
            return Ok(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
        }
    }
    Ok(match name.to_ascii_lowercase().as_str() {
        "reset" | "default" => Color::Reset,
        "black" => Color::Black,
        "red" => Color::Red,
        "green" => Color::Green,
        "yellow" => Color::Yellow,
        "blue" => Color::Blue,
        "magenta" => Color::Magenta,
        "cyan" => Color::Cyan,
        "gray" | "grey" => Color::Gray,
        "darkgray" | "darkgrey" => Color::DarkGray,
        "lightred" => Color::LightRed,
        "lightgreen" => Color::LightGreen,
        "lightyellow" => Color::LightYellow,
        "lightblue" => Color::LightBlue,
        "lightmagenta" => Color::LightMagenta,
        "lightcyan" => Color::LightCyan,
        "white" => Color::White,
        _ => return Err(anyhow!("unknown colour {name:?} (a colour name or #rrggbb)")),
    })
}

impl Theme {
    /// Parses theme TOML; `name` is used in messages.
    pub fn parse(name: &str, text: &str) -> Result<Theme> {
        let r: RawTheme = toml::from_str(text).map_err(|e| anyhow!("theme {name}: {}", e.message()))?;
        let fg =
            |c: &str| -> Result<Style> { Ok(Style::default().fg(color(c).with_context(|| format!("theme {name}"))?)) };
        let bg = color(&r.bg)?;
        Ok(Theme {
            name: name.to_string(),
            base: fg(&r.fg)?.bg(bg),
            dim: fg(&r.dim)?,
            accent: fg(&r.accent)?,
            title: fg(&r.title)?.add_modifier(Modifier::BOLD),
            ok: fg(&r.ok)?,
            warn: fg(&r.warn)?,
            crit: fg(&r.crit)?.add_modifier(Modifier::BOLD),
            running: fg(&r.running)?,
            selected: Style::default()
                .fg(color(&r.selected_fg)?)
                .bg(color(&r.selected_bg)?)
                .add_modifier(Modifier::BOLD),
            header: fg(&r.header)?.add_modifier(Modifier::BOLD),
            border: fg(&r.border)?,
            sparkline: fg(&r.sparkline)?,
        })
    }

    /// No colour at all (NO_COLOR): emphasis by bold, reverse and dim only.
    pub fn monochrome() -> Theme {
        let plain = Style::default();
        Theme {
            name: "no-color".into(),
            base: plain,
            dim: plain.add_modifier(Modifier::DIM),
            accent: plain.add_modifier(Modifier::BOLD),
            title: plain.add_modifier(Modifier::BOLD),
            ok: plain,
            warn: plain.add_modifier(Modifier::BOLD),
            crit: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            running: plain.add_modifier(Modifier::BOLD),
            selected: plain.add_modifier(Modifier::REVERSED),
            header: plain.add_modifier(Modifier::BOLD),
            border: plain,
            sparkline: plain,
        }
    }

    pub fn builtin(name: &str) -> Option<Theme> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, t)| Theme::parse(n, t).expect("built-in themes parse"))
    }

    /// The config's choice: a built-in name or a TOML file; `NO_COLOR` wins over both.
    pub fn load(choice: Option<&str>) -> Result<Theme> {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            return Ok(Theme::monochrome());
        }
        let choice = choice.unwrap_or("dark");
        if let Some(t) = Theme::builtin(choice) {
            return Ok(t);
        }
        let path = Path::new(choice);
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("theme {choice:?} is neither a built-in theme (dark, light, high-contrast) nor a readable file")
        })?;
        Theme::parse(choice, &text)
    }

    /// The next built-in theme after this one (the theme key).
    pub fn next(&self) -> Theme {
        let i = BUILTIN
            .iter()
            .position(|(n, _)| *n == self.name)
            .map(|i| i + 1)
            .unwrap_or(0);
        Theme::builtin(BUILTIN[i % BUILTIN.len()].0).expect("built-in")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_cycle() {
        let d = Theme::builtin("dark").unwrap();
        assert_eq!(d.next().name, "light");
        assert_eq!(d.next().next().name, "high-contrast");
        assert_eq!(d.next().next().next().name, "dark");
        assert_eq!(
            Theme::builtin("light").unwrap().crit.fg,
            Some(Color::Rgb(0xcf, 0x22, 0x2e))
        );
    }

    #[test]
    fn bad_theme_names_the_problem() {
        let e = Theme::parse("x", "fg = \"mauve\"").unwrap_err().to_string();
        assert!(e.contains("theme x"), "{e}");
        let e = Theme::load(Some("/nonexistent/theme.toml")).unwrap_err().to_string();
        assert!(e.contains("neither a built-in theme"), "{e}");
    }
}
