//! Validation of the names that end up in remote commands: datasets, host names, addresses, user names.
//!
//! Everything built into a command line passes through one of these first, so quoting is a second
//! line of defence, not the only one.

/// A host's name as the config's `[hosts.NAME]` table names it.
pub fn check_host_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty host name".into());
    }
    if name.starts_with('-') || name.starts_with('.') {
        return Err(format!("host name {name:?} must start with a letter or digit"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "host name {name:?} contains {c:?}; allowed are letters, digits and _ - ."
        ));
    }
    Ok(())
}

/// An S3 endpoint: `http://` or `https://`, a host (name, IPv4, `[IPv6]`), an optional port, no
/// path, query or credentials in it (keys go in the credentials file, never in the config).
pub fn check_endpoint_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("endpoint {url:?} must start with http:// or https://"))?;
    let rest = rest.trim_end_matches('/');
    if rest.contains('@') {
        return Err(format!(
            "endpoint {url:?} carries credentials: put keys in the `credentials` file"
        ));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(format!(
            "endpoint {url:?}: scheme, host and port only (the bucket goes in the pair's path)"
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (rest, None),
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |n| n == 0) {
            return Err(format!("endpoint {url:?}: port {p:?} is not in 1..65535"));
        }
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    check_address(bare).map_err(|m| format!("endpoint {url:?}: {m}"))
}

/// A network address: a DNS name, an IPv4 literal or an IPv6 literal.
pub fn check_address(addr: &str) -> Result<(), String> {
    if addr.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if addr.is_empty() || addr.len() > 253 {
        return Err(format!("address {addr:?} is not a host name or IP address"));
    }
    for label in addr.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(format!("address {addr:?} is not a host name or IP address"));
        }
    }
    Ok(())
}

/// A login name on a host.
pub fn check_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!("user name {user:?} is not a valid login name"))
    }
}

/// A program on a host (`ferry_path`): a bare name looked up in PATH or an absolute path, of
/// characters that need no quoting.
pub fn check_command_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && !path.starts_with('-')
        && (path.starts_with('/') || !path.contains('/'))
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '+'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{path:?} is not a program path: an absolute path or a bare name, of letters, digits and _ - . / +"
        ))
    }
}

/// Quotes one word for a POSIX shell. Names are validated before this; quoting keeps it safe anyway.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':' | '@' | '=' | ',' | '+'))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_users() {
        assert!(check_host_name("store1").is_ok());
        assert!(check_host_name("st ore").is_err());
        assert!(check_address("192.0.2.10").is_ok());
        assert!(check_address("::1").is_ok());
        assert!(check_address("backup.example.org").is_ok());
        assert!(check_address("a;b").is_err());
        assert!(check_user("root").is_ok());
        assert!(check_user("-oProxyCommand").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("tank/data@ferry.x"), "tank/data@ferry.x");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
    }
}
