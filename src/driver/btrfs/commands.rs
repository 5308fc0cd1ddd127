//! The only place btrfs command lines are built. Every path is validated, then quoted.
//!
//! Layout: a source subvolume `S` is snapshotted read-only into its snapshot directory
//! (`snapshot_dir`), `ferry.<fp>.<time>`; `btrfs send [-p parent]` streams it into
//! `btrfs receive D`, so the destination directory `D` holds the received read-only subvolumes,
//! newest = the replica. The checkpoint's record lives with them in `D/.ferry-checkpoint`.

use anyhow::{anyhow, bail, Result};

use crate::config::names::shell_quote as q;
use crate::config::Endpoint;
use crate::driver::Marks;
use crate::model::names::check_btrfs_path;

/// The file in the destination directory that records the checkpoint with the data.
pub const MARKS: &str = ".ferry-checkpoint";
/// Line prefixes of the inspect script's output, read by `parse`.
pub const VOL: &str = "#vol ";
pub const SNAP: &str = "#snap ";
pub const MARK: &str = "#mark ";
pub const EXISTS: &str = "#exists";

/// Checks a path before it reaches a command line.
pub fn checked(path: &str) -> Result<&str> {
    check_btrfs_path(path).map_err(|m| anyhow!(m))?;
    Ok(path)
}

/// A snapshot's own name: one path component of ferry's snapshot alphabet.
fn checked_snap(snap: &str) -> Result<&str> {
    crate::model::names::check_snapshot_name(snap).map_err(|m| anyhow!(m))?;
    Ok(snap)
}

/// Where a volume's snapshots are: a source's snapshot directory, a destination itself.
pub fn snapshots_dir(vol: &Endpoint) -> Result<&str> {
    checked(vol.snapshot_dir.as_deref().unwrap_or(&vol.path))
}

fn snap_path(vol: &Endpoint, snap: &str) -> Result<String> {
    Ok(format!("{}/{}", snapshots_dir(vol)?, checked_snap(snap)?))
}

/// Prints `tool=<btrfs --version>` and `fs=<filesystem type>` of the path or its nearest
/// existing parent (a destination is made by the first receive).
/// A source with a snapshot directory also gets `same=yes|no`: whether that directory (or its
/// nearest existing parent) is on the source's filesystem: the same device under its mounts
/// (`findmnt`; subvolume mounts of one filesystem name the device with `[/subvol]` after it).
pub fn probe(vol: &Endpoint) -> Result<String> {
    let nearest = |var: &str, path: &str| {
        format!(
            "{var}={}; while [ ! -e \"${var}\" ] && [ \"${var}\" != / ]; do {var}=$(dirname \"${var}\"); done",
            q(path)
        )
    };
    let mut script = format!(
        "echo \"tool=$(btrfs --version 2>/dev/null | head -n 1)\"; {}; echo \"fs=$(stat -f -c %T \"$d\" 2>/dev/null)\"",
        nearest("d", checked(&vol.path)?)
    );
    if let Some(sd) = &vol.snapshot_dir {
        script.push_str(&format!(
            "; {}; dev() {{ findmnt -n -o SOURCE -T \"$1\" 2>/dev/null | sed 's/\\[.*//'; }}; \
             if [ -n \"$(dev \"$d\")\" ] && [ \"$(dev \"$d\")\" = \"$(dev \"$s\")\" ]; then echo same=yes; else echo same=no; fi",
            nearest("s", checked(sd)?)
        ));
    }
    Ok(script)
}

/// One script for many volumes: for each, whether it exists (a source: is a subvolume; a
/// destination: a directory holding anything), its marks, and each `ferry.*` snapshot's
/// `btrfs subvolume show` lines (UUID, Received UUID, Creation time, Flags).
pub fn inspect(vols: &[&Endpoint]) -> Result<String> {
    let mut script = String::new();
    for (i, vol) in vols.iter().enumerate() {
        let p = q(checked(&vol.path)?);
        let l = q(snapshots_dir(vol)?);
        let exists = if vol.snapshot_dir.is_some() {
            format!("btrfs subvolume show {p} >/dev/null 2>&1 && echo '{EXISTS}'")
        } else {
            format!("[ -d {p} ] && [ -n \"$(ls -A {p} 2>/dev/null)\" ] && echo '{EXISTS}'")
        };
        script.push_str(&format!(
            "echo '{VOL}{i}'; {exists}; \
             [ -f {p}/{MARKS} ] && sed 's/^/{MARK}/' {p}/{MARKS}; \
             for s in {l}/ferry.*; do [ -d \"$s\" ] || continue; echo \"{SNAP}${{s##*/}}\"; \
             btrfs subvolume show \"$s\" 2>/dev/null | \
             sed -n 's/^[[:space:]]*\\(UUID\\|Received UUID\\|Creation time\\|Flags\\):[[:space:]]*/\\1=/p'; done; "
        ));
    }
    script.push_str("true");
    Ok(script)
}

/// Setup's probe: `probe` plus `free=` bytes available where the volume is (or will be) and,
/// for a source, `used=` bytes under it (`du`, given 20 seconds: a huge tree stays unmeasured).
pub fn probe_space(vol: &Endpoint) -> Result<String> {
    let mut script = format!(
        "{}; echo \"free=$(df -P -B1 \"$d\" 2>/dev/null | awk 'NR==2{{print $4}}')\"",
        probe(vol)?
    );
    if vol.snapshot_dir.is_some() {
        script.push_str(&format!(
            "; echo \"used=$(timeout 20 du -sxB1 {} 2>/dev/null | cut -f1)\"",
            q(checked(&vol.path)?)
        ));
    }
    Ok(script)
}

/// Probe and listing in one exec.
pub fn probe_and_inspect(vols: &[&Endpoint]) -> Result<String> {
    let first = vols.first().ok_or_else(|| anyhow!("no volume to inspect"))?;
    Ok(format!(
        "{{ {}; }} 2>/dev/null; echo '{SECTION}'; {}",
        probe(first)?,
        inspect(vols)?
    ))
}

/// The line between the probe's output and the listing's in `probe_and_inspect`.
pub const SECTION: &str = "#ferry-inspect";

/// A read-only snapshot of the source in its snapshot directory (made if missing).
pub fn snapshot(vol: &Endpoint, snap: &str) -> Result<String> {
    Ok(format!(
        "mkdir -p {} && btrfs subvolume snapshot -r {} {} >/dev/null",
        q(snapshots_dir(vol)?),
        q(checked(&vol.path)?),
        q(&snap_path(vol, snap)?)
    ))
}

/// `btrfs send`, incremental against `from` when given.
pub fn send(vol: &Endpoint, snap: &str, from: Option<&str>) -> Result<String> {
    let parent = match from {
        Some(f) => format!("-p {} ", q(&snap_path(vol, f)?)),
        None => String::new(),
    };
    Ok(format!("btrfs send -q {parent}{}", q(&snap_path(vol, snap)?)))
}

/// The destination's note of the snapshot a receive is writing, until it is complete.
pub const RECEIVING: &str = ".ferry-receiving";
/// What the receive script says when a replica was made writable by hand (`classify` reads it).
pub const CHANGED_BY_HAND: &str = "was made writable (changed by hand)";

/// Receives `snap` into the destination directory. First what an interrupted receive left goes:
/// the subvolume `.ferry-receiving` names, if it has no received UUID yet (btrfs sets it, and
/// read-only, only at the end). Then any other writable `ferry.*` subvolume was changed by hand:
/// the receive refuses, or with `force` deletes it (as `zfs receive -F` rolls changes back).
/// The note is written before the receive starts and removed when it succeeded.
pub fn receive(vol: &Endpoint, snap: &str, force: bool) -> Result<String> {
    let d = q(checked(&vol.path)?);
    let snap = q(checked_snap(snap)?);
    let note = q(&format!("{}/{RECEIVING}", vol.path));
    let on_hand = if force {
        "btrfs subvolume delete \"$s\" >/dev/null || exit 1".to_string()
    } else {
        format!(
            "echo \"ferry: destination snapshot $s {CHANGED_BY_HAND}: not received over; \
             make it read-only again or rerun with --force to delete it\" >&2; exit 3"
        )
    };
    Ok(format!(
        "mkdir -p {d} || exit 1; \
         if [ -f {note} ]; then n=$(cat {note}); case \"$n\" in ferry.*/*|ferry.*..*) ;; ferry.*) \
         if btrfs subvolume show {d}/\"$n\" 2>/dev/null | grep -q '^[[:space:]]*Received UUID:[[:space:]]*-$'; then \
         btrfs subvolume delete {d}/\"$n\" >/dev/null || exit 1; fi;; esac; fi; \
         for s in {d}/ferry.*; do [ -d \"$s\" ] || continue; \
         if ! btrfs property get -ts \"$s\" ro 2>/dev/null | grep -q 'ro=true'; then {on_hand}; fi; done; \
         printf '%s\\n' {snap} > {note} && btrfs receive -q {d} && rm -f {note}"
    ))
}

/// Writes the marks file beside the replica: to a temporary file, synced, then renamed over.
pub fn record(vol: &Endpoint, marks: &Marks) -> Result<String> {
    let d = checked(&vol.path)?;
    checked_snap(marks.snapshot)?;
    if !marks.fingerprint.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("invalid fingerprint {:?}", marks.fingerprint);
    }
    let tmp = q(&format!("{d}/{MARKS}.tmp"));
    let lines = [
        format!("fingerprint={}", marks.fingerprint),
        format!("source={}", marks.source),
        format!("lastsnap={}", marks.snapshot),
    ];
    let words: Vec<String> = lines.iter().map(|l| q(l)).collect();
    Ok(format!(
        "printf '%s\\n' {} > {tmp} && sync {tmp} && mv -f {tmp} {} && sync {}",
        words.join(" "),
        q(&format!("{d}/{MARKS}")),
        q(d)
    ))
}

/// Deletes each snapshot on its own, printing `destroyed|absent|failed <name>[\t<error>]`.
pub fn destroy_each(vol: &Endpoint, snaps: &[String]) -> Result<String> {
    let mut script = String::new();
    for s in snaps {
        let path = q(&snap_path(vol, s)?);
        let name = q(s);
        script.push_str(&format!(
            "if [ ! -e {path} ]; then echo absent {name}; \
             elif e=$(btrfs subvolume delete {path} 2>&1 >/dev/null); then echo destroyed {name}; \
             else printf 'failed %s\\t%s\\n' {name} \"$(echo \"$e\" | tr '\\n\\t' '  ')\"; fi; "
        ));
    }
    script.push_str("true");
    Ok(script)
}

/// `verify`: the snapshot's `btrfs subvolume show` fields (UUID, Received UUID, Flags).
pub fn show(vol: &Endpoint, snap: &str) -> Result<String> {
    Ok(format!(
        "btrfs subvolume show {} | sed -n 's/^[[:space:]]*\\(UUID\\|Received UUID\\|Flags\\):[[:space:]]*/\\1=/p'",
        q(&snap_path(vol, snap)?)
    ))
}

/// The subvolumes nested in a subvolume, at any depth, parents before their children: a
/// subvolume's root directory has inode 256, and `-xdev` stops `find` at each one, so each level
/// is one more `find`.
pub fn tree(vol: &Endpoint) -> Result<String> {
    Ok(format!(
        "walk() {{ find \"$1\" -mindepth 1 -xdev -type d -inum 256 -print 2>/dev/null | \
         while IFS= read -r s; do printf '%s\\n' \"$s\"; walk \"$s\"; done; }}; walk {}",
        q(checked(&vol.path)?)
    ))
}

/// Every entry of the destination directory, one per line (nothing when it does not exist).
pub fn descendants(vol: &Endpoint) -> Result<String> {
    let d = q(checked(&vol.path)?);
    Ok(format!("[ -d {d} ] && ls -A1 {d}; true"))
}

/// Removes the emptied destination: its marks and receive note, then the directory (rmdir:
/// refuses if anything appeared in it since the check). Already gone is success.
pub fn destroy_volume(vol: &Endpoint) -> Result<String> {
    let d = checked(&vol.path)?;
    Ok(format!(
        "[ -e {dq} ] || exit 0; rm -f {m} {r} && rmdir {dq}",
        dq = q(d),
        m = q(&format!("{d}/{MARKS}")),
        r = q(&format!("{d}/{RECEIVING}"))
    ))
}

/// Whether the directory that will hold the destination exists.
pub fn parent_exists(vol: &Endpoint) -> Result<String> {
    Ok(format!(
        "[ -d {} ] && echo yes || echo no",
        q(&parent(checked(&vol.path)?))
    ))
}

/// Setup: makes the destination directory (and its parents).
pub fn create_destination(vol: &Endpoint) -> Result<String> {
    Ok(format!("mkdir -p {}", q(checked(&vol.path)?)))
}

/// btrfs filesystems mounted on the host: mount point, size, used, and `-` for health.
pub fn filesystems() -> String {
    "df -B1 -t btrfs --output=target,size,used 2>/dev/null | tail -n +2".into()
}

pub fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".into(),
        Some((p, _)) => p.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Endpoint {
        let mut e = Endpoint::local("/srv/data");
        e.snapshot_dir = Some("/srv/.ferry-snapshots".into());
        e
    }

    #[test]
    fn snapshots_of_a_source_live_in_its_snapshot_dir() {
        let s = snapshot(&src(), "ferry.ab.20260101T000000Z").unwrap();
        assert!(
            s.contains("snapshot -r /srv/data /srv/.ferry-snapshots/ferry.ab.20260101T000000Z"),
            "{s}"
        );
        let s = send(&src(), "ferry.ab.2", Some("ferry.ab.1")).unwrap();
        assert_eq!(
            s,
            "btrfs send -q -p /srv/.ferry-snapshots/ferry.ab.1 /srv/.ferry-snapshots/ferry.ab.2"
        );
        let d = Endpoint::local("/backup/data");
        let s = destroy_each(&d, &["ferry.ab.1".into()]).unwrap();
        assert!(s.contains("delete /backup/data/ferry.ab.1"), "{s}");
    }

    #[test]
    fn bad_names_never_reach_a_command() {
        assert!(snapshot(&src(), "../x").is_err());
        assert!(snapshot(&src(), "a b").is_err());
        assert!(receive(&Endpoint::local("/b/$(x)"), "ferry.a.1", false).is_err());
        assert!(receive(&Endpoint::local("relative"), "ferry.a.1", false).is_err());
        assert!(receive(&Endpoint::local("/b/d"), "../x", false).is_err());
        let marks = Marks {
            fingerprint: "ab;rm",
            source: "h:/s",
            snapshot: "ferry.ab.1",
            first: true,
        };
        assert!(record(&Endpoint::local("/b/d"), &marks).is_err());
    }

    #[test]
    fn parents() {
        assert_eq!(parent("/backup/data"), "/backup");
        assert_eq!(parent("/data"), "/");
    }
}
