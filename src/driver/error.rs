//! What went wrong in a driver's command, as a case the engine can act on (in zrepl's manner:
//! the driver reads its tool's messages once, the engine matches variants, never error text).

/// A driver command's failure. Each case keeps the tool's own words, which is what it displays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The volume or snapshot is not there.
    #[error("{0}")]
    DoesNotExist(String),
    /// In use right now (a sender still exiting, a clone, a mount); may go away on a retry.
    #[error("{0}")]
    Busy(String),
    /// Kept on purpose (a user hold); does not go away by retrying.
    #[error("{0}")]
    Held(String),
    /// The destination was changed since the checkpoint, so an incremental receive refuses.
    #[error("{0}")]
    Modified(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}
