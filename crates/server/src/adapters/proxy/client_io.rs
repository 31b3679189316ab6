//! The client side of a proxy connection: its header and idle deadlines
//! (`ClientIo`), and what the request handler tells them about requests in
//! flight (`ConnectionActivity`, `ActivityBody`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::adapters::proxy::headers::ClientInfo;
use crate::adapters::proxy::{BoxError, ProxyBody};
use crate::config::ProxyConfig;

/// What the request handler tells a connection's I/O about its requests.
#[derive(Debug)]
pub(super) struct ConnectionActivity {
    /// The client at the other end.
    pub(super) client: ClientInfo,
    /// Requests whose head was read and whose response has not ended.
    pub(super) open_requests: AtomicU32,
    /// Increases with every request head read; lets a stale header timer be spotted.
    pub(super) heads_read: std::sync::atomic::AtomicU64,
    /// HTTP/2: bytes between requests are frames (pings, settings), not the
    /// start of a head, so there is no head deadline; the idle one stays.
    multiplexed: std::sync::atomic::AtomicBool,
}

impl ConnectionActivity {
    pub(super) fn new(client: ClientInfo) -> ConnectionActivity {
        ConnectionActivity {
            client,
            open_requests: AtomicU32::new(0),
            heads_read: std::sync::atomic::AtomicU64::new(0),
            multiplexed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The connection speaks HTTP/2.
    pub(super) fn multiplexed(&self) {
        self.multiplexed.store(true, Ordering::Relaxed);
    }

    fn is_multiplexed(&self) -> bool {
        self.multiplexed.load(Ordering::Relaxed)
    }

    pub(super) fn request_started(&self) {
        self.open_requests.fetch_add(1, Ordering::AcqRel);
        self.heads_read.fetch_add(1, Ordering::AcqRel);
    }

    pub(super) fn request_ended(&self) {
        self.open_requests.fetch_sub(1, Ordering::AcqRel);
    }

    pub(super) fn busy(&self) -> bool {
        self.open_requests.load(Ordering::Acquire) > 0
    }
}

/// A response body that marks its request ended when it ends or is dropped.
pub(super) struct ActivityBody {
    pub(super) inner: ProxyBody,
    pub(super) activity: Option<Arc<ConnectionActivity>>,
}

impl ActivityBody {
    pub(super) fn end(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.request_ended();
        }
    }
}

impl Body for ActivityBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ActivityBody {
    fn drop(&mut self) {
        self.end();
    }
}

/// A client connection with two deadlines of its own:
/// - a request head must arrive in full within the header timeout, counted
///   from its first byte (a client that sends half a request and stalls is
///   closed, while an idle keep-alive connection is not);
/// - no byte moving in either direction for the idle timeout closes it.
///
/// Reads and writes only note the time; one timer per connection is re-armed
/// when it fires, so a busy connection touches tokio's timer wheel about once
/// per header timeout rather than on every read and write.
pub(super) struct ClientIo {
    stream: TcpStream,
    activity: Arc<ConnectionActivity>,
    idle_timeout: Duration,
    header_timeout: Duration,
    timer: Pin<Box<Sleep>>,
    last_activity: Instant,
    /// When the head being received started, with `heads_read` then.
    head_started: Option<(Instant, u64)>,
}

impl ClientIo {
    pub(super) fn new(
        stream: TcpStream,
        activity: Arc<ConnectionActivity>,
        config: &ProxyConfig,
    ) -> ClientIo {
        let idle_timeout = config.client_idle_timeout.0;
        let header_timeout = config.client_header_timeout.0;
        ClientIo {
            stream,
            activity,
            idle_timeout,
            header_timeout,
            timer: Box::pin(tokio::time::sleep(idle_timeout.min(header_timeout))),
            last_activity: Instant::now(),
            head_started: None,
        }
    }

    pub(super) fn moved_bytes(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Forgets the head start once that head has been read.
    pub(super) fn forget_finished_head(&mut self) {
        let heads_read = self.activity.heads_read.load(Ordering::Acquire);
        if self
            .head_started
            .is_some_and(|(_, started_at)| started_at != heads_read)
        {
            self.head_started = None;
        }
    }

    pub(super) fn check_deadlines(&mut self, cx: &mut Context<'_>) -> Option<std::io::Error> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return None;
            }
            let now = Instant::now();
            if now >= self.last_activity + self.idle_timeout {
                return Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client connection idle for too long",
                ));
            }
            self.forget_finished_head();
            if self.activity.is_multiplexed() {
                self.head_started = None;
            }
            if let Some((started, _)) = self.head_started
                && now >= started + self.header_timeout
            {
                return Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client too slow to send a request head",
                ));
            }
            // Nothing expired: wake again at the earliest deadline that could,
            // including one for a head that may start from now on.
            let mut next = (self.last_activity + self.idle_timeout).min(now + self.header_timeout);
            if let Some((started, _)) = self.head_started {
                next = next.min(started + self.header_timeout);
            }
            self.timer.as_mut().reset(next);
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved_bytes();
                    self.forget_finished_head();
                    // Bytes while no request is open are the start of a head
                    // (on HTTP/1.1, and before a TLS handshake or HTTP/2
                    // preface has shown what the connection speaks).
                    if !self.activity.busy()
                        && self.head_started.is_none()
                        && !self.activity.is_multiplexed()
                    {
                        let heads_read = self.activity.heads_read.load(Ordering::Acquire);
                        self.head_started = Some((self.last_activity, heads_read));
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.check_deadlines(cx) {
                Some(err) => Poll::Ready(Err(err)),
                None => Poll::Pending,
            },
        }
    }
}

impl ClientIo {
    /// Notes bytes written, and turns a pending write into an error once a
    /// deadline has passed.
    pub(super) fn written(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.moved_bytes();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Pending => match self.check_deadlines(cx) {
                Some(err) => Poll::Ready(Err(err)),
                None => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        self.written(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
