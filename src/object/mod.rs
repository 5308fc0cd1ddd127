//! Object-store (S3) replication core: client wrapper, per-object status journal, sync pass.
//! Self-contained: the engine, CLI and console wire it in later (issue 11).

pub mod bwlimit;
pub mod checkpoint;
pub mod client;
pub mod copy;
pub mod creds;
pub mod options;
pub mod raw;
pub mod records;
pub mod status;
pub mod sync;
