//! Volume clusters (`[[cluster]]`): listeners that journal every change seen on a `listen`
//! volume, and updaters that apply each, coalesced and settled, to every `update` volume except
//! the one it came from. The journal in `persist_path` is the only state; `cluster run` works
//! it, `cluster status` reads it.

pub mod journal;
