//! ferry: asynchronous replication of storage between sites.
//!
//! The modules follow the layers of DESIGN.md, each using only those below it:
//! `cli`, `tui` → `engine` → (`monitor`, `driver`, `transport`) → `exec` → `ssh` → (`state`, `config`).

pub mod block;
pub mod cli;
pub mod config;
pub mod driver;
pub mod engine;
pub mod exec;
pub mod monitor;
pub mod object;
pub mod ssh;
pub mod state;
pub mod text;
pub mod transport;
pub mod tui;
