//! The block peer protocol: round trips over an in-memory pipe and through a real child
//! process's stdin/stdout, and hostile input (truncated frames, oversized lengths, unknown
//! types, malformed payloads, a wrong version, a lying manifest).

use crate::common;
use ferry::block::proto::{
    encode, handshake, read_message, recv_manifest, send_manifest, write_message, Message, ProtoError,
    DIGESTS_PER_PART, MAX_FRAME, PROTOCOL_VERSION,
};
use ferry::block::{Digest, HashAlgo, Manifest};
use tokio::io::AsyncWriteExt;

fn all_messages() -> Vec<Message> {
    vec![
        Message::Hello {
            version: PROTOCOL_VERSION,
            software: "ferry 0.1.0".into(),
        },
        Message::ManifestRequest {
            path: "/var/lib/images/vm1.img".into(),
            chunk_size: 65536,
            algo: HashAlgo::Blake3,
        },
        Message::ManifestHeader {
            algo: HashAlgo::Xxh3,
            chunk_size: 4096,
            source_size: 4096 * 3 + 1,
            count: 4,
        },
        Message::ManifestPart {
            first: 2,
            digests: vec![HashAlgo::Blake3.hash(b"x"), HashAlgo::Xxh3.hash(b"y")],
        },
        Message::Chunk {
            index: 77,
            data: vec![0xAB; 4096],
        },
        Message::Chunk {
            index: u64::MAX,
            data: vec![1; ferry::block::MAX_CHUNK as usize],
        },
        Message::Commit {
            manifest_id: [7; 32],
            source_size: 1 << 40,
        },
        Message::Ok,
        Message::Error {
            message: "vm1.img: permission denied ünïcode".into(),
        },
    ]
}

async fn decode_bytes(bytes: &[u8]) -> Result<Message, ProtoError> {
    let mut r = bytes;
    read_message(&mut r).await
}

#[tokio::test]
async fn every_message_round_trips() {
    let (mut a, mut b) = tokio::io::duplex(1 << 16);
    let msgs = all_messages();
    let sent = msgs.clone();
    let writer = tokio::spawn(async move {
        for m in &sent {
            write_message(&mut a, m).await.unwrap();
        }
        a.shutdown().await.unwrap();
    });
    for m in &msgs {
        assert_eq!(&read_message(&mut b).await.unwrap(), m);
    }
    assert!(matches!(read_message(&mut b).await, Err(ProtoError::Closed)));
    writer.await.unwrap();
}

#[tokio::test]
async fn frames_survive_a_real_pipe_through_a_child_process() {
    // `cat` is a peer process echoing its stdin to its stdout: frames cross two real pipes and
    // arrive in pieces of whatever size the kernel hands over.
    let mut child = tokio::process::Command::new("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let msgs = all_messages();
    let sent = msgs.clone();
    let writer = tokio::spawn(async move {
        for m in &sent {
            write_message(&mut stdin, m).await.unwrap();
        }
        stdin.flush().await.unwrap();
    });
    for m in &msgs {
        assert_eq!(&read_message(&mut stdout).await.unwrap(), m);
    }
    writer.await.unwrap();
    assert!(matches!(read_message(&mut stdout).await, Err(ProtoError::Closed)));
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn handshake_agrees_on_the_version_and_refuses_another() {
    let (a, b) = tokio::io::duplex(4096);
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let (x, y) = tokio::join!(
        handshake(&mut ar, &mut aw, "ferry a"),
        handshake(&mut br, &mut bw, "ferry b")
    );
    x.unwrap();
    y.unwrap();

    // A peer of another version: it says hello with version 99.
    let mut theirs = encode(&Message::Hello {
        version: 99,
        software: "ferry 9.9".into(),
    });
    let mut sink = Vec::new();
    let mut r = &theirs[..];
    let err = handshake(&mut r, &mut sink, "ferry").await.unwrap_err();
    assert!(
        matches!(&err, ProtoError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: 99, software } if software == "ferry 9.9")
    );
    assert!(err.to_string().contains("install the same ferry version"), "{err}");
    // We said hello first, whatever came back.
    assert!(matches!(
        decode_bytes(&sink).await.unwrap(),
        Message::Hello {
            version: PROTOCOL_VERSION,
            ..
        }
    ));
    // A peer that starts with anything else, or reports an error, is refused with what it sent.
    theirs = encode(&Message::Ok);
    let mut r = &theirs[..];
    assert!(matches!(
        handshake(&mut r, &mut Vec::new(), "f").await,
        Err(ProtoError::Unexpected {
            want: "hello",
            got: "ok"
        })
    ));
    theirs = encode(&Message::Error {
        message: "ferry: unknown command peer".into(),
    });
    let mut r = &theirs[..];
    assert!(
        matches!(handshake(&mut r, &mut Vec::new(), "f").await, Err(ProtoError::Remote(m)) if m.contains("unknown command"))
    );
    // Something that is not ferry at all (a shell's motd) is refused without a huge allocation.
    let mut r = &b"Welcome to Ubuntu 24.04 LTS\n"[..];
    assert!(matches!(
        handshake(&mut r, &mut Vec::new(), "f").await,
        Err(ProtoError::FrameTooLarge { .. })
    ));
}

#[tokio::test]
async fn hostile_frames_get_typed_errors() {
    let good = encode(&Message::Chunk {
        index: 1,
        data: vec![5; 4096],
    });
    // Truncated at every point inside the frame.
    for cut in [1usize, 3, 4, 5, 12, good.len() - 1] {
        match decode_bytes(&good[..cut]).await {
            Err(ProtoError::Truncated { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // An oversized length is refused before reading (or allocating) the body.
    let mut huge = u32::MAX.to_be_bytes().to_vec();
    huge.push(5);
    assert!(matches!(
        decode_bytes(&huge).await,
        Err(ProtoError::FrameTooLarge {
            len: u32::MAX,
            max: MAX_FRAME
        })
    ));
    let mut just_over = (MAX_FRAME + 1).to_be_bytes().to_vec();
    just_over.push(5);
    assert!(matches!(
        decode_bytes(&just_over).await,
        Err(ProtoError::FrameTooLarge { .. })
    ));
    // Unknown type, empty frame.
    assert!(matches!(
        decode_bytes(&[0, 0, 0, 1, 0x55]).await,
        Err(ProtoError::UnknownType(0x55))
    ));
    assert!(matches!(
        decode_bytes(&[0, 0, 0, 0]).await,
        Err(ProtoError::Malformed { .. })
    ));
    // Malformed payloads: trailing bytes, a string longer than its frame, bad UTF-8, a bad
    // chunk size, an empty chunk, an unknown algorithm, a header whose count lies.
    let frame = |t: u8, p: &[u8]| {
        let mut f = ((p.len() + 1) as u32).to_be_bytes().to_vec();
        f.push(t);
        f.extend_from_slice(p);
        f
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ok with payload", frame(0x07, &[1])),
        ("string past the frame", frame(0x7f, &[0, 50, b'a'])),
        ("bad utf-8", frame(0x7f, &[0, 2, 0xff, 0xfe])),
        ("bad chunk size", frame(0x02, &[0, 1, b'/', 0, 0, 0x10, 0x01, 1])),
        ("unknown algorithm", frame(0x02, &[0, 1, b'/', 0, 0, 0x10, 0x00, 9])),
        ("empty chunk", frame(0x05, &[0, 0, 0, 0, 0, 0, 0, 1])),
        ("short commit", frame(0x06, &[1, 2, 3])),
        (
            "lying manifest count",
            frame(
                0x03,
                &[
                    1, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
                ],
            ),
        ),
        (
            "part count vs bytes",
            frame(0x04, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 2, 3]),
        ),
    ];
    for (what, bytes) in cases {
        match decode_bytes(&bytes).await {
            Err(ProtoError::Malformed { .. }) => {}
            other => panic!("{what}: expected Malformed, got {other:?}"),
        }
    }
}

fn manifest(chunks: usize, algo: HashAlgo) -> Manifest {
    Manifest {
        algo,
        chunk_size: 4096,
        source_size: chunks as u64 * 4096 - 100,
        digests: (0..chunks as u64).map(|i| algo.hash(&i.to_le_bytes())).collect(),
    }
}

#[tokio::test]
async fn manifests_cross_in_parts_and_lies_are_caught() {
    // More digests than fit one part: three part frames.
    let m = manifest(DIGESTS_PER_PART * 2 + 10, HashAlgo::Xxh3);
    let (mut a, mut b) = tokio::io::duplex(1 << 20);
    let sent = m.clone();
    let w = tokio::spawn(async move { send_manifest(&mut a, &sent).await.unwrap() });
    assert_eq!(recv_manifest(&mut b).await.unwrap(), m);
    w.await.unwrap();

    // Parts out of order, overlapping, past the count, or non-zero beyond xxh3's 16 bytes.
    let m = manifest(4, HashAlgo::Xxh3);
    let header = encode(&Message::ManifestHeader {
        algo: m.algo,
        chunk_size: 4096,
        source_size: m.source_size,
        count: 4,
    });
    let lies: Vec<(&str, Vec<Message>)> = vec![
        (
            "gap",
            vec![Message::ManifestPart {
                first: 1,
                digests: m.digests[1..].to_vec(),
            }],
        ),
        (
            "overlap",
            vec![
                Message::ManifestPart {
                    first: 0,
                    digests: m.digests[..2].to_vec(),
                },
                Message::ManifestPart {
                    first: 1,
                    digests: m.digests[1..].to_vec(),
                },
            ],
        ),
        (
            "too many",
            vec![Message::ManifestPart {
                first: 0,
                digests: [m.digests.clone(), m.digests.clone()].concat(),
            }],
        ),
        (
            "wide digest",
            vec![Message::ManifestPart {
                first: 0,
                digests: vec![Digest([1; 32]); 4],
            }],
        ),
        (
            "empty part",
            vec![Message::ManifestPart {
                first: 0,
                digests: vec![],
            }],
        ),
    ];
    for (what, parts) in lies {
        let mut bytes = header.clone();
        for p in &parts {
            bytes.extend(encode(p));
        }
        let mut r = &bytes[..];
        match recv_manifest(&mut r).await {
            Err(ProtoError::Malformed { what: "manifest part" }) => {}
            other => panic!("{what}: expected a malformed part, got {other:?}"),
        }
    }
    // Cut after the header: truncation is reported as the connection closing mid-manifest.
    let mut r = &header[..];
    assert!(matches!(recv_manifest(&mut r).await, Err(ProtoError::Closed)));
}

/// A hand-written hostile source talking to a real `ferry peer block-receive`: it writes
/// `frames` (after its hello) to the receiver's stdin, then closes it or, with `hold`, keeps it
/// open that long. Returns the exit status, stderr and the state dir's bytes on disk.
fn hostile_source(
    dir: &std::path::Path,
    extra: &[&str],
    frames: &[Message],
    hold: Option<std::time::Duration>,
) -> (std::process::ExitStatus, String, std::time::Duration) {
    use std::io::Write;
    let mut child = common::runner::bare()
        .args(["peer", "block-receive", "--path"])
        .arg(dir.join("replica.img"))
        .arg("--state")
        .arg(dir.join("state"))
        .args(["--name", "h1"])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut stdin = child.stdin.take().unwrap();
    let mut bytes = encode(&Message::Hello {
        version: PROTOCOL_VERSION,
        software: "hostile".into(),
    });
    for f in frames {
        bytes.extend(encode(f));
    }
    // The receiver may refuse (and close) before reading everything: a broken pipe is fine.
    let _ = stdin.write_all(&bytes);
    let _ = stdin.flush();
    let keep = match hold {
        Some(d) => {
            let deadline = std::time::Instant::now() + d;
            while std::time::Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Some(stdin)
        }
        None => {
            drop(stdin);
            None
        }
    };
    let out = child.wait_with_output().unwrap();
    drop(keep);
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_declared_size_no_destination_can_hold_is_refused_before_anything_is_allocated() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let huge = 1u64 << 62;
    let frames = [
        Message::Begin {
            algo: HashAlgo::Xxh3,
            chunk_size: ferry::block::MAX_CHUNK,
            source_size: huge,
        },
        Message::Commit {
            manifest_id: [0; 32],
            source_size: huge,
        },
    ];
    let (status, stderr, _) = hostile_source(dir.path(), &[], &frames, None);
    assert_eq!(status.signal(), None, "the receiver died of a signal: {stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&huge.to_string()),
        "the declared size is named: {stderr}"
    );
    assert!(stderr.contains("refus"), "{stderr}");
    assert!(!dir.path().join("state/journal").exists(), "nothing journaled");
    let replica = dir.path().join("replica.img");
    assert!(!replica.exists() || std::fs::metadata(&replica).unwrap().len() == 0);
}

#[test]
fn a_source_that_sends_a_begin_and_then_nothing_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let frames = [Message::Begin {
        algo: HashAlgo::Xxh3,
        chunk_size: 4096,
        source_size: 8192,
    }];
    let hold = std::time::Duration::from_secs(30);
    let (status, stderr, took) = hostile_source(dir.path(), &["--idle-timeout", "2"], &frames, Some(hold));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}: {stderr}");
    assert!(stderr.contains("sent nothing for 2s (idle timeout)"), "{stderr}");
}

#[test]
fn zero_frames_are_journaled_without_their_data() {
    // 64 GiB declared in 16 MiB chunks, every frame a zero frame: the journal holds runs, not
    // 64 GiB of zeros, and the replica is one hole of the declared size
    let dir = tempfile::tempdir().unwrap();
    let chunk = ferry::block::MAX_CHUNK;
    let size = 64u64 << 30;
    let count = size / u64::from(chunk);
    let mut frames = vec![Message::Begin {
        algo: HashAlgo::Xxh3,
        chunk_size: chunk,
        source_size: size,
    }];
    frames.extend((0..count).map(|index| Message::Zero { index, len: chunk }));
    // the first pass stops before its commit: what was journaled stays for the next run
    let (status, stderr, _) = hostile_source(dir.path(), &[], &frames, None);
    assert_eq!(status.code(), Some(1), "{stderr}");
    let journal = std::fs::metadata(dir.path().join("state/journal")).unwrap().len();
    assert!(
        journal < 4096,
        "{count} zero chunks of 16 MiB took {journal} journal bytes"
    );
    // the second sends the commit: the receiver checks the manifest and applies
    let zero = HashAlgo::Xxh3.hash(&vec![0u8; chunk as usize]);
    let manifest = Manifest {
        algo: HashAlgo::Xxh3,
        chunk_size: chunk,
        source_size: size,
        digests: vec![zero; count as usize],
    };
    frames.push(Message::Commit {
        manifest_id: manifest.id(),
        source_size: size,
    });
    let (status, stderr, _) = hostile_source(dir.path(), &[], &frames, None);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let replica = std::fs::metadata(dir.path().join("replica.img")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(replica.len(), size);
    assert!(
        replica.blocks() * 512 < 1 << 20,
        "a hole, not {} bytes",
        replica.blocks() * 512
    );
    assert!(!dir.path().join("state/journal").exists(), "applied and removed");
}

#[test]
fn a_sender_whose_destination_says_nothing_times_out() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("src.img"), vec![5u8; 1 << 20]).unwrap();
    let mut child = common::runner::bare()
        .args(["peer", "block-send", "--path"])
        .arg(dir.path().join("src.img"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .args([
            "--name",
            "ferry.ab.20260101T000000Z",
            "--chunk",
            "4096",
            "--idle-timeout",
            "2",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut stdin = child.stdin.take().unwrap();
    // a hello, then silence: a receiver hung before it names its base
    stdin
        .write_all(&encode(&Message::Hello {
            version: PROTOCOL_VERSION,
            software: "hung".into(),
        }))
        .unwrap();
    stdin.flush().unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert!(
        stderr.contains("the destination sent nothing for 2s (idle timeout)"),
        "{stderr}"
    );
}

#[test]
fn a_state_dir_or_replica_another_user_could_plant_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let begin = [Message::Begin {
        algo: HashAlgo::Xxh3,
        chunk_size: 4096,
        source_size: 8192,
    }];
    // a world-writable state dir
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::set_permissions(dir.path().join("state"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (status, stderr, _) = hostile_source(dir.path(), &[], &begin, None);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("block state directory") && stderr.contains("writable by every user"),
        "{stderr}"
    );
    assert!(std::fs::read_dir(dir.path().join("state")).unwrap().next().is_none());
    // a state dir that is a symlink to somewhere else
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("state")).unwrap();
    let (status, stderr, _) = hostile_source(dir.path(), &[], &begin, None);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is a symlink"), "{stderr}");
    assert!(std::fs::read_dir(dir.path().join("elsewhere"))
        .unwrap()
        .next()
        .is_none());
    // the replica's name planted as a link to another file (dangling, so no size to refuse)
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::os::unix::fs::symlink(&victim, dir.path().join("replica.img")).unwrap();
    let (status, stderr, _) = hostile_source(dir.path(), &[], &begin, None);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("symlink"), "{stderr}");
    assert!(!victim.exists(), "nothing made through the link");
}
