//! A host that answers commands from a table instead of running them, for the engine's unit
//! tests where a real host would make a test slow: each command is matched by the first answer
//! whose pattern it contains, and every command asked is kept for the test to check. Commands
//! that cross a process or the network are tested against real hosts (tests/it/); this is for
//! the engine's own decisions.

use std::sync::Mutex;

use super::{BoxRead, BoxWrite, Finished, Process};

/// One canned answer: a command containing `pattern` exits `code` with this output.
#[derive(Debug, Clone)]
pub struct Answer {
    pub pattern: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A fake host: its name, its answers in order, and what it was asked.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub name: String,
    answers: Vec<Answer>,
    asked: Mutex<Vec<String>>,
}

impl FakeHost {
    pub fn new(name: &str) -> FakeHost {
        FakeHost {
            name: name.to_string(),
            ..FakeHost::default()
        }
    }

    /// Commands containing `pattern` succeed with `stdout`.
    pub fn answers(mut self, pattern: &str, stdout: &str) -> FakeHost {
        self.answers.push(Answer {
            pattern: pattern.to_string(),
            code: 0,
            stdout: stdout.to_string(),
            stderr: String::new(),
        });
        self
    }

    /// Commands containing `pattern` exit `code`, saying `stderr`.
    pub fn fails(mut self, pattern: &str, code: i32, stderr: &str) -> FakeHost {
        self.answers.push(Answer {
            pattern: pattern.to_string(),
            code,
            stdout: String::new(),
            stderr: stderr.to_string(),
        });
        self
    }

    /// Every command asked so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    /// A command with no answer exits 127, as a shell does for a command it cannot find.
    pub(super) fn spawn(&self, script: &str) -> Process {
        self.asked.lock().unwrap().push(script.to_string());
        let a = self
            .answers
            .iter()
            .find(|a| script.contains(&a.pattern))
            .cloned()
            .unwrap_or(Answer {
                pattern: String::new(),
                code: 127,
                stdout: String::new(),
                stderr: format!("fake host {}: no answer for `{script}`", self.name),
            });
        let stdout: BoxRead = Box::new(std::io::Cursor::new(a.stdout.into_bytes()));
        let stdin: BoxWrite = Box::new(tokio::io::sink());
        let (code, stderr) = (a.code, a.stderr);
        Process::new(
            Some(stdin),
            Some(stdout),
            Box::pin(async move {
                Ok(Finished {
                    code: Some(code),
                    stderr,
                })
            }),
        )
    }
}
