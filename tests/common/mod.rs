//! Shared helpers for integration tests (`mod common;`).
pub mod btrfs;
pub mod lab;
pub mod openzfs;
pub mod runner;
pub mod sshd;
pub mod zfs;
