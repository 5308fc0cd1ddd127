//! An append-only file of checksummed JSON records, the durable form of ferry's journals (an
//! object pair's status journal, a cluster's change journal).
//!
//! Each line is `<xxh3-64 hex> <json>\n`. An append writes its records in one write and syncs
//! before it returns, so a record a caller was told about survives a crash. On open a torn last
//! line (a crash mid-write) is cut off; a bad line anywhere else is an error naming the file and
//! line. `rewrite` replaces the whole file atomically (temp file, fsync, rename, fsync of the
//! directory), for compaction.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} line {line}: {what}")]
    Corrupt { path: PathBuf, line: usize, what: String },
}

/// The open file, positioned at its end for appends.
pub struct Records {
    path: PathBuf,
    file: File,
    /// Opened by a reader beside the writer (`open_read`): appends are refused, and a torn last
    /// line is the writer's append in progress, not to be cut.
    read_only: bool,
    /// The file's length after this handle's last write: more at the path means another writer.
    known_len: u64,
}

/// One record's line.
pub fn line_for<R: Serialize>(rec: &R) -> String {
    // serializing plain records cannot fail
    let json = serde_json::to_string(rec).unwrap_or_default();
    format!("{:016x} {}\n", xxhash_rust::xxh3::xxh3_64(json.as_bytes()), json)
}

fn parse_line<R: DeserializeOwned>(buf: &[u8]) -> Result<R, String> {
    let text = std::str::from_utf8(buf).map_err(|_| "not UTF-8".to_string())?;
    let text = text.trim_end_matches('\n');
    let (sum, json) = text.split_once(' ').ok_or("no checksum")?;
    let want = u64::from_str_radix(sum, 16).map_err(|_| "bad checksum field".to_string())?;
    if xxhash_rust::xxh3::xxh3_64(json.as_bytes()) != want {
        return Err("checksum mismatch".into());
    }
    serde_json::from_str(json).map_err(|e| format!("bad record: {e}"))
}

impl Records {
    /// Opens (or creates) `path` and hands every good record to `apply` in order, with its line
    /// number; an `Err` from `apply` is reported as damage at that line.
    pub fn open<R: DeserializeOwned>(
        path: &Path,
        apply: impl FnMut(R, usize) -> Result<(), String>,
    ) -> Result<Records, RecordsError> {
        Records::open_with(path, false, apply)
    }

    /// Reads `path` as `open` does, for an observer while the writer may be appending (a status
    /// read): nothing is created or cut, a torn last line ends the replay, appends are refused.
    pub fn open_read<R: DeserializeOwned>(
        path: &Path,
        apply: impl FnMut(R, usize) -> Result<(), String>,
    ) -> Result<Records, RecordsError> {
        Records::open_with(path, true, apply)
    }

    /// `open` (the writer) or `open_read` (an observer), chosen by `read_only`.
    pub fn open_with<R: DeserializeOwned>(
        path: &Path,
        read_only: bool,
        mut apply: impl FnMut(R, usize) -> Result<(), String>,
    ) -> Result<Records, RecordsError> {
        let io = |source| RecordsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = if read_only {
            match OpenOptions::new().read(true).open(path) {
                Ok(f) => f,
                // not written yet: nothing to read
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::open("/dev/null").map_err(io)?,
                Err(e) => return Err(io(e)),
            }
        } else {
            OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(path)
                .map_err(io)?
        };
        let corrupt = |line, what| RecordsError::Corrupt {
            path: path.to_path_buf(),
            line,
            what,
        };
        let mut reader = BufReader::new(&mut file);
        let (mut good_len, mut lineno) = (0u64, 0usize);
        let mut buf = Vec::new();
        let mut torn = false;
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            lineno += 1;
            let complete = buf.last() == Some(&b'\n');
            match parse_line::<R>(&buf) {
                Ok(rec) if complete => {
                    apply(rec, lineno).map_err(|what| corrupt(lineno, what))?;
                    good_len += n as u64;
                }
                Ok(_) => {
                    torn = true;
                    break;
                }
                Err(what) => {
                    // only the last line may be torn by a crash; anything earlier is damage
                    let more = reader
                        .fill_buf()
                        .map_err(io)?
                        .iter()
                        .any(|b| !b.is_ascii_whitespace() && *b != 0);
                    if complete && more {
                        return Err(corrupt(lineno, what));
                    }
                    torn = true;
                    break;
                }
            }
        }
        drop(reader);
        if !read_only && (torn || file.metadata().map_err(io)?.len() != good_len) {
            file.set_len(good_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let known_len = file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(Records {
            path: path.to_path_buf(),
            file,
            read_only,
            known_len,
        })
    }

    fn writable(&self) -> Result<(), RecordsError> {
        if self.read_only {
            return Err(RecordsError::Io {
                path: self.path.clone(),
                source: std::io::Error::other("opened for reading only"),
            });
        }
        Ok(())
    }

    fn io(&self) -> impl Fn(std::io::Error) -> RecordsError + '_ {
        |source| RecordsError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `recs` with one write and one sync; durable on return.
    pub fn append<R: Serialize>(&mut self, recs: &[R]) -> Result<(), RecordsError> {
        if recs.is_empty() {
            return Ok(());
        }
        self.append_lazy(recs)?;
        self.sync()
    }

    /// Appends `recs` with one write and no sync (a later `sync` or `append` makes them durable).
    pub fn append_lazy<R: Serialize>(&mut self, recs: &[R]) -> Result<(), RecordsError> {
        if recs.is_empty() {
            return Ok(());
        }
        self.writable()?;
        let text: String = recs.iter().map(line_for).collect();
        self.file.write_all(text.as_bytes()).map_err(self.io())?;
        self.known_len += text.len() as u64;
        Ok(())
    }

    /// True while nobody else has written the file since this handle's last write: the path is
    /// still the file this handle has open (no one renamed another over it) and it is as long as
    /// this handle left it (no one appended).
    pub fn untouched(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(mine), Ok(there)) => {
                mine.ino() == there.ino() && mine.dev() == there.dev() && there.len() == self.known_len
            }
            _ => false,
        }
    }

    pub fn sync(&mut self) -> Result<(), RecordsError> {
        self.file.sync_data().map_err(self.io())
    }

    /// Replaces the file's content with `recs`, atomically and durably.
    pub fn rewrite<R: Serialize>(&mut self, recs: &[R]) -> Result<(), RecordsError> {
        self.rewrite_if(recs, |_| true).map(|_| ())
    }

    /// `rewrite`, made only if `still` holds once the new content is on disk, just before it
    /// replaces the old (a writer that may have lost its right to write checks it there); gives
    /// whether it replaced the file.
    pub fn rewrite_if<R: Serialize>(
        &mut self,
        recs: &[R],
        still: impl FnOnce(&Records) -> bool,
    ) -> Result<bool, RecordsError> {
        self.writable()?;
        // one temporary name per process: two writers never write into one
        let tmp = self.path.with_extension(format!("compact.{}", std::process::id()));
        let text: String = recs.iter().map(line_for).collect();
        let mut f = File::create(&tmp).map_err(self.io())?;
        f.write_all(text.as_bytes()).map_err(self.io())?;
        f.sync_all().map_err(self.io())?;
        if !still(self) {
            let _ = std::fs::remove_file(&tmp);
            return Ok(false);
        }
        std::fs::rename(&tmp, &self.path).map_err(self.io())?;
        if let Some(dir) = self.path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            File::open(dir).and_then(|d| d.sync_all()).map_err(self.io())?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path).map_err(self.io())?;
        self.known_len = text.len() as u64;
        Ok(true)
    }

    /// Size of the file in bytes.
    pub fn file_len(&self) -> Result<u64, RecordsError> {
        self.file.metadata().map(|m| m.len()).map_err(self.io())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_leaves_the_writers_torn_tail_alone_and_the_writer_cuts_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let mut w = Records::open::<u32>(&p, |_, _| Ok(())).unwrap();
        w.append(&[1u32, 2]).unwrap();
        // an append in progress: half a line
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"0123")
            .unwrap();
        let len = std::fs::metadata(&p).unwrap().len();
        let mut seen = Vec::new();
        let mut r = Records::open_read::<u32>(&p, |v, _| {
            seen.push(v);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), len, "the reader cut the file");
        assert!(r.append(&[3u32]).is_err(), "a reader cannot write");
        let mut n = 0;
        Records::open::<u32>(&p, |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
        assert!(
            std::fs::metadata(&p).unwrap().len() < len,
            "the writer cuts a torn tail"
        );
        // a reader of a journal not written yet reads nothing and creates nothing
        let missing = dir.path().join("none");
        Records::open_read::<u32>(&missing, |_, _| Ok(())).unwrap();
        assert!(!missing.exists());
    }
}
