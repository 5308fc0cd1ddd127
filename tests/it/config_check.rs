//! `ferry check` on good and bad configs: every bad one fails with a message naming the file,
//! the line and the key.

use crate::common;

const HOST: &str = "[hosts.store1]\naddress = \"192.0.2.10\"\n";
/// `[coordination]` through plain http, and through https; keys to test follow on line 4.
const ETCD: &str = "[coordination]\nengine = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\n";
const ETCDS: &str = "[coordination]\nengine = \"etcd\"\nendpoints = [\"https://etcd1.example.net:2379\"]\n";

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, text).unwrap();
    let out = common::runner::bare()
        .arg("-c")
        .arg(&path)
        .arg("check")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn good_config_is_understood() {
    let text = format!(
        "state_dir = \"/tmp/ferry-state\"\n[defaults]\nwlag = \"30m\"\nclag = \"2h\"\nbwlimit = \"50M\"\nkeep = 5\n{HOST}\
         [[pair]]\nsource = \"store1:tank/data\"\ndestination = \"backup/data\"\nport = 9090\nwlag = \"10m\"\n\
         [[pair]]\nsource = \"store1:tank/web\"\ndestination = \"backup/web\"\n\
         [[cluster]]\nname = \"shared\"\npersist_path = \"/tmp/c\"\nvolumes = [{{ at = \"store1:tank/s\", listen = true }}]\n"
    );
    let (code, out, err) = check(&text);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.contains("store1:tank/data -> local:backup/data"), "{out}");
    assert!(
        out.contains("wlag 10m00s clag 2h00m"),
        "pair override and inherited default: {out}"
    );
    assert!(out.contains("bwlimit 50.0 MiB/s"), "{out}");
    assert!(out.contains("keep 5"), "{out}");
    assert!(out.contains("store1:tank/s (zfs)  listen=true update=false"), "{out}");
    assert!(out.contains("coordination local"), "{out}");
}

#[test]
fn coordination_through_etcd_is_shown_with_a_warning_for_plain_http_beyond_this_host() {
    let text = format!(
        "[coordination]\nengine = \"etcd\"\nendpoints = [\"http://etcd1.example.net:2379\", \"http://127.0.0.1:2379/\"]\nlease = \"10s\"\n\
         {HOST}[[cluster]]\nname = \"shared\"\npersist_path = \"/srv/shared\"\ncoordination = \"etcd\"\n\
         volumes = [{{ at = \"store1:tank/s\", listen = true }}]\n"
    );
    let (code, out, err) = check(&text);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        out.contains(
            "coordination: etcd http://etcd1.example.net:2379, http://127.0.0.1:2379  lease 10s  prefix /ferry"
        ),
        "{out}"
    );
    assert!(out.contains("warning: plain http"), "{out}");
    assert!(out.contains("coordination etcd"), "{out}");
    assert!(
        out.contains("warning: no etcd authentication (user, password_file): anyone who reaches etcd can take or break ferry's locks"),
        "{out}"
    );
    // a wrong type is said once, where it is
    for (value, says) in [
        ("[2379]", "expected a string"),
        ("\"http://127.0.0.1:2379\"", "expected an array"),
    ] {
        let (code, _, err) = check(&format!("[coordination]\nengine = \"etcd\"\nendpoints = {value}\n"));
        assert_eq!(code, 1);
        assert!(err.contains("FILE:3: key `endpoints`") && err.contains(says), "{err}");
        assert_eq!(err.matches("key `endpoints`").count(), 1, "{err}");
    }
}

#[test]
fn bad_configs_name_file_line_and_key() {
    let pair =
        |extra: &str| format!("{HOST}[[pair]]\nsource = \"store1:tank/data\"\ndestination = \"backup/data\"\n{extra}");
    // (config, expected fragments of the error)
    let cluster =
        |extra: &str| format!("{HOST}[[cluster]]\nname = \"c\"\npersist_path = \"/var/lib/ferry/c\"\n{extra}");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (cluster("settle = \"soon\"\n"), vec!["FILE:6:", "key `settle`"]),
        (
            cluster("coordination = \"etcd\"\n"),
            vec!["FILE:6:", "key `coordination`", "needs a [coordination] table"],
        ),
        (
            cluster("coordination = \"zookeeper\"\n"),
            vec!["FILE:6:", "key `coordination`", "\"local\"", "\"etcd\""],
        ),
        (
            "[coordination]\nengine = \"nats\"\nendpoints = [\"http://127.0.0.1:2379\"]\n".to_string(),
            vec!["FILE:2:", "key `engine`", "not supported"],
        ),
        (
            "[coordination]\nengine = \"etcd\"\n".to_string(),
            vec!["FILE:1:", "key `endpoints`", "needs endpoints"],
        ),
        (
            "[coordination]\nengine = \"etcd\"\nendpoints = [\"https://etcd1.example.net:2379/v3\"]\n".to_string(),
            vec!["FILE:3:", "key `endpoints`", "host and port only"],
        ),
        (
            format!("{ETCD}user = \"ferry\"\n"),
            vec!["FILE:4:", "key `user`", "needs password_file"],
        ),
        (
            format!("{ETCD}password_file = \"/etc/ferry/etcd.pw\"\n"),
            vec!["FILE:4:", "key `password_file`", "needs user"],
        ),
        (
            format!("{ETCD}user = \"ferry\"\npassword_file = \"\"\n"),
            vec!["FILE:5:", "key `password_file`", "must name a file"],
        ),
        (
            format!("{ETCD}user = \"fer ry\"\npassword_file = \"/etc/ferry/etcd.pw\"\n"),
            vec!["FILE:4:", "key `user`", "no spaces"],
        ),
        (
            format!("{ETCD}user = \"ferry\"\npassword = \"hunter2-secret\"\n"),
            vec!["FILE:5:", "key `password`", "never goes in the config", "password_file"],
        ),
        (
            format!("{ETCD}ca_file = \"/etc/ferry/ca.pem\"\n"),
            vec!["FILE:4:", "key `ca_file`", "for https endpoints"],
        ),
        (
            format!("{ETCDS}cert_file = \"/etc/ferry/client.pem\"\n"),
            vec!["FILE:4:", "key `cert_file`", "needs key_file"],
        ),
        (
            format!("{ETCDS}key_file = \"/etc/ferry/client.key\"\n"),
            vec!["FILE:4:", "key `key_file`", "needs cert_file"],
        ),
        (
            "[coordination]\nengine = \"etcd\"\nendpoints = [\"http://etcd1.example.net:2379/v3\"]\n".to_string(),
            vec!["FILE:3:", "key `endpoints`", "host and port only"],
        ),
        (
            "[coordination]\nengine = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nlease = \"1s\"\n".to_string(),
            vec!["FILE:4:", "key `lease`", "from 2s"],
        ),
        (
            "[coordination]\nengine = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nlease = \"2500ms\"\n"
                .to_string(),
            vec!["FILE:4:", "key `lease`", "whole seconds"],
        ),
        (
            "[coordination]\nengine = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nttl = \"5s\"\n".to_string(),
            vec!["FILE:4:", "key `ttl`", "unknown key"],
        ),
        (
            cluster("volumes = [{ at = \"store1:tank/x\", kind = \"btrfs\", listen = true }]\n"),
            vec!["FILE:6:", "key `at`", "must be absolute"],
        ),
        (
            pair("colour = \"blue\"\n"),
            vec!["FILE:6:", "key `colour`", "unknown key"],
        ),
        (
            pair("mbuffer_address = \"a b\"\n"),
            vec!["FILE:6:", "key `mbuffer_address`", "not a host name or IP address"],
        ),
        (
            pair("mbuffer_timeout = \"0s\"\n"),
            vec!["FILE:6:", "key `mbuffer_timeout`", "at least 1s"],
        ),
        (
            pair("idle_timeout = \"0s\"\n"),
            vec!["FILE:6:", "key `idle_timeout`", "at least 1s"],
        ),
        (pair("idle_timeout = \"soon\"\n"), vec!["FILE:6:", "key `idle_timeout`"]),
        (
            format!("max_jobs_per_host = 0\n{}", pair("")),
            vec!["FILE:1:", "key `max_jobs_per_host`", "between 1 and 256"],
        ),
        (
            pair("transport = \"local\"\ncompress = \"zstd\"\n"),
            vec!["FILE:", "key `"],
        ),
        (
            pair("wlag = \"2x\"\n"),
            vec!["FILE:6:", "key `wlag`", "bad duration \"2x\""],
        ),
        (pair("clag = \"\"\n"), vec!["FILE:6:", "key `clag`", "empty duration"]),
        (
            pair("bwlimit = \"lots\"\n"),
            vec!["FILE:6:", "key `bwlimit`", "bad size"],
        ),
        (pair("keep = 0\n"), vec!["FILE:6:", "key `keep`"]),
        (
            pair("transport = \"carrier-pigeon\"\n"),
            vec!["FILE:6:", "key `transport`", "unknown transport"],
        ),
        (
            pair("wlag = 3\n").replace("wlag = 3", "wlag = [3]"),
            vec!["FILE:6:", "key `wlag`"],
        ),
        (
            format!("{HOST}[[pair]]\nsource = \"nowhere:tank/data\"\ndestination = \"backup/data\"\n"),
            vec!["FILE:4:", "key `source`", "undefined host \"nowhere\""],
        ),
        (
            format!(
                "{}[[pair]]\nsource = \"store1:tank/other\"\ndestination = \"backup/data\"\n",
                pair("")
            ),
            vec!["FILE:8:", "key `destination`", "duplicate destination", "line 3"],
        ),
        (
            format!(
                "{}[[pair]]\nsource = \"store1:tank/o\"\ndestination = \"backup/o\"\nport = 9090\n",
                pair("port = 9090\n")
            ),
            vec!["FILE:10:", "key `port`", "duplicate mbuffer port 9090"],
        ),
        (
            format!("{HOST}[[pair]]\nsource = \"store1:tank/da;ta\"\ndestination = \"backup/data\"\n"),
            vec!["FILE:4:", "key `source`", "contains ';'"],
        ),
        (
            format!("{HOST}[[pair]]\nsource = \"store1:tank/data\"\ndestination = \"backup/$(reboot)\"\n"),
            vec!["FILE:5:", "key `destination`", "contains '$'"],
        ),
        (
            format!("{HOST}[[pair]]\nsource = \"store1:tank/my*data\"\ndestination = \"backup/data\"\n"),
            vec!["FILE:4:", "key `source`", "contains '*'"],
        ),
        (
            format!("{HOST}[[pair]]\nsource = \"store1:tank/../etc\"\ndestination = \"backup/data\"\n"),
            vec!["FILE:4:", "key `source`", "\"..\" component"],
        ),
        (
            format!("{HOST}[[pair]]\nsource = \"store1:tank//data\"\ndestination = \"backup/data\"\n"),
            vec!["FILE:4:", "key `source`", "empty component"],
        ),
        (
            "[hosts.store1]\naddress = \"192.0.2.10; rm -rf /\"\n".to_string(),
            vec!["FILE:2:", "key `address`"],
        ),
        (
            "[hosts.\"bad host\"]\naddress = \"192.0.2.10\"\n".to_string(),
            vec!["FILE:1:", "contains ' '"],
        ),
        (
            "[hosts.store1]\naddress = \"192.0.2.10\"\nuser = \"-oProxyCommand=x\"\n".to_string(),
            vec!["FILE:3:", "key `user`"],
        ),
        (
            "[hosts.store1]\naddress = \"192.0.2.10\"\nport = 70000\n".to_string(),
            vec!["FILE:3:", "key `port`"],
        ),
        (
            "[defaults]\nsource = \"tank/x\"\n".to_string(),
            vec!["FILE:2:", "key `source`", "[defaults]"],
        ),
        (
            "[[pair]]\nsource = \"tank/a\"\n".to_string(),
            vec!["FILE:1:", "key `destination`"],
        ),
        ("state_dir = \n".to_string(), vec!["FILE:1:"]),
    ];
    for (text, expect) in cases {
        let (code, _, err) = check(&text);
        assert_ne!(code, 0, "accepted a bad config:\n{text}");
        assert!(err.starts_with("ferry: error: check: "), "error shape: {err}");
        for frag in &expect {
            assert!(
                err.contains(frag),
                "expected {frag:?} in error for config:\n{text}\ngot: {err}"
            );
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !err.contains("hunter2"),
            "a password in the config is never repeated: {err}"
        );
    }
}

#[test]
fn missing_config_says_where_it_looked() {
    let out = common::runner::bare()
        .arg("-c")
        .arg("/nonexistent/ferry.toml")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/ferry.toml") && err.contains("cannot read config"),
        "{err}"
    );
}

/// Runs `ferry -c FILE ACTION` with a deadline: a hang is a failure, not a stuck suite.
fn run_with_deadline(config: &std::path::Path, action: &str, secs: u64) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = common::runner::bare();
    cmd.arg("-c").arg(config).arg(action);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // a ferry that reads without a cap must hit this limit, not the machine's memory
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > std::time::Duration::from_secs(secs) {
            child.kill().unwrap();
            child.wait().unwrap();
            return (None, "timed out".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn device_and_fifo_as_config_are_refused_quickly() {
    let (code, err) = run_with_deadline(std::path::Path::new("/dev/zero"), "check", 10);
    assert_eq!(code, Some(1), "/dev/zero: {err}");
    assert!(err.contains("/dev/zero") && err.contains("not a regular file"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ferry.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (code, err) = run_with_deadline(&fifo, "status", 10);
    assert_eq!(code, Some(1), "FIFO: {err}");
    assert!(
        err.contains(&fifo.display().to_string()) && err.contains("FIFO"),
        "{err}"
    );

    // a regular file larger than the cap is refused, not read
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(17 << 20).unwrap();
    let (code, err) = run_with_deadline(&big, "check", 10);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("larger than 16 MiB"), "{err}");
}

#[test]
fn nested_destinations_and_sources_inside_destinations_are_refused() {
    let two = |a: (&str, &str), b: (&str, &str)| {
        format!(
            "{HOST}[[pair]]\nsource = \"{}\"\ndestination = \"{}\"\n\n[[pair]]\nsource = \"{}\"\ndestination = \"{}\"\n",
            a.0, a.1, b.0, b.1
        )
    };
    // the second pair's destination inside the first's, and the other way round
    for (cfg, line) in [
        (
            two(("store1:tank/a", "backup/x"), ("store1:tank/b", "backup/x/y")),
            "FILE:9:",
        ),
        (
            two(("store1:tank/b", "backup/x/y"), ("store1:tank/a", "backup/x")),
            "FILE:9:",
        ),
    ] {
        let (code, _, err) = check(&cfg);
        assert_ne!(code, 0, "accepted nested destinations:\n{cfg}");
        for frag in [
            line,
            "key `destination`",
            "line 3",
            "line 7",
            "local:backup/x",
            "local:backup/x/y",
        ] {
            assert!(err.contains(frag), "{frag:?} missing: {err}");
        }
    }
    // a source inside another pair's destination (same host)
    let cfg = two(("store1:tank/a", "backup/x"), ("backup/x/child", "store1:tank/c"));
    let (code, _, err) = check(&cfg);
    assert_ne!(code, 0, "accepted a source inside a destination:\n{cfg}");
    for frag in ["FILE:8:", "key `source`", "line 3", "line 7", "inside"] {
        assert!(err.contains(frag), "{frag:?} missing: {err}");
    }
    // the same paths on different hosts are unrelated; a cascade (replica sent on) is fine
    for cfg in [
        two(("tank/a", "store1:backup/x"), ("tank/b", "backup/x/y")),
        two(("store1:tank/a", "backup/x"), ("backup/x", "store1:tank/copy")),
        two(("store1:tank/a", "backup/x"), ("store1:tank/b", "backup/xy")),
    ] {
        let (code, _, err) = check(&cfg);
        assert_eq!(code, 0, "refused a good config:\n{cfg}\n{err}");
    }
}

#[test]
fn mbuffer_with_ipv6_is_refused() {
    let v6 = "[hosts.six]\naddress = \"2001:db8::10\"\n";
    let cases = [
        // an explicit IPv6 listener address
        (
            format!("{HOST}[[pair]]\nsource = \"store1:tank/a\"\ndestination = \"backup/a\"\ntransport = \"mbuffer\"\nport = 9090\nmbuffer_address = \"2001:db8::20\"\n"),
            vec!["FILE:8:", "key `mbuffer_address`", "IPv6"],
        ),
        // the default listener address: the destination host's, IPv6
        (
            format!("{v6}[[pair]]\nsource = \"tank/a\"\ndestination = \"six:backup/a\"\ntransport = \"mbuffer\"\nport = 9090\n"),
            vec!["FILE:6:", "key `transport`", "six", "IPv6"],
        ),
        // the source host at an IPv6 address
        (
            format!("{v6}[[pair]]\nsource = \"six:tank/a\"\ndestination = \"backup/a\"\ntransport = \"mbuffer\"\nport = 9090\nmbuffer_address = \"192.0.2.20\"\n"),
            vec!["FILE:6:", "key `transport`", "six", "IPv6"],
        ),
    ];
    for (cfg, expect) in cases {
        let (code, _, err) = check(&cfg);
        assert_ne!(code, 0, "accepted mbuffer over IPv6:\n{cfg}");
        for frag in expect {
            assert!(err.contains(frag), "{frag:?} missing: {err}");
        }
    }
    // IPv6 over ssh is fine
    let cfg = format!("{v6}[[pair]]\nsource = \"six:tank/a\"\ndestination = \"backup/a\"\n");
    let (code, _, err) = check(&cfg);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn dataset_names_leave_room_for_the_snapshot_suffix() {
    // ZFS allows 255 characters for the whole snapshot name: `@ferry.<32 hex>.<16>` is 56 of them
    let long = format!("tank/{}", "d".repeat(195)); // 200 characters
    let ok = format!("tank/{}", "d".repeat(194)); // 199
    let cfg = |src: &str| format!("{HOST}[[pair]]\nsource = \"store1:{src}\"\ndestination = \"backup/data\"\n");
    let (code, _, err) = check(&cfg(&long));
    assert_ne!(code, 0, "accepted a 200-character dataset");
    for frag in ["FILE:4:", "key `source`", "200 characters", "199"] {
        assert!(err.contains(frag), "{frag:?} missing: {err}");
    }
    let (code, _, err) = check(&cfg(&ok));
    assert_eq!(code, 0, "{err}");
    let dst = format!("{HOST}[[pair]]\nsource = \"store1:tank/a\"\ndestination = \"{long}\"\n");
    let (code, _, err) = check(&dst);
    assert_ne!(code, 0);
    assert!(err.contains("FILE:5:") && err.contains("key `destination`"), "{err}");
}

#[test]
fn pairs_with_the_same_fingerprint_are_refused() {
    // "local:t/a::local:t/b" + "::" + "local:t/c" reads the same either way ':' is legal in names
    let cfg = "[[pair]]\nsource = \"t/a::local:t/b\"\ndestination = \"t/c\"\n\n\
               [[pair]]\nsource = \"t/a\"\ndestination = \"t/b::local:t/c\"\n";
    let (code, _, err) = check(cfg);
    assert_ne!(code, 0, "accepted two pairs with one fingerprint");
    for frag in ["FILE:5:", "fingerprint", "line 1", "t/b::local:t/c", "t/a::local:t/b"] {
        assert!(err.contains(frag), "{frag:?} missing: {err}");
    }
}

#[test]
fn sizes_need_a_unit_and_must_not_round_to_zero_or_overflow() {
    let pair = |v: &str| {
        format!("{HOST}[[pair]]\nsource = \"store1:tank/data\"\ndestination = \"backup/data\"\nbwlimit = {v}\n")
    };
    for (v, expect) in [
        ("\"0.0001\"", "needs a unit"),
        ("\"0.0001K\"", "rounds to 0"),
        ("\"0.5B\"", "rounds to 0"),
        ("\"99999999999T\"", "too large"),
        ("\"1e30\"", "bad size"),
        ("20", "\"20M\""),
        ("\"20\"", "\"20M\""),
        ("-5", "negative"),
    ] {
        let (code, _, err) = check(&pair(v));
        assert_ne!(code, 0, "accepted bwlimit = {v}");
        for frag in ["FILE:6:", "key `bwlimit`", expect] {
            assert!(err.contains(frag), "bwlimit = {v}: {frag:?} missing: {err}");
        }
    }
    for (v, shown) in [
        ("0", "bwlimit none"),
        ("\"0\"", "bwlimit none"),
        ("\"20B\"", "bwlimit 20 B/s"),
        ("\"1.5M\"", "bwlimit 1.5 MiB/s"),
    ] {
        let (code, out, err) = check(&pair(v));
        assert_eq!(code, 0, "refused bwlimit = {v}: {err}");
        assert!(out.contains(shown), "bwlimit = {v}: {out}");
    }
}

#[test]
fn every_error_is_reported_in_one_run() {
    let cfg = format!(
        "max_jobs = 0\n{HOST}colour = \"blue\"\n[[pair]]\nsource = \"store1:tank/data\"\ndestination = \"backup/data\"\n\
         wlag = \"2x\"\nbwlimit = \"lots\"\n[[pair]]\nsource = \"nowhere:tank/b\"\ndestination = \"backup/b\"\nkeep = 0\n"
    );
    let expect = [
        "FILE:1: key `max_jobs`",
        "FILE:4: key `colour`",
        "FILE:8: key `wlag`",
        "FILE:9: key `bwlimit`",
        "FILE:11: key `source`",
        "FILE:13: key `keep`",
    ];
    let (code, _, err) = check(&cfg);
    assert_ne!(code, 0);
    for frag in expect {
        assert!(err.contains(frag), "check: {frag:?} missing: {err}");
    }
    // in file order, and the other actions refuse the same config with the same list
    let at: Vec<usize> = expect.iter().map(|f| err.find(f).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "not in file order: {err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, &cfg).unwrap();
    let out = common::runner::bare()
        .arg("-c")
        .arg(&path)
        .args(["--state-dir", dir.path().to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    assert!(err.starts_with("ferry: error: status: "), "{err}");
    for frag in expect {
        assert!(err.contains(frag), "status: {frag:?} missing: {err}");
    }
}

#[test]
fn jump_hosts_and_connection_settings() {
    let hosts = "[hosts.bastion]\naddress = \"192.0.2.1\"\nconnect_timeout = \"5s\"\n\n\
                 [hosts.far]\naddress = \"10.0.0.5\"\njump = \"bastion\"\nkeepalive_interval = \"20s\"\nkeepalive_count = 5\n";
    let (code, out, err) = check(&format!(
        "{hosts}[[pair]]\nsource = \"far:tank/a\"\ndestination = \"backup/a\"\n"
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("far  root@10.0.0.5:22") && out.contains("jump bastion"),
        "{out}"
    );
    assert!(
        out.contains("connect_timeout 15s  keepalive 20s x5"),
        "defaults and overrides: {out}"
    );
    assert!(out.contains("connect_timeout 5s  keepalive 10s x3"), "{out}");
    // and in --json, in seconds
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, hosts).unwrap();
    let out = common::runner::bare()
        .arg("-c")
        .arg(&path)
        .args(["--json", "check"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let far = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "far")
        .unwrap();
    assert_eq!(
        (
            &far["jump"],
            &far["connect_timeout"],
            &far["keepalive_interval"],
            &far["keepalive_count"]
        ),
        (
            &serde_json::json!("bastion"),
            &serde_json::json!(15),
            &serde_json::json!(20),
            &serde_json::json!(5)
        )
    );
    for (cfg, expect) in [
        (
            "[hosts.far]\naddress = \"10.0.0.5\"\njump = \"nowhere\"\n".to_string(),
            vec!["FILE:3:", "key `jump`", "undefined host \"nowhere\""],
        ),
        (
            "[hosts.far]\naddress = \"10.0.0.5\"\njump = \"local\"\n".to_string(),
            vec!["FILE:3:", "key `jump`", "local"],
        ),
        (
            "[hosts.a]\naddress = \"10.0.0.5\"\njump = \"b\"\n[hosts.b]\naddress = \"10.0.0.6\"\njump = \"a\"\n"
                .to_string(),
            vec!["FILE:3:", "FILE:6:", "key `jump`", "cycle", "a -> b -> a"],
        ),
        (
            "[hosts.a]\naddress = \"10.0.0.5\"\njump = \"a\"\n".to_string(),
            vec!["FILE:3:", "key `jump`", "cycle"],
        ),
        (
            "[hosts.a]\naddress = \"10.0.0.5\"\nconnect_timeout = \"0s\"\n".to_string(),
            vec!["FILE:3:", "key `connect_timeout`", "at least 1s"],
        ),
        (
            "[hosts.a]\naddress = \"10.0.0.5\"\nkeepalive_interval = \"soon\"\n".to_string(),
            vec!["FILE:3:", "key `keepalive_interval`", "bad duration"],
        ),
        (
            "[hosts.a]\naddress = \"10.0.0.5\"\nkeepalive_count = 0\n".to_string(),
            vec!["FILE:3:", "key `keepalive_count`", "between 1 and"],
        ),
    ] {
        let (code, _, err) = check(&cfg);
        assert_ne!(code, 0, "accepted:\n{cfg}");
        for frag in expect {
            assert!(err.contains(frag), "{frag:?} missing in error for:\n{cfg}\n{err}");
        }
    }
}

#[test]
fn invalid_utf8_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    let mut bytes = format!("{HOST}[[pair]]\nsource = \"store1:tank/data\"\n").into_bytes();
    bytes.extend_from_slice(b"destination = \"backup/\xff\xfe\"\n");
    std::fs::write(&path, &bytes).unwrap();
    let (code, err) = run_with_deadline(&path, "check", 10);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!("{}:5:", path.display())) && err.contains("UTF-8"),
        "{err}"
    );
}

#[test]
fn etcd_authentication_and_tls_are_shown_and_their_files_checked_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("etcd.pw");
    std::fs::write(&pw, "s3cret-pw\n").unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let text = |endpoint: &str, extra: &str| {
        format!(
            "[coordination]\nengine = \"etcd\"\nendpoints = [\"{endpoint}\"]\nuser = \"ferry\"\npassword_file = \"{}\"\n{extra}",
            pw.display()
        )
    };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    // authenticated, over https, to a member beyond this host: nothing to warn about but the CA file
    let (code, out, err) = check(&text(
        "https://etcd1.example.net:2379",
        &format!("ca_file = \"{}\"\n", ca.display()),
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("etcd user ferry, password from {}", pw.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("tls: etcd's certificate checked against {}", ca.display())),
        "{out}"
    );
    assert!(
        out.contains("warning: coordination: ca_file") && out.contains("no PEM certificate"),
        "{out}"
    );
    assert!(!out.contains("anyone who") && !out.contains("plain http"), "{out}");
    // plain http beyond loopback: the password would cross the network readable
    let (code, out, _) = check(&text("http://etcd1.example.net:2379", ""));
    assert_eq!(code, 0);
    assert!(
        out.contains("warning: plain http beyond loopback: the password and token cross the network readable"),
        "{out}"
    );
    // a password file others can read is said; the password never is
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, out, _) = check(&text("http://127.0.0.1:2379", ""));
    assert!(
        out.contains("readable or writable by group or others (mode 0644)"),
        "{out}"
    );
    let (_, json, _) = {
        let dir2 = tempfile::tempdir().unwrap();
        let path = dir2.path().join("ferry.toml");
        std::fs::write(&path, text("http://127.0.0.1:2379", "")).unwrap();
        let o = common::runner::bare()
            .arg("-c")
            .arg(&path)
            .args(["--json", "check"])
            .output()
            .unwrap();
        (0, String::from_utf8_lossy(&o.stdout).into_owned(), ())
    };
    assert!(json.contains("\"user\": \"ferry\""), "{json}");
    for shown in [&out, &json] {
        assert!(!shown.contains("s3cret"), "the password is never shown: {shown}");
    }
    // a password file that is not there
    std::fs::remove_file(&pw).unwrap();
    let (_, out, _) = check(&text("http://127.0.0.1:2379", ""));
    assert!(
        out.contains(&format!(
            "warning: coordination: password_file {}: it does not exist",
            pw.display()
        )),
        "{out}"
    );
}

#[test]
fn a_credentials_file_others_can_read_is_warned_about_naming_host_and_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("a.cred");
    std::fs::write(&cred, "[default]\naws_access_key_id = a\naws_secret_access_key = b\n").unwrap();
    let path = dir.path().join("ferry.toml");
    std::fs::write(
        &path,
        format!(
            "[hosts.s3a]\nendpoint = \"https://s3.example.net\"\ncredentials = \"{}\"\n",
            cred.display()
        ),
    )
    .unwrap();
    let run = || {
        let out = common::runner::bare()
            .arg("-c")
            .arg(&path)
            .arg("check")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run();
    assert!(
        out.contains("warning: object host s3a: credentials file")
            && out.contains(&*cred.to_string_lossy())
            && out.contains("every user"),
        "{out}"
    );
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!run().contains("credentials file"), "0600 is not warned about");
}
