//! What a config check says when something is wrong (the file, the line, the key), and the two
//! small rules more than one part of the config reading uses: a console key's spelling and `~/`.

use std::path::PathBuf;

/// A config error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else if self.key.is_empty() {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}: key `{}`: {}",
                self.file.display(),
                self.line,
                self.key,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every error of one config file, in file order; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub(super) fn one(e: ConfigError) -> Self {
        ConfigErrors { errors: vec![e] }
    }

    /// The first error (file order).
    pub fn first(&self) -> &ConfigError {
        &self.errors[0]
    }
}

/// One error per line; more than one ends with the count.
impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.errors.len() > 1 {
            write!(f, "\n{} errors in the config", self.errors.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// "u", "U", "?", "enter", "ctrl-r", "alt-x", "f5": one key, optionally with one modifier.
pub fn check_key(spec: &str) -> Result<(), String> {
    let base = ["ctrl-", "alt-", "shift-"]
        .iter()
        .find_map(|m| spec.strip_prefix(m))
        .unwrap_or(spec);
    let named = [
        "enter",
        "esc",
        "tab",
        "backtab",
        "space",
        "up",
        "down",
        "left",
        "right",
        "home",
        "end",
        "pageup",
        "pagedown",
        "delete",
        "backspace",
        "insert",
    ];
    let ok = base.chars().count() == 1
        || named.contains(&base)
        || base
            .strip_prefix('f')
            .and_then(|n| n.parse::<u8>().ok())
            .is_some_and(|n| (1..=12).contains(&n));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{spec:?} is not a key (a character, enter, esc, tab, space, arrows, f1..f12, with ctrl-/alt-/shift-)"
        ))
    }
}

/// Expands a leading `~/` to the home directory.
pub fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = dirs::home_dir() {
            return home.join(rest);
        }
    }
    PathBuf::from(p)
}
