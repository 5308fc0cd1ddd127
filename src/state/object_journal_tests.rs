//! Unit tests of the object status journal: states, FIFO per key, backoff, torn tails, compaction.

use super::*;

fn journal() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("status.journal");
    (dir, path)
}

#[test]
fn states_survive_reopen() {
    let (_d, path) = journal();
    let mut j = Journal::open(&path).unwrap();
    let a = j.enqueue("a", Op::Put).unwrap();
    let b = j.enqueue("b", Op::Delete).unwrap();
    let c = j.enqueue("c", Op::Put).unwrap();
    j.complete(a).unwrap();
    j.fail(b, "destination refused", 10_000).unwrap();
    drop(j);
    let j = Journal::open(&path).unwrap();
    assert!(j.entry(a).is_err(), "completed entry left the view");
    let fb = j.entry(b).unwrap();
    assert_eq!(
        (fb.state.clone(), fb.retries, fb.next_retry_ms),
        (State::Failed, 1, 11_000)
    );
    assert_eq!(fb.reason.as_deref(), Some("destination refused"));
    assert_eq!(j.pending().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![c]);
    assert_eq!(j.failed().len(), 1);
}

#[test]
fn fifo_per_key_holds_newer_until_older_completes() {
    let (_d, path) = journal();
    let mut j = Journal::open(&path).unwrap();
    let k1 = j.enqueue("k", Op::Put).unwrap();
    let k2 = j.enqueue("k", Op::Delete).unwrap();
    let other = j.enqueue("z", Op::Put).unwrap();
    let seqs = |j: &Journal, now| j.ready(now).iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&j, 0), vec![k1, other]);
    j.fail(k1, "boom", 1_000).unwrap();
    // The failed head blocks the newer change of the same key until its backoff passes.
    assert_eq!(seqs(&j, 1_500), vec![other]);
    assert_eq!(seqs(&j, 2_000), vec![k1, other]);
    j.complete(k1).unwrap();
    assert_eq!(seqs(&j, 0), vec![k2, other]);
}

#[test]
fn backoff_doubles_and_caps() {
    assert_eq!(backoff_ms(1), 1_000);
    assert_eq!(backoff_ms(2), 2_000);
    assert_eq!(backoff_ms(5), 16_000);
    assert_eq!(backoff_ms(40), BACKOFF_CAP_MS);
    let (_d, path) = journal();
    let mut j = Journal::open(&path).unwrap();
    let s = j.enqueue("k", Op::Put).unwrap();
    for _ in 0..3 {
        j.fail(s, "x", 0).unwrap();
    }
    assert_eq!(
        (j.entry(s).unwrap().retries, j.entry(s).unwrap().next_retry_ms),
        (3, 4_000)
    );
    assert_eq!(j.retry_all_now().unwrap(), 1);
    assert_eq!(j.ready(0).len(), 1, "operator retry makes it due now");
}

#[test]
fn torn_tail_is_cut_and_damage_inside_is_an_error() {
    let (_d, path) = journal();
    let mut j = Journal::open(&path).unwrap();
    j.enqueue("a", Op::Put).unwrap();
    j.enqueue("b", Op::Put).unwrap();
    drop(j);
    let good = std::fs::read(&path).unwrap();
    let mut torn = good.clone();
    torn.extend_from_slice(b"0123456789abcdef {\"r\":\"enq\",\"se");
    std::fs::write(&path, &torn).unwrap();
    let mut j = Journal::open(&path).unwrap();
    assert_eq!(j.pending().len(), 2);
    assert_eq!(std::fs::read(&path).unwrap(), good, "torn tail truncated");
    j.enqueue("c", Op::Put).unwrap();
    drop(j);
    assert_eq!(Journal::open(&path).unwrap().pending().len(), 3);

    let mut bad = std::fs::read(&path).unwrap();
    bad[20] ^= 0x01; // inside the first record
    std::fs::write(&path, &bad).unwrap();
    let err = Journal::open(&path).err().expect("damage must be reported").to_string();
    assert!(err.contains("line 1") && err.contains("status.journal"), "{err}");
}

#[test]
fn compaction_keeps_unfinished_and_sequence() {
    let (_d, path) = journal();
    let mut j = Journal::open(&path).unwrap();
    for i in 0..200 {
        let s = j.enqueue(&format!("k{i}"), Op::Put).unwrap();
        if i % 10 != 0 {
            j.complete(s).unwrap();
        }
    }
    let f = j.pending()[0].seq;
    j.fail(f, "nope", 5).unwrap();
    let before = j.file_len().unwrap();
    j.compact().unwrap();
    assert!(j.file_len().unwrap() * 10 < before, "compaction shrinks the file");
    let last = j.enqueue("after", Op::Delete).unwrap();
    assert_eq!(last, 201, "sequence numbers never repeat after compaction");
    drop(j);
    let j = Journal::open(&path).unwrap();
    assert_eq!(j.unfinished().len(), 21);
    assert_eq!(j.entry(f).unwrap().retries, 1);
    assert_eq!(j.entry(last).unwrap().op, Op::Delete);
}

#[test]
fn lag_is_age_of_oldest_unfinished() {
    let (_d, path) = journal();
    let mut j = Journal::open(&path).unwrap();
    assert_eq!(j.lag_ms(now_ms()), 0);
    let s = j.enqueue("a", Op::Put).unwrap();
    let at = j.entry(s).unwrap().enqueued_ms;
    assert_eq!(j.lag_ms(at + 5_000), 5_000);
}
