//! Picking a pair from DEST: `host:path`, `path`, the last path component if unambiguous, or a
//! fingerprint prefix.

use crate::config::{Config, Pair};

/// The pair DEST names, or a message saying why none or several match.
pub fn select<'a>(config: &'a Config, dest: &str) -> Result<&'a Pair, String> {
    let dest = dest.trim();
    if dest.is_empty() {
        return Err("empty DEST".into());
    }
    let by = |f: &dyn Fn(&Pair) -> bool| -> Vec<&'a Pair> { config.pairs.iter().filter(|p| f(p)).collect() };
    // a trailing '/' names the same thing (an object prefix is written either way)
    let bare = |s: &str| {
        s.strip_suffix('/')
            .filter(|t| !t.is_empty())
            .map(String::from)
            .unwrap_or(s.to_string())
    };
    let want = bare(dest);
    let tiers: [Vec<&Pair>; 4] = [
        by(&|p| bare(&p.destination.to_string()) == want),
        by(&|p| bare(&p.destination.path) == want),
        by(&|p| bare(&p.destination.path).rsplit('/').next() == Some(want.as_str())),
        if dest.len() >= 4 && dest.chars().all(|c| c.is_ascii_hexdigit()) {
            by(&|p| p.fingerprint().starts_with(&dest.to_ascii_lowercase()))
        } else {
            Vec::new()
        },
    ];
    for found in tiers {
        match found.len() {
            0 => continue,
            1 => return Ok(found[0]),
            _ => {
                let names: Vec<String> = found.iter().map(|p| p.destination.to_string()).collect();
                return Err(format!("{dest:?} is ambiguous: it matches {}", names.join(", ")));
            }
        }
    }
    Err(format!("no pair has destination {dest:?} (`ferry status` lists them)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = r#"
[hosts.s1]
address = "127.0.0.1"
[[pair]]
source = "s1:tank/data"
destination = "backup/data"
[[pair]]
source = "s1:tank/web"
destination = "backup/web"
[[pair]]
source = "s1:tank/web2"
destination = "other/web"
"#;
        crate::config::parse(std::path::Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn forms_of_dest() {
        let c = config();
        assert_eq!(select(&c, "local:backup/data").unwrap().source.path, "tank/data");
        assert_eq!(select(&c, "backup/web").unwrap().source.path, "tank/web");
        assert_eq!(select(&c, "data").unwrap().source.path, "tank/data");
        assert!(select(&c, "web").unwrap_err().contains("ambiguous"));
        let fp = c.pairs[2].fingerprint();
        assert_eq!(select(&c, &fp[..6]).unwrap().source.path, "tank/web2");
        assert!(select(&c, "nothing").unwrap_err().contains("no pair"));
        assert_eq!(select(&c, "backup/web/").unwrap().source.path, "tank/web");
    }

    #[test]
    fn object_prefixes_with_or_without_their_slash() {
        let text = "[hosts.s3b]\nendpoint = \"http://127.0.0.1:9000\"\n[hosts.s3a]\nendpoint = \"https://s3.example.com\"\n\
                    [[pair]]\nkind = \"object\"\nsource = \"s3a:photos/2026/\"\ndestination = \"s3b:photos-dr/2026/\"\n";
        let c = crate::config::parse(std::path::Path::new("t.toml"), text).unwrap();
        for dest in [
            "s3b:photos-dr/2026/",
            "s3b:photos-dr/2026",
            "photos-dr/2026",
            "photos-dr/2026/",
            "2026",
        ] {
            assert!(select(&c, dest).is_ok(), "{dest}");
        }
    }
}
