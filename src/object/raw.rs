//! Signed S3 requests made by hand, for what the `object_store` library cannot say: a listing
//! whose keys it would refuse to parse (one key with an empty segment or a control character
//! failed the whole listing), and objects whose keys its paths cannot name (a trailing `/`, an
//! empty segment, a control character). Requests are signed with the library's own SigV4
//! signer and sent on a client built from the same options, so TLS, timeouts and proxies match.
//!
//! Keys go on the wire byte for byte as S3 stores them: each byte outside the unreserved set
//! percent-encoded, `/` kept. Keys with a `.` or `..` segment cannot be sent this way either (URL
//! parsers, the signer's among them, resolve them away): those stay unrepresentable.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method};
use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::client::{HttpClient, HttpConnector, HttpRequest, HttpResponse, ReqwestConnector};
use object_store::ClientOptions;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

/// What SigV4 leaves unencoded in a query value: the unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// In a path, `/` separates segments and stays as it is.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Longest piece of a server's answer kept in an error (a hostile server's 4 MiB body stays out of
/// journals and logs).
const BODY_CAP: usize = 1024;

/// A failed raw request: the HTTP status when there was one, and the server's words (clipped).
#[derive(Debug, Clone)]
pub struct RawError {
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl RawError {
    fn transport(e: impl std::fmt::Display) -> RawError {
        RawError {
            status: None,
            message: crate::text::clip(&e.to_string(), BODY_CAP).into_owned(),
        }
    }

    pub fn not_found(&self) -> bool {
        self.status == Some(404)
    }
}

/// A listed object, its key as the server stores it (full, prefix included).
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// One page of ListObjectsV2.
#[derive(Debug)]
pub struct Page {
    pub objects: Vec<Listed>,
    /// Keys the page named that could not be read (not UTF-8 once decoded), with why.
    pub unreadable: Vec<String>,
    /// Common prefixes (with a delimiter): how many.
    pub prefixes: usize,
    pub next: Option<String>,
}

/// What a HEAD or GET says of an object besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Requests against one endpoint and bucket.
pub struct Raw {
    http: HttpClient,
    credential: AwsCredential,
    region: String,
    /// `http://host:port/bucket`, no trailing `/`.
    base: String,
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raw").field("base", &self.base).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    contents: Vec<Contents>,
    #[serde(default)]
    common_prefixes: Vec<CommonPrefix>,
    #[serde(default)]
    is_truncated: Option<String>,
    #[serde(default)]
    next_continuation_token: Option<String>,
    #[serde(default)]
    encoding_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CommonPrefix {
    #[allow(dead_code)] // counted, not read
    #[serde(default)]
    prefix: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "ETag")]
    e_tag: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
}

impl Raw {
    pub fn new(
        options: &ClientOptions,
        endpoint: &str,
        region: &str,
        bucket: &str,
        key_id: &str,
        secret: &str,
        token: Option<&str>,
    ) -> Result<Raw, RawError> {
        let http = ReqwestConnector::default()
            .connect(options)
            .map_err(RawError::transport)?;
        Ok(Raw {
            http,
            credential: AwsCredential {
                key_id: key_id.to_string(),
                secret_key: secret.to_string(),
                token: token.map(str::to_string),
            },
            region: region.to_string(),
            base: format!(
                "{}/{}",
                endpoint.trim_end_matches('/'),
                utf8_percent_encode(bucket, UNRESERVED)
            ),
        })
    }

    fn url(&self, key: Option<&str>, query: &[(&str, &str)]) -> String {
        let mut url = self.base.clone();
        if let Some(k) = key {
            url.push('/');
            url.extend(utf8_percent_encode(k, PATH));
        }
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.extend(utf8_percent_encode(k, UNRESERVED));
            url.push('=');
            url.extend(utf8_percent_encode(v, UNRESERVED));
        }
        url
    }

    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<HttpResponse, RawError> {
        let mut req = HttpRequest::new(body.into());
        *req.method_mut() = method;
        *req.uri_mut() = self.url(key, query).parse().map_err(RawError::transport)?;
        *req.headers_mut() = headers;
        AwsAuthorizer::new(&self.credential, "s3", &self.region).authorize(&mut req, None);
        let resp = self.http.execute(req).await.map_err(RawError::transport)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = read_capped(resp).await;
        Err(RawError {
            status: Some(status),
            message: server_message(&text),
        })
    }

    /// One ListObjectsV2 page of keys starting with `prefix`, after continuation `token`. Keys
    /// come as plain XML text first: a server that echoes `encoding-type=url` without encoding
    /// (s3s-fs does) would otherwise turn `a+b` into `a b`. Only a page that cannot be read that
    /// way (a control character, which XML 1.0 cannot carry) is asked for again URL-encoded.
    pub async fn list_page(&self, prefix: &str, token: Option<&str>, delimiter: bool) -> Result<Page, RawError> {
        match self.list_page_as(prefix, token, delimiter, false).await {
            Err(e) if e.status.is_none() || e.status == Some(500) => {
                match self.list_page_as(prefix, token, delimiter, true).await {
                    Ok(page) => Ok(page),
                    // the first answer says more
                    Err(_) => Err(e),
                }
            }
            r => r,
        }
    }

    async fn list_page_as(
        &self,
        prefix: &str,
        token: Option<&str>,
        delimiter: bool,
        url_encoded: bool,
    ) -> Result<Page, RawError> {
        let mut query = vec![("list-type", "2")];
        if url_encoded {
            query.insert(0, ("encoding-type", "url"));
        }
        if delimiter {
            query.insert(0, ("delimiter", "/"));
        }
        if !prefix.is_empty() {
            query.push(("prefix", prefix));
        }
        if let Some(t) = token {
            query.push(("continuation-token", t));
        }
        let resp = self
            .send(Method::GET, None, &query, HeaderMap::new(), Bytes::new())
            .await?;
        let body = resp.into_body().bytes().await.map_err(RawError::transport)?;
        let parsed: ListBucketResult = quick_xml::de::from_reader(body.as_ref()).map_err(|e| RawError {
            status: None,
            message: format!(
                "cannot read the listing: {}",
                crate::text::clip(&e.to_string(), BODY_CAP)
            ),
        })?;
        let encoded = url_encoded && parsed.encoding_type.as_deref() == Some("url");
        let mut page = Page {
            objects: Vec::with_capacity(parsed.contents.len()),
            unreadable: Vec::new(),
            prefixes: parsed.common_prefixes.len(),
            next: None,
        };
        for c in parsed.contents {
            let key = if encoded {
                // form encoding, as AWS answers and botocore reads it: `+` is a space (a `+` of
                // the key itself comes as %2B)
                match percent_encoding::percent_decode_str(&c.key.replace('+', " ")).decode_utf8() {
                    Ok(k) => k.into_owned(),
                    Err(_) => {
                        page.unreadable.push(c.key);
                        continue;
                    }
                }
            } else {
                c.key
            };
            let last_modified = c
                .last_modified
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_default();
            page.objects.push(Listed {
                key,
                size: c.size.unwrap_or(0),
                etag: c.e_tag.filter(|e| !e.is_empty()),
                last_modified,
            });
        }
        let truncated = parsed.is_truncated.as_deref().is_some_and(|t| t.trim() == "true");
        if truncated {
            match parsed.next_continuation_token.filter(|t| !t.is_empty()) {
                Some(t) => page.next = Some(t),
                None => {
                    return Err(RawError {
                        status: None,
                        message: "the listing is truncated but names no continuation token".into(),
                    })
                }
            }
        }
        Ok(page)
    }

    /// HEAD of `key`; `None` when there is no such key.
    pub async fn head(&self, key: &str) -> Result<Option<Head>, RawError> {
        match self
            .send(Method::HEAD, Some(key), &[], HeaderMap::new(), Bytes::new())
            .await
        {
            Ok(resp) => Ok(Some(head_of(resp.headers()))),
            Err(e) if e.not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET of `key`: what it is and its bytes as they arrive.
    pub async fn get(
        &self,
        key: &str,
    ) -> Result<(Head, futures::stream::BoxStream<'static, Result<Bytes, RawError>>), RawError> {
        let resp = self
            .send(Method::GET, Some(key), &[], HeaderMap::new(), Bytes::new())
            .await?;
        let head = head_of(resp.headers());
        let stream = resp.into_body().bytes_stream().map_err(RawError::transport).boxed();
        Ok((head, stream))
    }

    /// PUT of `key` in one request; gives the ETag the server answered.
    pub async fn put(
        &self,
        key: &str,
        data: Bytes,
        content_type: Option<&str>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Option<String>, RawError> {
        let mut headers = HeaderMap::new();
        let bad = |what: &str| RawError {
            status: None,
            message: format!("{what} cannot be sent as an HTTP header"),
        };
        if let Some(ct) = content_type {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_str(ct).map_err(|_| bad("the content type"))?,
            );
        }
        for (k, v) in metadata {
            let name = http::HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes())
                .map_err(|_| bad(&format!("metadata name {k:?}")))?;
            headers.insert(
                name,
                HeaderValue::from_str(v).map_err(|_| bad(&format!("metadata {k:?}")))?,
            );
        }
        let resp = self.send(Method::PUT, Some(key), &[], headers, data).await?;
        Ok(header(resp.headers(), "etag"))
    }

    /// DELETE of `key` (a missing key is not an error: S3 answers 204 either way).
    pub async fn delete(&self, key: &str) -> Result<(), RawError> {
        match self
            .send(Method::DELETE, Some(key), &[], HeaderMap::new(), Bytes::new())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn head_of(h: &HeaderMap) -> Head {
    let mut metadata = BTreeMap::new();
    for (name, value) in h {
        if let (Some(k), Ok(v)) = (name.as_str().strip_prefix("x-amz-meta-"), value.to_str()) {
            metadata.insert(k.to_string(), v.to_string());
        }
    }
    Head {
        size: header(h, "content-length").and_then(|s| s.parse().ok()).unwrap_or(0),
        etag: header(h, "etag").filter(|e| !e.is_empty()),
        last_modified: header(h, "last-modified")
            .and_then(|t| chrono::DateTime::parse_from_rfc2822(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)),
        content_type: header(h, "content-type"),
        metadata,
    }
}

/// At most [`BODY_CAP`] bytes of an error answer, read without taking the rest.
async fn read_capped(resp: HttpResponse) -> String {
    let mut stream = resp.into_body().bytes_stream();
    let mut buf = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        buf.extend_from_slice(&chunk);
        if buf.len() > BODY_CAP {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    crate::text::clip(&text, BODY_CAP).into_owned()
}

/// The S3 error's `<Code>` and `<Message>` when the body has them, else the body itself.
fn server_message(body: &str) -> String {
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{tag}>"))? + start;
        Some(body[start..end].to_string())
    };
    match (field("Code"), field("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ if body.trim().is_empty() => "no error text".into(),
        _ => body.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_byte_for_byte() {
        let raw = Raw::new(
            &ClientOptions::new().with_allow_http(true),
            "http://127.0.0.1:9/",
            "us-east-1",
            "bkt",
            "k",
            "s",
            None,
        )
        .unwrap();
        assert_eq!(
            raw.url(Some("dir/"), &[]),
            "http://127.0.0.1:9/bkt/dir/",
            "a trailing / stays"
        );
        assert_eq!(raw.url(Some("a//b"), &[]), "http://127.0.0.1:9/bkt/a//b");
        assert_eq!(
            raw.url(Some("café 100%+q?x#y~"), &[]),
            "http://127.0.0.1:9/bkt/caf%C3%A9%20100%25%2Bq%3Fx%23y~"
        );
        assert_eq!(raw.url(Some("c\u{1}"), &[]), "http://127.0.0.1:9/bkt/c%01");
        assert_eq!(
            raw.url(None, &[("list-type", "2"), ("prefix", "a b/+")]),
            "http://127.0.0.1:9/bkt?list-type=2&prefix=a%20b%2F%2B"
        );
    }

    #[test]
    fn error_bodies_are_short_and_say_the_code() {
        assert_eq!(
            server_message("<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>"),
            "NoSuchKey: gone"
        );
        assert_eq!(server_message("  "), "no error text");
    }
}
