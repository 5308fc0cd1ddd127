//! Object pairs end to end through the ferry binary: two real S3 servers (s3s-fs) on loopback,
//! rclone (Debian) as the independent client that writes objects and checks the result.

use crate::common;
use crate::object_util;

use std::time::{Duration, Instant};

use object_util::lab::ObjectLab;
use object_util::{bytes, require_s3s_fs};

const DEST: &str = "s3b:photos-dr/2026/";

/// Nothing ferry printed or kept mentions either site's secret key.
fn assert_no_secret(lab: &ObjectLab, printed: &[&str]) {
    for secret in [&lab.a.secret_key, &lab.b.secret_key] {
        for p in printed {
            assert!(!p.contains(secret.as_str()), "a secret key was printed: {p}");
        }
        for entry in walkdir(&lab.state_dir()) {
            let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap_or_default()).into_owned();
            assert!(
                !text.contains(secret.as_str()),
                "{} holds a secret key",
                entry.display()
            );
        }
    }
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn initialize_update_delete_metadata_multipart_verify_repair() {
    let Some(bin) = require_s3s_fs() else { return };
    let lab = ObjectLab::start(&bin, "");
    for i in 0..40u64 {
        let len = 1024 + (i as usize * 197) % 7000;
        lab.put(
            &format!("a:photos/2026/small/{i:04}.txt"),
            &bytes(i, len),
            "text/plain",
            ("n", &i.to_string()),
        );
    }
    lab.put(
        "a:photos/2026/album one/pic 1.jpg",
        &bytes(99, 3000),
        "image/jpeg",
        ("camera", "x100"),
    );
    // 20 MiB: above the 16 MiB multipart threshold
    lab.put(
        "a:photos/2026/big/video.mp4",
        &bytes(7, 20 << 20),
        "video/mp4",
        ("len", "20M"),
    );
    // outside the pair's prefix: never copied
    lab.put("a:photos/2025/old.jpg", &bytes(5, 100), "image/jpeg", ("y", "2025"));

    let check = lab.ok(&["check"]);
    assert!(
        check.stdout.contains("s3a") && check.stdout.contains("object"),
        "{}",
        check.stdout
    );
    let setup = lab.ok(&["setup", DEST]);
    assert!(setup.stdout.contains("reachable"), "{}", setup.stdout);

    // a destination holding something ferry did not put there is refused without --force
    lab.put("b:photos-dr/2026/stray.txt", b"not ours", "text/plain", ("k", "v"));
    let r = lab.ferry(&["initialize", DEST]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("not empty") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    lab.rclone(&["deletefile", "b:photos-dr/2026/stray.txt"]);

    let init = lab.ok(&["initialize", DEST]);
    assert_eq!(init.stdout, "", "initialize is silent on success");
    lab.assert_same();
    assert!(lab.listing("b:photos-dr/").iter().all(|o| !o.0.contains("2025")));

    let st = lab.json(&["status", DEST]);
    assert_eq!(st[0]["state"], "Synchronized", "{st}");
    assert_eq!(st[0]["kind"], "object");
    assert!(st[0]["lag_secs"].as_u64().unwrap() < 120, "{st}");
    let objects = lab.json(&["objects", DEST]);
    let list = objects.as_array().unwrap();
    assert_eq!(list.len(), 42, "{objects}");
    assert!(list.iter().all(|o| o["state"] == "COMPLETED"), "{objects}");

    // nothing changed: nothing copied
    lab.ok(&["update", DEST]);
    let log = std::fs::read_to_string(lab.ok(&["logfile", DEST]).stdout.trim()).unwrap();
    assert!(log.lines().rev().any(|l| l.contains("pass: 0 copied")), "{log}");

    // new bytes, metadata only (same bytes), a new key, two deletes (one the big object);
    // last-modified has one-second resolution
    std::thread::sleep(Duration::from_millis(1100));
    lab.put(
        "a:photos/2026/small/0001.txt",
        &bytes(1001, 5000),
        "text/plain",
        ("n", "changed"),
    );
    lab.put(
        "a:photos/2026/small/0002.txt",
        &bytes(2, 1024 + 2 * 197),
        "text/csv",
        ("n", "meta-only"),
    );
    lab.put("a:photos/2026/new/key.txt", b"hello", "text/plain", ("fresh", "yes"));
    lab.rclone(&["deletefile", "a:photos/2026/small/0003.txt"]);
    lab.rclone(&["deletefile", "a:photos/2026/big/video.mp4"]);
    lab.ok(&["update", DEST]);
    lab.assert_same();
    let log = std::fs::read_to_string(lab.ok(&["logfile", DEST]).stdout.trim()).unwrap();
    assert!(
        log.lines()
            .rev()
            .any(|l| l.contains("pass: 3 copied") && l.contains("2 deleted")),
        "{log}"
    );
    lab.ok(&["verify", DEST]);

    // changed behind ferry's back: verify names it, update leaves it, update --repair mends it
    lab.put("b:photos-dr/2026/small/0005.txt", b"tampered", "text/plain", ("n", "5"));
    lab.put("b:photos-dr/2026/extra.txt", b"extra", "text/plain", ("n", "x"));
    let v = lab.ferry(&["verify", DEST]);
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stdout.contains("small/0005.txt") && v.stdout.contains("extra.txt"),
        "{}",
        v.stdout
    );
    lab.ok(&["update", DEST]);
    assert_eq!(
        lab.ferry(&["verify", DEST]).code,
        1,
        "a plain update reads only the source"
    );
    lab.ok(&["update", "--repair", DEST]);
    lab.ok(&["verify", DEST]);
    lab.assert_same();

    let nagios = lab.ferry(&["--nagios", "status", DEST]);
    assert_eq!(nagios.code, 0, "{}", nagios.stdout);
    assert!(nagios.stdout.starts_with("FERRY OK"), "{}", nagios.stdout);
    assert_no_secret(
        &lab,
        &[&check.stdout, &setup.stdout, &init.stderr, &nagios.stdout, &v.stdout],
    );
}

#[test]
fn destination_down_gives_failed_entries_that_retry_completes() {
    let Some(bin) = require_s3s_fs() else { return };
    let mut lab = ObjectLab::start(&bin, "");
    for i in 0..5u64 {
        lab.put(
            &format!("a:photos/2026/first/{i}.bin"),
            &bytes(i, 2000),
            "application/octet-stream",
            ("i", "1"),
        );
    }
    lab.ok(&["initialize", DEST]);
    for i in 0..12u64 {
        lab.put(
            &format!("a:photos/2026/second/{i}.bin"),
            &bytes(100 + i, 3000),
            "application/octet-stream",
            ("i", "2"),
        );
    }
    lab.b.stop();
    let r = lab.ferry(&["update", DEST]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("12 change(s) FAILED") && r.stderr.contains("retry"),
        "{}",
        r.stderr
    );
    let failed = lab.json(&["objects", "--failed", DEST]);
    let list = failed.as_array().unwrap();
    assert_eq!(list.len(), 12, "{failed}");
    for o in list {
        assert_eq!(o["state"], "FAILED");
        assert_eq!(o["retries"], 1);
        assert!(o["reason"].as_str().is_some_and(|r| r.contains("photos-dr")), "{o}");
        assert!(o["next_retry_ms"].as_u64().is_some_and(|n| n > 0));
    }
    let st = lab.json(&["status", DEST]);
    assert_eq!(st[0]["state"], "Synchronized");
    assert!(st[0]["warnings"].to_string().contains("FAILED"), "{st}");
    let nagios = lab.ferry(&["--nagios", "status", DEST]);
    assert_eq!(nagios.code, 1, "FAILED changes are a warning: {}", nagios.stdout);

    // still down: a second update fails the same changes again, FIFO, no duplicates
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(lab.ferry(&["update", DEST]).code, 1);
    let again = lab.json(&["objects", "--failed", DEST]);
    assert_eq!(again.as_array().unwrap().len(), 12, "{again}");

    lab.b.restart();
    lab.ok(&["retry", DEST]);
    assert_eq!(lab.json(&["objects", "--failed", DEST]), serde_json::json!([]));
    lab.assert_same();
    lab.ok(&["verify", DEST]);
    let objects = lab.json(&["objects", DEST]);
    assert_eq!(objects.as_array().unwrap().len(), 17);
}

#[test]
fn progress_counts_objects_and_bytes_under_bwlimit() {
    let Some(bin) = require_s3s_fs() else { return };
    let lab = ObjectLab::start(&bin, "bwlimit = \"2M\"");
    let n = 24u64;
    let size = 256 * 1024;
    for i in 0..n {
        lab.put(
            &format!("a:photos/2026/p/{i:02}.raw"),
            &bytes(i, size),
            "image/x-raw",
            ("i", &i.to_string()),
        );
    }
    let fp = lab.ok(&["fingerprint", DEST]).stdout.trim().to_string();
    let progress_path = lab.state_dir().join(&fp).join("progress.json");
    let mut child = common::runner::bare()
        .arg("-c")
        .arg(&lab.config)
        .args(["initialize", DEST])
        .env_remove("AWS_CA_BUNDLE")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut seen = Vec::new();
    while child.try_wait().unwrap().is_none() {
        if let Ok(b) = std::fs::read(&progress_path) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                if v["phase"] == "transfer" && v["elapsed_secs"].as_f64().unwrap_or(0.0) > 1.2 {
                    seen.push(v);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "initialize took over a minute"
        );
    }
    assert!(child.wait().unwrap().success());
    let total = n * size as u64;
    // 6 MiB at 2 MiB/s: about 3 s
    assert!(
        start.elapsed() > Duration::from_millis(2300),
        "bwlimit not held: {:?}",
        start.elapsed()
    );
    assert!(!seen.is_empty(), "no progress was seen during the transfer");
    for v in &seen {
        assert_eq!(v["objects_total"].as_u64(), Some(n), "{v}");
        assert_eq!(v["expected"].as_u64(), Some(total), "{v}");
        let rate = v["rate"].as_f64().unwrap();
        assert!(rate <= 2.0 * 1024.0 * 1024.0 * 1.3, "rate {rate} over the limit: {v}");
        assert!(v["objects_rate"].as_f64().is_some(), "{v}");
    }
    let last: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lab.state_dir().join(&fp).join("last.json")).unwrap()).unwrap();
    assert_eq!(last["bytes"].as_u64(), Some(total), "{last}");
    lab.assert_same();
}

#[test]
fn object_config_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "[hosts.s3a]\nendpoint = \"http://127.0.0.1:9000\"\naddress = \"10.0.0.1\"\n",
            "address",
            "belongs to SSH hosts",
        ),
        ("[hosts.s3a]\nendpoint = \"ftp://127.0.0.1\"\n", "endpoint", "http"),
        (
            "[hosts.s3a]\nendpoint = \"http://AKID:secret@127.0.0.1:9000\"\n",
            "endpoint",
            "credentials",
        ),
        (
            "[hosts.s3a]\nendpoint = \"http://127.0.0.1:9000\"\n[[pair]]\nkind = \"object\"\nsource = \"s3a:Photos\"\ndestination = \"s3a:backup\"\n",
            "source",
            "lowercase",
        ),
        (
            "[hosts.s3a]\nendpoint = \"http://127.0.0.1:9000\"\n[[pair]]\nsource = \"s3a:tank/data\"\ndestination = \"backup/data\"\n",
            "source",
            "object-store endpoint",
        ),
        (
            "[[pair]]\nkind = \"object\"\nsource = \"/srv/photos\"\ndestination = \"/backup/photos\"\n",
            "source",
            "bucket",
        ),
        (
            "[hosts.s3a]\nendpoint = \"http://127.0.0.1:9000\"\n[[pair]]\nkind = \"object\"\nsource = \"s3a:photos\"\ndestination = \"s3a:photos-dr\"\ntransport = \"mbuffer\"\n",
            "transport",
            "object pair",
        ),
    ];
    for (i, (text, key, words)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = common::runner::bare()
            .arg("-c")
            .arg(&path)
            .arg("check")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{text}");
        let named = format!("{}:", path.display());
        assert!(
            err.contains(&named) && err.contains(key) && err.contains(words),
            "case {i}: {text}\n{err}"
        );
        assert!(!err.contains("secret@") || *key == "endpoint", "{err}");
    }
}
