//! OpenSSH known_hosts checking: plain, bracketed `[addr]:port`, hashed and wildcard entries, `@revoked`, trust on first use.
//!
//! Written here rather than taken from russh so the rules are ours and every refusal says exactly
//! which file and line is involved and how to fix it.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use russh::keys::{Algorithm, HashAlg, PublicKey};
use sha1::Sha1;

use super::files::{self, FileError};
use crate::config::HostConfig;

/// The name a host's entry carries: `addr` on port 22, else `[addr]:port` (as OpenSSH writes it).
pub fn host_entry_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// What known_hosts says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An entry for this host holds exactly this key.
    Known,
    /// No entry names this host.
    Unknown,
    /// The host has entries, none with this key. `line` (1-based) is the old entry, preferring one
    /// of the same key type; `old_type` is its key type.
    Changed { line: usize, old_type: String },
    /// A `@revoked` line matching this host holds this key.
    Revoked { line: usize },
}

/// One parsed known_hosts line.
struct Entry<'a> {
    marker: Option<&'a str>,
    hosts: &'a str,
    key_type: &'a str,
    key_blob: Vec<u8>,
}

fn parse_line(line: &str) -> Option<Entry<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let mut marker = None;
    if first.starts_with('@') {
        marker = Some(first);
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let key_blob = STANDARD.decode(fields.next()?).ok()?;
    Some(Entry {
        marker,
        hosts: first,
        key_type,
        key_blob,
    })
}

/// `*` and `?` glob match, ASCII case-insensitive (host names are).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let (mut star, mut star_t) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p].eq_ignore_ascii_case(&text[t])) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            star_t = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            star_t += 1;
            t = star_t;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// `|1|salt|hmac`: HMAC-SHA1 keyed with the salt over the host name.
fn hashed_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.strip_prefix("|1|").unwrap_or("").splitn(2, '|');
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// Whether a host field (comma-separated patterns, `!` negations, or one hashed name) names `name`.
fn hosts_match(hosts: &str, name: &str) -> bool {
    if hosts.starts_with('|') {
        return hashed_match(hosts, name);
    }
    let mut matched = false;
    for pattern in hosts.split(',').filter(|p| !p.is_empty()) {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob_match(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob_match(pattern.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

/// The key's type name and wire blob, as a known_hosts line stores them (base64-decoded).
fn key_parts(key: &PublicKey) -> (String, Vec<u8>) {
    (key.algorithm().as_str().to_string(), key.to_bytes().unwrap_or_default())
}

/// Checks `key` for `address:port` against the text of a known_hosts file.
pub fn check(text: &str, address: &str, port: u16, key: &PublicKey) -> Verdict {
    let name = host_entry_name(address, port);
    let (key_type, blob) = key_parts(key);
    let mut known = false;
    let mut revoked = None;
    // (line, type) of an entry for this host with another key; a same-type one wins.
    let mut other: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let Some(entry) = parse_line(line) else {
            continue;
        };
        if !hosts_match(entry.hosts, &name) {
            continue;
        }
        let same_key = entry.key_type == key_type && entry.key_blob == blob;
        match entry.marker {
            Some("@revoked") => {
                if same_key && revoked.is_none() {
                    revoked = Some(i + 1);
                }
            }
            Some(_) => {} // @cert-authority and anything else: not a host key entry.
            None if same_key => known = true,
            None => {
                let better = match &other {
                    None => true,
                    Some((_, t)) => t != &key_type && entry.key_type == key_type,
                };
                if better {
                    other = Some((i + 1, entry.key_type.to_string()));
                }
            }
        }
    }
    if let Some(line) = revoked {
        Verdict::Revoked { line }
    } else if known {
        Verdict::Known
    } else if let Some((line, old_type)) = other {
        Verdict::Changed { line, old_type }
    } else {
        Verdict::Unknown
    }
}

/// The line recorded for a host on first use: `[addr]:port keytype base64` (`addr …` on port 22).
pub fn entry_line(address: &str, port: u16, key: &PublicKey) -> String {
    let (key_type, blob) = key_parts(key);
    format!(
        "{} {} {}",
        host_entry_name(address, port),
        key_type,
        STANDARD.encode(blob)
    )
}

/// `host store1 (192.0.2.10:22)` — how every ssh message names a host.
pub struct HostLabel<'a>(pub &'a HostConfig);

impl fmt::Display for HostLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.0;
        if h.address.contains(':') {
            write!(f, "host {} ([{}]:{})", h.name, h.address, h.port)
        } else {
            write!(f, "host {} ({}:{})", h.name, h.address, h.port)
        }
    }
}

/// What verification concluded about an accepted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// known_hosts holds this key for the host.
    Known,
    /// The key was unknown and has been recorded (`trust_on_first_use`). The caller tells the
    /// operator (this layer prints nothing: it may run under the console's screen).
    FirstUse(FirstUse),
}

/// An unknown host key accepted and recorded on first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstUse {
    /// `host store1 (192.0.2.10:22)`.
    pub host: String,
    pub key_type: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    pub file: PathBuf,
}

impl fmt::Display for FirstUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: trusting unknown host key {} {} on first use; recorded in {}",
            self.host,
            self.key_type,
            self.fingerprint,
            self.file.display()
        )
    }
}

/// The text of `host`'s known_hosts file ("" when it does not exist). Only a regular file of at
/// most [`files::KNOWN_HOSTS_CAP`] is read: a FIFO or /dev/zero is refused, naming file and host.
pub fn read(host: &HostConfig) -> Result<String> {
    let path = &host.known_hosts;
    match files::read_regular(path, files::KNOWN_HOSTS_CAP) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(FileError::Missing) => Ok(String::new()),
        Err(e) => anyhow::bail!(
            "{}: cannot read known_hosts file {}: {e}",
            HostLabel(host),
            path.display()
        ),
    }
}

/// The host-key algorithms to offer `address:port`, as OpenSSH orders them: those whose key type
/// known_hosts records for the host first (in russh's order of preference), then the rest. Without
/// this the server picks its favourite (ed25519), and a host known only by its RSA or ECDSA key
/// would look like a changed key. With none recorded, russh's default order.
pub fn key_algorithms(text: &str, address: &str, port: u16) -> Vec<Algorithm> {
    let name = host_entry_name(address, port);
    let mut known: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some(entry) = parse_line(line) else {
            continue;
        };
        if entry.marker.is_none() && hosts_match(entry.hosts, &name) && !known.iter().any(|k| k == entry.key_type) {
            known.push(entry.key_type.to_string());
        }
    }
    let is_known = |a: &Algorithm| {
        let (name, rsa) = (a.as_str(), matches!(a, Algorithm::Rsa { .. }));
        known.iter().any(|t| t == name || (rsa && t == "ssh-rsa"))
    };
    let all = russh::Preferred::DEFAULT.key;
    let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = all.iter().cloned().partition(is_known);
    first.extend(rest);
    first
}

/// Verifies the server key of `host` against its known_hosts file. An unknown key is recorded when
/// the host has `trust_on_first_use`; a changed or revoked key is always refused.
pub fn verify(host: &HostConfig, key: &PublicKey) -> Result<Trust> {
    let path = &host.known_hosts;
    let text = read(host)?;
    let label = HostLabel(host);
    let name = host_entry_name(&host.address, host.port);
    let key_type = key.algorithm().as_str().to_string();
    let fp = key.fingerprint(HashAlg::Sha256);
    match check(&text, &host.address, host.port, key) {
        Verdict::Known => Ok(Trust::Known),
        Verdict::Revoked { line } => anyhow::bail!(
            "{label}: refusing host key {key_type} {fp}: it is marked @revoked in {} line {line}",
            path.display()
        ),
        Verdict::Changed { line, old_type } => anyhow::bail!(
            "{label}: HOST KEY CHANGED: the server presents {key_type} {fp}, but {} line {line} records a \
             different {old_type} key for {name}. Someone may be intercepting the connection, or the host \
             was reinstalled; if the change is expected, remove line {line} \
             (ssh-keygen -R '{name}' -f {}) and connect again",
            path.display(),
            path.display()
        ),
        Verdict::Unknown if host.trust_on_first_use => {
            append_entry(path, &entry_line(&host.address, host.port, key))
                .with_context(|| format!("{label}: recording its host key in {}", path.display()))?;
            Ok(Trust::FirstUse(FirstUse {
                host: label.to_string(),
                key_type,
                fingerprint: fp.to_string(),
                file: path.clone(),
            }))
        }
        Verdict::Unknown => anyhow::bail!(
            "{label}: unknown host key {key_type} {fp}: {name} has no entry in {}. Check the fingerprint \
             and add it with `ssh-keyscan -p {} -t {} {} >> {}`, or set `trust_on_first_use = true` for \
             host {} to record it on first contact",
            path.display(),
            host.port,
            short_type(&key_type),
            host.address,
            path.display(),
            host.name
        ),
    }
}

/// ssh-keyscan's `-t` name for a key type.
fn short_type(key_type: &str) -> &str {
    match key_type {
        "ssh-ed25519" => "ed25519",
        "ssh-rsa" => "rsa",
        t if t.starts_with("ecdsa-") => "ecdsa",
        t => t,
    }
}

/// Appends one line, creating the file (and its directory) if needed.
fn append_entry(path: &Path, line: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
    }
    let needs_newline = files::read_regular(path, files::KNOWN_HOSTS_CAP)
        .map(|b| !b.is_empty() && !b.ends_with(b"\n"))
        .unwrap_or(false);
    // Non-blocking and checked: a FIFO swapped in after the read must not hang us.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?
    };
    if !f.metadata()?.is_file() {
        anyhow::bail!("{} is not a regular file", path.display());
    }
    let mut text = String::new();
    if needs_newline {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const K1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDUexH2gie2JlE+hmLwy1J84TqK0mLPYvGXl0P5BaOKA";
    const K2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnFCuLT20TC4Rp1A/Y1gLY5UZ93Hhfcrbz6YgTK6OtO";
    const K3: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBC/95Nr4x4yBfnpD7qbls8DIIy6OdLEbmYznYa/ddBj46ZATVJm3OS9YrrXLjjOBQPJ/1zjFjLZeEsp5Oyb+Tn4=";
    /// `[127.0.0.1]:2222 K1`, hashed by `ssh-keygen -H`.
    const HASHED_K1: &str = "|1|gD2fIwJAkLPPkO82SthmHtw+2Ow=|npdmNyNq9WhL+DJ8r06zlyQWlOs=";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn plain_entry_port_22() {
        let text = format!("# comment\n\n192.0.2.10 {K1}\n");
        assert_eq!(check(&text, "192.0.2.10", 22, &key(K1)), Verdict::Known);
        assert_eq!(check(&text, "192.0.2.11", 22, &key(K1)), Verdict::Unknown);
        // A plain entry does not cover another port.
        assert_eq!(check(&text, "192.0.2.10", 2222, &key(K1)), Verdict::Unknown);
    }

    #[test]
    fn bracketed_port_entry() {
        let text = format!("[127.0.0.1]:2222 {K1} comment here\n");
        assert_eq!(check(&text, "127.0.0.1", 2222, &key(K1)), Verdict::Known);
        assert_eq!(check(&text, "127.0.0.1", 2223, &key(K1)), Verdict::Unknown);
        assert_eq!(check(&text, "127.0.0.1", 22, &key(K1)), Verdict::Unknown);
    }

    #[test]
    fn several_hosts_on_one_line() {
        let text = format!("store1,192.0.2.10,[10.0.0.1]:2200 {K1}\n");
        assert_eq!(check(&text, "store1", 22, &key(K1)), Verdict::Known);
        assert_eq!(check(&text, "192.0.2.10", 22, &key(K1)), Verdict::Known);
        assert_eq!(check(&text, "10.0.0.1", 2200, &key(K1)), Verdict::Known);
        assert_eq!(check(&text, "10.0.0.1", 22, &key(K1)), Verdict::Unknown);
        assert_eq!(check(&text, "STORE1", 22, &key(K1)), Verdict::Known);
    }

    #[test]
    fn wildcards_and_negation() {
        let text = format!("*.example.com,!bad.example.com {K1}\n");
        assert_eq!(check(&text, "a.example.com", 22, &key(K1)), Verdict::Known);
        assert_eq!(check(&text, "bad.example.com", 22, &key(K1)), Verdict::Unknown);
        assert_eq!(check(&text, "example.org", 22, &key(K1)), Verdict::Unknown);
        assert!(glob_match(b"10.0.0.?", b"10.0.0.7"));
        assert!(!glob_match(b"10.0.0.?", b"10.0.0.17"));
    }

    #[test]
    fn hashed_entry() {
        let text = format!("{HASHED_K1} {K1}\n");
        assert_eq!(check(&text, "127.0.0.1", 2222, &key(K1)), Verdict::Known);
        assert_eq!(check(&text, "127.0.0.1", 22, &key(K1)), Verdict::Unknown);
        assert_eq!(check(&text, "127.0.0.2", 2222, &key(K1)), Verdict::Unknown);
        assert_eq!(
            check(&text, "127.0.0.1", 2222, &key(K2)),
            Verdict::Changed {
                line: 1,
                old_type: "ssh-ed25519".into()
            }
        );
    }

    #[test]
    fn changed_key_names_the_old_line() {
        let text = format!("# header\nother {K2}\n\n[127.0.0.1]:2222 {K2}\n");
        assert_eq!(
            check(&text, "127.0.0.1", 2222, &key(K1)),
            Verdict::Changed {
                line: 4,
                old_type: "ssh-ed25519".into()
            }
        );
    }

    #[test]
    fn changed_prefers_same_type_line_and_any_type_counts() {
        let text = format!("h {K3}\nh {K2}\n");
        assert_eq!(
            check(&text, "h", 22, &key(K1)),
            Verdict::Changed {
                line: 2,
                old_type: "ssh-ed25519".into()
            }
        );
        // Only a different type known: still a changed key, never "unknown".
        let text = format!("h {K3}\n");
        assert_eq!(
            check(&text, "h", 22, &key(K1)),
            Verdict::Changed {
                line: 1,
                old_type: "ecdsa-sha2-nistp256".into()
            }
        );
        // One of several types matching is enough.
        let text = format!("h {K3}\nh {K1}\n");
        assert_eq!(check(&text, "h", 22, &key(K1)), Verdict::Known);
    }

    #[test]
    fn revoked_wins_and_cert_authority_is_skipped() {
        let text = format!("h {K1}\n@revoked * {K1}\n");
        assert_eq!(check(&text, "h", 22, &key(K1)), Verdict::Revoked { line: 2 });
        let text = format!("@revoked h {K2}\nh {K1}\n");
        assert_eq!(check(&text, "h", 22, &key(K1)), Verdict::Known);
        let text = format!("@cert-authority h {K2}\n");
        assert_eq!(check(&text, "h", 22, &key(K1)), Verdict::Unknown);
    }

    #[test]
    fn malformed_lines_are_ignored() {
        let text = format!("garbage\nh ssh-ed25519 !!!notbase64\n   \n h {K1}\n");
        assert_eq!(check(&text, "h", 22, &key(K1)), Verdict::Known);
    }

    fn host(dir: &Path, tofu: bool) -> HostConfig {
        HostConfig {
            ferry_path: "ferry".into(),
            name: "store1".into(),
            address: "127.0.0.1".into(),
            port: 2222,
            user: "root".into(),
            key: None,
            known_hosts: dir.join("sub/dir/known_hosts"),
            trust_on_first_use: tofu,
            jump: None,
            connect_timeout: crate::config::DEFAULT_CONNECT_TIMEOUT,
            keepalive_interval: crate::config::DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_count: crate::config::DEFAULT_KEEPALIVE_COUNT,
        }
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "ferry-kh-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn verify_messages_and_trust_on_first_use() {
        let dir = tempdir();
        let h = host(&dir, false);
        let err = verify(&h, &key(K1)).unwrap_err().to_string();
        assert!(
            err.starts_with("host store1 (127.0.0.1:2222): unknown host key ssh-ed25519 SHA256:"),
            "{err}"
        );
        assert!(err.contains("ssh-keyscan -p 2222 -t ed25519 127.0.0.1 >>"), "{err}");
        assert!(err.contains("trust_on_first_use = true"), "{err}");
        assert!(!h.known_hosts.exists());

        let h = host(&dir, true);
        let Trust::FirstUse(note) = verify(&h, &key(K1)).unwrap() else {
            panic!("first contact is not reported as trust on first use");
        };
        let note = note.to_string();
        assert!(
            note.starts_with("host store1 (127.0.0.1:2222): trusting unknown host key ssh-ed25519 SHA256:"),
            "{note}"
        );
        assert!(
            note.ends_with(&format!("recorded in {}", h.known_hosts.display())),
            "{note}"
        );
        let text = std::fs::read_to_string(&h.known_hosts).unwrap();
        assert_eq!(text, format!("[127.0.0.1]:2222 {K1}\n"));
        assert_eq!(verify(&h, &key(K1)).unwrap(), Trust::Known);
        assert_eq!(
            std::fs::read_to_string(&h.known_hosts).unwrap(),
            text,
            "a known key is not recorded twice"
        );

        // A changed key is refused even with trust_on_first_use.
        let err = verify(&h, &key(K2)).unwrap_err().to_string();
        assert!(err.contains("HOST KEY CHANGED"), "{err}");
        assert!(err.contains(&format!("{} line 1", h.known_hosts.display())), "{err}");
        assert_eq!(std::fs::read_to_string(&h.known_hosts).unwrap(), text);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn offered_key_algorithms_put_the_recorded_types_first() {
        let names = |text: &str, addr: &str, port: u16| -> Vec<String> {
            key_algorithms(text, addr, port)
                .iter()
                .map(|a| a.as_str().to_string())
                .collect()
        };
        let default: Vec<String> = russh::Preferred::DEFAULT
            .key
            .iter()
            .map(|a| a.as_str().to_string())
            .collect();
        assert_eq!(names("", "h", 22), default, "nothing known: russh's default order");
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7";
        let got = names(&format!("other {K1}\n[h]:2222 {rsa}\n"), "h", 2222);
        assert_eq!(&got[..3], ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"], "{got:?}");
        assert_eq!(got.len(), default.len(), "the other algorithms still follow: {got:?}");
        let got = names(&format!("h {K3}\n@revoked h {K1}\n"), "h", 22);
        assert_eq!(got[0], "ecdsa-sha2-nistp256", "{got:?}");
        assert_eq!(
            got[1], "ssh-ed25519",
            "a @revoked line does not count as known: {got:?}"
        );
        let got = names(&format!("{HASHED_K1} {K1}\nh {K3}\n"), "127.0.0.1", 2222);
        assert_eq!(got[0], "ssh-ed25519", "{got:?}");
    }

    #[test]
    fn append_adds_missing_newline() {
        let dir = tempdir();
        let p = dir.join("kh");
        std::fs::write(&p, format!("x {K2}")).unwrap();
        append_entry(&p, "y z").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("x {K2}\ny z\n"));
        assert_eq!(entry_line("h", 22, &key(K1)), format!("h {K1}"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
