//! Console rendering cost with many pairs (release build): `cargo bench --bench console`.
//!
//! Builds the console's `App` the way tests/tui.rs does (a generated config, then Status and Runs
//! events with engine status types; two jobs running with progress), then times:
//!  - one frame: `Terminal::draw` of `ui::draw` into a 140x40 TestBackend, as the run loop draws
//!    (pairs view, transfer panes, status bar), with 1,000 and 10,000 pairs; the selection moves
//!    one row between frames (untimed) so every frame differs. The ratio 10k/1k should be ~1:
//!    only the visible rows are built.
//!  - `App::handle` of a full Status event and of a Runs event for 10,000 pairs (filter + sort).
//!
//! Figures are printed; nothing is asserted. FRAMES=n overrides the frame count.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use ferry::config::Config;
use ferry::driver::Snapshot;
use ferry::engine::types::{PairStatus, RunInfo, RunState};
use ferry::monitor::Level;
use ferry::state::lock::LockInfo;
use ferry::state::progress::Progress;
use ferry::tui::app::App;
use ferry::tui::event::Event;
use ferry::tui::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const HOSTS: usize = 20;

fn config_text(n: usize) -> String {
    let mut s = String::from("state_dir = \"/var/lib/ferry\"\n");
    for h in 0..HOSTS {
        s.push_str(&format!("[hosts.store{h}]\naddress = \"192.0.2.{}\"\n", h + 10));
    }
    for i in 0..n {
        s.push_str(&format!(
            "[[pair]]\nsource = \"store{}:tank/vol{i:05}\"\ndestination = \"backup/site{}/vol{i:05}\"\n",
            i % HOSTS,
            i % 7
        ));
        if i % 10 == 0 {
            s.push_str("wlag = \"1h\"\n");
        }
    }
    s
}

fn idle() -> RunInfo {
    RunInfo::idle()
}

fn running(c: &Config, i: usize, rate: f64) -> RunInfo {
    let p = &c.pairs[i];
    RunInfo {
        status: RunState::Running,
        lock: Some(LockInfo {
            pid: 4242 + i as u32,
            action: "update".into(),
            started: 1_795_003_000,
            host: None,
        }),
        runtime_secs: Some(30),
        last: None,
        retention: None,
        progress: Some(Progress {
            pid: 4242 + i as u32,
            action: "update".into(),
            fingerprint: p.fingerprint(),
            source: p.source.to_string(),
            destination: p.destination.to_string(),
            phase: "transfer".into(),
            started: 1_795_003_000,
            updated_ms: 1_795_003_030_000,
            bytes: 120 << 20,
            expected: Some(200 << 20),
            rate,
            avg_rate: rate * 0.9,
            eta_secs: Some(10),
            elapsed_secs: 30.0,
            history: (0..180).map(|s| rate * (0.5 + (s % 7) as f64 / 10.0)).collect(),
            finished: false,
            error: None,
            read: None,
            read_total: None,
            objects: None,
            objects_total: None,
            objects_rate: None,
        }),
    }
}

fn status(c: &Config, i: usize, run: RunInfo) -> PairStatus {
    let p = &c.pairs[i];
    let fp = p.fingerprint();
    let cp = format!("ferry.{fp}.20261121T120000Z");
    let snaps = vec![
        Snapshot {
            name: format!("ferry.{fp}.20261121T110000Z"),
            created: 1_795_000_000,
            id: None,
        },
        Snapshot {
            name: cp.clone(),
            created: 1_795_003_600,
            id: None,
        },
    ];
    let (state, lag, level) = match i % 50 {
        0 => ("Uninitialized", None, Level::Ok),
        1 => ("Inconsistent", None, Level::Critical),
        n => (
            "Synchronized",
            Some((n as u64 * 397) % 9000),
            if n % 9 == 0 { Level::Warning } else { Level::Ok },
        ),
    };
    PairStatus {
        kind: p.kind,
        fingerprint: fp,
        source: p.source.to_string(),
        destination: p.destination.to_string(),
        state: state.parse().expect("a state word"),
        reason: (state == "Inconsistent").then(|| "checkpoint missing on the source".into()),
        checkpoint: (state == "Synchronized").then_some(cp.clone()),
        lag_secs: lag,
        lag_level: level,
        run_level: Level::Ok,
        flags: format!("-{}-", ferry::monitor::flag(level)),
        level,
        source_over_keep: Some(0),
        destination_over_keep: Some(0),
        retention_failing: false,
        purgeable_source: vec![],
        purgeable_destination: vec![],
        source_bytes: None,
        children: vec![],
        warnings: vec![],
        assessed: match state {
            "Synchronized" => {
                ferry::engine::assess::State::Synchronized(ferry::model::Checkpoint { name: cp, created: 0 })
            }
            "Uninitialized" => ferry::engine::assess::State::Uninitialized,
            _ => ferry::engine::assess::State::Inconsistent("checkpoint missing on the source".into()),
        },
        run,
        source_snapshots: snaps.clone(),
        destination_snapshots: snaps,
    }
}

/// (config, the Status event's list, the Runs event's list) for n pairs, two of them running.
fn scene(n: usize) -> (Arc<Config>, Vec<PairStatus>, Vec<RunInfo>) {
    let text = config_text(n);
    let c = Arc::new(ferry::config::parse(std::path::Path::new("ferry.toml"), &text).expect("config parses"));
    let runs: Vec<RunInfo> = (0..n)
        .map(|i| {
            if i == 3 {
                running(&c, i, 40.0 * 1048576.0)
            } else if i == n / 2 {
                running(&c, i, 8.0 * 1048576.0)
            } else {
                idle()
            }
        })
        .collect();
    let statuses = (0..n).map(|i| status(&c, i, runs[i].clone())).collect();
    (c, statuses, runs)
}

fn app(n: usize) -> App {
    let (c, statuses, runs) = scene(n);
    let mut app = App::new(c, "/var/lib/ferry".into(), Theme::builtin("dark").unwrap());
    app.handle(Event::Status(statuses));
    app.handle(Event::Runs(runs));
    app
}

struct Stats {
    mean: Duration,
    median: Duration,
    p99: Duration,
    min: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let sum: Duration = v.iter().sum();
    Stats {
        mean: sum / v.len() as u32,
        median: v[v.len() / 2],
        p99: v[(v.len() * 99 / 100).min(v.len() - 1)],
        min: v[0],
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn frames(n: usize, count: usize) -> Stats {
    let mut a = app(n);
    let mut t = Terminal::new(TestBackend::new(140, 40)).unwrap();
    let down = || Event::Input(TermEvent::Key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE)));
    // warm up: first frames allocate the buffers
    for _ in 0..20 {
        t.draw(|f| ferry::tui::ui::draw(f, &mut a)).unwrap();
    }
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        a.handle(down());
        let start = Instant::now();
        t.draw(|f| ferry::tui::ui::draw(f, &mut a)).unwrap();
        times.push(start.elapsed());
    }
    // the screen really shows the table and a transfer pane
    let buf = t.backend().buffer();
    let screen: String = buf.content().iter().map(|c| c.symbol()).collect();
    assert!(screen.contains("MiB/s now"), "transfer pane drawn");
    assert!(screen.contains(&format!("{n} pairs")), "header drawn");
    black_box(&t);
    stats(times)
}

fn main() {
    // `cargo bench` passes --bench; a plain `cargo test --benches` run passes nothing: keep it short
    let benching = std::env::args().any(|a| a == "--bench");
    let count: usize = std::env::var("FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 500 } else { 5 });

    println!("console frame render: ui::draw into a 140x40 TestBackend, pairs view + 2 transfer panes, {count} frames");
    let mut medians = Vec::new();
    for n in [1_000usize, 10_000] {
        let s = frames(n, count);
        println!(
            "  {n:>6} pairs: mean {}  median {}  p99 {}  min {}",
            us(s.mean),
            us(s.median),
            us(s.p99),
            us(s.min)
        );
        medians.push((s.mean, s.median));
    }
    println!(
        "  ratio 10k/1k: mean {:.2}  median {:.2}",
        medians[1].0.as_secs_f64() / medians[0].0.as_secs_f64(),
        medians[1].1.as_secs_f64() / medians[0].1.as_secs_f64()
    );

    let n = 10_000;
    let rounds = if benching { 50 } else { 2 };
    let (_, statuses, runs) = scene(n);
    let mut a = app(n);
    let mut status_t = Vec::new();
    let mut runs_t = Vec::new();
    for _ in 0..rounds {
        let list = statuses.clone();
        let start = Instant::now();
        black_box(a.handle(Event::Status(list)));
        status_t.push(start.elapsed());
        let list = runs.clone();
        let start = Instant::now();
        black_box(a.handle(Event::Runs(list)));
        runs_t.push(start.elapsed());
    }
    let s = stats(status_t);
    println!(
        "App::handle(Status) of {n} pairs (store + filter + sort by destination), {rounds} rounds: mean {}  median {}",
        us(s.mean),
        us(s.median)
    );
    let s = stats(runs_t);
    println!(
        "App::handle(Runs) of {n} pairs, {rounds} rounds: mean {}  median {}",
        us(s.mean),
        us(s.median)
    );
    // a frame's O(pairs) part: which jobs run (draw and header each ask once per frame)
    let mut t = Vec::new();
    for _ in 0..rounds * 10 {
        let start = Instant::now();
        black_box(a.running());
        t.push(start.elapsed());
    }
    let s = stats(t);
    println!(
        "App::running() over {n} pairs (twice per frame): mean {}  median {}",
        us(s.mean),
        us(s.median)
    );
}
