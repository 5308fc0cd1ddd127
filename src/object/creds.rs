//! S3 credentials from an AWS shared-credentials file or AWS_* environment; never printed.

use std::fmt;
use std::path::{Path, PathBuf};

/// Errors reading credentials; they name the file, line or variable, never a secret.
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

    /// Reads `profile` (default `default`) of an AWS shared-credentials file (INI).
    pub fn from_file(path: &Path, profile: Option<&str>) -> Result<Credentials, CredsError> {
        let profile = profile.unwrap_or("default");
        let text = std::fs::read_to_string(path).map_err(|err| CredsError::Io { path: path.into(), err })?;
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
}
