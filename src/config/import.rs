//! `ferry import zettabee FILE`: zettabee's pair lines (`shost:pool/fs dhost:pool/fs key=value,...`)
//! turned into ferry TOML, checked by loading it back before it is printed.

use std::collections::BTreeSet;
use std::path::Path;

use super::load::ConfigError;
use super::names;

/// The zettabee options ferry understands, with the ferry key they become.
const KEYS: &[&str] = &[
    "port",
    "wlag",
    "clag",
    "wrun",
    "crun",
    "bwlimit",
    "compress",
    "keep",
    "transport",
    "mbuffer_address",
];

/// Host names that mean "this machine" on a zettabee destination.
fn is_local(host: &str, this: &str) -> bool {
    host == "local" || host == "localhost" || host == "127.0.0.1" || host == this
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Converts zettabee's config text; `this_host` is this machine's name (a destination naming it is local).
pub fn zettabee(file: &Path, text: &str, this_host: &str) -> Result<String, ConfigError> {
    let err = |line: usize, key: &str, message: String| ConfigError {
        file: file.to_path_buf(),
        line,
        key: key.into(),
        message,
    };
    let mut hosts: BTreeSet<String> = BTreeSet::new();
    let mut pairs = String::new();
    let mut count = 0;
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
            names::check_dataset(p).map_err(|m| err(line, what, m))?;
            Ok((h.to_string(), p.to_string()))
        };
        let (shost, sfs) = side(fields[0], "source")?;
        let (dhost, dfs) = side(fields[1], "destination")?;
        let mut entry = String::from("\n[[pair]]\n");
        let src = if is_local(&shost, this_host) {
            sfs.clone()
        } else {
            names::check_host_name(&shost).map_err(|m| err(line, "source", m))?;
            hosts.insert(shost.clone());
            format!("{shost}:{sfs}")
        };
        let dst = if is_local(&dhost, this_host) {
            dfs.clone()
        } else {
            names::check_host_name(&dhost).map_err(|m| err(line, "destination", m))?;
            hosts.insert(dhost.clone());
            format!("{dhost}:{dfs}")
        };
        entry.push_str(&format!(
            "source = {}\ndestination = {}\n",
            toml_str(&src),
            toml_str(&dst)
        ));
        let mut port = None;
        let mut transport = None;
        if let Some(opts) = fields.get(2) {
            for kv in opts.split(',').filter(|s| !s.is_empty()) {
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
                match k {
                    "port" | "keep" => {
                        let n: u32 = v
                            .parse()
                            .map_err(|_| err(line, k, format!("{k} = {v:?} is not a number")))?;
                        if k == "port" {
                            port = Some(n);
                        }
                        entry.push_str(&format!("{k} = {n}\n"));
                    }
                    _ => {
                        if k == "transport" {
                            transport = Some(v.to_string());
                        }
                        entry.push_str(&format!("{k} = {}\n", toml_str(v)));
                    }
                }
            }
        }
        if port.is_some() && transport.is_none() {
            entry.push_str("# zettabee sent this pair through mbuffer on `port`; ferry uses ssh unless you set\n# transport = \"mbuffer\" (unencrypted) and, for a local destination, mbuffer_address\n");
        }
        pairs.push_str(&entry);
        count += 1;
    }
    let mut out = format!("# imported from zettabee config {} ({count} pairs)\n", file.display());
    for h in &hosts {
        out.push_str(&format!(
            "\n[hosts.{h}]\naddress = {}\n# user, port, key, known_hosts: as zettabee's ssh used them\n",
            toml_str(h)
        ));
    }
    out.push_str(&pairs);
    // what we print must load: any error here names the zettabee line through its pair
    super::load::parse(Path::new("(imported)"), &out).map_err(|errors| {
        let e = errors.first();
        let pair_no = out[..out
            .lines()
            .take(e.line.saturating_sub(1))
            .map(|l| l.len() + 1)
            .sum::<usize>()
            .min(out.len())]
            .matches("[[pair]]")
            .count();
        err(0, &e.key, format!("pair {pair_no} of the file: {}", e.message))
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_and_validates() {
        let text = "# zettabee\nstore1:tank/data backup1:backup/data port=9090,wlag=30m\n\nstore2:tank/web localhost:backup/web\n";
        let out = zettabee(Path::new("z.cfg"), text, "backup1").unwrap();
        let c = crate::config::parse(Path::new("x"), &out).unwrap();
        assert_eq!(c.pairs.len(), 2);
        assert_eq!(c.pairs[0].destination.to_string(), "local:backup/data");
        assert_eq!(c.pairs[0].port, Some(9090));
        assert_eq!(c.pairs[0].options.wlag.as_secs(), 1800);
        assert_eq!(c.pairs[1].source.to_string(), "store2:tank/web");
        let e = zettabee(Path::new("z.cfg"), "a:t/x b:u/y colour=blue\n", "b").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (1, "colour"));
        let e = zettabee(Path::new("z.cfg"), "\na:t/x\n", "b").unwrap_err();
        assert_eq!(e.line, 2);
        let e = zettabee(Path::new("z.cfg"), "a:t/x b:u/y wlag=2x\n", "b").unwrap_err();
        assert!(e.message.contains("bad duration"), "{e}");
    }
}
