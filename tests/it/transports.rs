//! Transports end to end on real zfs-fuse pools: zstd compression over the ssh transport,
//! bandwidth limits on every transport, and mbuffer (zettabee's way) with its failure modes.

use crate::common;

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Instant;

use common::lab::Lab;
use common::zfs::{remount, tree_checksum, write_random_file, TestPool};

/// A file that compresses well: the same text over and over.
fn write_text_file(path: &std::path::Path, bytes: usize) {
    let line = b"ferry replicates zfs datasets between sites; this line repeats and compresses well.\n";
    let mut data = Vec::with_capacity(bytes);
    while data.len() < bytes {
        data.extend_from_slice(line);
    }
    std::fs::write(path, &data[..bytes]).unwrap();
}

fn json(r: &common::lab::Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn zstd_over_ssh_compresses_on_the_wire_and_arrives_intact() {
    let Some(lab) = Lab::new("zst", 192, 192, "compress = \"zstd\"") else {
        return;
    };
    let src = lab.src_mnt();
    write_text_file(&src.join("text.txt"), 12 << 20);
    write_random_file(&src.join("rand.bin"), 1 << 20, 3);
    lab.ok(&["setup", "data"]);
    let init = json(&lab.ok(&["--json", "initialize", "data"]));
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    let wire = init["bytes"].as_u64().unwrap();
    assert!(wire > 0 && wire < 6 << 20, "13 MiB of mostly text went as {wire} bytes");
    write_text_file(&src.join("text2.txt"), 8 << 20);
    let up = json(&lab.ok(&["--json", "update", "data"]));
    assert!(up["bytes"].as_u64().unwrap() < 3 << 20, "{up}");
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    let log = std::fs::read_to_string(lab.ok(&["logfile", "data"]).stdout.trim()).unwrap();
    assert!(
        log.contains("| zstd -q -c -1") && log.contains("zstd -q -d -c | { zfs receive"),
        "{log}"
    );
    assert_eq!(lab.status()["state"], "Synchronized");
}

#[test]
fn bwlimit_holds_on_the_local_transport() {
    let Some(src) = TestPool::create("bwls", 128) else {
        return;
    };
    let Some(dst) = TestPool::create("bwld", 128) else {
        return;
    };
    let ds = src.create_dataset("data");
    write_random_file(&common::zfs::mountpoint(&ds).join("a.bin"), 6 << 20, 5);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ferry.toml");
    let dst_ds = dst.ds("rep");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[[pair]]\nsource = \"{ds}\"\ndestination = \"{dst_ds}\"\ntransport = \"local\"\nbwlimit = \"2M\"\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = common::runner::bare().arg("-c").arg(&cfg).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let t = Instant::now();
    let out = run(&["--json", "initialize", "rep"]);
    let secs = t.elapsed().as_secs_f64();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bytes = v["bytes"].as_u64().unwrap() as f64;
    assert!(bytes > 6e6, "{v}");
    // 2 MiB/s: at least bytes / limit, minus a little for the clock's granularity
    assert!(
        secs >= bytes / (2.0 * 1048576.0) * 0.9,
        "{bytes} bytes in {secs:.1}s breaks a 2M limit"
    );
    remount(&dst_ds);
    assert_eq!(
        tree_checksum(&common::zfs::mountpoint(&ds)),
        tree_checksum(&common::zfs::mountpoint(&dst_ds))
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// mbuffer processes on this machine listening on or sending to `port` (the lab's "hosts" are all here).
fn mbuffers(port: u16) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .arg("-a")
        .arg("mbuffer")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("-I {port}")) || l.contains(&format!(":{port}")))
        .map(String::from)
        .collect()
}

fn mbuffer_lab(name: &str, port: u16, extra: &str) -> Option<Lab> {
    Lab::new(
        name,
        256,
        256,
        &format!("transport = \"mbuffer\"\nport = {port}\nmbuffer_address = \"127.0.0.1\"\n{extra}"),
    )
}

#[test]
fn mbuffer_transport_replicates_and_reports_figures() {
    let port = free_port();
    let Some(lab) = mbuffer_lab("mbf", port, "compress = \"zstd\"") else {
        return;
    };
    let src = lab.src_mnt();
    write_random_file(&src.join("a.bin"), 24 << 20, 1);
    lab.ok(&["setup", "data"]);
    let init = json(&lab.ok(&["--json", "initialize", "data"]));
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    // mbuffer's own figure (to its display precision), of the compressed stream
    let bytes = init["bytes"].as_u64().unwrap();
    assert!((20 << 20..=30 << 20).contains(&bytes), "{init}");
    write_random_file(&src.join("b.bin"), 4 << 20, 2);
    std::fs::remove_file(src.join("a.bin")).unwrap();
    lab.ok(&["update", "data"]);
    assert_eq!(tree_checksum(&src), lab.dst_sum());
    assert_eq!(lab.status()["state"], "Synchronized");
    let log = std::fs::read_to_string(lab.ok(&["logfile", "data"]).stdout.trim()).unwrap();
    assert!(log.contains("UNENCRYPTED"), "{log}");
    assert!(
        log.contains(&format!("mbuffer -4 -v 4 -s 128k -m 64M -W 30 -I 127.0.0.1:{port}'")),
        "{log}"
    );
    assert!(log.contains(&format!("-O 127.0.0.1:{port}")), "{log}");
    assert!(mbuffers(port).is_empty(), "{:?}", mbuffers(port));
    let check = lab.ok(&["check"]);
    assert!(check.stdout.contains("unencrypted"), "{}", check.stdout);
    let setup = lab.ok(&["setup", "data"]);
    assert!(
        setup.stdout.contains("mbuffer, zstd found on store1") && setup.stdout.contains("UNENCRYPTED"),
        "{}",
        setup.stdout
    );
}

#[test]
fn mbuffer_port_in_use_fails_clearly_and_leaves_nothing() {
    let port = free_port();
    let Some(lab) = mbuffer_lab("mbp", port, "") else {
        return;
    };
    write_random_file(&lab.src_mnt().join("a.bin"), 1 << 20, 3);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let cp = common::zfs::zfs_get(&lab.dst_ds, "ferry:lastsnap");
    let squatter = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
    let t = Instant::now();
    let r = lab.ferry(&["update", "data"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!("could not listen on port {port}")) && r.stderr.contains("Address already in use"),
        "{}",
        r.stderr
    );
    assert!(t.elapsed().as_secs() < 20, "took {:?}", t.elapsed());
    assert!(mbuffers(port).is_empty(), "{:?}", mbuffers(port));
    assert_eq!(common::zfs::zfs_get(&lab.dst_ds, "ferry:lastsnap"), cp);
    drop(squatter);
    lab.ok(&["update", "data"]);
    assert_eq!(tree_checksum(&lab.src_mnt()), lab.dst_sum());
}

/// An address on a veth whose far end (in a namespace of its own) is down: a connection to it
/// goes unanswered until ARP gives up (~3 s), then fails with "No route to host".
struct DeadEnd {
    ns: String,
    host_if: String,
    address: String,
}

impl DeadEnd {
    fn new(tag: u8) -> DeadEnd {
        let id = std::process::id() % 10000;
        let ns = format!("fdead{id}{tag}");
        let host_if = format!("fdh{id}{tag}");
        let peer = format!("fdn{id}{tag}");
        let net = format!("10.{}.{}", 200 + tag, id % 250);
        let sh = |c: &str| {
            let ok = std::process::Command::new("sh")
                .arg("-c")
                .arg(c)
                .status()
                .unwrap()
                .success();
            assert!(ok, "{c}");
        };
        sh(&format!("ip netns add {ns}"));
        sh(&format!(
            "ip link add {host_if} type veth peer name {peer} && ip link set {peer} netns {ns}"
        ));
        sh(&format!(
            "ip addr add {net}.1/30 dev {host_if} && ip link set {host_if} up"
        ));
        DeadEnd {
            ns,
            host_if,
            address: format!("{net}.2"),
        }
    }
}

impl Drop for DeadEnd {
    fn drop(&mut self) {
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ip link del {} 2>/dev/null; ip netns del {}",
                self.host_if, self.ns
            ))
            .status();
    }
}

#[test]
fn mbuffer_listener_without_a_connection_ends_cleanly() {
    let dead = DeadEnd::new(1);
    let port = free_port();
    let Some(lab) = Lab::new(
        "mbt",
        128,
        128,
        &format!("transport = \"mbuffer\"\nport = {port}\nmbuffer_address = \"127.0.0.1\""),
    ) else {
        return;
    };
    write_random_file(&lab.src_mnt().join("a.bin"), 1 << 20, 4);
    lab.ok(&["setup", "data"]);
    lab.ok(&["initialize", "data"]);
    let cp = common::zfs::zfs_get(&lab.dst_ds, "ferry:lastsnap");
    // the source cannot reach the address: nothing connects within mbuffer_timeout
    let cfg = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(
        &lab.config,
        cfg.replace(
            "mbuffer_address = \"127.0.0.1\"",
            &format!("mbuffer_address = \"{}\"\nmbuffer_timeout = \"1s\"", dead.address),
        ),
    )
    .unwrap();
    // a stranger knocks meanwhile: the error names it, as the address a misdetection would show
    let stranger = Stranger::knock(Ipv4Addr::new(127, 0, 0, 2), "127.0.0.1", port);
    let near_end = format!("{}.1", dead.address.rsplit_once('.').unwrap().0);
    let t = Instant::now();
    let r = lab.ferry(&["update", "data"]);
    stranger.stop();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "no connection reached the mbuffer listener on local:{port} within 1s (it refused 127.0.0.2: only {} may send; if that was store1, it reaches {} from another address than ferry found)",
            near_end, dead.address
        )),
        "{}",
        r.stderr
    );
    assert!(t.elapsed().as_secs() < 15, "{:?}", t.elapsed());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(mbuffers(port).is_empty(), "{:?}", mbuffers(port));
    assert_eq!(common::zfs::zfs_get(&lab.dst_ds, "ferry:lastsnap"), cp);
    // a longer timeout: the sender's own failure ends it, as clearly
    std::fs::write(
        &lab.config,
        cfg.replace(
            "mbuffer_address = \"127.0.0.1\"",
            &format!("mbuffer_address = \"{}\"\nmbuffer_timeout = \"20s\"", dead.address),
        ),
    )
    .unwrap();
    let r = lab.ferry(&["update", "data"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!("could not send to {}:{port}", dead.address)),
        "{}",
        r.stderr
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(mbuffers(port).is_empty(), "{:?}", mbuffers(port));
    // and back on a reachable address it works
    std::fs::write(&lab.config, cfg).unwrap();
    lab.ok(&["update", "data"]);
    assert_eq!(tree_checksum(&lab.src_mnt()), lab.dst_sum());
}

#[test]
fn mbuffer_push_to_a_remote_destination_uses_its_address_by_default() {
    // local source, destination on store1: the listener runs over SSH, the sender here, and
    // mbuffer_address defaults to store1's address
    let port = free_port();
    let Some(lab) = Lab::new("mbh", 128, 128, "") else {
        return;
    };
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let text = text.replace(
        &format!("source = \"store1:{}\"\ndestination = \"{}\"", lab.src_ds, lab.dst_ds),
        &format!(
            "source = \"{}\"\ndestination = \"store1:{}\"\ntransport = \"mbuffer\"\nport = {port}",
            lab.src_ds, lab.dst_ds
        ),
    );
    assert!(text.contains("transport = \"mbuffer\""));
    std::fs::write(&lab.config, text).unwrap();
    let check = lab.ok(&["check"]);
    assert!(
        check.stdout.contains(&format!("to 127.0.0.1:{port}")),
        "{}",
        check.stdout
    );
    write_random_file(&lab.src_mnt().join("a.bin"), 3 << 20, 7);
    lab.ok(&["setup", lab.dst_ds.as_str()]);
    // a stranger on another address knocks at the listener all along: it must be refused
    let stranger = Stranger::knock(Ipv4Addr::new(127, 0, 0, 2), "127.0.0.1", port);
    lab.ok(&["initialize", lab.dst_ds.as_str()]);
    write_random_file(&lab.src_mnt().join("b.bin"), 1 << 20, 8);
    lab.ok(&["update", lab.dst_ds.as_str()]);
    let knocks = stranger.stop();
    assert_eq!(tree_checksum(&lab.src_mnt()), lab.dst_sum());
    assert!(mbuffers(port).is_empty(), "{:?}", mbuffers(port));
    let log = std::fs::read_to_string(lab.ok(&["logfile", lab.dst_ds.as_str()]).stdout.trim()).unwrap();
    // store1 sees this machine at 127.0.0.1 ($SSH_CONNECTION there): only that may send
    assert!(log.contains(&format!("-I 127.0.0.1:{port}'")), "{log}");
    assert!(knocks > 0, "the stranger never got through to a listener");
    assert!(
        log.contains("mbuffer on store1 refused a connection from 127.0.0.2: only 127.0.0.1 may send"),
        "{knocks} knocks, none refused in the log:\n{log}"
    );
}

/// Someone on another address who keeps connecting to a port and writing junk (a stream that is
/// not a zfs stream), as an attacker racing the real sender would.
struct Stranger {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl Stranger {
    fn knock(from: Ipv4Addr, to: &str, port: u16) -> Stranger {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let to: Ipv4Addr = to.parse().unwrap();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut connected = 0;
            while !flag.load(Ordering::Relaxed) {
                if let Some(mut s) = connect_from(from, to, port) {
                    connected += 1;
                    // a connection the kernel queued but mbuffer never accepts (it already has
                    // its sender) would block a long write: keep knocking instead
                    let _ = s.set_write_timeout(Some(std::time::Duration::from_millis(50)));
                    let _ = s.write_all(&[0x5a; 256 * 1024]);
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            connected
        });
        Stranger { stop, thread }
    }

    /// Stops knocking; how many connections were accepted by the kernel (a listener was there).
    fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// A TCP connection from a chosen local address (std cannot bind before connecting).
fn connect_from(from: Ipv4Addr, to: Ipv4Addr, port: u16) -> Option<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the sockaddrs live across the calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let (a, b) = (sockaddr(from, 0), sockaddr(to, port));
        if libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len) != 0
            || libc::connect(fd, (&b as *const libc::sockaddr_in).cast(), len) != 0
        {
            libc::close(fd);
            return None;
        }
        Some(std::net::TcpStream::from_raw_fd(fd))
    }
}

#[test]
fn mbuffer_pull_finds_this_machines_address_and_refuses_strangers() {
    // store1's sshd on 127.0.0.3, reached from 127.0.0.1 (the kernel's choice on loopback), and no
    // mbuffer_address: store1 tells which address it reaches this machine at ($SSH_CONNECTION),
    // and the listener here accepts only the address store1 sends from (127.0.0.1, not 127.0.0.3)
    let port = free_port();
    let Some(lab) = Lab::with_sshd(
        "mba",
        128,
        128,
        &format!("transport = \"mbuffer\"\nport = {port}\n"),
        || common::sshd::Sshd::start_at(None, "127.0.0.3"),
    ) else {
        return;
    };
    let text = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(
        &lab.config,
        text.replace("address = \"127.0.0.1\"", "address = \"127.0.0.3\""),
    )
    .unwrap();
    let check = lab.ok(&["check"]);
    assert!(
        check.stdout.contains(&format!("to this machine:{port}")),
        "{}",
        check.stdout
    );
    write_random_file(&lab.src_mnt().join("a.bin"), 6 << 20, 11);
    lab.ok(&["setup", "data"]);
    let stranger = Stranger::knock(Ipv4Addr::new(127, 0, 0, 2), "127.0.0.1", port);
    lab.ok(&["initialize", "data"]);
    assert_eq!(tree_checksum(&lab.src_mnt()), lab.dst_sum());
    write_random_file(&lab.src_mnt().join("b.bin"), 2 << 20, 12);
    lab.ok(&["update", "data"]);
    let knocks = stranger.stop();
    assert_eq!(tree_checksum(&lab.src_mnt()), lab.dst_sum());
    assert_eq!(lab.status()["state"], "Synchronized");
    assert!(mbuffers(port).is_empty(), "{:?}", mbuffers(port));
    let log = std::fs::read_to_string(lab.ok(&["logfile", "data"]).stdout.trim()).unwrap();
    assert!(log.contains(&format!("-O 127.0.0.1:{port}'")), "{log}");
    assert!(log.contains(&format!("-I 127.0.0.1:{port}'")), "{log}");
    assert!(log.contains("the listener on local accepts only 127.0.0.1"), "{log}");
    assert!(knocks > 0, "the stranger never got through to a listener");
    assert!(
        log.contains("mbuffer on local refused a connection from 127.0.0.2: only 127.0.0.1 may send"),
        "{knocks} knocks, none refused in the log:\n{log}"
    );
}

#[test]
fn mbuffer_relay_between_two_hosts_accepts_only_the_source() {
    // store1 -> store2 (the same sshd under two names): the listener runs on store2, the sender on
    // store1, and the address store1 sends from is asked of store1 itself (its route's src)
    let port = free_port();
    let Some(lab) = Lab::new("mbr", 128, 128, "") else {
        return;
    };
    lab.write_config_for(
        &format!("store1:{}", lab.src_ds),
        &format!("store2:{}", lab.dst_ds),
        &format!("transport = \"mbuffer\"\nport = {port}\n"),
        &lab.sshd.known_hosts.clone(),
        false,
    );
    write_random_file(&lab.src_mnt().join("a.bin"), 3 << 20, 21);
    lab.ok(&["setup", "data"]);
    let stranger = Stranger::knock(Ipv4Addr::new(127, 0, 0, 2), "127.0.0.1", port);
    lab.ok(&["initialize", "data"]);
    write_random_file(&lab.src_mnt().join("b.bin"), 1 << 20, 22);
    lab.ok(&["update", "data"]);
    let knocks = stranger.stop();
    assert_eq!(tree_checksum(&lab.src_mnt()), lab.dst_sum());
    assert!(mbuffers(port).is_empty(), "{:?}", mbuffers(port));
    let log = std::fs::read_to_string(lab.ok(&["logfile", "data"]).stdout.trim()).unwrap();
    assert!(
        log.contains(&format!(
            "from store1 to 127.0.0.1:{port}; the listener on store2 accepts only 127.0.0.1"
        )),
        "{log}"
    );
    assert!(knocks > 0, "the stranger never got through to a listener");
    assert!(
        log.contains("mbuffer on store2 refused a connection from 127.0.0.2"),
        "{log}"
    );
    assert!(log.contains(&format!("-I 127.0.0.1:{port}'")), "{log}");
}
