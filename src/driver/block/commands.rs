//! The only place block-volume command lines are built: the shell that reads a volume and its
//! state directory, and the `ferry peer` lines that do the work on each host. Every path is
//! validated, then quoted.

use anyhow::{anyhow, Result};

use crate::config::names::shell_quote as q;
use crate::config::{BlockSide, Endpoint};
use crate::model::names::check_block_path;

/// Line prefixes of the inspect script's output, read by `parse`.
pub const VOL: &str = "#vol ";
pub const NAME: &str = "#name ";
/// Probe output: the peer's answer to `ferry peer version`, or why there was none.
pub const PEER: &str = "#peer ";
pub const FS: &str = "#fs ";
pub const FREE: &str = "#free ";
/// Probe output: the bytes a file volume occupies (`<blocks> <block size>`: sparse holes take none).
pub const ALLOC: &str = "#alloc ";
/// Probe output: the free bytes where the side's state dir (the journal) goes, and `same` or
/// `apart` for whether that is the volume's filesystem.
pub const STATE: &str = "#state ";
pub const SECTION: &str = "#--\n";
/// Leftovers `purge` removes: a cut transfer's unsealed journal (the chunks a resume would not
/// send again), the point-in-time clone of a killed run.
pub const JOURNAL: &str = "journal";
pub const CLONE: &str = "clone";

/// The block side of a volume (config load gives every block pair's endpoints one).
pub fn side(vol: &Endpoint) -> Result<&BlockSide> {
    vol.block.as_ref().ok_or_else(|| anyhow!("{vol}: not a block volume"))
}

fn checked(path: &str) -> Result<&str> {
    check_block_path(path).map_err(|m| anyhow!(m))?;
    Ok(path)
}

/// A checkpoint's name: ferry's snapshot alphabet.
fn checked_snap(snap: &str) -> Result<&str> {
    crate::model::names::check_snapshot_name(snap).map_err(|m| anyhow!(m))?;
    Ok(snap)
}

/// The sbin directories hold blockdev; a plain account's PATH may lack them.
const PATH: &str = "PATH=$PATH:/usr/sbin:/sbin; ";

/// For each volume: `#vol N file|device|other|missing [size]`, then `#name N <file> <name file>`
/// for each name file its state directory holds, `#name N sealed -` where an apply or the
/// recording of its checkpoint is unfinished (a next manifest or name: until the next receive
/// settles it, the checkpoint on record may not be what the replica holds), and the leftovers.
pub fn inspect(vols: &[&Endpoint]) -> Result<String> {
    let mut script = String::from(PATH);
    for (i, v) in vols.iter().enumerate() {
        let p = q(checked(&v.path)?);
        let s = q(checked(&side(v)?.state)?);
        script.push_str(&format!(
            "if [ -f {p} ]; then echo '{VOL}{i} file' $(stat -L -c %s {p}); \
             elif [ -b {p} ]; then echo '{VOL}{i} device' $(blockdev --getsize64 {p} 2>/dev/null); \
             elif [ -e {p} ]; then echo '{VOL}{i} other'; else echo '{VOL}{i} missing'; fi; \
             for f in checkpoint source planned; do [ -f {s}/$f.name ] && echo '{NAME}{i}' $f $(head -c 300 {s}/$f.name); done; \
             if [ -f {s}/next.manifest ] || [ -f {s}/next.name ]; then echo '{NAME}{i} sealed -'; fi; \
             [ -f {s}/journal ] && [ ! -f {s}/next.manifest ] && echo '{NAME}{i} {JOURNAL} -'; \
             [ -f {s}/snapshot ] && echo '{NAME}{i} {CLONE} -'; "
        ));
    }
    script.push_str("true");
    Ok(script)
}

/// The peer's version, the filesystem type under the volume (or its nearest existing parent)
/// and the bytes free there.
pub fn probe(vol: &Endpoint) -> Result<String> {
    let b = side(vol)?;
    let ferry = q(&b.ferry);
    let at = q(checked(&vol.path)?);
    let st = q(checked(&b.state)?);
    Ok(format!(
        "{PATH}a={at}; while [ ! -e \"$a\" ] && [ \"$a\" != / ]; do a=$(dirname \"$a\"); done; \
         if v=$({ferry} peer version 2>&1); then echo '{PEER}'\"$v\"; else echo '{PEER}missing '\"$(echo \"$v\" | head -c 300 | tr '\\n' ' ')\"; fi; \
         echo '{FS}'$(stat -f -c %T \"$a\" 2>/dev/null); \
         if [ -b {at} ]; then echo '{FREE}device'; else echo '{FREE}'$(df -B1 --output=avail \"$a\" 2>/dev/null | tail -n 1); fi; \
         [ -f {at} ] && echo '{ALLOC}'$(stat -L -c '%b %B' {at}); \
         s={st}; while [ ! -e \"$s\" ] && [ \"$s\" != / ]; do s=$(dirname \"$s\"); done; \
         if [ \"$(stat -L -c %d \"$s\" 2>/dev/null)\" = \"$(stat -L -c %d \"$a\" 2>/dev/null)\" ] && [ ! -b {at} ]; then w=same; else w=apart; fi; \
         echo '{STATE}'$(df -B1 --output=avail \"$s\" 2>/dev/null | tail -n 1) $w"
    ))
}

/// The sender on the source's host; `name` is the checkpoint this run makes.
pub fn send(vol: &Endpoint, name: &str) -> Result<String> {
    let b = side(vol)?;
    let mut cmd = format!(
        "{} peer block-send --path {} --state {} --name {} --chunk {} --algo {}",
        q(&b.ferry),
        q(checked(&vol.path)?),
        q(checked(&b.state)?),
        q(checked_snap(name)?),
        b.chunk,
        crate::block::DEFAULT_ALGO.name()
    );
    if b.reflink {
        cmd.push_str(" --reflink");
    }
    if b.compress {
        cmd.push_str(" --compress");
    }
    cmd.push_str(&format!(" --idle-timeout {}", b.idle_timeout));
    Ok(cmd)
}

/// The receiver on the destination's host; `repair` rereads the replica for its base.
pub fn receive(vol: &Endpoint, name: &str, repair: bool) -> Result<String> {
    let b = side(vol)?;
    Ok(format!(
        "{} peer block-receive --path {} --state {} --name {} --idle-timeout {}{}",
        q(&b.ferry),
        q(checked(&vol.path)?),
        q(checked(&b.state)?),
        q(checked_snap(name)?),
        b.idle_timeout,
        if repair { " --repair" } else { "" }
    ))
}

/// Rereads the replica against its checkpoint; prints one JSON line.
pub fn verify(vol: &Endpoint) -> Result<String> {
    let b = side(vol)?;
    Ok(format!(
        "{} peer block-verify --path {} --state {}",
        q(&b.ferry),
        q(checked(&vol.path)?),
        q(checked(&b.state)?)
    ))
}

/// Removes a volume's state directory, and the replica itself where it is a file ferry made (a
/// block device is never wiped: only its state goes). Already gone is success.
pub fn destroy(vol: &Endpoint) -> Result<String> {
    let b = side(vol)?;
    let (p, s) = (q(checked(&vol.path)?), q(checked(&b.state)?));
    if b.source {
        return Ok(format!("rm -rf {s}"));
    }
    Ok(format!("if [ -f {p} ]; then rm -f {p} || exit 1; fi; rm -rf {s}"))
}

/// Removes one leftover, printing `destroyed|absent <name>`: an unsealed journal only (a sealed
/// one is an apply to finish, never to drop), the clone.
pub fn remove_leftover(vol: &Endpoint, name: &str) -> Result<String> {
    let s = checked(&side(vol)?.state)?;
    let (file, guard) = match name {
        JOURNAL => (
            format!("{s}/journal"),
            format!(" && [ ! -f {} ]", q(&format!("{s}/next.manifest"))),
        ),
        CLONE => (format!("{s}/snapshot"), String::new()),
        other => return Ok(format!("echo absent {}", q(other))),
    };
    Ok(format!(
        "if [ -f {f} ]{guard}; then rm -f {f} && echo destroyed {name}; else echo absent {name}; fi",
        f = q(&file)
    ))
}

/// Whether the directory that will hold the destination file exists (a device: yes).
pub fn parent_exists(vol: &Endpoint) -> Result<String> {
    let p = checked(&vol.path)?;
    Ok(format!(
        "if [ -b {} ] || [ -d {} ]; then echo yes; else echo no; fi",
        q(p),
        q(&parent(p))
    ))
}

/// Setup: makes the directory that will hold the destination file.
pub fn create_parent(vol: &Endpoint) -> Result<String> {
    Ok(format!("mkdir -p {}", q(&parent(checked(&vol.path)?))))
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

    fn vol(path: &str, source: bool) -> Endpoint {
        let mut e = Endpoint::local(path);
        e.block = Some(BlockSide {
            source,
            ferry: "/usr/local/bin/ferry".into(),
            state: "/srv/img/.ferry-snapshots/block.ab".into(),
            chunk: 4096,
            reflink: true,
            compress: false,
            idle_timeout: 600,
        });
        e
    }

    #[test]
    fn peer_lines_quote_names_and_carry_the_options() {
        let s = send(&vol("/srv/img/vm 1.img", true), "ferry.ab.20260101T000000Z").unwrap();
        assert!(
            s.starts_with("/usr/local/bin/ferry peer block-send --path '/srv/img/vm 1.img'"),
            "{s}"
        );
        assert!(
            s.contains("--chunk 4096")
                && s.contains("--reflink")
                && !s.contains("--compress")
                && s.ends_with("--idle-timeout 600"),
            "{s}"
        );
        let r = receive(&vol("/b/vm.img", false), "ferry.ab.20260101T000000Z", true).unwrap();
        assert!(
            r.ends_with("--name ferry.ab.20260101T000000Z --idle-timeout 600 --repair"),
            "{r}"
        );
        assert!(send(&vol("/srv/a;b", true), "ferry.ab.x").is_err());
        assert!(send(&vol("/srv/a", true), "x;rm").is_err());
    }

    #[test]
    fn a_device_replica_is_never_removed_only_its_state() {
        let d = destroy(&vol("/dev/loop7", false)).unwrap();
        assert!(d.starts_with("if [ -f /dev/loop7 ]"), "{d}");
        let s = destroy(&vol("/srv/img/vm.img", true)).unwrap();
        assert_eq!(s, "rm -rf /srv/img/.ferry-snapshots/block.ab");
    }
}
