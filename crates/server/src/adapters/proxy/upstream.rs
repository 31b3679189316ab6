//! The proxy's upstream side: HTTP/1.1 over keep-alive TCP connections
//! pooled per proxy thread, driven from the request's own task.
//!
//! A body-less request (nearly all of them) is written and its response
//! head read in the task that serves the client, and the response body is
//! read straight from the socket as the client's connection asks for it:
//! no connection task, no channel between tasks. A request with a body is
//! written by a task of its own while the response head is read, so an
//! upstream that answers before it has read the whole body (or echoes it as
//! it reads) never deadlocks against us.
//!
//! Framing lives in [`super::http1`]; this module only moves bytes.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use super::http1::{self, ChunkedDecoder, Decoded, Framing, ResponseHead};
use super::{BoxError, ProxyBody};

/// How much to ask the socket for at a time.
const READ_CHUNK: usize = 16 * 1024;
/// How long an upstream connection may sit idle in a pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream and proxy thread.
const POOL_MAX_IDLE: usize = 256;

/// One keep-alive connection to an upstream.
#[derive(Debug)]
pub(super) struct Connection {
    reader: OwnedReadHalf,
    /// `None` while a task of its own writes a request body.
    writer: Option<OwnedWriteHalf>,
    /// Bytes read but not yet used: the rest of a head, or body bytes.
    buf: BytesMut,
    /// The response timer, kept for the connection's life and re-armed only
    /// when it fires (see [`before_deadline`]).
    timer: Pin<Box<Sleep>>,
    /// When the last request on it started; how long it has been idle counts from here.
    last_used: Instant,
}

impl Connection {
    /// Connects to `address` within `timeout`.
    pub(super) async fn open(address: &str, timeout: Duration) -> Result<Connection, Failed> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_elapsed| Failed::timeout())?
            .map_err(|err| Failed::io(err, true))?;
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let now = Instant::now();
        Ok(Connection {
            reader,
            writer: Some(writer),
            buf: BytesMut::with_capacity(READ_CHUNK),
            timer: Box::pin(tokio::time::sleep_until(now)),
            last_used: now,
        })
    }

    /// Whether an idle connection can carry a request: the upstream has not
    /// closed it and sent nothing unasked. Costs no system call unless the
    /// socket became readable while idle.
    fn is_usable_when_idle(&self) -> bool {
        let mut probe = [0u8; 1];
        self.buf.is_empty()
            && self.writer.is_some()
            && matches!(self.reader.try_read(&mut probe), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
    }

    /// The socket again, for a tunnel after `101 Switching Protocols`, with
    /// the bytes the upstream already sent past the head.
    pub(super) fn into_tunnel(self) -> Option<(TcpStream, Bytes)> {
        let writer = self.writer?;
        let stream = self.reader.reunite(writer).ok()?;
        Some((stream, self.buf.freeze()))
    }
}

/// A failed exchange with an upstream.
#[derive(Debug)]
pub(super) struct Failed {
    /// What went wrong, for classification.
    pub(super) error: BoxError,
    /// Whether the upstream sent no byte of a response, so a request that
    /// can be replayed may go out again on another connection.
    pub(super) nothing_received: bool,
}

impl Failed {
    fn io(err: io::Error, nothing_received: bool) -> Failed {
        Failed {
            error: Box::new(err),
            nothing_received,
        }
    }

    fn timeout() -> Failed {
        Failed::io(io::Error::from(io::ErrorKind::TimedOut), false)
    }
}

/// How a request body goes out.
pub(super) enum RequestBody {
    /// None at all.
    Empty,
    /// Exactly as long as the request's `Content-Length` says.
    Length(ProxyBody),
    /// Chunked: the client sent no length.
    Chunked(ProxyBody),
}

/// A task writing a request body; aborted if dropped before it ends.
#[derive(Debug)]
pub(super) struct BodyWriter(JoinHandle<Result<OwnedWriteHalf, BoxError>>);

impl Drop for BodyWriter {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where sending a request body stands, for the response timeout: it counts
/// only the upstream's time, so it stops while the proxy waits for the
/// client's next bytes, and restarts from each piece received.
///
/// Written by the task sending the body, read when the timer fires.
#[derive(Debug)]
struct BodyProgress {
    /// When the request started; the stamp below counts from here.
    base: Instant,
    /// The proxy is waiting for the client's body, not for the upstream.
    waiting_on_client: AtomicBool,
    /// When the upstream's time last started, in microseconds after `base`.
    since_micros: AtomicU64,
}

impl BodyProgress {
    fn new(base: Instant) -> BodyProgress {
        BodyProgress {
            base,
            waiting_on_client: AtomicBool::new(false),
            since_micros: AtomicU64::new(0),
        }
    }

    fn waiting_on_client(&self) {
        self.waiting_on_client.store(true, Ordering::Release);
    }

    /// The client handed over a piece (or the body ended): the upstream's time runs from now.
    fn upstream_time_starts(&self) {
        let micros = u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.since_micros.store(micros, Ordering::Release);
        self.waiting_on_client.store(false, Ordering::Release);
    }

    /// When the upstream's time started, or `None` while the client holds things up.
    fn upstream_since(&self) -> Option<Instant> {
        (!self.waiting_on_client.load(Ordering::Acquire))
            .then(|| self.base + Duration::from_micros(self.since_micros.load(Ordering::Acquire)))
    }
}

/// Sends one request (its head already encoded) and reads the response
/// head, unless the upstream takes longer than `timeout` to answer.
/// `started` is when the request began (the connection's idle time counts
/// from it, and so does the timeout for a request without a body); for a
/// request with a body, the timeout counts the upstream's time only, not
/// the time spent waiting for the client's body.
///
/// Returns the head and, when the request has a body, the task still
/// writing it (the response may start before the body has all gone out).
pub(super) async fn exchange(
    connection: &mut Connection,
    method: &Method,
    head: &[u8],
    body: RequestBody,
    (started, timeout): (Instant, Duration),
) -> Result<(ResponseHead, Option<BodyWriter>), Failed> {
    connection.last_used = started;
    let Connection {
        reader,
        writer,
        buf,
        timer,
        ..
    } = connection;
    let (body, chunked) = match body {
        RequestBody::Empty => {
            let exchange = async {
                let writer = writer.as_mut().ok_or_else(no_writer)?;
                writer
                    .write_all(head)
                    .await
                    .map_err(|err| Failed::io(err, true))?;
                read_head(reader, buf, method)
                    .await
                    .map(|head| (head, None))
            };
            return before_deadline(timer, timeout, || Some(started), exchange).await;
        }
        RequestBody::Length(body) => (body, false),
        RequestBody::Chunked(body) => (body, true),
    };
    let progress = Arc::new(BodyProgress::new(started));
    // Boxed: the body-less path above is nearly every request, and its
    // future stays small (it is moved on every request) without this one.
    let exchange = Box::pin(exchange_with_body(
        reader,
        writer,
        buf,
        method,
        head.to_vec(),
        body,
        chunked,
        Arc::clone(&progress),
    ));
    before_deadline(timer, timeout, || progress.upstream_since(), exchange).await
}

/// Runs `exchange` until it ends or the upstream has had `timeout` since
/// `upstream_since()` (`None`: the upstream is not what is being waited for).
///
/// The timer belongs to the connection and is not re-armed per request:
/// it still holds an earlier request's deadline, which is never later than
/// this one's, so it fires at that deadline or before; only then is it
/// moved on. Back-to-back requests on a connection therefore touch the
/// timer wheel about once per timeout period, not twice per request as
/// `tokio::time::timeout` would.
async fn before_deadline<T>(
    timer: &mut Pin<Box<Sleep>>,
    timeout: Duration,
    upstream_since: impl Fn() -> Option<Instant>,
    exchange: impl Future<Output = Result<T, Failed>>,
) -> Result<T, Failed> {
    let mut exchange = std::pin::pin!(exchange);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = exchange.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        while timer.as_mut().poll(cx).is_ready() {
            match upstream_since() {
                Some(since) if timer.deadline() >= since + timeout => {
                    return Poll::Ready(Err(Failed::timeout()));
                }
                Some(since) => timer.as_mut().reset(since + timeout),
                // Waiting for the client, whose own idle timeout bounds this.
                None => timer.as_mut().reset(Instant::now() + timeout),
            }
        }
        Poll::Pending
    })
    .await
}

fn no_writer() -> Failed {
    Failed {
        error: "connection has no writer".into(),
        nothing_received: true,
    }
}

/// [`exchange`] for a request with a body: a task writes it while the
/// response head is read here.
#[expect(
    clippy::too_many_arguments,
    reason = "the connection's parts are borrowed apart, so they come one by one"
)]
async fn exchange_with_body(
    reader: &mut OwnedReadHalf,
    writer_slot: &mut Option<OwnedWriteHalf>,
    buf: &mut BytesMut,
    method: &Method,
    head: Vec<u8>,
    body: ProxyBody,
    chunked: bool,
    progress: Arc<BodyProgress>,
) -> Result<(ResponseHead, Option<BodyWriter>), Failed> {
    let mut writer = writer_slot.take().ok_or_else(no_writer)?;
    let mut task = BodyWriter(tokio::spawn(async move {
        write_request(&mut writer, &head, body, chunked, &progress).await?;
        Ok(writer)
    }));
    tokio::select! {
        head = read_head(reader, buf, method) => head.map(|head| (head, Some(task))),
        written = &mut task.0 => match written {
            Ok(Ok(writer)) => {
                *writer_slot = Some(writer);
                let head = read_head(reader, buf, method).await?;
                Ok((head, None))
            }
            Ok(Err(error)) => Err(Failed { error, nothing_received: false }),
            Err(join) => Err(Failed { error: Box::new(join), nothing_received: false }),
        },
    }
}

/// Writes the head, then the body frames (chunk-framed when `chunked`),
/// noting in `progress` whose turn it is.
async fn write_request(
    writer: &mut OwnedWriteHalf,
    head: &[u8],
    mut body: ProxyBody,
    chunked: bool,
    progress: &BodyProgress,
) -> Result<(), BoxError> {
    writer.write_all(head).await?;
    loop {
        progress.waiting_on_client();
        let frame = body.frame().await;
        progress.upstream_time_starts();
        let Some(frame) = frame else {
            break;
        };
        let Ok(data) = frame?.into_data() else {
            continue; // trailers are not forwarded
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            writer
                .write_all(format!("{:x}\r\n", data.len()).as_bytes())
                .await?;
            writer.write_all(&data).await?;
            writer.write_all(b"\r\n").await?;
        } else {
            writer.write_all(&data).await?;
        }
    }
    if chunked {
        writer.write_all(b"0\r\n\r\n").await?;
    }
    writer.flush().await?;
    Ok(())
}

/// Reads until a final response head is complete (skipping `100 Continue`
/// and other interim responses, but not `101`).
async fn read_head(
    reader: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    method: &Method,
) -> Result<ResponseHead, Failed> {
    let mut received = !buf.is_empty();
    loop {
        match http1::take_response_head(buf, method) {
            Ok(Some(head)) => {
                if head.status.is_informational()
                    && head.status != hyper::StatusCode::SWITCHING_PROTOCOLS
                {
                    continue;
                }
                return Ok(head);
            }
            Ok(None) => {}
            Err(err) => {
                return Err(Failed {
                    error: Box::new(err),
                    nothing_received: false,
                });
            }
        }
        buf.reserve(READ_CHUNK);
        let read = std::future::poll_fn(|cx| {
            tokio_util::io::poll_read_buf(Pin::new(&mut *reader), cx, buf)
        })
        .await
        .map_err(|err| Failed::io(err, !received))?;
        if read == 0 {
            return Err(Failed::io(
                io::Error::from(io::ErrorKind::UnexpectedEof),
                !received,
            ));
        }
        received = true;
    }
}

// === The pool ===

/// Idle keep-alive connections to one upstream, used only by the proxy
/// thread that opened them.
///
/// Most recently used at the back, so the warmest connection is reused and
/// the ones left idle age out at the front. The lock is only ever taken by
/// one thread, for a push or a pop, never across an `.await`.
#[derive(Debug, Default)]
pub(super) struct ConnectionPool {
    idle: Mutex<VecDeque<Connection>>,
}

impl ConnectionPool {
    /// The most recently used idle connection that is still open, for a
    /// request starting `now`.
    pub(super) fn take(&self, now: Instant) -> Option<Connection> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some(connection) = idle.pop_back() {
            if now.saturating_duration_since(connection.last_used) < POOL_IDLE_TIMEOUT
                && connection.is_usable_when_idle()
            {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps a connection whose last exchange ended cleanly, dropping the
    /// ones idle for too long (or the oldest, when the pool is full).
    fn put_back(&self, connection: Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let newest = connection.last_used;
        while idle.front().is_some_and(|oldest| {
            newest.saturating_duration_since(oldest.last_used) >= POOL_IDLE_TIMEOUT
        }) || idle.len() >= POOL_MAX_IDLE
        {
            idle.pop_front();
        }
        idle.push_back(connection);
    }
}

// === The response body ===

/// Where reading a response body stands.
#[derive(Debug)]
enum BodyState {
    /// This many bytes are still to come.
    Length(u64),
    /// Chunked, decoding.
    Chunked(ChunkedDecoder),
    /// Until the upstream closes.
    UntilClose,
    /// Complete.
    Done,
}

/// A response body read straight from the upstream connection; the
/// connection goes back to its pool when the body ends cleanly and both
/// sides want to keep it.
#[derive(Debug)]
pub(super) struct UpstreamBody {
    connection: Option<Connection>,
    state: BodyState,
    keep_alive: bool,
    writer: Option<BodyWriter>,
    /// Where the connection goes after a clean end; `None` closes it.
    pool: Option<Arc<ConnectionPool>>,
}

impl UpstreamBody {
    pub(super) fn new(
        connection: Connection,
        head: &ResponseHead,
        writer: Option<BodyWriter>,
        pool: Option<Arc<ConnectionPool>>,
    ) -> UpstreamBody {
        let state = match head.framing {
            Framing::Empty => BodyState::Done,
            Framing::Length(length) => BodyState::Length(length),
            Framing::Chunked => BodyState::Chunked(ChunkedDecoder::new()),
            Framing::UntilClose => BodyState::UntilClose,
        };
        UpstreamBody {
            connection: Some(connection),
            state,
            keep_alive: head.keep_alive,
            writer,
            pool,
        }
    }

    /// After the body's end: back to the pool if nothing is left over and the
    /// request went out in full.
    fn release(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        let Some(pool) = &self.pool else {
            return;
        };
        if !(self.keep_alive && matches!(self.state, BodyState::Done) && connection.buf.is_empty())
        {
            return;
        }
        if let Some(mut writer) = self.writer.take() {
            match (&mut writer.0).now_or_never() {
                Some(Ok(Ok(half))) => connection.writer = Some(half),
                // Still writing (the upstream answered early) or failed: the
                // connection is mid-request, so it is closed.
                _ => return,
            }
        }
        pool.put_back(connection);
    }

    /// Reads more from the socket; `Ok(0)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(connection) = self.connection.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        connection.buf.reserve(READ_CHUNK);
        tokio_util::io::poll_read_buf(Pin::new(&mut connection.reader), cx, &mut connection.buf)
    }

    fn buffered(&mut self) -> Option<&mut BytesMut> {
        self.connection
            .as_mut()
            .map(|connection| &mut connection.buf)
            .filter(|buf| !buf.is_empty())
    }
}

fn cut_short() -> BoxError {
    Box::new(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "upstream closed the connection before the response body ended",
    ))
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                BodyState::Done => {
                    this.release();
                    return Poll::Ready(None);
                }
                BodyState::Length(0) => this.state = BodyState::Done,
                BodyState::Length(left) => {
                    let left_now = *left;
                    if let Some(buf) = this.buffered() {
                        let take = usize::try_from(left_now)
                            .unwrap_or(usize::MAX)
                            .min(buf.len());
                        let data = buf.split_to(take).freeze();
                        this.state = BodyState::Length(left_now - take as u64);
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if ready!(this.poll_fill(cx))? == 0 {
                        this.connection = None;
                        return Poll::Ready(Some(Err(cut_short())));
                    }
                }
                BodyState::Chunked(decoder) => {
                    let decoded = match this.connection.as_mut() {
                        Some(connection) => decoder.decode(&mut connection.buf)?,
                        None => Decoded::NeedMore,
                    };
                    match decoded {
                        Decoded::Data(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                        Decoded::Done => this.state = BodyState::Done,
                        Decoded::NeedMore => {
                            if ready!(this.poll_fill(cx))? == 0 {
                                this.connection = None;
                                return Poll::Ready(Some(Err(cut_short())));
                            }
                        }
                    }
                }
                BodyState::UntilClose => {
                    if let Some(buf) = this.buffered() {
                        let data = buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if ready!(this.poll_fill(cx))? == 0 {
                        // The close is the end; the connection is spent.
                        this.connection = None;
                        this.state = BodyState::Done;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done | BodyState::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Done => SizeHint::with_exact(0),
            BodyState::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // An empty body is never polled; a complete one may not have been
        // polled past its last frame. Either way the connection may go back.
        if let BodyState::Length(0) = self.state {
            self.state = BodyState::Done;
        }
        self.release();
    }
}
