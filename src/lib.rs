//! ferry: asynchronous replication of storage between sites.
//!
//! The modules follow the layers, each using only those below it (`tests/layers.rs` checks it):
//! `cli`, `tui` → `engine` → (`monitor`, `driver`, `transport`, `coord`, `block`, `object`) →
//! `exec` → `ssh` → (`state`, `config`), with `model`, `text` and `safe_file` as leaves every
//! layer may use. `block` and `object` are the replication cores of block volumes and object
//! buckets (the peers' protocol and apply; the S3 client, journal and passes) that their
//! drivers and the engine drive. `cli` may open the console (`tui`); the console reaches
//! coordination only through the engine.

pub mod block;
pub mod cli;
pub mod config;
pub mod coord;
pub mod driver;
pub mod engine;
pub mod exec;
pub mod model;
pub mod monitor;
pub mod object;
pub mod safe_file;
pub mod ssh;
pub mod state;
pub mod text;
pub mod transport;
pub mod tui;
