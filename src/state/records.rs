//! An append-only file of checksummed JSON records, the durable form of ferry's journals (an
//! object pair's status journal, a cluster's change journal).
//!
//! Each line is `<xxh3-64 hex> <json>\n`. An append writes its records in one write and syncs
//! before it returns, so a record a caller was told about survives a crash. On open a torn last
//! line (a crash mid-write) is cut off; a bad line anywhere else is an error naming the file and
//! line. A complete last line (ending in its newline) that fails its checksum is not a torn
//! append but damage: the writer keeps a copy of the file beside it (`<name>.damaged.<unix
//! time>.<random>`), reports it in `warnings` (and on stderr), and drops that line; damage
//! before good lines stays an error. `rewrite` replaces the whole file atomically (temp file, fsync, rename, fsync of the
//! directory), for compaction.

use std::fs::File;
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
    /// What opening found and survived (a damaged last line dropped, where its copy is).
    warnings: Vec<String>,
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

/// How a journal is opened: by its one writer, or by an observer reading beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Creates the file if needed, cuts a torn last line, appends.
    Write,
    /// Creates and cuts nothing; a torn last line is the writer's append in progress.
    Read,
}

/// What a journal rebuilds in memory from its records, in file order.
pub trait Replay {
    type Record: DeserializeOwned;
    /// The view of an empty journal.
    fn start() -> Self;
    /// Applies one record (read at `line`); an `Err` is damage at that line.
    fn apply(&mut self, rec: Self::Record, line: usize) -> Result<(), String>;
}

/// A journal over a record file: every journal opens the same two ways.
pub trait Journaled: Sized {
    type Error;
    /// Opens the journal at `path` for `access`, replaying it.
    fn open_as(path: &Path, access: Access) -> Result<Self, Self::Error>;
    /// Opens (or creates) the journal, replaying it; a torn last line is cut off.
    fn open(path: &Path) -> Result<Self, Self::Error> {
        Self::open_as(path, Access::Write)
    }
    /// Reads the journal beside a writer that may be appending (status, the console): nothing
    /// is created or cut; writing through it is refused.
    fn open_read(path: &Path) -> Result<Self, Self::Error> {
        Self::open_as(path, Access::Read)
    }
}

impl Records {
    /// Opens `path` for `access` and replays it into a fresh `V`.
    pub fn replay<V: Replay>(path: &Path, access: Access) -> Result<(Records, V), RecordsError> {
        let mut view = V::start();
        let records = Records::open_with(path, access, |rec, line| view.apply(rec, line))?;
        Ok((records, view))
    }

    /// Opens (or creates) `path` and hands every good record to `apply` in order, with its line
    /// number; an `Err` from `apply` is reported as damage at that line.
    pub fn open<R: DeserializeOwned>(
        path: &Path,
        apply: impl FnMut(R, usize) -> Result<(), String>,
    ) -> Result<Records, RecordsError> {
        Records::open_with(path, Access::Write, apply)
    }

    /// Reads `path` as `open` does, for an observer while the writer may be appending (a status
    /// read): nothing is created or cut, a torn last line ends the replay, appends are refused.
    pub fn open_read<R: DeserializeOwned>(
        path: &Path,
        apply: impl FnMut(R, usize) -> Result<(), String>,
    ) -> Result<Records, RecordsError> {
        Records::open_with(path, Access::Read, apply)
    }

    /// `open` (the writer) or `open_read` (an observer), chosen by `access`.
    pub fn open_with<R: DeserializeOwned>(
        path: &Path,
        access: Access,
        mut apply: impl FnMut(R, usize) -> Result<(), String>,
    ) -> Result<Records, RecordsError> {
        let read_only = access == Access::Read;
        let io = |source| RecordsError::Io {
            path: path.to_path_buf(),
            source,
        };
        // no-follow, regular files only: a symlink or FIFO planted at the journal's name is
        // refused, never written through or blocked on
        let mut file = if read_only {
            match super::files::open_regular(path) {
                Ok(f) => f,
                // not written yet: nothing to read
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::open("/dev/null").map_err(io)?,
                Err(e) => return Err(io(e)),
            }
        } else {
            // the writer trusts the journal's directory with its compactions and copies
            let dir = path.parent().unwrap_or(Path::new("."));
            super::files::ensure_trusted_dir(dir, "journal directory").map_err(io)?;
            super::files::open_read_append(path).map_err(io)?
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
        let mut warnings = Vec::new();
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
                    if complete {
                        // a whole line that fails its checksum was written whole and damaged
                        // later: keep the evidence before cutting it. Dropping it is safe because
                        // every record is idempotent to redo (a change journaled again, a state
                        // the next pass or worker recomputes); damage before good lines is not.
                        let what = format!("line {lineno}: {what}");
                        if read_only {
                            warnings.push(format!("{} {what} (damaged last line, not read)", path.display()));
                        } else {
                            let bytes = std::fs::read(path).map_err(io)?;
                            let unix = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map(|d| d.as_secs())
                                .unwrap_or(0);
                            let copy =
                                super::files::write_copy(path, &format!("damaged.{unix}"), &bytes).map_err(io)?;
                            let w = format!(
                                "{} {what}: damaged last line dropped (its change is redone); the file as found is kept at {}",
                                path.display(),
                                copy.display()
                            );
                            // stderr as last resort: a caller that logs `warnings` says it again
                            eprintln!("warning: {w}");
                            warnings.push(w);
                        }
                    }
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
            warnings,
        })
    }

    /// What opening found and survived, for the caller's log (a damaged last line dropped).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
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
        let text: String = recs.iter().map(line_for).collect();
        // the state layer's writer: a fresh unpredictable temp name, create-new, no-follow
        let mut still = Some(still);
        let replaced = super::files::write_atomic_if(&self.path, text.as_bytes(), true, || {
            still.take().is_some_and(|f| f(self))
        })
        .map_err(self.io())?;
        if !replaced {
            return Ok(false);
        }
        self.file = super::files::open_read_append(&self.path).map_err(self.io())?;
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

#[cfg(test)]
mod safety_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn compaction_and_open_never_write_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let p = dir.path().join("status.journal");
        // the old fixed temp name, planted before the compaction
        let fixed = p.with_extension(format!("compact.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &fixed).unwrap();
        let mut w = Records::open::<u32>(&p, |_, _| Ok(())).unwrap();
        w.append(&[1u32]).unwrap();
        w.rewrite(&[2u32]).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        let mut seen = Vec::new();
        Records::open_read::<u32>(&p, |v, _| {
            seen.push(v);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![2]);
        // nothing left behind but the journal, the planted link and the victim
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
        // a symlink at the journal's own name is refused, not followed
        let j2 = dir.path().join("other.journal");
        std::os::unix::fs::symlink(&victim, &j2).unwrap();
        let e = Records::open::<u32>(&j2, |_, _| Ok(())).err().unwrap().to_string();
        assert!(e.contains("is a symlink"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn a_journal_dir_others_can_write_or_a_symlinked_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pair");
        std::fs::create_dir(&d).unwrap();
        for mode in [0o777, 0o775, 0o1777] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = Records::open::<u32>(&d.join("j"), |_, _| Ok(()))
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&d.display().to_string()) && e.contains("writable by"), "{e}");
            assert!(!d.join("j").exists());
        }
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = Records::open::<u32>(&link.join("j"), |_, _| Ok(()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is a symlink"), "{e}");
        Records::open::<u32>(&d.join("j"), |_, _| Ok(())).unwrap();
    }

    fn three(p: &Path) -> Vec<u8> {
        let mut w = Records::open::<u32>(p, |_, _| Ok(())).unwrap();
        w.append(&[1u32, 2, 3]).unwrap();
        drop(w);
        std::fs::read(p).unwrap()
    }

    fn replay(p: &Path) -> Result<(Vec<u32>, Vec<String>), RecordsError> {
        let mut seen = Vec::new();
        let r = Records::open::<u32>(p, |v, _| {
            seen.push(v);
            Ok(())
        })?;
        Ok((seen, r.warnings().to_vec()))
    }

    #[test]
    fn a_complete_last_line_failing_its_checksum_is_damage_kept_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let mut bytes = three(&p);
        let last = bytes.len() - 2; // inside the last record's JSON, newline kept
        bytes[last] = b'9';
        std::fs::write(&p, &bytes).unwrap();
        let (seen, warnings) = replay(&p).unwrap();
        assert_eq!(seen, vec![1, 2], "the records before it are intact");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("line 3") && warnings[0].contains("damaged"),
            "{warnings:?}"
        );
        let copies: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|q| q.file_name().unwrap().to_string_lossy().starts_with("j.damaged."))
            .collect();
        assert_eq!(copies.len(), 1, "one copy kept beside it");
        assert_eq!(
            std::fs::read(&copies[0]).unwrap(),
            bytes,
            "the copy is the file as found"
        );
        assert!(warnings[0].contains(&*copies[0].to_string_lossy()), "{warnings:?}");
        // the writer goes on: the file now ends after record 2
        assert_eq!(replay(&p).unwrap(), (vec![1, 2], vec![]));
    }

    #[test]
    fn damage_before_good_lines_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let mut bytes = three(&p);
        let second = bytes.iter().position(|b| *b == b'\n').unwrap() + 3;
        bytes[second] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        let err = replay(&p).expect_err("mid-file damage is an error").to_string();
        assert!(err.contains("line 2") && err.contains(&*p.to_string_lossy()), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "nothing cut");
    }

    #[test]
    fn a_torn_last_line_without_its_newline_is_cut_silently() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let bytes = three(&p);
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        let (seen, warnings) = replay(&p).unwrap();
        assert_eq!(seen, vec![1, 2]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no copy for a torn append"
        );
    }
}
