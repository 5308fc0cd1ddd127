//! Cluster journal throughput (release build, one thread): `cargo bench --bench cluster_journal`.
//!
//! What `cluster run` does with every change a listener hands in, without the S3 requests around
//! it: journal it (coalesced per key against what is waiting, synced to disk, one sync per
//! listing batch), find what is ready, mark it done, sync. Keys repeat (a quarter of the changes
//! rewrite a key still waiting), so coalescing has work. Target: >= 5,000 changes/s.
//! CHANGES=n and BATCH=n override the totals (default 100,000 in batches of 1,000).

use std::time::Instant;

use ferry::state::cluster_journal::{path_in, Journal, Seen, Version};
use ferry::state::object_journal::Op;
use ferry::state::records::Journaled;

fn var(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let total = var("CHANGES", 100_000);
    let batch = var("BATCH", 1_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut j = Journal::open(&path_in(dir.path())).expect("journal");
    let targets = vec!["s3b:shared".to_string(), "s3c:shared".to_string()];
    let start = Instant::now();
    let (mut journaled, mut applied) = (0usize, 0usize);
    let mut n = 0usize;
    while n < total {
        let changes: Vec<Seen> = (n..(n + batch).min(total))
            .map(|i| {
                // every fourth change rewrites a key of the batch before (still waiting)
                let key = if i % 4 == 3 {
                    format!("k/{:08}", i - batch.min(i))
                } else {
                    format!("k/{i:08}")
                };
                Seen {
                    origin: "s3a:shared".into(),
                    key,
                    op: if i % 50 == 49 { Op::Delete } else { Op::Put },
                    ver: Some(Version {
                        size: 4096 + i as u64,
                        modified_ms: 1_795_000_000_000 + i as i64,
                        etag: None,
                    }),
                    targets: targets.clone(),
                    round: false,
                }
            })
            .collect();
        let seen = changes
            .iter()
            .map(|c| (c.origin.clone(), c.key.clone(), c.ver.clone()))
            .collect();
        n += changes.len();
        journaled += j.record(changes, seen).expect("record");
        // the apply half of a cycle, every other batch (changes wait a cycle, as under settle)
        if (n / batch).is_multiple_of(2) {
            let ready = j.ready(u64::MAX / 2, 0);
            let done: Vec<(u64, String)> = ready.iter().map(|(c, t)| (c.seq, t.clone())).collect();
            applied += done.len();
            j.done(&done).expect("done");
            j.sync().expect("sync");
            j.maybe_compact().expect("compact");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "cluster journal: {total} changes in {secs:.2} s = {:.0} changes/s journaled and coalesced \
         ({} arrived older than a waiting change and were dropped, {applied} fan-outs marked done; batches of {batch}); target >= 5000/s",
        total as f64 / secs,
        total - journaled
    );
}
