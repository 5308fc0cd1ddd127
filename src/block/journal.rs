//! The destination's journal file: a header naming the checkpoint it applies on, chunk records
//! each with its own checksum, and a commit record (the seal) naming the manifest it leads to.
//!
//! Layout (integers little-endian). Header: magic `FERRYJNL` (8) | version u16 | algo u8 | 0 |
//! chunk size u32 | new size u64 | base manifest id (32) | check (16). Chunk record: tag 1 |
//! index u64 | length u32 | digest (32) | check (16) | data. Zero-run record (version 2): tag 3 |
//! first index u64 | count u64 | last length u32 | check (16), and no data: `count` chunks of
//! zeros, each of the chunk size but the last, which is `last length` long. Commit record: tag 2
//! | records u64 | next manifest id (32) | check (16). A check is the first 16 bytes of BLAKE3 of
//! the fields before it; a chunk's data is checked against its digest (the manifest's algorithm).
//! Zeros are journaled as runs so a sparse or zeroed source costs 37 bytes per run, not its size,
//! and the apply punches them as holes instead of writing them.

use super::{check_chunk_size, Digest, HashAlgo, MAX_CHUNK};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FERRYJNL";
/// Written; version 1 (no zero runs) is still read, so an apply cut before an upgrade finishes.
const VERSION: u16 = 2;
const HEADER_LEN: usize = 8 + 2 + 1 + 1 + 4 + 8 + 32 + 16;
const TAG_CHUNK: u8 = 1;
const TAG_COMMIT: u8 = 2;
const TAG_ZEROS: u8 = 3;
const CHUNK_HEAD: usize = 1 + 8 + 4 + 32;
const COMMIT_LEN: usize = 1 + 8 + 32 + 16;
const ZEROS_HEAD: usize = 1 + 8 + 8 + 4;
/// Bytes one data chunk record takes in the journal besides its data.
pub const CHUNK_RECORD: u64 = (CHUNK_HEAD + 16) as u64;
/// Bytes one zero-run record takes in the journal.
pub const ZEROS_RECORD: u64 = (ZEROS_HEAD + 16) as u64;

/// Errors of the journal and of applying it.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Manifest(#[from] super::ManifestError),
    #[error("{path}: not a ferry journal or its header is damaged")]
    BadHeader { path: PathBuf },
    #[error("{path}: the source shrank from {old} to {new} bytes; ferry does not shrink a replica (initialize the pair again to start over)")]
    Shrink { path: PathBuf, old: u64, new: u64 },
    #[error("{path}: the block device holds {have} bytes, the source needs {need}; give the pair a device at least as large as its source")]
    TargetTooSmall { path: PathBuf, have: u64, need: u64 },
    #[error("{path}: has {size} bytes but no checkpoint; refusing to overwrite a file ferry did not make")]
    TargetNotEmpty { path: PathBuf, size: u64 },
    #[error("{path}: a journal is left from an interrupted apply; run recovery first")]
    Pending { path: PathBuf },
    #[error("{path}: sealed journal names manifest {want} but neither the next nor the checkpoint manifest is it; the replica needs a repair")]
    Inconsistent { path: PathBuf, want: String },
    #[error("chunk {index} does not fit: {len} bytes at chunk size {chunk} in {size} bytes")]
    ChunkOutOfRange {
        index: u64,
        len: usize,
        chunk: u32,
        size: u64,
    },
    #[error("journaled chunk {index} no longer matches the manifest being committed; resend it")]
    StaleChunk { index: u64 },
    #[error("{path}: the apply plan changed under an open journal: {what}")]
    PlanMismatch { path: PathBuf, what: &'static str },
}

/// What a journal's header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub algo: HashAlgo,
    pub chunk_size: u32,
    pub new_size: u64,
    pub base_id: [u8; 32],
}

/// One journaled chunk: where its data lies in the journal file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub index: u64,
    pub digest: Digest,
    pub offset: u64,
    pub len: u32,
}

/// `count` consecutive chunks of zeros from `first`: full chunks but the last, `last_len` long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZeroRun {
    pub first: u64,
    pub count: u64,
    pub last_len: u32,
}

impl ZeroRun {
    /// The byte range the run covers at chunk size `chunk`.
    pub fn span(&self, chunk: u32) -> (u64, u64) {
        let at = self.first * u64::from(chunk);
        (at, (self.count - 1) * u64::from(chunk) + u64::from(self.last_len))
    }

    /// Whether a zero chunk `index` of `len` bytes extends this run.
    pub fn extends(&self, index: u64, len: u32, chunk: u32) -> bool {
        index == self.first + self.count && self.last_len == chunk && len > 0
    }
}

/// One journal entry, in the order written (a later entry for a chunk wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Chunk(Record),
    Zeros(ZeroRun),
}

/// A journal as read back: its header, its valid records, whether it was sealed and the byte
/// length of its valid prefix (a torn tail beyond it is ignored).
#[derive(Clone, Debug)]
pub struct Contents {
    pub header: Header,
    pub records: Vec<Entry>,
    pub sealed: Option<[u8; 32]>,
    pub valid_len: u64,
}

impl Contents {
    /// The chunk indexes the journal already holds, with their digests (latest record wins).
    pub fn held(&self) -> BTreeMap<u64, Digest> {
        let chunk = self.header.chunk_size;
        let full = zero_digest(self.header.algo, chunk);
        let mut held = BTreeMap::new();
        for e in &self.records {
            match e {
                Entry::Chunk(r) => {
                    held.insert(r.index, r.digest);
                }
                Entry::Zeros(z) => {
                    for i in z.first..z.first + z.count - 1 {
                        held.insert(i, full);
                    }
                    let last = if z.last_len == chunk {
                        full
                    } else {
                        zero_digest(self.header.algo, z.last_len)
                    };
                    held.insert(z.first + z.count - 1, last);
                }
            }
        }
        held
    }

    /// How many chunks the journal's entries cover (a zero run counts each of its chunks).
    pub fn chunks(&self) -> u64 {
        self.records
            .iter()
            .map(|e| match e {
                Entry::Chunk(_) => 1,
                Entry::Zeros(z) => z.count,
            })
            .sum()
    }
}

/// The digest of `len` zero bytes.
pub fn zero_digest(algo: HashAlgo, len: u32) -> Digest {
    algo.hash(&vec![0u8; len as usize])
}

/// Whether `data` is all zeros (16 bytes at a time; a data chunk usually fails at once).
pub fn is_zero(data: &[u8]) -> bool {
    let mut words = data.chunks_exact(16);
    words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().unwrap_or([1; 16])) == 0)
        && words.remainder().iter().all(|b| *b == 0)
}

fn check16(bytes: &[u8]) -> [u8; 16] {
    let mut c = [0u8; 16];
    c.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    c
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Appends records to a journal file.
pub struct Writer {
    path: PathBuf,
    file: BufWriter<File>,
    header: Header,
    records: u64,
}

impl Writer {
    /// Creates a new journal (the caller makes sure none exists) and syncs its header.
    pub fn create(path: &Path, header: Header) -> Result<Writer, JournalError> {
        check_chunk_size(header.chunk_size)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io(path))?;
        let mut b = Vec::with_capacity(HEADER_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.push(header.algo.code());
        b.push(0);
        b.extend_from_slice(&header.chunk_size.to_le_bytes());
        b.extend_from_slice(&header.new_size.to_le_bytes());
        b.extend_from_slice(&header.base_id);
        let c = check16(&b);
        b.extend_from_slice(&c);
        let mut w = Writer {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(1 << 20, file),
            header,
            records: 0,
        };
        w.file.write_all(&b).map_err(io(path))?;
        w.sync()?;
        Ok(w)
    }

    /// Reopens an unsealed journal for appending after its valid prefix (a torn tail is cut).
    pub fn resume(path: &Path, contents: &Contents) -> Result<Writer, JournalError> {
        let mut file = OpenOptions::new().write(true).open(path).map_err(io(path))?;
        file.set_len(contents.valid_len).map_err(io(path))?;
        file.seek(SeekFrom::Start(contents.valid_len)).map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        Ok(Writer {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(1 << 20, file),
            header: contents.header.clone(),
            records: contents.records.len() as u64,
        })
    }

    /// The header this journal was created with.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Appends one chunk record.
    pub fn append(&mut self, index: u64, data: &[u8], digest: &Digest) -> Result<(), JournalError> {
        let mut head = [0u8; CHUNK_HEAD + 16];
        head[0] = TAG_CHUNK;
        head[1..9].copy_from_slice(&index.to_le_bytes());
        head[9..13].copy_from_slice(&(data.len() as u32).to_le_bytes());
        head[13..45].copy_from_slice(&digest.0);
        let c = check16(&head[..CHUNK_HEAD]);
        head[CHUNK_HEAD..].copy_from_slice(&c);
        self.file.write_all(&head).map_err(io(&self.path))?;
        self.file.write_all(data).map_err(io(&self.path))?;
        self.records += 1;
        Ok(())
    }

    /// Appends one zero-run record (no data).
    pub fn append_zeros(&mut self, run: &ZeroRun) -> Result<(), JournalError> {
        let mut b = [0u8; ZEROS_HEAD + 16];
        b[0] = TAG_ZEROS;
        b[1..9].copy_from_slice(&run.first.to_le_bytes());
        b[9..17].copy_from_slice(&run.count.to_le_bytes());
        b[17..21].copy_from_slice(&run.last_len.to_le_bytes());
        let c = check16(&b[..ZEROS_HEAD]);
        b[ZEROS_HEAD..].copy_from_slice(&c);
        self.file.write_all(&b).map_err(io(&self.path))?;
        self.records += 1;
        Ok(())
    }

    /// Flushes and fsyncs what was appended.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.file.flush().map_err(io(&self.path))?;
        self.file.get_ref().sync_all().map_err(io(&self.path))
    }

    /// Seals the journal: syncs the records, then appends and syncs the commit record naming
    /// the manifest the target will match once the journal is applied.
    pub fn seal(mut self, next_id: &[u8; 32]) -> Result<(), JournalError> {
        self.sync()?;
        let mut b = Vec::with_capacity(COMMIT_LEN);
        b.push(TAG_COMMIT);
        b.extend_from_slice(&self.records.to_le_bytes());
        b.extend_from_slice(next_id);
        let c = check16(&b);
        b.extend_from_slice(&c);
        self.file.write_all(&b).map_err(io(&self.path))?;
        self.sync()
    }
}

/// Reads a journal: `Ok(None)` when its header is torn or damaged (it holds nothing usable).
pub fn read(path: &Path) -> Result<Option<Contents>, JournalError> {
    let mut file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let mut r = std::io::BufReader::with_capacity(1 << 20, &mut file);
    let mut h = [0u8; HEADER_LEN];
    if len < HEADER_LEN as u64 || r.read_exact(&mut h).is_err() {
        return Ok(None);
    }
    if &h[..8] != MAGIC
        || !(1..=VERSION).contains(&u16::from_le_bytes([h[8], h[9]]))
        || check16(&h[..HEADER_LEN - 16]) != h[HEADER_LEN - 16..]
    {
        return Ok(None);
    }
    let Some(algo) = HashAlgo::from_code(h[10]) else {
        return Ok(None);
    };
    let chunk_size = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    if check_chunk_size(chunk_size).is_err() {
        return Ok(None);
    }
    let mut base_id = [0u8; 32];
    base_id.copy_from_slice(&h[24..56]);
    let header = Header {
        algo,
        chunk_size,
        new_size: u64::from_le_bytes(h[16..24].try_into().unwrap_or_default()),
        base_id,
    };
    let mut records = Vec::new();
    let mut pos = HEADER_LEN as u64;
    let mut sealed = None;
    let mut data = vec![0u8; chunk_size as usize];
    loop {
        let mut tag = [0u8; 1];
        if r.read_exact(&mut tag).is_err() {
            break;
        }
        match tag[0] {
            TAG_CHUNK => {
                let mut head = [0u8; CHUNK_HEAD + 16];
                head[0] = TAG_CHUNK;
                if r.read_exact(&mut head[1..]).is_err() || check16(&head[..CHUNK_HEAD]) != head[CHUNK_HEAD..] {
                    break;
                }
                let index = u64::from_le_bytes(head[1..9].try_into().unwrap_or_default());
                let dlen = u32::from_le_bytes(head[9..13].try_into().unwrap_or_default());
                if dlen == 0 || dlen > chunk_size.min(MAX_CHUNK) || r.read_exact(&mut data[..dlen as usize]).is_err() {
                    break;
                }
                let mut digest = Digest::default();
                digest.0.copy_from_slice(&head[13..45]);
                if algo.hash(&data[..dlen as usize]) != digest {
                    break;
                }
                let offset = pos + CHUNK_RECORD;
                records.push(Entry::Chunk(Record {
                    index,
                    digest,
                    offset,
                    len: dlen,
                }));
                pos = offset + u64::from(dlen);
            }
            TAG_ZEROS => {
                let mut b = [0u8; ZEROS_HEAD + 16];
                b[0] = TAG_ZEROS;
                if r.read_exact(&mut b[1..]).is_err() || check16(&b[..ZEROS_HEAD]) != b[ZEROS_HEAD..] {
                    break;
                }
                let run = ZeroRun {
                    first: u64::from_le_bytes(b[1..9].try_into().unwrap_or_default()),
                    count: u64::from_le_bytes(b[9..17].try_into().unwrap_or_default()),
                    last_len: u32::from_le_bytes(b[17..21].try_into().unwrap_or_default()),
                };
                if run.count == 0
                    || run.last_len == 0
                    || run.last_len > chunk_size
                    || run.first.checked_add(run.count).is_none()
                {
                    break;
                }
                records.push(Entry::Zeros(run));
                pos += ZEROS_RECORD;
            }
            TAG_COMMIT => {
                let mut b = [0u8; COMMIT_LEN];
                b[0] = TAG_COMMIT;
                if r.read_exact(&mut b[1..]).is_err() || check16(&b[..COMMIT_LEN - 16]) != b[COMMIT_LEN - 16..] {
                    break;
                }
                let count = u64::from_le_bytes(b[1..9].try_into().unwrap_or_default());
                if count == records.len() as u64 {
                    let mut id = [0u8; 32];
                    id.copy_from_slice(&b[9..41]);
                    sealed = Some(id);
                    pos += COMMIT_LEN as u64;
                }
                break;
            }
            _ => break,
        }
    }
    Ok(Some(Contents {
        header,
        records,
        sealed,
        valid_len: pos,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            algo: HashAlgo::Blake3,
            chunk_size: 4096,
            new_size: 3 * 4096,
            base_id: [9; 32],
        }
    }

    fn fill(w: &mut Writer) {
        for i in 0..3u64 {
            let data = vec![i as u8 + 1; 4096];
            w.append(i, &data, &HashAlgo::Blake3.hash(&data)).unwrap();
        }
    }

    #[test]
    fn sealed_journal_reads_back_every_record_and_the_seal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut w = Writer::create(&path, header()).unwrap();
        fill(&mut w);
        w.seal(&[5; 32]).unwrap();
        let c = read(&path).unwrap().unwrap();
        assert_eq!(c.header, header());
        assert_eq!(c.records.len(), 3);
        assert_eq!(c.sealed, Some([5; 32]));
        assert_eq!(c.valid_len, std::fs::metadata(&path).unwrap().len());
        assert_eq!(c.held().keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(
            Writer::create(&path, header()).is_err(),
            "create must never clobber a journal"
        );
    }

    #[test]
    fn zero_runs_take_no_data_and_read_back_as_held_zero_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut w = Writer::create(&path, header()).unwrap();
        let data = vec![7u8; 4096];
        w.append(0, &data, &HashAlgo::Blake3.hash(&data)).unwrap();
        w.append_zeros(&ZeroRun {
            first: 1,
            count: 1000,
            last_len: 100,
        })
        .unwrap();
        // a later zero run over chunk 0 wins over its data
        w.append_zeros(&ZeroRun {
            first: 0,
            count: 1,
            last_len: 4096,
        })
        .unwrap();
        w.seal(&[2; 32]).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(
            len,
            HEADER_LEN as u64 + CHUNK_RECORD + 4096 + 2 * ZEROS_RECORD + COMMIT_LEN as u64
        );
        let c = read(&path).unwrap().unwrap();
        assert_eq!((c.records.len(), c.chunks(), c.sealed), (3, 1002, Some([2; 32])));
        let held = c.held();
        assert_eq!(held.len(), 1001);
        assert_eq!(held[&0], zero_digest(HashAlgo::Blake3, 4096));
        assert_eq!(held[&999], zero_digest(HashAlgo::Blake3, 4096));
        assert_eq!(held[&1000], zero_digest(HashAlgo::Blake3, 100));
        assert_eq!(
            ZeroRun {
                first: 1,
                count: 1000,
                last_len: 100
            }
            .span(4096),
            (4096, 999 * 4096 + 100)
        );
        assert!(is_zero(&[0u8; 4097]) && !is_zero(&[0, 0, 0, 1]) && is_zero(&[]));
        let mut late = vec![0u8; 4096];
        late[4095] = 1;
        assert!(!is_zero(&late));
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_and_the_prefix_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut w = Writer::create(&path, header()).unwrap();
        fill(&mut w);
        w.sync().unwrap();
        drop(w);
        let full = std::fs::read(&path).unwrap();
        // Cut inside the third record's data: two records survive, unsealed.
        std::fs::write(&path, &full[..full.len() - 100]).unwrap();
        let c = read(&path).unwrap().unwrap();
        assert_eq!((c.records.len(), c.sealed), (2, None));
        // A flipped data byte in the second record: only the first survives.
        let mut bad = full.clone();
        let second_data = HEADER_LEN + (CHUNK_HEAD + 16) * 2 + 4096 + 10;
        bad[second_data] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().records.len(), 1);
        // Resume after the valid prefix, then seal: the journal is whole again.
        std::fs::write(&path, &full[..full.len() - 100]).unwrap();
        let c = read(&path).unwrap().unwrap();
        let mut w = Writer::resume(&path, &c).unwrap();
        let data = vec![3u8; 4096];
        w.append(2, &data, &HashAlgo::Blake3.hash(&data)).unwrap();
        w.seal(&[1; 32]).unwrap();
        let c = read(&path).unwrap().unwrap();
        assert_eq!((c.records.len(), c.sealed), (3, Some([1; 32])));
        // A damaged header means nothing in the file can be trusted.
        let mut bad = full;
        bad[20] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(read(&path).unwrap().is_none());
    }
}
