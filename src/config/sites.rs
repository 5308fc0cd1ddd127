//! The hosts a config's `[hosts]` table names, as the pairs and clusters read their ends against.

use std::collections::{BTreeMap, HashMap};

use super::model::{HostConfig, ObjectHost};

/// The hosts a config names: SSH hosts (with the line each is on, for messages) and object-store
/// endpoints.
#[derive(Default)]
pub(super) struct Sites {
    pub(super) hosts: BTreeMap<String, HostConfig>,
    pub(super) object_hosts: BTreeMap<String, ObjectHost>,
    pub(super) host_lines: HashMap<String, usize>,
}
