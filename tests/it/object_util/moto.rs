//! A second S3 implementation for the tests: moto's server (PyPI `moto[server]`, which
//! scripts/deps.sh installs), run as `python3 -m moto.server` on a free loopback port, killed on drop, and boto3 (which comes
//! with it) as the independent client that writes and reads keys byte for byte
//! (`s3keys.py`). Under CI=true a missing moto fails the test.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether python3 has moto's server and boto3; outside CI a missing one skips the test loudly.
pub fn require_moto() -> Option<PathBuf> {
    let ok = Command::new("python3")
        .args(["-c", "import moto.server, boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("moto is not installed for python3: run scripts/deps.sh");
        }
        eprintln!("\n*** SKIPPED: moto is not installed (python3 -m pip install 'moto[server]') ***\n");
        return None;
    }
    Some(PathBuf::from("python3"))
}

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// `python` is the interpreter `require_moto` found.
    pub fn start(python: &std::path::Path) -> Moto {
        let port = super::free_port();
        let child = Command::new(python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server on port {port} did not answer in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// boto3 against `endpoint`'s `bucket`: `verb` with `input` (JSON) on stdin; its JSON answer.
pub fn boto(
    endpoint: &str,
    access: &str,
    secret: &str,
    bucket: &str,
    verb: &str,
    input: &serde_json::Value,
) -> serde_json::Value {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/object_util/s3keys.py");
    let mut child = Command::new("python3")
        .args([script, endpoint, access, secret, bucket, verb])
        .env_remove("AWS_CA_BUNDLE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write to s3keys.py");
    let out = child.wait_with_output().expect("s3keys.py ends");
    assert!(
        out.status.success(),
        "s3keys.py {verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}
