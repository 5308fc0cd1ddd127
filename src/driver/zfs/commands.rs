//! The only place zfs and zpool command lines are built. Every name is validated, then quoted.

use crate::config::names::shell_quote as q;
use crate::driver::{Base, Keep, Stream};
use crate::model::names::check_dataset;

/// Property names ferry records on the destination with the data.
pub const PROP_FINGERPRINT: &str = "ferry:fingerprint";
pub const PROP_SOURCE: &str = "ferry:source";
pub const PROP_LASTSNAP: &str = "ferry:lastsnap";

/// Checks a dataset name and a snapshot part before they reach a command line.
pub fn checked(ds: &str) -> anyhow::Result<&str> {
    check_dataset(ds).map_err(|m| anyhow::anyhow!(m))?;
    Ok(ds)
}

fn checked_snap(snap: &str) -> anyhow::Result<&str> {
    // ferry's own and the snapshots it adopts never hold a space: stricter than datasets
    if snap.is_empty() || snap.contains('/') || snap.contains('@') || snap.contains(' ') {
        anyhow::bail!("invalid snapshot name {snap:?}");
    }
    check_dataset(snap).map_err(|m| anyhow::anyhow!(m.replace("dataset", "snapshot")))?;
    Ok(snap)
}

pub fn full_name(ds: &str, snap: &str) -> anyhow::Result<String> {
    Ok(format!("{}@{}", checked(ds)?, checked_snap(snap)?))
}

/// One command that prints key=value lines describing what this host's zfs supports.
/// Works on pool v23 (zfs-fuse) and current OpenZFS; `zpool get` without -H because v23 lacks it.
pub fn probe(ds: &str) -> anyhow::Result<String> {
    let pool = checked(ds)?.split('/').next().unwrap_or(ds);
    let p = q(pool);
    Ok(format!(
        "echo \"version=$(zpool get version {p} 2>/dev/null | awk 'NR==2{{print $3}}')\"; \
         if zfs list -p -H -o name {p} >/dev/null 2>&1; then echo listp=1; else echo listp=0; fi; \
         if zfs get -H -o value receive_resume_token {p} >/dev/null 2>&1; then echo resume=1; else echo resume=0; fi; \
         if zfs send 2>&1 | grep -q 'send \\[-[A-Za-z]*P'; then echo sendP=1; else echo sendP=0; fi; \
         if zpool get -H -o value feature@async_destroy {p} >/dev/null 2>&1; then echo features=1; else echo features=0; fi; \
         if zfs send 2>&1 | grep -q 'send \\[-[A-Za-z]*c'; then echo sendc=1; else echo sendc=0; fi; \
         if zfs receive 2>&1 | grep -q -- '-x '; then echo recvx=1; else echo recvx=0; fi; \
         zpool get -H -o property,value feature@bookmarks,feature@large_blocks,feature@embedded_data,feature@encryption {p} 2>/dev/null | tr '\\t' '='"
    ))
}

/// Lists each dataset, its snapshots (depth 1) and ferry's properties in one command.
/// Missing datasets print an error on stderr and are left out; the exit code is then 1.
/// The listing has the bookmarks too (`ds#name`: `zfs get` lists every type). Then each
/// dataset's `receive_resume_token` and encryption in the same shape, where the pool has them
/// (pool v23 has none: that `zfs get` fails quietly and the listing's exit code stands).
pub fn inspect(datasets: &[&str]) -> anyhow::Result<String> {
    let mut names = String::new();
    for ds in datasets {
        names.push(' ');
        names.push_str(&q(checked(ds)?));
    }
    Ok(format!(
        "zfs get -Hp -d 1 -o name,property,value,source creation,referenced,{PROP_FINGERPRINT},{PROP_SOURCE},{PROP_LASTSNAP}{names}; \
         rc=$?; zfs get -H -o name,property,value,source {PROP_RESUME_TOKEN},{PROP_ENCRYPTION},encryptionroot,keyformat,keystatus{names} 2>/dev/null; exit $rc"
    ))
}

/// A dataset's encryption (`off`, or the cipher); OpenZFS only, read beside the resume token.
pub const PROP_ENCRYPTION: &str = "encryption";

/// The property a resumable receive leaves on a dataset it was cut in.
pub const PROP_RESUME_TOKEN: &str = "receive_resume_token";

/// The line between the probe's output and the listing's in `probe_and_inspect`.
pub const SECTION: &str = "#ferry-inspect";

/// Probe and listing in one exec: an update needs both, and each exec is a round trip.
pub fn probe_and_inspect(datasets: &[&str]) -> anyhow::Result<String> {
    let first = datasets
        .first()
        .ok_or_else(|| anyhow::anyhow!("no dataset to inspect"))?;
    Ok(format!(
        "{{ {}; }} 2>/dev/null; echo '{SECTION}'; {}",
        probe(first)?,
        inspect(datasets)?
    ))
}

pub fn snapshot(ds: &str, snap: &str) -> anyhow::Result<String> {
    Ok(format!("zfs snapshot {}", q(&full_name(ds, snap)?)))
}

/// Snapshot, then send it in the same exec: saves a round trip per update.
/// `from` makes it incremental (`send`).
pub fn snapshot_and_send(ds: &str, snap: &str, from: Option<Base>, stream: Stream) -> anyhow::Result<String> {
    Ok(format!("{} && {}", snapshot(ds, snap)?, send(ds, snap, from, stream)?))
}

/// A bookmark's full name, `ds#name` (ferry's are named after their snapshot).
pub fn bookmark_name(ds: &str, name: &str) -> anyhow::Result<String> {
    Ok(format!("{}#{}", checked(ds)?, checked_snap(name)?))
}

/// The incremental part of a send: from a snapshot with every intermediate one (`-I`), or from
/// a bookmark (`-i`: a bookmark can only start a single increment).
fn incremental(ds: &str, from: Option<Base>) -> anyhow::Result<String> {
    Ok(match from {
        Some(Base::Snapshot(f)) => format!("-I {} ", q(&full_name(ds, f)?)),
        Some(Base::Bookmark(f)) => format!("-i {} ", q(&bookmark_name(ds, f)?)),
        None => String::new(),
    })
}

/// The stream's flags: `-p` sends the dataset's properties; `-w` sends an encrypted dataset as it
/// is stored (never decrypted on the way); `-L`, `-e`, `-c` keep large, embedded and compressed
/// blocks as they are.
fn flags(stream: Stream) -> String {
    let mut f = String::new();
    for (on, flag) in [
        (stream.properties, "-p "),
        (stream.large_blocks, "-L "),
        (stream.embedded, "-e "),
        (stream.compressed, "-c "),
        (stream.raw, "-w "),
    ] {
        if on {
            f.push_str(flag);
        }
    }
    f
}

pub fn send(ds: &str, snap: &str, from: Option<Base>, stream: Stream) -> anyhow::Result<String> {
    let to = q(&full_name(ds, snap)?);
    Ok(format!("zfs send {}{}{to}", flags(stream), incremental(ds, from)?))
}

/// Size estimate of a send, where `zfs send -nP` exists; prints a `size <bytes>` line.
/// With the flags the send will have: a raw or compressed stream is the blocks as stored, so its
/// size differs.
pub fn send_estimate(ds: &str, snap: &str, from: Option<Base>, stream: Stream) -> anyhow::Result<String> {
    let to = q(&full_name(ds, snap)?);
    Ok(format!(
        "zfs send -nP {}{}{to} 2>&1",
        flags(stream),
        incremental(ds, from)?
    ))
}

/// The snapshot, then the size estimate of its send in the same exec: exits non-zero only when
/// the snapshot failed (the estimate's own failure leaves no `size` line).
pub fn snapshot_and_estimate(ds: &str, snap: &str, from: Option<Base>, stream: Stream) -> anyhow::Result<String> {
    Ok(format!(
        "{} || exit $?; {}; true",
        snapshot(ds, snap)?,
        send_estimate(ds, snap, from, stream)?
    ))
}

/// `referenced` of a snapshot: the estimate of a full stream where `send -nP` is missing.
pub fn referenced(ds: &str, snap: &str) -> anyhow::Result<String> {
    Ok(format!("zfs get -Hp -o value referenced {}", q(&full_name(ds, snap)?)))
}

/// Receives into `ds`. `force` adds -F (roll back changes made on the destination by hand);
/// `resumable` adds -s, where the pool has resume tokens: a cut receive keeps what arrived and
/// leaves a `receive_resume_token` for the next run. `keep_mountpoint` (a stream with the
/// source's properties) adds `-x mountpoint`: the replica inherits the destination's, and never
/// mounts over the source's path on the destination host.
pub fn receive(ds: &str, force: bool, resumable: bool, keep_mountpoint: bool) -> anyhow::Result<String> {
    let f = if force { "-F " } else { "" };
    let s = if resumable { "-s " } else { "" };
    let x = if keep_mountpoint { "-x mountpoint " } else { "" };
    Ok(format!("zfs receive {f}{s}{x}{}", q(checked(ds)?)))
}

/// Keeps `ds@new` as the pair's checkpoint, in one exec: held under the pair's tag
/// (`ferry.<fp>`) with `ds@old` released from it, and bookmarked as `ds#new` with the pair's
/// older bookmarks destroyed. Prints nothing unless holding or bookmarking failed (a tag or a
/// bookmark already there is no failure), and a release of a snapshot that is gone or was never
/// held is none either.
pub fn keep_checkpoint(ds: &str, keep: &Keep) -> anyhow::Result<String> {
    let tag = keep.tag;
    if !tag.starts_with("ferry.") || !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        anyhow::bail!("invalid hold tag {tag:?}");
    }
    let new = q(&full_name(ds, keep.new)?);
    let mut parts = Vec::new();
    if keep.hold {
        parts.push(format!(
            "e=$(zfs hold {tag} {new} 2>&1) || case \"$e\" in *'tag already exists'*) ;; *) printf '%s\\n' \"$e\";; esac"
        ));
        if let Some(old) = keep.old.filter(|o| *o != keep.new) {
            parts.push(format!("zfs release {tag} {} >/dev/null 2>&1", q(&full_name(ds, old)?)));
        }
    }
    if keep.bookmark {
        let mark = q(&bookmark_name(ds, keep.new)?);
        let ours = q(&format!("{}#{tag}.", checked(ds)?));
        // the older bookmarks go only once the new one is there: never none left
        parts.push(format!(
            "if e=$(zfs bookmark {new} {mark} 2>&1) || case \"$e\" in *'already exists'*) true;; *) false;; esac; then \
             zfs list -H -o name -t bookmark -d 1 {} 2>/dev/null | while read -r b; do \
             case \"$b\" in {mark}) ;; {ours}*) zfs destroy \"$b\" >/dev/null 2>&1;; esac; done; \
             else printf '%s\\n' \"$e\"; fi",
            q(checked(ds)?)
        ));
    }
    parts.push("true".into());
    Ok(parts.join("; "))
}

/// A resume token as zfs prints it (`1-<hex>-<hex>-<hex>`): checked before it reaches a command
/// line, since it is read from the remote side.
fn checked_token(token: &str) -> anyhow::Result<&str> {
    if token.is_empty() || token.len() > 64 * 1024 || !token.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        anyhow::bail!("invalid receive_resume_token {:?}", crate::text::clip(token, 80));
    }
    Ok(token)
}

/// The rest of an interrupted send, from the destination's resume token.
pub fn resume_send(token: &str) -> anyhow::Result<String> {
    Ok(format!("zfs send -t {}", checked_token(token)?))
}

/// What the rest of an interrupted send would be (`size` line), and whether the source can still
/// make it: fails when the snapshot it was sending is gone.
pub fn resume_estimate(token: &str) -> anyhow::Result<String> {
    Ok(format!("zfs send -nP -t {} 2>&1", checked_token(token)?))
}

/// Drops a partial receive's saved state (its resume token) from `ds`.
pub fn abort_resume(ds: &str) -> anyhow::Result<String> {
    Ok(format!("zfs receive -A {}", q(checked(ds)?)))
}

/// Sets properties one `zfs set` each: pool v23 takes a single property per call.
pub fn set_properties(ds: &str, props: &[(&str, &str)]) -> anyhow::Result<String> {
    let ds = q(checked(ds)?);
    let mut parts = Vec::new();
    for (k, v) in props {
        if !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.'))
        {
            anyhow::bail!("invalid property name {k:?}");
        }
        parts.push(format!("zfs set {} {ds}", q(&format!("{k}={v}"))));
    }
    Ok(parts.join(" && "))
}

/// The markers `destroy_each` prints per snapshot, one line each: `destroyed<TAB>ds@snap` or
/// `failed<TAB>ds@snap<TAB>error text on one line`, after a failure also
/// `userrefs<TAB>ds@snap<TAB>count` (zfs says "busy" for a user hold and a send's alike: the
/// snapshot's user references tell them apart).
pub const DESTROYED: &str = "destroyed";
pub const FAILED: &str = "failed";
pub const USERREFS: &str = "userrefs";

/// Destroys snapshots one by one (pool v23 has no `ds@a,b` list syntax), each independently of
/// the others: one busy or held snapshot must not stop the rest. One exec for all; every
/// snapshot's outcome is printed on its own line for `parse::destroyed`.
/// A snapshot of ferry's (`ds@ferry.<fp>.<time>`) is released from the pair's own hold
/// (`ferry.<fp>`) first: ferry destroying it has no more use for the hold; other holds stay.
/// Once such a snapshot is gone (destroyed, or not there), its bookmark (`ds#ferry.<fp>.<time>`)
/// goes too: retention never destroys the checkpoint, so this is an old checkpoint's bookmark,
/// or `purge --all`'s.
pub fn destroy_each(ds: &str, snaps: &[String]) -> anyhow::Result<String> {
    let mut cmd = format!(
        "d() {{ b=; case \"$1\" in *@ferry.*.*) t=${{1#*@}}; b=\"${{1%@*}}#$t\"; zfs release \"${{t%.*}}\" \"$1\" >/dev/null 2>&1;; esac; \
         if e=$(zfs destroy \"$1\" 2>&1); then printf '{DESTROYED}\\t%s\\n' \"$1\"; e=gone; \
         else printf '{FAILED}\\t%s\\t%s\\n' \"$1\" \"$(printf %s \"$e\" | tr '\\n\\t' '  ')\"; \
         printf '{USERREFS}\\t%s\\t%s\\n' \"$1\" \"$(zfs get -H -o value userrefs \"$1\" 2>/dev/null)\"; fi; \
         case \"$b:$e\" in :*) ;; *:gone|*'does not exist'*|*'could not find'*) zfs destroy \"$b\" >/dev/null 2>&1;; esac; }}"
    );
    for s in snaps {
        cmd.push_str("; d ");
        cmd.push_str(&q(&full_name(ds, s)?));
    }
    Ok(cmd)
}

/// Every dataset and snapshot under `ds` (itself included) with its `ferry:fingerprint` and
/// where that value comes from: what `purge --all` would destroy, checked before it does.
pub fn descendants(ds: &str) -> anyhow::Result<String> {
    Ok(format!(
        "zfs get -H -r -o name,value,source {PROP_FINGERPRINT} {}",
        q(checked(ds)?)
    ))
}

/// Destroys a dataset alone (purge --all, after its snapshots): without -r, so zfs refuses
/// when anything is still under it rather than destroying it.
pub fn destroy_dataset(ds: &str) -> anyhow::Result<String> {
    Ok(format!("zfs destroy {}", q(checked(ds)?)))
}

/// Creates a dataset's parents (not the dataset: the first receive creates it). Created counts
/// even where mounting it failed: on Linux only root mounts, and an account with `zfs allow`
/// gets the dataset and an error about the mount.
pub fn create_parent(ds: &str) -> anyhow::Result<Option<String>> {
    let ds = checked(ds)?;
    Ok(ds.rsplit_once('/').map(|(parent, _)| {
        let p = q(parent);
        format!(
            "zfs list -H -o name {p} >/dev/null 2>&1 || zfs create -p {p} || zfs list -H -o name {p} >/dev/null 2>&1"
        )
    }))
}

/// Does the parent exist: prints "yes" or "no".
pub fn parent_exists(ds: &str) -> anyhow::Result<Option<String>> {
    let ds = checked(ds)?;
    Ok(ds.rsplit_once('/').map(|(parent, _)| {
        format!(
            "if zfs list -H -o name {} >/dev/null 2>&1; then echo yes; else echo no; fi",
            q(parent)
        )
    }))
}

/// `verify`: the checkpoint's guid, and what the dataset wrote since it (`written`, where the
/// pool has it: `-` on pool v23) with both `referenced` figures for the fallback.
pub fn verify(ds: &str, snap: &str) -> anyhow::Result<String> {
    let full = q(&full_name(ds, snap)?);
    let d = q(checked(ds)?);
    Ok(format!(
        "zfs get -Hp -o property,value guid,referenced {full} && echo '#volume' && \
         {{ zfs get -Hp -o property,value written {d} 2>/dev/null || true; }} && \
         zfs get -Hp -o property,value referenced {d}"
    ))
}

/// The filesystems and volumes under `ds`, itself first, parents before children (zfs sorts by name).
pub fn tree(ds: &str) -> anyhow::Result<String> {
    Ok(format!(
        "zfs list -H -r -o name -t filesystem,volume {}",
        q(checked(ds)?)
    ))
}

/// The host's pools with size, allocation and health (the console's hosts view).
pub fn pools() -> String {
    "zpool list -H -o name,size,alloc,health".to_string()
}

pub fn mount(ds: &str) -> anyhow::Result<String> {
    let ds = q(checked(ds)?);
    Ok(format!("zfs mount {ds} 2>/dev/null; true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_quoted_commands() {
        let raw = Stream {
            raw: true,
            ..Stream::default()
        };
        assert_eq!(
            snapshot_and_send(
                "tank/data",
                "ferry.ab.20261121T000000Z",
                Some(Base::Snapshot("ferry.ab.20261120T000000Z")),
                Stream::default()
            )
            .unwrap(),
            "zfs snapshot tank/data@ferry.ab.20261121T000000Z && zfs send -I tank/data@ferry.ab.20261120T000000Z tank/data@ferry.ab.20261121T000000Z"
        );
        assert_eq!(
            send("tank/data", "s2", Some(Base::Snapshot("s1")), raw).unwrap(),
            "zfs send -w -I tank/data@s1 tank/data@s2"
        );
        // a bookmark starts a single increment
        assert_eq!(
            send("tank/data", "s2", Some(Base::Bookmark("s1")), Stream::default()).unwrap(),
            "zfs send -i 'tank/data#s1' tank/data@s2"
        );
        assert_eq!(
            send_estimate("tank/data", "s2", Some(Base::Bookmark("s1")), raw).unwrap(),
            "zfs send -nP -w -i 'tank/data#s1' tank/data@s2 2>&1"
        );
        assert_eq!(
            send_estimate("tank/data", "s1", None, raw).unwrap(),
            "zfs send -nP -w tank/data@s1 2>&1"
        );
        assert_eq!(
            snapshot_and_estimate("t/d", "s2", Some(Base::Snapshot("s1")), Stream::default()).unwrap(),
            "zfs snapshot t/d@s2 || exit $?; zfs send -nP -I t/d@s1 t/d@s2 2>&1; true"
        );
        let all = Stream {
            raw: true,
            large_blocks: true,
            embedded: true,
            compressed: true,
            properties: true,
        };
        assert_eq!(
            send("tank/data", "s1", None, all).unwrap(),
            "zfs send -p -L -e -c -w tank/data@s1"
        );
        assert_eq!(
            receive("backup/data", false, false, false).unwrap(),
            "zfs receive backup/data"
        );
        assert_eq!(
            receive("backup/data", true, true, false).unwrap(),
            "zfs receive -F -s backup/data"
        );
        assert_eq!(
            receive("backup/data", false, true, true).unwrap(),
            "zfs receive -s -x mountpoint backup/data"
        );
        assert_eq!(
            set_properties("b/d", &[("readonly", "on"), ("ferry:source", "s1:tank/d")]).unwrap(),
            "zfs set readonly=on b/d && zfs set ferry:source=s1:tank/d b/d"
        );
        let d = destroy_each("t/d", &["a".into(), "b".into()]).unwrap();
        // ferry's own snapshots lose the pair's hold first; then each is destroyed on its own
        assert!(
            d.starts_with(
                "d() { b=; case \"$1\" in *@ferry.*.*) t=${1#*@}; b=\"${1%@*}#$t\"; zfs release \"${t%.*}\" \"$1\""
            ),
            "{d}"
        );
        assert!(
            d.contains("if e=$(zfs destroy \"$1\" 2>&1); then printf 'destroyed\\t%s\\n'"),
            "{d}"
        );
        assert!(d.ends_with("; d t/d@a; d t/d@b"), "{d}");
        assert!(destroy_each("t/d", &["a;rm -rf /".into()]).is_err());
        assert_eq!(create_parent("top").unwrap(), None);
    }

    #[test]
    fn refuses_bad_names() {
        assert!(snapshot("tank/d;rm -rf /", "x").is_err());
        assert!(snapshot("tank/d", "x y").is_err());
        assert!(snapshot("tank/d", "a@b").is_err());
        assert!(receive("../x", false, true, false).is_err());
        assert!(resume_send("1-abc-def; rm -rf /").is_err());
        assert!(resume_send("").is_err());
        let keep = |old, new, hold, bookmark| Keep {
            tag: "ferry.ab12",
            old,
            new,
            hold,
            bookmark,
        };
        assert!(keep_checkpoint(
            "t/d",
            &Keep {
                tag: "ferry.x;rm",
                ..keep(None, "s", true, true)
            }
        )
        .is_err());
        let m = keep_checkpoint("t/d", &keep(Some("ferry.ab12.1"), "ferry.ab12.2", true, false)).unwrap();
        assert!(m.contains("zfs hold ferry.ab12 t/d@ferry.ab12.2 "), "{m}");
        assert!(m.contains("zfs release ferry.ab12 t/d@ferry.ab12.1 "), "{m}");
        assert!(!m.contains("bookmark"), "{m}");
        assert!(!keep_checkpoint("t/d", &keep(Some("s"), "s", true, false))
            .unwrap()
            .contains("release"));
        let b = keep_checkpoint("t/d", &keep(Some("ferry.ab12.1"), "ferry.ab12.2", false, true)).unwrap();
        assert!(!b.contains("zfs hold"), "{b}");
        assert!(b.contains("zfs bookmark t/d@ferry.ab12.2 't/d#ferry.ab12.2'"), "{b}");
        // only the pair's own older bookmarks go, and only once the new one is there
        assert!(
            b.contains("case \"$b\" in 't/d#ferry.ab12.2') ;; 't/d#ferry.ab12.'*) zfs destroy"),
            "{b}"
        );
        assert!(b.find("zfs bookmark").unwrap() < b.find("zfs destroy").unwrap(), "{b}");
        assert!(keep_checkpoint("t/d", &keep(None, "a b", false, true)).is_err());
        assert_eq!(resume_send("1-c4ab-b8-789c").unwrap(), "zfs send -t 1-c4ab-b8-789c");
        assert!(set_properties("t/d", &[("a b", "c")]).is_err());
    }
}
