//! `ferry import zettabee FILE`: zettabee pair lines become a ferry config that `ferry check` accepts.

use std::process::Command;

fn ferry(args: &[&str], home: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env_remove("FERRY_CONFIG")
        .env("HOME", home)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn zettabee_lines_become_a_config_ferry_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let z = dir.path().join("zettabee.cfg");
    std::fs::write(
        &z,
        "# zettabee pairs\nstore1:tank/data localhost:backup/data port=9090,wlag=30m,clag=2h\n\
         store2:tank/web store3:backup/web keep=5   # trailing comment\n",
    )
    .unwrap();
    let (code, toml, err) = ferry(&["import", "zettabee", z.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{err}");
    let cfg = dir.path().join("ferry.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let (code, out, err) = ferry(&["-c", cfg.to_str().unwrap(), "check"], dir.path());
    assert_eq!(code, 0, "{err}\n{toml}");
    assert!(
        out.contains("store1:tank/data -> local:backup/data") && out.contains("port 9090"),
        "{out}"
    );
    assert!(out.contains("wlag 30m00s clag 2h00m"), "{out}");
    assert!(
        out.contains("store2:tank/web -> store3:backup/web") && out.contains("keep 5"),
        "{out}"
    );
    assert!(out.contains("hosts: 3"), "{out}");

    std::fs::write(
        &z,
        "store1:tank/data localhost:backup/data\nstore1:tank/x localhost:backup/x speed=fast\n",
    )
    .unwrap();
    let (code, _, err) = ferry(&["import", "zettabee", z.to_str().unwrap()], dir.path());
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("{}:2: key `speed`: unknown zettabee option", z.display())),
        "{err}"
    );
    let (code, _, err) = ferry(&["import", "rsnapshot", z.to_str().unwrap()], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("unknown format \"rsnapshot\""), "{err}");
}
