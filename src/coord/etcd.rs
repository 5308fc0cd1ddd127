//! The one place ferry speaks to etcd: its v3 JSON gateway (`/v3/...`, plain HTTP POSTs), which
//! Debian's etcd-server 3.4 serves on the client port. Leases, a create-if-absent transaction,
//! reads and deletes: what a lease lock needs, nothing more.
//!
//! Calls are blocking with a short timeout; async callers run them on a blocking thread. Each call
//! tries the endpoints in order until one answers, so one etcd member down is not an outage.

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
}

/// A key's value with the revisions and lease etcd keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub lease: i64,
}

/// The outcome of `create`: made (with the store's revision then, a fencing token that grows with
/// every takeover), or already held, with what each compared key holds.
#[derive(Debug)]
pub enum Created {
    Made { revision: i64 },
    Held(Vec<Option<Kv>>),
}

/// A client for a list of endpoints (`http://host:port`).
#[derive(Debug, Clone)]
pub struct Etcd {
    endpoints: Vec<String>,
    agent: ureq::Agent,
    /// The endpoint that answered last, tried first (a dead member costs one timeout, once).
    first: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// gRPC's NotFound, which etcd answers for a lease that is gone.
const GRPC_NOT_FOUND: i64 = 5;
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
        let agent = ureq::AgentBuilder::new()
            .timeout(timeout)
            .timeout_connect(timeout)
            .build();
        Etcd {
            endpoints: endpoints.iter().map(|e| e.trim_end_matches('/').to_string()).collect(),
            agent,
            first: Default::default(),
        }
    }

    /// POSTs `body` to `/v3/<path>`: the member that answered last first, then the others, on to
    /// the next one when a member cannot be reached or has no quorum.
    fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        use std::sync::atomic::Ordering;
        let mut errs = Vec::new();
        let n = self.endpoints.len();
        let start = self.first.load(Ordering::Relaxed) % n.max(1);
        let mut refused = None;
        for i in (0..n).map(|k| (start + k) % n) {
            let ep = &self.endpoints[i];
            let url = format!("{ep}/v3/{path}");
            let err = match self.agent.post(&url).send_string(&body.to_string()) {
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
            _ => EtcdError::Unreachable(errs.join("; ")),
        })
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
