//! SIGKILL at pseudo-random points of block updates: each trial runs an update in a child
//! process (this test binary re-executed), kills it, runs `recover()` and checks that the target
//! and its checkpoint are both exactly the old or both exactly the new image, never a mix, and
//! that a successful recovery (or the resumed update after it) leaves no journal or temp file.

use crate::block_util as util;

use ferry::block::apply::{Dest, Recovered, Unsealed};
use ferry::block::local::update;
use ferry::block::{scan, HashAlgo};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::{hash_file, names, scatter_writes, write_random, Rng};

const CHILD_ENV: &str = "FERRY_BLOCK_KILL_CHILD";
const SIZE: usize = 24 << 20;
const TRIALS: u64 = 40;

/// In the child: the update to be killed. In a normal run: nothing.
#[test]
fn child_update() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let dir = Path::new(&dir);
    let d = Dest::new(dir.join("target.img"), dir.join("state"));
    update(&dir.join("new.img"), &d, 4096, HashAlgo::Blake3).expect("child update");
}

fn spawn_child(dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "block_kill::child_update", "--test-threads=1", "--quiet"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Lays out a destination at the old image's checkpoint and a changed (sometimes grown) source.
fn setup(dir: &Path, seed: u64) -> ((u64, [u8; 32]), (u64, [u8; 32])) {
    let old = dir.join("old.img");
    write_random(&old, SIZE, seed);
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let d = Dest::new(dir.join("target.img"), dir.join("state"));
    update(&old, &d, 4096, HashAlgo::Blake3).unwrap();
    let new = dir.join("new.img");
    std::fs::copy(&old, &new).unwrap();
    scatter_writes(&new, 1500, seed.wrapping_mul(31));
    if seed.is_multiple_of(2) {
        let mut f = std::fs::OpenOptions::new().append(true).open(&new).unwrap();
        let mut tail = vec![0u8; 300_000];
        Rng(seed).fill(&mut tail);
        std::io::Write::write_all(&mut f, &tail).unwrap();
        f.sync_all().unwrap();
    }
    (hash_file(&old, None), hash_file(&new, None))
}

#[test]
fn sigkill_at_random_points_always_recovers_to_a_whole_checkpoint() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // Calibrate: how long one whole update takes in a child, so kills spread over all of it.
    let cal = root.path().join("cal");
    std::fs::create_dir(&cal).unwrap();
    let (_, new_hash) = setup(&cal, 2);
    let started = Instant::now();
    assert!(
        spawn_child(&cal).wait().unwrap().success(),
        "the child update must work unkilled"
    );
    let whole = started.elapsed();
    assert_eq!(hash_file(&cal.join("target.img"), None), new_hash);

    let mut rng = Rng(0x5eed);
    let (mut at_old, mut at_new, mut kept, mut replayed, mut finished) = (0, 0, 0, 0, 0);
    for trial in 0..TRIALS {
        let dir = root.path().join(format!("t{trial}"));
        std::fs::create_dir(&dir).unwrap();
        let (old, new) = setup(&dir, trial + 10);
        let mut child = spawn_child(&dir);
        let delay = Duration::from_micros(rng.below(whole.as_micros() as u64 * 6 / 5 + 1));
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; an error means it had already exited
        let status = child.wait().unwrap();
        if status.success() {
            finished += 1;
        }

        let d = Dest::new(dir.join("target.img"), dir.join("state"));
        let policy = if trial % 2 == 0 {
            Unsealed::Keep
        } else {
            Unsealed::Discard
        };
        let recovered = d
            .recover(policy)
            .unwrap_or_else(|e| panic!("trial {trial}: recover failed: {e}"));
        let now = hash_file(&d.target, None);
        let checkpoint = d.checkpoint().unwrap().expect("a checkpoint");
        let (fresh, _) = scan(&d.target, 4096, HashAlgo::Blake3).unwrap();
        let differing = ferry::block::diff(&checkpoint, &fresh).unwrap();
        assert!(
            checkpoint.source_size == fresh.source_size && differing.is_empty(),
            "trial {trial} (killed after {delay:?}, {recovered:?}): the checkpoint does not describe the target: {} vs {} bytes, differing chunk runs {:?}",
            checkpoint.source_size,
            fresh.source_size,
            &differing[..differing.len().min(5)]
        );
        if now == old {
            at_old += 1;
        } else if now == new {
            at_new += 1;
        } else {
            panic!(
                "trial {trial} (killed after {delay:?}, {recovered:?}): target is neither the old nor the new image"
            );
        }
        match recovered {
            Recovered::Kept { held } => {
                kept += 1;
                assert_eq!(now, old, "trial {trial}: a kept journal must be unapplied");
                assert_eq!(names(&d.state), vec!["checkpoint.manifest", "journal"]);
                // Resume: the chunks already journaled are not sent again.
                let stats = update(&dir.join("new.img"), &d, 4096, HashAlgo::Blake3).unwrap();
                assert_eq!(stats.chunks_held, held.len() as u64);
                assert!(stats.chunks_sent + held.len() as u64 >= 1500, "{stats:?}");
                assert_eq!(hash_file(&d.target, None), new, "trial {trial}: resumed update");
            }
            Recovered::Replayed { .. } => replayed += 1,
            _ => {}
        }
        assert_eq!(
            names(&d.state),
            vec!["checkpoint.manifest"],
            "trial {trial}: leftovers after recovery"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!(
        "{TRIALS} trials over {whole:?}: {at_old} at the old image, {at_new} at the new, {kept} kept for resume, {replayed} sealed journals replayed, {finished} finished before the kill"
    );
    assert!(
        at_old > 0 && at_new > 0,
        "kills must land both before and after the seal: {at_old} old, {at_new} new"
    );
    assert!(
        replayed > 0,
        "no kill landed between the seal and the journal's removal"
    );
    assert!(
        finished < TRIALS,
        "every child finished before its kill: the test killed nothing"
    );
}
