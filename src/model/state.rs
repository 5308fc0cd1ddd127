//! A pair's replication state as both sides show it, with the checkpoint when there is one.

/// Where the next update starts: the newest of the pair's snapshots both sides hold (with the
/// source's creation time). Other kinds keep other things under the same name (a manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub name: String,
    /// Unix seconds.
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// The destination holds the checkpoint with our fingerprint.
    Synchronized(Checkpoint),
    /// No destination yet.
    Uninitialized,
    /// Fingerprint mismatch or checkpoint missing on either side; the reason says which.
    Inconsistent(String),
    /// A side could not be read (host unreachable, command failed).
    Unknown(String),
}

/// Which of the four states, without what it carries: what status, the console, metrics and
/// Nagios branch on. Serialised as its word (`"Synchronized"`, …), as the JSON contract has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StateKind {
    Synchronized,
    Uninitialized,
    Inconsistent,
    /// Nothing read yet counts as not known.
    #[default]
    Unknown,
}

impl StateKind {
    /// Every state, in the order metrics list them.
    pub const ALL: [StateKind; 4] = [
        StateKind::Synchronized,
        StateKind::Uninitialized,
        StateKind::Inconsistent,
        StateKind::Unknown,
    ];

    pub fn word(self) -> &'static str {
        match self {
            StateKind::Synchronized => "Synchronized",
            StateKind::Uninitialized => "Uninitialized",
            StateKind::Inconsistent => "Inconsistent",
            StateKind::Unknown => "Unknown",
        }
    }

    /// A pair needing an operator's look (Inconsistent or Unknown).
    pub fn needs_attention(self) -> bool {
        matches!(self, StateKind::Inconsistent | StateKind::Unknown)
    }
}

impl std::str::FromStr for StateKind {
    type Err = String;

    /// The word as serialised (`"Synchronized"`, …).
    fn from_str(s: &str) -> Result<StateKind, String> {
        StateKind::ALL
            .into_iter()
            .find(|k| k.word() == s)
            .ok_or_else(|| format!("not a state: {s:?}"))
    }
}

impl std::fmt::Display for StateKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.word())
    }
}

impl State {
    pub fn kind(&self) -> StateKind {
        match self {
            State::Synchronized(_) => StateKind::Synchronized,
            State::Uninitialized => StateKind::Uninitialized,
            State::Inconsistent(_) => StateKind::Inconsistent,
            State::Unknown(_) => StateKind::Unknown,
        }
    }

    pub fn word(&self) -> &'static str {
        self.kind().word()
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            State::Inconsistent(r) | State::Unknown(r) => Some(r),
            _ => None,
        }
    }

    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        match self {
            State::Synchronized(c) => Some(c),
            _ => None,
        }
    }
}
