//! The mbuffer transport, as zettabee did it: the destination listens (`mbuffer -I port | zfs
//! receive`), the source sends straight to it (`zfs send | mbuffer -O address:port`), both started
//! over their hosts' connections. No byte passes through ferry: it reads the listener's own
//! figures for progress. The stream is NOT encrypted.
//!
//! Each mbuffer announces its pid first, so ferry can end it on a host when the other side fails:
//! a listener that never gets a connection, or that cannot bind its port, leaves nothing behind.
//!
//! The listener accepts only the source host (`-I <source address>:<port>`; mbuffer refuses any
//! other peer and keeps listening), so nobody else can write a stream into `zfs receive`. Which
//! address that is, and where the source reaches the listener when the destination is this
//! machine, ferry finds out at run time (`peers`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::config::names::shell_quote;
use crate::exec::{describe_failure, Executor, Finished, Process};

use super::{Meter, Transferred};

/// How long the listener may take to bind its port.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Most bytes of one mbuffer output line kept: its lines are short, a peer's garbage is not.
const LINE_CAP: usize = 64 * 1024;

/// What one transfer needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where the source reaches the destination's listener. None (a local destination without
    /// `mbuffer_address`): the address the source host sees this machine at, found at run time.
    pub address: Option<String>,
    pub port: u16,
    /// Bytes per second on the sender's mbuffer (`-r`); 0 = none.
    pub bwlimit: u64,
    /// No connection (or no data) within this long ends the transfer.
    pub timeout: Duration,
}

/// Who talks to whom: where the source sends, and the one address the listener accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    /// Where the source reaches the listener (validated: an IP address or a host name).
    pub address: String,
    /// The source host's address as the destination sees it; every other peer is refused.
    pub source: Ipv4Addr,
}

/// The listener: mbuffer's messages and figures go to the exec's stdout (fd 3) for ferry to read,
/// its data into the receiving command (grouped: a driver's script may be a list of commands,
/// and only all of them together read the stream). Only `source` may connect.
pub fn listen_command(plan: &Plan, source: Ipv4Addr, recv: &str) -> String {
    format!(
        "exec 3>&1; sh -c 'echo \"ferry-pid $$\" >&2; exec mbuffer -4 -v 4 -s 128k -m 64M -W {w} -I {source}:{p}' 2>&3 | {{ {recv}; }} 3>&-",
        w = plan.timeout.as_secs().max(5),
        p = plan.port
    )
}

/// The sender: the send command's stream into an mbuffer that connects to the listener at `address`.
pub fn send_command(plan: &Plan, address: &str, send: &str) -> String {
    let rate = if plan.bwlimit > 0 {
        format!(" -r {}", plan.bwlimit)
    } else {
        String::new()
    };
    // the address was validated (host name or IP: no quote, no space) when the config loaded
    format!(
        "{{ {send}; }} | sh -c 'echo \"ferry-pid $$\"; exec mbuffer -4 -q -s 128k -m 64M -W {w}{rate} -O {a}:{p}'",
        w = plan.timeout.as_secs().max(5),
        a = address,
        p = plan.port
    )
}

/// An IPv4 address from text a host printed (an IPv4-mapped IPv6 address counts); `what` and
/// `host` name it in the error.
fn ipv4(text: &str, what: &str, host: &str) -> Result<Ipv4Addr> {
    match text.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(a),
        Ok(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => Ok(v4),
            None => bail!(
                "{what} is the IPv6 address {a} (on {host}); transport mbuffer runs over IPv4 here: set mbuffer_address to an IPv4 address"
            ),
        },
        Err(_) => bail!("{what}: {host} printed {text:?}, not an IP address"),
    }
}

/// `$SSH_CONNECTION` on a host: (the address it sees this machine at, its own address on that
/// connection).
async fn ssh_connection(ex: &Executor) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let out = ex.run_ok("echo \"$SSH_CONNECTION\"").await?.stdout_text();
    let line = out.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    parse_ssh_connection(line, ex.host())
}

/// "client-ip client-port server-ip server-port" as sshd sets it.
fn parse_ssh_connection(line: &str, host: &str) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 4 {
        bail!(
            "on {host}: $SSH_CONNECTION is {line:?}: cannot tell which address it reaches this machine at; set mbuffer_address"
        );
    }
    let what = format!("the address {host} sees this machine at");
    Ok((ipv4(f[0], &what, host)?, ipv4(f[2], &what, host)?))
}

/// The address this machine sends from to reach `address` (the kernel's route choice; a UDP
/// socket's connect sends nothing).
fn local_source_for(address: &str, port: u16) -> Result<Ipv4Addr> {
    let sock = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    sock.connect((address, port))
        .map_err(|e| anyhow!("cannot find a route from this machine to {address}: {e}"))?;
    match sock.local_addr()?.ip() {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(a) => {
            bail!("this machine reaches {address} from the IPv6 address {a}; transport mbuffer runs over IPv4")
        }
    }
}

/// For a remote source, in one round trip: (this machine as the source sees it, the address the
/// source sends from to reach `address`, or to this machine when `address` is None). The latter
/// is its route's `src` where `ip` can tell, else its own address on our SSH connection.
async fn remote_source_for(src: &Executor, address: Option<&str>) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let target = match address {
        Some(a) => shell_quote(a),
        None => "\"${SSH_CONNECTION%% *}\"".to_string(),
    };
    let out = src
        .run_ok(&format!(
            "echo \"$SSH_CONNECTION\"; ip -4 route get {target} 2>/dev/null | sed 's/^/route /'; true"
        ))
        .await?
        .stdout_text();
    let (route, conn): (Vec<&str>, Vec<&str>) = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .partition(|l| l.starts_with("route "));
    let (seen, own) = parse_ssh_connection(conn.last().copied().unwrap_or(""), src.host())?;
    let from = route
        .iter()
        .flat_map(|l| l.split_whitespace().skip_while(|w| *w != "src").nth(1))
        .find_map(|a| a.parse::<Ipv4Addr>().ok());
    Ok((seen, from.unwrap_or(own)))
}

/// Finds where the source sends and which address the listener accepts:
/// - the source is this machine: with the destination's own SSH address as `address`, this
///   machine as the destination sees it (`$SSH_CONNECTION` there: right across NAT too); else the
///   address the kernel sends from to `address`;
/// - the source is a host: `address` defaults (for a local destination) to this machine as the
///   source sees it (`$SSH_CONNECTION` there), and the source sends from its route's address.
pub async fn peers(src: &Executor, dst: &Executor, plan: &Plan) -> Result<Peers> {
    if src.address().is_none() {
        let address = match (&plan.address, dst.address()) {
            (Some(a), _) => a.clone(),
            (None, None) => Ipv4Addr::LOCALHOST.to_string(),
            (None, Some(a)) => a.to_string(),
        };
        let source = match dst.address() {
            Some(a) if a == address => ssh_connection(dst).await?.0,
            _ => local_source_for(&address, plan.port)?,
        };
        return Ok(Peers { address, source });
    }
    let given = plan.address.clone().or_else(|| dst.address().map(str::to_string));
    let (seen, source) = remote_source_for(src, given.as_deref()).await?;
    let address = given.unwrap_or_else(|| seen.to_string());
    Ok(Peers { address, source })
}

/// What the listener's output says, line by line.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Pid(u32),
    Listening,
    /// The listener refused a connection from this address (not the source).
    Rejected(String),
    /// Bytes received so far (mbuffer's own figure, to its display precision).
    Total(u64),
    /// An error or fatal message.
    Error(String),
}

/// Parses one line of mbuffer's output (status lines are separated by `\r`).
pub fn parse(line: &str) -> Option<Event> {
    let line = line.trim();
    if let Some(pid) = line.strip_prefix("ferry-pid ") {
        return pid.trim().parse().ok().map(Event::Pid);
    }
    if line.contains("listening on socket") {
        return Some(Event::Listening);
    }
    if let Some(i) = line.find("rejected connection from ") {
        let who = line[i + "rejected connection from ".len()..].trim();
        return Some(Event::Rejected(
            who.chars().filter(|c| !c.is_control()).take(64).collect(),
        ));
    }
    if line.contains("mbuffer: error") || line.contains("mbuffer: fatal") || line.contains("could not bind") {
        return Some(Event::Error(line.trim_start_matches("mbuffer: ").to_string()));
    }
    // "in @ 324 MiB/s, out @ 324 MiB/s, 227 MiB total, buffer 0% full"
    // "summary: 300 MiByte in 0.9sec - average of 329 MiB/s"
    let (num, unit) = if let Some(i) = line.find(" total") {
        let head = &line[..i];
        let mut parts = head
            .rsplit(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty());
        let unit = parts.next()?;
        (parts.next()?, unit)
    } else if let Some(rest) = line.strip_prefix("summary:") {
        let mut parts = rest.split_whitespace();
        (parts.next()?, parts.next()?)
    } else {
        return None;
    };
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim_end_matches("yte").trim_end_matches('B').trim_end_matches('i') {
        "" | "b" => 1.0,
        "k" | "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some(Event::Total((n * mult) as u64))
}

/// Reads a process's stdout into events until it closes.
fn watch(mut p: Process, tx: mpsc::UnboundedSender<Event>) -> tokio::task::JoinHandle<Result<Finished>> {
    tokio::spawn(async move {
        let mut out = p.stdout.take();
        let mut text = Vec::new();
        if let Some(o) = out.as_mut() {
            let mut buf = [0u8; 4096];
            loop {
                let n = o.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&buf[..n]);
                if text.len() > LINE_CAP && !text.iter().any(|b| *b == b'\n' || *b == b'\r') {
                    // no line is that long: garbage, dropped rather than kept
                    text.clear();
                }
                while let Some(i) = text.iter().position(|b| *b == b'\n' || *b == b'\r') {
                    let line: Vec<u8> = text.drain(..=i).collect();
                    if let Some(e) = parse(&String::from_utf8_lossy(&line)) {
                        let _ = tx.send(e);
                    }
                }
            }
        }
        if let Some(e) = parse(&String::from_utf8_lossy(&text)) {
            let _ = tx.send(e);
        }
        drop(out);
        p.wait().await
    })
}

/// Ends a process on a host by the pid it announced (best effort).
async fn kill(ex: &Executor, pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = ex.run(&format!("kill {pid} 2>/dev/null; true")).await;
    }
}

/// A script that returns once a socket listens on TCP `port` here (Linux's /proc/net/tcp: local
/// address `…:PORT`, state 0A), polling for up to about two seconds; where there is no
/// /proc/net/tcp it returns at once. mbuffer says "listening on socket" just before it calls
/// listen() (seen with strace): a sender started on that line alone can be refused, and is,
/// on a loaded host.
fn listening_script(port: u16) -> String {
    format!(
        "[ -r /proc/net/tcp ] || exit 0; i=0; while [ $i -lt 100 ]; do \
         awk '$2 ~ /:{port:04X}$/ && $4 == \"0A\" {{ f = 1 }} END {{ exit !f }}' /proc/net/tcp && exit 0; \
         i=$((i+1)); sleep 0.02; done; exit 1"
    )
}

/// Runs one transfer: listener on `dst`, sender on `src`. `log` receives the commands.
pub async fn transfer(
    src: &Executor,
    dst: &Executor,
    plan: &Plan,
    send: &str,
    recv: &str,
    meter: &Meter,
    log: &dyn Fn(&str),
) -> Result<Transferred> {
    let peers = peers(src, dst, plan).await?;
    log(&format!(
        "transport mbuffer: the stream goes UNENCRYPTED from {} to {}:{}; the listener on {} accepts only {}",
        src.host(),
        peers.address,
        plan.port,
        dst.host(),
        peers.source
    ));
    let listen_cmd = listen_command(plan, peers.source, recv);
    log(&format!("on {}: {listen_cmd}", dst.host()));
    let mut listener = dst.spawn(&listen_cmd).await?;
    drop(listener.stdin.take());
    let (ltx, mut lrx) = mpsc::unbounded_channel();
    let lwatch = watch(listener, ltx);
    let mut lpid = None;
    let mut errors: Vec<String> = Vec::new();
    let mut rejected: Vec<String> = Vec::new();
    let refuse = |who: String, rejected: &mut Vec<String>| {
        log(&format!(
            "mbuffer on {} refused a connection from {who}: only {} may send",
            dst.host(),
            peers.source
        ));
        if !rejected.contains(&who) && rejected.len() < 5 {
            rejected.push(who);
        }
    };

    // 1. the listener binds its port, or says why not
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, lrx.recv()).await {
            Ok(Some(Event::Pid(p))) => lpid = Some(p),
            Ok(Some(Event::Listening)) => {
                // the line comes just before listen(): wait for the socket itself (an answer
                // of "not yet" after two seconds is no error: the sender's own failure says more)
                let _ = dst.run(&listening_script(plan.port)).await;
                break;
            }
            Ok(Some(Event::Error(e))) => errors.push(e),
            Ok(Some(Event::Rejected(who))) => refuse(who, &mut rejected),
            Ok(Some(Event::Total(_))) => {}
            Ok(None) => {
                let f = lwatch.await.map_err(|e| anyhow!("{e}"))??;
                let why = if errors.is_empty() {
                    describe_failure(f.code, &f.stderr)
                } else {
                    errors.join("; ")
                };
                bail!(
                    "mbuffer on {} could not listen on port {}: {why}",
                    dst.host(),
                    plan.port
                );
            }
            Err(_) => {
                kill(dst, lpid).await;
                lwatch.abort();
                bail!(
                    "mbuffer on {} did not start listening on port {} within {}s",
                    dst.host(),
                    plan.port,
                    LISTEN_TIMEOUT.as_secs()
                );
            }
        }
    }

    // 2. the sender connects and streams
    let send_cmd = send_command(plan, &peers.address, send);
    log(&format!("on {}: {send_cmd}", src.host()));
    let started = Instant::now();
    let mut sender = match src.spawn(&send_cmd).await {
        Ok(s) => s,
        Err(e) => {
            kill(dst, lpid).await;
            let _ = lwatch.await;
            return Err(e.context("starting the mbuffer sender"));
        }
    };
    drop(sender.stdin.take());
    let (stx, mut srx) = mpsc::unbounded_channel();
    let swatch = watch(sender, stx);
    let mut spid = None;
    let mut total: u64 = 0;
    let mut sender_done: Option<Finished> = None;
    let mut swatch = Some(swatch);
    let mut lwatch = Some(lwatch);
    let mut listener_done: Option<Finished> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let failure: Option<String> = loop {
        tokio::select! {
            e = lrx.recv() => match e {
                Some(Event::Total(n)) if n > total => {
                    meter.add(n - total);
                    total = n;
                }
                Some(Event::Pid(p)) => lpid = Some(p),
                Some(Event::Error(e)) => errors.push(e),
                Some(Event::Rejected(who)) => refuse(who, &mut rejected),
                Some(_) => {}
                None => {
                    // the listener's output closed: it is ending; collect how
                    if let Some(w) = lwatch.take() {
                        listener_done = Some(w.await.map_err(|e| anyhow!("{e}"))??);
                    }
                    if let Some(w) = swatch.take() {
                        sender_done = Some(w.await.map_err(|e| anyhow!("{e}"))??);
                    }
                    break None;
                }
            },
            e = srx.recv(), if sender_done.is_none() && swatch.is_some() => match e {
                Some(Event::Pid(p)) => spid = Some(p),
                Some(Event::Error(e)) => errors.push(e),
                Some(_) => {}
                None => {
                    let f = swatch.take().expect("watched").await.map_err(|e| anyhow!("{e}"))??;
                    if !f.success() && total == 0 {
                        // never connected (refused, unreachable): the listener waits in vain
                        break Some(format!(
                            "mbuffer on {} could not send to {}:{}: {}",
                            src.host(), peers.address, plan.port, describe_failure(f.code, &f.stderr)
                        ));
                    }
                    sender_done = Some(f);
                }
            },
            _ = tick.tick() => {
                if total == 0 && started.elapsed() > plan.timeout {
                    let why = if rejected.is_empty() {
                        format!("can {} reach mbuffer_address {}?", src.host(), peers.address)
                    } else {
                        format!(
                            "it refused {}: only {} may send; if that was {}, it reaches {} from another address than ferry found",
                            rejected.join(", "), peers.source, src.host(), peers.address
                        )
                    };
                    break Some(format!(
                        "no connection reached the mbuffer listener on {}:{} within {}s ({why})",
                        dst.host(), plan.port, plan.timeout.as_secs()
                    ));
                }
            }
        }
    };
    if let Some(msg) = failure {
        // nothing may stay behind: end both mbuffers, then collect them
        kill(dst, lpid).await;
        kill(src, spid).await;
        if let Some(w) = lwatch.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
        }
        if let Some(w) = swatch.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
        }
        bail!("{msg}");
    }
    let seconds = started.elapsed().as_secs_f64();
    let (s, r) = (sender_done.expect("collected"), listener_done.expect("collected"));
    // the receiving side's complaint says most; mbuffer's own messages next
    if !r.success() {
        let extra = if errors.is_empty() {
            String::new()
        } else {
            format!(" (mbuffer: {})", errors.join("; "))
        };
        return Err(super::StreamFailed {
            text: format!("receive failed: {}{extra}", describe_failure(r.code, &r.stderr)),
            receiver: Some(r),
        }
        .into());
    }
    if !s.success() {
        bail!("send failed: {}", describe_failure(s.code, &s.stderr));
    }
    Ok(Transferred { bytes: total, seconds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_listening_check_waits_for_a_socket_in_listen_state() {
        let bound = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = bound.local_addr().unwrap().port();
        let out = Executor::Local.run(&listening_script(port)).await.unwrap();
        assert!(out.success(), "a listening socket is found");
        // bound but not listening (what mbuffer has when it prints its line): not found
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        let t = std::time::Instant::now();
        let out = Executor::Local.run(&listening_script(port)).await.unwrap();
        assert!(!out.success(), "a socket bound but not listening is not ready");
        assert!(t.elapsed() >= Duration::from_secs(1), "it polled before giving up");
        // and once it listens, found
        let _l = socket.listen(1).unwrap();
        assert!(Executor::Local.run(&listening_script(port)).await.unwrap().success());
    }

    #[test]
    fn parses_mbuffer_output() {
        assert_eq!(parse("ferry-pid 123"), Some(Event::Pid(123)));
        assert_eq!(parse("mbuffer: listening on socket..."), Some(Event::Listening));
        assert!(
            listening_script(9090).contains("/:2382$/"),
            "{}",
            listening_script(9090)
        );
        assert_eq!(
            parse("in @  324 MiB/s, out @  324 MiB/s,  227 MiB total, buffer   0% full"),
            Some(Event::Total(227 << 20))
        );
        assert_eq!(
            parse("in @  0.0 kiB/s, out @  0.0 kiB/s,  512 kiB total, buffer   0% full"),
            Some(Event::Total(512 << 10))
        );
        assert_eq!(
            parse("summary:  300 MiByte in  0.9sec - average of  329 MiB/s"),
            Some(Event::Total(300 << 20))
        );
        assert_eq!(
            parse("in @ 1.0 MiB/s, out @ 1.0 MiB/s, 1.50 GiB total, buffer 0% full"),
            Some(Event::Total(3 << 29))
        );
        assert!(matches!(
            parse("mbuffer: fatal: Unable to initialize network input."),
            Some(Event::Error(_))
        ));
        assert_eq!(parse("mbuffer: no config file /root/.mbuffer.rc"), None);
        assert_eq!(
            parse("mbuffer: warning: rejected connection from 127.0.0.2"),
            Some(Event::Rejected("127.0.0.2".into()))
        );
    }

    #[test]
    fn commands_quote_the_address() {
        let plan = Plan {
            address: None,
            port: 9090,
            bwlimit: 1000,
            timeout: Duration::from_secs(30),
        };
        let s = send_command(&plan, "10.0.0.2", "zfs send t/d@s");
        assert!(s.ends_with("-W 30 -r 1000 -O 10.0.0.2:9090'"), "{s}");
        let l = listen_command(&plan, Ipv4Addr::new(10, 0, 0, 7), "zfs receive b/d");
        assert!(l.contains("-I 10.0.0.7:9090' 2>&3 | { zfs receive b/d; } 3>&-"), "{l}");
    }

    #[test]
    fn addresses_from_a_host_are_ipv4_or_a_clear_error() {
        assert_eq!(ipv4("10.1.2.3", "x", "h").unwrap(), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(ipv4("::ffff:10.1.2.3", "x", "h").unwrap(), Ipv4Addr::new(10, 1, 2, 3));
        let e = ipv4("2001:db8::1", "the address store1 sees this machine at", "store1").unwrap_err();
        assert!(e.to_string().contains("IPv6 address 2001:db8::1 (on store1)"), "{e}");
        assert!(ipv4("x; rm -rf /", "x", "h").is_err());
    }

    #[tokio::test]
    async fn a_local_pair_sends_to_loopback_from_loopback() {
        let plan = Plan {
            address: None,
            port: 9090,
            bwlimit: 0,
            timeout: Duration::from_secs(30),
        };
        let p = peers(&Executor::Local, &Executor::Local, &plan).await.unwrap();
        assert_eq!((p.address.as_str(), p.source), ("127.0.0.1", Ipv4Addr::LOCALHOST));
    }
}
