//! The pairs table: sort keys, the order filter and sort give the rows, and the selection kept
//! on screen.

use super::App;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Destination,
    Source,
    State,
    Lag,
    Status,
    Rate,
}

impl SortKey {
    pub fn next(self) -> SortKey {
        use SortKey::*;
        match self {
            Destination => Source,
            Source => State,
            State => Lag,
            Lag => Status,
            Status => Rate,
            Rate => Destination,
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            SortKey::Destination => "destination",
            SortKey::Source => "source",
            SortKey::State => "state",
            SortKey::Lag => "lag",
            SortKey::Status => "status",
            SortKey::Rate => "rate",
        }
    }
}

impl App {
    /// Recomputes the display order after the filter, sort or data changed; keeps the selection
    /// on the same pair where it can.
    pub fn reorder(&mut self) {
        let keep = self.selected_index();
        let needle = self.filter.to_lowercase();
        let mut order: Vec<usize> = (0..self.config.pairs.len())
            .filter(|&i| {
                if needle.is_empty() {
                    return true;
                }
                let p = self.pair(i);
                let state = self.statuses[i]
                    .as_ref()
                    .map(|s| s.state.word().to_lowercase())
                    .unwrap_or_default();
                p.source.to_string().to_lowercase().contains(&needle)
                    || p.destination.to_string().to_lowercase().contains(&needle)
                    || state.contains(&needle)
            })
            .collect();
        let lag = |i: usize| self.lag_now(i).unwrap_or(u64::MAX);
        let state = |i: usize| self.statuses[i].as_ref().map(|s| s.level as u8).unwrap_or(9);
        let status = |i: usize| self.run(i).map(|r| r.status as u8).unwrap_or(0);
        let rate = |i: usize| {
            self.run(i)
                .and_then(|r| r.progress.as_ref())
                .map(|p| p.rate as u64)
                .unwrap_or(0)
        };
        match self.sort {
            SortKey::Destination => order.sort_by_cached_key(|&i| self.pair(i).destination.to_string()),
            SortKey::Source => order.sort_by_cached_key(|&i| self.pair(i).source.to_string()),
            SortKey::State => order.sort_by_key(|&i| std::cmp::Reverse(state(i))),
            SortKey::Lag => order.sort_by_key(|&i| std::cmp::Reverse(lag(i))),
            SortKey::Status => order.sort_by_key(|&i| std::cmp::Reverse(status(i))),
            SortKey::Rate => order.sort_by_key(|&i| std::cmp::Reverse(rate(i))),
        }
        if self.reverse {
            order.reverse();
        }
        self.order = order;
        self.selected = keep.and_then(|k| self.order.iter().position(|&i| i == k)).unwrap_or(0);
        self.clamp();
    }

    pub(super) fn clamp(&mut self) {
        if self.order.is_empty() {
            self.selected = 0;
            self.offset = 0;
            return;
        }
        self.selected = self.selected.min(self.order.len() - 1);
        let page = self.page.max(1);
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + page {
            self.offset = self.selected + 1 - page;
        }
    }

    pub(super) fn move_by(&mut self, delta: isize) {
        let max = self.order.len().saturating_sub(1) as isize;
        self.selected = (self.selected as isize + delta).clamp(0, max) as usize;
        self.clamp();
    }
}
