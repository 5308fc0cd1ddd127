//! Test harness for object-store tests: real s3s-fs servers on free loopback ports, each with
//! its own root directory and keys, killed on drop. Under CI=true a missing s3s-fs fails.
#![allow(dead_code)]

pub mod etcd;
pub mod lab;
pub mod moto;
pub use crate::common::runner;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry::object::client::{Client, Location};
use ferry::object::creds::Credentials;

/// Where s3s-fs is: on PATH or in ~/.cargo/bin (where scripts/s3s-fs.sh installs it).
pub fn s3s_fs_path() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join("s3s-fs")).find(|p| p.is_file())
}

/// The binary, or None (test skips loudly) outside CI; under CI=true a missing binary panics.
pub fn require_s3s_fs() -> Option<PathBuf> {
    let found = s3s_fs_path();
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("s3s-fs is not installed: run scripts/s3s-fs.sh");
        }
        eprintln!("\n*** SKIPPED: s3s-fs is not installed (run scripts/s3s-fs.sh) ***\n");
    }
    found
}

pub struct S3Server {
    bin: PathBuf,
    child: Option<Child>,
    pub port: u16,
    pub root: tempfile::TempDir,
    pub access_key: String,
    pub secret_key: String,
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().expect("local addr").port()
}

impl S3Server {
    /// Starts a server named `name` (its keys derive from it) with the given buckets.
    pub fn start(bin: &std::path::Path, name: &str, buckets: &[&str]) -> S3Server {
        let root = tempfile::tempdir().expect("server root");
        for b in buckets {
            assert!((3..=63).contains(&b.len()), "bucket name {b} must have 3-63 characters");
            std::fs::create_dir_all(root.path().join(b)).expect("bucket dir");
        }
        let mut s = S3Server {
            bin: bin.to_path_buf(),
            child: None,
            port: free_port(),
            root,
            access_key: format!("AKID{}", name.to_uppercase()),
            secret_key: format!("secret-{name}-do-not-log"),
        };
        s.run();
        s
    }

    fn run(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", &self.access_key, "--secret-key", &self.secret_key])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn s3s-fs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "s3s-fs on port {} did not answer in 20 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server (a destination that goes away mid-pass).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and root.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn creds(&self) -> Credentials {
        Credentials::new(&self.access_key, &self.secret_key)
    }

    /// A client for `bucket[/prefix]` on this server.
    pub fn client(&self, bucket_and_prefix: &str) -> Client {
        // The client does not read AWS_CA_BUNDLE, but keep the environment from surprising it.
        std::env::remove_var("AWS_CA_BUNDLE");
        Client::new(
            &Location::new(&self.endpoint(), "us-east-1", bucket_and_prefix),
            &self.creds(),
        )
        .expect("client")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no extra crate.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
