//! Carrying one change of one key from an origin to a target: the one apply step pairs and
//! clusters share. A put streams the object (`copy`); a delete deletes; a put whose key the
//! origin no longer holds is `Gone` (its delete follows), told apart from a GET that merely
//! answered "not found" for a key a HEAD still finds, which would otherwise drop the key silently.

use super::client::ClientError;
use super::endpoint::Endpoint;
use super::options::SyncOptions;
use crate::state::object_journal::Op;

/// How carrying a change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carried {
    /// Copied: the bytes moved and the target's new ETag where the server says.
    Copied {
        bytes: u64,
        etag: Option<String>,
    },
    Deleted,
    /// A put whose key the origin no longer holds.
    Gone,
}

/// Carries `op` of `key` from `origin` to `target`; `mark` is user metadata added to the copy
/// (a cluster's replica mark).
pub async fn carry<S: Endpoint, D: Endpoint>(
    origin: &S,
    target: &D,
    key: &str,
    op: Op,
    o: &SyncOptions,
    mark: Option<(&str, &str)>,
) -> Result<Carried, ClientError> {
    match op {
        Op::Delete => target.delete(key).await.map(|()| Carried::Deleted),
        Op::Put => match super::copy::copy(origin, target, key, o, mark).await {
            Ok((bytes, etag)) => Ok(Carried::Copied { bytes, etag }),
            Err(ClientError::NotFound { ref location, .. }) if *location == origin.location().to_string() => {
                match origin.stat(key).await? {
                    None => Ok(Carried::Gone),
                    Some(_) => Err(ClientError::Raw {
                        location: location.clone(),
                        key: key.to_string(),
                        op: "get",
                        cause: super::raw::RawError {
                            status: Some(404),
                            message: "the GET answered not found for a key that HEAD finds".into(),
                        },
                    }),
                }
            }
            Err(e) => Err(e),
        },
    }
}
