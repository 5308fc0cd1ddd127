//! state layer.
