//! Unit tests of the cluster journal: replay, coalescing per key, settle and FIFO per target,
//! backoff, compaction.

use super::*;

fn v(size: u64, modified_ms: i64) -> Option<Version> {
    Some(Version {
        size,
        modified_ms,
        etag: None,
    })
}

fn put(origin: &str, key: &str, ver: Option<Version>, targets: &[&str]) -> Seen {
    Seen {
        origin: origin.into(),
        key: key.into(),
        op: Op::Put,
        ver,
        targets: targets.iter().map(|t| t.to_string()).collect(),
        round: false,
    }
}

fn keys(j: &Journal) -> Vec<(String, String, Vec<String>)> {
    j.unfinished()
        .map(|c| (c.origin.clone(), c.key.clone(), c.targets.keys().cloned().collect()))
        .collect()
}

#[test]
fn journaled_changes_survive_a_reopen_and_done_ones_do_not_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = path_in(dir.path());
    let mut j = Journal::open(&p).unwrap();
    let n = j
        .record(
            vec![
                put("a", "k1", v(1, 1000), &["b", "c"]),
                put("a", "k2", v(2, 1000), &["b", "c"]),
            ],
            vec![
                ("a".into(), "k1".into(), v(1, 1000)),
                ("a".into(), "k2".into(), v(2, 1000)),
            ],
        )
        .unwrap();
    assert_eq!(n, 2);
    let first = j.unfinished().next().unwrap().seq;
    j.done(&[(first, "b".into())]).unwrap();
    j.sync().unwrap();
    drop(j);
    let j = Journal::open(&p).unwrap();
    assert_eq!(
        keys(&j),
        vec![
            ("a".into(), "k1".into(), vec!["c".into()]),
            ("a".into(), "k2".into(), vec!["b".into(), "c".into()])
        ]
    );
    assert_eq!(j.seen("a", "k2"), v(2, 1000).as_ref());
    assert!(j.busy("c", "k1") && !j.busy("b", "k1"));
}

#[test]
fn newer_beats_older_from_any_origin_and_an_older_arrival_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&path_in(dir.path())).unwrap();
    j.record(vec![put("a", "k", v(1, 1000), &["b", "c"])], vec![]).unwrap();
    // b wrote k later: a's change is superseded on every target, b's goes to a and c
    j.record(vec![put("b", "k", v(2, 2000), &["a", "c"])], vec![]).unwrap();
    assert_eq!(keys(&j), vec![("b".into(), "k".into(), vec!["a".into(), "c".into()])]);
    // c's version is older than b's: it never lands anywhere
    assert_eq!(
        j.record(vec![put("c", "k", v(3, 1500), &["a", "b"])], vec![]).unwrap(),
        0
    );
    assert_eq!(keys(&j), vec![("b".into(), "k".into(), vec!["a".into(), "c".into()])]);
    // a delete seen now is newer than every write before it
    let del = Seen {
        origin: "a".into(),
        key: "k".into(),
        op: Op::Delete,
        ver: None,
        targets: vec!["b".into(), "c".into()],
        round: false,
    };
    j.record(vec![del], vec![]).unwrap();
    let left: Vec<_> = j.unfinished().map(|c| (c.origin.clone(), c.op)).collect();
    assert_eq!(left, vec![("a".to_string(), Op::Delete)]);
}

#[test]
fn ready_waits_for_settle_keeps_fifo_per_target_and_backs_off_failures() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&path_in(dir.path())).unwrap();
    j.record(
        vec![put("a", "k", v(1, 1000), &["b"]), put("a", "other", v(1, 1000), &["b"])],
        vec![],
    )
    .unwrap();
    let now = crate::state::object_journal::now_ms();
    assert!(j.ready(now, 60_000).is_empty(), "not settled yet");
    let ready = j.ready(now + 60_000, 60_000);
    assert_eq!(ready.len(), 2);
    let (c, t) = &ready[0];
    j.fail(c.seq, t, "S3 down", now).unwrap();
    let again = j.ready(now + 100, 0);
    assert_eq!(again.len(), 1, "the failed one waits its backoff");
    assert_eq!(j.ready(now + 1_000, 0).len(), 2);
    assert_eq!(j.retry_all_now().unwrap(), 1);
    assert_eq!(j.ready(now, 0).len(), 2);
}

#[test]
fn compaction_keeps_what_is_unfinished_and_what_each_volume_holds() {
    let dir = tempfile::tempdir().unwrap();
    let p = path_in(dir.path());
    let mut j = Journal::open(&p).unwrap();
    // enough churn to pass the threshold: changes made and done
    let mut n = 0u64;
    while j.file_len().unwrap() <= COMPACT_OVER {
        let batch: Vec<Seen> = (0..500)
            .map(|i| put("a", &format!("k{}", n + i), v(i, 1000), &["b"]))
            .collect();
        j.record(batch, vec![]).unwrap();
        let done: Vec<(u64, String)> = j.unfinished().map(|c| (c.seq, "b".to_string())).collect();
        j.done(&done).unwrap();
        n += 500;
    }
    j.record(
        vec![put("a", "last", v(9, 9000), &["b"])],
        vec![("a".into(), "last".into(), v(9, 9000))],
    )
    .unwrap();
    let c = j.unfinished().next().unwrap().clone();
    j.fail(c.seq, "b", "boom", 5).unwrap();
    assert!(j.maybe_compact().unwrap());
    assert!(j.file_len().unwrap() < 4096, "{}", j.file_len().unwrap());
    drop(j);
    let j = Journal::open(&p).unwrap();
    let left: Vec<&Change> = j.unfinished().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seq, c.seq);
    assert_eq!(left[0].targets["b"].retries, 1);
    assert_eq!(j.seen("a", "last"), v(9, 9000).as_ref());
    let mut j = j;
    j.record(vec![put("a", "after", v(1, 1), &["b"])], vec![]).unwrap();
    assert!(
        j.unfinished().any(|x| x.key == "after" && x.seq > c.seq),
        "sequence numbers never repeat"
    );
}

fn fence(epoch: i64, holds: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Fence {
    Fence {
        epoch,
        holds: Box::new(move || holds.load(std::sync::atomic::Ordering::SeqCst)),
    }
}

#[test]
fn a_deposed_worker_cannot_change_the_journal_after_its_successor_opened_it() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let p = path_in(dir.path());
    let yes = || Arc::new(AtomicBool::new(true));
    let mut old = Journal::open_fenced(&p, fence(5, yes())).unwrap();
    old.record(vec![put("a", "k1", v(1, 1000), &["b"])], Vec::new())
        .unwrap();

    // the successor (a newer epoch) takes over while the old worker still believes it holds
    let mut new = Journal::open_fenced(&p, fence(9, yes())).unwrap();
    assert_eq!(keys(&new).len(), 1, "the successor replays what came before it");
    // the old worker's next write is refused: the journal changed since its last write
    let len = std::fs::metadata(&p).unwrap().len();
    let e = old.record(vec![put("a", "k2", v(2, 2000), &["b"])], Vec::new());
    assert!(matches!(e, Err(JournalError::Fenced(5))), "{:?}", e.err());
    assert!(!old.may_act());
    assert_eq!(std::fs::metadata(&p).unwrap().len(), len);

    // a write that slipped past that check (paused between the check and the write): a change
    // and a done, behind the old epoch
    let mut raw = Records::open::<Record>(&p, |_, _| Ok(())).unwrap();
    raw.append(&[
        Record::Epoch { epoch: 5 },
        Record::Change {
            seq: 7,
            origin: "a".into(),
            key: "k2".into(),
            op: Op::Put,
            at: 2000,
            ver: v(2, 2000),
            targets: vec!["b".into()],
            round: false,
        },
        Record::Done {
            seq: 1,
            target: "b".into(),
        },
    ])
    .unwrap();
    // the successor sees someone else wrote and stops too; nobody replays the stale records
    assert!(matches!(
        new.record(vec![put("a", "k3", v(3, 3000), &["b"])], Vec::new()),
        Err(JournalError::Fenced(9))
    ));
    let ks = |p: &Path| -> Vec<String> {
        keys(&Journal::open_read(p).unwrap())
            .into_iter()
            .map(|(_, k, _)| k)
            .collect()
    };
    assert_eq!(ks(&p), vec!["k1"]);

    // the next worker replays the same and works; a local instance after the workers too
    let mut newer = Journal::open_fenced(&p, fence(12, yes())).unwrap();
    newer
        .record(vec![put("a", "k3", v(3, 3000), &["b"])], Vec::new())
        .unwrap();
    assert_eq!(ks(&p), vec!["k1", "k3"]);
    drop(newer);
    let mut local = Journal::open(&p).unwrap();
    local
        .record(vec![put("a", "k4", v(4, 4000), &["b"])], Vec::new())
        .unwrap();
    assert_eq!(ks(&p), vec!["k1", "k3", "k4"]);

    // a lease older than the journal's newest worker (etcd restored): refused, named
    let e = Journal::open_fenced(&p, fence(7, yes())).err().unwrap();
    assert!(matches!(e, JournalError::EpochBehind { journal: 12, ours: 7 }), "{e}");

    // and a worker that sees its lease gone writes nothing at all
    let lost = Arc::new(AtomicBool::new(true));
    let mut last = Journal::open_fenced(&p, fence(20, lost.clone())).unwrap();
    lost.store(false, std::sync::atomic::Ordering::SeqCst);
    let len = std::fs::metadata(&p).unwrap().len();
    assert!(
        matches!(last.done(&[]), Err(JournalError::Fenced(20))),
        "an empty write checks too"
    );
    assert_eq!(std::fs::metadata(&p).unwrap().len(), len);
}

/// A fan-out round and an object of the same key are two things: neither supersedes the other,
/// and an object's change is not busy-marked as a round (the bug: an object named `@checkpoint`
/// was taken for a round).
#[test]
fn a_round_and_an_object_named_like_it_are_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut j = Journal::open(&dir.path().join("journal")).unwrap();
    let round = Seen {
        origin: "store1:tank/x".into(),
        key: super::CHECKPOINT_KEY.into(),
        op: Op::Put,
        ver: None,
        targets: vec!["store2:tank/x".into()],
        round: true,
    };
    j.record(vec![round], vec![]).unwrap();
    // an object of that name, written later (newer by every measure)
    let object = put("s3a:shared", super::CHECKPOINT_KEY, v(3, i64::MAX / 2), &["s3b:shared"]);
    j.record(vec![object], vec![]).unwrap();
    let j = Journal::open(&dir.path().join("journal")).unwrap();
    let left: Vec<(bool, String)> = j.unfinished().map(|c| (c.round, c.origin.clone())).collect();
    assert_eq!(
        left,
        vec![(true, "store1:tank/x".to_string()), (false, "s3a:shared".to_string())],
        "both are waiting, each marked for what it is"
    );
    assert!(j.busy("s3b:shared", super::CHECKPOINT_KEY));
    assert!(
        !j.busy("store2:tank/x", super::CHECKPOINT_KEY),
        "a round marks no object busy"
    );
    assert_eq!(j.ready(u64::MAX, 0).len(), 2);
}
