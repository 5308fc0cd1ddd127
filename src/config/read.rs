//! Reading the config file's bytes safely: a regular file only, a size cap, UTF-8 checked by line.

use std::path::Path;

/// The largest config ferry reads: ten thousand pairs take about 1 MiB, so this is generous, and it
/// keeps `-c /dev/zero`-like mistakes from eating memory.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The file's bytes, or why they cannot be a config (the message does not repeat the path).
pub fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    use crate::safe_file::{read_regular, FileError};
    read_regular(path, MAX_CONFIG_BYTES).map_err(|e| match e {
        FileError::Missing => format!(
            "cannot read config: {}",
            std::io::Error::from_raw_os_error(libc::ENOENT)
        ),
        FileError::NotRegular(what) => {
            format!("cannot read config: not a regular file ({what}); give a regular file")
        }
        FileError::TooLarge(_) => too_large(),
        FileError::Io(e) => format!("cannot read config: {e}"),
    })
}

fn too_large() -> String {
    format!(
        "cannot read config: larger than {} MiB, which no ferry config is",
        MAX_CONFIG_BYTES >> 20
    )
}

/// A byte that is not UTF-8: its offset in the file and its 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadByte {
    pub offset: usize,
    pub line: usize,
}

/// The text of the config, with the first byte that is not UTF-8 if there is one. Bad bytes are
/// replaced so the rest can still be checked: newlines are kept, so lines stay where they were.
pub fn decode(bytes: Vec<u8>) -> (String, Option<BadByte>) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, None),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let line = 1 + bytes[..offset].iter().filter(|&&b| b == b'\n').count();
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                Some(BadByte { offset, line }),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bytes_are_found_by_line() {
        let line = |b: &[u8]| decode(b.to_vec()).1.map(|b| (b.line, b.offset));
        assert_eq!(line(b"a = 1\n"), None);
        assert_eq!(line(b"a = 1\nb = \"\xff\"\n"), Some((2, 11)));
        assert_eq!(line(b"\xc3"), Some((1, 0)));
        let (text, bad) = decode(b"x\n\ny\n\xe2\x82\nz\n".to_vec());
        assert_eq!(bad.map(|b| b.line), Some(4));
        assert_eq!(text.lines().count(), 5);
    }

    #[test]
    fn only_regular_files_and_not_too_big() {
        assert!(read_capped(Path::new("/dev/zero"))
            .unwrap_err()
            .contains("character device"));
        assert!(read_capped(Path::new("/")).unwrap_err().contains("directory"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        std::fs::File::create(&f)
            .unwrap()
            .set_len(MAX_CONFIG_BYTES + 1)
            .unwrap();
        assert!(read_capped(&f).unwrap_err().contains("larger than 16 MiB"));
        std::fs::write(&f, "a = 1\n").unwrap();
        assert_eq!(read_capped(&f).unwrap(), b"a = 1\n");
    }
}
