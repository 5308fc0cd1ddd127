//! Keeping the console in step with its config file: a changed file makes the view stale (no job
//! starts from it), F5 reads it again, and the operator is told what changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Config;

use super::{App, Command, Dialog};
use crate::tui::event::Loaded;

/// What changed between two configs, in one line: pairs added, removed and changed (by
/// fingerprint; changed = same ends, other options), hosts changed.
pub fn diff(old: &Config, new: &Config) -> String {
    let pairs = |c: &Config| -> BTreeMap<String, (String, String)> {
        c.pairs
            .iter()
            .map(|p| {
                let name = if p.destination.is_local() {
                    p.destination.path.clone()
                } else {
                    p.destination.to_string()
                };
                (
                    p.fingerprint(),
                    (name, format!("{:?}{:?}{:?}{:?}", p.kind, p.options, p.port, p.adopt)),
                )
            })
            .collect()
    };
    let (a, b) = (pairs(old), pairs(new));
    let added: Vec<&str> = b
        .iter()
        .filter(|(k, _)| !a.contains_key(*k))
        .map(|(_, v)| v.0.as_str())
        .collect();
    let removed: Vec<&str> = a
        .iter()
        .filter(|(k, _)| !b.contains_key(*k))
        .map(|(_, v)| v.0.as_str())
        .collect();
    let changed: Vec<&str> = b
        .iter()
        .filter(|(k, v)| a.get(*k).is_some_and(|o| o.1 != v.1))
        .map(|(_, v)| v.0.as_str())
        .collect();
    let hosts = |c: &Config| format!("{:?}", c.hosts);
    let mut parts = Vec::new();
    for (n, what, names) in [
        (added.len(), "added", &added),
        (removed.len(), "removed", &removed),
        (changed.len(), "changed", &changed),
    ] {
        if n > 0 {
            let shown: Vec<&str> = names.iter().take(3).copied().collect();
            let more = if n > 3 {
                format!(" and {} more", n - 3)
            } else {
                String::new()
            };
            parts.push(format!("{n} pair(s) {what} ({}{more})", shown.join(", ")));
        }
    }
    if hosts(old) != hosts(new) {
        parts.push("hosts changed".into());
    }
    if parts.is_empty() {
        "no pair or host changed".into()
    } else {
        parts.join("; ")
    }
}

impl App {
    /// The file on disk is not what the console shows.
    pub(super) fn config_changed(&mut self) {
        if !self.stale {
            self.stale = true;
            self.say("the config file changed: F5 reads it again (no job starts until then)");
        }
    }

    /// F5's answer: the new config replaces the old (statuses are read again for it), or its
    /// errors are shown and the old one stays.
    pub(super) fn config_reloaded(&mut self, r: Result<Loaded, String>) -> Vec<Command> {
        match r {
            Ok(loaded) => {
                // the collectors start again for it: a status read is on its way
                let summary = diff(&self.config, &loaded.config);
                self.install(loaded.config.clone());
                self.say(format!("config read again: {summary}"));
                vec![Command::UseConfig(loaded)]
            }
            Err(e) => {
                self.refreshing = false;
                self.dialog = Some(Dialog::Info {
                    title: "the config has errors: the console keeps the one it had".into(),
                    body: e.lines().map(String::from).collect(),
                });
                Vec::new()
            }
        }
    }

    fn install(&mut self, config: Arc<Config>) {
        let keep = self.selected_index().map(|i| self.pair(i).fingerprint());
        let n = config.pairs.len();
        self.config = config;
        self.statuses = vec![None; n];
        self.runs = vec![None; n];
        self.stale = false;
        self.selected = 0;
        self.offset = 0;
        self.reorder();
        // the same pair stays selected when it is still there
        if let Some(fp) = keep {
            if let Some(pos) = self.order.iter().position(|&i| self.pair(i).fingerprint() == fp) {
                self.selected = pos;
            }
        }
        self.recount();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::parse(std::path::Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn diff_names_what_changed() {
        let a = config("[[pair]]\nsource = \"tank/a\"\ndestination = \"b/a\"\n[[pair]]\nsource = \"tank/b\"\ndestination = \"b/b\"\n");
        let b = config("[[pair]]\nsource = \"tank/a\"\ndestination = \"b/a\"\nkeep = 9\n[[pair]]\nsource = \"tank/c\"\ndestination = \"b/c\"\n");
        assert_eq!(
            diff(&a, &b),
            "1 pair(s) added (b/c); 1 pair(s) removed (b/b); 1 pair(s) changed (b/a)"
        );
        assert_eq!(diff(&a, &a), "no pair or host changed");
    }
}
