//! The source host's capabilities are probed once and remembered in the state dir, so a no-op
//! update runs one listing per side instead of probe + listing; a stale or missing answer is
//! probed again. Real zfs-fuse pools and the loopback sshd.

use crate::common;

use common::lab::Lab;
use common::zfs::write_random_file;

fn cache_file(lab: &Lab) -> std::path::PathBuf {
    let pool = lab.src_ds.split('/').next().unwrap();
    lab.state_dir().join("hosts").join(format!("store1.{pool}.json"))
}

#[test]
fn probe_answer_is_remembered_and_used() {
    let Some(lab) = Lab::new("caps", 128, 128, "") else {
        return;
    };
    write_random_file(&lab.src_mnt().join("a.bin"), 1 << 20, 1);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let cache = cache_file(&lab);
    let text = std::fs::read_to_string(&cache).expect("initialize remembered the probe");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["caps"]["send_estimate"], false, "zfs-fuse has no send -nP: {text}");

    // a remembered answer is what the next run goes by: claim `send -nP` exists and the update
    // snapshots first and sends in a separate command, to ask for an estimate in between (which
    // zfs-fuse refuses; the update goes on without one)
    let mut v2 = v.clone();
    v2["caps"]["send_estimate"] = serde_json::json!(true);
    std::fs::write(&cache, serde_json::to_vec(&v2).unwrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.ok(&["update", "data"]);
    let log_path = lab.ok(&["logfile", "data"]).stdout.trim().to_string();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let last_run = &log[log.rfind("update store1:").unwrap()..];
    assert!(last_run.contains("zfs send -I"), "{last_run}");
    assert!(
        !last_run.contains("&& zfs send"),
        "the cached answer was used: {last_run}"
    );

    // an answer older than a day is probed again (and corrected)
    v2["probed"] = serde_json::json!(v2["probed"].as_i64().unwrap() - 2 * 86400);
    std::fs::write(&cache, serde_json::to_vec(&v2).unwrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    lab.ok(&["update", "data"]);
    let v3: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    assert_eq!(v3["caps"]["send_estimate"], false, "re-probed: {v3}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let last_run = &log[log.rfind("update store1:").unwrap()..];
    assert!(
        last_run.contains("&& zfs send -I"),
        "snapshot and send in one exec again: {last_run}"
    );
    assert_eq!(lab.status()["state"], "Synchronized");
}
