//! `ferry import copycat config.json`: CopyCat's cluster (`persist-path`, `servers` with host,
//! port, listen, update) turned into one `[[cluster]]` with a host per server, checked by loading
//! it back before it is printed. What has no ferry meaning is said in comments. Every error names
//! the file, and the line of the JSON it comes from where there is one.

use std::path::Path;

use serde_json::Value;

use super::error::ConfigError;
use super::import::{host_names, toml_str};
use super::names;

fn err(file: &Path, line: usize, key: &str, message: String) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        line,
        key: key.to_string(),
        message,
    }
}

/// The line of the JSON text where `"<key>"` first appears at or after server `n`'s start, for
/// errors about one server (serde_json keeps no positions once parsed).
fn line_of(text: &str, needle: &str, nth: usize) -> usize {
    let mut from = 0;
    for _ in 0..=nth {
        match text[from..].find(needle) {
            Some(i) => from += i + needle.len(),
            None => return 0,
        }
    }
    text[..from].lines().count()
}

/// One CopyCat server as read.
struct Server {
    host: String,
    port: Option<u64>,
    volumeid: Option<String>,
    listen: bool,
    update: bool,
    line: usize,
}

/// Converts CopyCat's config.json text into ferry TOML (one cluster named after the file).
pub fn copycat(file: &Path, text: &str) -> Result<String, ConfigError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| err(file, e.line(), "", format!("not CopyCat's JSON config: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| err(file, 1, "", "a CopyCat config is a JSON object".into()))?;
    let persist = match obj.get("persist-path") {
        Some(Value::String(p)) if !p.is_empty() => p.clone(),
        Some(_) => {
            return Err(err(
                file,
                line_of(text, "\"persist-path\"", 0),
                "persist-path",
                "must be a path".into(),
            ))
        }
        None => {
            return Err(err(
                file,
                1,
                "persist-path",
                "CopyCat's config names a persist-path; this one has none".into(),
            ))
        }
    };
    let servers = match obj.get("servers") {
        Some(Value::Array(s)) if !s.is_empty() => s,
        _ => {
            return Err(err(
                file,
                line_of(text, "\"servers\"", 0),
                "servers",
                "needs a non-empty array of servers".into(),
            ))
        }
    };
    let mut read = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let line = line_of(text, "\"host\"", i);
        let key = format!("servers[{i}]");
        let o = s
            .as_object()
            .ok_or_else(|| err(file, line, &key, "a server is an object".into()))?;
        let host = match o.get("host") {
            Some(Value::String(h)) => h.clone(),
            _ => return Err(err(file, line, &format!("{key}.host"), "a server needs a host".into())),
        };
        names::check_address(&host).map_err(|m| err(file, line, &format!("{key}.host"), m))?;
        let flag = |k: &str| -> Result<bool, ConfigError> {
            match o.get(k) {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(err(file, line, &format!("{key}.{k}"), "must be true or false".into())),
            }
        };
        read.push(Server {
            host,
            port: o.get("port").and_then(Value::as_u64),
            volumeid: o.get("volumeid").map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            listen: flag("listen")?,
            update: flag("update")?,
            line,
        });
    }
    let hosts: Vec<String> = read.iter().map(|s| s.host.clone()).collect();
    let mut unique = hosts.clone();
    unique.sort();
    unique.dedup();
    let short = host_names(&unique);
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect::<String>()
        })
        .filter(|s| !s.is_empty() && s != "config")
        .unwrap_or_else(|| "copycat".to_string());

    let mut out = format!(
        "# Imported from CopyCat's {} by `ferry import copycat`.\n\
         # CopyCat kept SDFS volumes in step through their control ports; ferry keeps volumes in step\n\
         # by replicating them. Set each volume's `at` to its path on that host and its `kind`: the\n\
         # SDFS volumes shared one object-store bucket, so one `object` volume on that bucket may be\n\
         # what you want instead. Not carried over (no ferry meaning): `debug` (use -v / --debug),\n\
         # `password` (the SDFS control password: ferry logs in over SSH with a key), `volumeid`\n\
         # (SDFS's id, kept in each volume's placeholder path and comment), `port` (the SDFS control\n\
         # port: a host's SSH port is 22 unless you set `port`).\n\n",
        file.display()
    );
    for h in &unique {
        out.push_str(&format!("[hosts.{}]\naddress = {}\n\n", short[h], toml_str(h)));
    }
    out.push_str(&format!(
        "[[cluster]]\nname = {}\npersist_path = {}\nvolumes = [\n",
        toml_str(&name),
        toml_str(&persist)
    ));
    for (i, s) in read.iter().enumerate() {
        let id = s
            .volumeid
            .as_deref()
            .filter(|v| v.chars().all(|c| c.is_ascii_alphanumeric()))
            .map(str::to_string)
            .unwrap_or_else(|| format!("volume{i}"));
        out.push_str(&format!(
            "  {{ at = {}, listen = {}, update = {} }},  # SDFS volume {} at {}:{} (CopyCat line {})\n",
            toml_str(&format!("{}:sdfs/{id}", short[&s.host])),
            s.listen,
            s.update,
            s.volumeid.as_deref().unwrap_or("?"),
            s.host,
            s.port.map(|p| p.to_string()).unwrap_or_else(|| "6442".into()),
            s.line
        ));
    }
    out.push_str("]\n");
    if !read.iter().any(|s| s.listen) || !read.iter().any(|s| s.update) {
        out.push_str("# note: no server listens or none updates: CopyCat would have moved nothing either\n");
    }
    super::load::parse(file, &out).map_err(|errors| {
        let e = errors.first();
        err(
            file,
            0,
            &e.key,
            format!("the converted config does not load: {}", e.message),
        )
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{
"persist-path" : "/tmp",
"debug" : true,
"servers" : [ {
"port" : 6442,
"host": "host0",
"password" : "admin",
"volumeid" : 272362632702517055,
"listen" : true,
"update" : true
},
{
"port" : 6442,
"host": "host1.example.com",
"password" : "admin",
"volumeid" : 1900326592403395044,
"listen" : true,
"update" : true
}]
}"#;

    #[test]
    fn copycats_own_example_converts_and_loads() {
        let out = copycat(Path::new("/etc/copycat/config.json"), SEED).unwrap();
        assert!(out.contains("[hosts.host0]\naddress = \"host0\""), "{out}");
        assert!(out.contains("[hosts.host1]\naddress = \"host1.example.com\""), "{out}");
        assert!(out.contains("persist_path = \"/tmp\""), "{out}");
        assert!(
            out.contains("at = \"host0:sdfs/272362632702517055\", listen = true, update = true"),
            "{out}"
        );
        assert!(
            out.contains("`password`") && out.contains("`debug`"),
            "says what is dropped: {out}"
        );
        assert!(!out.contains("admin"), "the password is never copied: {out}");
        let cfg = crate::config::load::parse(Path::new("x.toml"), &out).unwrap();
        assert_eq!(cfg.clusters[0].volumes.len(), 2);
        assert_eq!(cfg.clusters[0].name, "copycat");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let bad = SEED.replace("\"host\": \"host1.example.com\"", "\"host\": \"host;rm -rf\"");
        let e = copycat(Path::new("c.json"), &bad).unwrap_err();
        assert_eq!(e.line, 14, "the second server's host line: {e}");
        assert!(e.key.contains("servers[1].host"), "{e}");
        let e = copycat(Path::new("c.json"), "{ \"persist-path\": \"/x\",\n \"servers\": 3 }").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = copycat(Path::new("c.json"), "{\n\"servers\": [ }").unwrap_err();
        assert!(e.line >= 2 && e.message.contains("JSON"), "{e}");
    }
}
