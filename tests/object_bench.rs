//! Driver for scripts/bench-object.sh (ignored in normal runs): one replication pass between two
//! S3 endpoints named by environment, printing the pass report and its wall time.

use std::time::Instant;

use ferry::object::client::{Client, Location};
use ferry::object::creds::Credentials;
use ferry::object::sync::{Pair, SyncOptions};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (run scripts/bench-object.sh)"))
}

fn client(side: &str) -> Client {
    let loc = Location::new(
        &var(&format!("BENCH_{side}_ENDPOINT")),
        "us-east-1",
        &var(&format!("BENCH_{side}_BUCKET")),
    );
    let creds = Credentials::new(
        &var(&format!("BENCH_{side}_KEY")),
        &var(&format!("BENCH_{side}_SECRET")),
    );
    Client::new(&loc, &creds).expect("client")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn bench_pass() {
    let start = Instant::now();
    let pair = Pair {
        src: client("SRC"),
        dst: client("DST"),
        state_dir: var("BENCH_STATE").into(),
        options: SyncOptions::default(),
    };
    let r = pair.pass().await.expect("pass");
    println!(
        "BENCH {:.3} copied={} deleted={} unchanged={} failed={} bytes={}",
        start.elapsed().as_secs_f64(),
        r.copied,
        r.deleted,
        r.unchanged,
        r.failed,
        r.bytes
    );
    assert_eq!(r.failed, 0);
}
