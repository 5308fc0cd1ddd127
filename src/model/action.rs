//! The actions ferry names in more than one place, typed once: the jobs the console launches as
//! detached `ferry` processes, and the console actions `[console.keys]` may rebind.

/// A job on one pair that the console starts as a detached `ferry ACTION DEST ARGS` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobAction {
    Setup,
    Initialize,
    Update,
    Unlock,
    /// `purge --yes`: this pair's snapshots beyond `keep`.
    Purge,
    /// `purge --all --yes`: the whole replica, so the pair starts over.
    PurgeAll,
    /// `retry`: an object pair's FAILED changes made due now, then a pass.
    Retry,
}

impl JobAction {
    pub const ALL: [JobAction; 7] = [
        JobAction::Setup,
        JobAction::Initialize,
        JobAction::Update,
        JobAction::Unlock,
        JobAction::Purge,
        JobAction::PurgeAll,
        JobAction::Retry,
    ];

    /// The CLI action that runs it.
    pub fn word(self) -> &'static str {
        match self {
            JobAction::Setup => "setup",
            JobAction::Initialize => "initialize",
            JobAction::Update => "update",
            JobAction::Unlock => "unlock",
            JobAction::Purge | JobAction::PurgeAll => "purge",
            JobAction::Retry => "retry",
        }
    }

    /// How locks, progress, logs and results name it: the word, `purge --all` for the whole replica.
    pub fn label(self) -> &'static str {
        match self {
            JobAction::PurgeAll => "purge --all",
            other => other.word(),
        }
    }

    /// The action a lock or progress file names (`label`); `None` for a word no job uses.
    pub fn from_label(label: &str) -> Option<JobAction> {
        Self::ALL.into_iter().find(|a| a.label() == label)
    }

    /// Whether a good run of it moves the checkpoint (its success is the pair's last success).
    pub fn moves_checkpoint(self) -> bool {
        matches!(self, JobAction::Initialize | JobAction::Update | JobAction::Retry)
    }

    /// The arguments after DEST (the console asked already, so `--yes`).
    pub fn args(self) -> &'static [&'static str] {
        match self {
            JobAction::Purge => &["--yes"],
            JobAction::PurgeAll => &["--all", "--yes"],
            _ => &[],
        }
    }

    /// Its log lines are what the operator wants to see when it ends (run with `-v`).
    pub fn echoes_log(self) -> bool {
        matches!(
            self,
            JobAction::Setup | JobAction::Unlock | JobAction::Purge | JobAction::PurgeAll
        )
    }
}

/// What a key does in the console; the config's `[console.keys]` names them by `word`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsoleAction {
    Quit,
    Help,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Detail,
    Back,
    Filter,
    Sort,
    Reverse,
    NextView,
    Theme,
    Refresh,
    Setup,
    Initialize,
    Update,
    Unlock,
    Purge,
    Logfile,
    Fingerprint,
}

impl ConsoleAction {
    /// Every console action, in the order an error message lists them.
    pub const ALL: &'static [ConsoleAction] = &[
        ConsoleAction::Quit,
        ConsoleAction::Help,
        ConsoleAction::Up,
        ConsoleAction::Down,
        ConsoleAction::PageUp,
        ConsoleAction::PageDown,
        ConsoleAction::Top,
        ConsoleAction::Bottom,
        ConsoleAction::Detail,
        ConsoleAction::Back,
        ConsoleAction::Filter,
        ConsoleAction::Sort,
        ConsoleAction::Reverse,
        ConsoleAction::NextView,
        ConsoleAction::Theme,
        ConsoleAction::Refresh,
        ConsoleAction::Setup,
        ConsoleAction::Initialize,
        ConsoleAction::Update,
        ConsoleAction::Unlock,
        ConsoleAction::Purge,
        ConsoleAction::Logfile,
        ConsoleAction::Fingerprint,
    ];

    /// Its name in `[console.keys]`.
    pub fn word(self) -> &'static str {
        match self {
            ConsoleAction::Quit => "quit",
            ConsoleAction::Help => "help",
            ConsoleAction::Up => "up",
            ConsoleAction::Down => "down",
            ConsoleAction::PageUp => "page_up",
            ConsoleAction::PageDown => "page_down",
            ConsoleAction::Top => "top",
            ConsoleAction::Bottom => "bottom",
            ConsoleAction::Detail => "detail",
            ConsoleAction::Back => "back",
            ConsoleAction::Filter => "filter",
            ConsoleAction::Sort => "sort",
            ConsoleAction::Reverse => "reverse",
            ConsoleAction::NextView => "next_view",
            ConsoleAction::Theme => "theme",
            ConsoleAction::Refresh => "refresh",
            ConsoleAction::Setup => "setup",
            ConsoleAction::Initialize => "initialize",
            ConsoleAction::Update => "update",
            ConsoleAction::Unlock => "unlock",
            ConsoleAction::Purge => "purge",
            ConsoleAction::Logfile => "logfile",
            ConsoleAction::Fingerprint => "fingerprint",
        }
    }

    pub fn from_word(word: &str) -> Option<ConsoleAction> {
        Self::ALL.iter().copied().find(|a| a.word() == word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_words_round_trip() {
        for a in ConsoleAction::ALL {
            assert_eq!(ConsoleAction::from_word(a.word()), Some(*a));
        }
        assert_eq!(ConsoleAction::from_word("launch"), None);
    }

    #[test]
    fn jobs_name_their_command_line() {
        assert_eq!(JobAction::PurgeAll.word(), "purge");
        assert_eq!(JobAction::PurgeAll.args(), ["--all", "--yes"]);
        assert!(JobAction::Update.args().is_empty() && !JobAction::Update.echoes_log());
    }
}
