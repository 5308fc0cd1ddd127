//! Configuration: the TOML model, its validation, and the units and names it accepts.

mod load;
mod model;
pub mod import;
pub mod names;
pub mod units;

pub use load::{check_key, expand_home, load, locate, parse, ConfigError};
pub use model::*;
