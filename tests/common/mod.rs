//! Shared helpers for integration tests (`mod common;`).
pub mod lab;
pub mod sshd;
pub mod zfs;
