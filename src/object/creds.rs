//! S3 credentials from an AWS shared-credentials file or AWS_* environment; never printed.

use std::fmt;
use std::path::{Path, PathBuf};

/// Errors reading credentials; they name the file, line or variable, never a secret.
/// Most bytes a credentials file may hold (a few profiles are a few hundred bytes).
const CREDS_CAP: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    #[error("credentials file {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("credentials file {path}: profile [{profile}] not found")]
    NoProfile { path: PathBuf, profile: String },
    #[error("credentials file {path} profile [{profile}]: {key} missing")]
    Missing {
        path: PathBuf,
        profile: String,
        key: &'static str,
    },
    #[error("credentials file {path} line {line}: not `key = value` or `[profile]`")]
    Syntax { path: PathBuf, line: usize },
    #[error("environment: {0} is not set")]
    Env(&'static str),
}

/// An access key pair (and optional session token). `Debug` redacts the secret and token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    pub fn new(access_key_id: &str, secret_access_key: &str) -> Credentials {
        Credentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key: secret_access_key.to_string(),
            session_token: None,
        }
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret_access_key
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }

    /// Why the secret in `path` is exposed to other users, if it is (readable by its group or by
    /// everyone): `check` shows it naming the host, a job logs it.
    pub fn exposure(path: &Path) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        (mode & 0o044 != 0).then(|| {
            format!(
                "credentials file {} is readable by {} (mode {:o}): chmod 600 it",
                path.display(),
                if mode & 0o004 != 0 { "every user" } else { "its group" },
                mode & 0o7777
            )
        })
    }

    /// Reads `profile` (default `default`) of an AWS shared-credentials file (INI).
    pub fn from_file(path: &Path, profile: Option<&str>) -> Result<Credentials, CredsError> {
        let profile = profile.unwrap_or("default");
        // read as the config is: a regular file, capped, never blocking on a FIFO
        let io = |err| CredsError::Io { path: path.into(), err };
        let bytes = crate::safe_file::read_regular(path, CREDS_CAP).map_err(|e| match e {
            crate::safe_file::FileError::Io(err) => io(err),
            other => io(std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string())),
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| io(std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8")))?;
        let (mut found, mut inside) = (false, false);
        let (mut id, mut secret, mut token) = (None, None, None);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = name.trim() == profile;
                found |= inside;
                continue;
            }
            let (k, v) = line.split_once('=').ok_or(CredsError::Syntax {
                path: path.into(),
                line: i + 1,
            })?;
            if !inside {
                continue;
            }
            let v = Some(v.trim().to_string());
            match k.trim() {
                "aws_access_key_id" => id = v,
                "aws_secret_access_key" => secret = v,
                "aws_session_token" => token = v,
                _ => {}
            }
        }
        let missing = |key| CredsError::Missing {
            path: path.into(),
            profile: profile.into(),
            key,
        };
        if !found {
            return Err(CredsError::NoProfile {
                path: path.into(),
                profile: profile.into(),
            });
        }
        Ok(Credentials {
            access_key_id: id.ok_or_else(|| missing("aws_access_key_id"))?,
            secret_access_key: secret.ok_or_else(|| missing("aws_secret_access_key"))?,
            session_token: token,
        })
    }

    /// Reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optional AWS_SESSION_TOKEN.
    pub fn from_env() -> Result<Credentials, CredsError> {
        let var = |name| std::env::var(name).map_err(|_| CredsError::Env(name));
        Ok(Credentials {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
        })
    }

    /// The file's profile when a file is given, else the environment.
    pub fn load(file: Option<&Path>, profile: Option<&str>) -> Result<Credentials, CredsError> {
        match file {
            Some(path) => Credentials::from_file(path, profile),
            None => Credentials::from_env(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_profiles_and_redaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred");
        let text = "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = s3cr3t-def\n\n\
                    [site-b]\naws_access_key_id=AKIDB\naws_secret_access_key=s3cr3t-b\naws_session_token=tok-b\n";
        std::fs::write(&path, text).unwrap();
        let d = Credentials::from_file(&path, None).unwrap();
        assert_eq!((d.access_key_id.as_str(), d.secret()), ("AKIDDEF", "s3cr3t-def"));
        let b = Credentials::from_file(&path, Some("site-b")).unwrap();
        assert_eq!((b.secret(), b.token()), ("s3cr3t-b", Some("tok-b")));
        let shown = format!("{d:?} {b:?} {b:#?}");
        assert!(!shown.contains("s3cr3t") && !shown.contains("tok-b"), "{shown}");
        assert!(shown.contains("AKIDB"), "the key id is not secret: {shown}");
        let err = Credentials::from_file(&path, Some("nope")).unwrap_err().to_string();
        assert!(err.contains("[nope]") && err.contains("cred"), "{err}");
        std::fs::write(&path, "[default]\naws_access_key_id = X\n").unwrap();
        let err = Credentials::from_file(&path, None).unwrap_err().to_string();
        assert!(err.contains("aws_secret_access_key missing"), "{err}");
        std::fs::write(&path, "[default]\nthis is not ini\n").unwrap();
        let err = Credentials::from_file(&path, None).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_fifo_is_refused_at_once_and_open_modes_are_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("creds");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Credentials::from_file(&f, None).map(|_| ()).map_err(|e| e.to_string()));
        });
        let err = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("reading a FIFO hung")
            .expect_err("a FIFO is not a credentials file");
        assert!(err.contains("FIFO") && err.contains(&*fifo.to_string_lossy()), "{err}");

        let file = dir.path().join("c");
        std::fs::write(&file, "[default]\naws_access_key_id = a\naws_secret_access_key = b\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = Credentials::exposure(&file).expect("0644 is exposed");
        assert!(w.contains(&*file.to_string_lossy()) && w.contains("every user"), "{w}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(Credentials::exposure(&file).unwrap().contains("its group"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Credentials::exposure(&file), None);
        Credentials::from_file(&file, None).unwrap();
    }
}
