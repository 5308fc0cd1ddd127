//! Shared helpers for integration tests (`mod common;`).
pub mod sshd;
pub mod zfs;
