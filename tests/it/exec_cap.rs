//! A host that floods stdout: `Executor::run` stops at its cap, names the host and the command,
//! ends the remote command, and the connection stays usable. Real sshd on loopback.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::exec::Executor;
use ferry::ssh::Connection;

#[tokio::test(flavor = "multi_thread")]
async fn a_flooding_remote_command_is_cut_at_the_cap_and_ended() {
    let Some(sshd) = common::sshd::Sshd::start() else {
        return;
    };
    let ex = Executor::Remote(Arc::new(Connection::open(sshd.host("store1")).await.unwrap()));
    let marker = format!("ferry-cap-{}", std::process::id());
    let t = Instant::now();
    let e = ex
        .run_capped(&format!("yes {marker}"), 2 << 20)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("on store1: `yes {marker}` wrote more than 2.0 MiB of output")),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // the remote command ends with its channel (it runs on this machine: look for it)
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap();
        if out.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "`yes {marker}` still runs after the cap");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // and the connection still serves the next command
    let out = ex.run_ok("echo still-here").await.unwrap();
    assert_eq!(out.stdout_text().trim(), "still-here");
}
