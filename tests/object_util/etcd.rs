//! A real etcd (Debian's etcd-server) on free loopback ports with its own data dir, killed on
//! drop: the coordination engine of the HA tests. Under CI=true a missing etcd fails.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct EtcdServer {
    child: Option<Child>,
    pub port: u16,
    _data: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The etcd binary, or None (test skips loudly) outside CI.
pub fn require_etcd() -> Option<std::path::PathBuf> {
    let found = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("etcd is not installed: run scripts/deps.sh (etcd-server)");
        }
        eprintln!("\n*** SKIPPED: etcd is not installed (apt install etcd-server) ***\n");
    }
    found
}

impl EtcdServer {
    pub fn start(bin: &std::path::Path) -> EtcdServer {
        let data = tempfile::tempdir().unwrap();
        let (port, peer) = (free_port(), free_port());
        let client = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(bin)
            .args(["--name", "ferrytest", "--data-dir"])
            .arg(data.path().join("d"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("ferrytest={peer_url}")])
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd");
        let s = EtcdServer {
            child: Some(child),
            port,
            _data: data,
        };
        let etcd = ferry::coord::etcd::Etcd::new(&[s.endpoint()]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while etcd.get("/ready").is_err() {
            assert!(Instant::now() < deadline, "etcd on port {port} did not answer in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
