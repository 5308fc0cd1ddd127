//! Key bindings: defaults, overridden by the config's `[console.keys]`.

use std::collections::{BTreeMap, HashMap};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does in the console (named in the model, which the config validates against).
pub use crate::model::ConsoleAction as Act;

/// (action, default key, help text), in the order the help screen lists them.
pub const TABLE: &[(Act, &str, &str)] = &[
    (Act::Up, "up", "move up (also k)"),
    (Act::Down, "down", "move down (also j)"),
    (Act::PageUp, "pageup", "page up"),
    (Act::PageDown, "pagedown", "page down"),
    (Act::Top, "home", "first pair (also g)"),
    (Act::Bottom, "end", "last pair (also G)"),
    (Act::Detail, "enter", "open / close the pair's detail"),
    (Act::Back, "esc", "close detail, dialog, filter"),
    (Act::Filter, "/", "filter pairs by text"),
    (Act::Sort, "s", "next sort column"),
    (Act::Reverse, "r", "reverse the sort"),
    (Act::NextView, "tab", "next view: pairs, hosts, clusters"),
    (Act::Theme, "t", "next theme"),
    (Act::Refresh, "f5", "re-read status from the hosts now"),
    (Act::Setup, "S", "setup the selected pair"),
    (Act::Initialize, "I", "initialize the selected pair"),
    (Act::Update, "u", "update the selected pair"),
    (Act::Unlock, "L", "unlock the selected pair (asks first)"),
    (Act::Purge, "P", "purge old snapshots (asks first)"),
    (Act::Logfile, "l", "show the log's path and tail"),
    (Act::Fingerprint, "f", "show the fingerprint"),
    (Act::Help, "?", "this help"),
    (Act::Quit, "q", "quit (jobs keep running)"),
];

/// One key with its modifiers, comparable to what crossterm reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub fn from_event(e: &KeyEvent) -> Key {
        // shift is part of the character for letters and symbols
        let mods = match e.code {
            KeyCode::Char(_) => e.modifiers - KeyModifiers::SHIFT,
            _ => e.modifiers,
        };
        Key { code: e.code, mods }
    }

    /// "u", "ctrl-r", "f5", "enter" (validated by the config already).
    pub fn parse(spec: &str) -> Option<Key> {
        let (mods, base) = if let Some(b) = spec.strip_prefix("ctrl-") {
            (KeyModifiers::CONTROL, b)
        } else if let Some(b) = spec.strip_prefix("alt-") {
            (KeyModifiers::ALT, b)
        } else if let Some(b) = spec.strip_prefix("shift-") {
            (KeyModifiers::SHIFT, b)
        } else {
            (KeyModifiers::NONE, spec)
        };
        let code = match base {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "space" => KeyCode::Char(' '),
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            "delete" => KeyCode::Delete,
            "backspace" => KeyCode::Backspace,
            "insert" => KeyCode::Insert,
            _ if base.chars().count() == 1 => {
                let c = base.chars().next()?;
                let mods = if mods == KeyModifiers::SHIFT {
                    KeyModifiers::NONE
                } else {
                    mods
                };
                let c = if spec.starts_with("shift-") {
                    c.to_ascii_uppercase()
                } else {
                    c
                };
                return Some(Key {
                    code: KeyCode::Char(c),
                    mods,
                });
            }
            _ => KeyCode::F(base.strip_prefix('f')?.parse().ok()?),
        };
        Some(Key { code, mods })
    }

    pub fn label(&self) -> String {
        let m = if self.mods.contains(KeyModifiers::CONTROL) {
            "ctrl-"
        } else if self.mods.contains(KeyModifiers::ALT) {
            "alt-"
        } else {
            ""
        };
        let k = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "enter".into(),
            KeyCode::Esc => "esc".into(),
            KeyCode::Tab => "tab".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::PageUp => "pgup".into(),
            KeyCode::PageDown => "pgdn".into(),
            KeyCode::Home => "home".into(),
            KeyCode::End => "end".into(),
            KeyCode::F(n) => format!("f{n}"),
            other => format!("{other:?}").to_lowercase(),
        };
        format!("{m}{k}")
    }
}

#[derive(Debug, Clone)]
pub struct KeyMap {
    by_key: HashMap<Key, Act>,
    by_act: HashMap<Act, Key>,
}

impl KeyMap {
    /// Defaults with the config's overrides (already validated by the config layer).
    pub fn new(overrides: &BTreeMap<String, String>) -> KeyMap {
        let mut by_act = HashMap::new();
        for (act, default, _) in TABLE {
            let spec = overrides.get(act.word()).map(String::as_str).unwrap_or(default);
            if let Some(k) = Key::parse(spec) {
                by_act.insert(*act, k);
            }
        }
        let mut by_key: HashMap<Key, Act> = by_act.iter().map(|(a, k)| (*k, *a)).collect();
        // vi-style and ctrl-c aliases, unless the operator bound those keys to something else
        for (c, act) in [('k', Act::Up), ('j', Act::Down), ('g', Act::Top), ('G', Act::Bottom)] {
            by_key
                .entry(Key {
                    code: KeyCode::Char(c),
                    mods: KeyModifiers::NONE,
                })
                .or_insert(act);
        }
        by_key
            .entry(Key {
                code: KeyCode::Char('c'),
                mods: KeyModifiers::CONTROL,
            })
            .or_insert(Act::Quit);
        KeyMap { by_key, by_act }
    }

    pub fn act(&self, e: &KeyEvent) -> Option<Act> {
        self.by_key.get(&Key::from_event(e)).copied()
    }

    /// The key label for an action, for the status bar and help.
    pub fn label(&self, act: Act) -> String {
        self.by_act.get(&act).map(Key::label).unwrap_or_else(|| "-".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let mut o = BTreeMap::new();
        o.insert("update".to_string(), "ctrl-u".to_string());
        let m = KeyMap::new(&o);
        let ev = |code, mods| KeyEvent::new(code, mods);
        assert_eq!(m.act(&ev(KeyCode::Char('u'), KeyModifiers::CONTROL)), Some(Act::Update));
        assert_eq!(m.act(&ev(KeyCode::Char('u'), KeyModifiers::NONE)), None);
        assert_eq!(
            m.act(&ev(KeyCode::Char('I'), KeyModifiers::SHIFT)),
            Some(Act::Initialize)
        );
        assert_eq!(m.act(&ev(KeyCode::Char('j'), KeyModifiers::NONE)), Some(Act::Down));
        assert_eq!(m.act(&ev(KeyCode::F(5), KeyModifiers::NONE)), Some(Act::Refresh));
        assert_eq!(m.label(Act::Update), "ctrl-u");
        assert_eq!(m.label(Act::Help), "?");
    }
}
