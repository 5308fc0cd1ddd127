//! Monitoring outputs parsed as their consumers parse them: `--nagios` plugin lines on every
//! action, `--nsca` passive checks received by a real nsca daemon, and `ferry metrics` in the
//! Prometheus text format.

use crate::common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::Lab;
use common::zfs::write_random_file;

/// A parsed plugin line: level word, summary, perfdata label -> (value, warn, crit).
struct Plugin {
    level: String,
    summary: String,
    perf: HashMap<String, (String, String, String)>,
}

fn plugin(line: &str) -> Plugin {
    let line = line.trim_end_matches('\n');
    assert_eq!(line.lines().count(), 1, "one line: {line:?}");
    let rest = line
        .strip_prefix("FERRY ")
        .unwrap_or_else(|| panic!("not a ferry plugin line: {line:?}"));
    let (level, rest) = rest.split_once(" - ").unwrap();
    let (summary, perf) = rest.split_once(" | ").unwrap_or((rest, ""));
    let perf = perf
        .split_whitespace()
        .map(|p| {
            let (label, v) = p.split_once('=').unwrap();
            let f: Vec<&str> = v.split(';').collect();
            (
                label.trim_matches('\'').to_string(),
                (f[0].to_string(), f[1].to_string(), f[2].to_string()),
            )
        })
        .collect();
    assert!(["OK", "WARNING", "CRITICAL", "UNKNOWN"].contains(&level), "{line}");
    Plugin {
        level: level.into(),
        summary: summary.into(),
        perf,
    }
}

#[test]
fn nagios_line_on_every_action_and_metrics() {
    let Some(lab) = Lab::new("mon", 128, 128, "wlag = \"4s\"\nclag = \"1h\"") else {
        return;
    };
    write_random_file(&lab.src_mnt().join("a.bin"), 1 << 20, 1);
    // before initialize: Uninitialized is a warning
    let r = lab.ferry(&["--nagios", "status", "data"]);
    let p = plugin(&r.stdout);
    assert_eq!((p.level.as_str(), r.code), ("WARNING", 1), "{}", r.stdout);
    assert!(p.summary.contains("Uninitialized"), "{}", p.summary);

    for action in [
        &["setup", "data"][..],
        &["initialize", "data"],
        &["update", "data"],
        &["fingerprint", "data"],
        &["logfile", "data"],
        &["unlock", "data"],
        &["purge", "data"],
        &["check"],
    ] {
        let mut args = vec!["--nagios"];
        args.extend_from_slice(action);
        let r = lab.ferry(&args);
        let p = plugin(&r.stdout);
        if action[0] == "setup" {
            // setup worked, and the line says what the pair is: not initialized yet
            assert_eq!((p.level.as_str(), r.code), ("WARNING", 1), "{}{}", r.stdout, r.stderr);
            assert!(p.summary.contains("Uninitialized"), "{}", p.summary);
            continue;
        }
        assert_eq!(
            (p.level.as_str(), r.code),
            ("OK", 0),
            "{args:?}: {}{}",
            r.stdout,
            r.stderr
        );
        assert!(p.summary.contains("Synchronized"), "{args:?}: {}", p.summary);
        {
            let (lag, w, c) = &p.perf["lag"];
            assert!(
                lag.ends_with('s') && lag.trim_end_matches('s').parse::<u64>().unwrap() < 4,
                "{lag}"
            );
            assert_eq!((w.as_str(), c.as_str()), ("4", "3600"));
            assert_eq!(p.perf["runtime"].0, "0s");
        }
    }
    // a failing action is CRITICAL, on stdout, exit 2
    let r = lab.ferry(&["--nagios", "initialize", "data"]);
    let p = plugin(&r.stdout);
    assert_eq!((p.level.as_str(), r.code), ("CRITICAL", 2));
    assert!(p.summary.contains("already initialized"), "{}", p.summary);
    assert!(
        p.perf.contains_key("lag") && p.perf.contains_key("runtime"),
        "a failure keeps the perfdata: {}",
        r.stdout
    );
    let r = lab.ferry(&["--nagios", "update", "nosuchpair"]);
    assert_eq!((plugin(&r.stdout).level.as_str(), r.code), ("CRITICAL", 2));

    // metrics after a successful run
    let t0 = chrono_now();
    let r = lab.ok(&["metrics"]);
    let m = parse_metrics(&r.stdout);
    let fp = lab.fingerprint();
    let get = |name: &str| -> f64 {
        m.iter()
            .find(|(n, l, _)| n == name && l.get("fingerprint") == Some(&fp))
            .unwrap_or_else(|| panic!("{name} missing:\n{}", r.stdout))
            .2
    };
    assert!(get("ferry_lag_seconds") < 10.0);
    assert!((t0 - get("ferry_last_success_timestamp_seconds")).abs() < 120.0);
    assert!(get("ferry_last_run_bytes") >= 0.0);
    assert_eq!(get("ferry_running"), 0.0);
    assert_eq!(get("ferry_locked"), 0.0);
    let states: Vec<_> = m.iter().filter(|(n, _, _)| n == "ferry_state").collect();
    assert_eq!(states.len(), 4);
    for (_, l, v) in &states {
        assert_eq!(*v, if l["state"] == "Synchronized" { 1.0 } else { 0.0 }, "{l:?}");
        assert_eq!(l["destination"], format!("local:{}", lab.dst_ds));
        assert_eq!(l["source"], format!("store1:{}", lab.src_ds));
    }
    // initialize moved the data: the bytes of that run were counted
    let init_bytes = {
        let r = lab.ok(&["--json", "status", "data"]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v[0]["last"]["bytes"].as_u64().unwrap()
    };
    assert_eq!(get("ferry_last_run_bytes"), init_bytes as f64);

    // lag beyond wlag: WARNING with the figure in the perfdata
    std::thread::sleep(Duration::from_secs(5));
    let r = lab.ferry(&["--nagios", "status"]);
    let p = plugin(&r.stdout);
    assert_eq!((p.level.as_str(), r.code), ("WARNING", 1), "{}", r.stdout);
    assert!(p.perf["lag"].0.trim_end_matches('s').parse::<u64>().unwrap() >= 4);
}

fn chrono_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// (name, labels, value) of every sample; checks that each family has HELP and TYPE first.
fn parse_metrics(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    let mut typed = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut f = rest.split_whitespace();
            typed.push(f.next().unwrap().to_string());
            assert_eq!(f.next(), Some("gauge"), "{line}");
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample {line:?}"));
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        assert!(typed.iter().any(|t| t == name), "{name} sampled before its TYPE");
        let labels = labels.strip_suffix('}').unwrap();
        let mut map = HashMap::new();
        for kv in labels.split("\",").filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once("=\"").unwrap();
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        out.push((
            name.to_string(),
            map,
            value.parse::<f64>().unwrap_or_else(|_| panic!("bad value {line:?}")),
        ));
    }
    out
}

/// A real nsca daemon on a free loopback port that dumps what it receives to a file.
struct Nsca {
    child: Child,
    port: u16,
    dump: std::path::PathBuf,
    send_cfg: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Nsca {
    fn start() -> Option<Nsca> {
        if Command::new("sh")
            .arg("-c")
            .arg("command -v nsca && command -v send_nsca")
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nsca / send_nsca missing (scripts/deps.sh installs them)"
            );
            eprintln!("SKIP: nsca or send_nsca missing (apt-get install nsca nsca-client)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dump = dir.path().join("dump");
        let cfg = dir.path().join("nsca.cfg");
        std::fs::write(
            &cfg,
            format!(
                "pid_file={d}/nsca.pid\nserver_port={port}\nserver_address=127.0.0.1\nnsca_user=root\nnsca_group=root\n\
                 debug=0\ncommand_file={d}/nosuchcmd\nalternate_dump_file={dump}\naggregate_writes=0\nappend_to_file=1\n\
                 max_packet_age=30\ndecryption_method=0\n",
                d = dir.path().display(),
                dump = dump.display()
            ),
        )
        .unwrap();
        let send_cfg = dir.path().join("send_nsca.cfg");
        std::fs::write(&send_cfg, "encryption_method=0\n").unwrap();
        let child = Command::new("nsca")
            .arg("-f")
            .arg("-c")
            .arg(&cfg)
            .arg("--single")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "nsca did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Nsca {
            child,
            port,
            dump,
            send_cfg,
            _dir: dir,
        })
    }

    /// Received results `(host, service, code, output)`, waiting up to 5 s for `n` of them.
    fn received(&self, n: usize) -> Vec<(String, String, String, String)> {
        let t = Instant::now();
        loop {
            let text = std::fs::read_to_string(&self.dump).unwrap_or_default();
            let rows: Vec<_> = text
                .lines()
                .filter_map(|l| l.split_once("] PROCESS_SERVICE_CHECK_RESULT;"))
                .map(|(_, r)| {
                    let f: Vec<&str> = r.splitn(4, ';').collect();
                    (f[0].to_string(), f[1].to_string(), f[2].to_string(), f[3].to_string())
                })
                .collect();
            if rows.len() >= n || t.elapsed() > Duration::from_secs(5) {
                return rows;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Nsca {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nsca_passive_checks_reach_a_real_daemon() {
    let Some(nsca) = Nsca::start() else { return };
    let Some(lab) = Lab::new("nsc", 128, 128, "") else {
        return;
    };
    write_random_file(&lab.src_mnt().join("a.bin"), 256 << 10, 2);
    let port = nsca.port.to_string();
    let cfg = nsca.send_cfg.to_str().unwrap().to_string();
    let base = [
        "--nsca",
        "127.0.0.1",
        "--nsca-port",
        &port,
        "--nsca-config",
        &cfg,
        "--nsca-host-name",
        "backup1",
    ];
    lab.ok(&["setup", "data"]);
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["initialize", "data"]);
    let r = lab.ok(&args);
    assert_eq!(r.stdout, "", "without --nagios the action prints what it always prints");
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--nagios", "update", "nosuchpair"]);
    assert_eq!(lab.ferry(&args).code, 2);
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--nagios", "status"]);
    let r = lab.ferry(&args);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let got = nsca.received(2);
    assert_eq!(got.len(), 2, "{got:?}");
    let service = format!("service/ferry:{}", lab.fingerprint());
    for (host, svc, code, out) in &got {
        assert_eq!(
            (host.as_str(), svc.as_str(), code.as_str()),
            ("backup1", service.as_str(), "0")
        );
        let p = plugin(out);
        assert_eq!(p.level, "OK");
        assert!(p.perf.contains_key("lag"), "{out}");
    }
    // the last one is the same line --nagios printed
    assert_eq!(got[1].3, r.stdout.trim_end());
    // an unreachable NSCA server is an error, not silence
    let mut args: Vec<&str> = vec![
        "--nsca",
        "127.0.0.1",
        "--nsca-port",
        "1",
        "--nsca-config",
        &cfg,
        "status",
        "data",
    ];
    let r = lab.ferry(&args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("send_nsca to 127.0.0.1:1 failed"), "{}", r.stderr);
    args.clear();
}

/// The status table's FLAGS cell of the one pair (header, then the row).
fn flags_cell(table: &str) -> String {
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    let col = header.find("FLAGS").unwrap();
    lines.next().unwrap()[col..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn problem_pairs_stand_out_in_status_and_nagios() {
    let Some(lab) = Lab::new("mpb", 128, 128, "") else {
        return;
    };
    // Inconsistent: something ferry never wrote sits where the destination goes
    common::zfs::run(&format!("zfs create -p {}", lab.dst_ds));
    let r = lab.ferry(&["status", "data"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(flags_cell(&r.stdout), "X--", "{}", r.stdout);
    assert!(
        r.stdout
            .contains("Inconsistent: destination exists but is not a ferry replica"),
        "{}",
        r.stdout
    );
    assert_eq!(lab.status()["flags"], "X--");
    let r = lab.ferry(&["--nagios", "status", "data"]);
    assert_eq!(
        (plugin(&r.stdout).level.as_str(), r.code),
        ("CRITICAL", 2),
        "{}",
        r.stdout
    );
    common::zfs::run_retry_busy(&format!("zfs destroy {}", lab.dst_ds));

    // a typo in the source: said as such, with the right advice
    let typo = lab.src_ds.replace("/data", "/dtaa");
    let kh = lab.sshd.known_hosts.clone();
    lab.write_config_for(&format!("store1:{typo}"), &lab.dst_ds, "", &kh, false);
    let r = lab.ferry(&["status", "data"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("source store1:{typo} does not exist")),
        "{}",
        r.stdout
    );
    assert_eq!(flags_cell(&r.stdout), "X--", "{}", r.stdout);
    let r = lab.ferry(&["update", "data"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!("source store1:{typo} does not exist")) && !r.stderr.contains("re-create"),
        "{}",
        r.stderr
    );

    // Unknown: the source host does not answer
    lab.write_config("", &kh, false);
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let text = text.replace(&format!("port = {}\n", lab.sshd.port), &format!("port = {port}\n"));
    std::fs::write(&lab.config, text).unwrap();
    let r = lab.ferry(&["status", "data"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(flags_cell(&r.stdout), "?--", "{}", r.stdout);
    let r = lab.ferry(&["--nagios", "status", "data"]);
    assert_eq!(
        (plugin(&r.stdout).level.as_str(), r.code),
        ("UNKNOWN", 3),
        "{}",
        r.stdout
    );
}
