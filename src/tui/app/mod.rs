//! The console's state (the store) and what input does to it. Input never runs anything itself:
//! it returns `Command`s that the run loop hands to the background layer. The pairs table's
//! sort and filter are in `table`, the dialogs in `dialog`, when to draw in `render`.

use crate::model::StateKind;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, MouseButton, MouseEventKind};
use ratatui::layout::Rect;

use crate::config::{Config, Pair};
use crate::engine::types::{PairStatus, RunInfo, RunState};
use crate::engine::Engine;
use crate::monitor::Level;

use super::event::{Event, SystemView};
use super::keys::{Act, KeyMap};
use super::theme::Theme;
use crate::engine::hosts::HostReport;
use crate::model::JobAction;

mod dialog;
mod reload;
mod render;
mod table;

pub use dialog::Dialog;
use render::Clock;
pub use render::FLASH;
pub use table::SortKey;

/// Work for the background layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start `ferry ACTION DEST [args]` as a detached process.
    Launch {
        action: JobAction,
        dest: String,
    },
    RefreshStatus,
    /// Read the config file again (F5); the answer comes back as `Event::ConfigReloaded`.
    ReloadConfig,
    /// Collect for this config from now on (after a reload the console accepted).
    UseConfig(crate::tui::event::Loaded),
    LoadLog {
        fingerprint: String,
    },
    /// Ask the engine what `purge DEST` would destroy (a dry run), for the dialog.
    PreviewPurge {
        dest: String,
    },
    Suspend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Pairs,
    Hosts,
    Clusters,
}

pub struct App {
    pub config: Arc<Config>,
    pub state_root: std::path::PathBuf,
    pub theme: Theme,
    pub keys: KeyMap,
    pub view: View,
    /// Per config pair: last full status (None until the first read).
    pub statuses: Vec<Option<PairStatus>>,
    /// Per config pair: lock and progress from the state dir.
    pub runs: Vec<Option<RunInfo>>,
    /// Config pair indices in display order (filtered and sorted).
    pub order: Vec<usize>,
    /// Position in `order`.
    pub selected: usize,
    /// First visible row of the table.
    pub offset: usize,
    pub sort: SortKey,
    pub reverse: bool,
    pub filter: String,
    pub filtering: bool,
    pub detail: bool,
    pub help: bool,
    pub dialog: Option<Dialog>,
    pub hosts: Vec<HostReport>,
    /// What each cluster's persist path says (config order), once read.
    pub clusters: Vec<crate::engine::cluster::report::ClusterStatus>,
    pub system: Option<SystemView>,
    pub log_tail: HashMap<String, Vec<String>>,
    pub flash: Option<(String, Instant)>,
    pub last_status_at: Option<Instant>,
    /// Ticks (seconds) since the last full status: lags move with the clock between refreshes.
    pub ticks_since_status: u64,
    pub refreshing: bool,
    /// The config file changed since the console read it: jobs are refused until F5.
    pub stale: bool,
    pub quit: bool,
    /// Where the table was drawn (rows start one below the header), for mouse clicks.
    pub table_area: Rect,
    /// Rows the table showed last frame (for paging).
    pub page: usize,
    /// Header figures, counted when data arrives rather than on every frame.
    pub counts: Counts,
    /// Something visible changed since the last frame (yazi's NEED_RENDER): the run loop draws
    /// only then.
    dirty: bool,
    /// What the clock alone changes on screen, as of the last frame.
    drawn_clock: Clock,
}

/// Pairs per kind of state, for the header line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub synchronized: usize,
    pub attention: usize,
    pub locked: usize,
    pub running: usize,
}

impl App {
    pub fn new(config: Arc<Config>, state_root: std::path::PathBuf, theme: Theme) -> App {
        let n = config.pairs.len();
        let keys = KeyMap::new(&config.console.keys);
        let mut app = App {
            config,
            state_root,
            theme,
            keys,
            view: View::Pairs,
            statuses: vec![None; n],
            runs: vec![None; n],
            order: Vec::new(),
            selected: 0,
            offset: 0,
            sort: SortKey::Destination,
            reverse: false,
            filter: String::new(),
            filtering: false,
            detail: false,
            help: false,
            dialog: None,
            hosts: Vec::new(),
            clusters: Vec::new(),
            system: None,
            log_tail: HashMap::new(),
            flash: None,
            last_status_at: None,
            ticks_since_status: 0,
            refreshing: true,
            stale: false,
            quit: false,
            table_area: Rect::default(),
            page: 10,
            counts: Counts::default(),
            dirty: true,
            drawn_clock: Clock::default(),
        };
        app.reorder();
        app
    }

    pub fn pair(&self, idx: usize) -> &Pair {
        &self.config.pairs[idx]
    }

    /// The pair's lag now: the last status's lag plus the seconds since it was read, so the
    /// column moves every second and not only on the refresh.
    pub fn lag_now(&self, idx: usize) -> Option<u64> {
        let s = self.statuses.get(idx)?.as_ref()?;
        s.lag_secs.map(|l| l.saturating_add(self.ticks_since_status))
    }

    /// The level of `lag_now` against the pair's wlag/clag.
    pub fn lag_level_now(&self, idx: usize) -> Option<Level> {
        let o = &self.pair(idx).options;
        self.lag_now(idx)
            .map(|l| crate::monitor::level(std::time::Duration::from_secs(l), o.wlag, o.clag))
    }

    pub fn selected_index(&self) -> Option<usize> {
        self.order.get(self.selected).copied()
    }

    pub fn dest_name(&self, idx: usize) -> String {
        Engine::dest_name(self.pair(idx))
    }

    /// The run info to show: the fast poll's if any, else the one that came with the status.
    pub fn run(&self, idx: usize) -> Option<&RunInfo> {
        self.runs[idx]
            .as_ref()
            .or_else(|| self.statuses[idx].as_ref().map(|s| &s.run))
    }

    /// Indices of pairs with a job running now, in config order.
    pub fn running(&self) -> Vec<usize> {
        (0..self.runs.len())
            .filter(|&i| {
                self.run(i).is_some_and(|r| {
                    matches!(r.status, RunState::Running | RunState::Initializing) && r.progress.is_some()
                })
            })
            .collect()
    }

    fn recount(&mut self) {
        let mut c = Counts::default();
        for s in self.statuses.iter().flatten() {
            if s.state == StateKind::Synchronized {
                c.synchronized += 1;
            } else if s.state.needs_attention() {
                c.attention += 1;
            }
        }
        c.locked = (0..self.runs.len())
            .filter(|&i| self.run(i).is_some_and(|r| r.status == RunState::Locked))
            .count();
        c.running = self.running().len();
        self.counts = c;
    }

    fn say(&mut self, msg: impl Into<String>) {
        self.flash = Some((msg.into(), Instant::now()));
    }

    /// Applies one event; returns the work it asks for.
    pub fn handle(&mut self, ev: Event) -> Vec<Command> {
        // a tick changes only what the clock moves (take_render compares that); runs that read
        // the same as before change nothing; every other event may change what is shown
        match &ev {
            Event::Tick => {}
            Event::Runs(list) if list.iter().map(Some).eq(self.runs.iter().map(Option::as_ref)) => {}
            _ => self.touch(),
        }
        match ev {
            Event::Input(t) => return self.input(t),
            // a read for the config the console had before a reload belongs to other pairs
            Event::Status(list) if list.len() != self.config.pairs.len() => {}
            Event::Runs(list) if list.len() != self.config.pairs.len() => {}
            Event::Status(list) => {
                for (i, s) in list.into_iter().enumerate().take(self.statuses.len()) {
                    self.statuses[i] = Some(s);
                }
                self.last_status_at = Some(Instant::now());
                self.ticks_since_status = 0;
                self.refreshing = false;
                self.recount();
                self.reorder();
            }
            Event::Runs(list) => {
                let before = self.running();
                for (i, r) in list.into_iter().enumerate().take(self.runs.len()) {
                    self.runs[i] = Some(r);
                }
                // a job ended: its pair's state changed on the hosts, so read them again
                let after = self.running();
                self.recount();
                let ended = before.iter().any(|i| after.binary_search(i).is_err());
                if self.sort == SortKey::Status || self.sort == SortKey::Rate {
                    self.reorder();
                }
                if ended {
                    return vec![Command::RefreshStatus];
                }
            }
            // the open detail's log follows a running job
            Event::Tick => {
                self.ticks_since_status += 1;
                if let (true, Some(i)) = (self.detail, self.selected_index()) {
                    if self.running().contains(&i) {
                        return vec![Command::LoadLog {
                            fingerprint: self.pair(i).fingerprint(),
                        }];
                    }
                }
            }
            Event::Hosts(h) => self.hosts = h,
            Event::Clusters(c) => self.clusters = c,
            Event::ConfigChanged => self.config_changed(),
            Event::ConfigUnchanged => {
                if std::mem::take(&mut self.stale) {
                    self.say("the config file is as the console read it again");
                }
            }
            Event::ConfigReloaded(r) => {
                self.dirty = true;
                return self.config_reloaded(r);
            }
            Event::System(s) => self.system = Some(s),
            Event::LogTail { fingerprint, lines } => {
                self.log_tail.insert(fingerprint, lines);
            }
            Event::Launched { what, result } => match result {
                Ok(pid) => self.say(format!("started {what} (pid {pid}); it keeps running if you quit")),
                Err(e) => {
                    self.dialog = Some(Dialog::Info {
                        title: format!("{what} did not start"),
                        body: vec![e],
                    })
                }
            },
            Event::JobEnded { what, ok, output } => {
                let verbose = what.starts_with("setup") || what.starts_with("purge");
                if !ok || verbose {
                    let title = if ok { what } else { format!("{what} failed") };
                    let body = output.lines().map(String::from).collect();
                    self.dialog = Some(Dialog::Info { title, body });
                } else {
                    self.say(format!("{what} finished"));
                }
                return vec![Command::RefreshStatus];
            }
            Event::Preview { title, text } => {
                if let Some(Dialog::Purge { dest, .. }) = &self.dialog {
                    if title == *dest {
                        self.dialog = Some(Dialog::Purge {
                            dest: dest.clone(),
                            text: Some(text),
                        });
                    }
                }
            }
        }
        Vec::new()
    }

    fn input(&mut self, t: TermEvent) -> Vec<Command> {
        match t {
            TermEvent::Key(k) if k.kind != KeyEventKind::Release => self.key(k),
            TermEvent::Mouse(m) => {
                match m.kind {
                    MouseEventKind::ScrollDown => self.move_by(3),
                    MouseEventKind::ScrollUp => self.move_by(-3),
                    MouseEventKind::Down(MouseButton::Left) if self.view == View::Pairs && self.dialog.is_none() => {
                        let a = self.table_area;
                        let first = a.y + 2; // border + header
                        if m.column >= a.x
                            && m.column < a.x + a.width
                            && m.row >= first
                            && m.row < a.y + a.height.saturating_sub(1)
                        {
                            let pos = self.offset + (m.row - first) as usize;
                            if pos < self.order.len() {
                                self.selected = pos;
                                self.clamp();
                                return self.detail_commands();
                            }
                        }
                    }
                    _ => {}
                }
                Vec::new()
            }
            // a resize is handled by the next draw
            _ => Vec::new(),
        }
    }

    fn detail_commands(&self) -> Vec<Command> {
        match (self.detail, self.selected_index()) {
            (true, Some(i)) => vec![Command::LoadLog {
                fingerprint: self.pair(i).fingerprint(),
            }],
            _ => Vec::new(),
        }
    }

    fn key(&mut self, k: KeyEvent) -> Vec<Command> {
        if k.code == KeyCode::Char('z') && k.modifiers.contains(crossterm::event::KeyModifiers::CONTROL) {
            return vec![Command::Suspend];
        }
        if let Some(d) = self.dialog.take() {
            return self.dialog_key(d, k);
        }
        if self.help {
            self.help = false;
            return Vec::new();
        }
        if self.filtering {
            match k.code {
                KeyCode::Enter => self.filtering = false,
                KeyCode::Esc => {
                    self.filtering = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.reorder();
            return Vec::new();
        }
        let Some(act) = self.keys.act(&k) else {
            return Vec::new();
        };
        let page = self.page.max(1) as isize;
        match act {
            Act::Quit => self.quit = true,
            Act::Help => self.help = true,
            Act::Up => self.move_by(-1),
            Act::Down => self.move_by(1),
            Act::PageUp => self.move_by(-page),
            Act::PageDown => self.move_by(page),
            Act::Top => self.move_by(-(self.order.len() as isize)),
            Act::Bottom => self.move_by(self.order.len() as isize),
            Act::Detail => {
                self.detail = !self.detail;
                return self.detail_commands();
            }
            Act::Back => {
                if self.detail {
                    self.detail = false;
                } else if !self.filter.is_empty() {
                    self.filter.clear();
                    self.reorder();
                }
            }
            Act::Filter => {
                self.view = View::Pairs;
                self.filtering = true;
            }
            Act::Sort => {
                self.sort = self.sort.next();
                self.reorder();
                self.say(format!("sorted by {}", self.sort.word()));
            }
            Act::Reverse => {
                self.reverse = !self.reverse;
                self.reorder();
            }
            Act::NextView => {
                self.view = match self.view {
                    View::Pairs => View::Hosts,
                    View::Hosts => View::Clusters,
                    View::Clusters => View::Pairs,
                }
            }
            Act::Theme => {
                if self.theme.name != "no-color" {
                    self.theme = self.theme.next();
                    self.say(format!("theme {}", self.theme.name));
                }
            }
            Act::Refresh => {
                // statuses come again either way: for a changed config after it was read
                self.refreshing = true;
                return vec![Command::ReloadConfig];
            }
            Act::Setup | Act::Initialize | Act::Update | Act::Unlock | Act::Purge | Act::Logfile | Act::Fingerprint => {
                return self.pair_action(act);
            }
        }
        Vec::new()
    }

    fn pair_action(&mut self, act: Act) -> Vec<Command> {
        let Some(i) = self.selected_index() else {
            self.say("no pair selected");
            return Vec::new();
        };
        let dest = self.dest_name(i);
        let fp = self.pair(i).fingerprint();
        let starts_job = matches!(
            act,
            Act::Setup | Act::Initialize | Act::Update | Act::Unlock | Act::Purge
        );
        if starts_job && self.stale {
            // a job reads the file as it is now, which is not what this screen shows
            self.say("the config file changed since the console read it: F5 reads it again, then start the job");
            return Vec::new();
        }
        let launch = |action: JobAction| Command::Launch {
            action,
            dest: dest.clone(),
        };
        match act {
            Act::Setup => return vec![launch(JobAction::Setup)],
            Act::Initialize => {
                // a full send that may take hours: ask first, saying how much it moves
                let st = self.statuses[i].as_ref();
                if st.is_some_and(|s| s.state == StateKind::Synchronized) {
                    self.say(format!("{dest} is initialized already: u updates it"));
                    return Vec::new();
                }
                let p = self.pair(i);
                let mut body = vec![format!("A full send of {} into {}.", p.source, p.destination)];
                body.push(match st.and_then(|s| s.source_bytes) {
                    Some(n) => format!(
                        "About {} to send (the source's size now; the stream can be somewhat larger).",
                        crate::config::units::format_bytes(n)
                    ),
                    None => "Its size is not known before sending: the transfer shows bytes and rate.".into(),
                });
                body.push("It runs as a job of its own and goes on if the console closes.".into());
                self.dialog = Some(Dialog::Confirm {
                    title: format!("Initialize {dest}?"),
                    body,
                    on_yes: launch(JobAction::Initialize),
                });
            }
            Act::Update => return vec![launch(JobAction::Update)],
            Act::Unlock => {
                let run = self.run(i).cloned();
                let body = match run.as_ref().map(|r| (r.status, r.lock.clone())) {
                    Some((RunState::Locked, lock)) => {
                        let mut b = vec![format!("{dest} is Locked: a job did not finish.")];
                        if let Some(l) = lock {
                            b.push(format!(
                                "The lock is from `{}` by pid {} started {}.",
                                l.action,
                                l.pid,
                                crate::config::units::format_time(l.started)
                            ));
                        }
                        b.push(format!(
                            "Unlock removes {}.",
                            crate::state::StateDir::new(&self.state_root).lock_path(&fp).display()
                        ));
                        b.push("The pair may be inconsistent: check both sides first.".into());
                        b.push("The next update starts from the destination's checkpoint.".into());
                        b
                    }
                    Some((RunState::Running | RunState::Initializing, _)) => {
                        self.say(format!("{dest} has a running job: it cannot be unlocked"));
                        return Vec::new();
                    }
                    _ => {
                        self.say(format!("{dest} is not locked"));
                        return Vec::new();
                    }
                };
                self.dialog = Some(Dialog::Confirm {
                    title: format!("Unlock {dest}?"),
                    body,
                    on_yes: launch(JobAction::Unlock),
                });
            }
            Act::Purge => {
                self.dialog = Some(Dialog::Purge {
                    dest: dest.clone(),
                    text: None,
                });
                return vec![Command::PreviewPurge { dest }];
            }
            Act::Logfile => {
                let path = crate::state::StateDir::new(&self.state_root).log_path(&fp);
                self.detail = true;
                self.say(format!("log: {}", path.display()));
                return vec![Command::LoadLog { fingerprint: fp }];
            }
            Act::Fingerprint => {
                let p = self.pair(i);
                self.dialog = Some(Dialog::Info {
                    title: format!("Fingerprint of {dest}"),
                    body: vec![
                        fp.clone(),
                        format!(
                            "md5 of \"{}:{}::{}:{}\"",
                            p.source.host, p.source.path, p.destination.host, p.destination.path
                        ),
                        format!("Nagios service: service/ferry:{fp}"),
                    ],
                });
            }
            _ => {}
        }
        Vec::new()
    }
}
