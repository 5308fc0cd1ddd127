//! Resumable receives on real OpenZFS 2.3 (the qemu lab): a transfer cut at about half (ferry
//! SIGKILLed mid-stream) leaves what arrived on the destination with a `receive_resume_token`,
//! and the next run sends only the rest, for a full send (initialize) and an incremental one
//! (update); a token the source can no longer serve (its snapshot destroyed meanwhile) is
//! aborted (`receive -A`) and the update falls back to the checkpoint, saying so. Each case
//! checks what is left: the data, the state, tokens, zfs processes. Prints the resent figures.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::openzfs::{tick, Ferry, OpenZfs, Pools};

/// The one pair's directory in the state dir.
fn pair_dir(f: &Ferry) -> Option<PathBuf> {
    std::fs::read_dir(f.state_dir())
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("log").exists() || p.join("progress.json").exists())
}

/// (phase, bytes, expected) of the running job.
fn progress(f: &Ferry) -> Option<(String, u64, Option<u64>)> {
    let text = std::fs::read(pair_dir(f)?.join("progress.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    Some((
        v["phase"].as_str()?.to_string(),
        v["bytes"].as_u64()?,
        v["expected"].as_u64(),
    ))
}

/// Starts `ferry <args>` and SIGKILLs it once its transfer has moved half of what it expected;
/// gives (bytes moved then, bytes expected).
fn kill_at_half(f: &Ferry, args: &[&str]) -> (u64, u64) {
    let mut child = f.spawn(args);
    let t0 = Instant::now();
    loop {
        if let Some((phase, bytes, Some(expected))) = progress(f) {
            if phase == "transfer" && bytes * 2 >= expected {
                child.kill().unwrap();
                child.wait().unwrap();
                return (bytes, expected);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "ferry {args:?} ended ({status}) before half its transfer: {:?}",
                progress(f)
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "no transfer progress: {:?}",
            progress(f)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bytes the last "resumed: N byte(s)" line of the pair's log says were sent.
fn resumed_bytes(f: &Ferry) -> Option<u64> {
    let log = std::fs::read_to_string(pair_dir(f)?.join("log")).ok()?;
    log.lines()
        .rev()
        .find_map(|l| l.split_once("resumed: ")?.1.split_once(' ')?.0.parse().ok())
}

fn log_text(f: &Ferry) -> String {
    pair_dir(f)
        .and_then(|d| std::fs::read_to_string(d.join("log")).ok())
        .unwrap_or_default()
}

/// Nothing half-done is left: no token on the replica, no zfs process, the replica equal to the
/// source, the pair Synchronized.
fn check_clean(vm: &OpenZfs, p: &Pools, f: &Ferry, src: &str, dst: &str) {
    assert_eq!(
        vm.get_prop(dst, "receive_resume_token"),
        "-",
        "a resume token was left on {dst}"
    );
    let procs = p.zfs_processes().join("\n");
    assert!(procs.trim().is_empty(), "zfs processes left in the guest: {procs}");
    assert_eq!(vm.tree_sum(&format!("/mnt/{src}")), vm.tree_sum(&format!("/mnt/{dst}")));
    let st = f.status();
    assert_eq!(st["state"], "Synchronized", "{st}");
}

/// Bytes a resume token says the destination had received when the receive was cut: the
/// `bytes` field of the token's contents, which `zfs send -nvt` prints (`bytes = 0x…`).
fn token_bytes(vm: &OpenZfs, dst: &str) -> u64 {
    let token = vm.get_prop(dst, "receive_resume_token");
    let out = vm.sh(&format!("zfs send -nvt {token} 2>&1"));
    out.lines()
        .find_map(|l| {
            let v = l.trim().strip_prefix("bytes = ")?;
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            }
        })
        .unwrap_or_else(|| panic!("no bytes in the token's contents:\n{out}"))
}

/// Cuts `ferry <verb>` at half, checks that the destination saved what arrived and that status
/// says so, runs `verb` again and checks the resume sent only what had not arrived: at most 55 %
/// of the stream after a cut at half of it, counted from what the destination had received (the
/// sender's count runs ahead of it by what was in flight in the pipes). Gives the status seen
/// between the two runs.
fn cut_and_resume(vm: &OpenZfs, f: &Ferry, dst: &str, verb: &str, what: &str) -> serde_json::Value {
    let (cut, expected) = kill_at_half(f, &[verb, "data"]);
    assert_ne!(
        vm.get_prop(dst, "receive_resume_token"),
        "-",
        "the cut {what} saved nothing to resume"
    );
    let arrived = token_bytes(vm, dst);
    let st = f.status();
    assert!(
        st["warnings"]
            .to_string()
            .contains(&format!("the next {verb} sends only the rest")),
        "{st}"
    );
    f.ok(&["unlock", "data"]);
    tick();
    let r = f.ok(&[verb, "data"]);
    let rest = resumed_bytes(f).unwrap_or_else(|| panic!("no resume in the log:\n{}\n{}", log_text(f), r.stdout));
    let pct = |b: u64| 100.0 * b as f64 / expected as f64;
    eprintln!(
        "{what}: cut when {cut} of {expected} bytes were sent ({:.1} %) and {arrived} had arrived ({:.1} %); \
         the resume sent {rest} ({:.1} % of the stream; {:.1} % beyond what had not arrived)",
        pct(cut),
        pct(arrived),
        pct(rest),
        pct(rest) - (100.0 - pct(arrived))
    );
    // what the target means: a cut at 50 % of the stream costs at most 55 % again; measured from
    // the destination's own count, whatever was in flight when it was cut
    let not_arrived = expected.saturating_sub(arrived);
    assert!(
        rest * 100 <= not_arrived * 100 + expected * 5,
        "{what}: resent {rest} of {expected} with {arrived} arrived: more than 5 % of the stream over what was missing"
    );
    assert!(
        arrived * 100 >= expected * 30,
        "{what}: only {arrived} of {expected} arrived before the cut"
    );
    st
}

#[test]
fn a_cut_full_and_incremental_send_resume_with_only_the_rest_and_a_stale_token_falls_back() {
    let Some(vm) = OpenZfs::get() else { return };
    let t0 = Instant::now();
    let p = Pools::create(vm, "resume", 512);
    vm.sh(&format!("zfs create {0}/data && zfs create {1}/rep", p.src, p.dst));
    let src = format!("{}/data", p.src);
    let dst = format!("{}/rep/data", p.dst);
    // slow enough to cut at half, the same for every run
    let f = Ferry::new(vm, &src, &dst, "keep = 2\nbwlimit = \"3M\"");
    vm.write_random(&format!("/mnt/{src}/a.bin"), 24);
    f.ok(&["setup", "data"]);

    // a full send cut at half: the next initialize sends the rest only; meanwhile the pair is
    // one still to initialize, not a foreign dataset
    let st = cut_and_resume(vm, &f, &dst, "initialize", "full send");
    assert_eq!(st["state"], "Uninitialized", "{st}");
    check_clean(vm, &p, &f, &src, &dst);

    // an incremental send cut at half: the next update sends the rest, then its own increment
    tick();
    vm.write_random(&format!("/mnt/{src}/b.bin"), 24);
    let st = cut_and_resume(vm, &f, &dst, "update", "incremental send");
    assert_eq!(st["state"], "Synchronized", "{st}");
    check_clean(vm, &p, &f, &src, &dst);

    // a token whose snapshot the source no longer has: aborted, and the update starts over from
    // the checkpoint
    tick();
    vm.write_random(&format!("/mnt/{src}/c.bin"), 24);
    kill_at_half(&f, &["update", "data"]);
    assert_ne!(vm.get_prop(&dst, "receive_resume_token"), "-");
    let on_dst = vm.snapshots(&dst);
    let orphan = vm
        .snapshots(&src)
        .into_iter()
        .rev()
        .find(|s| s.starts_with("ferry.") && !on_dst.contains(s))
        .expect("the cut run's snapshot is on the source");
    vm.sh(&format!("zfs destroy {src}@{orphan}"));
    f.ok(&["unlock", "data"]);
    tick();
    f.ok(&["update", "data"]);
    let log = log_text(&f);
    assert!(log.contains("cannot be resumed"), "the fallback was not said:\n{log}");
    check_clean(vm, &p, &f, &src, &dst);
    let s: Vec<String> = vm
        .snapshots(&src)
        .into_iter()
        .filter(|s| s.starts_with("ferry."))
        .collect();
    assert!(s.len() <= 2, "source keeps more than keep = 2: {s:?}");
    eprintln!("resume: {:.1} s", t0.elapsed().as_secs_f64());
}

/// A raw send of an encrypted dataset cut at half resumes raw (the token says so): the replica
/// stays encrypted with the source's key, which the destination never loads; setup says how the
/// stream goes, and refuses a decrypted send (`raw = false`) while the source's key is unloaded.
#[test]
fn a_cut_raw_send_of_an_encrypted_dataset_resumes_raw() {
    let Some(vm) = OpenZfs::get() else { return };
    let t0 = Instant::now();
    let p = Pools::create(vm, "rawresume", 256);
    let key = p.encrypted_source();
    let src = format!("{}/data", p.src);
    let dst = format!("{}/rep/data", p.dst);
    let f = Ferry::new(vm, &src, &dst, "keep = 2\nbwlimit = \"3M\"");
    vm.write_random(&format!("/mnt/{src}/a.bin"), 20);
    let r = f.ok(&["setup", "data"]);
    assert!(
        r.stdout.contains(&format!(
            "source encryption: aes-256-gcm, encryption root {src}, key format passphrase, key loaded: sent raw (zfs send -w)"
        )),
        "{}",
        r.stdout
    );

    cut_and_resume(vm, &f, &dst, "initialize", "raw full send");
    let props = vm.sh(&format!(
        "zfs get -H -o value encryption,keystatus,encryptionroot {dst}"
    ));
    let d: Vec<&str> = props.lines().collect();
    assert_eq!(
        d,
        ["aes-256-gcm", "unavailable", dst.as_str()],
        "the resumed replica is not the raw one"
    );
    check_clean_encrypted(vm, &p, &f, &dst);
    vm.sh(&format!("zfs load-key -L file://{key} {dst} && zfs mount {dst}"));
    assert_eq!(vm.tree_sum(&format!("/mnt/{src}")), vm.tree_sum(&format!("/mnt/{dst}")));
    vm.sh(&format!("zfs unmount {dst} && zfs unload-key {dst}"));

    // a decrypted send needs the key: setup says so while it is unloaded
    let plain = format!("{}/rep/plain", p.dst);
    let g = Ferry::new(vm, &src, &plain, "raw = false");
    vm.sh(&format!("zfs unmount {src} && zfs unload-key {src}"));
    let r = g.run(&["setup", "plain"]);
    vm.sh(&format!("zfs load-key {src} && zfs mount {src}"));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains(&format!("zfs load-key {src}")), "{}", r.stdout);
    eprintln!("raw resume: {:.1} s", t0.elapsed().as_secs_f64());
}

/// `check_clean` for an encrypted replica, whose files cannot be read without its key: no token,
/// no zfs process, Synchronized.
fn check_clean_encrypted(vm: &OpenZfs, p: &Pools, f: &Ferry, dst: &str) {
    assert_eq!(vm.get_prop(dst, "receive_resume_token"), "-");
    let procs = p.zfs_processes().join("\n");
    assert!(procs.trim().is_empty(), "zfs processes left in the guest: {procs}");
    assert_eq!(f.status()["state"], "Synchronized");
}
