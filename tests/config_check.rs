//! `ferry check` on good and bad configs: every bad one fails with a message naming the file,
//! the line and the key.

use std::process::Command;

const HOST: &str = "[hosts.store1]\naddress = \"192.0.2.10\"\n";

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
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
    assert!(out.contains("store1:tank/s  listen=true update=false"), "{out}");
}

#[test]
fn bad_configs_name_file_line_and_key() {
    let pair =
        |extra: &str| format!("{HOST}[[pair]]\nsource = \"store1:tank/data\"\ndestination = \"backup/data\"\n{extra}");
    // (config, expected fragments of the error)
    let cases: Vec<(String, Vec<&str>)> = vec![
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
            format!("{HOST}[[pair]]\nsource = \"store1:tank/my data\"\ndestination = \"backup/data\"\n"),
            vec!["FILE:4:", "key `source`", "contains ' '"],
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
    }
}

#[test]
fn missing_config_says_where_it_looked() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
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
