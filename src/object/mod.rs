//! Object-store (S3) replication core: the S3 client, opening a volume from the config, and the
//! sync pass (journaled in `state::object_journal`) that `engine::objects` drives.

pub mod bwlimit;
pub mod carry;
pub mod changes;
pub mod checkpoint;
pub mod client;
pub mod copy;
pub mod creds;
pub mod endpoint;
#[cfg(test)]
pub mod memory;
pub mod open;
pub mod options;
pub mod raw;
pub mod sync;
