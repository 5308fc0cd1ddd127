//! Validation of the names that end up in remote commands: datasets, host names, addresses, user names.
//!
//! Everything built into a command line passes through one of these first, so quoting is a second
//! line of defence, not the only one.

/// A ZFS dataset name: components of `[A-Za-z0-9_.:-]` separated by `/`, no empty or `.`/`..` component.
pub fn check_dataset(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty dataset name".into());
    }
    if name.len() > 255 {
        return Err(format!("dataset name {name:?} is longer than 255 characters"));
    }
    for comp in name.split('/') {
        if comp.is_empty() {
            return Err(format!(
                "dataset name {name:?} has an empty component (leading, trailing or double '/')"
            ));
        }
        if comp == "." || comp == ".." {
            return Err(format!("dataset name {name:?} has a {comp:?} component"));
        }
        if let Some(c) = comp
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
        {
            return Err(format!(
                "dataset name {name:?} contains {c:?}; allowed are letters, digits and _ - . :"
            ));
        }
    }
    if name.starts_with('-') {
        return Err(format!("dataset name {name:?} starts with '-'"));
    }
    Ok(())
}

/// ZFS's limit on a whole name, snapshot part included (`ZFS_MAX_DATASET_NAME_LEN` is 256 with the NUL).
pub const ZFS_MAX_NAME: usize = 255;

/// What ferry appends to a dataset name for its snapshots: `@ferry.<32 hex>.<YYYYMMDDThhmmssZ>`.
pub const SNAPSHOT_SUFFIX_LEN: usize = "@ferry.".len() + 32 + ".".len() + "YYYYMMDDThhmmssZ".len();

/// A dataset a pair replicates: a valid dataset name short enough that ferry's snapshot names on it
/// still fit ZFS's limit (else the first snapshot fails at run time, after the config was "ok").
pub fn check_pair_dataset(name: &str) -> Result<(), String> {
    check_dataset(name)?;
    let max = ZFS_MAX_NAME - SNAPSHOT_SUFFIX_LEN;
    if name.len() > max {
        return Err(format!(
            "dataset name is {} characters: ferry's snapshots add {SNAPSHOT_SUFFIX_LEN} \
             (`@ferry.<fingerprint>.<time>`) and ZFS allows {ZFS_MAX_NAME} in all, so at most {max}",
            name.len()
        ));
    }
    Ok(())
}

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
    fn datasets() {
        assert!(check_dataset("tank/data").is_ok());
        assert!(check_dataset("tank/a_b-c.d:e").is_ok());
        assert!(check_dataset("tank//data").is_err());
        assert!(check_dataset("tank/data/").is_err());
        assert!(check_dataset("/tank").is_err());
        assert!(check_dataset("tank/../x").is_err());
        assert!(check_dataset("tank/a b").is_err());
        assert!(check_dataset("tank/a;rm -rf /").is_err());
        assert!(check_dataset("tank/$(x)").is_err());
        assert!(check_dataset("tank@snap").is_err());
        assert!(check_dataset("").is_err());
    }

    #[test]
    fn pair_datasets_leave_room_for_snapshots() {
        // the suffix is what the ZFS driver really appends
        let snap = crate::driver::zfs::snapshot_name(&"f".repeat(32), chrono::Utc::now());
        assert_eq!(SNAPSHOT_SUFFIX_LEN, 1 + snap.len());
        assert_eq!(SNAPSHOT_SUFFIX_LEN, 56);
        let ok = format!("tank/{}", "a".repeat(194));
        assert!(check_pair_dataset(&ok).is_ok());
        assert!(check_dataset(&format!("{ok}b")).is_ok());
        let e = check_pair_dataset(&format!("{ok}b")).unwrap_err();
        assert!(e.contains("200 characters") && e.contains("at most 199"), "{e}");
        assert!(check_pair_dataset("tank/a b").is_err());
    }

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
