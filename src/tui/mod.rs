//! The operator's console: every pair and host on one screen, actions from the keyboard, live
//! transfer panes. It adds no storage logic: status comes from the engine, jobs run as detached
//! `ferry` processes, and their figures are read from the state dir like any other job's.
//!
//! Layers inside: `collect` (background work, reporting through one event channel), `app` (state
//! and input → commands), `ui` + `view` (painting only). The run loop is generic over the terminal
//! backend so tests drive the real app into a `TestBackend`.

pub mod app;
pub mod collect;
pub mod event;
pub mod format;
pub mod keys;
pub mod launch;
pub mod theme;
pub mod ui;
pub mod view;

use std::io::Stdout;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use crossterm::event::{DisableMouseCapture, EnableMouseCapture, EventStream};
use crossterm::execute;
use crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use futures::StreamExt;
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::Terminal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::engine::Engine;

use app::{App, Command};
use collect::Background;
use event::Event;
use theme::Theme;

/// Why the loop returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    Quit,
    Suspend,
}

/// Draws, then applies events until the app quits or asks to suspend. Events that arrive together
/// are applied together and drawn once, and only when they changed something visible.
pub async fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    rx: &mut UnboundedReceiver<Event>,
    mut bg: Option<&mut Background>,
) -> Result<Exit>
where
    B::Error: Send + Sync + 'static,
{
    app.take_render();
    terminal.draw(|f| ui::draw(f, app))?;
    while let Some(first) = rx.recv().await {
        let mut commands = app.handle(first);
        while let Ok(more) = rx.try_recv() {
            commands.extend(app.handle(more));
        }
        for c in commands {
            if c == Command::Suspend {
                return Ok(Exit::Suspend);
            }
            if let Some(bg) = bg.as_deref_mut() {
                bg.execute(c);
            }
        }
        if app.quit {
            return Ok(Exit::Quit);
        }
        if app.take_render() {
            terminal.draw(|f| ui::draw(f, app))?;
        }
    }
    Ok(Exit::Quit)
}

fn enter() -> Result<Terminal<CrosstermBackend<Stdout>>> {
    enable_raw_mode()?;
    let mut out = std::io::stdout();
    execute!(out, EnterAlternateScreen, EnableMouseCapture)?;
    Ok(Terminal::new(CrosstermBackend::new(out))?)
}

fn leave() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Terminal input into the event channel, and a one-second tick so lags and runtimes move.
fn spawn_input(tx: UnboundedSender<Event>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = EventStream::new();
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                ev = stream.next() => match ev {
                    Some(Ok(e)) => { if tx.send(Event::Input(e)).is_err() { return; } }
                    _ => return,
                },
                _ = tick.tick() => { if tx.send(Event::Tick).is_err() { return; } }
            }
        }
    })
}

/// Opens the console on this terminal until the operator quits. Jobs started here keep running.
pub async fn run(engine: &Engine) -> Result<()> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return Err(anyhow!(
            "the console needs a terminal (use status, runstatus or --json from scripts)"
        ));
    }
    let theme = Theme::load(engine.config.console.theme.as_deref())?;
    let config = Arc::new(engine.config.clone());
    let shared = Arc::new(Engine::new(
        engine.config.clone(),
        Some(engine.state.root().to_path_buf()),
        false,
    ));
    let (tx, mut rx) = unbounded_channel();
    let mut bg = Background::start(shared, tx.clone());
    let mut app = App::new(config, engine.state.root().to_path_buf(), theme);

    // the terminal is restored on a panic too, before the message prints
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        leave();
        hook(info);
    }));
    let mut input = spawn_input(tx.clone());
    let mut terminal = enter()?;
    let result = loop {
        match run_loop(&mut terminal, &mut app, &mut rx, Some(&mut bg)).await {
            Ok(Exit::Suspend) => {
                // stop reading the terminal while the shell has it
                input.abort();
                leave();
                // SAFETY: raising SIGTSTP on ourselves stops the process like the shell's ctrl-z
                unsafe {
                    libc::raise(libc::SIGTSTP);
                }
                terminal = enter()?;
                terminal.clear()?;
                input = spawn_input(tx.clone());
            }
            other => break other,
        }
    };
    input.abort();
    leave();
    let _ = std::panic::take_hook();
    result.map(|_| ())
}
