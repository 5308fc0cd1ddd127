//! Configuration: the TOML model, its validation, and the units and names it accepts.

mod cluster;
pub mod copycat;
mod error;
mod fields;
pub mod import;
mod keys;
mod load;
mod model;
pub mod names;
mod overlap;
mod pair;
mod read;
mod sites;
mod tree;
pub mod units;

pub use error::{check_key, expand_home, ConfigError, ConfigErrors};
pub use load::{found_by_default, load, locate, parse};
pub use model::*;
pub use read::MAX_CONFIG_BYTES;
