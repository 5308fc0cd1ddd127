//! Stream compression on the wire: the sender's command gets a compressor after it, the
//! receiver's a decompressor before it, wherever each runs (here or on a host). Only fixed,
//! validated command text is added; the wrapped commands come from the drivers.

use crate::config::Compress;

/// Wraps a sending command so its stream leaves compressed. The exit status stays the sender's
/// (a plain pipeline would report the compressor's): the sender's status travels through fd 3
/// of a command substitution while the compressed stream goes to the original stdout (fd 4).
pub fn compressing(send: &str, c: Compress) -> String {
    match c {
        Compress::None => send.to_string(),
        Compress::Zstd => format!(
            "exec 4>&1; ferry_status=$( {{ {{ {send}; echo $? >&3; }} | zstd -q -c -1 >&4; }} 3>&1 ); exit ${{ferry_status:-1}}"
        ),
    }
}

/// Wraps a receiving command so it reads a compressed stream. The receiver is last in the
/// pipeline, so its status is the command's; a corrupt stream makes both fail.
pub fn decompressing(recv: &str, c: Compress) -> String {
    match c {
        Compress::None => recv.to_string(),
        // grouped: a driver's receive may be a list of commands that all read the stream
        Compress::Zstd => format!("zstd -q -d -c | {{ {recv}; }}"),
    }
}

/// The program a compression needs on both hosts (for `setup`'s checklist and messages).
pub fn program(c: Compress) -> Option<&'static str> {
    match c {
        Compress::None => None,
        Compress::Zstd => Some("zstd"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (i32, Vec<u8>) {
        let out = std::process::Command::new("sh").arg("-c").arg(script).output().unwrap();
        (out.status.code().unwrap_or(-1), out.stdout)
    }

    #[test]
    fn round_trip_keeps_bytes_and_sender_status() {
        if sh("command -v zstd").0 != 0 {
            eprintln!("SKIP: zstd missing");
            return;
        }
        let send = compressing("seq 1 20000", Compress::Zstd);
        let (code, packed) = sh(&send);
        assert_eq!(code, 0);
        let (_, plain) = sh("seq 1 20000");
        assert!(packed.len() < plain.len() / 2, "{} vs {}", packed.len(), plain.len());
        let (code, unpacked) = sh(&format!("( {send} ) | {}", decompressing("cat", Compress::Zstd)));
        assert_eq!(code, 0);
        assert!(unpacked == plain, "the round trip changed the bytes");
        // the sender's failure is the command's failure
        assert_eq!(sh(&compressing("seq 1 10 && sh -c 'exit 7'", Compress::Zstd)).0, 7);
        assert_eq!(compressing("x", Compress::None), "x");
    }
}
