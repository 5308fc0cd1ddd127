//! The engine's decisions through fake hosts (`exec::fake`): a pair's status from what each host
//! lists, a host that fails, setup when a tool is missing, and that the kind dispatch sends each
//! kind where it belongs. What crosses a process or the network is tested on real hosts in
//! tests/it/; these are fast checks of the engine's own reading.

use std::path::Path;

use crate::exec::fake::FakeHost;
use crate::model::StateKind;

use crate::engine::{kind, Engine};

fn engine(dir: &Path) -> Engine {
    let text = format!(
        "state_dir = \"{}\"\n\
         [hosts.store1]\naddress = \"192.0.2.1\"\n[hosts.store2]\naddress = \"192.0.2.2\"\n\
         [[pair]]\nsource = \"store1:tank/data\"\ndestination = \"store2:backup/data\"\nkeep = 2\n",
        dir.display()
    );
    let config = crate::config::parse(Path::new("t.toml"), &text).unwrap();
    Engine::new(config, None, false)
}

const SNAP_AT: i64 = 1_700_000_000;

/// The listing command the zfs driver sends for `ds`: the fakes answer the driver's own words,
/// so the engine's tests name no tool.
fn listing(ds: &str) -> String {
    crate::driver::zfs::commands::inspect(&[ds]).unwrap()
}

fn source_listing(snap: &str) -> String {
    format!(
        "tank/data\tcreation\t100\t-\ntank/data\treferenced\t4096\t-\n\
         tank/data@{snap}\tcreation\t{SNAP_AT}\t-\n"
    )
}

fn replica_listing(fp: &str, snap: &str) -> String {
    format!(
        "backup/data\tcreation\t100\t-\n\
         backup/data\tferry:fingerprint\t{fp}\tlocal\n\
         backup/data\tferry:source\tstore1:tank/data\tlocal\n\
         backup/data\tferry:lastsnap\t{snap}\tlocal\n\
         backup/data@{snap}\tcreation\t{SNAP_AT}\t-\n"
    )
}

#[tokio::test]
async fn a_pair_whose_sides_hold_its_checkpoint_is_synchronized_from_one_listing_each() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let pair = &e.config.pairs[0];
    let fp = pair.fingerprint();
    let snap = format!("ferry.{fp}.20231114T221320Z");
    let s = e
        .hosts
        .fake(FakeHost::new("store1").answers(&listing("tank/data"), &source_listing(&snap)));
    let d = e
        .hosts
        .fake(FakeHost::new("store2").answers(&listing("backup/data"), &replica_listing(&fp, &snap)));
    let st = kind::status(&e, &[pair]).await;
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].state, StateKind::Synchronized, "{:?}", st[0].reason);
    assert_eq!(st[0].checkpoint.as_deref(), Some(snap.as_str()));
    assert_eq!(st[0].source_bytes, Some(4096));
    // one listing per host, naming the pair's dataset
    for (host, ds) in [(&s, "tank/data"), (&d, "backup/data")] {
        let asked = host.asked();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert_eq!(asked[0], listing(ds), "{asked:?}");
    }
}

#[tokio::test]
async fn a_destination_that_cannot_be_listed_makes_the_pair_unknown_naming_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let pair = &e.config.pairs[0];
    let snap = format!("ferry.{}.20231114T221320Z", pair.fingerprint());
    e.hosts
        .fake(FakeHost::new("store1").answers(&listing("tank/data"), &source_listing(&snap)));
    e.hosts.fake(FakeHost::new("store2").fails(
        &listing("backup/data"),
        1,
        "internal error: failed to initialize ZFS library",
    ));
    let st = kind::status(&e, &[pair]).await;
    assert_eq!(st[0].state, StateKind::Unknown);
    let reason = st[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("store2"), "{reason}");
    assert!(reason.contains("failed to initialize ZFS library"), "{reason}");
    assert_eq!(
        crate::engine::status::exit_code(&st),
        1,
        "an unreadable pair fails status"
    );
}

#[tokio::test]
async fn a_replica_that_is_not_this_pairs_is_inconsistent_never_synchronized() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let pair = &e.config.pairs[0];
    let snap = format!("ferry.{}.20231114T221320Z", pair.fingerprint());
    e.hosts
        .fake(FakeHost::new("store1").answers(&listing("tank/data"), &source_listing(&snap)));
    e.hosts
        .fake(FakeHost::new("store2").answers(&listing("backup/data"), &replica_listing("0123456789abcdef", &snap)));
    let st = kind::status(&e, &[pair]).await;
    assert_ne!(st[0].state, StateKind::Synchronized);
    assert!(st[0].reason.is_some(), "a refusal says why");
}

#[tokio::test]
async fn setup_reports_a_host_without_the_kinds_tool_and_still_checks_the_other_side() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let pair = &e.config.pairs[0];
    // store1 has no zfs at all: every command fails as a shell says
    e.hosts.fake(FakeHost::new("store1"));
    let d = e.hosts.fake(FakeHost::new("store2"));
    let items = kind::setup(&e, pair).await;
    assert!(items[0].ok && items[0].what == "state dir", "{items:?}");
    let failed: Vec<&str> = items.iter().filter(|i| !i.ok).map(|i| i.what.as_str()).collect();
    assert!(failed.iter().any(|w| w.starts_with("source")), "{items:?}");
    assert!(failed.iter().any(|w| w.starts_with("destination")), "{items:?}");
    assert!(
        !d.asked().is_empty(),
        "the destination was probed although the source failed"
    );
}

#[test]
fn only_snapshot_kinds_have_a_driver_and_only_object_pairs_list_keys() {
    use crate::model::Kind;
    for k in [Kind::Zfs, Kind::Btrfs, Kind::Block] {
        let r = kind::for_kind(k);
        assert_eq!(r.snapshots().map(|d| d.kind()), Some(k));
        assert!(r.objects().is_none());
        assert!(crate::driver::for_kind(k).is_some());
    }
    let o = kind::for_kind(Kind::Object);
    assert!(o.snapshots().is_none() && o.objects().is_some());
    let err = crate::driver::snapshot_driver(Kind::Object).err().unwrap();
    assert!(err.to_string().starts_with("object volumes have no snapshots"), "{err}");
}

#[test]
fn a_snapshot_pair_asked_for_object_keys_is_told_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let err = kind::object_changes(&e, &e.config.pairs[0], "objects")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("is a zfs pair") && err.contains("update"), "{err}");
}
