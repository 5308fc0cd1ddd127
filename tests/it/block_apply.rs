//! Block apply end to end on real files and loop devices: initialize, scattered writes, growth,
//! a refused shrink, a device too small, resume after a cut, discard, refusing a foreign file.

use crate::block_util as util;

use ferry::block::apply::{Dest, Plan, Recovered, Unsealed};
use ferry::block::journal::JournalError;
use ferry::block::local::update;
use ferry::block::{scan, HashAlgo};
use std::os::unix::fs::FileExt;
use std::path::Path;
use util::{hash_file, names, scatter_writes, write_random, Loop};

const MIB: usize = 1 << 20;

fn dest(dir: &Path) -> Dest {
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    Dest::new(dir.join("target.img"), state)
}

fn assert_same(a: &Path, b: &Path) {
    assert!(
        std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
        "{} and {} differ",
        a.display(),
        b.display()
    );
}

#[test]
fn initialize_then_scattered_writes_send_only_the_changed_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("vm1.img");
    write_random(&src, 8 * MIB + 1000, 1);
    let d = dest(dir.path());
    let first = update(&src, &d, 4096, HashAlgo::Blake3).unwrap();
    assert_same(&src, &d.target);
    assert_eq!(first.bytes_sent, 8 * MIB as u64 + 1000);
    assert_eq!(first.bytes_read, 8 * MIB as u64 + 1000);

    let changed = scatter_writes(&src, 50, 2);
    let second = update(&src, &d, 4096, HashAlgo::Blake3).unwrap();
    assert_same(&src, &d.target);
    assert_eq!(second.chunks_sent, changed.len() as u64);
    assert_eq!(second.bytes_sent, 50 * 4096, "only the rewritten chunks are sent");
    assert_eq!(second.bytes_read, 8 * MIB as u64 + 1000, "the source is read once");
    // The checkpoint describes the target exactly; nothing else is left in the state dir.
    let (fresh, _) = scan(&d.target, 4096, HashAlgo::Blake3).unwrap();
    assert_eq!(d.checkpoint().unwrap(), Some(fresh));
    assert_eq!(names(&d.state), vec!["checkpoint.manifest"]);
    // Nothing changed: nothing sent.
    assert_eq!(update(&src, &d, 4096, HashAlgo::Blake3).unwrap().bytes_sent, 0);
}

#[test]
fn a_grown_source_grows_the_target_and_a_shrunk_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("vm1.img");
    write_random(&src, 3 * MIB + 17, 3);
    let d = dest(dir.path());
    update(&src, &d, 65536, HashAlgo::Xxh3).unwrap();
    // Grow by 1 MiB + a bit: the short old tail chunk and the new ones are sent.
    let mut data = std::fs::read(&src).unwrap();
    data.extend(std::iter::repeat_n(7u8, MIB + 5000));
    std::fs::write(&src, &data).unwrap();
    let grown = update(&src, &d, 65536, HashAlgo::Xxh3).unwrap();
    assert_same(&src, &d.target);
    assert!(
        grown.bytes_sent <= (MIB + 5000 + 2 * 65536) as u64,
        "sent {}",
        grown.bytes_sent
    );

    let before = hash_file(&d.target, None);
    std::fs::write(&src, &data[..2 * MIB]).unwrap();
    let err = update(&src, &d, 65536, HashAlgo::Xxh3).unwrap_err();
    assert!(matches!(err, JournalError::Shrink { old, new, .. } if old == data.len() as u64 && new == 2 * MIB as u64));
    assert!(err.to_string().contains("does not shrink"), "{err}");
    assert_eq!(
        hash_file(&d.target, None),
        before,
        "a refused shrink leaves the target alone"
    );
    assert_eq!(names(&d.state), vec!["checkpoint.manifest"]);
}

#[test]
fn loop_devices_as_source_and_target() {
    let dir = tempfile::tempdir().unwrap();
    let src_file = dir.path().join("src.backing");
    write_random(&src_file, 12 * MIB, 4);
    let dst_file = dir.path().join("dst.backing");
    std::fs::write(&dst_file, vec![0u8; 16 * MIB]).unwrap();
    let src = Loop::attach(&src_file);
    let dst = Loop::attach(&dst_file);
    // A device scans like the file behind it.
    assert_eq!(
        scan(&src.dev, 4096, HashAlgo::Blake3).unwrap().0,
        scan(&src_file, 4096, HashAlgo::Blake3).unwrap().0
    );
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let d = Dest::new(&dst.dev, &state);
    update(&src.dev, &d, 4096, HashAlgo::Blake3).unwrap();
    assert_eq!(hash_file(&dst.dev, Some(12 * MIB as u64)), hash_file(&src_file, None));
    scatter_writes(&src.dev, 30, 5);
    let second = update(&src.dev, &d, 4096, HashAlgo::Blake3).unwrap();
    assert_eq!(second.bytes_sent, 30 * 4096);
    assert_eq!(hash_file(&dst.dev, Some(12 * MIB as u64)), hash_file(&src.dev, None));
    // A source larger than the target device is refused before anything is written.
    let big = dir.path().join("big.img");
    write_random(&big, 20 * MIB, 6);
    let before = hash_file(&dst.dev, None);
    let err = update(&big, &d, 4096, HashAlgo::Blake3).unwrap_err();
    assert!(
        matches!(err, JournalError::TargetTooSmall { have, need, .. } if have == 16 * MIB as u64 && need == 20 * MIB as u64),
        "{err}"
    );
    assert_eq!(hash_file(&dst.dev, None), before);
}

#[test]
fn a_cut_transfer_resumes_from_the_journaled_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("vm1.img");
    write_random(&src, 4 * MIB, 7);
    let d = dest(dir.path());
    update(&src, &d, 4096, HashAlgo::Blake3).unwrap();
    let old = hash_file(&d.target, None);
    let changed = scatter_writes(&src, 100, 8);
    let (next, _) = scan(&src, 4096, HashAlgo::Blake3).unwrap();
    let data = std::fs::read(&src).unwrap();

    // Journal half the changed chunks, then stop as a cut link would (no commit).
    {
        let plan = Plan {
            algo: HashAlgo::Blake3,
            chunk_size: 4096,
            source_size: next.source_size,
        };
        let mut s = d.begin(plan).unwrap();
        for &i in &changed[..50] {
            let (at, len) = next.chunk_span(i);
            s.add(i, &data[at as usize..at as usize + len], &next.digests[i as usize])
                .unwrap();
        }
        s.sync().unwrap();
    }
    assert!(matches!(
        d.begin(Plan {
            algo: HashAlgo::Blake3,
            chunk_size: 65536,
            source_size: 0
        }),
        Err(JournalError::PlanMismatch { .. })
    ));
    match d.recover(Unsealed::Keep).unwrap() {
        Recovered::Kept { held } => assert_eq!(held.keys().copied().collect::<Vec<_>>(), changed[..50].to_vec()),
        other => panic!("expected the unsealed journal kept, got {other:?}"),
    }
    assert_eq!(
        hash_file(&d.target, None),
        old,
        "an unsealed journal never touches the target"
    );

    // Meanwhile the source changes again: a held chunk back to its old bytes, one rewritten.
    let mut old_bytes = vec![0u8; 4096];
    std::fs::File::open(&d.target)
        .unwrap()
        .read_exact_at(&mut old_bytes, changed[0] * 4096)
        .unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
    f.write_all_at(&old_bytes, changed[0] * 4096).unwrap();
    f.write_all_at(&[0xAB; 4096], changed[1] * 4096).unwrap();
    f.sync_all().unwrap();

    let resumed = update(&src, &d, 4096, HashAlgo::Blake3).unwrap();
    assert_same(&src, &d.target);
    assert_eq!(resumed.chunks_held, 50);
    // 50 never journaled + the two held chunks the source changed again.
    assert_eq!(resumed.chunks_sent, 52, "{resumed:?}");
    assert_eq!(names(&d.state), vec!["checkpoint.manifest"]);
}

#[test]
fn discard_drops_an_unsealed_journal_and_keeps_the_old_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("vm1.img");
    write_random(&src, MIB, 9);
    let d = dest(dir.path());
    update(&src, &d, 4096, HashAlgo::Blake3).unwrap();
    let old = hash_file(&d.target, None);
    let plan = Plan {
        algo: HashAlgo::Blake3,
        chunk_size: 4096,
        source_size: MIB as u64,
    };
    {
        let mut s = d.begin(plan).unwrap();
        s.add(3, &[1u8; 4096], &HashAlgo::Blake3.hash(&[1u8; 4096])).unwrap();
        s.sync().unwrap();
    }
    // Leftover temp files of an interrupted atomic write go too.
    std::fs::write(d.state.join(".next.manifest.0123abcd.tmp"), b"half").unwrap();
    assert_eq!(d.recover(Unsealed::Discard).unwrap(), Recovered::Discarded);
    assert_eq!(names(&d.state), vec!["checkpoint.manifest"]);
    assert_eq!(hash_file(&d.target, None), old);
    assert_eq!(d.recover(Unsealed::Keep).unwrap(), Recovered::Clean);
}

#[test]
fn a_file_ferry_did_not_make_and_a_damaged_checkpoint_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("vm1.img");
    write_random(&src, MIB, 10);
    let d = dest(dir.path());
    std::fs::write(&d.target, b"someone's data").unwrap();
    let err = update(&src, &d, 4096, HashAlgo::Blake3).unwrap_err();
    assert!(matches!(err, JournalError::TargetNotEmpty { size: 14, .. }), "{err}");
    assert_eq!(std::fs::read(&d.target).unwrap(), b"someone's data");

    std::fs::remove_file(&d.target).unwrap();
    update(&src, &d, 4096, HashAlgo::Blake3).unwrap();
    let mut bytes = std::fs::read(d.checkpoint_path()).unwrap();
    bytes[40] ^= 1;
    std::fs::write(d.checkpoint_path(), &bytes).unwrap();
    let err = update(&src, &d, 4096, HashAlgo::Blake3).unwrap_err();
    assert!(err.to_string().contains("checkpoint.manifest"), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
}
