//! The phases a job goes through, as the progress file, `runstatus` and the console name them.

/// What a job is doing. The progress file keeps `word()`, so a file from another ferry version
/// with a word this one does not know still reads (its phase is then shown as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    /// Reading both sides (and probing the source where the cache has no answer).
    Inspecting,
    Snapshot,
    Transfer,
    Finishing,
    /// Destroying snapshots or a replica (purge).
    Destroying,
    Done,
    Failed,
}

impl Phase {
    pub const ALL: &'static [Phase] = &[
        Phase::Connecting,
        Phase::Inspecting,
        Phase::Snapshot,
        Phase::Transfer,
        Phase::Finishing,
        Phase::Destroying,
        Phase::Done,
        Phase::Failed,
    ];

    pub fn word(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::Inspecting => "connecting and inspecting",
            Phase::Snapshot => "snapshot",
            Phase::Transfer => "transfer",
            Phase::Finishing => "finishing",
            Phase::Destroying => "destroying",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }

    pub fn from_word(word: &str) -> Option<Phase> {
        Self::ALL.iter().copied().find(|p| p.word() == word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for p in Phase::ALL {
            assert_eq!(Phase::from_word(p.word()), Some(*p));
        }
        assert_eq!(Phase::from_word("transfer: full send"), None);
    }
}
