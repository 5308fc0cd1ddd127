//! How the console writes figures and levels: durations, rates, and the style of a level in the
//! theme. Shared by the views and the app, below both (it knows neither).

use std::time::Duration;

use ratatui::style::Style;

use crate::config::units::{format_bytes, format_duration};
use crate::monitor::Level;

use super::theme::Theme;

pub fn secs(s: u64) -> String {
    format_duration(Duration::from_secs(s))
}

pub fn rate(bps: f64) -> String {
    format!("{}/s", format_bytes(bps.max(0.0) as u64))
}

pub fn level_style(theme: &Theme, l: Level) -> Style {
    match l {
        Level::Ok => theme.ok,
        Level::Warning => theme.warn,
        Level::Critical => theme.crit,
        Level::Unknown => theme.warn,
    }
}
