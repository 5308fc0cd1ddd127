//! Setup's encryption lines for a ZFS pair: what each side's encryption is, how the stream goes
//! (raw, so the destination never needs the key, unless the pair says `raw = false`), and the
//! cases where the send could not work, each with the command that puts it right.

use crate::driver::{Capabilities, Check, Encryption, VolumeInfo};

fn describe(e: &Encryption) -> String {
    let mut d = e.cipher.clone();
    if let Some(root) = &e.root {
        d.push_str(&format!(", encryption root {root}"));
    }
    if let Some(f) = &e.key_format {
        d.push_str(&format!(", key format {f}"));
    }
    match e.key_loaded {
        Some(true) => d.push_str(", key loaded"),
        Some(false) => d.push_str(", key not loaded"),
        None => {}
    }
    d
}

fn check(ok: bool, what: &str, detail: String) -> Check {
    Check {
        ok,
        what: what.into(),
        detail,
    }
}

/// The source's line (with what the send does about it), then the destination's where the
/// replica exists; none where encryption is out of the question (a plain source, a destination
/// pool without the feature: zfs-fuse's v23).
pub fn checks(raw: bool, source: &VolumeInfo, destination: &VolumeInfo, dst_caps: &Capabilities) -> Vec<Check> {
    let mut out = Vec::new();
    if source.encryption.is_none() && !dst_caps.encryption {
        return out;
    }
    let what = "source encryption";
    match &source.encryption {
        None => out.push(check(true, what, "off".into())),
        Some(e) if raw && !dst_caps.encryption => out.push(check(
            false,
            what,
            format!(
                "{}: sent raw (zfs send -w), but the destination pool lacks feature@encryption: enable it there (`zpool set feature@encryption=enabled POOL`), or set `raw = false` in the pair to send it decrypted",
                describe(e)
            ),
        )),
        Some(e) if raw => out.push(check(
            true,
            what,
            format!(
                "{}: sent raw (zfs send -w): the replica keeps the source's encryption and key format, and the destination never needs the key",
                describe(e)
            ),
        )),
        Some(e) if e.key_loaded == Some(false) => out.push(check(
            false,
            what,
            format!(
                "{}: `raw = false` sends it decrypted, which needs the key loaded on the source (`zfs load-key {}`); or remove `raw = false` to send it raw",
                describe(e),
                e.root.as_deref().unwrap_or("DATASET")
            ),
        )),
        Some(e) => out.push(check(
            true,
            what,
            format!(
                "{}: sent decrypted (`raw = false`): the replica is plaintext unless its parent on the destination is encrypted",
                describe(e)
            ),
        )),
    }
    if destination.exists {
        let detail = match &destination.encryption {
            None => "off".to_string(),
            Some(e) => describe(e),
        };
        out.push(check(true, "destination encryption", detail));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypted(loaded: bool) -> VolumeInfo {
        VolumeInfo {
            exists: true,
            encryption: Some(Encryption {
                cipher: "aes-256-gcm".into(),
                root: Some("tank/secret".into()),
                key_format: Some("passphrase".into()),
                key_loaded: Some(loaded),
            }),
            ..VolumeInfo::default()
        }
    }

    #[test]
    fn an_encrypted_source_goes_raw_where_the_destination_can_hold_it() {
        let with = Capabilities {
            encryption: true,
            ..Capabilities::default()
        };
        let absent = VolumeInfo::default();
        let c = checks(true, &encrypted(false), &absent, &with);
        assert_eq!(c.len(), 1);
        assert!(
            c[0].ok && c[0].detail.contains("sent raw") && c[0].detail.contains("key not loaded"),
            "{c:?}"
        );
        let c = checks(true, &encrypted(true), &absent, &Capabilities::default());
        assert!(!c[0].ok && c[0].detail.contains("feature@encryption"), "{c:?}");
        // decrypted needs the key
        let c = checks(false, &encrypted(false), &absent, &with);
        assert!(!c[0].ok && c[0].detail.contains("zfs load-key tank/secret"), "{c:?}");
        let c = checks(false, &encrypted(true), &encrypted(false), &with);
        assert!(c[0].ok && c[0].detail.contains("decrypted"), "{c:?}");
        assert_eq!(c[1].what, "destination encryption");
        assert!(c[1].detail.starts_with("aes-256-gcm"), "{c:?}");
        let plain = VolumeInfo {
            exists: true,
            ..VolumeInfo::default()
        };
        assert_eq!(checks(true, &plain, &plain, &with)[0].detail, "off");
        assert!(checks(true, &plain, &plain, &Capabilities::default()).is_empty());
    }
}
