//! What an SSH or socket error says to an operator: "connection refused", not "Connection
//! refused (os error 111)". Used by connecting, authenticating and channels alike.

/// "connection refused" rather than "Connection refused (os error 111)".
pub(crate) fn io_message(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        TimedOut => "connection timed out".into(),
        ConnectionReset => "connection reset".into(),
        HostUnreachable => "host unreachable".into(),
        NetworkUnreachable => "network unreachable".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_lowercase(),
                None => s,
            }
        }
    }
}

pub(crate) fn russh_message(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io_message(io),
        russh::Error::Disconnect => "the server closed the connection".into(),
        russh::Error::NoCommonAlgo { .. } => {
            format!("no algorithm in common with the server ({e})")
        }
        other => other.to_string(),
    }
}
