//! Name rules for a pair's volumes, per kind: what a ZFS dataset may be called (with room left for
//! ferry's snapshot names under ZFS's length limit) and what a btrfs path may be. Pure, so config
//! validation can call them.

/// A ZFS dataset name: components of `[A-Za-z0-9_.: -]` (ZFS's own alphabet, space included)
/// separated by `/`, no empty or `.`/`..` component. Every command quotes them.
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
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | ' ')))
        {
            return Err(format!(
                "dataset name {name:?} contains {c:?}; allowed are letters, digits, space and _ - . :"
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

/// A btrfs subvolume or directory: an absolute path of components `[A-Za-z0-9_.:+@,= -]` (no empty,
/// `.` or `..` component, no trailing `/`), each at most 255 bytes, leaving room for ferry's
/// snapshot names under it (`/ferry.<fingerprint>.<time>`) within PATH_MAX.
pub fn check_btrfs_path(path: &str) -> Result<(), String> {
    check_path("btrfs path", path)
}

/// A block volume: a file or a block device, by the same path rule as btrfs.
pub fn check_block_path(path: &str) -> Result<(), String> {
    check_path("block volume path", path)
}

/// An object pair's side: `bucket[/prefix][/]`. The bucket follows S3's naming rules (3–63
/// lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit); the
/// prefix is key text: no control characters, no empty, `.` or `..` segment.
pub fn check_bucket_path(path: &str) -> Result<(), String> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let (bucket, prefix) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let what = format!("object location {path:?}");
    if path.starts_with('/') {
        return Err(format!(
            "{what} starts with '/': write bucket[/prefix], as in \"photos/2026/\""
        ));
    }
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!("{what}: bucket {bucket:?} must have 3 to 63 characters"));
    }
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !bucket.chars().all(|c| edge(c) || c == '.' || c == '-')
        || !bucket.starts_with(edge)
        || !bucket.ends_with(edge)
        || bucket.contains("..")
    {
        return Err(format!(
            "{what}: bucket {bucket:?} may hold only lowercase letters, digits, '.' and '-', and starts and ends with a letter or digit"
        ));
    }
    if prefix.len() > 900 {
        return Err(format!("{what}: the prefix is {} bytes (at most 900)", prefix.len()));
    }
    if prefix.chars().any(char::is_control) {
        return Err(format!("{what}: the prefix has a control character"));
    }
    if !prefix.is_empty() && prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(format!("{what}: the prefix has an empty, '.' or '..' segment"));
    }
    Ok(())
}

fn check_path(what: &str, path: &str) -> Result<(), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("{what} {path:?} must be absolute (start with '/')"));
    };
    if rest.is_empty() {
        return Err(format!("{what} \"/\" names the root directory"));
    }
    let max = 4095 - SNAPSHOT_SUFFIX_LEN;
    if path.len() > max {
        return Err(format!("{what} is {} characters: at most {max}", path.len()));
    }
    for comp in rest.split('/') {
        if comp.is_empty() {
            return Err(format!(
                "{what} {path:?} has an empty component (trailing or double '/')"
            ));
        }
        if comp == "." || comp == ".." {
            return Err(format!("{what} {path:?} has a {comp:?} component"));
        }
        if comp.len() > 255 {
            return Err(format!("{what} {path:?} has a component longer than 255 bytes"));
        }
        if let Some(c) = comp
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '+' | '@' | ',' | '=' | ' ')))
        {
            return Err(format!(
                "{what} {path:?} contains {c:?}; allowed are letters, digits, space and _ - . : + @ , ="
            ));
        }
    }
    Ok(())
}

/// A snapshot's or checkpoint's own name before it reaches a command line: ferry's snapshot
/// alphabet (`ferry.<fp>.<time>` and the names other tools gave theirs), not starting with `.`.
pub fn check_snapshot_name(snap: &str) -> Result<(), String> {
    if snap.is_empty()
        || snap.starts_with('.')
        || !snap
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
    {
        return Err(format!("invalid snapshot name {snap:?}"));
    }
    Ok(())
}

/// Where a block pair keeps its files on the source's host: its own directory in the snapshot
/// directory (`snapshot_dir`, default `.ferry-snapshots` beside the source, which a reflink copy
/// needs: the same filesystem; for a device, `/var/lib/ferry/snapshots`).
pub fn block_source_state(source: &str, snapshot_dir: Option<&str>, fp: &str) -> String {
    let dir = match snapshot_dir {
        Some(d) => d.to_string(),
        None if source.starts_with("/dev/") => "/var/lib/ferry/snapshots".to_string(),
        None => match source.rsplit_once('/') {
            Some(("", _)) | None => "/.ferry-snapshots".to_string(),
            Some((parent, _)) => format!("{parent}/.ferry-snapshots"),
        },
    };
    format!("{dir}/block.{fp}")
}

/// Where a block replica's checkpoint and journal live: beside a file, `.<name>.ferry` (it
/// travels with the data); for a device, under `/var/lib/ferry/replicas`.
pub fn block_replica_state(destination: &str) -> String {
    match destination.rsplit_once('/') {
        _ if destination.starts_with("/dev/") => {
            format!(
                "/var/lib/ferry/replicas/{}",
                destination.trim_start_matches('/').replace('/', "_")
            )
        }
        Some((parent, name)) => format!("{parent}/.{name}.ferry"),
        None => format!(".{destination}.ferry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_paths_follow_s3_rules() {
        for ok in ["photos", "photos/2026/", "photos-dr/2026", "a.b-c/x/y z/"] {
            assert!(check_bucket_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "/photos",
            "ph",
            "Photos",
            "-photos",
            "photos-",
            "a..b",
            "photos//x",
            "photos/../x",
            "photos/a\nb",
        ] {
            let e = check_bucket_path(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn btrfs_paths() {
        assert!(check_btrfs_path("/srv/data").is_ok());
        assert!(check_btrfs_path("/mnt/pool/@home").is_ok());
        assert!(check_btrfs_path("srv/data").unwrap_err().contains("absolute"));
        assert!(check_btrfs_path("/").is_err());
        assert!(check_btrfs_path("/srv/data/").is_err());
        assert!(check_btrfs_path("/srv//data").is_err());
        assert!(check_btrfs_path("/srv/../etc").is_err());
        assert!(check_btrfs_path("/srv/$(x)").is_err());
        assert!(check_btrfs_path("/srv/a;b").is_err());
        assert!(check_btrfs_path("/srv/a'b").is_err());
        assert!(check_btrfs_path(&format!("/{}", "a".repeat(256))).is_err());
    }

    #[test]
    fn datasets() {
        assert!(check_dataset("tank/data").is_ok());
        assert!(check_dataset("tank/a_b-c.d:e").is_ok());
        assert!(check_dataset("tank//data").is_err());
        assert!(check_dataset("tank/data/").is_err());
        assert!(check_dataset("/tank").is_err());
        assert!(check_dataset("tank/../x").is_err());
        assert!(check_dataset("tank/a b").is_ok(), "ZFS allows spaces");
        assert!(check_dataset("tank/9 lives:v1").is_ok());
        assert!(check_dataset("tank/a\tb").is_err());
        assert!(check_dataset("tank/a'b").is_err());
        assert!(check_dataset("tank/a;rm -rf /").is_err());
        assert!(check_dataset("tank/$(x)").is_err());
        assert!(check_dataset("tank@snap").is_err());
        assert!(check_dataset("").is_err());
    }

    #[test]
    fn pair_datasets_leave_room_for_snapshots() {
        // the suffix is what the ZFS driver really appends
        let snap = crate::model::snapshot_name(&"f".repeat(32), chrono::Utc::now());
        assert_eq!(SNAPSHOT_SUFFIX_LEN, 1 + snap.len());
        assert_eq!(SNAPSHOT_SUFFIX_LEN, 56);
        let ok = format!("tank/{}", "a".repeat(194));
        assert!(check_pair_dataset(&ok).is_ok());
        assert!(check_dataset(&format!("{ok}b")).is_ok());
        let e = check_pair_dataset(&format!("{ok}b")).unwrap_err();
        assert!(e.contains("200 characters") && e.contains("at most 199"), "{e}");
        assert!(check_pair_dataset("tank/a*b").is_err());
    }
}
