//! `ferry import zettabee FILE`: zettabee's pair lines (`shost:pool/fs dhost:pool/fs key=value,...`)
//! turned into ferry TOML, checked by loading it back before it is printed. Every error names the
//! zettabee file and the line it comes from.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::error::ConfigError;
use super::names;

/// The options of a zettabee pair line: zettabee's own (transport, port, sshport, sshkey, wlag,
/// clag, wrun, crun) and the ferry pair keys an operator may have added by hand.
const KEYS: &[&str] = &[
    "transport",
    "port",
    "sshport",
    "sshkey",
    "wlag",
    "clag",
    "wrun",
    "crun",
    "bwlimit",
    "compress",
    "keep",
    "mbuffer_address",
];

/// What the importer is asked to do besides converting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Mark every pair `adopt = "zettabee"`: the first update takes over zettabee's replica.
    pub adopt: bool,
}

/// Host names that mean "this machine". zettabee always received on the machine it ran on, so
/// its destination host is usually this machine under its FQDN: a name whose first label is this
/// machine's (short) host name counts too.
fn is_local(host: &str, this: &str) -> bool {
    if matches!(host, "local" | "localhost" | "127.0.0.1" | "::1") || host == this {
        return true;
    }
    let first = |h: &str| h.split('.').next().unwrap_or("").to_string();
    // one of the two unqualified: backup1 is backup1.example.com (two FQDNs must match whole)
    host.parse::<IpAddr>().is_err()
        && !this.is_empty()
        && first(host) == first(this)
        && (!this.contains('.') || !host.contains('.'))
}

pub(super) fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A line of the zettabee file as a TOML comment: control characters would not be valid there.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

/// One pair line of the zettabee file.
struct ZLine {
    line: usize,
    text: String,
    shost: String,
    sfs: String,
    dhost: String,
    dfs: String,
    opts: Vec<(String, String)>,
}

/// What the pair lines say about one remote host (zettabee's sshport and sshkey are per pair,
/// ferry's port and key per host: pairs of one host must agree).
#[derive(Default)]
struct ZHost {
    first_line: usize,
    port: Option<(u16, usize)>,
    key: Option<(String, usize)>,
}

/// Ferry host names for zettabee's hosts: an FQDN becomes its first label when no other host
/// shares it, else the shortest unambiguous run of labels joined with `-`; an IP address has its
/// dots (or colons) turned into `-`. The original stays the host's `address`.
pub fn host_names(hosts: &[String]) -> BTreeMap<String, String> {
    let labels = |h: &str| -> Vec<String> {
        if h.parse::<IpAddr>().is_ok() {
            vec![h.replace(['.', ':'], "-")]
        } else {
            h.split('.').map(String::from).collect()
        }
    };
    let all: Vec<Vec<String>> = hosts.iter().map(|h| labels(h)).collect();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut taken: Vec<String> = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let mine = &all[i];
        // the shortest prefix of labels no other host starts with
        let mut k = (1..=mine.len())
            .find(|&k| {
                all.iter()
                    .enumerate()
                    .all(|(j, other)| j == i || other.len() < k || other[..k] != mine[..k])
            })
            .unwrap_or(mine.len());
        let mut name = mine[..k].join("-");
        while (name == super::LOCAL || taken.contains(&name)) && k < mine.len() {
            k += 1;
            name = mine[..k].join("-");
        }
        let base = name.clone();
        let mut n = 2;
        while name == super::LOCAL || taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        taken.push(name.clone());
        names.insert(h.clone(), name);
    }
    names
}

/// Converts zettabee's config text; `this_host` is this machine's name (a destination naming it is local).
pub fn zettabee(file: &Path, text: &str, this_host: &str, options: Options) -> Result<String, ConfigError> {
    let err = |line: usize, key: &str, message: String| ConfigError {
        file: file.to_path_buf(),
        line,
        key: key.into(),
        message,
    };
    // 1. read every pair line
    let mut zlines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let body = raw.split('#').next().unwrap_or("").trim();
        if body.is_empty() {
            continue;
        }
        let fields: Vec<&str> = body.split_whitespace().collect();
        if !(2..=3).contains(&fields.len()) {
            return Err(err(
                line,
                "",
                format!(
                    "expected `shost:pool/fs dhost:pool/fs [key=value,...]`, found {} fields",
                    fields.len()
                ),
            ));
        }
        let side = |s: &str, what: &str| -> Result<(String, String), ConfigError> {
            let (h, p) = s
                .split_once(':')
                .ok_or_else(|| err(line, what, format!("{what} {s:?} is not host:pool/fs")))?;
            names::check_address(h)
                .or_else(|_| names::check_host_name(h))
                .map_err(|m| err(line, what, m))?;
            crate::model::names::check_dataset(p).map_err(|m| err(line, what, m))?;
            Ok((h.to_string(), p.to_string()))
        };
        let (shost, sfs) = side(fields[0], "source")?;
        let (dhost, dfs) = side(fields[1], "destination")?;
        let mut opts = Vec::new();
        for kv in fields.get(2).map(|o| o.split(',')).into_iter().flatten() {
            if kv.is_empty() {
                continue;
            }
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| err(line, kv, format!("option {kv:?} is not key=value")))?;
            if !KEYS.contains(&k) {
                return Err(err(
                    line,
                    k,
                    format!("unknown zettabee option (ferry knows {})", KEYS.join(", ")),
                ));
            }
            if opts.iter().any(|(o, _): &(String, String)| o == k) {
                return Err(err(line, k, format!("option {k} is given twice")));
            }
            opts.push((k.to_string(), v.to_string()));
        }
        zlines.push(ZLine {
            line,
            text: body.to_string(),
            shost,
            sfs,
            dhost,
            dfs,
            opts,
        });
    }

    // 2. the remote hosts, in order of first mention, with their ssh settings
    let mut order: Vec<String> = Vec::new();
    let mut zhosts: BTreeMap<String, ZHost> = BTreeMap::new();
    for z in &zlines {
        for h in [&z.shost, &z.dhost] {
            if !is_local(h, this_host) && !zhosts.contains_key(h.as_str()) {
                order.push(h.clone());
                zhosts.insert(
                    h.clone(),
                    ZHost {
                        first_line: z.line,
                        ..Default::default()
                    },
                );
            }
        }
        if is_local(&z.shost, this_host) {
            continue;
        }
        let host = zhosts.get_mut(&z.shost).expect("inserted above");
        for (k, v) in &z.opts {
            match k.as_str() {
                "sshport" => {
                    let port: u16 = v
                        .parse()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| err(z.line, k, format!("sshport = {v:?} is not a port (1..65535)")))?;
                    match host.port {
                        Some((p, first)) if p != port => {
                            return Err(err(
                                z.line,
                                k,
                                format!(
                                    "sshport={port} for host {} but line {first} gives sshport={p}: ferry has one ssh port per host",
                                    z.shost
                                ),
                            ))
                        }
                        _ => host.port = Some((port, z.line)),
                    }
                }
                "sshkey" => match &host.key {
                    Some((p, first)) if p != v => {
                        return Err(err(
                            z.line,
                            k,
                            format!(
                                "sshkey={v} for host {} but line {first} gives sshkey={p}: ferry has one key per host",
                                z.shost
                            ),
                        ))
                    }
                    _ => host.key = Some((v.clone(), z.line)),
                },
                _ => {}
            }
        }
    }
    let name_of = host_names(&order);
    let endpoint = |h: &str, fs: &str| match name_of.get(h) {
        Some(n) => format!("{n}:{fs}"),
        None => fs.to_string(),
    };

    // 3. the TOML, remembering which zettabee line each block of it comes from
    let mut out = format!(
        "# imported from zettabee config {} ({} pairs)\n# zettabee logged in as root; so does ferry unless a host sets `user`.\n",
        file.display(),
        zlines.len()
    );
    let mut origin: Vec<(usize, usize)> = Vec::new(); // (first output line of a block, zettabee line)
    let mut mark = |out: &mut String, zline: usize| origin.push((out.lines().count() + 1, zline));
    for h in &order {
        let z = &zhosts[h];
        out.push('\n');
        mark(&mut out, z.first_line);
        out.push_str(&format!(
            "[hosts.{}]\naddress = {}\n",
            toml_str(&name_of[h]),
            toml_str(h)
        ));
        if let Some((p, _)) = z.port {
            out.push_str(&format!("port = {p}\n"));
        }
        if let Some((k, _)) = &z.key {
            out.push_str(&format!("key = {}\n", toml_str(k)));
        }
    }
    for z in &zlines {
        out.push('\n');
        mark(&mut out, z.line);
        out.push_str(&format!(
            "[[pair]]\n# zettabee line {}: {}\nsource = {}\ndestination = {}\n",
            z.line,
            comment(&z.text),
            toml_str(&endpoint(&z.shost, &z.sfs)),
            toml_str(&endpoint(&z.dhost, &z.dfs))
        ));
        let mut transport = None;
        let mut has_port = false;
        let mut has_address = false;
        for (k, v) in &z.opts {
            match k.as_str() {
                "sshport" | "sshkey" => {}
                "port" | "keep" => {
                    let n: u32 = v
                        .parse()
                        .map_err(|_| err(z.line, k, format!("{k} = {v:?} is not a number")))?;
                    has_port |= k == "port";
                    out.push_str(&format!("{k} = {n}\n"));
                }
                // zettabee's thresholds are whole seconds
                "wlag" | "clag" | "wrun" | "crun" if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) => {
                    out.push_str(&format!("{k} = \"{v}s\"\n"));
                }
                // a bare number is bytes per second (mbuffer -r's reading); ferry wants the unit said
                "bwlimit" if !v.is_empty() && v != "0" && v.chars().all(|c| c.is_ascii_digit()) => {
                    out.push_str(&format!("{k} = \"{v}B\"\n"));
                }
                _ => {
                    if k == "transport" {
                        transport = Some(v.as_str());
                    }
                    has_address |= k == "mbuffer_address";
                    out.push_str(&format!("{k} = {}\n", toml_str(v)));
                }
            }
        }
        if transport == Some("mbuffer")
            && !has_address
            && is_local(&z.dhost, this_host)
            && !is_local(&z.shost, this_host)
            && names::check_address(&z.dhost).is_ok()
        {
            // zettabee's source sent to `mbuffer -O dhost:port`: the address it reaches us at
            out.push_str(&format!("mbuffer_address = {}\n", toml_str(&z.dhost)));
        }
        if has_port && transport.is_none() {
            out.push_str("# zettabee sent this pair through mbuffer on `port`; ferry uses ssh unless you set\n# transport = \"mbuffer\" (unencrypted) and, for a local destination, mbuffer_address\n");
        }
        if options.adopt {
            out.push_str("adopt = \"zettabee\"\n");
        }
    }
    // what we print must load: an error is reported at the zettabee line its block came from
    super::load::parse(file, &out).map_err(|errors| {
        let e = errors.first();
        let line = origin
            .iter()
            .rev()
            .find(|(start, _)| *start <= e.line)
            .map(|(_, z)| *z)
            .unwrap_or(0);
        err(line, &e.key, e.message.clone())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(text: &str) -> Result<String, ConfigError> {
        zettabee(Path::new("z.cfg"), text, "backup1", Options::default())
    }

    #[test]
    fn converts_and_validates() {
        let text = "# zettabee\nstore1:tank/data backup1:backup/data port=9090,wlag=30m\n\nstore2:tank/web localhost:backup/web\n";
        let out = import(text).unwrap();
        let c = crate::config::parse(Path::new("x"), &out).unwrap();
        assert_eq!(c.pairs.len(), 2);
        assert_eq!(c.pairs[0].destination.to_string(), "local:backup/data");
        assert_eq!(c.pairs[0].port, Some(9090));
        assert_eq!(c.pairs[0].options.wlag.as_secs(), 1800);
        assert_eq!(c.pairs[1].source.to_string(), "store2:tank/web");
        let e = import("a:t/x b:u/y colour=blue\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (1, "colour"));
        let e = import("\na:t/x\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = import("a:t/x b:u/y wlag=2x\n").unwrap_err();
        assert!(e.message.contains("bad duration"), "{e}");
    }

    #[test]
    fn fqdn_and_ip_hosts_get_short_unambiguous_names() {
        let hosts: Vec<String> = [
            "store1.example.com",
            "store2.example.com",
            "db.site-a.example.com",
            "db.site-b.example.com",
            "192.0.2.10",
            "web.example.com",
            "web.example.org",
            "local.example.com",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let n = host_names(&hosts);
        assert_eq!(n["store1.example.com"], "store1");
        assert_eq!(n["store2.example.com"], "store2");
        assert_eq!(n["db.site-a.example.com"], "db-site-a");
        assert_eq!(n["db.site-b.example.com"], "db-site-b");
        assert_eq!(n["192.0.2.10"], "192-0-2-10");
        assert_eq!(n["web.example.com"], "web-example-com");
        assert_eq!(n["web.example.org"], "web-example-org");
        assert_eq!(
            n["local.example.com"], "local-example",
            "`local` is this machine's name"
        );
        for name in n.values() {
            names::check_host_name(name).unwrap();
        }
    }

    #[test]
    fn zettabee_thresholds_are_seconds_and_ssh_options_go_to_the_host() {
        let out = import(
            "s.example.com:t/a backup1.example.com:b/a wlag=3600,clag=86400,sshport=2222,sshkey=/root/.ssh/zb\n",
        )
        .unwrap();
        let c = crate::config::parse(Path::new("x"), &out).unwrap();
        assert_eq!(c.pairs[0].options.wlag.as_secs(), 3600);
        assert_eq!(c.pairs[0].options.clag.as_secs(), 86400);
        assert_eq!(c.pairs[0].destination.to_string(), "local:b/a", "{out}");
        let h = &c.hosts["s"];
        assert_eq!((h.address.as_str(), h.port), ("s.example.com", 2222));
        assert_eq!(h.key.as_deref(), Some(Path::new("/root/.ssh/zb")));
        let e = import("s:t/a local:b/a sshport=22\ns:t/b local:b/b sshport=2222\n").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "sshport"), "{e}");
        assert!(e.message.contains("line 1 gives sshport=22"), "{e}");
    }

    #[test]
    fn this_machine_under_its_short_or_full_name_is_local() {
        assert!(is_local("backup1.example.com", "backup1"));
        assert!(is_local("backup1", "backup1.example.com"));
        assert!(is_local("backup1.example.com", "backup1.example.com"));
        assert!(!is_local("backup1.example.org", "backup1.example.com"));
        assert!(!is_local("backup2.example.com", "backup1"));
        assert!(!is_local("10.0.0.1", "10"));
    }

    #[test]
    fn the_adopt_key_is_checked() {
        let pair = "[[pair]]\nsource = \"t/a\"\ndestination = \"b/a\"\n";
        let c = crate::config::parse(Path::new("x"), &format!("{pair}adopt = \"zettabee\"\n")).unwrap();
        assert_eq!(c.pairs[0].adopt, Some(crate::config::Adopt::Zettabee));
        let e = crate::config::parse(Path::new("x"), &format!("{pair}adopt = \"syncoid\"\n")).unwrap_err();
        let e = e.first();
        assert_eq!((e.line, e.key.as_str()), (4, "adopt"), "{e}");
        let e = crate::config::parse(Path::new("x"), "[defaults]\nadopt = \"zettabee\"\n").unwrap_err();
        let e = e.first();
        assert_eq!((e.line, e.key.as_str()), (2, "adopt"), "{e}");
    }

    #[test]
    fn errors_found_when_loading_back_name_the_zettabee_line() {
        // duplicate mbuffer port: only the loader sees it
        let e = import("# c\n\ns1.x.org:t/a local:b/a port=9090\ns2.x.org:t/b local:b/b port=9090\n").unwrap_err();
        assert_eq!(e.file, Path::new("z.cfg"));
        assert_eq!((e.line, e.key.as_str()), (4, "port"), "{e}");
    }
}
