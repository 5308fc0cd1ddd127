//! A real OpenSSH server for integration tests: `/usr/sbin/sshd` on a free loopback port, in a tempdir,
//! with its own host key, an authorized client key and a known_hosts file; killed on drop.
//!
//! Clients log in as [`LAB_USER`], a plain account (uid 0, `/bin/sh`, its own home) the harness adds
//! to /etc/passwd and /etc/shadow once: root's login shell here runs `pyenv init` on every command
//! (≈ 240 ms), which would hide ferry's own cost (DESIGN.md, "Facts from trying these here").
//!
//! `Sshd::start()` returns None (after a loud SKIP message) when sshd is absent, and panics instead
//! under `CI=true`.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferry::config::HostConfig;

pub const SSHD: &str = "/usr/sbin/sshd";
/// The account tests log in as; scripts/lab.sh adds the same one.
pub const LAB_USER: &str = "ferrylab";
pub const LAB_HOME: &str = "/var/lib/ferrylab";

pub struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
    /// Where it listens (127.0.0.1 unless started with `start_at`).
    pub address: String,
    pub user: String,
    /// The client's private key (in authorized_keys).
    pub client_key: PathBuf,
    /// A known_hosts file holding the server's key (written by `start`).
    pub known_hosts: PathBuf,
    /// The server's public key as `type base64` (the first of `host_keys`).
    pub host_key: String,
    /// Every host key it has: (`ssh-keygen -t` kind, `type base64`).
    pub host_keys: Vec<(String, String)>,
}

fn keygen(path: &Path, kind: &str) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "ferry-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("running ssh-keygen");
    assert!(st.success(), "ssh-keygen -t {kind} failed");
}

/// `type base64` from a .pub file.
fn pub_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Adds [`LAB_USER`] to /etc/passwd and /etc/shadow unless it is there, under a lock so parallel
/// test binaries add it once.
pub fn ensure_lab_user() {
    use std::io::Write;
    use std::os::unix::io::AsRawFd;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/ferry-lab-user.lock")
        .expect("opening /run/ferry-lab-user.lock");
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    std::fs::create_dir_all(LAB_HOME).expect("creating the lab user's home");
    for (file, line) in [
        (
            "/etc/passwd",
            format!("{LAB_USER}:x:0:0:ferry test lab:{LAB_HOME}:/bin/sh\n"),
        ),
        // `*`: no password login; `!` would lock the account for sshd's key login too
        ("/etc/shadow", format!("{LAB_USER}:*:20000:0:99999:7:::\n")),
    ] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.lines().any(|l| l.starts_with(&format!("{LAB_USER}:"))) {
            continue;
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
        let sep = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        f.write_all(format!("{sep}{line}").as_bytes()).unwrap();
    }
    // the lock is released when `lock` is dropped
}

impl Sshd {
    /// Starts a server, or returns None when sshd is not installed (panics under CI=true).
    pub fn start() -> Option<Sshd> {
        Self::start_at(None, "127.0.0.1")
    }

    /// An sshd listening on `address`, inside network namespace `netns` when given (so a test
    /// can cut the link by downing the namespace's veth).
    pub fn start_at(netns: Option<&str>, address: &str) -> Option<Sshd> {
        Self::start_with(netns, address, &["ed25519"])
    }

    /// An sshd with a host key of each of `kinds` (`ed25519`, `rsa`, `ecdsa`); the known_hosts
    /// file it writes holds the first.
    pub fn start_with(netns: Option<&str>, address: &str, kinds: &[&str]) -> Option<Sshd> {
        if !Path::new(SSHD).exists() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{SSHD} is missing and CI=true: install openssh-server");
            }
            eprintln!("\n********** SKIP: {SSHD} is not installed; ssh tests did not run **********\n");
            return None;
        }
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let dir = tempfile::Builder::new().prefix("ferry-sshd-").tempdir().unwrap();
        let d = dir.path();
        let mut host_keys = Vec::new();
        let mut host_key_lines = String::new();
        for kind in kinds {
            let path = d.join(format!("host_{kind}"));
            keygen(&path, kind);
            host_key_lines.push_str(&format!("HostKey {}\n", path.display()));
            host_keys.push((kind.to_string(), pub_key(&path.with_extension("pub"))));
        }
        let client_key = d.join("client_ed25519");
        keygen(&client_key, "ed25519");
        std::fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys")).unwrap();
        let host_key = host_keys[0].1.clone();
        ensure_lab_user();
        let user = LAB_USER.to_string();

        // A port picked free may be taken before sshd binds it: retry a few times.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = d.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress {address}\n{host_key_lines}AuthorizedKeysFile {ak}\n\
                     PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {pid}\n\
                     MaxSessions 64\nMaxStartups 64\nLogLevel INFO\n",
                    ak = d.join("authorized_keys").display(),
                    pid = d.join("sshd.pid").display(),
                ),
            )
            .unwrap();
            let log_path = d.join("sshd.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut cmd = match netns {
                // `ip netns exec` execs sshd in place: the child's pid is sshd's
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns, SSHD]);
                    c
                }
                None => Command::new(SSHD),
            };
            let mut child = cmd
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // an address inside a namespace may not be reachable from here: then its log says
                if TcpStream::connect((address, port)).is_ok()
                    || std::fs::read_to_string(&log_path)
                        .unwrap_or_default()
                        .contains("Server listening on")
                {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if up {
                let s = Sshd {
                    address: address.to_string(),
                    known_hosts: d.join("known_hosts"),
                    dir,
                    child,
                    port,
                    user,
                    client_key,
                    host_key,
                    host_keys,
                };
                s.write_known_hosts(&s.known_hosts);
                return Some(s);
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("sshd did not start; its log:\n{last_log}");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// ferry's config for this server: host `name` at 127.0.0.1:port as this user, with the client
    /// key and the known_hosts file holding the right key.
    pub fn host(&self, name: &str) -> HostConfig {
        self.host_with_known_hosts(name, &self.known_hosts)
    }

    pub fn host_with_known_hosts(&self, name: &str, known_hosts: &Path) -> HostConfig {
        HostConfig {
            ferry_path: "ferry".into(),
            name: name.to_string(),
            address: self.address.clone(),
            port: self.port,
            user: self.user.clone(),
            key: Some(self.client_key.clone()),
            known_hosts: known_hosts.to_path_buf(),
            trust_on_first_use: false,
            jump: None,
            connect_timeout: ferry::config::DEFAULT_CONNECT_TIMEOUT,
            keepalive_interval: ferry::config::DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_count: ferry::config::DEFAULT_KEEPALIVE_COUNT,
        }
    }

    /// The known_hosts line for this server's real key.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.address, self.port, self.host_key)
    }

    /// Writes a known_hosts file holding this server's key.
    pub fn write_known_hosts(&self, path: &Path) {
        std::fs::write(path, format!("{}\n", self.known_hosts_line())).unwrap();
    }

    /// Writes a known_hosts file in which this server's entry holds another (freshly made) key, on
    /// line `1 + preceding_lines` after `preceding_lines` comment lines.
    pub fn write_wrong_known_hosts(&self, path: &Path, preceding_lines: usize) {
        let other = self.dir().join(format!("other_{}", rand_suffix()));
        keygen(&other, "ed25519");
        let mut text = String::new();
        for i in 0..preceding_lines {
            text.push_str(&format!("# line {}\n", i + 1));
        }
        text.push_str(&format!(
            "[{}]:{} {}\n",
            self.address,
            self.port,
            pub_key(&other.with_extension("pub"))
        ));
        std::fs::write(path, text).unwrap();
    }

    /// Removes a known_hosts file (the host becomes unknown).
    pub fn remove_known_hosts(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    /// Makes a new client key of `kind` (`rsa`, `ecdsa`, `ed25519`), authorizes it, returns its path.
    pub fn authorize_new_key(&self, kind: &str) -> PathBuf {
        let path = self.dir().join(format!("client_{kind}_{}", rand_suffix()));
        keygen(&path, kind);
        let line = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        let mut ak = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir().join("authorized_keys"))
            .unwrap();
        std::io::Write::write_all(&mut ak, line.as_bytes()).unwrap();
        path
    }

    /// The listening sshd's pid (its per-connection processes are its descendants).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills every process of every open connection (not the listener): each client's link is
    /// cut as if the host went away, while new connections are still accepted.
    pub fn cut_connections(&self) -> usize {
        let mut killed = 0;
        for pid in descendants(self.pid()) {
            // by pid, and only processes this harness's sshd started
            if std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
            {
                killed += 1;
            }
        }
        killed
    }

    /// sshd's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("sshd.log")).unwrap_or_default()
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// All descendants of `root` (children first found, then theirs), from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (c, pp) in &parent_of {
            if *pp == p && !out.contains(c) {
                out.push(*c);
                frontier.push(*c);
            }
        }
    }
    out
}
