//! ferry: asynchronous replication of storage between sites.
//!
//! The modules follow the layers, each using only those below it:
//! `cli`, `tui` → `engine` → (`monitor`, `driver`, `transport`, `coord`) → `exec` → `ssh` → (`state`, `config`),
//! with `model`, `text` and `safe_file` as leaves every layer may use. `block` and `object` are the
//! cores of the next volume kinds, not wired into the engine yet.

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
