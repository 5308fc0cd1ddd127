//! Finding the pair a command names (DEST), with the selector's own error when none or several match.

use anyhow::{anyhow, Result};

use crate::config::Pair;
use crate::engine::{select, Engine};

/// The one pair DEST names.
pub fn one<'a>(engine: &'a Engine, dest: &str) -> Result<&'a Pair> {
    select::select(&engine.config, dest).map_err(|m| anyhow!(m))
}
