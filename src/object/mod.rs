//! Object-store (S3) replication core: the S3 client, opening a volume from the config, the
//! per-object status journal and the sync pass that `engine::objects` and the cluster engine drive.

pub mod bwlimit;
pub mod checkpoint;
pub mod client;
pub mod copy;
pub mod creds;
pub mod open;
pub mod options;
pub mod raw;
pub mod records;
pub mod status;
pub mod sync;
