//! ferry: asynchronous replication of storage between sites.
//!
//! The modules follow the layers, each using only those below it (`tests/it/layers.rs` checks
//! it, and that no two files import each other in a circle): `cli`, `tui` → `engine` →
//! (`monitor`, `driver`, `transport`, `coord`, `block`, `object`) → `exec` → `ssh` → (`state`,
//! `config`), with `model`, `text` and `safe_file` as leaves every layer may use. The engine
//! reaches each kind of pair through one replicator (`engine::kind`): snapshot kinds through
//! their `driver`, object buckets through `object`. `block` and `object` are the replication
//! cores of block volumes and buckets; `state` holds every durable record. `cli` may open the
//! console (`tui`); the console reaches coordination only through the engine. A map for the next
//! person: docs/architecture.md.

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
