//! The name files beside a manifest: which ferry checkpoint a manifest is (`ferry.<fp>.<time>`),
//! when it was made, and the manifest's id, so a listing can name it without reading manifests
//! and a name is never believed for a manifest it does not belong to.

use std::path::Path;

use anyhow::{anyhow, Context, Result};

/// One name file: `<name> <created unix seconds> <manifest id hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub created: i64,
    pub id: [u8; 32],
}

impl Named {
    pub fn new(name: &str, id: [u8; 32]) -> Named {
        Named {
            name: name.to_string(),
            created: chrono::Utc::now().timestamp(),
            id,
        }
    }

    /// Reads a name file; `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<Named>> {
        let text = match crate::safe_file::read_regular(path, 4096) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(crate::safe_file::FileError::Missing) => return Ok(None),
            Err(e) => return Err(anyhow!("{}: {e}", path.display())),
        };
        let mut it = text.split_whitespace();
        let bad = || anyhow!("{}: not a ferry checkpoint name file", path.display());
        let name = it.next().ok_or_else(bad)?.to_string();
        let created = it.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
        let id = it.next().and_then(|h| hex::decode(h).ok()).ok_or_else(bad)?;
        let id: [u8; 32] = id.try_into().map_err(|_| bad())?;
        Ok(Some(Named { name, created, id }))
    }

    /// Writes it durably through the state layer's safe writer: a new temp file of random name
    /// (never through a planted link), synced, renamed over the old one, the directory synced.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = format!("{} {} {}\n", self.name, self.created, hex::encode(self.id));
        crate::state::files::write_atomic(path, text.as_bytes(), true)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Moves `from` (a name file and its manifest, `<stem>.name` / `<stem>.manifest`) over `to`'s,
/// manifest first: a crash between leaves a name that no longer matches its manifest's id,
/// which readers check.
pub fn promote(dir: &Path, from: &str, to: &str) -> Result<()> {
    for ext in ["manifest", "name"] {
        let (a, b) = (dir.join(format!("{from}.{ext}")), dir.join(format!("{to}.{ext}")));
        if a.exists() {
            std::fs::rename(&a, &b).with_context(|| format!("renaming {} to {}", a.display(), b.display()))?;
        }
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}
