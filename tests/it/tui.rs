//! Console screens rendered into ratatui's TestBackend through the real app and run loop, compared
//! as snapshots (tests/snapshots/), plus what keys ask the background layer to do.

use std::sync::Arc;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use ferry::config::Config;
use ferry::driver::Snapshot;
use ferry::driver::Storage;
use ferry::engine::hosts::HostReport;
use ferry::engine::types::{PairStatus, RunInfo, RunState};
use ferry::model::JobAction;
use ferry::monitor::Level;
use ferry::state::last::LastResult;
use ferry::state::lock::LockInfo;
use ferry::state::progress::Progress;
use ferry::tui::app::{App, Command, View};
use ferry::tui::event::{Event, SystemView};
use ferry::tui::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const CONFIG: &str = r#"
state_dir = "/var/lib/ferry"
[hosts.store1]
address = "192.0.2.10"
[hosts.store2]
address = "192.0.2.11"
[[pair]]
source = "store1:tank/data"
destination = "backup/data"
[[pair]]
source = "store1:tank/web"
destination = "backup/web"
wlag = "1h"
[[pair]]
source = "store2:tank/vm"
destination = "backup/vm"
[[pair]]
source = "store2:tank/db"
destination = "backup/db"
[[cluster]]
name = "shared"
persist_path = "/var/lib/ferry/clusters/shared"
volumes = [
  { at = "store1:tank/shared", listen = true, update = false },
  { at = "store2:tank/shared", listen = false, update = true },
]
"#;

fn config(text: &str) -> Arc<Config> {
    Arc::new(ferry::config::parse(std::path::Path::new("ferry.toml"), text).unwrap())
}

fn idle() -> RunInfo {
    RunInfo::idle()
}

fn status(c: &Config, i: usize, state: &str, lag: Option<u64>, lag_level: Level, run: RunInfo) -> PairStatus {
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
            name: "hourly-1".into(),
            created: 1_795_001_000,
            id: None,
        },
        Snapshot {
            name: cp.clone(),
            created: 1_795_003_600,
            id: None,
        },
    ];
    let locked = run.status == RunState::Locked;
    PairStatus {
        kind: p.kind,
        fingerprint: fp,
        source: p.source.to_string(),
        destination: p.destination.to_string(),
        state: state.parse().expect("a state word"),
        reason: (state == "Inconsistent").then(|| "checkpoint ferry.x is missing on the source".to_string()),
        checkpoint: (state == "Synchronized").then_some(cp.clone()),
        lag_secs: lag,
        lag_level,
        run_level: Level::Ok,
        flags: format!("{}{}-", if locked { 'L' } else { '-' }, ferry::monitor::flag(lag_level)),
        level: if locked { Level::Critical } else { lag_level },
        source_over_keep: Some(0),
        destination_over_keep: Some(0),
        retention_failing: false,
        purgeable_source: vec![],
        purgeable_destination: vec![],
        source_bytes: None,
        children: vec![],
        warnings: vec![],
        assessed: match state {
            "Synchronized" => ferry::engine::assess::State::Synchronized(ferry::model::Checkpoint {
                name: cp.clone(),
                created: 0,
            }),
            "Uninitialized" => ferry::engine::assess::State::Uninitialized,
            "Inconsistent" => {
                ferry::engine::assess::State::Inconsistent("checkpoint ferry.x is missing on the source".into())
            }
            _ => ferry::engine::assess::State::Unknown("unreachable".into()),
        },
        run,
        source_snapshots: snaps.clone(),
        destination_snapshots: snaps[..2].to_vec(),
    }
}

fn progress(c: &Config, i: usize, bytes: u64, expected: Option<u64>, rate: f64) -> Progress {
    let p = &c.pairs[i];
    Progress {
        pid: 4242,
        action: "update".into(),
        fingerprint: p.fingerprint(),
        source: p.source.to_string(),
        destination: p.destination.to_string(),
        phase: "transfer".into(),
        started: 1_795_003_000,
        updated_ms: 1_795_003_030_000,
        bytes,
        expected,
        rate,
        avg_rate: rate * 0.9,
        eta_secs: expected.map(|e| ((e - bytes) as f64 / rate) as u64),
        elapsed_secs: 30.0,
        history: (0..60).map(|s| rate * (0.5 + (s % 7) as f64 / 10.0)).collect(),
        finished: false,
        error: None,
        read: None,
        read_total: None,
        objects: None,
        objects_total: None,
        objects_rate: None,
    }
}

fn running(p: Progress) -> RunInfo {
    RunInfo {
        status: RunState::Running,
        lock: Some(LockInfo {
            pid: p.pid,
            action: "update".into(),
            started: 1_795_003_000,
            host: None,
        }),
        runtime_secs: Some(30),
        last: None,
        retention: None,
        progress: Some(p),
    }
}

/// The standard scene: one of each state, one job running, one pair locked.
fn app() -> App {
    let c = config(CONFIG);
    let mut app = App::new(c.clone(), "/var/lib/ferry".into(), Theme::builtin("dark").unwrap());
    let locked = RunInfo {
        status: RunState::Locked,
        lock: Some(LockInfo {
            pid: 999,
            action: "update".into(),
            started: 1_795_000_500,
            host: None,
        }),
        runtime_secs: None,
        last: Some(LastResult {
            action: "update".into(),
            ok: false,
            finished: 1_795_000_000,
            seconds: 3.0,
            bytes: 1024,
            error: Some("receive failed".into()),
        }),
        retention: None,
        progress: None,
    };
    let run = running(progress(&c, 1, 120 << 20, Some(200 << 20), (40u64 << 20) as f64));
    let statuses = vec![
        status(&c, 0, "Synchronized", Some(300), Level::Ok, idle()),
        status(&c, 1, "Synchronized", Some(7300), Level::Warning, run.clone()),
        status(&c, 2, "Inconsistent", None, Level::Ok, locked.clone()),
        status(&c, 3, "Uninitialized", None, Level::Ok, idle()),
    ];
    app.handle(Event::Status(statuses));
    app.handle(Event::Runs(vec![idle(), run, locked, idle()]));
    app
}

fn key(app: &mut App, code: KeyCode) -> Vec<Command> {
    app.handle(Event::Input(TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))))
}

fn render(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ferry::tui::ui::draw(f, app)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[test]
fn pairs_table_wide() {
    let mut a = app();
    insta::assert_snapshot!("pairs_wide", render(&mut a, 130, 30));
}

#[test]
fn pairs_table_narrow() {
    let mut a = app();
    let s = render(&mut a, 80, 24);
    assert!(!s.contains("RATE"), "the rate column goes on narrow terminals");
    insta::assert_snapshot!("pairs_narrow", s);
}

#[test]
fn threshold_colours() {
    let mut a = app();
    let mut t = Terminal::new(TestBackend::new(130, 30)).unwrap();
    t.draw(|f| ferry::tui::ui::draw(f, &mut a)).unwrap();
    let buf = t.backend().buffer().clone();
    let find = |needle: &str| -> (u16, u16) {
        for y in 0..buf.area.height {
            let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect();
            if let Some(x) = line.find(needle) {
                return (line[..x].chars().count() as u16, y);
            }
        }
        panic!("{needle} not on screen");
    };
    let theme = Theme::builtin("dark").unwrap();
    let (x, y) = find("2h01m");
    assert_eq!(
        buf[(x, y)].fg,
        theme.warn.fg.unwrap(),
        "lag over wlag is drawn in the warning colour"
    );
    let (x, y) = find("Locked");
    assert_eq!(buf[(x, y)].fg, theme.crit.fg.unwrap());
    let (x, y) = find("Inconsistent");
    assert_eq!(buf[(x, y)].fg, theme.crit.fg.unwrap());
}

#[test]
fn detail_view() {
    let mut a = app();
    let cmds = key(&mut a, KeyCode::Enter);
    let fp = a.pair(0).fingerprint();
    assert_eq!(
        cmds,
        vec![Command::LoadLog {
            fingerprint: fp.clone()
        }]
    );
    a.handle(Event::LogTail {
        fingerprint: fp,
        lines: vec!["2026-11-21T12:00:00.000Z [1] update done: 1024 bytes in 0.4s".into()],
    });
    insta::assert_snapshot!("detail", render(&mut a, 130, 40));
}

#[test]
fn transfer_panes_split_for_two_jobs() {
    let mut a = app();
    let c = a.config.clone();
    let second = running(progress(&c, 3, 5 << 20, None, (8u64 << 20) as f64));
    let run1 = a.runs[1].clone().unwrap();
    a.handle(Event::Runs(vec![idle(), run1, a.runs[2].clone().unwrap(), second]));
    let s = render(&mut a, 130, 32);
    assert!(s.contains("120.0 MiB of 200.0 MiB"), "{s}");
    assert!(s.contains("40.0 MiB/s now") && s.contains("ETA 2s"), "{s}");
    assert!(s.contains("5.0 MiB (size unknown)"), "{s}");
    insta::assert_snapshot!("transfers", s);
}

#[test]
fn unlock_shows_what_happens_and_needs_yes() {
    let mut a = app();
    // select the locked pair: sorted by destination, backup/vm is last but one
    key(&mut a, KeyCode::End);
    key(&mut a, KeyCode::Up);
    assert_eq!(a.dest_name(a.selected_index().unwrap()), "backup/vm");
    assert!(key(&mut a, KeyCode::Char('L')).is_empty());
    let s = render(&mut a, 100, 30);
    assert!(s.contains("Unlock backup/vm?") && s.contains("pid 999"), "{s}");
    insta::assert_snapshot!("unlock_dialog", s);
    assert!(key(&mut a, KeyCode::Char('n')).is_empty(), "anything but y cancels");
    assert!(a.dialog.is_none());
    key(&mut a, KeyCode::Char('L'));
    let cmds = key(&mut a, KeyCode::Char('y'));
    assert_eq!(
        cmds,
        vec![Command::Launch {
            action: JobAction::Unlock,
            dest: "backup/vm".into(),
        }]
    );
}

#[test]
fn purge_all_needs_the_name_typed() {
    let mut a = app();
    let cmds = key(&mut a, KeyCode::Char('P'));
    assert_eq!(
        cmds,
        vec![Command::PreviewPurge {
            dest: "backup/data".into()
        }]
    );
    a.handle(Event::Preview {
        title: "backup/data".into(),
        text: "would destroy on store1: tank/data@ferry.x.1\n".into(),
    });
    assert!(render(&mut a, 100, 30).contains("would destroy on store1"));
    key(&mut a, KeyCode::Char('A'));
    for c in "backup/dat".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    assert!(key(&mut a, KeyCode::Enter).is_empty(), "a wrong name does nothing");
    assert!(a.dialog.is_none());
    key(&mut a, KeyCode::Char('P'));
    a.handle(Event::Preview {
        title: "backup/data".into(),
        text: "nothing to purge".into(),
    });
    key(&mut a, KeyCode::Char('A'));
    for c in "backup/data".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    let s = render(&mut a, 100, 30);
    insta::assert_snapshot!("purge_all_dialog", s);
    let cmds = key(&mut a, KeyCode::Enter);
    assert_eq!(
        cmds,
        vec![Command::Launch {
            action: JobAction::PurgeAll,
            dest: "backup/data".into(),
        }]
    );
}

#[test]
fn keys_start_jobs_on_the_selected_pair() {
    let mut a = app();
    key(&mut a, KeyCode::Down);
    let cmds = key(&mut a, KeyCode::Char('u'));
    assert_eq!(
        cmds,
        vec![Command::Launch {
            action: JobAction::Update,
            dest: "backup/db".into(),
        }]
    );
    // initialize asks first (a full send): y starts it
    assert!(key(&mut a, KeyCode::Char('I')).is_empty());
    let cmds = key(&mut a, KeyCode::Char('y'));
    assert_eq!(
        cmds,
        vec![Command::Launch {
            action: JobAction::Initialize,
            dest: "backup/db".into(),
        }]
    );
    assert_eq!(
        key(&mut a, KeyCode::F(5)),
        vec![Command::ReloadConfig],
        "F5 reads the config again"
    );
}

#[test]
fn filter_and_sort() {
    let mut a = app();
    key(&mut a, KeyCode::Char('/'));
    for c in "store2".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.order.len(), 2);
    let s = render(&mut a, 100, 20);
    assert!(s.contains("filter: store2") && !s.contains("tank/data"), "{s}");
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.order.len(), 4);
    // sort by lag: the most lagging first
    key(&mut a, KeyCode::Char('s'));
    key(&mut a, KeyCode::Char('s'));
    key(&mut a, KeyCode::Char('s'));
    let first: Vec<String> = a.order[..2].iter().map(|&i| a.dest_name(i)).collect();
    assert!(
        first.contains(&"backup/db".to_string()) && first.contains(&"backup/vm".to_string()),
        "pairs without a lag (unknown) sort as the worst: {first:?}"
    );
    let lags: Vec<Option<u64>> = a
        .order
        .iter()
        .map(|&i| a.statuses[i].as_ref().unwrap().lag_secs)
        .collect();
    assert_eq!(lags.iter().flatten().copied().collect::<Vec<_>>(), vec![7300, 300]);
}

#[test]
fn hosts_and_clusters_views() {
    let mut a = app();
    a.handle(Event::Hosts(vec![
        HostReport {
            name: "store1".into(),
            address: "192.0.2.10:22".into(),
            rtt: Some(std::time::Duration::from_millis(112)),
            error: None,
            // the pairs' pool first (the engine sorts them so), two others counted
            pools: vec![
                Storage::new("tank", "1.98G", "512M", "ONLINE"),
                Storage::new("scratch", "100G", "1G", "ONLINE"),
                Storage::new("rpool", "20G", "9G", "ONLINE"),
            ],
            used_pools: 1,
        },
        HostReport {
            name: "store2".into(),
            address: "192.0.2.11:22".into(),
            rtt: None,
            error: Some("host store2 (192.0.2.11:22): connection refused".into()),
            pools: vec![],
            used_pools: 0,
        },
    ]));
    a.handle(Event::System(SystemView {
        cpu_percent: 12.5,
        mem_used: 3 << 30,
        mem_total: 24 << 30,
        net_rx: 1048576.0,
        net_tx: 2048.0,
        disk_read: 0.0,
        disk_write: 4194304.0,
    }));
    key(&mut a, KeyCode::Tab);
    assert_eq!(a.view, View::Hosts);
    let s = render(&mut a, 110, 24);
    assert!(
        s.contains("tank 512M/1.98G ONLINE, +2 more"),
        "the pairs' pool shown, the others counted: {s}"
    );
    insta::assert_snapshot!("hosts", s);
    key(&mut a, KeyCode::Tab);
    assert_eq!(a.view, View::Clusters);
    use ferry::engine::cluster::report::{ClusterStatus, CycleFigures, VolumeStatus};
    let vol = |at: &str, listen: bool, update: bool, pending: usize, failed: usize, lag_secs: u64| VolumeStatus {
        at: at.into(),
        kind: ferry::model::Kind::Zfs,
        listen,
        update,
        pending,
        failed,
        lag_secs,
        objects: None,
        error: None,
    };
    a.handle(Event::Clusters(vec![ClusterStatus {
        name: "shared".into(),
        persist_path: "/var/lib/ferry/clusters/shared".into(),
        worker: Some("cluster run on backup1 (pid 4242)".into()),
        since: Some(1_795_003_000),
        depth: 3,
        pending: 3,
        failed: 1,
        journal_bytes: 48 << 10,
        volumes: vec![
            vol("store1:tank/shared", true, false, 0, 0, 0),
            vol("store2:tank/shared", false, true, 3, 1, 42),
        ],
        figures: Some(CycleFigures {
            cycles: 100,
            journaled: 1200,
            applied: 1197,
            ..Default::default()
        }),
        last_cycle_age_secs: Some(1),
    }]));
    let s = render(&mut a, 110, 24);
    assert!(s.contains("worked by cluster run on backup1 (pid 4242)"), "{s}");
    assert!(s.contains("3 pending  1 failed  lag 42s"), "{s}");
    insta::assert_snapshot!("clusters", s);
}

#[test]
fn help_lists_rebound_keys() {
    let text = format!("{CONFIG}\n[console.keys]\nupdate = \"ctrl-u\"\n");
    let c = config(&text);
    let mut a = App::new(c, "/tmp".into(), Theme::monochrome());
    key(&mut a, KeyCode::Char('?'));
    let s = render(&mut a, 100, 34);
    assert!(s.contains("ctrl-u  update the selected pair"), "{s}");
    insta::assert_snapshot!("help", s);
    assert!(key(&mut a, KeyCode::Char('u')).is_empty(), "u is no longer update");
}

#[test]
fn ten_thousand_pairs_scroll_to_the_end() {
    let mut text = String::from("[hosts.s]\naddress = \"192.0.2.10\"\n");
    for i in 0..10_000 {
        text.push_str(&format!(
            "[[pair]]\nsource = \"s:tank/v{i:05}\"\ndestination = \"backup/v{i:05}\"\n"
        ));
    }
    let c = config(&text);
    let mut a = App::new(c, "/tmp".into(), Theme::builtin("dark").unwrap());
    render(&mut a, 120, 40);
    key(&mut a, KeyCode::End);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("backup/v09999") && !s.contains("backup/v00000"), "{s}");
    key(&mut a, KeyCode::PageUp);
    let s = render(&mut a, 120, 40);
    assert!(s.contains("backup/v09965"), "one page up: {s}");
}

#[tokio::test]
async fn run_loop_draws_and_quits() {
    let mut a = app();
    let mut term = Terminal::new(TestBackend::new(100, 24)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tx.send(Event::Input(TermEvent::Key(KeyEvent::new(
        KeyCode::Char('?'),
        KeyModifiers::NONE,
    ))))
    .unwrap();
    tx.send(Event::Input(TermEvent::Key(KeyEvent::new(
        KeyCode::Char('x'),
        KeyModifiers::NONE,
    ))))
    .unwrap();
    tx.send(Event::Input(TermEvent::Key(KeyEvent::new(
        KeyCode::Char('q'),
        KeyModifiers::NONE,
    ))))
    .unwrap();
    let exit = ferry::tui::run_loop(&mut term, &mut a, &mut rx, None).await.unwrap();
    assert_eq!(exit, ferry::tui::Exit::Quit);
    assert!(a.dialog.is_none());
    let ctrl_z = KeyEvent::new(KeyCode::Char('z'), KeyModifiers::CONTROL);
    tx.send(Event::Input(TermEvent::Key(ctrl_z))).unwrap();
    let mut b = app();
    assert_eq!(
        ferry::tui::run_loop(&mut term, &mut b, &mut rx, None).await.unwrap(),
        ferry::tui::Exit::Suspend
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_host_shows_as_such_and_input_keeps_working() {
    // port 1 on loopback refuses at once: the host is down
    let text = "[hosts.dead]\naddress = \"127.0.0.1\"\nport = 1\nknown_hosts = \"/dev/null\"\n\
                [[pair]]\nsource = \"dead:tank/data\"\ndestination = \"backup/data\"\n";
    let c = config(text);
    let state = tempfile::tempdir().unwrap();
    let engine = Arc::new(ferry::engine::Engine::new(
        (*c).clone(),
        Some(state.path().to_path_buf()),
        false,
    ));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _bg = ferry::tui::collect::Background::start(engine, tx);
    let mut a = App::new(c, state.path().to_path_buf(), Theme::builtin("dark").unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (mut got_status, mut got_hosts) = (false, false);
    while !(got_status && got_hosts) {
        let ev = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .expect("collectors report within 30 s")
            .unwrap();
        got_status |= matches!(ev, Event::Status(_));
        got_hosts |= matches!(ev, Event::Hosts(_));
        a.handle(ev);
        // input is handled between reports
        key(&mut a, KeyCode::Char('s'));
    }
    let st = a.statuses[0].as_ref().unwrap();
    assert_eq!(st.state, ferry::model::StateKind::Unknown);
    assert!(
        st.reason.as_deref().unwrap_or("").contains("host dead"),
        "{:?}",
        st.reason
    );
    let s = render(&mut a, 120, 20);
    assert!(s.contains("Unknown"), "{s}");
    key(&mut a, KeyCode::Tab);
    let s = render(&mut a, 120, 20);
    assert!(s.contains("unreachable"), "{s}");
}

#[test]
fn lag_moves_every_second_between_status_refreshes() {
    let c = config(CONFIG);
    let mut a = App::new(c.clone(), "/var/lib/ferry".into(), Theme::builtin("dark").unwrap());
    // pair 0 (wlag 2h by default) is 30 s short of its warning threshold when status is read
    let scene = |lag0| {
        Event::Status(vec![
            status(&c, 0, "Synchronized", Some(lag0), Level::Ok, idle()),
            status(&c, 1, "Synchronized", Some(300), Level::Ok, idle()),
            status(&c, 2, "Uninitialized", None, Level::Ok, idle()),
            status(&c, 3, "Uninitialized", None, Level::Ok, idle()),
        ])
    };
    a.handle(scene(7170));
    // select another row: the selected one is drawn in one colour
    key(&mut a, KeyCode::Down);
    let before = render(&mut a, 130, 30);
    assert!(before.contains("1h59m") && before.contains("5m00s"), "{before}");
    for _ in 0..60 {
        a.handle(Event::Tick);
    }
    let mut t = Terminal::new(TestBackend::new(130, 30)).unwrap();
    t.draw(|f| ferry::tui::ui::draw(f, &mut a)).unwrap();
    let buf = t.backend().buffer().clone();
    let screen: Vec<String> = (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect())
        .collect();
    let web = screen.iter().find(|l| l.contains("tank/web")).unwrap();
    assert!(web.contains("6m00s"), "the lag moved with the ticks: {web}");
    let (y, data) = screen
        .iter()
        .enumerate()
        .find(|(_, l)| l.contains("tank/data"))
        .unwrap();
    let x = data.find("2h00m").expect("the lag moved past 2h") as u16;
    let x = data[..x as usize].chars().count() as u16;
    assert_eq!(
        buf[(x, y as u16)].fg,
        Theme::builtin("dark").unwrap().warn.fg.unwrap(),
        "crossing wlag between refreshes turns the lag to the warning colour"
    );
    // a new status starts the count again
    a.handle(scene(1));
    assert_eq!(a.lag_now(0), Some(1));
}

#[test]
fn detail_of_a_pair_whose_host_is_down_says_it_was_not_read() {
    let c = config(CONFIG);
    let mut a = App::new(c.clone(), "/var/lib/ferry".into(), Theme::builtin("dark").unwrap());
    let mut down = status(&c, 0, "Unknown", None, Level::Unknown, idle());
    down.reason = Some("host store1 (192.0.2.10:22): connection timed out".into());
    down.source_snapshots.clear();
    down.destination_snapshots.clear();
    a.handle(Event::Status(vec![
        down,
        status(&c, 1, "Synchronized", Some(300), Level::Ok, idle()),
        status(&c, 2, "Uninitialized", None, Level::Ok, idle()),
        status(&c, 3, "Uninitialized", None, Level::Ok, idle()),
    ]));
    key(&mut a, KeyCode::Enter);
    let s = render(&mut a, 130, 40);
    assert!(!s.contains("0 snapshots"), "an unread host is not an empty one: {s}");
    assert!(s.contains("not read") && s.contains("connection timed out"), "{s}");
}

#[test]
fn only_what_changes_the_screen_draws_a_frame() {
    let c = config(CONFIG);
    let mut a = App::new(c.clone(), "/var/lib/ferry".into(), Theme::builtin("dark").unwrap());
    // lags shown to the minute: 7300 s is "2h01m" until 7320 s
    let statuses = vec![
        status(&c, 0, "Synchronized", Some(7300), Level::Warning, idle()),
        status(&c, 1, "Synchronized", Some(7300), Level::Warning, idle()),
        status(&c, 2, "Uninitialized", None, Level::Ok, idle()),
        status(&c, 3, "Uninitialized", None, Level::Ok, idle()),
    ];
    a.handle(Event::Status(statuses));
    a.handle(Event::Runs(vec![idle(), idle(), idle(), idle()]));
    assert!(a.take_render(), "new data draws");
    assert!(!a.take_render(), "nothing happened since");
    a.handle(Event::Runs(vec![idle(), idle(), idle(), idle()]));
    assert!(!a.take_render(), "the state dir read the same as before");
    for t in 1..20 {
        assert!(a.handle(Event::Tick).is_empty());
        assert!(!a.take_render(), "tick {t}: every lag still shows 2h01m");
    }
    a.handle(Event::Tick);
    assert!(a.take_render(), "the lags turned 2h02m");
    key(&mut a, KeyCode::Down);
    assert!(a.take_render(), "a key moved the selection");
    key(&mut a, KeyCode::Char('f'));
    assert!(a.take_render(), "a message went up");
    for _ in 0..3 {
        a.handle(Event::Tick);
    }
    // the message stays up for a while: ticks in between do not draw (lags do not move either)
    assert!(!a.take_render());
}

#[test]
fn initialize_asks_first_and_says_how_much_it_sends() {
    let mut a = app();
    // the Uninitialized pair (config order: data, web, vm, db) with a known source size
    a.statuses[3].as_mut().unwrap().source_bytes = Some(3 << 30);
    key(&mut a, KeyCode::Home);
    key(&mut a, KeyCode::Down);
    assert_eq!(a.dest_name(a.selected_index().unwrap()), "backup/db");
    assert!(
        key(&mut a, KeyCode::Char('I')).is_empty(),
        "nothing starts before the answer"
    );
    let s = render(&mut a, 100, 30);
    assert!(s.contains("Initialize backup/db?"), "{s}");
    assert!(s.contains("About 3.0 GiB to send"), "{s}");
    insta::assert_snapshot!("initialize_dialog", s);
    assert_eq!(
        key(&mut a, KeyCode::Char('y')),
        vec![Command::Launch {
            action: JobAction::Initialize,
            dest: "backup/db".into()
        }]
    );
    // an initialized pair is not sent again: the console says what to do instead
    key(&mut a, KeyCode::Home);
    assert!(key(&mut a, KeyCode::Char('I')).is_empty());
    assert!(a.dialog.is_none());
    assert!(render(&mut a, 100, 30).contains("initialized already: u updates it"));
}

#[test]
fn detail_shows_what_retention_would_do_and_what_it_left() {
    let mut a = app();
    let fp = a.pair(0).fingerprint();
    let st = a.statuses[0].as_mut().unwrap();
    st.purgeable_destination = vec![format!("ferry.{fp}.20261121T100000Z")];
    let mut run = idle();
    run.retention = Some(ferry::engine::retention::Record {
        since: 1_795_000_000,
        last: 1_795_003_600,
        runs: 3,
        left: vec![format!("store1:tank/data@ferry.{fp}.20261121T090000Z: dataset is busy")],
    });
    let runs = vec![Some(run), a.runs[1].clone(), a.runs[2].clone(), a.runs[3].clone()];
    a.handle(Event::Runs(runs.into_iter().map(Option::unwrap).collect()));
    key(&mut a, KeyCode::Enter);
    let s = render(&mut a, 130, 44);
    assert!(s.contains("retention (keep 3 per side)"), "{s}");
    assert!(s.contains("purge would destroy on the destination"), "{s}");
    assert!(
        s.contains("left behind by 3 run(s) in a row") && s.contains("dataset is busy"),
        "{s}"
    );
    insta::assert_snapshot!("detail_retention", s);
}

#[test]
fn a_changed_config_stops_jobs_until_f5_reads_it_again() {
    let mut a = app();
    a.handle(Event::ConfigChanged);
    assert!(render(&mut a, 130, 30).contains("the config file changed: F5 reads it again"));
    // the screen no longer shows what a job would read: no job starts from it
    assert!(key(&mut a, KeyCode::Char('u')).is_empty());
    assert!(render(&mut a, 130, 30).contains("changed since the console read it"));
    assert_eq!(key(&mut a, KeyCode::F(5)), vec![Command::ReloadConfig]);
    // an edit undone: in step again
    a.handle(Event::ConfigUnchanged);
    assert!(!a.stale);
    a.handle(Event::ConfigChanged);
    assert!(a.stale);

    // a config with errors: shown, and the old one stays
    let cmds = a.handle(Event::ConfigReloaded(Err(
        "ferry.toml:9: key `keep`: not a number".into()
    )));
    assert!(cmds.is_empty());
    let s = render(&mut a, 130, 30);
    assert!(s.contains("the config has errors") && s.contains("ferry.toml:9"), "{s}");
    assert_eq!(a.config.pairs.len(), 4);
    key(&mut a, KeyCode::Esc);

    // the edited config: backup/db gone, backup/new added, backup/web changed
    let edited = CONFIG
        .replace(
            "source = \"store2:tank/db\"\ndestination = \"backup/db\"",
            "source = \"store2:tank/new\"\ndestination = \"backup/new\"",
        )
        .replace("wlag = \"1h\"", "wlag = \"3h\"");
    let loaded = ferry::tui::event::Loaded {
        config: config(&edited),
        bytes: Arc::new(edited.clone().into_bytes()),
    };
    let cmds = a.handle(Event::ConfigReloaded(Ok(loaded.clone())));
    assert_eq!(
        cmds,
        vec![Command::UseConfig(loaded)],
        "the collectors read for the new config"
    );
    let s = render(&mut a, 130, 30);
    assert!(
        s.contains("1 pair(s) added (backup/new); 1 pair(s) removed (backup/db); 1 pair(s) changed (backup/web)"),
        "{s}"
    );
    assert!(s.contains("backup/new") && !s.contains("backup/db "), "{s}");
    insta::assert_snapshot!("config_reloaded", s);
    // in step again: jobs start
    key(&mut a, KeyCode::Home);
    assert_eq!(
        key(&mut a, KeyCode::Char('u')),
        vec![Command::Launch {
            action: JobAction::Update,
            dest: "backup/data".into()
        }]
    );
}

#[test]
fn a_block_update_shows_its_read_and_what_it_sent() {
    let mut a = app();
    let c = a.config.clone();
    let mut p = progress(&c, 3, 3 << 20, None, (2u64 << 20) as f64);
    p.read = Some(256 << 20);
    p.read_total = Some(1024 << 20);
    p.eta_secs = Some(6);
    let run1 = a.runs[1].clone().unwrap();
    a.handle(Event::Runs(vec![idle(), run1, a.runs[2].clone().unwrap(), running(p)]));
    let s = render(&mut a, 130, 32);
    // the read is the progress (a quarter), the wire carries only the changed chunks
    assert!(s.contains("read 256.0 MiB of 1.0 GiB, sent 3.0 MiB"), "{s}");
    assert!(s.contains("ETA 6s"), "{s}");
    assert!(s.contains("25%"), "{s}");
}

#[test]
fn an_object_pass_shows_objects_per_second_beside_bytes() {
    let mut a = app();
    let c = a.config.clone();
    let mut p = progress(&c, 3, 48 << 20, Some(96 << 20), (4u64 << 20) as f64);
    p.objects = Some(1200);
    p.objects_total = Some(2400);
    p.objects_rate = Some(310.5);
    let run1 = a.runs[1].clone().unwrap();
    a.handle(Event::Runs(vec![idle(), run1, a.runs[2].clone().unwrap(), running(p)]));
    let s = render(&mut a, 130, 32);
    assert!(s.contains("48.0 MiB of 96.0 MiB, objects 1200 of 2400, 310.5/s"), "{s}");
    assert!(s.contains("4.0 MiB/s now"), "{s}");
}
