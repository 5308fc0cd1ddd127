//! The per-pair log: timestamped lines appended by every job of the pair.
//! Commands are logged as built; they carry names, never secrets (keys stay in files ferry opens).

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct PairLog {
    path: PathBuf,
    /// Echo lines to stderr as well (-v).
    pub echo: bool,
}

impl PairLog {
    pub fn new(path: &Path, echo: bool) -> Self {
        PairLog {
            path: path.to_path_buf(),
            echo,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line; a log that cannot be written never stops replication.
    pub fn line(&self, msg: &str) {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        // one line per entry whatever the message holds: remote error text may carry newlines or escapes
        let text = format!("{stamp} [{}] {}\n", std::process::id(), crate::text::one_line(msg));
        if self.echo {
            eprint!("{text}");
        }
        // never through a planted symlink, never blocking on a planted FIFO
        if let Ok(mut f) = super::files::open_append(&self.path) {
            let _ = f.write_all(text.as_bytes());
        }
    }
}
