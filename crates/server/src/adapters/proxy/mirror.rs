//! Copies of production's requests to the canary during the shadow step.
//!
//! A copied request goes to production as always; its body (when it has
//! one, up to `validation.shadow.max_request_body`) is copied as it
//! streams, and production's answer is captured as it streams to the
//! client (its status, its time to the response head, its body up to
//! `max_compared_body` when bodies are compared). A task of its own sends
//! the copy to the canary, reads its answer, waits for production's, and
//! hands both to the tap to compare. The client never waits on any of it:
//! the copy holds a permit of a bounded queue (none free: not copied), and
//! nothing the canary does reaches the client.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use canary_shared::Side;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Request, Uri};
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::adapters::proxy::headers::upstream_target;
use crate::adapters::proxy::upstream::{RequestBody, UpstreamBody};
use crate::adapters::proxy::via_own::send;
use crate::adapters::proxy::{BoxError, Proxy, ProxyBody, http1};
use crate::adapters::recorder::{Outcome, TransportFailure};
use crate::adapters::shadow::{Pair, ShadowTap};
use crate::config::HostHeader;
use crate::domain::roles::UpstreamSlot;
use crate::domain::shadow::{Answer, compare};

/// Marks a copy for the canary's service, which may skip side effects.
pub(super) const SHADOW_HEADER: &str = "canary-shadow";

/// Production's answer to a copied request.
#[derive(Debug)]
struct ProductionAnswer {
    status: u16,
    /// Time from the request to the response head.
    head: Duration,
    /// The body, when bodies are compared and it fit.
    body: Option<Bytes>,
}

/// A copy about to be made: what the request handler hands over.
pub(super) struct ShadowCopy {
    tap: Arc<ShadowTap>,
    permit: OwnedSemaphorePermit,
    /// The request's body as it streams to production (`None`: it has none).
    body: Option<oneshot::Receiver<Option<Bytes>>>,
    answer: oneshot::Receiver<ProductionAnswer>,
}

/// The ends of a copy that stay with the request to production.
pub(super) struct Taps {
    /// Copies the request body as it streams, when it has one.
    pub(super) body: Option<BodyCopy>,
    /// Captures production's answer.
    pub(super) capture: Capture,
}

/// Starts a copy of a request for `tap`, holding `permit`.
pub(super) fn start(
    tap: &Arc<ShadowTap>,
    permit: OwnedSemaphorePermit,
    has_body: bool,
) -> (ShadowCopy, Taps) {
    let (body_tx, body_rx) = oneshot::channel();
    let (answer_tx, answer_rx) = oneshot::channel();
    let compare_bodies = !matches!(tap.rules.body, crate::domain::shadow::BodyRule::Ignore);
    let copy = ShadowCopy {
        tap: Arc::clone(tap),
        permit,
        body: has_body.then_some(body_rx),
        answer: answer_rx,
    };
    let taps = Taps {
        body: has_body.then(|| BodyCopy {
            kept: Some(BytesMut::new()),
            limit: usize::try_from(tap.rules.max_request_body).unwrap_or(usize::MAX),
            done: Some(body_tx),
        }),
        capture: Capture {
            done: Some(answer_tx),
            status: 0,
            head: Duration::ZERO,
            kept: compare_bodies.then(BytesMut::new),
            limit: tap.rules.max_compared_body,
        },
    };
    (copy, taps)
}

/// Adds `data` to what is `kept` while the whole fits `limit`; past it,
/// nothing is kept (`None`), and nothing more will be.
fn keep(kept: &mut Option<BytesMut>, data: &[u8], limit: usize) {
    match kept {
        Some(buffer) if buffer.len() + data.len() <= limit => buffer.extend_from_slice(data),
        _ => *kept = None,
    }
}

/// Copies a request body as it streams to production.
pub(super) struct BodyCopy {
    /// What was copied so far; `None` once over the limit.
    kept: Option<BytesMut>,
    limit: usize,
    done: Option<oneshot::Sender<Option<Bytes>>>,
}

impl BodyCopy {
    /// Wraps `body` so that what it streams is copied too.
    pub(super) fn wrap(self, body: ProxyBody) -> ProxyBody {
        TeeBody {
            inner: body,
            copy: self,
        }
        .boxed()
    }
}

struct TeeBody {
    inner: ProxyBody,
    copy: BodyCopy,
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let copy = &mut self.copy;
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    keep(&mut copy.kept, data, copy.limit);
                }
            }
            Poll::Ready(None) => {
                if let Some(done) = copy.done.take() {
                    let _ = done.send(copy.kept.take().map(BytesMut::freeze));
                }
            }
            // A body that fails is not copied: dropping `done` says so.
            Poll::Ready(Some(Err(_))) => copy.done = None,
            Poll::Pending => {}
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

/// Captures production's answer to a copied request as it streams to the
/// client.
#[derive(Debug)]
pub(super) struct Capture {
    done: Option<oneshot::Sender<ProductionAnswer>>,
    status: u16,
    head: Duration,
    /// The body so far, when bodies are compared; `None` once over the limit.
    kept: Option<BytesMut>,
    limit: usize,
}

impl Capture {
    /// Production's response head arrived, `head` after the request started.
    pub(super) fn head(&mut self, status: u16, head: Duration) {
        self.status = status;
        self.head = head;
    }

    /// A piece of production's body.
    pub(super) fn data(&mut self, data: &Bytes) {
        keep(&mut self.kept, data, self.limit);
    }

    /// Production's body ended: the answer is whole.
    pub(super) fn ended(mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(ProductionAnswer {
                status: self.status,
                head: self.head,
                body: self.kept.take().map(BytesMut::freeze),
            });
        }
    }
}

impl ShadowCopy {
    /// Sends the copy to the canary (at `canary`, whichever upstream serves
    /// it now) on a task of its own, then compares the answers.
    pub(super) fn spawn(
        self,
        proxy: &Arc<Proxy>,
        canary: UpstreamSlot,
        mut parts: hyper::http::request::Parts,
    ) {
        let proxy = Arc::clone(proxy);
        let ShadowCopy {
            tap,
            permit,
            body,
            answer,
        } = self;
        tokio::spawn(async move {
            // Its place in the queue is held until the comparison is done.
            let _permit = permit;
            let upstream = proxy.upstream(canary);
            if proxy.config.host_header == HostHeader::Upstream {
                parts
                    .headers
                    .insert(header::HOST, upstream.authority.clone());
            }
            parts
                .headers
                .insert(SHADOW_HEADER, HeaderValue::from_static("1"));
            let body = match body {
                None => None,
                Some(body) => match body.await {
                    Ok(Some(body)) => Some(body),
                    Ok(None) => return tap.skipped_large_body(),
                    // The client's body failed; production got no request either.
                    Err(_) => return,
                },
            };
            let path = parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |path| path.as_str().to_owned());
            let method = parts.method.clone();
            let headers = parts.headers.clone();
            tap.mirrored();
            let timeout = proxy.config.response_timeout(Side::Canary);
            let started = Instant::now();
            let answered = tokio::time::timeout(
                timeout,
                exchange(&proxy, canary, parts, body, tap.rules.max_compared_body),
            )
            .await;
            let canary_answer = match answered {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(kind)) => Err(kind),
                Err(_) => Err(TransportFailure::Timeout),
            };
            let failed_after = started.elapsed();
            let Ok(production) = answer.await else {
                return tap.unpaired();
            };
            let production_answer = Answer {
                status: production.status,
                body: production.body.as_deref(),
            };
            let (found, canary) = match &canary_answer {
                Ok((status, head, body)) => (
                    compare(
                        production_answer,
                        Ok(Answer {
                            status: *status,
                            body: body.as_deref(),
                        }),
                        &tap.rules.body,
                    ),
                    (Outcome::Status(*status), *head),
                ),
                Err(kind) => (
                    compare(
                        production_answer,
                        Err(failure_words(*kind, timeout)),
                        &tap.rules.body,
                    ),
                    (Outcome::Transport(*kind), failed_after),
                ),
            };
            tap.finished(Pair {
                method: &method,
                path: &path,
                headers: &headers,
                production: (production.status, production.head),
                canary,
                found,
            });
        });
    }
}

fn failure_words(kind: TransportFailure, timeout: Duration) -> String {
    match kind {
        TransportFailure::Timeout => format!(
            "the canary did not answer within {}",
            crate::domain::deployment::human_duration(
                u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
            )
        ),
        TransportFailure::Refused => "the canary refused the connection".to_owned(),
        TransportFailure::Reset => "the canary closed the connection before answering".to_owned(),
        _ => "the canary could not be reached".to_owned(),
    }
}

/// The canary's status, time to its response head and body (when it fit
/// `limit`), or how the exchange failed.
async fn exchange(
    proxy: &Arc<Proxy>,
    canary: UpstreamSlot,
    mut parts: hyper::http::request::Parts,
    body: Option<Bytes>,
    limit: usize,
) -> Result<(u16, Duration, Option<Bytes>), TransportFailure> {
    let started = Instant::now();
    let upstream = proxy.upstream(canary);
    // The copy's body is whole by now: it goes with its length, whatever
    // framing the client chose.
    if let Some(body) = &body {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        parts.headers.remove(header::TRANSFER_ENCODING);
    }
    if let Some(via) = &upstream.via_client {
        super::via_client::prepare(proxy, via, &mut parts, false)
            .map_err(|()| TransportFailure::Other)?;
        let body: ProxyBody = Full::new(body.unwrap_or_default())
            .map_err(|never| match never {})
            .boxed();
        let response = via
            .client
            .request(Request::from_parts(parts, body))
            .await
            .map_err(|err| super::classify(&err).kind)?;
        let head = started.elapsed();
        let status = response.status().as_u16();
        let kept = read_limited(
            response
                .into_body()
                .map_err(|err| Box::new(err) as BoxError),
            limit,
        )
        .await?;
        return Ok((status, head, kept));
    }
    let target: Uri = parts.uri.clone();
    let mut head = Vec::new();
    http1::encode_request_head(
        &mut head,
        &parts.method,
        &upstream_target(&upstream.url, &target),
        &parts.headers,
    );
    let request_body = match body {
        Some(body) => RequestBody::Length(Full::new(body).map_err(|never| match never {}).boxed()),
        None => RequestBody::Empty,
    };
    let sent = send(
        proxy,
        (Side::Canary, canary),
        &parts.method,
        &head,
        request_body,
    )
    .await
    .map_err(|failure| failure.kind)?;
    let head_time = started.elapsed();
    let status = sent.head.status.as_u16();
    let body = UpstreamBody::new(
        sent.connection,
        &sent.head,
        sent.writer,
        Some(Arc::clone(proxy.pool(canary))),
    );
    let kept = read_limited(body, limit).await?;
    Ok((status, head_time, kept))
}

/// Reads `body` to its end, keeping it when it fits `limit`.
async fn read_limited<B>(mut body: B, limit: usize) -> Result<Option<Bytes>, TransportFailure>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    let mut kept = Some(BytesMut::new());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| match super::classify(&*err).kind {
            TransportFailure::Other => TransportFailure::Reset,
            kind => kind,
        })?;
        if let Some(data) = frame.data_ref() {
            keep(&mut kept, data, limit);
        }
    }
    Ok(kept.map(BytesMut::freeze))
}
