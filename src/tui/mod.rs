//! The operator's console: a full-screen view over the engine (ratatui + crossterm).

use anyhow::Result;

use crate::engine::Engine;

/// Opens the console on the terminal until the operator quits.
pub async fn run(_engine: &Engine) -> Result<()> {
    anyhow::bail!("the console is being built")
}
