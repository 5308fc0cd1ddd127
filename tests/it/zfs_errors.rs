//! ZFS errors read about the snapshot a command named, on real zfs-fuse pools: whatever the
//! dataset is called (`household`, `held`, `busybox`, `a-b_c.d:e`), a snapshot kept by a user
//! hold (`zfs hold`) is held, left at once with its reason; one kept by a clone is busy and is
//! retried until the clone goes; one not there is absent. zfs-fuse says "dataset is busy" for
//! a hold: the snapshot's user references tell it apart.

use crate::common;

use std::time::{Duration, Instant};

use common::zfs::{run, snapshots, try_run, TestPool};
use ferry::config::Endpoint;
use ferry::driver::{for_kind, Destroy, DriverError};
use ferry::engine::retention::destroy_until_gone;
use ferry::exec::Executor;
use ferry::model::Kind;

/// Releases the test's holds on the way out (panicking or not), so the pool can be destroyed.
struct Release(Vec<String>);

impl Drop for Release {
    fn drop(&mut self) {
        for s in &self.0 {
            let _ = try_run(&format!("zfs release ferrytest '{s}'"));
        }
    }
}

fn names(list: &[String]) -> Vec<String> {
    list.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_and_busy_snapshots_are_told_apart_whatever_the_dataset_is_called() {
    let Some(pool) = TestPool::create("zerr", 128) else {
        return;
    };
    let mut release = Release(Vec::new());
    let driver = for_kind(Kind::Zfs).expect("zfs has a driver");
    let ex = Executor::Local;
    for (i, sub) in ["household", "held", "busybox", "a-b_c.d:e"].into_iter().enumerate() {
        let ds = pool.create_dataset(sub);
        for s in ["held1", "busy1", "plain1", "busy2"] {
            run(&format!("zfs snapshot '{ds}@{s}'"));
        }
        run(&format!("zfs hold ferrytest '{ds}@held1'"));
        release.0.push(format!("{ds}@held1"));
        let (c1, c2) = (pool.ds(&format!("c1-{i}")), pool.ds(&format!("c2-{i}")));
        run(&format!("zfs clone -o canmount=off '{ds}@busy1' '{c1}'"));
        run(&format!("zfs clone -o canmount=off '{ds}@busy2' '{c2}'"));
        let vol = Endpoint::local(&ds);

        // the driver: one answer per snapshot, read about that snapshot
        let asked = names(&["held1".into(), "busy1".into(), "plain1".into(), "nosuch".into()]);
        let out = driver.destroy_snapshots(&ex, &vol, &asked).await.unwrap();
        match &out[0].1 {
            Destroy::Failed(DriverError::Held(why)) => assert!(
                why.contains(&format!("cannot destroy '{ds}@held1': dataset is busy")) && why.contains("held: 1 user"),
                "{why}"
            ),
            o => panic!("{ds}@held1 has a user hold: {o:?}"),
        }
        match &out[1].1 {
            Destroy::Failed(DriverError::Busy(why)) => assert!(why.contains("dependent clones"), "{why}"),
            o => panic!("{ds}@busy1 is kept by a clone: {o:?}"),
        }
        assert_eq!(out[2].1, Destroy::Destroyed, "{ds}");
        assert_eq!(out[3].1, Destroy::Absent, "{ds}");

        // retention and purge: a held one is left at once with its reason, not tried again
        let t = Instant::now();
        let p = destroy_until_gone(driver, &ex, &vol, &["held1".to_string()], 10).await;
        assert!(p.destroyed.is_empty(), "{p:?}");
        assert_eq!(p.left.len(), 1, "{p:?}");
        assert!(p.left[0].held && p.left[0].error.contains("dataset is busy"), "{p:?}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{ds}: a hold is not waited out ({:?}; ten attempts take 4.5 s)",
            t.elapsed()
        );

        // a busy one is tried again, and goes once what kept it is gone (the clones are never
        // mounted: zfs-fuse answers "busy" for a while after a mount)
        let gone = c2.clone();
        let later = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            run(&format!("zfs destroy '{gone}'"));
        });
        let p = destroy_until_gone(driver, &ex, &vol, &["busy2".to_string(), "held1".to_string()], 10).await;
        later.join().unwrap();
        assert_eq!(p.destroyed, ["busy2"], "{ds}: {p:?}");
        assert_eq!(p.left.len(), 1, "{p:?}");
        assert_eq!(p.left[0].snapshot, "held1");
        assert!(p.left[0].held, "{p:?}");
        let left = snapshots(&ds);
        assert!(
            left.contains(&format!("{ds}@held1"))
                && left.contains(&format!("{ds}@busy1"))
                && !left.contains(&format!("{ds}@busy2")),
            "{left:?}"
        );
        run(&format!("zfs destroy '{c1}'"));
    }
}
