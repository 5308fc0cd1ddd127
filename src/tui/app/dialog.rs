//! The console's dialogs and what a key does in each: every confirmation carries the typed
//! `Command` it runs (gitui's confirm popup), never a string to interpret later.

use crossterm::event::{KeyCode, KeyEvent};

use super::{App, Command};
use crate::model::JobAction;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dialog {
    /// Shows what will happen; `y` runs `on_yes`.
    Confirm {
        title: String,
        body: Vec<String>,
        on_yes: Command,
    },
    /// Dangerous: the operator types `expected` (the destination's name) to run `on_ok`.
    TypeToConfirm {
        title: String,
        body: Vec<String>,
        expected: String,
        typed: String,
        on_ok: Command,
    },
    /// Purge's dry run: `y` purges old snapshots, `A` moves to removing the whole replica.
    Purge {
        dest: String,
        text: Option<String>,
    },
    Info {
        title: String,
        body: Vec<String>,
    },
}

impl App {
    pub(super) fn dialog_key(&mut self, d: Dialog, k: KeyEvent) -> Vec<Command> {
        let esc = k.code == KeyCode::Esc;
        match d {
            Dialog::Info { .. } => Vec::new(),
            Dialog::Confirm { on_yes, .. } if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) => {
                vec![on_yes]
            }
            Dialog::Confirm { .. } => Vec::new(),
            Dialog::Purge { dest, text } => match k.code {
                KeyCode::Char('y') | KeyCode::Char('Y') if text.is_some() => {
                    vec![Command::Launch {
                        action: JobAction::Purge,
                        dest,
                    }]
                }
                KeyCode::Char('A') => {
                    self.dialog = Some(Dialog::TypeToConfirm {
                        title: format!("Remove the whole replica {dest}?"),
                        body: vec![
                            format!("This destroys the destination replica {dest} and all its snapshots,"),
                            "and the pair's markers, so it must be initialized again (a full transfer).".into(),
                            "The source is not touched.".into(),
                            format!("Type the destination's name ({dest}) and press enter:"),
                        ],
                        expected: dest.clone(),
                        typed: String::new(),
                        on_ok: Command::Launch {
                            action: JobAction::PurgeAll,
                            dest,
                        },
                    });
                    Vec::new()
                }
                _ if esc || matches!(k.code, KeyCode::Char('n')) => Vec::new(),
                _ => {
                    self.dialog = Some(Dialog::Purge { dest, text });
                    Vec::new()
                }
            },
            Dialog::TypeToConfirm {
                title,
                body,
                expected,
                mut typed,
                on_ok,
            } => {
                match k.code {
                    KeyCode::Esc => return Vec::new(),
                    KeyCode::Enter if typed == expected => return vec![on_ok],
                    KeyCode::Enter => self.say("the name does not match: nothing done"),
                    KeyCode::Backspace => {
                        typed.pop();
                    }
                    KeyCode::Char(c) => typed.push(c),
                    _ => {}
                }
                if k.code != KeyCode::Enter {
                    self.dialog = Some(Dialog::TypeToConfirm {
                        title,
                        body,
                        expected,
                        typed,
                        on_ok,
                    });
                }
                Vec::new()
            }
        }
    }
}
