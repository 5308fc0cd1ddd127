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

impl State {
    pub fn word(&self) -> &'static str {
        match self {
            State::Synchronized(_) => "Synchronized",
            State::Uninitialized => "Uninitialized",
            State::Inconsistent(_) => "Inconsistent",
            State::Unknown(_) => "Unknown",
        }
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
