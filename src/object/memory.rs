//! An in-memory bucket implementing `Endpoint`, for unit tests of the replication core's
//! decisions (what a pass copies, deletes, skips, journals). Anything that crosses the network
//! is tested on real S3 servers (s3s-fs, Ceph RGW) in `tests/it`; this only stands in where the
//! question is the core's logic, and it can fail a key on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt;

use super::client::{ByteStream, ClientError, Listing, Location, ObjectAttrs, ObjectInfo, Stat};
use super::endpoint::{Endpoint, Upload};
use super::raw::RawError;

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    attrs: ObjectAttrs,
    modified_ms: i64,
    etag: String,
}

/// A bucket in memory; every write gets a later last-modified than the one before.
pub struct Memory {
    location: Location,
    objects: Mutex<BTreeMap<String, Object>>,
    clock: AtomicI64,
    /// Keys whose writes fail (as a server error would).
    pub failing: Mutex<BTreeSet<String>>,
    /// Keys whose GET answers "not found" while HEAD still finds them.
    pub lost_get: Mutex<BTreeSet<String>>,
    /// Keys removed just before their GET (deleted between listing and copy).
    pub vanish_on_get: Mutex<BTreeSet<String>>,
    /// Requests made, by kind ("list", "stat", "get", "put", "delete").
    pub calls: Mutex<BTreeMap<&'static str, usize>>,
}

impl Memory {
    pub fn new(bucket: &str) -> Memory {
        Memory {
            location: Location::new("memory://", "", bucket),
            objects: Mutex::new(BTreeMap::new()),
            clock: AtomicI64::new(1_700_000_000_000),
            failing: Mutex::default(),
            lost_get: Mutex::default(),
            vanish_on_get: Mutex::default(),
            calls: Mutex::default(),
        }
    }

    /// Writes `key` directly (as another client of the bucket would).
    pub fn write(&self, key: &str, data: &[u8]) {
        self.store(key, Bytes::copy_from_slice(data), ObjectAttrs::default());
    }

    pub fn remove(&self, key: &str) {
        self.objects.lock().unwrap().remove(key);
    }

    pub fn read(&self, key: &str) -> Option<(Bytes, ObjectAttrs)> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .map(|o| (o.data.clone(), o.attrs.clone()))
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }

    pub fn calls(&self, kind: &str) -> usize {
        self.calls.lock().unwrap().get(kind).copied().unwrap_or(0)
    }

    fn count(&self, kind: &'static str) {
        *self.calls.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn store(&self, key: &str, data: Bytes, attrs: ObjectAttrs) -> String {
        let ms = self.clock.fetch_add(1000, Ordering::Relaxed);
        let etag = format!("\"{:016x}\"", fnv(&data));
        self.objects.lock().unwrap().insert(
            key.to_string(),
            Object {
                data,
                attrs,
                modified_ms: ms,
                etag: etag.clone(),
            },
        );
        etag
    }

    fn info(key: &str, o: &Object) -> ObjectInfo {
        ObjectInfo {
            key: key.to_string(),
            size: o.data.len() as u64,
            etag: Some(o.etag.clone()),
            last_modified: chrono::DateTime::from_timestamp_millis(o.modified_ms).unwrap_or_default(),
        }
    }

    fn refuse(&self, key: &str, op: &'static str) -> Result<(), ClientError> {
        if self.failing.lock().unwrap().contains(key) {
            return Err(ClientError::Raw {
                location: self.location.to_string(),
                key: key.to_string(),
                op,
                cause: RawError {
                    status: Some(503),
                    message: "SlowDown (injected)".into(),
                },
            });
        }
        Ok(())
    }

    fn not_found(&self, key: &str) -> ClientError {
        ClientError::NotFound {
            location: self.location.to_string(),
            key: key.to_string(),
        }
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

/// The in-memory bucket writes every object in one request: it never opens an upload.
pub struct NoUpload;

impl Upload for NoUpload {
    async fn write(&mut self, _data: &[u8]) -> Result<(), ClientError> {
        Ok(())
    }

    async fn finish(self) -> Result<Option<String>, ClientError> {
        Ok(None)
    }

    async fn abort(self) {}
}

impl Endpoint for Memory {
    type Upload = NoUpload;

    fn location(&self) -> &Location {
        &self.location
    }

    fn can_multipart(&self, _key: &str) -> bool {
        false
    }

    async fn list(&self) -> Result<Listing, ClientError> {
        self.count("list");
        let objects = self.objects.lock().unwrap();
        Ok(Listing {
            objects: objects.iter().map(|(k, o)| Memory::info(k, o)).collect(),
            odd: Vec::new(),
        })
    }

    async fn stat(&self, key: &str) -> Result<Option<Stat>, ClientError> {
        self.count("stat");
        let objects = self.objects.lock().unwrap();
        Ok(objects.get(key).map(|o| (Memory::info(key, o), o.attrs.clone())))
    }

    async fn get_stream(&self, key: &str) -> Result<(u64, ObjectAttrs, ByteStream), ClientError> {
        self.count("get");
        if self.vanish_on_get.lock().unwrap().contains(key) {
            self.remove(key);
        }
        if self.lost_get.lock().unwrap().contains(key) {
            return Err(self.not_found(key));
        }
        let o = self.objects.lock().unwrap().get(key).cloned();
        let o = o.ok_or_else(|| self.not_found(key))?;
        let stream = futures::stream::iter([Ok(o.data.clone())]).boxed();
        Ok((o.data.len() as u64, o.attrs, stream))
    }

    async fn put(&self, key: &str, data: Bytes, attrs: &ObjectAttrs) -> Result<Option<String>, ClientError> {
        self.count("put");
        self.refuse(key, "put")?;
        Ok(Some(self.store(key, data, attrs.clone())))
    }

    async fn multipart(
        &self,
        key: &str,
        _attrs: &ObjectAttrs,
        _part_size: usize,
        _parallel: usize,
    ) -> Result<NoUpload, ClientError> {
        Err(ClientError::Unrepresentable {
            location: self.location.to_string(),
            key: key.to_string(),
            reason: "the in-memory bucket writes in one request",
        })
    }

    async fn delete(&self, key: &str) -> Result<(), ClientError> {
        self.count("delete");
        self.refuse(key, "delete")?;
        self.remove(key);
        Ok(())
    }
}
