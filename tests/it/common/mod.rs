//! Shared helpers for the integration tests (`use crate::common;` in a module of tests/it/).
pub mod btrfs;
pub mod lab;
pub mod openzfs;
pub mod runner;
pub mod sshd;
pub mod zfs;
