//! An object pair lab: two s3s-fs servers on loopback (sites a and b), each with a credentials
//! file, a config naming them as object-store hosts, the ferry binary, and rclone (Debian's) as
//! the independent client that writes and reads the buckets.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::S3Server;

pub struct ObjectLab {
    pub a: S3Server,
    pub b: S3Server,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

/// One listed object: key, size, content type, user metadata (sorted).
pub type Listed = (String, u64, String, Vec<(String, String)>);

pub use super::runner::Run;

impl ObjectLab {
    /// Site a serves bucket `photos`, site b `photos-dr`; the pair replicates
    /// `a:photos/2026/` to `b:photos-dr/2026/` with `pair_extra` added to its table.
    pub fn start(bin: &Path, pair_extra: &str) -> ObjectLab {
        let a = S3Server::start(bin, "sitea", &["photos"]);
        let b = S3Server::start(bin, "siteb", &["photos-dr"]);
        let dir = tempfile::tempdir().expect("lab dir");
        let config = dir.path().join("ferry.toml");
        let lab = ObjectLab { a, b, dir, config };
        for (name, s) in [("a", &lab.a), ("b", &lab.b)] {
            let cred = format!(
                "# site {name}\n[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                s.access_key, s.secret_key
            );
            std::fs::write(lab.dir.path().join(format!("{name}.cred")), cred).expect("cred file");
        }
        lab.write_config(pair_extra);
        lab
    }

    pub fn write_config(&self, pair_extra: &str) {
        let d = self.dir.path();
        let text = format!(
            "state_dir = \"{state}\"\n\n\
             [hosts.s3a]\nendpoint = \"{ea}\"\nregion = \"us-east-1\"\ncredentials = \"{d}/a.cred\"\n\n\
             [hosts.s3b]\nendpoint = \"{eb}\"\ncredentials = \"{d}/b.cred\"\n\n\
             [[pair]]\nkind = \"object\"\nsource = \"s3a:photos/2026/\"\ndestination = \"s3b:photos-dr/2026/\"\n{pair_extra}\n",
            state = self.state_dir().display(),
            ea = self.a.endpoint(),
            eb = self.b.endpoint(),
            d = d.display(),
        );
        std::fs::write(&self.config, text).expect("config");
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn ferry(&self, args: &[&str]) -> Run {
        super::runner::run(&self.config, args)
    }

    /// Runs ferry and panics with its output unless it exits 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.ferry(args);
        assert_eq!(r.code, 0, "ferry {args:?}\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
        r
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let r = self.ferry(&all);
        serde_json::from_str(&r.stdout)
            .unwrap_or_else(|e| panic!("ferry {all:?}: {e}\nstdout: {}\nstderr: {}", r.stdout, r.stderr))
    }

    /// rclone's output as text; panics on failure.
    pub fn rclone(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.rclone_bytes(args)).into_owned()
    }

    /// rclone with remotes `a` and `b` (the two sites) from the environment: its output as
    /// bytes (`cat` of binary objects); panics on failure.
    pub fn rclone_bytes(&self, args: &[&str]) -> Vec<u8> {
        let mut c = Command::new("rclone");
        for (name, s) in [("A", &self.a), ("B", &self.b)] {
            c.env(format!("RCLONE_CONFIG_{name}_TYPE"), "s3")
                .env(format!("RCLONE_CONFIG_{name}_PROVIDER"), "Other")
                .env(format!("RCLONE_CONFIG_{name}_ENDPOINT"), s.endpoint())
                .env(format!("RCLONE_CONFIG_{name}_ACCESS_KEY_ID"), &s.access_key)
                .env(format!("RCLONE_CONFIG_{name}_SECRET_ACCESS_KEY"), &s.secret_key)
                .env(format!("RCLONE_CONFIG_{name}_FORCE_PATH_STYLE"), "true");
        }
        let out = c
            .env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG", "/dev/null")
            // s3s-fs answers a recursive listing's empty delimiter with nothing: walk directories
            .env("RCLONE_DISABLE", "ListR")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("rclone (Debian package rclone) runs");
        assert!(
            out.status.success(),
            "rclone {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Writes `data` as `remote:path` with a content type and one user metadata pair.
    pub fn put(&self, remote_path: &str, data: &[u8], content_type: &str, meta: (&str, &str)) {
        let f = self.dir.path().join("upload.tmp");
        std::fs::write(&f, data).expect("upload file");
        let ct = format!("Content-Type: {content_type}");
        let m = format!("{}={}", meta.0, meta.1);
        self.rclone(&[
            "copyto",
            // same bytes with new metadata is a new write too (rclone would only touch its mtime)
            "--ignore-times",
            &f.display().to_string(),
            remote_path,
            "--header-upload",
            &ct,
            "--metadata",
            "--metadata-set",
            &m,
        ]);
    }

    /// Every object under `remote:path` as (key, size, content type, user metadata without
    /// rclone's own mtime/atime/btime/mode/uid/gid, content md5 read through rclone).
    pub fn listing(&self, remote_path: &str) -> Vec<Listed> {
        let text = self.rclone(&["lsjson", "-R", "--files-only", "--metadata", remote_path]);
        let v: serde_json::Value = serde_json::from_str(&text).expect("lsjson");
        let mut out: Vec<_> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|o| {
                let mut meta: Vec<(String, String)> = o["Metadata"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter(|(k, _)| !["atime", "btime", "mtime", "mode", "uid", "gid"].contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                meta.sort();
                (
                    o["Path"].as_str().unwrap_or("").to_string(),
                    o["Size"].as_u64().unwrap_or(0),
                    o["MimeType"].as_str().unwrap_or("").to_string(),
                    meta,
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Content hashes of every object under `remote:path`, read by rclone (`hashsum md5
    /// --download`: the bytes themselves, whatever the server lists).
    pub fn sums(&self, remote_path: &str) -> Vec<String> {
        let text = self.rclone(&["hashsum", "md5", "--download", remote_path]);
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines.sort();
        lines
    }

    /// Both sides of the pair hold the same keys, bytes, content types and user metadata.
    pub fn assert_same(&self) {
        self.assert_same_at("a:photos/2026/", "b:photos-dr/2026/");
    }

    /// `a` and `b` (rclone remote paths) hold the same keys, bytes, content types and user
    /// metadata (a cluster's replica mark aside).
    pub fn assert_same_at(&self, a: &str, b: &str) {
        let strip = |l: Vec<Listed>| -> Vec<Listed> {
            l.into_iter()
                .map(|(k, n, ct, m)| (k, n, ct, m.into_iter().filter(|(k, _)| k != "ferry-cluster").collect()))
                .collect()
        };
        let listed = strip(self.listing(a));
        assert!(
            !listed.is_empty(),
            "{a} lists nothing: a comparison of nothing proves nothing"
        );
        assert_eq!(listed, strip(self.listing(b)), "listings differ");
        assert_eq!(self.sums(a), self.sums(b), "contents differ");
    }
}
