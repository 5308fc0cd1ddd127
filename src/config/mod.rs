//! Configuration: the TOML model, its validation, and the units and names it accepts.

pub mod copycat;
mod fields;
pub mod import;
mod load;
mod model;
pub mod names;
mod overlap;
mod read;
mod tree;
pub mod units;

pub use load::{check_key, expand_home, found_by_default, load, locate, parse, ConfigError, ConfigErrors};
pub use model::*;
pub use read::MAX_CONFIG_BYTES;
