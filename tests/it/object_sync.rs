//! Replication passes between two real s3s-fs servers: initial copy (many small objects and one
//! multipart), changes and deletes propagating, content type and metadata kept, a destination
//! stopped mid-pass leaving FAILED entries that a retry completes, and the bwlimit holding.

use crate::object_util;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry::object::bwlimit::RateLimit;
use ferry::object::client::{Client, ObjectAttrs};
use ferry::object::sync::{journal_path, Pair, Scope, SyncOptions};
use ferry::state::object_journal::{Journal, State};
use ferry::state::records::Journaled;
use futures::StreamExt;
use object_util::{bytes, require_s3s_fs, S3Server};

fn meta(ct: &str, k: &str, v: &str) -> ObjectAttrs {
    ObjectAttrs {
        content_type: Some(ct.into()),
        metadata: [(k.to_string(), v.to_string())].into_iter().collect(),
    }
}

async fn put_many(c: &Client, n: usize, size: usize, seed: u64) {
    futures::stream::iter(0..n)
        .map(|i| {
            let c = c.clone();
            async move {
                let a = meta("text/plain", "n", &i.to_string());
                c.put(
                    &format!("small/{i:04}.txt"),
                    Bytes::from(bytes(seed + i as u64, size)),
                    &a,
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
}

/// Destination holds exactly the source's keys with equal bytes and attributes.
async fn assert_same(src: &Client, dst: &Client) {
    let (s, d) = (src.list().await.unwrap().objects, dst.list().await.unwrap().objects);
    let keys =
        |v: &Vec<ferry::object::client::ObjectInfo>| v.iter().map(|o| (o.key.clone(), o.size)).collect::<Vec<_>>();
    assert_eq!(keys(&s), keys(&d));
    for o in &s {
        let (sa, sb) = src.get(&o.key).await.unwrap();
        let (da, db) = dst.get(&o.key).await.unwrap();
        assert!(sb == db, "bytes of {} differ", o.key);
        assert_eq!(sa, da, "attributes of {}", o.key);
    }
}

fn pair(src: Client, dst: Client, dir: &std::path::Path, options: SyncOptions) -> Pair {
    Pair {
        src,
        dst,
        state_dir: dir.to_path_buf(),
        options,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_update_delete_metadata_multipart() {
    let Some(bin) = require_s3s_fs() else { return };
    let a = S3Server::start(&bin, "sitea", &["photos"]);
    let b = S3Server::start(&bin, "siteb", &["photos-dr"]);
    let (src, dst) = (a.client("photos/2026"), b.client("photos-dr/2026/"));
    put_many(&src, 80, 3000, 1).await;
    let big = bytes(99, 20 << 20);
    src.put("big/video.mp4", Bytes::from(big), &meta("video/mp4", "camera", "x100"))
        .await
        .unwrap();
    // Outside the source prefix: never copied.
    a.client("photos")
        .put("other/x", Bytes::from_static(b"x"), &ObjectAttrs::default())
        .await
        .unwrap();

    let state = tempfile::tempdir().unwrap();
    let opts = SyncOptions {
        multipart_threshold: 8 << 20,
        part_size: 5 << 20,
        ..Default::default()
    };
    let p = pair(src.clone(), dst.clone(), state.path(), opts);
    let r = p.pass().await.unwrap();
    assert_eq!((r.copied, r.deleted, r.failed), (81, 0, 0), "{r:?}");
    assert_same(&src, &dst).await;
    assert!(b.root.path().join("photos-dr/2026/big/video.mp4").is_file());
    assert!(!b.root.path().join("photos-dr/other").exists());
    let (big_etag, _) = dst.head("big/video.mp4").await.unwrap();
    let (src_etag, _) = src.head("big/video.mp4").await.unwrap();
    // A multipart ETag (MD5 of part MD5s, "-N") differs from the single-put one.
    assert!(
        big_etag.is_some() && big_etag != src_etag,
        "went multipart: {big_etag:?} vs {src_etag:?}"
    );

    let r = p.pass().await.unwrap();
    assert_eq!((r.copied, r.deleted, r.unchanged), (0, 0, 81), "no-op pass: {r:?}");

    // Changes: new bytes, metadata only (same bytes), a new key, two deletes. A metadata-only
    // rewrite keeps the ETag; listing shows it by last-modified, whose unit is one second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    src.put(
        "small/0001.txt",
        Bytes::from(bytes(5000, 3000)),
        &meta("text/plain", "n", "1"),
    )
    .await
    .unwrap();
    let (_, same) = src.get("small/0002.txt").await.unwrap();
    src.put("small/0002.txt", same, &meta("text/csv", "n", "changed"))
        .await
        .unwrap();
    src.put(
        "new/key",
        Bytes::from_static(b"hello"),
        &meta("text/plain", "fresh", "yes"),
    )
    .await
    .unwrap();
    src.delete("small/0003.txt").await.unwrap();
    src.delete("big/video.mp4").await.unwrap();
    let r = p.pass().await.unwrap();
    assert_eq!((r.copied, r.deleted, r.failed), (3, 2, 0), "{r:?}");
    assert_same(&src, &dst).await;
    assert_eq!(
        dst.attrs("small/0002.txt").await.unwrap(),
        meta("text/csv", "n", "changed")
    );

    // A change behind ferry's back on the destination: an update reads only the source against
    // the checkpoint and leaves it; a full pass (update --repair) finds and mends it.
    dst.put(
        "small/0004.txt",
        Bytes::from_static(b"tampered"),
        &ObjectAttrs::default(),
    )
    .await
    .unwrap();
    let r = p.pass().await.unwrap();
    assert_eq!((r.copied, r.deleted), (0, 0), "{r:?}");
    let r = p.pass_scoped(Scope::Full).await.unwrap();
    assert_eq!(r.copied, 1, "{r:?}");
    assert_same(&src, &dst).await;
    let j = Journal::open(&journal_path(state.path())).unwrap();
    assert!(j.unfinished().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_stopped_mid_pass_fails_then_retry_completes() {
    let Some(bin) = require_s3s_fs() else { return };
    let a = S3Server::start(&bin, "srcsite", &["data"]);
    let mut b = S3Server::start(&bin, "dstsite", &["data-dr"]);
    let (src, dst) = (a.client("data"), b.client("data-dr"));
    put_many(&src, 40, 100_000, 7).await;
    let state = tempfile::tempdir().unwrap();
    // 4 MB at 1 MB/s: the pass takes about 4 s, so the destination dies in the middle.
    let opts = SyncOptions {
        parallel_objects: 2,
        bwlimit: Some(Arc::new(RateLimit::new(1_000_000))),
        ..Default::default()
    };
    let p = pair(src.clone(), dst.clone(), state.path(), opts);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        b.stop();
        b
    });
    let r = p.pass().await.unwrap();
    let mut b = killer.join().unwrap();
    assert!(r.copied > 0 && r.failed > 0 && r.copied + r.failed == 40, "{r:?}");
    let j = Journal::open(&journal_path(state.path())).unwrap();
    let failed = j.failed();
    assert_eq!(failed.len(), r.failed);
    assert!(failed
        .iter()
        .all(|e| e.state == State::Failed && e.retries == 1 && e.next_retry_ms > 0));
    assert!(
        failed[0].reason.as_deref().unwrap_or("").contains("data-dr"),
        "{:?}",
        failed[0].reason
    );
    let failed_n = failed.len();
    drop(j);

    // Still down: the pass reads only the source; what is due fails again, nothing is lost.
    let r = p.pass().await.unwrap();
    assert_eq!(r.copied, 0, "{r:?}");
    b.restart();
    // Backoff not passed yet and nothing new to decide for those keys: a retry makes them due.
    let r = p.retry().await.unwrap();
    assert_eq!(r.failed, 0, "{r:?}");
    assert!(r.copied >= failed_n, "{r:?}");
    let j = Journal::open(&journal_path(state.path())).unwrap();
    assert!(j.unfinished().is_empty(), "{:?}", j.unfinished());
    assert_same(&src, &dst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bwlimit_holds_on_copy() {
    let Some(bin) = require_s3s_fs() else { return };
    let a = S3Server::start(&bin, "bwa", &["bwsrc"]);
    let b = S3Server::start(&bin, "bwb", &["bwdst"]);
    let (src, dst) = (a.client("bwsrc"), b.client("bwdst"));
    src.put("one", Bytes::from(bytes(3, 3_000_000)), &ObjectAttrs::default())
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let opts = SyncOptions {
        multipart_threshold: 1 << 20,
        part_size: 5 << 20,
        bwlimit: Some(Arc::new(RateLimit::new(1_500_000))),
        ..Default::default()
    };
    let start = Instant::now();
    let r = pair(src.clone(), dst.clone(), state.path(), opts).pass().await.unwrap();
    let took = start.elapsed().as_secs_f64();
    assert_eq!(r.copied, 1);
    assert!(took >= 1.7, "3 MB at 1.5 MB/s took only {took:.2} s");
    assert_same(&src, &dst).await;
}
