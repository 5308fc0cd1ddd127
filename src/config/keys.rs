//! Every table's keys, declared once each (name, TOML type, reader): the list unknown keys are
//! checked against, the raw table and its reading all come from one declaration, so a key
//! cannot be accepted and never read, or read and refused as unknown.

use std::ops::Range;

use toml::Spanned;

use super::tree::{Scalar, Table};

/// Declares one table's keys: a `KEYS` list, a `Raw…` struct of the values as written (each
/// with its span), and `read`, which reports every key not declared. Keys in `also [...]` are
/// accepted but read by the caller (sub-tables, and a secret put in the wrong place whose value
/// must never be read).
macro_rules! table_keys {
    ($(#[$doc:meta])* $name:ident, $keys:ident { $($key:ident: $ty:ty => $read:ident,)* } $(also [$($extra:ident),*])?) => {
        pub(super) const $keys: &[&str] = &[$(stringify!($key),)* $($(stringify!($extra),)*)?];

        $(#[$doc])*
        #[derive(Debug, Default)]
        pub(super) struct $name {
            /// The table's header (not every table's errors point at it).
            #[allow(dead_code)]
            pub(super) span: Range<usize>,
            $(pub(super) $key: Option<Spanned<$ty>>,)*
        }

        impl $name {
            /// Reads the table, reporting every key not declared here.
            // (an object host is checked against the SSH keys' names as well, to refuse them
            // by name, so its own `read` goes unused)
            #[allow(dead_code)]
            pub(super) fn read(t: &Table) -> Self {
                t.unknown_keys($keys);
                Self::read_declared(t)
            }

            /// Reads the declared keys only; what else the table holds is the caller's to judge.
            pub(super) fn read_declared(t: &Table) -> Self {
                $name {
                    span: t.span.clone(),
                    $($key: t.$read(stringify!($key)),)*
                }
            }
        }
    };
}

table_keys! {
    /// A `[[pair]]` or the `[defaults]` table: the same keys, the pair-only ones refused in
    /// defaults.
    RawEntry, ENTRY_KEYS {
        kind: String => str,
        source: String => str,
        destination: String => str,
        port: i64 => int,
        transport: String => str,
        wlag: Scalar => scalar,
        clag: Scalar => scalar,
        wrun: Scalar => scalar,
        crun: Scalar => scalar,
        bwlimit: Scalar => scalar,
        compress: String => str,
        keep: i64 => int,
        mbuffer_address: String => str,
        mbuffer_timeout: Scalar => scalar,
        idle_timeout: Scalar => scalar,
        adopt: String => str,
        snapshot_dir: String => str,
        recursive: bool => bool,
        snapshot: String => str,
        chunk: Scalar => scalar,
        raw: bool => bool,
        properties: bool => bool,
    }
}

table_keys! {
    /// A `[hosts.NAME]` reached over SSH.
    RawHost, HOST_KEYS {
        address: String => str,
        port: i64 => int,
        user: String => str,
        key: String => str,
        known_hosts: String => str,
        trust_on_first_use: bool => bool,
        jump: String => str,
        connect_timeout: Scalar => scalar,
        keepalive_interval: Scalar => scalar,
        keepalive_count: i64 => int,
        ferry_path: String => str,
    }
}

table_keys! {
    /// A `[hosts.NAME]` with an `endpoint`: an object store reached over S3.
    RawObjectHost, OBJECT_HOST_KEYS {
        endpoint: String => str,
        region: String => str,
        credentials: String => str,
        profile: String => str,
    }
}

table_keys! {
    /// One `[[cluster]]`; its `volumes` are tables of their own.
    RawCluster, CLUSTER_KEYS {
        name: String => str,
        persist_path: String => str,
        settle: Scalar => scalar,
        poll: Scalar => scalar,
        bwlimit: Scalar => scalar,
        coordination: String => str,
    } also [volumes]
}

table_keys! {
    /// One volume of a cluster.
    RawVolume, VOLUME_KEYS {
        at: String => str,
        kind: String => str,
        listen: bool => bool,
        update: bool => bool,
    }
}

table_keys! {
    /// The `[coordination]` table. `password` is accepted only to be refused by name (never
    /// read: its value is a secret in the wrong place); `endpoints` is an array of strings.
    RawCoordination, COORDINATION_KEYS {
        engine: String => str,
        lease: Scalar => scalar,
        prefix: String => str,
        user: String => str,
        password_file: String => str,
        ca_file: String => str,
        cert_file: String => str,
        key_file: String => str,
    } also [endpoints, password]
}

table_keys! {
    /// The `[console]` table; its `keys` are a table of their own.
    RawConsole, CONSOLE_KEYS {
        theme: String => str,
        refresh: Scalar => scalar,
    } also [keys]
}

table_keys! {
    /// The file's top level; the rest of its keys are tables read on their own.
    RawRoot, TOP_KEYS {
        state_dir: String => str,
        max_jobs: i64 => int,
        max_jobs_per_host: i64 => int,
    } also [defaults, hosts, pair, cluster, coordination, console]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn errors(text: &str) -> String {
        crate::config::parse(Path::new("ferry.toml"), text)
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn a_declared_key_of_the_wrong_type_names_its_line_and_key() {
        let e = errors("[[pair]]\nsource = \"tank/a\"\ndestination = \"pool/a\"\nraw = \"yes\"\n");
        assert!(e.contains("ferry.toml:4: key `raw`: expected true or false"), "{e}");
        assert_eq!(
            errors("[[pair]]\nsource = \"tank/a\"\ndestination = \"pool/a\"\nraw = false\n"),
            ""
        );
    }

    #[test]
    fn properties_are_a_zfs_pairs_and_inherited_ones_mean_the_zfs_pairs() {
        let btrfs = "[[pair]]\nkind = \"btrfs\"\nsource = \"/srv/a\"\ndestination = \"/backup/a\"\n";
        let e = errors(&format!("{btrfs}properties = true\n"));
        assert!(
            e.contains("ferry.toml:5: key `properties`: properties sends a ZFS dataset's properties with it; this pair's kind is btrfs"),
            "{e}"
        );
        assert_eq!(errors(&format!("[defaults]\nproperties = true\n\n{btrfs}")), "");
        assert_eq!(
            errors("[[pair]]\nsource = \"tank/a\"\ndestination = \"pool/a\"\nproperties = true\n"),
            ""
        );
    }

    #[test]
    fn an_unquoted_fqdn_host_table_says_to_quote_it_once() {
        let text = "[hosts.backup-01.example.net]\naddress = \"192.0.2.7\"\n\
                    [[pair]]\nsource = \"tank/a\"\ndestination = \"backup-01.example.net:pool/a\"\n";
        let e = errors(text);
        assert!(
            e.contains("ferry.toml:1: key `hosts.backup-01.example.net`: TOML reads the dots")
                && e.contains("[hosts.\"backup-01.example.net\"]"),
            "{e}"
        );
        assert!(
            !e.contains("undefined host"),
            "the host is still known by its full name: {e}"
        );
        assert_eq!(
            errors(&text.replace("[hosts.backup-01.example.net]", "[hosts.\"backup-01.example.net\"]")),
            ""
        );
    }
}
