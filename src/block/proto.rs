//! The block peer protocol: length-prefixed frames with a type byte, spoken over any tokio
//! AsyncRead/AsyncWrite (a peer ferry's stdin/stdout over SSH, as rsync and borg do). A version
//! handshake comes first; every length is capped before anything is allocated, so a hostile peer
//! can't make us allocate more than one frame.
//!
//! Frame: length u32 big-endian (of type + payload) | type u8 | payload. Integers in payloads are
//! big-endian; strings are a u16 length then UTF-8.

use super::{check_chunk_size, chunk_count, Digest, HashAlgo, Manifest, MAX_CHUNK};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version this build speaks; peers must match exactly.
pub const PROTOCOL_VERSION: u16 = 1;
/// The largest frame accepted: one full chunk plus its fields.
pub const MAX_FRAME: u32 = MAX_CHUNK + 64;
/// The longest string field (paths, error messages, software names).
pub const MAX_STRING: usize = 4096;
/// Digests per manifest part frame (at most 2 MiB of BLAKE3 digests).
pub const DIGESTS_PER_PART: usize = 65536;

const T_HELLO: u8 = 0x01;
const T_MANIFEST_REQUEST: u8 = 0x02;
const T_MANIFEST_HEADER: u8 = 0x03;
const T_MANIFEST_PART: u8 = 0x04;
const T_CHUNK: u8 = 0x05;
const T_COMMIT: u8 = 0x06;
const T_OK: u8 = 0x07;
const T_BASE: u8 = 0x08;
const T_BEGIN: u8 = 0x09;
const T_ZERO: u8 = 0x0a;
const T_CHUNK_ZSTD: u8 = 0x0b;
/// A `Progress` frame's type: the relay between two peers reads these to show how far the
/// sender's read has come (the only frame it looks into).
pub const T_PROGRESS: u8 = 0x0c;
const T_ERROR: u8 = 0x7f;

/// Errors of the protocol, each naming what the peer got wrong.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("peer I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("peer closed the connection")]
    Closed,
    #[error("peer's frame was cut short ({got} of {want} bytes)")]
    Truncated { got: usize, want: usize },
    #[error("peer sent a frame of {len} bytes; the limit is {max}")]
    FrameTooLarge { len: u32, max: u32 },
    #[error("peer sent unknown message type 0x{0:02x}")]
    UnknownType(u8),
    #[error("peer sent a malformed {what} message")]
    Malformed { what: &'static str },
    #[error("peer speaks block protocol version {theirs} ({software}), this ferry speaks {ours}: install the same ferry version on both hosts")]
    VersionMismatch { ours: u16, theirs: u16, software: String },
    #[error("expected {want} from the peer, got {got}")]
    Unexpected { want: &'static str, got: &'static str },
    #[error("peer reported: {0}")]
    Remote(String),
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// First message each way: the protocol version and the software that speaks it.
    Hello { version: u16, software: String },
    /// Asks the peer for the manifest of `path` at this chunking.
    ManifestRequest {
        path: String,
        chunk_size: u32,
        algo: HashAlgo,
    },
    /// Starts a manifest: its parts follow, `count` digests in all.
    ManifestHeader {
        algo: HashAlgo,
        chunk_size: u32,
        source_size: u64,
        count: u64,
    },
    /// Digests `first..first + digests.len()` of the manifest being sent.
    ManifestPart { first: u64, digests: Vec<Digest> },
    /// The data of one changed chunk.
    Chunk { index: u64, data: Vec<u8> },
    /// All chunks are sent: seal and apply towards the manifest with this id and size.
    Commit { manifest_id: [u8; 32], source_size: u64 },
    /// The receiver's starting point: the id of the manifest it will apply against (zero when
    /// it has none) and the chunks an interrupted update left journaled (not to be sent again).
    Base { id: [u8; 32], held: Vec<(u64, Digest)> },
    /// The sender's plan: the source's size and the chunking it is read at.
    Begin {
        algo: HashAlgo,
        chunk_size: u32,
        source_size: u64,
    },
    /// A changed chunk of `len` zero bytes (sparse regions cost a frame, not their size).
    Zero { index: u64, len: u32 },
    /// A changed chunk, zstd-compressed; `len` is its size once decompressed.
    ChunkZstd { index: u64, len: u32, data: Vec<u8> },
    /// How much of the source the sender has read, of `total`.
    Progress { read: u64, total: u64 },
    /// The last request succeeded.
    Ok,
    /// The peer failed; the message says why.
    Error { message: String },
}

impl Message {
    fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::ManifestRequest { .. } => "manifest request",
            Message::ManifestHeader { .. } => "manifest header",
            Message::ManifestPart { .. } => "manifest part",
            Message::Chunk { .. } => "chunk",
            Message::Commit { .. } => "commit",
            Message::Base { .. } => "base",
            Message::Begin { .. } => "begin",
            Message::Zero { .. } => "zero chunk",
            Message::ChunkZstd { .. } => "compressed chunk",
            Message::Progress { .. } => "progress",
            Message::Ok => "ok",
            Message::Error { .. } => "error",
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(MAX_STRING)];
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// Encodes a message as one frame (length, type, payload).
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0, 0];
    let t = match msg {
        Message::Hello { version, software } => {
            p.extend_from_slice(&version.to_be_bytes());
            put_str(&mut p, software);
            T_HELLO
        }
        Message::ManifestRequest { path, chunk_size, algo } => {
            put_str(&mut p, path);
            p.extend_from_slice(&chunk_size.to_be_bytes());
            p.push(algo.code());
            T_MANIFEST_REQUEST
        }
        Message::ManifestHeader {
            algo,
            chunk_size,
            source_size,
            count,
        } => {
            p.push(algo.code());
            p.extend_from_slice(&chunk_size.to_be_bytes());
            p.extend_from_slice(&source_size.to_be_bytes());
            p.extend_from_slice(&count.to_be_bytes());
            T_MANIFEST_HEADER
        }
        Message::ManifestPart { first, digests } => {
            p.extend_from_slice(&first.to_be_bytes());
            p.extend_from_slice(&(digests.len() as u32).to_be_bytes());
            // Full 32-byte digests: the header's algorithm is not known to a lone part.
            for d in digests {
                p.extend_from_slice(&d.0);
            }
            T_MANIFEST_PART
        }
        Message::Chunk { index, data } => {
            p.extend_from_slice(&index.to_be_bytes());
            p.extend_from_slice(data);
            T_CHUNK
        }
        Message::Commit {
            manifest_id,
            source_size,
        } => {
            p.extend_from_slice(manifest_id);
            p.extend_from_slice(&source_size.to_be_bytes());
            T_COMMIT
        }
        Message::Base { id, held } => {
            p.extend_from_slice(id);
            p.extend_from_slice(&(held.len() as u32).to_be_bytes());
            for (i, d) in held {
                p.extend_from_slice(&i.to_be_bytes());
                p.extend_from_slice(&d.0);
            }
            T_BASE
        }
        Message::Begin {
            algo,
            chunk_size,
            source_size,
        } => {
            p.push(algo.code());
            p.extend_from_slice(&chunk_size.to_be_bytes());
            p.extend_from_slice(&source_size.to_be_bytes());
            T_BEGIN
        }
        Message::Zero { index, len } => {
            p.extend_from_slice(&index.to_be_bytes());
            p.extend_from_slice(&len.to_be_bytes());
            T_ZERO
        }
        Message::ChunkZstd { index, len, data } => {
            p.extend_from_slice(&index.to_be_bytes());
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(data);
            T_CHUNK_ZSTD
        }
        Message::Progress { read, total } => {
            p.extend_from_slice(&read.to_be_bytes());
            p.extend_from_slice(&total.to_be_bytes());
            T_PROGRESS
        }
        Message::Ok => T_OK,
        Message::Error { message } => {
            put_str(&mut p, message);
            T_ERROR
        }
    };
    p[4] = t;
    let len = (p.len() - 4) as u32;
    p[..4].copy_from_slice(&len.to_be_bytes());
    p
}

/// Reads fields off a payload, every read bounds-checked.
struct Fields<'a> {
    b: &'a [u8],
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.b.len() < n {
            return Err(ProtoError::Malformed { what: self.what });
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtoError> {
        Ok(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Result<u32, ProtoError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }
    fn string(&mut self) -> Result<String, ProtoError> {
        let n = self.u16()? as usize;
        if n > MAX_STRING {
            return Err(ProtoError::Malformed { what: self.what });
        }
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Malformed { what: self.what })
    }
    fn algo(&mut self) -> Result<HashAlgo, ProtoError> {
        HashAlgo::from_code(self.u8()?).ok_or(ProtoError::Malformed { what: self.what })
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.b)
    }
    fn end(self) -> Result<(), ProtoError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::Malformed { what: self.what })
        }
    }
}

/// Decodes one frame's type and payload.
pub fn decode(t: u8, payload: &[u8]) -> Result<Message, ProtoError> {
    let what = match t {
        T_HELLO => "hello",
        T_MANIFEST_REQUEST => "manifest request",
        T_MANIFEST_HEADER => "manifest header",
        T_MANIFEST_PART => "manifest part",
        T_CHUNK => "chunk",
        T_COMMIT => "commit",
        T_OK => "ok",
        T_ERROR => "error",
        T_BASE => "base",
        T_BEGIN => "begin",
        T_ZERO => "zero chunk",
        T_CHUNK_ZSTD => "compressed chunk",
        T_PROGRESS => "progress",
        other => return Err(ProtoError::UnknownType(other)),
    };
    let mut f = Fields { b: payload, what };
    let bad = || ProtoError::Malformed { what };
    let msg = match t {
        T_HELLO => Message::Hello {
            version: f.u16()?,
            software: f.string()?,
        },
        T_MANIFEST_REQUEST => {
            let path = f.string()?;
            let chunk_size = f.u32()?;
            check_chunk_size(chunk_size).map_err(|_| bad())?;
            Message::ManifestRequest {
                path,
                chunk_size,
                algo: f.algo()?,
            }
        }
        T_MANIFEST_HEADER => {
            let algo = f.algo()?;
            let chunk_size = f.u32()?;
            check_chunk_size(chunk_size).map_err(|_| bad())?;
            let source_size = f.u64()?;
            let count = f.u64()?;
            if count != chunk_count(source_size, chunk_size) {
                return Err(bad());
            }
            Message::ManifestHeader {
                algo,
                chunk_size,
                source_size,
                count,
            }
        }
        T_MANIFEST_PART => {
            let first = f.u64()?;
            let n = f.u32()? as usize;
            if n > DIGESTS_PER_PART || f.b.len() != n * 32 {
                return Err(bad());
            }
            let digests = f
                .rest()
                .chunks_exact(32)
                .map(|c| {
                    let mut d = Digest::default();
                    d.0.copy_from_slice(c);
                    d
                })
                .collect();
            Message::ManifestPart { first, digests }
        }
        T_CHUNK => {
            let index = f.u64()?;
            let data = f.rest();
            if data.is_empty() || data.len() > MAX_CHUNK as usize {
                return Err(bad());
            }
            Message::Chunk {
                index,
                data: data.to_vec(),
            }
        }
        T_COMMIT => {
            let mut manifest_id = [0u8; 32];
            manifest_id.copy_from_slice(f.take(32)?);
            Message::Commit {
                manifest_id,
                source_size: f.u64()?,
            }
        }
        T_BASE => {
            let mut id = [0u8; 32];
            id.copy_from_slice(f.take(32)?);
            let n = f.u32()? as usize;
            if f.b.len() != n * 40 {
                return Err(bad());
            }
            let held = f
                .rest()
                .chunks_exact(40)
                .map(|c| {
                    let mut i = [0u8; 8];
                    i.copy_from_slice(&c[..8]);
                    let mut d = Digest::default();
                    d.0.copy_from_slice(&c[8..]);
                    (u64::from_be_bytes(i), d)
                })
                .collect();
            Message::Base { id, held }
        }
        T_BEGIN => {
            let algo = f.algo()?;
            let chunk_size = f.u32()?;
            check_chunk_size(chunk_size).map_err(|_| bad())?;
            Message::Begin {
                algo,
                chunk_size,
                source_size: f.u64()?,
            }
        }
        T_ZERO => {
            let index = f.u64()?;
            let len = f.u32()?;
            if len == 0 || len > MAX_CHUNK {
                return Err(bad());
            }
            Message::Zero { index, len }
        }
        T_CHUNK_ZSTD => {
            let index = f.u64()?;
            let len = f.u32()?;
            let data = f.rest();
            if len == 0 || len > MAX_CHUNK || data.is_empty() {
                return Err(bad());
            }
            Message::ChunkZstd {
                index,
                len,
                data: data.to_vec(),
            }
        }
        T_PROGRESS => Message::Progress {
            read: f.u64()?,
            total: f.u64()?,
        },
        T_OK => Message::Ok,
        _ => Message::Error { message: f.string()? },
    };
    f.end()?;
    Ok(msg)
}

/// Our hello.
fn hello(software: &str) -> Message {
    Message::Hello {
        version: PROTOCOL_VERSION,
        software: software.into(),
    }
}

/// The peer's answer to our hello: its own hello in our version, else why not.
fn accept_hello(msg: Message) -> Result<(), ProtoError> {
    match msg {
        Message::Hello { version, .. } if version == PROTOCOL_VERSION => Ok(()),
        Message::Hello { version, software } => Err(ProtoError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: version,
            software,
        }),
        Message::Error { message } => Err(ProtoError::Remote(message)),
        other => Err(ProtoError::Unexpected {
            want: "hello",
            got: other.name(),
        }),
    }
}

/// A frame's length, checked before anything is allocated for it.
fn frame_len(len: [u8; 4]) -> Result<usize, ProtoError> {
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(ProtoError::FrameTooLarge { len, max: MAX_FRAME });
    }
    if len == 0 {
        return Err(ProtoError::Malformed { what: "empty frame" });
    }
    Ok(len as usize)
}

/// The messages that carry a manifest: its header, then its digests in parts.
fn manifest_messages(m: &Manifest) -> impl Iterator<Item = Message> + '_ {
    let header = Message::ManifestHeader {
        algo: m.algo,
        chunk_size: m.chunk_size,
        source_size: m.source_size,
        count: m.digests.len() as u64,
    };
    std::iter::once(header).chain(m.digests.chunks(DIGESTS_PER_PART).enumerate().map(|(i, part)| {
        Message::ManifestPart {
            first: (i * DIGESTS_PER_PART) as u64,
            digests: part.to_vec(),
        }
    }))
}

/// A manifest being received: parts must arrive in order and add up to the header's count
/// (memory grows only with what the peer actually sends).
struct Assembly {
    manifest: Manifest,
    count: u64,
}

impl Assembly {
    fn start(msg: Message) -> Result<Assembly, ProtoError> {
        match msg {
            Message::ManifestHeader {
                algo,
                chunk_size,
                source_size,
                count,
            } => Ok(Assembly {
                manifest: Manifest {
                    algo,
                    chunk_size,
                    source_size,
                    digests: Vec::new(),
                },
                count,
            }),
            Message::Error { message } => Err(ProtoError::Remote(message)),
            other => Err(ProtoError::Unexpected {
                want: "manifest header",
                got: other.name(),
            }),
        }
    }

    fn done(&self) -> bool {
        self.manifest.digests.len() as u64 >= self.count
    }

    fn add(&mut self, msg: Message) -> Result<(), ProtoError> {
        let digests = &mut self.manifest.digests;
        match msg {
            Message::ManifestPart { first, digests: part } => {
                let end = first + part.len() as u64;
                if first != digests.len() as u64 || end > self.count || part.is_empty() {
                    return Err(ProtoError::Malformed { what: "manifest part" });
                }
                // Digests beyond the algorithm's length must be zero, as scans make them.
                let len = self.manifest.algo.digest_len();
                if part.iter().any(|d| d.0[len..].iter().any(|&b| b != 0)) {
                    return Err(ProtoError::Malformed { what: "manifest part" });
                }
                digests.extend(part);
                Ok(())
            }
            Message::Error { message } => Err(ProtoError::Remote(message)),
            other => Err(ProtoError::Unexpected {
                want: "manifest part",
                got: other.name(),
            }),
        }
    }
}

/// Writes one message (not flushed: callers flush when they wait for an answer).
pub async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, msg: &Message) -> Result<(), ProtoError> {
    w.write_all(&encode(msg)).await?;
    Ok(())
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` when the stream ended before the first byte.
async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8], want: usize) -> Result<bool, ProtoError> {
    let mut got = 0;
    while got < buf.len() {
        let n = r.read(&mut buf[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(ProtoError::Truncated { got, want });
        }
        got += n;
    }
    Ok(true)
}

/// Reads one message; the frame's length is checked against `MAX_FRAME` before allocating.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> Result<Message, ProtoError> {
    let mut len = [0u8; 4];
    if !fill(r, &mut len, 4).await? {
        return Err(ProtoError::Closed);
    }
    let len = frame_len(len)?;
    let mut frame = vec![0u8; len];
    if !fill(r, &mut frame, len).await? {
        return Err(ProtoError::Truncated { got: 4, want: 4 + len });
    }
    decode(frame[0], &frame[1..])
}

/// Exchanges hellos: sends ours, reads theirs, refuses another protocol version.
pub async fn handshake<R, W>(r: &mut R, w: &mut W, software: &str) -> Result<(), ProtoError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    write_message(w, &hello(software)).await?;
    w.flush().await?;
    accept_hello(read_message(r).await?)
}

/// Sends a manifest as a header and parts.
pub async fn send_manifest<W: AsyncWrite + Unpin>(w: &mut W, m: &Manifest) -> Result<(), ProtoError> {
    for msg in manifest_messages(m) {
        write_message(w, &msg).await?;
    }
    w.flush().await?;
    Ok(())
}

/// Receives a manifest sent by `send_manifest`.
pub async fn recv_manifest<R: AsyncRead + Unpin>(r: &mut R) -> Result<Manifest, ProtoError> {
    let mut a = Assembly::start(read_message(r).await?)?;
    while !a.done() {
        a.add(read_message(r).await?)?;
    }
    Ok(a.manifest)
}

/// The most `held` entries one `Base` frame carries (40 bytes each, inside `MAX_FRAME`); a
/// receiver holding more lists these and the sender resends the rest.
pub const MAX_HELD: usize = (MAX_FRAME as usize - 64) / 40;

/// Writes one message on a blocking writer (the peer processes speak over stdin/stdout).
pub fn write_sync<W: std::io::Write>(w: &mut W, msg: &Message) -> Result<(), ProtoError> {
    w.write_all(&encode(msg))?;
    Ok(())
}

fn fill_sync<R: std::io::Read>(r: &mut R, buf: &mut [u8], want: usize) -> Result<bool, ProtoError> {
    let mut got = 0;
    while got < buf.len() {
        let n = match r.read(&mut buf[got..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(ProtoError::Truncated { got, want });
        }
        got += n;
    }
    Ok(true)
}

/// Reads one message from a blocking reader; the length is checked before allocating.
pub fn read_sync<R: std::io::Read>(r: &mut R) -> Result<Message, ProtoError> {
    let mut len = [0u8; 4];
    if !fill_sync(r, &mut len, 4)? {
        return Err(ProtoError::Closed);
    }
    let len = frame_len(len)?;
    let mut frame = vec![0u8; len];
    if !fill_sync(r, &mut frame, len)? {
        return Err(ProtoError::Truncated { got: 4, want: 4 + len });
    }
    decode(frame[0], &frame[1..])
}

/// Exchanges hellos on blocking streams: sends ours, reads theirs, refuses another version.
pub fn handshake_sync<R: std::io::Read, W: std::io::Write>(
    r: &mut R,
    w: &mut W,
    software: &str,
) -> Result<(), ProtoError> {
    write_sync(w, &hello(software))?;
    w.flush()?;
    accept_hello(read_sync(r)?)
}

/// Sends a manifest as a header and parts on a blocking writer, then flushes.
pub fn send_manifest_sync<W: std::io::Write>(w: &mut W, m: &Manifest) -> Result<(), ProtoError> {
    for msg in manifest_messages(m) {
        write_sync(w, &msg)?;
    }
    w.flush()?;
    Ok(())
}

/// Receives a manifest sent by `send_manifest_sync` (the same checks as `recv_manifest`).
pub fn recv_manifest_sync<R: std::io::Read>(r: &mut R) -> Result<Manifest, ProtoError> {
    let mut a = Assembly::start(read_sync(r)?)?;
    while !a.done() {
        a.add(read_sync(r)?)?;
    }
    Ok(a.manifest)
}

impl Message {
    /// The message's name in errors ("expected begin, got chunk").
    pub fn word(&self) -> &'static str {
        self.name()
    }
}
