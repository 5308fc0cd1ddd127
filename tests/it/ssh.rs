//! The SSH layer against a real OpenSSH server: exec, exit codes and stderr, host key checks,
//! authentication errors, large streams both ways, concurrent channels, and the connection pool.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sshd::Sshd;
use ferry::ssh::{Connection, Pool, RemoteProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

macro_rules! sshd {
    () => {
        match Sshd::start() {
            Some(s) => s,
            None => return,
        }
    };
}

/// Runs a command with empty stdin: (exit code, stdout, stderr).
async fn run(conn: &Connection, cmd: &str) -> (Option<i32>, Vec<u8>, String) {
    let mut p = conn.exec(cmd).await.unwrap();
    drop(p.stdin.take());
    let mut out = Vec::new();
    p.stdout.take().unwrap().read_to_end(&mut out).await.unwrap();
    let (code, err) = p.done.await.unwrap();
    (code, out, err)
}

async fn run_ok(conn: &Connection, cmd: &str) -> String {
    let (code, out, err) = run(conn, cmd).await;
    assert_eq!(code, Some(0), "`{cmd}` failed: {err}");
    String::from_utf8(out).unwrap()
}

/// sha256 hex of a file on the (loopback) host, via the connection.
async fn remote_sha256(conn: &Connection, path: &Path) -> String {
    let out = run_ok(conn, &format!("sha256sum {}", path.display())).await;
    out.split_whitespace().next().unwrap().to_string()
}

/// A local `sha256sum` fed through its stdin.
struct LocalSha {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
}

impl LocalSha {
    fn new() -> Self {
        let mut child = tokio::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        LocalSha { child, stdin }
    }
    async fn update(&mut self, data: &[u8]) {
        self.stdin.write_all(data).await.unwrap();
    }
    async fn finish(self) -> String {
        drop(self.stdin);
        let out = self.child.wait_with_output().await.unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), one chunk at a time.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

async fn connect(sshd: &Sshd) -> Connection {
    Connection::open(sshd.host("store1")).await.unwrap()
}

async fn open_err(host: ferry::config::HostConfig) -> String {
    match Connection::open(host).await {
        Ok(_) => panic!("connection should have been refused"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_prints_and_exits_zero() {
    let sshd = sshd!();
    let conn = connect(&sshd).await;
    assert_eq!(conn.host().name, "store1");
    let (code, out, err) = run(&conn, "echo hi").await;
    assert_eq!((code, out.as_slice(), err.as_str()), (Some(0), &b"hi\n"[..], ""));
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_command_reports_code_and_stderr() {
    let sshd = sshd!();
    let conn = connect(&sshd).await;
    let (code, out, err) = run(&conn, "echo out; echo 'cannot open tank/x' >&2; exit 3").await;
    assert_eq!(code, Some(3));
    assert_eq!(out, b"out\n");
    assert_eq!(err, "cannot open tank/x\n");
    // Killed by a signal: no exit code.
    let (code, _, _) = run(&conn, "kill -9 $$").await;
    assert_eq!(code, None);
    // Stderr is capped.
    let (code, _, err) = run(&conn, "head -c 1000000 /dev/zero | tr '\\0' x >&2").await;
    assert_eq!(code, Some(0));
    assert_eq!(err.len(), ferry::exec::STDERR_CAP);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_key_is_refused_with_a_fix() {
    let sshd = sshd!();
    let kh = sshd.dir().join("empty_known_hosts");
    sshd.remove_known_hosts(&kh);
    let err = open_err(sshd.host_with_known_hosts("store1", &kh)).await;
    let prefix = format!(
        "host store1 (127.0.0.1:{}): unknown host key ssh-ed25519 SHA256:",
        sshd.port
    );
    assert!(err.starts_with(&prefix), "{err}");
    assert!(
        err.contains(&format!(
            "ssh-keyscan -p {} -t ed25519 127.0.0.1 >> {}",
            sshd.port,
            kh.display()
        )),
        "{err}"
    );
    assert!(err.contains("trust_on_first_use = true"), "{err}");
    assert!(!kh.exists(), "nothing is recorded without trust_on_first_use");
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_host_key_is_refused_naming_the_line() {
    let sshd = sshd!();
    let kh = sshd.dir().join("wrong_known_hosts");
    sshd.write_wrong_known_hosts(&kh, 2);
    let mut host = sshd.host_with_known_hosts("store1", &kh);
    host.trust_on_first_use = true; // never overrides a changed key
    let err = open_err(host).await;
    assert!(err.contains("HOST KEY CHANGED"), "{err}");
    assert!(err.contains(&format!("{} line 3", kh.display())), "{err}");
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap().lines().count(),
        3,
        "the file is left alone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trust_on_first_use_records_the_key() {
    let sshd = sshd!();
    let kh = sshd.dir().join("new/dir/known_hosts");
    let mut host = sshd.host_with_known_hosts("store1", &kh);
    host.trust_on_first_use = true;
    let conn = Connection::open(host.clone()).await.unwrap();
    assert_eq!(run_ok(&conn, "echo ok").await, "ok\n");
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        format!("{}\n", sshd.known_hosts_line())
    );
    host.trust_on_first_use = false;
    let conn = Connection::open(host).await.unwrap();
    assert_eq!(run_ok(&conn, "echo again").await, "again\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn hashed_known_hosts_entry_is_accepted() {
    let sshd = sshd!();
    let kh = sshd.dir().join("hashed_known_hosts");
    sshd.write_known_hosts(&kh);
    let st = std::process::Command::new("ssh-keygen")
        .arg("-q")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(text.starts_with("|1|") && !text.contains("127.0.0.1"), "{text}");
    let conn = Connection::open(sshd.host_with_known_hosts("store1", &kh))
        .await
        .unwrap();
    assert_eq!(run_ok(&conn, "echo hashed").await, "hashed\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_names_host_and_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = ferry::config::HostConfig {
        ferry_path: "ferry".into(),
        name: "store1".into(),
        address: "127.0.0.1".into(),
        port,
        user: "root".into(),
        key: None,
        known_hosts: "/nonexistent/known_hosts".into(),
        trust_on_first_use: false,
        jump: None,
        connect_timeout: ferry::config::DEFAULT_CONNECT_TIMEOUT,
        keepalive_interval: ferry::config::DEFAULT_KEEPALIVE_INTERVAL,
        keepalive_count: ferry::config::DEFAULT_KEEPALIVE_COUNT,
    };
    let err = open_err(host).await;
    assert_eq!(err, format!("host store1 (127.0.0.1:{port}): connection refused"));
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_errors_are_clear() {
    let sshd = sshd!();
    // A key the server does not know.
    let stranger = sshd.dir().join("stranger");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(st.success());
    let mut host = sshd.host("store1");
    host.key = Some(stranger.clone());
    let err = open_err(host.clone()).await;
    assert_eq!(
        err,
        format!(
            "host store1: authentication as {} failed (tried: key {})",
            sshd.user,
            stranger.display()
        )
    );

    // A passphrase-protected key.
    let locked = sshd.dir().join("locked");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(st.success());
    host.key = Some(locked.clone());
    let err = open_err(host.clone()).await;
    assert!(
        err.contains(&format!(
            "key file {} is passphrase-protected; load it into ssh-agent and leave `key` unset",
            locked.display()
        )),
        "{err}"
    );

    // A missing key file.
    host.key = Some(sshd.dir().join("absent"));
    let err = open_err(host).await;
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_64_mib_into_stdin() {
    let sshd = sshd!();
    let conn = connect(&sshd).await;
    let file = sshd.dir().join("upload");
    let mut p = conn.exec(&format!("cat > {}", file.display())).await.unwrap();
    let mut stdin = p.stdin.take().unwrap();
    let mut sha = LocalSha::new();
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut buf = vec![0u8; MIB];
    for _ in 0..64 {
        noise.fill(&mut buf);
        stdin.write_all(&buf).await.unwrap();
        sha.update(&buf).await;
    }
    stdin.shutdown().await.unwrap();
    let mut rest = Vec::new();
    p.stdout.take().unwrap().read_to_end(&mut rest).await.unwrap();
    let (code, err) = p.done.await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 64 * MIB as u64);
    assert_eq!(remote_sha256(&conn, &file).await, sha.finish().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_64_mib_out_of_stdout() {
    let sshd = sshd!();
    let conn = connect(&sshd).await;
    let file = sshd.dir().join("download");
    let mut p = conn
        .exec(&format!("head -c {} /dev/urandom | tee {}", 64 * MIB, file.display()))
        .await
        .unwrap();
    drop(p.stdin.take());
    let mut out = p.stdout.take().unwrap();
    let mut sha = LocalSha::new();
    let mut buf = vec![0u8; MIB];
    let mut total = 0;
    loop {
        let n = out.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
        sha.update(&buf[..n]).await;
    }
    let (code, err) = p.done.await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(total, 64 * MIB);
    assert_eq!(remote_sha256(&conn, &file).await, sha.finish().await);
}

/// A send channel feeding a receive channel on the same connection, as a same-host replication does.
#[tokio::test(flavor = "multi_thread")]
async fn two_channels_at_once_on_one_connection() {
    let sshd = sshd!();
    let conn = connect(&sshd).await;
    let (a, b) = (sshd.dir().join("a"), sshd.dir().join("b"));
    let mut send = conn
        .exec(&format!("head -c {} /dev/urandom | tee {}", 32 * MIB, a.display()))
        .await
        .unwrap();
    // A slow receiver: the sender must wait for it without stalling anything else.
    let mut recv = conn.exec(&format!("sleep 1; cat > {}", b.display())).await.unwrap();
    drop(send.stdin.take());
    let mut from = send.stdout.take().unwrap();
    let mut to = recv.stdin.take().unwrap();
    let copied = tokio::time::timeout(Duration::from_secs(120), async {
        let n = tokio::io::copy(&mut from, &mut to).await.unwrap();
        to.shutdown().await.unwrap();
        n
    })
    .await
    .expect("send → recv on one connection stalled");
    assert_eq!(copied, 32 * MIB as u64);
    assert_eq!(send.done.await.unwrap().0, Some(0));
    drop(recv.stdout.take());
    assert_eq!(recv.done.await.unwrap().0, Some(0));
    assert_eq!(remote_sha256(&conn, &a).await, remote_sha256(&conn, &b).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_fails_instead_of_hanging_when_the_command_is_gone() {
    let sshd = sshd!();
    let conn = connect(&sshd).await;
    let mut p: RemoteProcess = conn.exec("true").await.unwrap();
    let mut stdin = p.stdin.take().unwrap();
    let buf = vec![7u8; MIB];
    let r = tokio::time::timeout(Duration::from_secs(30), async {
        for _ in 0..64 {
            stdin.write_all(&buf).await?;
        }
        Ok::<_, std::io::Error>(())
    })
    .await
    .expect("writing to a finished command hung");
    assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    assert_eq!(p.done.await.unwrap().0, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_or_dropped_stdout_does_not_block_completion() {
    let sshd = sshd!();
    let conn = connect(&sshd).await;
    let mut p = conn
        .exec(&format!("head -c {} /dev/zero; echo done >&2", 64 * MIB))
        .await
        .unwrap();
    drop(p.stdin.take());
    drop(p.stdout.take());
    let (code, err) = tokio::time::timeout(Duration::from_secs(60), p.done)
        .await
        .expect("stalled")
        .unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(err, "done\n");
    // The session is still good for the next command.
    assert_eq!(run_ok(&conn, "echo next").await, "next\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn pool_shares_one_connection_per_host() {
    let sshd = sshd!();
    let mut hosts = BTreeMap::new();
    hosts.insert("store1".to_string(), sshd.host("store1"));
    let pool = Pool::new(hosts);
    let (a, b) = tokio::join!(pool.get("store1"), pool.get("store1"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(Arc::ptr_eq(&a, &b), "concurrent first calls must share one connection");
    let c = pool.get("store1").await.unwrap();
    assert!(Arc::ptr_eq(&a, &c));
    for _ in 0..3 {
        let rtt = pool.round_trip("store1").await.unwrap();
        assert!(rtt < Duration::from_secs(5), "{rtt:?}");
        eprintln!("exec round trip on an open connection: {rtt:?}");
    }
    assert_eq!(a.sessions_opened(), 1, "sequential commands reuse the session");
    let err = pool.get("nowhere").await.err().unwrap().to_string();
    assert!(err.contains("undefined host \"nowhere\""), "{err}");
}

/// Prints throughput both ways; size from FERRY_SSH_BENCH_MIB (default 32). For the real figure:
/// `FERRY_SSH_BENCH_MIB=256 cargo test --release --test ssh throughput -- --nocapture`.
#[tokio::test(flavor = "multi_thread")]
async fn throughput() {
    let sshd = sshd!();
    let mib: usize = std::env::var("FERRY_SSH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let conn = connect(&sshd).await;

    let mut p = conn.exec(&format!("head -c {} /dev/zero", mib * MIB)).await.unwrap();
    drop(p.stdin.take());
    let mut out = p.stdout.take().unwrap();
    let mut buf = vec![0u8; 4 * MIB];
    let (mut total, start) = (0, Instant::now());
    loop {
        let n = out.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    let down = start.elapsed();
    assert_eq!(p.done.await.unwrap().0, Some(0));
    assert_eq!(total, mib * MIB);

    let mut p = conn.exec("cat > /dev/null").await.unwrap();
    let mut stdin = p.stdin.take().unwrap();
    let start = Instant::now();
    for _ in 0..mib / 4 {
        stdin.write_all(&buf).await.unwrap();
    }
    stdin.shutdown().await.unwrap();
    drop(p.stdout.take());
    assert_eq!(p.done.await.unwrap().0, Some(0));
    let up = start.elapsed();
    let rate = |d: Duration| (mib / 4 * 4) as f64 / d.as_secs_f64();
    eprintln!(
        "ssh throughput, {mib} MiB over loopback: out of stdout {:.0} MiB/s, into stdin {:.0} MiB/s",
        mib as f64 / down.as_secs_f64(),
        rate(up)
    );
}

/// An RSA key signs with rsa-sha2-* (this OpenSSH refuses ssh-rsa SHA-1 signatures).
#[tokio::test(flavor = "multi_thread")]
async fn rsa_key_authenticates() {
    let sshd = sshd!();
    let mut host = sshd.host("store1");
    host.key = Some(sshd.authorize_new_key("rsa"));
    let conn = Connection::open(host).await.unwrap();
    assert_eq!(run_ok(&conn, "echo rsa").await, "rsa\n");
}

/// With no `key`: the agent's identities, then ~/.ssh/id_*; and the error when neither exists.
/// Runs in a child process of this test binary, since it sets HOME and SSH_AUTH_SOCK.
#[test]
fn agent_and_default_keys_without_a_configured_key() {
    if std::env::var_os("FERRY_SSH_AGENT_CHILD").is_none() {
        if !Path::new(common::sshd::SSHD).exists() {
            let _ = Sshd::start(); // prints the SKIP message (or panics under CI)
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ssh::agent_and_default_keys_without_a_configured_key",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("FERRY_SSH_AGENT_CHILD", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("1 passed"),
            "child test failed:\n{text}"
        );
        return;
    }
    let sshd = Sshd::start().unwrap();
    let home = sshd.dir().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    // Only this test runs in this process, and no other thread exists yet.
    std::env::set_var("HOME", &home);
    std::env::remove_var("SSH_AUTH_SOCK");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut host = sshd.host("store1");
    host.key = None;

    // Nothing to try.
    let err = rt.block_on(open_err(host.clone()));
    assert_eq!(
        err,
        format!(
            "host store1: authentication as {} failed (tried: no ssh-agent and no key in ~/.ssh)",
            sshd.user
        )
    );

    // An agent holding the authorized key.
    let sock = sshd.dir().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = std::process::Command::new("ssh-add")
        .arg(&sshd.client_key)
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    std::env::set_var("SSH_AUTH_SOCK", &sock);
    let r = rt.block_on(async {
        let conn = Connection::open(host.clone()).await?;
        anyhow::Ok(run_ok(&conn, "echo agent").await)
    });
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(r.unwrap(), "agent\n");

    // The agent is gone; ~/.ssh/id_ed25519 is the authorized key.
    std::env::remove_var("SSH_AUTH_SOCK");
    std::fs::copy(&sshd.client_key, home.join(".ssh/id_ed25519")).unwrap();
    let out = rt.block_on(async {
        let conn = Connection::open(host.clone()).await.unwrap();
        run_ok(&conn, "echo default").await
    });
    assert_eq!(out, "default\n");
}

/// Whether OpenSSH's client connects with `known_hosts` in strict mode (as the operator would check).
fn openssh_connects(sshd: &Sshd, known_hosts: &Path) -> bool {
    std::process::Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null", "-i"])
        .arg(&sshd.client_key)
        .args(["-p", &sshd.port.to_string()])
        .arg(format!("{}@{}", sshd.user, sshd.address))
        .arg("true")
        .stdin(std::process::Stdio::null())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Issue 7 #3: a host known only by its RSA or only by its ECDSA key was refused as "HOST KEY
/// CHANGED" because the server picked ed25519; OpenSSH connects with the same file.
#[tokio::test(flavor = "multi_thread")]
async fn host_known_by_one_key_type_connects_with_that_type() {
    let Some(sshd) = Sshd::start_with(None, "127.0.0.1", &["ed25519", "rsa", "ecdsa"]) else {
        return;
    };
    for (kind, key) in &sshd.host_keys {
        let kh = sshd.dir().join(format!("known_hosts_{kind}"));
        std::fs::write(&kh, format!("# only {kind}\n[127.0.0.1]:{} {key}\n", sshd.port)).unwrap();
        assert!(
            openssh_connects(&sshd, &kh),
            "OpenSSH itself refuses {kind}-only known_hosts"
        );
        let conn = Connection::open(sshd.host_with_known_hosts("store1", &kh))
            .await
            .unwrap_or_else(|e| panic!("known_hosts with only the {kind} key: {e:#}"));
        assert_eq!(run_ok(&conn, "echo ok").await, "ok\n");
    }
    // A wrong key of the one recorded type is still a changed key, naming that type.
    let other = sshd.dir().join("other_rsa");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let wrong = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let wrong: Vec<&str> = wrong.split_whitespace().take(2).collect();
    let kh = sshd.dir().join("known_hosts_wrong_rsa");
    std::fs::write(&kh, format!("[127.0.0.1]:{} {}\n", sshd.port, wrong.join(" "))).unwrap();
    let err = open_err(sshd.host_with_known_hosts("store1", &kh)).await;
    assert!(
        err.contains("HOST KEY CHANGED: the server presents ssh-rsa"),
        "the server must be asked for its RSA key: {err}"
    );
    assert!(err.contains("line 1 records a different ssh-rsa key"), "{err}");
}

/// Issue 7 #13: a FIFO or a device given as `key` or `known_hosts` is refused at once, naming the
/// file and the host; a huge known_hosts is refused by size.
#[tokio::test(flavor = "multi_thread")]
async fn fifo_or_device_as_key_or_known_hosts_is_refused_without_hanging() {
    let sshd = sshd!();
    let fifo = sshd.dir().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let bounded = |host: ferry::config::HostConfig| async move {
        tokio::time::timeout(Duration::from_secs(10), open_err(host))
            .await
            .expect("opening the connection hung")
    };
    let label = format!("host store1 (127.0.0.1:{})", sshd.port);

    let mut host = sshd.host("store1");
    host.key = Some(fifo.clone());
    let err = bounded(host).await;
    assert_eq!(
        err,
        format!(
            "host store1: key file {} cannot be read: it is a FIFO, not a regular file",
            fifo.display()
        )
    );

    let mut host = sshd.host("store1");
    host.key = Some("/dev/zero".into());
    let err = bounded(host).await;
    assert!(
        err.contains("key file /dev/zero cannot be read: it is a character device, not a regular file"),
        "{err}"
    );

    for (path, what) in [
        (fifo.as_path(), "a FIFO"),
        (Path::new("/dev/zero"), "a character device"),
    ] {
        let err = bounded(sshd.host_with_known_hosts("store1", path)).await;
        assert_eq!(
            err,
            format!(
                "{label}: cannot read known_hosts file {}: it is {what}, not a regular file",
                path.display()
            )
        );
    }

    let huge = sshd.dir().join("huge_known_hosts");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(ferry::ssh::files::KNOWN_HOSTS_CAP + 1)
        .unwrap();
    let err = bounded(sshd.host_with_known_hosts("store1", &huge)).await;
    assert!(
        err.contains("cannot read known_hosts file") && err.contains("is larger than"),
        "{err}"
    );
}

/// A network namespace joined to this one by a veth, with two sshds inside: a bastion on the veth
/// address (reachable from here) and a far host on the namespace's own loopback (reachable only
/// from inside, i.e. through the bastion). Torn down on drop.
struct JumpLab {
    ns: String,
    host_if: String,
    bastion: Sshd,
    far: Sshd,
}

impl JumpLab {
    fn start() -> Option<JumpLab> {
        if !Path::new(common::sshd::SSHD).exists() {
            return Sshd::start().map(|_| unreachable!());
        }
        // Tests in one binary run on parallel threads: a lab number per process and per lab.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
        let id = std::process::id() % 1000 * 10 + n;
        let (ns, host_if, peer) = (format!("fjmp{id}"), format!("fjh{id}"), format!("fjn{id}"));
        // 10.150.0.0 – 10.189.255.255: clear of faults.rs (190–199) and transports.rs (200+)
        let net = format!("10.{}.{}", 150 + id / 250, id % 250);
        let sh = |c: &str| {
            let ok = std::process::Command::new("sh")
                .arg("-c")
                .arg(c)
                .status()
                .unwrap()
                .success();
            assert!(ok, "{c}");
        };
        sh(&format!("ip netns add {ns}"));
        let mut lab = JumpLabGuard {
            ns: ns.clone(),
            host_if: host_if.clone(),
        };
        sh(&format!(
            "ip link add {host_if} type veth peer name {peer} && ip link set {peer} netns {ns}"
        ));
        sh(&format!(
            "ip addr add {net}.1/30 dev {host_if} && ip link set {host_if} up"
        ));
        sh(&format!(
            "ip netns exec {ns} ip addr add {net}.2/30 dev {peer} && ip netns exec {ns} ip link set {peer} up && ip netns exec {ns} ip link set lo up"
        ));
        let bastion = Sshd::start_at(Some(&ns), &format!("{net}.2"))?;
        let far = Sshd::start_at(Some(&ns), "127.0.0.1")?;
        lab.ns.clear(); // JumpLab's own Drop takes over
        Some(JumpLab {
            ns,
            host_if,
            bastion,
            far,
        })
    }

    /// Hosts `bastion`, and `far` (plus `far2`, the same server under another name) behind it.
    fn hosts(&self) -> BTreeMap<String, ferry::config::HostConfig> {
        let mut hosts = BTreeMap::new();
        hosts.insert("bastion".to_string(), self.bastion.host("bastion"));
        for name in ["far", "far2"] {
            let mut far = self.far.host(name);
            far.jump = Some("bastion".into());
            hosts.insert(name.to_string(), far);
        }
        hosts
    }

    fn accepted(sshd: &Sshd) -> usize {
        sshd.log().matches("Accepted publickey").count()
    }
}

/// Removes the namespace and veth if setup stops half way.
struct JumpLabGuard {
    ns: String,
    host_if: String,
}

impl Drop for JumpLabGuard {
    fn drop(&mut self) {
        if !self.ns.is_empty() {
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "ip link del {} 2>/dev/null; ip netns del {}",
                    self.host_if, self.ns
                ))
                .status();
        }
    }
}

impl Drop for JumpLab {
    fn drop(&mut self) {
        for s in [&self.bastion, &self.far] {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(s.pid().to_string())
                .status();
        }
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ip link del {} 2>/dev/null; ip netns del {}",
                self.host_if, self.ns
            ))
            .status();
    }
}

/// Sites behind a bastion: the far host is reached only through its jump host, with one
/// connection to the bastion shared by every host behind it, and streams between two far hosts
/// behind the same bastion do not stall each other.
#[tokio::test(flavor = "multi_thread")]
async fn jump_host_reaches_a_host_only_the_bastion_can_reach() {
    let Some(lab) = JumpLab::start() else {
        return;
    };
    // Not reachable from here directly.
    let err = open_err(lab.far.host("far")).await;
    assert!(err.contains("connection refused"), "{err}");

    let pool = Pool::new(lab.hosts());
    let far = pool.get("far").await.unwrap_or_else(|e| panic!("{e:#}"));
    // The far sshd served it: it reports its own port as the server end.
    let seen = run_ok(&far, "echo $SSH_CONNECTION").await;
    assert!(seen.trim().ends_with(&format!("127.0.0.1 {}", lab.far.port)), "{seen}");
    let far2 = pool.get("far2").await.unwrap();
    let bastion = pool.get("bastion").await.unwrap();
    assert_eq!(
        bastion.sessions_opened(),
        1,
        "hosts behind the bastion share one connection to it"
    );
    assert_eq!(JumpLab::accepted(&lab.bastion), 1, "{}", lab.bastion.log());

    // 32 MiB from `far` into `far2`, whose reader starts late: our writes wait, we stop reading
    // `far`, and its tunnel must not stall the bastion session that carries far2's window.
    let stream = async {
        let mut src = far.exec("head -c 33554432 /dev/zero").await.unwrap();
        let mut dst = far2.exec("sleep 2; wc -c").await.unwrap();
        drop(src.stdin.take());
        let mut out = src.stdout.take().unwrap();
        let mut inp = dst.stdin.take().unwrap();
        let copied = tokio::io::copy(&mut out, &mut inp).await.unwrap();
        inp.shutdown().await.unwrap();
        drop(inp);
        let mut counted = String::new();
        dst.stdout.take().unwrap().read_to_string(&mut counted).await.unwrap();
        assert_eq!(src.done.await.unwrap().0, Some(0));
        assert_eq!(dst.done.await.unwrap().0, Some(0));
        (copied, counted)
    };
    let (copied, counted) = tokio::time::timeout(Duration::from_secs(120), stream)
        .await
        .expect("a stream between two hosts behind one bastion stalled");
    assert_eq!(copied, 32 << 20);
    assert_eq!(counted.trim(), (32u64 << 20).to_string());
    assert_eq!(
        JumpLab::accepted(&lab.bastion),
        1,
        "still one connection to the bastion"
    );
}

/// Host keys are checked at both hops, each against its own known_hosts: a wrong key at the far
/// hop is refused naming the far host; a wrong key at the bastion names the bastion.
#[tokio::test(flavor = "multi_thread")]
async fn jump_host_keys_are_checked_at_both_hops() {
    let Some(lab) = JumpLab::start() else {
        return;
    };
    let wrong = lab.far.dir().join("wrong_known_hosts");
    lab.far.write_wrong_known_hosts(&wrong, 0);
    let mut hosts = lab.hosts();
    hosts.get_mut("far").unwrap().known_hosts = wrong.clone();
    let pool = Pool::new(hosts.clone());
    let err = format!(
        "{:#}",
        pool.get("far").await.err().expect("a wrong far key must be refused")
    );
    assert!(
        err.starts_with(&format!(
            "host far (127.0.0.1:{}): HOST KEY CHANGED: the server presents ssh-ed25519",
            lab.far.port
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{} line 1", wrong.display())), "{err}");
    // The bastion itself was fine.
    pool.get("bastion").await.unwrap();

    let wrong_b = lab.bastion.dir().join("wrong_known_hosts");
    lab.bastion.write_wrong_known_hosts(&wrong_b, 0);
    hosts.get_mut("far").unwrap().known_hosts = lab.far.known_hosts.clone();
    hosts.get_mut("bastion").unwrap().known_hosts = wrong_b;
    let pool = Pool::new(hosts);
    let err = format!(
        "{:#}",
        pool.get("far")
            .await
            .err()
            .expect("a wrong bastion key must be refused")
    );
    assert!(
        err.starts_with(&format!(
            "host far (127.0.0.1:{}): cannot reach its jump host \"bastion\": host bastion ({}:{}): HOST KEY CHANGED",
            lab.far.port, lab.bastion.address, lab.bastion.port
        )),
        "{err}"
    );
    assert_eq!(JumpLab::accepted(&lab.far), 0, "nothing reached the far host");
}

/// `jump`, `connect_timeout` and the keepalive keys are read from a host table; a jump to an
/// undefined host or a loop of jumps is refused naming the file, line and key.
#[test]
fn jump_and_timing_keys_are_parsed_and_checked() {
    let path = Path::new("/etc/ferry/ferry.toml");
    let base = "[hosts.bastion]\naddress = \"192.0.2.1\"\n";
    let cfg = ferry::config::parse(
        path,
        &format!(
            "{base}[hosts.far]\naddress = \"10.0.0.5\"\njump = \"bastion\"\nconnect_timeout = \"5s\"\n\
             keepalive_interval = 20\nkeepalive_count = 6\n"
        ),
    )
    .unwrap();
    let far = &cfg.hosts["far"];
    assert_eq!(far.jump.as_deref(), Some("bastion"));
    assert_eq!(far.connect_timeout, Duration::from_secs(5));
    assert_eq!(far.keepalive_interval, Duration::from_secs(20));
    assert_eq!(far.keepalive_count, 6);
    let b = &cfg.hosts["bastion"];
    assert_eq!(
        (
            b.jump.as_deref(),
            b.connect_timeout,
            b.keepalive_interval,
            b.keepalive_count
        ),
        (None, Duration::from_secs(15), Duration::from_secs(10), 3)
    );

    let err = ferry::config::parse(
        path,
        &format!("{base}[hosts.far]\naddress = \"h\"\njump = \"nowhere\"\n"),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "/etc/ferry/ferry.toml:5: key `jump`: undefined host \"nowhere\" (add a [hosts.nowhere] table)"
    );
    let err = ferry::config::parse(
        path,
        "[hosts.a]\naddress = \"h\"\njump = \"b\"\n[hosts.b]\naddress = \"h\"\njump = \"a\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("/etc/ferry/ferry.toml:3: key `jump`: jump hosts form a cycle: a -> b -> a\n"),
        "{err}"
    );
    let err = ferry::config::parse(path, "[hosts.a]\naddress = \"h\"\nconnect_timeout = 0\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "/etc/ferry/ferry.toml:3: key `connect_timeout`: must be at least 1s and at most 1d00h"
    );
}

/// The CLI reaches a host behind a bastion from its config alone (`jump = "bastion"`).
#[test]
fn cli_setup_reaches_a_source_behind_a_bastion() {
    let Some(lab) = JumpLab::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ferry.toml");
    let host = |name: &str, s: &Sshd, extra: &str| {
        format!(
            "[hosts.{name}]\naddress = \"{}\"\nport = {}\nuser = \"{}\"\nkey = \"{}\"\nknown_hosts = \"{}\"\n{extra}",
            s.address,
            s.port,
            s.user,
            s.client_key.display(),
            s.known_hosts.display()
        )
    };
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n{}{}[[pair]]\nsource = \"far:nopool/data\"\ndestination = \"nopool/rep\"\n",
            dir.path().join("state").display(),
            host("bastion", &lab.bastion, ""),
            host("far", &lab.far, "jump = \"bastion\"\nconnect_timeout = \"5s\"\n"),
        ),
    )
    .unwrap();
    let out = common::runner::command(&cfg, &["setup", "nopool/rep"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("[ ok ] source host far"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(JumpLab::accepted(&lab.bastion), 1, "{}", lab.bastion.log());
    assert_eq!(JumpLab::accepted(&lab.far), 1, "{}", lab.far.log());
}
