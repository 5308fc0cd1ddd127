//! Reading the small files ssh needs (private keys, known_hosts) without hanging on a FIFO or
//! eating memory on /dev/zero: only regular files, and only up to a size cap (see `safe_file`).

pub use crate::safe_file::{read_regular, FileError};

/// Largest private key file read (an RSA 16384-bit key in OpenSSH format is about 13 KiB).
pub const KEY_FILE_CAP: u64 = 1024 * 1024;
/// Largest known_hosts file read (about 100,000 entries).
pub const KNOWN_HOSTS_CAP: u64 = 16 * 1024 * 1024;
