//! When the console draws (yazi's NEED_RENDER): only after an event changed something visible,
//! or when the clock alone moved what is shown (a lag, the status bar's message going away).

use crate::monitor::Level;

use super::App;

/// How long a message stays in the status bar.
pub const FLASH: std::time::Duration = std::time::Duration::from_secs(6);

/// What a tick can change on screen without any new data: each pair's lag as shown (text and
/// level) and whether the status bar's message is still up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Clock {
    lags: Vec<(Option<String>, Option<Level>)>,
    flash: bool,
}

impl App {
    /// Takes note that something visible changed; the next `take_render` draws.
    pub(super) fn touch(&mut self) {
        self.dirty = true;
    }

    /// The message for the status bar while it is still up.
    pub fn flash_text(&self) -> Option<&str> {
        self.flash
            .as_ref()
            .filter(|(_, at)| at.elapsed() < FLASH)
            .map(|(m, _)| m.as_str())
    }

    fn clock(&self) -> Clock {
        Clock {
            lags: (0..self.statuses.len())
                .map(|i| (self.lag_now(i).map(crate::tui::format::secs), self.lag_level_now(i)))
                .collect(),
            flash: self.flash_text().is_some(),
        }
    }

    /// Whether a frame is due, and if so, notes that it is drawn now. A tick that moves nothing
    /// visible and data equal to what is shown draw nothing.
    pub fn take_render(&mut self) -> bool {
        let clock = self.clock();
        if !self.dirty && clock == self.drawn_clock {
            return false;
        }
        self.dirty = false;
        self.drawn_clock = clock;
        true
    }
}
