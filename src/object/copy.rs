//! Streaming one object from one location to another: content type and user metadata kept (and
//! extra metadata added, as a cluster's replica mark), multipart and parallel when large, every
//! byte through the shared rate limit and counted on a meter.

use futures::TryStreamExt;

use super::client::ClientError;
use super::endpoint::{Endpoint, Upload};
use super::options::SyncOptions;

/// The largest object copied in one request (held in memory) when its key cannot go multipart.
const ONE_REQUEST_MAX: u64 = 256 << 20;

/// Copies `key`; gives the bytes moved and the destination's new ETag where the server says.
pub async fn copy<S: Endpoint, D: Endpoint>(
    src: &S,
    dst: &D,
    key: &str,
    o: &SyncOptions,
    extra: Option<(&str, &str)>,
) -> Result<(u64, Option<String>), ClientError> {
    let (size, mut attrs, mut stream) = src.get_stream(key).await?;
    if let Some((k, v)) = extra {
        attrs.metadata.insert(k.to_string(), v.to_string());
    }
    let limit = o.bwlimit.clone();
    let parts = size >= o.multipart_threshold;
    if parts && !dst.can_multipart(key) && size > ONE_REQUEST_MAX {
        return Err(ClientError::Unrepresentable {
            location: dst.location().to_string(),
            key: key.to_string(),
            reason: "its key cannot be written in parts (a trailing `/`, an empty segment or a control character) and it is over 256 MiB, the most copied in one request",
        });
    }
    let etag = if parts && dst.can_multipart(key) {
        let mut w = dst.multipart(key, &attrs, o.part_size, o.parallel_parts).await?;
        loop {
            let chunk = match stream.try_next().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(err) => {
                    w.abort().await;
                    return Err(err);
                }
            };
            if let Some(l) = &limit {
                l.take(chunk.len()).await;
            }
            o.progress.bytes.add(chunk.len() as u64);
            w.write(&chunk).await?;
        }
        w.finish().await?
    } else {
        let mut buf = Vec::with_capacity(size as usize);
        while let Some(chunk) = stream.try_next().await? {
            if let Some(l) = &limit {
                l.take(chunk.len()).await;
            }
            o.progress.bytes.add(chunk.len() as u64);
            buf.extend_from_slice(&chunk);
        }
        dst.put(key, buf.into(), &attrs).await?
    };
    Ok((size, etag))
}
