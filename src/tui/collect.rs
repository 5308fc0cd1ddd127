//! The console's background layer: collectors that read status, jobs, hosts and this machine and
//! report through the event channel, and the executor of the commands input produces. Nothing here
//! paints; nothing in painting waits on a host.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;

use crate::config::{Pair, LOCAL};
use crate::engine::status;
use crate::engine::types::{RunInfo, RunState};
use crate::engine::{hosts, Engine};
use crate::state::last::LastResult;

use super::app::Command;
use super::event::{Event, Loaded, SystemView};
use super::launch;

/// How often the state dir is polled for jobs: twice as often as progress is written is not
/// needed; a job's figures are four times a second fresh, the screen updates twice a second.
pub const RUNS_EVERY: Duration = Duration::from_millis(500);
pub const HOSTS_EVERY: Duration = Duration::from_secs(15);
pub const SYSTEM_EVERY: Duration = Duration::from_secs(2);
/// How often the config file is compared with what the console read.
pub const CONFIG_EVERY: Duration = Duration::from_secs(2);

pub struct Background {
    pub engine: Arc<Engine>,
    pub tx: UnboundedSender<Event>,
    refresh: Arc<Notify>,
    exe: PathBuf,
    /// Set when these collectors' config is replaced: they end at their next turn.
    stop: Arc<AtomicBool>,
    /// The config file's bytes as the collectors' config was read from them.
    loaded: Arc<Mutex<Arc<Vec<u8>>>>,
}

/// The collectors that read for one config (status, jobs, hosts); they end when `stop` is set
/// or the receiver is dropped.
fn start_collectors(engine: &Arc<Engine>, tx: &UnboundedSender<Event>, refresh: &Arc<Notify>, stop: &Arc<AtomicBool>) {
    tokio::spawn(status_loop(engine.clone(), tx.clone(), refresh.clone(), stop.clone()));
    tokio::spawn(runs_loop(engine.clone(), tx.clone(), stop.clone()));
    tokio::spawn(hosts_loop(engine.clone(), tx.clone(), stop.clone()));
    if !engine.config.clusters.is_empty() {
        tokio::spawn(clusters_loop(engine.clone(), tx.clone(), stop.clone()));
    }
}

/// How often the clusters' journals are read (each read replays the journal).
const CLUSTERS_EVERY: Duration = Duration::from_secs(2);

/// Reads every cluster's status from its persist path (journal, lock, the instance's report).
async fn clusters_loop(engine: Arc<Engine>, tx: UnboundedSender<Event>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(CLUSTERS_EVERY);
    loop {
        tick.tick().await;
        let engine2 = engine.clone();
        let res = tokio::task::spawn_blocking(move || {
            engine2
                .config
                .clusters
                .iter()
                .filter_map(|c| crate::engine::cluster::report::status(c).ok())
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(all) = res else { return };
        if stop.load(Ordering::Relaxed) || tx.send(Event::Clusters(all)).is_err() {
            return;
        }
    }
}

/// The config file's bytes (empty when it cannot be read: that differs from any real content).
fn read_config(path: &std::path::Path) -> Vec<u8> {
    crate::state::files::read_small(path).unwrap_or_default()
}

impl Background {
    /// Starts every collector and the config watcher; they stop when the receiver is dropped.
    pub fn start(engine: Arc<Engine>, tx: UnboundedSender<Event>) -> Background {
        let refresh = Arc::new(Notify::new());
        let stop = Arc::new(AtomicBool::new(false));
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ferry"));
        let loaded = Arc::new(Mutex::new(Arc::new(read_config(&engine.config.path))));
        start_collectors(&engine, &tx, &refresh, &stop);
        tokio::spawn(system_loop(tx.clone()));
        tokio::spawn(config_loop(engine.config.path.clone(), loaded.clone(), tx.clone()));
        Background {
            engine,
            tx,
            refresh,
            exe,
            stop,
            loaded,
        }
    }

    pub fn execute(&mut self, cmd: Command) {
        match cmd {
            Command::RefreshStatus => self.refresh.notify_one(),
            Command::ReloadConfig => {
                let (path, tx, refresh) = (self.engine.config.path.clone(), self.tx.clone(), self.refresh.clone());
                let current = self.loaded.lock().unwrap().clone();
                tokio::task::spawn_blocking(move || {
                    let bytes = read_config(&path);
                    if bytes == *current {
                        // nothing changed on disk: F5 is a status refresh
                        refresh.notify_one();
                        let _ = tx.send(Event::ConfigUnchanged);
                        return;
                    }
                    let answer = crate::config::load(&path)
                        .map(|c| Loaded {
                            config: Arc::new(c),
                            bytes: Arc::new(bytes),
                        })
                        .map_err(|e| e.to_string());
                    let _ = tx.send(Event::ConfigReloaded(answer));
                });
            }
            Command::UseConfig(loaded) => {
                // the old collectors end; new ones read for the new config with new connections
                self.stop.store(true, Ordering::Relaxed);
                self.stop = Arc::new(AtomicBool::new(false));
                self.refresh = Arc::new(Notify::new());
                let state = self.engine.state.root().to_path_buf();
                self.engine = Arc::new(Engine::new((*loaded.config).clone(), Some(state), false));
                *self.loaded.lock().unwrap() = loaded.bytes;
                start_collectors(&self.engine, &self.tx, &self.refresh, &self.stop);
            }
            Command::LoadLog { fingerprint } => {
                let path = self.engine.state.log_path(&fingerprint);
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || {
                    let lines = tail(&path, 12);
                    let _ = tx.send(Event::LogTail { fingerprint, lines });
                });
            }
            Command::Launch { action, dest } => {
                launch::detached(&self.exe, &self.engine, action, &dest, self.tx.clone())
            }
            Command::PreviewPurge { dest } => launch::preview(&self.exe, &self.engine, "purge", &dest, self.tx.clone()),
            // handled by the run loop, which owns the terminal
            Command::Suspend => {}
        }
    }
}

/// The last `n` lines of a file (reads at most the last 64 KiB).
pub fn tail(path: &std::path::Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    // never blocks on a FIFO planted as the log, never follows a symlink
    let Ok(mut f) = crate::state::files::open_regular(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = f.read_to_end(&mut bytes);
    // the seek may land inside a character, and a job's output is not ours to trust
    let s = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| crate::text::escape_controls(l).into_owned())
        .collect()
}

/// Tells the console once each time the config file stops being what the collectors read.
async fn config_loop(path: PathBuf, loaded: Arc<Mutex<Arc<Vec<u8>>>>, tx: UnboundedSender<Event>) {
    let mut told: Option<Vec<u8>> = None;
    // the file is read only when its size or time moved (or a reload replaced what it is
    // compared with): a stat every two seconds, not a read
    let mut seen: Option<(Option<(u64, std::time::SystemTime)>, usize)> = None;
    let mut tick = tokio::time::interval(CONFIG_EVERY);
    loop {
        tick.tick().await;
        let current = loaded.lock().unwrap().clone();
        let meta = std::fs::metadata(&path)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        let key = (meta, Arc::as_ptr(&current) as usize);
        if seen == Some(key) {
            continue;
        }
        seen = Some(key);
        let p = path.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || read_config(&p)).await else {
            return;
        };
        if now == *current {
            if told.take().is_some() && tx.send(Event::ConfigUnchanged).is_err() {
                return;
            }
        } else if told.as_ref() != Some(&now) {
            told = Some(now);
            if tx.send(Event::ConfigChanged).is_err() {
                return;
            }
        }
    }
}

async fn status_loop(engine: Arc<Engine>, tx: UnboundedSender<Event>, refresh: Arc<Notify>, stop: Arc<AtomicBool>) {
    let every = engine.config.console.refresh;
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let pairs: Vec<&Pair> = engine.config.pairs.iter().collect();
        let st = crate::engine::kind::status(&engine, &pairs).await;
        // a status of the old config must not land on the new one's pairs
        if stop.load(Ordering::Relaxed) || tx.send(Event::Status(st)).is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = refresh.notified() => {}
        }
    }
}

/// Polls the state dir. Only pairs with a lock file get the full look (lock, progress); the
/// others' last result is re-read only when its file changed, so thousands of idle pairs cost
/// one directory listing and a stat each.
async fn runs_loop(engine: Arc<Engine>, tx: UnboundedSender<Event>, stop: Arc<AtomicBool>) {
    let mut last_cache: HashMap<String, (std::time::SystemTime, Option<LastResult>)> = HashMap::new();
    let mut previous: Option<Vec<(u8, i64, i64, i64)>> = None;
    let mut tick = tokio::time::interval(RUNS_EVERY);
    loop {
        tick.tick().await;
        let engine2 = engine.clone();
        let mut cache = std::mem::take(&mut last_cache);
        let res = tokio::task::spawn_blocking(move || {
            let runs = poll_runs(&engine2, &mut cache);
            (runs, cache)
        })
        .await;
        let Ok((runs, cache)) = res else { return };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        last_cache = cache;
        let key: Vec<(u8, i64, i64, i64)> = runs
            .iter()
            .map(|r| {
                (
                    r.status as u8,
                    r.lock.as_ref().map(|l| l.started).unwrap_or(0),
                    r.progress.as_ref().map(|p| p.updated_ms).unwrap_or(0),
                    r.last.as_ref().map(|l| l.finished).unwrap_or(0),
                )
            })
            .collect();
        // running jobs' runtimes move every second even without new progress
        let any_running = runs
            .iter()
            .any(|r| matches!(r.status, RunState::Running | RunState::Initializing));
        if previous.as_ref() != Some(&key) || any_running {
            previous = Some(key);
            if tx.send(Event::Runs(runs)).is_err() {
                return;
            }
        }
    }
}

fn poll_runs(
    engine: &Engine,
    cache: &mut HashMap<String, (std::time::SystemTime, Option<LastResult>)>,
) -> Vec<RunInfo> {
    let locked = engine.state.locked_pairs();
    // other instances' jobs, when instances coordinate; the engine down shows this host's only
    let remote = status::coordinated_locks(engine);
    engine
        .config
        .pairs
        .iter()
        .map(|p| {
            let fp = p.fingerprint();
            if locked.contains(&fp) || remote.contains_key(&fp) {
                return status::run_info_with(&engine.state, p, &remote);
            }
            let path = engine.state.last_path(&fp);
            let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            let last = match (mtime, cache.get(&fp)) {
                (Some(m), Some((seen, last))) if *seen == m => last.clone(),
                (Some(m), _) => {
                    let l = LastResult::read(&path);
                    cache.insert(fp.clone(), (m, l.clone()));
                    l
                }
                (None, _) => None,
            };
            RunInfo {
                status: RunState::Idle,
                lock: None,
                runtime_secs: None,
                last,
                // read with the pair's status (status::run_info), not on this fast tick
                retention: None,
                progress: None,
            }
        })
        .collect()
}

async fn hosts_loop(engine: Arc<Engine>, tx: UnboundedSender<Event>, stop: Arc<AtomicBool>) {
    let mut names: Vec<String> = engine.config.hosts.keys().cloned().collect();
    let uses_local = engine
        .config
        .pairs
        .iter()
        .any(|p| p.source.is_local() || p.destination.is_local());
    if uses_local {
        names.insert(0, LOCAL.to_string());
    }
    let mut tick = tokio::time::interval(HOSTS_EVERY);
    loop {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let reports = futures::future::join_all(names.iter().map(|h| hosts::probe(&engine, h))).await;
        if tx.send(Event::Hosts(reports)).is_err() {
            return;
        }
    }
}

async fn system_loop(tx: UnboundedSender<Event>) {
    use sysinfo::{Disks, Networks, System};
    // where sysinfo cannot read this machine, the pane says "reading…" and nothing else breaks
    let (Ok(mut sys), Ok(mut nets), Ok(mut disks)) = (
        System::new(),
        Networks::new_with_refreshed_list(),
        Disks::new_with_refreshed_list(),
    ) else {
        return;
    };
    let mut tick = tokio::time::interval(SYSTEM_EVERY);
    let mut last = std::time::Instant::now();
    loop {
        tick.tick().await;
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        nets.refresh(true);
        disks.refresh(true);
        let dt = last.elapsed().as_secs_f64().max(0.001);
        last = std::time::Instant::now();
        let (rx, txb) = (&nets)
            .into_iter()
            .fold((0u64, 0u64), |(r, t), (_, n)| (r + n.received(), t + n.transmitted()));
        let (rd, wr) = (&disks).into_iter().fold((0u64, 0u64), |(r, w), d| {
            let u = d.usage();
            (r + u.read_bytes, w + u.written_bytes)
        });
        let view = SystemView {
            cpu_percent: sys.global_cpu_usage(),
            mem_used: sys.used_memory(),
            mem_total: sys.total_memory(),
            net_rx: rx as f64 / dt,
            net_tx: txb as f64 / dt,
            disk_read: rd as f64 / dt,
            disk_write: wr as f64 / dt,
        };
        if tx.send(Event::System(view)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tail_escapes_what_a_job_printed_and_survives_a_cut_character() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("console.out");
        // 64 KiB + 1 byte of 2-byte characters: the seek lands inside one
        let mut body = "é".repeat(32 * 1024 + 1);
        body.push_str("\nferry: error: \u{1b}]0;owned\u{7}\u{1b}[2J\n");
        std::fs::write(&p, body).unwrap();
        let lines = super::tail(&p, 1);
        assert_eq!(
            lines,
            vec!["ferry: error: \\u001b]0;owned\\u0007\\u001b[2J".to_string()]
        );
    }
}
