//! The one place ferry speaks to etcd: its v3 JSON gateway (`/v3/...`, HTTP POSTs, over TLS for
//! https endpoints), which Debian's etcd-server 3.4 serves on the client port. Leases, a
//! create-if-absent transaction, reads and deletes: what a lease lock needs, nothing more.
//!
//! Calls are blocking with a short timeout; async callers run them on a blocking thread. Each call
//! tries the endpoints in order until one answers, so one etcd member down is not an outage.
//!
//! With a user, each call carries etcd's token in the `Authorization` header; the token is got
//! from `/v3/auth/authenticate` with the password read from its file then (never kept in the
//! client, never in an error), and got again when etcd says it expired.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

/// A failed call, typed so callers branch on what happened rather than on message text.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint answered (each one's error, joined).
    #[error("etcd unreachable: {0}")]
    Unreachable(String),
    /// An endpoint answered with an error (etcd's message and its gRPC status code).
    #[error("etcd at {endpoint}: {message}")]
    Refused {
        endpoint: String,
        message: String,
        code: i64,
    },
    /// The lease is gone (expired or revoked).
    #[error("etcd lease {0:x} expired")]
    LeaseExpired(i64),
    /// etcd refused the user or its password (or has no authentication enabled): etcd's words.
    #[error("etcd at {endpoint}: authentication as user {user:?} refused: {message}")]
    Auth {
        endpoint: String,
        user: String,
        message: String,
    },
    /// The TLS handshake failed (a certificate not signed by the CA, a name that does not match,
    /// a client certificate etcd refused): each endpoint's error, joined.
    #[error("etcd TLS: {0}")]
    Tls(String),
    /// A local file the connection needs (password, CA, client certificate or key) cannot be
    /// used: the file and why, never its content.
    #[error("coordination: {0}")]
    Setup(String),
}

/// A key's value with the revisions and lease etcd keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub value: Vec<u8>,
    pub create_revision: i64,
    /// The revision of its last put: two reads of one key with the same one saw the same put.
    pub mod_revision: i64,
    /// Its lease, 0 for none (a key that outlives every holder).
    pub lease: i64,
}

/// A secret read from a file; `Debug` never shows it.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Who ferry says it is to etcd, and the token etcd gave for it (shared by every clone).
struct Auth {
    user: String,
    password_file: PathBuf,
    token: Mutex<Option<Secret>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("user", &self.user)
            .field("password_file", &self.password_file)
            .field(
                "token",
                &self.token.lock().ok().map(|t| t.as_ref().map(|_| "<redacted>")),
            )
            .finish()
    }
}

/// A password file is a line or two at most.
const PASSWORD_FILE_CAP: u64 = 4096;
/// A PEM file of certificates (a CA bundle) or a key.
const PEM_FILE_CAP: u64 = 1 << 20;

/// The password in `path`: the file's first line (a trailing newline is not part of it).
fn read_password(path: &Path) -> Result<Secret, EtcdError> {
    let bytes = crate::safe_file::read_regular(path, PASSWORD_FILE_CAP)
        .map_err(|e| EtcdError::Setup(format!("password_file {}: {e}", path.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| EtcdError::Setup(format!("password_file {}: not UTF-8 text", path.display())))?;
    let pw = text.lines().next().unwrap_or("").to_string();
    if pw.is_empty() {
        return Err(EtcdError::Setup(format!(
            "password_file {}: empty (the password is its first line)",
            path.display()
        )));
    }
    Ok(Secret(pw))
}

/// What `check` can say about the files `[coordination]` names without asking etcd: each one
/// that cannot be used (why, never its content), and a password file others may read.
pub fn file_problems(coord: &crate::config::CoordConfig) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    if let Some(a) = &coord.auth {
        match read_password(&a.password_file) {
            Err(e) => out.push(e.to_string()),
            Ok(_) => {
                let mode = std::fs::metadata(&a.password_file)
                    .map(|m| m.permissions().mode())
                    .unwrap_or(0);
                if mode & 0o077 != 0 {
                    out.push(format!(
                        "password_file {} is readable or writable by group or others (mode {:04o}): chmod 600 it",
                        a.password_file.display(),
                        mode & 0o7777
                    ));
                }
            }
        }
    }
    if coord.endpoints.iter().any(|e| e.starts_with("https://")) {
        let client = coord.tls.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        if let Err(e) = tls_config(coord.tls.ca_file.as_deref(), client) {
            out.push(e.to_string());
        }
    }
    out
}

fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>, EtcdError> {
    crate::safe_file::read_regular(path, PEM_FILE_CAP)
        .map_err(|e| EtcdError::Setup(format!("{what} {}: {e}", path.display())))
}

/// The TLS settings of a client: the CA to check etcd's certificate against (else the system's
/// roots) and the client certificate and key to show it.
fn tls_config(ca_file: Option<&Path>, client: Option<(&Path, &Path)>) -> Result<Arc<rustls::ClientConfig>, EtcdError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = read_pem("ca_file", path)?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| EtcdError::Setup(format!("ca_file {}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| EtcdError::Setup(format!("ca_file {}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(EtcdError::Setup(format!(
                    "ca_file {}: no PEM certificate in it",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(EtcdError::Setup(
                    "no system CA certificates found for https endpoints: set ca_file".into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EtcdError::Setup(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let pem = read_pem("cert_file", cert_file)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| EtcdError::Setup(format!("cert_file {}: {e}", cert_file.display())))?;
            if certs.is_empty() {
                return Err(EtcdError::Setup(format!(
                    "cert_file {}: no PEM certificate in it",
                    cert_file.display()
                )));
            }
            // the key's parse error says what is wrong with the PEM, never its bytes
            let key = PrivateKeyDer::from_pem_slice(&read_pem("key_file", key_file)?)
                .map_err(|e| EtcdError::Setup(format!("key_file {}: {e}", key_file.display())))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                EtcdError::Setup(format!(
                    "cert_file {} with key_file {}: {e}",
                    cert_file.display(),
                    key_file.display()
                ))
            })?
        }
    };
    Ok(Arc::new(config))
}

/// A TLS failure somewhere in a transport error's causes (a handshake error comes wrapped in I/O).
fn tls_failure(e: &ureq::Transport) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(t) = c.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(t.to_string());
            }
        }
        cause = c.source();
    }
    None
}

/// The outcome of `create`: made (with the store's revision then, a fencing token that grows with
/// every takeover), or already held, with what each compared key holds.
#[derive(Debug)]
pub enum Created {
    Made { revision: i64 },
    Held(Vec<Option<Kv>>),
}

/// A client for a list of endpoints (`http://host:port`, `https://host:port`).
#[derive(Debug, Clone)]
pub struct Etcd {
    endpoints: Vec<String>,
    agent: ureq::Agent,
    timeout: Duration,
    /// The endpoint that answered last, tried first (a dead member costs one timeout, once).
    first: Arc<std::sync::atomic::AtomicUsize>,
    auth: Option<Arc<Auth>>,
}

/// gRPC's NotFound, which etcd answers for a lease that is gone.
const GRPC_NOT_FOUND: i64 = 5;
/// gRPC's Unauthenticated: etcd's "invalid auth token" (expired, or etcd restarted).
const GRPC_UNAUTHENTICATED: i64 = 16;
/// gRPC codes after which another member may do better: DeadlineExceeded, Unavailable (a
/// member cut off from its quorum answers "no leader").
const GRPC_TRY_ANOTHER: [i64; 2] = [4, 14];

/// How long one call may take on one endpoint at most.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

fn num(v: &Value) -> i64 {
    match v {
        // the gateway prints int64 as strings
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

fn kv_of(v: &Value) -> Option<Kv> {
    Some(Kv {
        value: B64.decode(v.get("value").and_then(Value::as_str).unwrap_or("")).ok()?,
        create_revision: num(v.get("create_revision")?),
        mod_revision: v.get("mod_revision").map(num).unwrap_or(0),
        lease: v.get("lease").map(num).unwrap_or(0),
    })
}

/// The response's body as far as it can be read: the gateway ends error bodies with HTTP trailers
/// that ureq cannot parse, after the complete JSON.
fn read_body(resp: ureq::Response) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut r = resp.into_reader().take(1 << 20);
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// etcd's error body: `{"message", "code"}`, or a stream's `{"error": {"message", "grpc_code"}}`.
fn refusal(endpoint: &str, status: u16, text: &str) -> EtcdError {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let inner = v.get("error").filter(|e| e.is_object()).unwrap_or(&v);
    let message = inner
        .get("message")
        .or_else(|| inner.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("HTTP {status}"));
    let code = inner
        .get("code")
        .or_else(|| inner.get("grpc_code"))
        .map(num)
        .unwrap_or(0);
    EtcdError::Refused {
        endpoint: endpoint.to_string(),
        message,
        code,
    }
}

impl Etcd {
    /// A client whose calls each take at most `timeout` on one endpoint (2 s at most).
    pub fn new(endpoints: &[String]) -> Etcd {
        Etcd::with_timeout(endpoints, CALL_TIMEOUT)
    }

    /// A client for a holder of `lease`: a call gives up on a member after a quarter of the
    /// lease, so trying another still leaves time before the holder must stop.
    pub fn for_lease(endpoints: &[String], lease: Duration) -> Etcd {
        Etcd::with_timeout(endpoints, (lease / 4).clamp(Duration::from_millis(250), CALL_TIMEOUT))
    }

    fn with_timeout(endpoints: &[String], timeout: Duration) -> Etcd {
        Etcd {
            endpoints: endpoints.iter().map(|e| e.trim_end_matches('/').to_string()).collect(),
            agent: Etcd::agent(timeout, None),
            timeout,
            first: Default::default(),
            auth: None,
        }
    }

    fn agent(timeout: Duration, tls: Option<Arc<rustls::ClientConfig>>) -> ureq::Agent {
        let mut b = ureq::AgentBuilder::new().timeout(timeout).timeout_connect(timeout);
        if let Some(tls) = tls {
            b = b.tls_config(tls);
        }
        b.build()
    }

    /// The client `[coordination]` describes, for a holder of its lease: TLS files read and
    /// checked now, the password when it first authenticates.
    pub fn connect(coord: &crate::config::CoordConfig) -> Result<Etcd, EtcdError> {
        let mut etcd = Etcd::for_lease(&coord.endpoints, coord.lease);
        if coord.endpoints.iter().any(|e| e.starts_with("https://")) {
            let client = coord.tls.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
            etcd = etcd.with_tls(coord.tls.ca_file.as_deref(), client)?;
        }
        if let Some(a) = &coord.auth {
            etcd = etcd.with_auth(&a.user, &a.password_file);
        }
        Ok(etcd)
    }

    /// This client over TLS: etcd's certificate checked against `ca_file` (else the system's
    /// roots), and `client` (certificate, key) shown to it.
    pub fn with_tls(mut self, ca_file: Option<&Path>, client: Option<(&Path, &Path)>) -> Result<Etcd, EtcdError> {
        self.agent = Etcd::agent(self.timeout, Some(tls_config(ca_file, client)?));
        Ok(self)
    }

    /// This client as etcd's `user`, whose password is the first line of `password_file`.
    pub fn with_auth(mut self, user: &str, password_file: &Path) -> Etcd {
        self.auth = Some(Arc::new(Auth {
            user: user.to_string(),
            password_file: password_file.to_path_buf(),
            token: Mutex::new(None),
        }));
        self
    }

    /// The token to send: the one etcd gave, or a new one (`fresh`: the one we had was refused).
    fn token(&self, auth: &Auth, fresh: bool) -> Result<String, EtcdError> {
        let mut held = auth.token.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(t), false) = (held.as_ref(), fresh) {
            return Ok(t.0.clone());
        }
        *held = None;
        let password = read_password(&auth.password_file)?;
        let body = json!({ "name": auth.user, "password": password.0 });
        let v = self.send("auth/authenticate", &body, None).map_err(|e| match e {
            // every refusal of authenticate is about who we are (wrong password, unknown user,
            // authentication not enabled): etcd's message, never the password
            EtcdError::Refused { endpoint, message, .. } => EtcdError::Auth {
                endpoint,
                user: auth.user.clone(),
                message,
            },
            e => e,
        })?;
        let token = v.get("token").and_then(Value::as_str).unwrap_or("").to_string();
        if token.is_empty() {
            return Err(EtcdError::Auth {
                endpoint: self.endpoints.join(", "),
                user: auth.user.clone(),
                message: "etcd answered without a token".into(),
            });
        }
        *held = Some(Secret(token.clone()));
        Ok(token)
    }

    /// `send` with the token when a user is set, authenticating again once when etcd refuses
    /// the token (it expired, or etcd restarted and forgot it).
    fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let Some(auth) = &self.auth else {
            return self.send(path, body, None);
        };
        let token = self.token(auth, false)?;
        match self.send(path, body, Some(&token)) {
            Err(EtcdError::Refused {
                code: GRPC_UNAUTHENTICATED,
                ..
            }) => {
                let token = self.token(auth, true)?;
                self.send(path, body, Some(&token))
            }
            r => r,
        }
    }

    /// POSTs `body` to `/v3/<path>`: the member that answered last first, then the others, on to
    /// the next one when a member cannot be reached or has no quorum.
    fn send(&self, path: &str, body: &Value, token: Option<&str>) -> Result<Value, EtcdError> {
        use std::sync::atomic::Ordering;
        let mut errs = Vec::new();
        let n = self.endpoints.len();
        let start = self.first.load(Ordering::Relaxed) % n.max(1);
        let mut refused = None;
        let mut tls = false;
        for i in (0..n).map(|k| (start + k) % n) {
            let ep = &self.endpoints[i];
            let url = format!("{ep}/v3/{path}");
            let mut req = self.agent.post(&url);
            if let Some(t) = token {
                req = req.set("Authorization", t);
            }
            let err = match req.send_string(&body.to_string()) {
                Ok(resp) => {
                    self.first.store(i, Ordering::Relaxed);
                    let text = read_body(resp);
                    return serde_json::from_str(&text).map_err(|e| EtcdError::Refused {
                        endpoint: ep.clone(),
                        message: format!("not etcd's JSON gateway ({e})"),
                        code: 0,
                    });
                }
                Err(ureq::Error::Status(status, resp)) => {
                    let e = refusal(ep, status, &read_body(resp));
                    match &e {
                        EtcdError::Refused { code, .. } if GRPC_TRY_ANOTHER.contains(code) || status == 503 => e,
                        _ => {
                            self.first.store(i, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                Err(ureq::Error::Transport(t)) if tls_failure(&t).is_some() => {
                    tls = true;
                    errs.push(format!("{ep}: {}", tls_failure(&t).unwrap_or_default()));
                    continue;
                }
                // ureq names the URL first; the endpoint is named once
                Err(e) => {
                    let text = e.to_string();
                    let text = text.strip_prefix(&format!("{url}: ")).unwrap_or(&text).to_string();
                    EtcdError::Unreachable(format!("{ep}: {text}"))
                }
            };
            match err {
                EtcdError::Unreachable(m) => errs.push(m),
                other => {
                    errs.push(other.to_string());
                    refused = Some(other);
                }
            }
        }
        Err(match (refused, errs.len()) {
            (Some(r), 1) => r,
            _ if tls => EtcdError::Tls(errs.join("; ")),
            _ => EtcdError::Unreachable(errs.join("; ")),
        })
    }

    /// Whether lease `id` is alive in etcd now (0, no lease, never is): a lock key on a lease
    /// that is not alive was not put by a live holder (by hand, or another program).
    pub fn lease_alive(&self, id: i64) -> Result<bool, EtcdError> {
        if id == 0 {
            return Ok(false);
        }
        match self.call("lease/timetolive", &json!({ "ID": id.to_string() })) {
            // an expired or unknown lease: TTL -1 (or NotFound from some versions); a lease in
            // its last second has TTL 0, which the gateway leaves out (proto3's default)
            Ok(v) => Ok(v.get("TTL").map_or(0, num) >= 0),
            Err(EtcdError::Refused {
                code: GRPC_NOT_FOUND, ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes each present key of `keys` only while each is still as read (its `mod_revision`;
    /// 0: absent), all in one transaction; gives whether it did.
    pub fn delete_unchanged(&self, keys: &[(&str, i64)]) -> Result<bool, EtcdError> {
        let compare: Vec<Value> = keys
            .iter()
            .map(|(k, rev)| json!({ "key": b64(k.as_bytes()), "target": "MOD", "mod_revision": rev.to_string() }))
            .collect();
        let success: Vec<Value> = keys
            .iter()
            .filter(|(_, rev)| *rev != 0)
            .map(|(k, _)| json!({ "request_delete_range": { "key": b64(k.as_bytes()) } }))
            .collect();
        let v = self.call("kv/txn", &json!({ "compare": compare, "success": success }))?;
        Ok(v.get("succeeded").and_then(Value::as_bool) == Some(true))
    }

    /// A new lease of `ttl` seconds; gives its id.
    pub fn grant(&self, ttl: u64) -> Result<i64, EtcdError> {
        let v = self.call("lease/grant", &json!({ "TTL": ttl }))?;
        match num(&v["ID"]) {
            0 => Err(EtcdError::Refused {
                endpoint: self.endpoints.join(", "),
                message: "a lease was granted without an ID".into(),
                code: 0,
            }),
            id => Ok(id),
        }
    }

    /// Renews the lease; gives the seconds it now has, or `LeaseExpired`.
    pub fn keepalive(&self, id: i64) -> Result<i64, EtcdError> {
        let v = self.call("lease/keepalive", &json!({ "ID": id.to_string() }))?;
        let ttl = v.get("result").and_then(|r| r.get("TTL")).map(num).unwrap_or(0);
        if ttl <= 0 {
            return Err(EtcdError::LeaseExpired(id));
        }
        Ok(ttl)
    }

    /// Ends the lease now; the keys attached to it go with it.
    pub fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        match self.call("lease/revoke", &json!({ "ID": id.to_string() })) {
            Ok(_) => Ok(()),
            // already gone (gRPC NotFound) is what we wanted
            Err(EtcdError::Refused {
                code: GRPC_NOT_FOUND, ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `create` for a lock whose first `absent` key is put on `lease`: a transaction whose answer
    /// was lost (a timeout, then another member) may have been made all the same, and that key
    /// on our own lease says it was (its revision is every put's).
    pub fn create_leased(
        &self,
        absent: &[&str],
        puts: &[(&str, &[u8], i64)],
        lease: i64,
    ) -> Result<Created, EtcdError> {
        let ours = |kv: Option<Kv>| kv.filter(|kv| kv.lease == lease).map(|kv| kv.create_revision);
        match self.create(absent, puts) {
            Ok(Created::Held(kvs)) => match ours(kvs.first().cloned().flatten()) {
                Some(revision) => Ok(Created::Made { revision }),
                None => Ok(Created::Held(kvs)),
            },
            Err(e) => match absent.first().map(|k| self.get(k).map(ours)) {
                Some(Ok(Some(revision))) => Ok(Created::Made { revision }),
                _ => Err(e),
            },
            ok => ok,
        }
    }

    /// Puts every `(key, value, lease)` in one transaction if none of `absent` exists (lease 0:
    /// the key outlives every lease). Otherwise changes nothing and gives what `absent` holds.
    pub fn create(&self, absent: &[&str], puts: &[(&str, &[u8], i64)]) -> Result<Created, EtcdError> {
        let compare: Vec<Value> = absent
            .iter()
            .map(|k| json!({ "key": b64(k.as_bytes()), "target": "CREATE", "create_revision": "0" }))
            .collect();
        let success: Vec<Value> = puts
            .iter()
            .map(|(k, v, lease)| {
                let mut put = json!({ "key": b64(k.as_bytes()), "value": b64(v) });
                if *lease != 0 {
                    put["lease"] = json!(lease.to_string());
                }
                json!({ "request_put": put })
            })
            .collect();
        let failure: Vec<Value> = absent
            .iter()
            .map(|k| json!({ "request_range": { "key": b64(k.as_bytes()) } }))
            .collect();
        let v = self.call(
            "kv/txn",
            &json!({ "compare": compare, "success": success, "failure": failure }),
        )?;
        if v.get("succeeded").and_then(Value::as_bool) == Some(true) {
            return Ok(Created::Made {
                revision: num(&v["header"]["revision"]),
            });
        }
        let held = v
            .get("responses")
            .and_then(Value::as_array)
            .map(|rs| {
                rs.iter()
                    .map(|r| r.pointer("/response_range/kvs/0").and_then(kv_of))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Created::Held(held))
    }

    /// The key's value, if it exists.
    pub fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let v = self.call("kv/range", &json!({ "key": b64(key.as_bytes()) }))?;
        Ok(v.pointer("/kvs/0").and_then(kv_of))
    }

    /// Every key under `prefix`, with its value.
    pub fn range_prefix(&self, prefix: &str) -> Result<Vec<(String, Kv)>, EtcdError> {
        let mut end = prefix.as_bytes().to_vec();
        // the first key past every key that starts with `prefix`
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let v = self.call(
            "kv/range",
            &json!({ "key": b64(prefix.as_bytes()), "range_end": b64(&end) }),
        )?;
        Ok(v.get("kvs")
            .and_then(Value::as_array)
            .map(|kvs| {
                kvs.iter()
                    .filter_map(|kv| {
                        let key = B64.decode(kv.get("key")?.as_str()?).ok()?;
                        Some((String::from_utf8(key).ok()?, kv_of(kv)?))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Deletes `key` only while it is still the one made at `create_revision` (never a key
    /// someone else made after ours went); gives whether it did.
    pub fn delete_if(&self, key: &str, create_revision: i64) -> Result<bool, EtcdError> {
        self.delete_if_absent(key, create_revision, &[])
    }

    /// `delete_if`, and only while none of `absent` exists (all in one transaction).
    pub fn delete_if_absent(&self, key: &str, create_revision: i64, absent: &[&str]) -> Result<bool, EtcdError> {
        let k = b64(key.as_bytes());
        let mut compare = vec![json!({ "key": k, "target": "CREATE", "create_revision": create_revision.to_string() })];
        compare.extend(
            absent
                .iter()
                .map(|a| json!({ "key": b64(a.as_bytes()), "target": "CREATE", "create_revision": "0" })),
        );
        let v = self.call(
            "kv/txn",
            &json!({
                "compare": compare,
                "success": [{ "request_delete_range": { "key": k } }],
            }),
        )?;
        Ok(v.get("succeeded").and_then(Value::as_bool) == Some(true))
    }
}
