//! Snapshot drivers: one module per kind whose checkpoint is a snapshot both sides hold (ZFS,
//! btrfs, block volumes), each building its own commands and parsing their output.
//!
//! The engine's snapshot replicator (`engine::snapshots`) reaches a kind only through the
//! object-safe `Driver` trait and `for_kind`; kinds replicated another way (object buckets) have
//! no driver, so nothing can ask one of them for a snapshot.

pub mod block;
pub mod btrfs;
pub mod error;
pub mod zfs;

use anyhow::Result;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::config::{Endpoint, Pair};
use crate::exec::{ExecError, Executor};
use crate::model::Kind;

pub use error::DriverError;

/// A driver's asynchronous answer; boxed so the trait stays object-safe.
pub type Fut<'a, T> = BoxFuture<'a, Result<T>>;

/// A snapshot of a volume with its creation time (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The snapshot's own name (for ZFS the part after `@`).
    pub name: String,
    pub created: i64,
    /// What ties a received snapshot to the one it came from, where the kind has it (btrfs: the
    /// source's `uuid`, the destination's `received_uuid`): same name and a different id is not
    /// the same snapshot.
    pub id: Option<String>,
}

/// What one host's tooling can do; probed once per host and run, cached in the state dir.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// Pool version (`None` for feature-flag pools, which report "-" / 5000).
    pub pool_version: Option<u32>,
    /// The sender prints a size estimate (`zfs send -nP`).
    pub send_estimate: bool,
    /// Interrupted receives can be resumed.
    pub resume_tokens: bool,
    /// The source keeps a bookmark of the checkpoint (ZFS `feature@bookmarks`), so an incremental
    /// can start from it when the checkpoint snapshot itself was destroyed.
    #[serde(default)]
    pub bookmarks: bool,
    /// The pool has blocks over 128 KiB enabled (ZFS `feature@large_blocks`): a stream keeps them
    /// whole (`send -L`) where both sides have it.
    #[serde(default)]
    pub large_blocks: bool,
    /// The pool has embedded-data blocks (ZFS `feature@embedded_data`): `send -e` where both do.
    #[serde(default)]
    pub embedded_data: bool,
    /// The tool sends and receives blocks compressed as they are stored (ZFS `send -c`).
    #[serde(default)]
    pub compressed_send: bool,
    /// The receiving tool can leave a property of the stream out (ZFS `receive -x`).
    #[serde(default)]
    pub receive_exclude: bool,
    /// The pool can hold encrypted datasets (ZFS `feature@encryption`): a raw stream of an
    /// encrypted source can be received there.
    #[serde(default)]
    pub encryption: bool,
    /// The checkpoint is held (ZFS `zfs hold`) so no other tool's pruning breaks the chain: taken
    /// on feature-flag pools (OpenZFS); pool v23 (zfs-fuse) stays the old-pool case without.
    #[serde(default)]
    pub holds: bool,
    /// Parsable listings exist (otherwise numbers are read another way).
    pub list_parsable: bool,
    /// The kind's tool as it names its version, where the probe found it (btrfs-progs).
    #[serde(default)]
    pub tool_version: Option<String>,
    /// The filesystem the volume's path (or its nearest existing parent) is on, where the kind
    /// needs a particular one (btrfs).
    #[serde(default)]
    pub filesystem: Option<String>,
    /// Where snapshots are kept apart from the volume (a btrfs source's snapshot directory):
    /// whether that directory, or its nearest existing parent, is on the volume's filesystem.
    #[serde(default)]
    pub snapshots_beside: Option<bool>,
    /// Bytes free on the filesystem the volume is (or will be) on, where setup's probe read it.
    #[serde(default)]
    pub free_bytes: Option<u64>,
    /// Bytes the volume uses, where setup's probe could measure it in time.
    #[serde(default)]
    pub used_bytes: Option<u64>,
    /// Bytes a block volume's file occupies on disk (its holes take none).
    #[serde(default)]
    pub allocated_bytes: Option<u64>,
    /// Bytes free where a block side's state dir (its journal) goes.
    #[serde(default)]
    pub journal_free_bytes: Option<u64>,
    /// Whether that state dir is on the volume's own filesystem (the two share its space).
    #[serde(default)]
    pub journal_beside: Option<bool>,
    /// The block volume is a block device (its room is the device, not free space).
    #[serde(default)]
    pub device: bool,
}

/// What ferry reads about a volume in one command: does it exist, its ferry markers, its snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeInfo {
    pub exists: bool,
    pub fingerprint: Option<String>,
    pub source: Option<String>,
    pub lastsnap: Option<String>,
    /// Bytes the volume refers to: the estimate of a full stream where the sender gives none.
    pub referenced: Option<u64>,
    /// Snapshots oldest first.
    pub snapshots: Vec<Snapshot>,
    /// Bookmarks oldest first, where the kind keeps them (ZFS `ds#name`): what remains of a
    /// snapshot once destroyed, enough to send an incremental from.
    pub bookmarks: Vec<Snapshot>,
    /// Why the volume is not at a consistent checkpoint until the next run brings it there (a
    /// block replica with an apply cut halfway): never Synchronized meanwhile.
    pub interrupted: Option<String>,
    /// What runs left behind that is no snapshot but is this pair's (a block transfer's
    /// resumable journal, a point-in-time clone of a killed run): `purge` removes it whatever
    /// `keep` says, through `destroy_snapshots`.
    pub leftovers: Vec<String>,
    /// The volume's encryption where it has some; `None` when off or where the kind has none.
    pub encryption: Option<Encryption>,
    /// A cut receive's saved state, where the kind keeps one (ZFS's `receive_resume_token`): the
    /// next run sends only the rest.
    pub resume_token: Option<String>,
}

/// Which side of a pair a volume is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Destination => "destination",
        }
    }
}

/// How a stream goes, beyond full or incremental: chosen per run from the pair and both sides'
/// capabilities (`Driver::stream`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stream {
    /// The volume is encrypted and goes as it is stored (ZFS `-w`), never decrypted.
    pub raw: bool,
    /// Blocks over 128 KiB go whole (ZFS `-L`).
    pub large_blocks: bool,
    /// Embedded-data blocks go as they are (ZFS `-e`).
    pub embedded: bool,
    /// Blocks go compressed as they are stored (ZFS `-c`): fewer bytes on the wire.
    pub compressed: bool,
    /// The volume's properties go along (ZFS `-p`), where the pair asks.
    pub properties: bool,
}

/// What an incremental send starts from on the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base<'a> {
    /// A snapshot the source still holds: every snapshot after it goes along where the kind
    /// sends intermediates.
    Snapshot(&'a str),
    /// Only the bookmark of that snapshot is left (another tool destroyed it): the increment
    /// alone, no intermediates.
    Bookmark(&'a str),
}

impl<'a> Base<'a> {
    /// The snapshot's own name (a bookmark is named after its snapshot).
    pub fn name(&self) -> &'a str {
        match self {
            Base::Snapshot(n) | Base::Bookmark(n) => n,
        }
    }

    /// `name` as the base where the source holds that snapshot, else its bookmark where it has
    /// one, else the snapshot (and the send names what is missing).
    pub fn on(info: &VolumeInfo, name: &'a str) -> Base<'a> {
        let held = |l: &[Snapshot]| l.iter().any(|s| s.name == name);
        if !held(&info.snapshots) && held(&info.bookmarks) {
            Base::Bookmark(name)
        } else {
            Base::Snapshot(name)
        }
    }
}

/// How one side keeps the pair's checkpoint safe from other tools' pruning.
#[derive(Debug, Clone, Copy)]
pub struct Keep<'a> {
    /// The pair's hold tag (`ferry.<fp>`).
    pub tag: &'a str,
    /// The checkpoint before this run, released.
    pub old: Option<&'a str>,
    pub new: &'a str,
    /// Hold `new` under `tag` (the side's storage keeps holds).
    pub hold: bool,
    /// Bookmark `new` and drop the pair's older bookmarks (the source, where it keeps them).
    pub bookmark: bool,
}

/// An encrypted volume's encryption, as the kind's tool names it (ZFS properties).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encryption {
    /// The cipher (`aes-256-gcm`).
    pub cipher: String,
    /// The volume whose key it uses (ZFS `encryptionroot`).
    pub root: Option<String>,
    /// How that key is given (`passphrase`, `hex`, `raw`).
    pub key_format: Option<String>,
    /// Whether the key is loaded now (a raw replica's never needs to be).
    pub key_loaded: Option<bool>,
}

/// The commands that finish a cut receive from its resume token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// On the source: the rest of the stream.
    pub send: String,
    /// On the destination: receives it, resumable again.
    pub receive: String,
    /// On the destination: drops the saved state, when it cannot be resumed.
    pub abort: String,
}

/// What became of one snapshot `destroy_snapshots` was asked to destroy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destroy {
    Destroyed,
    /// It was already gone: nothing to do, nothing destroyed.
    Absent,
    /// Still there: busy or held; the error says which.
    Failed(DriverError),
}

/// A volume or snapshot under a volume, with the ferry fingerprint set on it (not inherited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descendant {
    /// Full name as the kind's tools print it (ZFS: `pool/ds` or `pool/ds@snap`).
    pub name: String,
    pub fingerprint: Option<String>,
    /// What it is to the volume asked about.
    pub under: Under,
}

/// Where a descendant stands relative to the volume it was listed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Under {
    /// The volume itself.
    Itself,
    /// A snapshot of the volume, by its own name.
    Snapshot(String),
    /// A volume below it (another replica, or anyone's).
    Child,
    /// A snapshot of a volume below it: it goes with that volume.
    ChildSnapshot,
}

/// The checkpoint recorded with the data on the destination after a good receive.
#[derive(Debug, Clone, Copy)]
pub struct Marks<'a> {
    pub fingerprint: &'a str,
    /// The pair's source as `host:path`.
    pub source: &'a str,
    pub snapshot: &'a str,
    /// The first recording (initialize, adoption): the fingerprint and source go with it.
    pub first: bool,
}

/// One line of the setup checklist a driver contributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub what: String,
    pub detail: String,
}

/// Storage a host serves (a ZFS pool, a btrfs filesystem), for the hosts view; figures as the
/// kind's tools print them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// The pool's name, or the filesystem's mount point.
    pub name: String,
    pub size: String,
    pub allocated: String,
    /// The pool's health (`ONLINE`, `DEGRADED`, …); `-` where the kind has none.
    pub health: String,
}

impl Storage {
    pub fn new(name: &str, size: &str, allocated: &str, health: &str) -> Storage {
        Storage {
            name: name.to_string(),
            size: size.to_string(),
            allocated: allocated.to_string(),
            health: health.to_string(),
        }
    }
}

/// Taking over another tool's replica (`adopt`): both sides' executors and listings.
pub struct Adoption<'a> {
    pub pair: &'a Pair,
    pub src: &'a Executor,
    pub dst: &'a Executor,
    pub src_info: &'a VolumeInfo,
    pub dst_info: &'a VolumeInfo,
}

/// One volume kind's operations, run through an executor on the volume's host. Volumes are the
/// pair's endpoints, their paths validated for this kind at load; scripts are shell command lines
/// with every name quoted.
pub trait Driver: Send + Sync {
    fn kind(&self) -> Kind;
    /// What a snapshot's own name follows to name it fully on its host, for messages: ZFS
    /// `pool/ds@`, btrfs the snapshot directory with a `/`.
    fn snapshot_at(&self, vol: &Endpoint) -> String;
    /// The tool a setup check names when the probe fails.
    fn tool(&self) -> &'static str;
    /// What the capability cache is kept per (ZFS: the pool).
    fn caps_scope<'p>(&self, vol: &'p Endpoint) -> &'p str;

    fn probe<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, Capabilities>;
    /// Reads many volumes of one host with one command; missing ones come back with `exists = false`.
    fn inspect<'a>(&'a self, ex: &'a Executor, vols: &'a [&'a Endpoint]) -> Fut<'a, Vec<VolumeInfo>>;
    /// Capabilities and volumes of one host in one exec.
    fn probe_and_inspect<'a>(
        &'a self,
        ex: &'a Executor,
        vols: &'a [&'a Endpoint],
    ) -> Fut<'a, (Capabilities, Vec<VolumeInfo>)>;

    fn snapshot<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint, snap: &'a str) -> Fut<'a, ()>;
    /// The stream's size if the tool can tell before sending.
    fn estimate<'a>(
        &'a self,
        ex: &'a Executor,
        caps: &'a Capabilities,
        vol: &'a Endpoint,
        snap: &'a str,
        from: Option<Base<'a>>,
        stream: Stream,
    ) -> Fut<'a, Option<u64>>;
    /// Takes the snapshot, then gives the size of the stream that will send it (`estimate`): in
    /// one exec where the kind can (a round trip less per run). A failed estimate is no size, a
    /// failed snapshot an error.
    fn snapshot_and_estimate<'a>(
        &'a self,
        ex: &'a Executor,
        caps: &'a Capabilities,
        vol: &'a Endpoint,
        snap: &'a str,
        from: Option<Base<'a>>,
        stream: Stream,
    ) -> Fut<'a, Option<u64>> {
        async move {
            self.snapshot(ex, vol, snap).await?;
            Ok(self.estimate(ex, caps, vol, snap, from, stream).await.unwrap_or(None))
        }
        .boxed()
    }
    /// The script that sends `snap` (full, or incremental with every intermediate snapshot from
    /// `from`), taking the snapshot first unless `taken`, as `stream` says; transport wraps and
    /// joins it.
    fn send_script(
        &self,
        vol: &Endpoint,
        snap: &str,
        from: Option<Base>,
        taken: bool,
        stream: Stream,
    ) -> Result<String>;
    /// How this pair's stream goes between two sides with these capabilities; `raw` where the
    /// source is encrypted and the pair wants it sent as stored. Kinds without such choices send
    /// as they always do.
    fn stream(&self, raw: bool, source: &Capabilities, destination: &Capabilities) -> Stream {
        let _ = (source, destination);
        Stream {
            raw,
            ..Stream::default()
        }
    }
    /// Whether an incremental send carries the source's snapshots between the base and the new
    /// one along (ZFS `-I`), so they appear on the destination too.
    fn sends_intermediates(&self) -> bool;
    /// The script that receives the stream of `snap` into the volume; `force` rolls back (or
    /// removes) what was changed there by hand, which otherwise makes the receive refuse.
    /// `resumable`: the destination keeps a cut receive's state for the next run (probed).
    /// `stream` as the send goes (ZFS: a stream with properties keeps the destination's mountpoint).
    fn receive_script(
        &self,
        vol: &Endpoint,
        snap: &str,
        force: bool,
        resumable: bool,
        stream: Stream,
    ) -> Result<String>;

    /// Where the kind resumes a cut receive from the destination's token: the commands that do.
    fn resume(&self, _src: &Endpoint, _dst: &Endpoint, _token: &str, _stream: Stream) -> Option<Result<Resume>> {
        None
    }

    /// Moves what keeps the checkpoint on `vol` (the pair's hold, the source's bookmark) from the
    /// old checkpoint to the new one, where the kind has them; gives what went wrong, if anything
    /// did (the data is safe either way).
    fn keep_checkpoint<'a>(
        &'a self,
        _ex: &'a Executor,
        _vol: &'a Endpoint,
        _keep: Keep<'a>,
    ) -> Fut<'a, Option<String>> {
        async { Ok(None) }.boxed()
    }

    /// Whether the source can still send the rest a resume token asks for, with its size where
    /// the tool tells: `Err(why)` when it cannot (the snapshot it was sending is gone).
    fn resume_check<'a>(
        &'a self,
        _ex: &'a Executor,
        _token: &'a str,
    ) -> Fut<'a, std::result::Result<Option<u64>, String>> {
        async { Ok(Err("this kind keeps no resumable receives".to_string())) }.boxed()
    }
    /// `update --repair`: the receive that first rereads the replica and has everything it does
    /// not hold as the checkpoint says resent. Kinds whose receive proves the replica refuse.
    fn repair_script(&self, vol: &Endpoint, snap: &str) -> Result<String> {
        let _ = snap;
        anyhow::bail!(
            "{vol}: update --repair is for block volumes; a {} receive already checks what it applies to",
            self.kind().word()
        )
    }
    /// What status should always say about a pair reading this source, whatever its state (a
    /// block source read live is not point-in-time).
    fn notes(&self, source: &Endpoint) -> Vec<String> {
        let _ = source;
        Vec::new()
    }
    /// Whether the send and receive scripts talk both ways (two ferry peers negotiating what to
    /// send), so the transport joins them in both directions instead of piping one into the
    /// other: then the type of the sender's progress frames, which the relay hands to the job.
    fn duplex(&self) -> Option<u8> {
        None
    }
    /// The script that records the checkpoint with the data.
    fn record_script(&self, vol: &Endpoint, marks: &Marks) -> Result<String>;
    /// After the first recording: makes the replica visible where the kind needs it (ZFS: mount).
    fn expose<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, ()>;

    /// Destroys each snapshot on its own in one exec and reports each one's outcome.
    fn destroy_snapshots<'a>(
        &'a self,
        ex: &'a Executor,
        vol: &'a Endpoint,
        snaps: &'a [String],
    ) -> Fut<'a, Vec<(String, Destroy)>>;
    /// Destroys the volume alone (its snapshots gone first); a volume already gone is success.
    fn destroy_volume<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, ()>;
    /// Everything under `path`, itself included (empty when it does not exist).
    fn descendants<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, Vec<Descendant>>;

    /// Whether what holds a new destination exists (nothing to hold: true).
    fn parent_exists<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, bool>;
    /// Setup: makes sure what holds a new destination exists; says what it found or did.
    fn prepare_parent<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, String>;
    /// Setup: what the probe says about one side (`label` is "source" or "destination").
    fn volume_checks(&self, label: &str, vol: &Endpoint, caps: &Capabilities) -> Vec<Check>;
    /// Setup: whether the account ferry logs in as may do on `vol` what this side needs, where
    /// the kind delegates permissions (ZFS `zfs allow`); nothing for root.
    fn permission_checks<'a>(&'a self, ex: &'a Executor, side: Side, vol: &'a Endpoint) -> Fut<'a, Vec<Check>> {
        let _ = (ex, side, vol);
        async { Ok(Vec::new()) }.boxed()
    }
    /// Setup: what the pair's stream options mean for these two volumes (ZFS: encryption and
    /// `raw`, `properties`), with a failed check where the send could not work; the
    /// destination's listing where it exists.
    fn stream_checks(
        &self,
        options: &crate::config::PairOptions,
        source: &VolumeInfo,
        destination: &VolumeInfo,
        dst_caps: &Capabilities,
    ) -> Vec<Check> {
        let _ = (options, source, destination, dst_caps);
        Vec::new()
    }
    /// Setup: can the destination receive what the source sends, and how the stream will go.
    fn compatibility(&self, source: &Capabilities, destination: &Capabilities) -> Vec<Check>;
    /// The host's storage for the hosts view.
    fn storage<'a>(&'a self, ex: &'a Executor) -> Fut<'a, Vec<Storage>>;

    /// Reads why a command on `vol` failed into a case, or `None` when it is none of the known
    /// ones. Only what the tool said about `vol` itself counts (a word in a name is no reason).
    fn classify(&self, vol: &Endpoint, failed: &ExecError) -> Option<DriverError>;

    /// The snapshot an adopting update sends from, after proving the destination is a replica
    /// of the source; `notes` gets what the log should say.
    fn adopt_base<'a>(&'a self, adoption: Adoption<'a>, notes: &'a mut Vec<String>) -> Fut<'a, Snapshot> {
        let _ = notes;
        async move {
            anyhow::bail!(
                "{}: ferry adopts zettabee's ZFS replicas only",
                adoption.pair.destination
            )
        }
        .boxed()
    }
    /// `verify`: what differs between the destination and the checkpoint `snap` both sides hold
    /// (empty: exactly the checkpoint). Kinds that cannot tell refuse.
    fn verify<'a>(
        &'a self,
        src: &'a Executor,
        dst: &'a Executor,
        s: &'a Endpoint,
        d: &'a Endpoint,
        snap: &'a str,
    ) -> Fut<'a, Vec<String>> {
        let _ = (src, dst, s, snap);
        async move { anyhow::bail!("{d}: verify is not built for {} volumes", self.kind().word()) }.boxed()
    }
    /// The volumes below `vol` (a `recursive` pair's tree), parents before their children, as
    /// paths; empty when it has none. Kinds without trees refuse.
    fn children<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> Fut<'a, Vec<String>> {
        let _ = ex;
        async move { anyhow::bail!("{}: a {} volume has no tree to replicate", vol, self.kind().word()) }.boxed()
    }
    /// `initialize --force` over an existing copy: the newest snapshot both sides hold as one (the
    /// kind's id proves it: ZFS guid), to send from; `notes` gets what the log should say.
    fn copy_base<'a>(&'a self, adoption: Adoption<'a>, notes: &'a mut Vec<String>) -> Fut<'a, Snapshot> {
        let _ = notes;
        async move {
            anyhow::bail!(
                "{}: a {} destination that is not ferry's cannot be taken over; choose another destination",
                adoption.pair.destination,
                self.kind().word()
            )
        }
        .boxed()
    }
    /// For a destination that is not ferry's: a hint when another tool made it and it can be adopted.
    fn adopt_hint<'a>(&'a self, ex: &'a Executor, vol: &'a Endpoint) -> BoxFuture<'a, Option<String>> {
        let _ = (ex, vol);
        async { None }.boxed()
    }
}

/// The driver of a snapshot kind; `None` for a kind replicated without snapshots.
pub fn for_kind(kind: Kind) -> Option<&'static dyn Driver> {
    match kind {
        Kind::Zfs => Some(&zfs::Zfs),
        Kind::Btrfs => Some(&btrfs::Btrfs),
        Kind::Block => Some(&block::Block),
        _ => None,
    }
}

/// The driver of a pair's kind, for code that only snapshot pairs reach: a kind without one
/// there is named in the error, never a panic.
pub fn snapshot_driver(kind: Kind) -> Result<&'static dyn Driver, NoDriver> {
    for_kind(kind).ok_or(NoDriver(kind))
}

/// A kind that has no snapshot driver was asked for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} volumes have no snapshots: their pairs are replicated another way", .0.word())]
pub struct NoDriver(pub Kind);
