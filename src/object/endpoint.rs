//! The object endpoint: what the replication core asks of a bucket (list, HEAD, stream a GET,
//! put, multipart, delete). The S3 `Client` is the endpoint pairs and clusters run on; the core
//! (`changes`, `carry`, `copy`, `sync`) is generic over it, so the next kinds of source (a
//! versioned bucket, a change feed) are written once for both, and the core's decisions are unit
//! tested on an in-memory bucket (`memory`, tests only).

use std::future::Future;

use bytes::Bytes;

use super::client::{ByteStream, Client, ClientError, Listing, Location, MultipartWriter, ObjectAttrs, Stat};

/// A bucket (or a prefix of one) that objects are replicated from or to.
pub trait Endpoint: Sync {
    /// An open multipart upload.
    type Upload: Upload;

    /// Where the endpoint is: what errors and reports name.
    fn location(&self) -> &Location;

    /// Whether `key` can be written in parts.
    fn can_multipart(&self, key: &str) -> bool;

    /// Every object under the location, sorted by key, and the names that cannot be keys here.
    fn list(&self) -> impl Future<Output = Result<Listing, ClientError>> + Send;

    /// What `key` is now and its attributes; `None` when there is no such key.
    fn stat(&self, key: &str) -> impl Future<Output = Result<Option<Stat>, ClientError>> + Send;

    /// Opens `key` for streaming: its size, attributes and bytes.
    fn get_stream(&self, key: &str)
        -> impl Future<Output = Result<(u64, ObjectAttrs, ByteStream), ClientError>> + Send;

    /// Writes `key` in one request; gives the new ETag when the server returns one.
    fn put(
        &self,
        key: &str,
        data: Bytes,
        attrs: &ObjectAttrs,
    ) -> impl Future<Output = Result<Option<String>, ClientError>> + Send;

    /// Starts a multipart upload of `key` (only where `can_multipart`).
    fn multipart(
        &self,
        key: &str,
        attrs: &ObjectAttrs,
        part_size: usize,
        parallel: usize,
    ) -> impl Future<Output = Result<Self::Upload, ClientError>> + Send;

    /// Deletes `key`; a missing key is not an error (S3 semantics).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// An open multipart upload: parts go out as data is written.
pub trait Upload: Send {
    fn write(&mut self, data: &[u8]) -> impl Future<Output = Result<(), ClientError>> + Send;
    /// Completes the upload; gives the new ETag.
    fn finish(self) -> impl Future<Output = Result<Option<String>, ClientError>> + Send;
    /// Abandons the upload (best effort).
    fn abort(self) -> impl Future<Output = ()> + Send;
}

impl Endpoint for Client {
    type Upload = MultipartWriter;

    fn location(&self) -> &Location {
        Client::location(self)
    }

    fn can_multipart(&self, key: &str) -> bool {
        Client::can_multipart(self, key)
    }

    async fn list(&self) -> Result<Listing, ClientError> {
        Client::list(self).await
    }

    async fn stat(&self, key: &str) -> Result<Option<Stat>, ClientError> {
        Client::stat(self, key).await
    }

    async fn get_stream(&self, key: &str) -> Result<(u64, ObjectAttrs, ByteStream), ClientError> {
        Client::get_stream(self, key).await
    }

    async fn put(&self, key: &str, data: Bytes, attrs: &ObjectAttrs) -> Result<Option<String>, ClientError> {
        Client::put(self, key, data, attrs).await
    }

    async fn multipart(
        &self,
        key: &str,
        attrs: &ObjectAttrs,
        part_size: usize,
        parallel: usize,
    ) -> Result<MultipartWriter, ClientError> {
        Client::multipart(self, key, attrs, part_size, parallel).await
    }

    async fn delete(&self, key: &str) -> Result<(), ClientError> {
        Client::delete(self, key).await
    }
}

impl Upload for MultipartWriter {
    async fn write(&mut self, data: &[u8]) -> Result<(), ClientError> {
        MultipartWriter::write(self, data).await
    }

    async fn finish(self) -> Result<Option<String>, ClientError> {
        MultipartWriter::finish(self).await
    }

    async fn abort(self) {
        MultipartWriter::abort(self).await
    }
}

/// ETag and attributes of `key`; a missing key is `NotFound` naming the endpoint.
pub async fn head<E: Endpoint>(e: &E, key: &str) -> Result<(Option<String>, ObjectAttrs), ClientError> {
    match e.stat(key).await? {
        Some((info, attrs)) => Ok((info.etag, attrs)),
        None => Err(ClientError::NotFound {
            location: e.location().to_string(),
            key: key.to_string(),
        }),
    }
}
