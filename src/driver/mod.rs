//! driver layer.
