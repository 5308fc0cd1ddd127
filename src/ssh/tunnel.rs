//! A direct-tcpip channel on a jump host's session, as a byte stream an SSH session to the far host
//! runs over (OpenSSH's ProxyJump).
//!
//! Every tunnel through one jump host shares one session to it. russh's session task stops reading
//! its TCP connection while any channel's queue is full, so a far session that stops reading its
//! tunnel (its own reader is slow) would stall every other tunnel on the bastion, window adjustments
//! included: a `zfs send` from one far host feeding a `zfs recv` on another behind the same bastion
//! would deadlock. So a pump drains each tunnel at once into a queue of its own. That queue stays
//! small without a window of ours: the far host sends only what the inner SSH session's window
//! allows (8 MiB per channel, granted as the inner session consumes). A far host ignoring that
//! window is cut off at [`TUNNEL_BUFFER_CAP`].

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use russh::client::Msg;
use russh::{Channel, ChannelMsg};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// Most bytes a tunnel holds for its far session before the far host counts as misbehaving.
pub const TUNNEL_BUFFER_CAP: usize = 64 * 1024 * 1024;

/// What the pump hands the reader.
enum Item {
    /// Always a `ChannelMsg::Data`.
    Data(ChannelMsg),
    /// The far host sent past any window: the tunnel was closed.
    Overflow,
}

/// The tunnel's two directions.
pub struct Tunnel {
    rx: mpsc::UnboundedReceiver<Item>,
    cur: Option<(ChannelMsg, usize)>,
    buffered: Arc<AtomicUsize>,
    write: Pin<Box<dyn AsyncWrite + Send>>,
}

impl Tunnel {
    /// Wraps an open direct-tcpip channel and starts its pump.
    pub fn new(channel: Channel<Msg>) -> Tunnel {
        let (mut read, write) = channel.split();
        let writer = write.make_writer();
        let (tx, rx) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicUsize::new(0));
        let counted = buffered.clone();
        tokio::spawn(async move {
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { ref data } => {
                        let n = data.len();
                        if counted.fetch_add(n, Ordering::Relaxed) + n > TUNNEL_BUFFER_CAP {
                            let _ = tx.send(Item::Overflow);
                            let _ = write.close().await;
                            break;
                        }
                        if tx.send(Item::Data(msg)).is_err() {
                            // The far session is gone: nobody reads this tunnel any more.
                            let _ = write.close().await;
                            break;
                        }
                    }
                    ChannelMsg::Eof | ChannelMsg::Close => break,
                    _ => {}
                }
            }
        });
        Tunnel {
            rx,
            cur: None,
            buffered,
            write: Box::pin(writer),
        }
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some((ChannelMsg::Data { data }, off)) = &mut self.cur {
                let n = buf.remaining().min(data.len() - *off);
                buf.put_slice(&data[*off..*off + n]);
                *off += n;
                if *off == data.len() {
                    self.cur = None;
                }
                self.buffered.fetch_sub(n, Ordering::Relaxed);
                return Poll::Ready(Ok(()));
            }
            self.cur = None;
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Item::Data(d))) => self.cur = Some((d, 0)),
                Poll::Ready(Some(Item::Overflow)) => {
                    return Poll::Ready(Err(io::Error::other(format!(
                        "the far host sent more than {} MiB past the SSH window",
                        TUNNEL_BUFFER_CAP >> 20
                    ))))
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.write.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.write.as_mut().poll_shutdown(cx)
    }
}
