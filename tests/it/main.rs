//! The integration tests, one binary: each former `tests/*.rs` is a module here, sharing the
//! helpers below (labs, servers, the run-ferry harness), so the suite links once instead of
//! once a file. `block_scan` (it counts this process's reads) and `block_bench` (run by
//! scripts/bench-block.sh) stay binaries of their own.

mod block_util;
mod common;
mod object_util;

mod adopt;
mod block;
mod block_apply;
mod block_kill;
mod block_proto;
mod btrfs;
mod caps_cache;
mod cluster;
mod cluster_ha;
mod cluster_zfs;
mod config_check;
mod config_fuzz;
mod escapes;
mod exec_cap;
mod faults;
mod fleet;
mod import;
mod layers;
mod lock_race;
mod monitor;
mod names;
mod object_client;
mod object_journal_kill;
mod object_keys;
mod object_pair;
mod object_sync;
mod openzfs;
mod openzfs_adopt;
mod openzfs_bookmarks;
mod openzfs_holds;
mod openzfs_nonroot;
mod openzfs_raw;
mod openzfs_resume;
mod packaging;
mod purge;
mod recursive;
mod replicate;
mod retention;
mod ssh;
mod state_dir;
mod transports;
mod tui;
mod tui_e2e;
mod verify;
mod zfs_errors;
mod zfs_harness;
