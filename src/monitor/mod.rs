//! Monitoring: lag and runtime thresholds, status flags, and Nagios plugin output.

pub mod metrics;
pub mod nagios;
pub mod nsca;

use std::time::Duration;

use serde::Serialize;

/// How bad a figure is against its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Level {
    /// Nagios plugin exit code.
    pub fn exit_code(self) -> i32 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Critical => 2,
            Level::Unknown => 3,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }

    /// Worse of two, where Unknown ranks between Warning and Critical as Nagios's own tools do
    /// for summaries: a critical pair must not hide behind an unreachable one.
    pub fn worst(self, other: Level) -> Level {
        let rank = |l: Level| match l {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Unknown => 2,
            Level::Critical => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// A figure against warning and critical thresholds (strictly greater crosses).
pub fn level(value: Duration, warn: Duration, crit: Duration) -> Level {
    if value > crit {
        Level::Critical
    } else if value > warn {
        Level::Warning
    } else {
        Level::Ok
    }
}

/// zettabee's flag characters: `+` over the warning threshold, `!` over the critical one.
pub fn flag(l: Level) -> char {
    match l {
        Level::Warning => '+',
        Level::Critical => '!',
        _ => '-',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let (w, c) = (Duration::from_secs(60), Duration::from_secs(120));
        assert_eq!(level(Duration::from_secs(60), w, c), Level::Ok);
        assert_eq!(level(Duration::from_secs(61), w, c), Level::Warning);
        assert_eq!(level(Duration::from_secs(121), w, c), Level::Critical);
        assert_eq!(flag(Level::Warning), '+');
        assert_eq!(Level::Ok.worst(Level::Unknown).worst(Level::Critical), Level::Critical);
        assert_eq!(Level::Warning.worst(Level::Ok), Level::Warning);
    }
}
