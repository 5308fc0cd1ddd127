//! monitor layer.
