//! A small S3 client over `object_store` (crate chosen in the commit that added it): list with
//! continuation, get/put keeping content type and user metadata, parallel multipart put, delete.
//! Keys are relative to the location's prefix. `Debug` never shows credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, ObjectStore, PutMultipartOptions, PutOptions,
    PutPayload, RetryConfig, WriteMultipart,
};

use super::creds::Credentials;

/// One S3 endpoint, bucket and optional prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// `http://host:port` or `https://…`.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Without leading or trailing `/`; empty for the whole bucket.
    pub prefix: String,
}

impl Location {
    /// `bucket[/prefix]` as in a pair's `source = "s3a:photos/2026/"`.
    pub fn new(endpoint: &str, region: &str, bucket_and_prefix: &str) -> Location {
        let trimmed = bucket_and_prefix.trim_matches('/');
        let (bucket, prefix) = trimmed.split_once('/').unwrap_or((trimmed, ""));
        Location {
            endpoint: endpoint.to_string(),
            region: region.to_string(),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.endpoint.trim_end_matches('/'),
            self.bucket,
            self.prefix
        )
    }
}

/// A listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Relative to the location's prefix.
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// What a HEAD says of an object: as a listing would, and its attributes.
pub type Stat = (ObjectInfo, ObjectAttrs);

/// What a copy must keep besides the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAttrs {
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`), names without the prefix.
    pub metadata: BTreeMap<String, String>,
}

impl ObjectAttrs {
    fn from_store(a: &Attributes) -> ObjectAttrs {
        let mut out = ObjectAttrs::default();
        for (k, v) in a.iter() {
            match k {
                Attribute::ContentType => out.content_type = Some(v.as_ref().to_string()),
                Attribute::Metadata(name) => {
                    out.metadata.insert(name.to_string(), v.as_ref().to_string());
                }
                _ => {}
            }
        }
        out
    }

    fn to_store(&self) -> Attributes {
        let mut a = Attributes::new();
        if let Some(ct) = &self.content_type {
            a.insert(Attribute::ContentType, ct.clone().into());
        }
        for (k, v) in &self.metadata {
            a.insert(Attribute::Metadata(k.clone().into()), v.clone().into());
        }
        a
    }
}

/// Client errors name the location and key; the S3 library's text never carries the secret.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // the library's error is shown once, in the message (not chained: its own chain repeats it)
    #[error("S3 {location}: cannot configure client: {}", crate::text::clip(&.cause.to_string(), CAUSE_CAP))]
    Setup {
        location: String,
        cause: Box<object_store::Error>,
    },
    #[error("S3 {location}{}: {op}: {}{}", key_part(.key), why(.cause), crate::text::clip(&.cause.to_string(), CAUSE_CAP))]
    Op {
        location: String,
        key: String,
        op: &'static str,
        cause: Box<object_store::Error>,
    },
    #[error("S3 {location} key {key:?}: not found")]
    NotFound { location: String, key: String },
    /// A request made by hand (see `raw`): the server's words, already clipped.
    #[error("S3 {location}{}: {op}: {}{cause}", key_part(.key), why_text(&.cause.message))]
    Raw {
        location: String,
        key: String,
        op: &'static str,
        cause: super::raw::RawError,
    },
    /// A key no request can name (a `.` or `..` segment): listed, never copied.
    #[error("S3 {location} key {key:?}: cannot be replicated: {reason}")]
    Unrepresentable {
        location: String,
        key: String,
        reason: &'static str,
    },
}

/// The longest piece of a library error's text kept (a server's error body is in it).
const CAUSE_CAP: usize = 1024;

fn key_part(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(" key {key:?}")
    }
}

/// What an S3 error code means for the operator, before the server's own words.
fn why(e: &object_store::Error) -> &'static str {
    why_text(&e.to_string())
}

fn why_text(text: &str) -> &'static str {
    if text.contains("NoSuchBucket") {
        "the bucket does not exist: "
    } else if ["SignatureDoesNotMatch", "InvalidAccessKeyId", "NotSignedUp"]
        .iter()
        .any(|c| text.contains(c))
    {
        "the credentials were refused (check the host's credentials file and profile): "
    } else if text.contains("AccessDenied") {
        "access denied: "
    } else {
        ""
    }
}

/// The client for one location.
#[derive(Clone)]
pub struct Client {
    store: Arc<AmazonS3>,
    /// Hand-made requests: the listing, and keys the library's paths cannot name.
    raw: Arc<super::raw::Raw>,
    location: Location,
    access_key_id: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("location", &self.location)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Streams of object bytes as the copy reads them.
pub type ByteStream = BoxStream<'static, Result<Bytes, ClientError>>;

impl Client {
    /// Builds a client; requests retry briefly (a dead endpoint fails in seconds, not minutes,
    /// so the status journal records FAILED and its own backoff takes over).
    pub fn new(location: &Location, creds: &Credentials) -> Result<Client, ClientError> {
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
        };
        let options = ClientOptions::new()
            .with_allow_http(location.endpoint.starts_with("http://"))
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(300));
        let raw = super::raw::Raw::new(
            &options,
            &location.endpoint,
            &location.region,
            &location.bucket,
            &creds.access_key_id,
            creds.secret(),
            creds.token(),
        )
        .map_err(|cause| ClientError::Raw {
            location: location.to_string(),
            key: String::new(),
            op: "configure client",
            cause,
        })?;
        let mut b = AmazonS3Builder::new()
            .with_endpoint(&location.endpoint)
            .with_region(&location.region)
            .with_bucket_name(&location.bucket)
            .with_access_key_id(&creds.access_key_id)
            .with_secret_access_key(creds.secret())
            .with_virtual_hosted_style_request(false)
            .with_client_options(options.clone())
            .with_retry(retry);
        if let Some(t) = creds.token() {
            b = b.with_token(t);
        }
        let store = b.build().map_err(|source| ClientError::Setup {
            location: location.to_string(),
            cause: Box::new(source),
        })?;
        Ok(Client {
            store: Arc::new(store),
            raw: Arc::new(raw),
            location: location.clone(),
            access_key_id: creds.access_key_id.clone(),
        })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The key as the bucket stores it: the location's prefix, then `key`.
    fn full(&self, key: &str) -> String {
        if self.location.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{}", self.location.prefix, key)
        }
    }

    /// How requests for `key` are made. The library's paths are used where they name the key
    /// exactly (`Path::from` would percent-encode `café.txt` into another key, so a key is only
    /// ever parsed, never rebuilt); anything else goes by hand-made request, and a key no request
    /// can name is an error saying so.
    fn route(&self, key: &str) -> Result<Route, ClientError> {
        let full = self.full(key);
        if let Some(reason) = unrepresentable(key) {
            return Err(ClientError::Unrepresentable {
                location: self.location.to_string(),
                key: key.to_string(),
                reason,
            });
        }
        match StorePath::parse(&full) {
            Ok(p) if p.as_ref() == full => Ok(Route::Library(p)),
            _ => Ok(Route::Raw(full)),
        }
    }

    /// Whether `key` can be written in parts (the library's multipart upload names it).
    pub fn can_multipart(&self, key: &str) -> bool {
        matches!(self.route(key), Ok(Route::Library(_)))
    }

    fn err(&self, key: &str, op: &'static str, source: object_store::Error) -> ClientError {
        match source {
            object_store::Error::NotFound { .. } => ClientError::NotFound {
                location: self.location.to_string(),
                key: key.to_string(),
            },
            source => ClientError::Op {
                location: self.location.to_string(),
                key: key.to_string(),
                op,
                cause: Box::new(source),
            },
        }
    }

    fn raw_err(&self, key: &str, op: &'static str, cause: super::raw::RawError) -> ClientError {
        if cause.not_found() {
            return ClientError::NotFound {
                location: self.location.to_string(),
                key: key.to_string(),
            };
        }
        ClientError::Raw {
            location: self.location.to_string(),
            key: key.to_string(),
            op,
            cause,
        }
    }

    /// Every object under the prefix, sorted by key, each key exactly as the bucket stores it.
    /// The listing is read page by page by hand: each key is taken on its own, so one odd key
    /// cannot fail the whole listing (the library refused every listing holding `x/../y`).
    pub async fn list(&self) -> Result<Listing, ClientError> {
        let strip = if self.location.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.location.prefix)
        };
        let mut listing = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .raw
                .list_page(&strip, token.as_deref(), false)
                .await
                .map_err(|e| self.raw_err("", "list", e))?;
            for o in page.objects {
                match o.key.strip_prefix(&strip) {
                    // the prefix's own folder marker (`photos/` for prefix `photos`) is not under it
                    Some("") => {}
                    Some(key) => listing.objects.push(ObjectInfo {
                        key: key.to_string(),
                        size: o.size,
                        etag: o.etag,
                        last_modified: o.last_modified,
                    }),
                    None => listing
                        .odd
                        .push(format!("{:?}: listed under the prefix but not in it", o.key)),
                }
            }
            listing.odd.extend(
                page.unreadable
                    .into_iter()
                    .map(|k| format!("{k:?}: not UTF-8 once decoded")),
            );
            match page.next {
                Some(t) if token.as_ref() != Some(&t) => token = Some(t),
                Some(_) => {
                    return Err(self.raw_err(
                        "",
                        "list",
                        super::raw::RawError {
                            status: None,
                            message: "the server repeated a continuation token".into(),
                        },
                    ))
                }
                None => break,
            }
        }
        listing.objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listing)
    }

    /// One listing request at the prefix's top level (no continuation): the bucket answers with
    /// these keys; how many objects and common prefixes it showed.
    pub async fn probe(&self) -> Result<usize, ClientError> {
        let prefix = if self.location.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.location.prefix)
        };
        let page = self
            .raw
            .list_page(&prefix, None, true)
            .await
            .map_err(|e| self.raw_err("", "list", e))?;
        Ok(page.objects.len() + page.prefixes + page.unreadable.len())
    }

    /// Content type and user metadata of `key` (a HEAD request).
    pub async fn attrs(&self, key: &str) -> Result<ObjectAttrs, ClientError> {
        Ok(self.head(key).await?.1)
    }

    /// ETag (some servers, s3s-fs among them, list without ETags) and attributes of `key`.
    pub async fn head(&self, key: &str) -> Result<(Option<String>, ObjectAttrs), ClientError> {
        match self.stat(key).await? {
            Some((info, attrs)) => Ok((info.etag, attrs)),
            None => Err(ClientError::NotFound {
                location: self.location.to_string(),
                key: key.to_string(),
            }),
        }
    }

    /// What `key` is now (size, last-modified, ETag as HEAD gives them) and its attributes;
    /// `None` when there is no such key.
    pub async fn stat(&self, key: &str) -> Result<Option<Stat>, ClientError> {
        let opts = GetOptions {
            head: true,
            ..Default::default()
        };
        let path = match self.route(key)? {
            Route::Library(p) => p,
            Route::Raw(full) => {
                let head = self.raw.head(&full).await.map_err(|e| self.raw_err(key, "head", e))?;
                return Ok(head.map(|h| self.stat_of(key, h)));
            }
        };
        match self.store.get_opts(&path, opts).await {
            Ok(r) => Ok(Some((
                ObjectInfo {
                    key: key.to_string(),
                    size: r.meta.size,
                    etag: r.meta.e_tag.clone(),
                    last_modified: r.meta.last_modified,
                },
                ObjectAttrs::from_store(&r.attributes),
            ))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(key, "head", e)),
        }
    }

    fn stat_of(&self, key: &str, h: super::raw::Head) -> Stat {
        (
            ObjectInfo {
                key: key.to_string(),
                size: h.size,
                etag: h.etag,
                last_modified: h.last_modified.unwrap_or_default(),
            },
            ObjectAttrs {
                content_type: h.content_type,
                metadata: h.metadata,
            },
        )
    }

    /// Opens `key` for streaming: its size, attributes and bytes.
    pub async fn get_stream(&self, key: &str) -> Result<(u64, ObjectAttrs, ByteStream), ClientError> {
        let path = match self.route(key)? {
            Route::Library(p) => p,
            Route::Raw(full) => {
                let (head, stream) = self.raw.get(&full).await.map_err(|e| self.raw_err(key, "get", e))?;
                let (me, k) = (self.clone(), key.to_string());
                let stream = stream.map_err(move |e| me.raw_err(&k, "get", e)).boxed();
                let (info, attrs) = self.stat_of(key, head);
                return Ok((info.size, attrs, stream));
            }
        };
        let r = self
            .store
            .get_opts(&path, GetOptions::default())
            .await
            .map_err(|e| self.err(key, "get", e))?;
        let (size, attrs) = (r.meta.size, ObjectAttrs::from_store(&r.attributes));
        let (me, k) = (self.clone(), key.to_string());
        let stream = r.into_stream().map_err(move |e| me.err(&k, "get", e)).boxed();
        Ok((size, attrs, stream))
    }

    /// The whole of `key` with its attributes.
    pub async fn get(&self, key: &str) -> Result<(ObjectAttrs, Bytes), ClientError> {
        let (_, attrs, stream) = self.get_stream(key).await?;
        let parts: Vec<Bytes> = stream.try_collect().await?;
        Ok((attrs, parts.concat().into()))
    }

    /// Writes `key` in one request; gives the new ETag when the server returns one.
    pub async fn put(&self, key: &str, data: Bytes, attrs: &ObjectAttrs) -> Result<Option<String>, ClientError> {
        let path = match self.route(key)? {
            Route::Library(p) => p,
            Route::Raw(full) => {
                return self
                    .raw
                    .put(&full, data, attrs.content_type.as_deref(), &attrs.metadata)
                    .await
                    .map_err(|e| self.raw_err(key, "put", e))
            }
        };
        let opts = PutOptions {
            attributes: attrs.to_store(),
            ..Default::default()
        };
        let r = self
            .store
            .put_opts(&path, PutPayload::from(data), opts)
            .await
            .map_err(|e| self.err(key, "put", e))?;
        Ok(r.e_tag)
    }

    /// Starts a multipart upload of `key`: parts of `part_size` bytes, up to `parallel` in flight.
    /// Only for keys the library names (`can_multipart`).
    pub async fn multipart(
        &self,
        key: &str,
        attrs: &ObjectAttrs,
        part_size: usize,
        parallel: usize,
    ) -> Result<MultipartWriter, ClientError> {
        let Route::Library(path) = self.route(key)? else {
            return Err(ClientError::Unrepresentable {
                location: self.location.to_string(),
                key: key.to_string(),
                reason:
                    "a key the S3 library cannot name is written in one request, and this object is too large for one",
            });
        };
        let opts = PutMultipartOptions {
            attributes: attrs.to_store(),
            ..Default::default()
        };
        let upload = self
            .store
            .put_multipart_opts(&path, opts)
            .await
            .map_err(|e| self.err(key, "multipart", e))?;
        let writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        Ok(MultipartWriter {
            writer,
            parallel: parallel.max(1),
            client: self.clone(),
            key: key.to_string(),
        })
    }

    /// Deletes `key`; deleting a missing key is not an error (S3 semantics).
    pub async fn delete(&self, key: &str) -> Result<(), ClientError> {
        let path = match self.route(key)? {
            Route::Library(p) => p,
            Route::Raw(full) => return self.raw.delete(&full).await.map_err(|e| self.raw_err(key, "delete", e)),
        };
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, "delete", e)),
        }
    }
}

/// A bucket's listing: its objects, and what it named that cannot be a key here, with why.
#[derive(Debug, Default, Clone)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    /// Each: the name as the server wrote it, and why it is not listed.
    pub odd: Vec<String>,
}

/// How requests for one key are made.
enum Route {
    /// The library's path names the key exactly.
    Library(StorePath),
    /// Only a hand-made request names it (a trailing `/`, an empty segment, a control
    /// character); the full key.
    Raw(String),
}

/// Why no request can name `key`, if none can.
fn unrepresentable(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("an empty key")
    } else if key.split('/').any(|s| s == "." || s == "..") {
        Some("a `.` or `..` segment, which every URL resolves away")
    } else {
        None
    }
}

/// An open multipart upload; parts go out in parallel as data is written.
pub struct MultipartWriter {
    writer: WriteMultipart,
    parallel: usize,
    client: Client,
    key: String,
}

impl MultipartWriter {
    /// Buffers `data`, sending full parts; waits while `parallel` parts are in flight.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ClientError> {
        let parallel = self.parallel;
        let r = self.writer.wait_for_capacity(parallel).await;
        r.map_err(|e| self.client.err(&self.key, "upload part", e))?;
        self.writer.write(data);
        Ok(())
    }

    /// Sends the last part and completes the upload; gives the new ETag.
    pub async fn finish(self) -> Result<Option<String>, ClientError> {
        let (client, key) = (self.client, self.key);
        let r = self
            .writer
            .finish()
            .await
            .map_err(|e| client.err(&key, "complete multipart", e))?;
        Ok(r.e_tag)
    }

    /// Abandons the upload (best effort: the server may keep parts until its own cleanup).
    pub async fn abort(self) {
        let _ = self.writer.abort().await;
    }
}
