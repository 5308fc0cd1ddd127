//! What an operator installs beside the binary: shell completions and the man page generated
//! from the same clap definitions the parser uses, and the systemd units and cron file in
//! contrib/, checked by the tools that will read them (bash -n, systemd-analyze verify).

use crate::common;
use std::process::Command;

const ACTIONS: &[&str] = &[
    "setup",
    "initialize",
    "update",
    "status",
    "runstatus",
    "unlock",
    "purge",
    "logfile",
    "fingerprint",
    "check",
    "metrics",
    "import",
    "console",
    "completions",
    "man",
];

fn ferry(args: &[&str]) -> (i32, String, String) {
    let out = common::runner::bare().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ci_requires(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is missing under CI"
        );
        eprintln!("SKIP: {tool} missing");
    }
    found
}

#[test]
fn completions_cover_every_action_and_parse() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, out, err) = ferry(&["completions", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for a in ACTIONS {
            assert!(out.contains(a), "{shell} completion lacks {a}");
        }
    }
    // needs no config: works on a machine where ferry is not set up yet
    let (code, _, err) = ferry(&["-c", "/nonexistent/ferry.toml", "completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    if ci_requires("bash") {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ferry.bash");
        std::fs::write(&f, ferry(&["completions", "bash"]).1).unwrap();
        let st = Command::new("bash").arg("-n").arg(&f).status().unwrap();
        assert!(st.success(), "bash -n rejects the completion script");
    }
    let (code, _, err) = ferry(&["completions", "tcsh"]);
    assert_ne!(code, 0);
    assert!(err.contains("tcsh"), "{err}");
}

#[test]
fn man_page_names_every_action() {
    let (code, out, err) = ferry(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".TH ferry 1"), "{}", &out[..out.len().min(300)]);
    for a in ACTIONS {
        assert!(out.contains(a), "man page lacks {a}");
    }
}

#[test]
fn systemd_units_verify_and_run_ferry_actions_that_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let units: Vec<_> = std::fs::read_dir(root.join("contrib/systemd"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(units.len() >= 4, "{units:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut copies = Vec::new();
    for u in &units {
        // the units name the installed path; verify them against the binary under test
        let text = std::fs::read_to_string(u)
            .unwrap()
            .replace("/usr/local/bin/ferry", env!("CARGO_BIN_EXE_ferry"));
        let copy = dir.path().join(u.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        copies.push(copy);
    }
    if ci_requires("systemd-analyze") {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg("--man=no")
            .args(&copies)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // every ferry command line in contrib/ parses with this binary's clap definitions
    let cron = std::fs::read_to_string(root.join("contrib/cron/ferry")).unwrap();
    let texts: Vec<String> = units
        .iter()
        .map(|u| std::fs::read_to_string(u).unwrap())
        .chain([cron])
        .collect();
    let mut seen = 0;
    for text in &texts {
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let Some(i) = line.find("ferry -c ") else { continue };
            let words: Vec<&str> = line[i + "ferry ".len()..]
                .split(|c: char| c.is_whitespace() || c == '>' || c == '\'')
                .take_while(|w| !w.is_empty())
                .collect();
            // `--help` after the action asks clap to parse everything before it without running
            let mut args: Vec<&str> = words.clone();
            args.push("--help");
            let (code, _, err) = ferry(&args);
            assert_eq!(code, 0, "`ferry {}` does not parse: {err}", words.join(" "));
            seen += 1;
        }
    }
    assert!(seen >= 4, "found {seen} ferry command lines in contrib/");
}
