//! `ferry import zettabee FILE` and `ferry import copycat FILE`: another tool's config becomes a
//! ferry config that `ferry check` accepts.

use crate::common;

fn ferry(args: &[&str], home: &std::path::Path) -> (i32, String, String) {
    let out = common::runner::bare().args(args).env("HOME", home).output().unwrap();
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

/// This machine's host name, as the importer sees it: zettabee's destination host is this machine.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// A zettabee.cfg as zettabee's README describes it: FQDN and IPv4 hosts, several pairs, comments,
/// zettabee's own options (transport, port, sshport, sshkey, wlag/clag/wrun/crun in seconds).
fn realistic(dhost: &str) -> String {
    format!(
        "# zettabee.cfg: pairs received on {dhost}\n\
         # source                      destination                            options\n\
         store1.example.com:tank/home  {dhost}:backup/store1/home  transport=mbuffer,port=9090,sshport=2222,sshkey=/root/.ssh/zettabee_rsa,wlag=3600,clag=86400\n\
         store1.example.com:tank/mail  {dhost}:backup/store1/mail  transport=mbuffer,port=9091,sshport=2222,sshkey=/root/.ssh/zettabee_rsa,wlag=7200,clag=172800,wrun=3600,crun=21600\n\
         \n\
         # the VM host is known by its address only\n\
         10.20.30.40:pool0/vm/images   {dhost}:backup/vmhost/images  transport=mbuffer,port=9092,wlag=3600,clag=86400\n\
         store1.example.org:tank/web   {dhost}:backup/web  port=9093\n"
    )
}

#[test]
fn a_real_zettabee_file_with_fqdns_ips_sshport_and_sshkey_imports() {
    let dir = tempfile::tempdir().unwrap();
    let z = dir.path().join("zettabee.cfg");
    let dhost = format!("{}.example.com", this_host());
    std::fs::write(&z, realistic(&dhost)).unwrap();
    let (code, toml, err) = ferry(&["import", "zettabee", z.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        toml.contains("[hosts.\"store1-example-com\"]"),
        "table names are quoted: {toml}"
    );
    assert!(!toml.contains("adopt"), "only --adopt marks pairs: {toml}");
    let cfg = dir.path().join("ferry.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let (code, out, err) = ferry(&["-c", cfg.to_str().unwrap(), "check"], dir.path());
    assert_eq!(code, 0, "{err}\n{toml}");
    // an FQDN shared by two domains gets the longer name, an IPv4 address its dashed form;
    // sshport and sshkey become the host's port and key; the address stays the original
    assert!(out.contains("hosts: 3"), "{out}");
    assert!(
        out.contains("store1-example-com  root@store1.example.com:2222  key /root/.ssh/zettabee_rsa"),
        "{out}"
    );
    assert!(out.contains("store1-example-org  root@store1.example.org:22"), "{out}");
    assert!(out.contains("10-20-30-40  root@10.20.30.40:22"), "{out}");
    // the destination host is this machine: local; mbuffer goes to the address zettabee used
    assert!(
        out.contains(
            "store1-example-com:tank/home -> local:backup/store1/home  zfs/mbuffer port 9090  wlag 1h00m clag 1d00h"
        ),
        "{out}"
    );
    assert!(out.contains(&format!("to {dhost}:9090")), "{out}");
    assert!(
        out.contains("store1-example-com:tank/mail -> local:backup/store1/mail  zfs/mbuffer port 9091  wlag 2h00m clag 2d00h wrun 1h00m crun 6h00m"),
        "{out}"
    );
    assert!(
        out.contains("10-20-30-40:pool0/vm/images -> local:backup/vmhost/images"),
        "{out}"
    );
    assert!(
        out.contains("store1-example-org:tank/web -> local:backup/web  zfs/ssh port 9093"),
        "{out}"
    );

    // --adopt marks every pair, and check says what that means
    let (code, toml, err) = ferry(&["import", "zettabee", "--adopt", z.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(toml.matches("adopt = \"zettabee\"").count(), 4, "{toml}");
    std::fs::write(&cfg, &toml).unwrap();
    let (code, out, err) = ferry(&["-c", cfg.to_str().unwrap(), "check"], dir.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("adopt zettabee").count(), 4, "{out}");
}

#[test]
fn import_errors_name_the_zettabee_line() {
    let dir = tempfile::tempdir().unwrap();
    let z = dir.path().join("zettabee.cfg");
    let dhost = format!("{}.example.com", this_host());
    let base = realistic(&dhost);
    let cases = [
        // found while reading the line
        (
            "store2.example.com:tank/x {d}:backup/x port=9094,sshport=ssh\n",
            9,
            "sshport",
        ),
        // two pairs of one host disagreeing on its ssh port
        (
            "store1.example.com:tank/x {d}:backup/x port=9094,sshport=22\n",
            9,
            "sshport",
        ),
        // found only when the converted config is loaded back: a duplicate mbuffer port
        ("store2.example.com:tank/x {d}:backup/x port=9090\n", 9, "port"),
        // a duplicate destination
        ("store2.example.com:tank/x {d}:backup/web\n", 9, "destination"),
    ];
    for (extra, line, key) in cases {
        std::fs::write(&z, format!("{base}{}", extra.replace("{d}", &dhost))).unwrap();
        let (code, _, err) = ferry(&["import", "zettabee", z.to_str().unwrap()], dir.path());
        assert_eq!(code, 1, "{extra}");
        assert!(
            err.contains(&format!("{}:{line}: key `{key}`", z.display())),
            "{extra}: {err}"
        );
    }
}

#[test]
fn a_copycat_config_becomes_a_cluster_ferry_accepts_without_its_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("config.json");
    std::fs::write(
        &c,
        r#"{
"persist-path" : "/var/lib/copycat",
"debug" : true,
"servers" : [ {
"port" : 6442,
"host": "sdfs1.dc1.example.com",
"password" : "hunter2",
"volumeid" : 272362632702517055,
"listen" : true,
"update" : true
},
{
"port" : 6443,
"host": "10.0.0.12",
"password" : "hunter2",
"volumeid" : 1900326592403395044,
"listen" : true,
"update" : true
}]
}"#,
    )
    .unwrap();
    let (code, toml, err) = ferry(&["import", "copycat", c.to_str().unwrap()], dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(!toml.contains("hunter2"), "a password never reaches the output: {toml}");
    assert!(toml.contains("`password`") && toml.contains("`port`"), "{toml}");
    let cfg = dir.path().join("ferry.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let (code, out, err) = ferry(&["-c", cfg.to_str().unwrap(), "check"], dir.path());
    assert_eq!(code, 0, "{err}\n{toml}");
    assert!(out.contains("persist_path /var/lib/copycat"), "{out}");
    assert!(
        out.contains("sdfs1:sdfs/272362632702517055 (zfs)  listen=true update=true"),
        "{out}"
    );
    // a broken file: the line of the JSON error
    std::fs::write(&c, "{\n\"persist-path\": \"/x\",\n\"servers\": [ {\"host\": }\n]}").unwrap();
    let (code, _, err) = ferry(&["import", "copycat", c.to_str().unwrap()], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("config.json:3"), "{err}");
}
