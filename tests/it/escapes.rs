//! Text a remote controls (user properties, error output) never reaches the operator's terminal
//! raw: `status`, `status --json`, a failed action's error line, `--nagios` and the pair log show
//! control characters escaped. Real zfs-fuse pools and the loopback sshd.

use crate::common;

use common::lab::Lab;
use common::zfs::write_random_file;

/// Retitles the terminal, then clears it; a carriage return and an 8-bit CSI for good measure.
const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\rX\u{9b}31m";

fn assert_clean(what: &str, text: &str) {
    for bad in ['\u{1b}', '\u{7}', '\r', '\u{9b}'] {
        assert!(!text.contains(bad), "{what} carries {bad:?} raw: {text:?}");
    }
}

#[test]
fn hostile_property_values_are_shown_escaped_everywhere() {
    let Some(lab) = Lab::new("esc", 128, 128, "") else {
        return;
    };
    write_random_file(&lab.src_mnt().join("a.bin"), 1 << 20, 1);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);

    // the destination's owner (or whoever can set a property there) plants terminal escapes
    let set = std::process::Command::new("zfs")
        .args(["set", &format!("ferry:fingerprint={HOSTILE}"), &lab.dst_ds])
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));

    let st = lab.ferry(&["status", "--full"]);
    assert_clean("status", &st.stdout);
    assert_clean("status stderr", &st.stderr);
    assert!(
        st.stdout.contains("\\u001b]0;pwned\\u0007\\u001b[2J\\u000dX\\u009b31m"),
        "the value is shown, escaped: {}",
        st.stdout
    );

    let json = lab.ferry(&["status", "--json"]);
    assert_clean("status --json", &json.stdout);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("still valid JSON");
    assert!(v.to_string().contains("pwned"), "{v}");

    let up = lab.ferry(&["update", "data"]);
    assert_eq!(up.code, 1, "a foreign fingerprint refuses the update: {}", up.stderr);
    assert_clean("update's error", &up.stderr);
    assert!(up.stderr.contains("\\u001b"), "{}", up.stderr);

    let nagios = lab.ferry(&["--nagios", "status", "data"]);
    assert_clean("--nagios", &nagios.stdout);
    assert_eq!(nagios.stdout.lines().count(), 1, "one plugin line: {:?}", nagios.stdout);

    let log = std::fs::read_to_string(lab.state_dir().join(lab.fingerprint()).join("log")).unwrap_or_default();
    assert_clean("the pair log", &log);
}

#[test]
fn hostile_error_output_from_a_remote_command_is_escaped() {
    // what a failed remote command prints is the remote's to choose; every error line ferry
    // shows is built from it by describe_failure
    let msg = ferry::exec::describe_failure(Some(1), "cannot open 'x': \u{1b}[2J\u{1b}]0;t\u{7}gone\n");
    assert_clean("describe_failure", &msg);
    assert!(msg.contains("\\u001b[2J"), "{msg}");
}
