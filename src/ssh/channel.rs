//! One exec channel as a process: stdin (AsyncWrite, shutdown or drop sends EOF), stdout (AsyncRead
//! fed by a pump task with bounded buffering) and a `done` future with exit code and capped stderr.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{anyhow, Result};
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot, watch};

use super::known_hosts::HostLabel;
use super::RemoteProcess;
use super::STDERR_CAP;
use crate::config::HostConfig;

/// Data messages (up to one SSH packet each, 32 KiB from OpenSSH) buffered between the channel and
/// a slow stdout reader before the pump stops reading the channel.
pub const STDOUT_QUEUE: usize = 64;

/// Called once the channel has ended; `true` if the session is still good for another channel.
pub type Release = Box<dyn FnOnce(bool) + Send>;

/// Starts `command` on an opened session channel and returns it as a process.
pub async fn start(
    host: &HostConfig,
    channel: russh::Channel<Msg>,
    command: &str,
    release: Release,
) -> Result<RemoteProcess> {
    if let Err(e) = channel.exec(true, command).await {
        release(false);
        anyhow::bail!(
            "{}: cannot start `{command}`: {}",
            HostLabel(host),
            super::message::russh_message(&e)
        );
    }
    let (read, write) = channel.split();
    let write = Arc::new(write);
    let (stdout_tx, stdout_rx) = mpsc::channel(STDOUT_QUEUE);
    let (closed_tx, closed_rx) = watch::channel(false);
    let (result_tx, result_rx) = oneshot::channel();
    let pump = Pump {
        label: HostLabel(host).to_string(),
        command: command.to_string(),
        read,
        write: write.clone(),
        stdout: Some(stdout_tx),
        closed: closed_tx,
        release: Some(release),
    };
    tokio::spawn(pump.run(result_tx));

    let stdin = Stdin {
        inner: Box::new(write.make_writer()),
        write,
        closed: closed_rx,
        closed_fut: None,
        eof_sent: false,
    };
    let stdout = Stdout {
        rx: stdout_rx,
        cur: None,
    };
    let label = HostLabel(host).to_string();
    let done = async move {
        match result_rx.await {
            Ok(r) => r,
            Err(_) => Err(anyhow!("{label}: the ssh channel task ended without a result")),
        }
    };
    Ok(RemoteProcess {
        stdin: Some(Box::new(stdin)),
        stdout: Some(Box::new(stdout)),
        done: Box::pin(done),
    })
}

/// Moves channel messages to their places: data to stdout (waiting while the reader is slow; discarding
/// once it is gone), stderr into a capped buffer, the exit status into the result.
struct Pump {
    label: String,
    command: String,
    read: ChannelReadHalf,
    write: Arc<ChannelWriteHalf<Msg>>,
    stdout: Option<mpsc::Sender<ChannelMsg>>,
    closed: watch::Sender<bool>,
    release: Option<Release>,
}

impl Pump {
    async fn run(mut self, mut result: oneshot::Sender<Result<(Option<i32>, String)>>) {
        let mut stderr: Vec<u8> = Vec::new();
        let mut code: Option<i32> = None;
        let mut signal: Option<String> = None;
        let mut refused = false;
        let mut got_close = false;
        // Set once nobody waits for the result; with stdout gone as well, the channel is closed.
        let mut abandoned = false;
        loop {
            let msg = tokio::select! {
                m = self.read.wait() => m,
                _ = result.closed(), if !abandoned => {
                    abandoned = true;
                    close_if_abandoned(abandoned, &self.stdout, &self.write).await;
                    continue;
                }
            };
            match msg {
                Some(ChannelMsg::Data { data }) => {
                    if let Some(tx) = &self.stdout {
                        if tx.send(ChannelMsg::Data { data }).await.is_err() {
                            // The reader was dropped: discard from now on.
                            self.stdout = None;
                            close_if_abandoned(abandoned, &self.stdout, &self.write).await;
                        }
                    }
                }
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    let room = STDERR_CAP.saturating_sub(stderr.len());
                    stderr.extend_from_slice(&data[..data.len().min(room)]);
                }
                Some(ChannelMsg::Eof) => self.stdout = None,
                Some(ChannelMsg::ExitStatus { exit_status }) => code = Some(exit_status as i32),
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => signal = Some(format!("{signal_name:?}")),
                Some(ChannelMsg::Failure) => {
                    refused = true;
                    let _ = self.write.close().await;
                }
                Some(ChannelMsg::Close) => {
                    got_close = true;
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
        self.stdout = None;
        let _ = self.closed.send(true);
        if let Some(release) = self.release.take() {
            release(got_close);
        }
        let r = if refused {
            Err(anyhow!("{}: the server refused to run `{}`", self.label, self.command))
        } else if !got_close && code.is_none() {
            Err(anyhow!(
                "{}: connection lost while running `{}`",
                self.label,
                self.command
            ))
        } else {
            let _ = signal; // Exit by signal: no code, as for a local process.
            Ok((code, String::from_utf8_lossy(&stderr).into_owned()))
        };
        let _ = result.send(r);
    }
}

/// When neither the result nor stdout is wanted any more, closes the channel (as a local process is
/// killed on drop); the remote command then sees its output pipe closed.
async fn close_if_abandoned(abandoned: bool, stdout: &Option<mpsc::Sender<ChannelMsg>>, write: &ChannelWriteHalf<Msg>) {
    if abandoned && stdout.as_ref().is_none_or(|tx| tx.is_closed()) {
        let _ = write.close().await;
    }
}

/// The command's stdout: data messages from the pump, read without further copies.
struct Stdout {
    rx: mpsc::Receiver<ChannelMsg>,
    cur: Option<(ChannelMsg, usize)>,
}

impl AsyncRead for Stdout {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some((ChannelMsg::Data { data }, off)) = &mut self.cur {
                let n = buf.remaining().min(data.len() - *off);
                buf.put_slice(&data[*off..*off + n]);
                *off += n;
                if *off == data.len() {
                    self.cur = None;
                }
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(msg)) => self.cur = Some((msg, 0)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The command's stdin. Writes fail with BrokenPipe once the channel has closed (instead of waiting
/// forever for window space); shutdown, or drop without shutdown, sends EOF.
struct Stdin {
    inner: Box<dyn AsyncWrite + Send + Unpin>,
    write: Arc<ChannelWriteHalf<Msg>>,
    closed: watch::Receiver<bool>,
    closed_fut: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    eof_sent: bool,
}

impl Stdin {
    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Ready once the channel has closed.
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let fut = self.closed_fut.get_or_insert_with(|| {
            let mut rx = self.closed.clone();
            Box::pin(async move {
                let _ = rx.wait_for(|c| *c).await;
            })
        });
        fut.as_mut().poll(cx)
    }
}

fn broken_pipe() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the remote command's channel is closed")
}

impl AsyncWrite for Stdin {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.is_closed() || self.eof_sent {
            return Poll::Ready(Err(broken_pipe()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => match self.poll_closed(cx) {
                Poll::Ready(()) => Poll::Ready(Err(broken_pipe())),
                Poll::Pending => Poll::Pending,
            },
            r => r,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.eof_sent || self.is_closed() {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(r) => {
                self.eof_sent = true;
                Poll::Ready(r)
            }
            Poll::Pending => match self.poll_closed(cx) {
                Poll::Ready(()) => Poll::Ready(Ok(())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        if self.eof_sent || self.is_closed() {
            return;
        }
        // Like closing a pipe: the command sees end of input.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let write = self.write.clone();
            rt.spawn(async move {
                let _ = write.eof().await;
            });
        }
    }
}
