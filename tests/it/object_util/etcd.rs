//! A real etcd (Debian's etcd-server) on free loopback ports with its own data dir, killed on
//! drop: the coordination engine of the HA tests. Under CI=true a missing etcd fails. Optionally
//! over TLS with certificates made here by the `openssl` CLI (a CA, a server certificate for
//! 127.0.0.1, a client certificate, and a second CA that signed neither), with client
//! certificates required, and with authentication enabled (root, and a `ferry` user whose role
//! may read and write `/ferry/` only).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct EtcdServer {
    child: Option<Child>,
    pub port: u16,
    _data: tempfile::TempDir,
    /// The certificates when it speaks TLS.
    pub tls: Option<Certs>,
}

/// PEM files made for one server: `ca`/`ca_key` signed `server` and `client`; `other_ca` signed
/// nothing of this server's.
pub struct Certs {
    pub dir: std::path::PathBuf,
    pub ca: std::path::PathBuf,
    pub server: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
    pub client: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
    pub other_ca: std::path::PathBuf,
}

/// How to start it.
#[derive(Default)]
pub struct Options {
    /// https on the client port, with these certificates (made in this dir).
    pub tls_in: Option<std::path::PathBuf>,
    /// Clients must show a certificate the CA signed.
    pub client_cert_auth: bool,
    /// `--auth-token-ttl` (seconds) for a short-lived token.
    pub token_ttl: Option<u64>,
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    /// A CA, a server certificate for 127.0.0.1 and localhost, a client certificate, and another CA.
    pub fn make(dir: &std::path::Path) -> Certs {
        std::fs::create_dir_all(dir).unwrap();
        for ca in ["ca", "other-ca"] {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN=ferry test {ca}"),
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                ],
            );
        }
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, cn) in [("server", "127.0.0.1"), ("client", "ferry")] {
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    &format!("/CN={cn}"),
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        }
        Certs {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            server: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.pem"),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The etcd binary, or None (test skips loudly) outside CI.
pub fn require_etcd() -> Option<std::path::PathBuf> {
    let found = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("etcd is not installed: run scripts/deps.sh (etcd-server)");
        }
        eprintln!("\n*** SKIPPED: etcd is not installed (apt install etcd-server) ***\n");
    }
    found
}

impl EtcdServer {
    pub fn start(bin: &std::path::Path) -> EtcdServer {
        EtcdServer::start_with(bin, Options::default())
    }

    pub fn start_with(bin: &std::path::Path, opt: Options) -> EtcdServer {
        let data = tempfile::tempdir().unwrap();
        let (port, peer) = (free_port(), free_port());
        let certs = opt.tls_in.as_deref().map(Certs::make);
        let scheme = if certs.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(bin);
        if let Some(c) = &certs {
            cmd.arg("--cert-file")
                .arg(&c.server)
                .arg("--key-file")
                .arg(&c.server_key);
            if opt.client_cert_auth {
                cmd.arg("--client-cert-auth").arg("--trusted-ca-file").arg(&c.ca);
            }
        }
        if let Some(ttl) = opt.token_ttl {
            cmd.arg(format!("--auth-token-ttl={ttl}"));
        }
        let child = cmd
            .args(["--name", "ferrytest", "--data-dir"])
            .arg(data.path().join("d"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("ferrytest={peer_url}")])
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn etcd");
        let s = EtcdServer {
            child: Some(child),
            port,
            _data: data,
            tls: certs,
        };
        let etcd = s.client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while etcd.get("/ready").is_err() {
            assert!(Instant::now() < deadline, "etcd on port {port} did not answer in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// A client that passes its TLS checks (the CA, the client certificate), without a user.
    pub fn client(&self) -> ferry::coord::etcd::Etcd {
        let etcd = ferry::coord::etcd::Etcd::new(&[self.endpoint()]);
        match &self.tls {
            Some(c) => etcd
                .with_tls(Some(&c.ca), Some((&c.client, &c.client_key)))
                .expect("test certificates load"),
            None => etcd,
        }
    }

    /// A POST to the gateway as `token`'s user (or nobody), for what ferry's client does not do.
    pub fn post(&self, path: &str, body: serde_json::Value, token: Option<&str>) -> Result<serde_json::Value, String> {
        assert!(self.tls.is_none(), "raw posts are plain http");
        let mut req = ureq::post(&format!("{}/v3/{path}", self.endpoint()));
        if let Some(t) = token {
            req = req.set("Authorization", t);
        }
        match req.send_string(&body.to_string()) {
            Ok(r) => Ok(serde_json::from_str(&r.into_string().unwrap_or_default()).unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => Err(format!("HTTP {code}: {}", r.into_string().unwrap_or_default())),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Turns authentication on: `root` (password `root-pw`) and `ferry` (`password`), whose role
    /// may read and write keys under `/ferry/` and nothing else.
    pub fn enable_auth(&self, password: &str) {
        use base64::Engine as _;
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let ok = |path: &str, body: serde_json::Value| {
            self.post(path, body, None).unwrap_or_else(|e| panic!("{path}: {e}"));
        };
        ok(
            "auth/user/add",
            serde_json::json!({"name": "root", "password": "root-pw"}),
        );
        ok("auth/role/add", serde_json::json!({"name": "root"}));
        ok("auth/user/grant", serde_json::json!({"user": "root", "role": "root"}));
        ok(
            "auth/user/add",
            serde_json::json!({"name": "ferry", "password": password}),
        );
        ok("auth/role/add", serde_json::json!({"name": "ferry"}));
        ok(
            "auth/role/grant",
            serde_json::json!({"name": "ferry", "perm": {"permType": "READWRITE", "key": b("/ferry/"), "range_end": b("/ferry0")}}),
        );
        ok("auth/user/grant", serde_json::json!({"user": "ferry", "role": "ferry"}));
        ok("auth/enable", serde_json::json!({}));
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
