//! Recording a request when its response ends, and the per-side in-flight
//! slot a response holds until then.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use canary_shared::Side;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use tokio::time::Instant;

use crate::adapters::proxy::mirror::Capture;
use crate::adapters::proxy::upstream::UpstreamBody;
use crate::adapters::proxy::{BoxError, Proxy, classify};
use crate::adapters::recorder::{Outcome, TransportFailure};
use crate::domain::roles::UpstreamSlot;

/// Counts a request in flight for a side until dropped; a response body
/// holds it, so a slow download still counts.
///
/// It holds this thread's `Proxy` rather than the shared counter's own
/// `Arc`: a reference count touched by every thread on every request costs
/// a cache line bouncing between cores.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) proxy: Arc<Proxy>,
    /// The upstream whose slot it holds.
    pub(super) slot: UpstreamSlot,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.proxy
            .upstream(self.slot)
            .in_flight
            .fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) fn acquire(proxy: &Arc<Proxy>, slot: UpstreamSlot) -> Option<InFlight> {
    let previous = proxy
        .upstream(slot)
        .in_flight
        .fetch_add(1, Ordering::AcqRel);
    let guard = InFlight {
        proxy: Arc::clone(proxy),
        slot,
    };
    (previous < proxy.config.max_in_flight_per_side).then_some(guard)
}

/// What to record once a response body has ended.
#[derive(Debug)]
pub(super) struct Recording {
    /// This thread's proxy (see [`InFlight`] for why not the recorder's `Arc`).
    pub(super) proxy: Arc<Proxy>,
    pub(super) side: Side,
    pub(super) status: u16,
    pub(super) started: Instant,
    /// For a gRPC response (`content-type: application/grpc…`): its
    /// `grpc-status` once seen (a header of a trailers-only response, or a
    /// trailer); `Some(None)` until then.
    pub(super) grpc: Option<Option<u8>>,
}

impl Recording {
    /// What to record for a response with `status` and `headers`.
    pub(super) fn new(
        proxy: &Arc<Proxy>,
        side: Side,
        status: u16,
        headers: &hyper::HeaderMap,
        started: Instant,
    ) -> Recording {
        let is_grpc = headers
            .get(hyper::header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
        Recording {
            proxy: Arc::clone(proxy),
            side,
            status,
            started,
            grpc: is_grpc.then(|| grpc_status(headers)),
        }
    }

    /// Notes a gRPC call's status from its trailers.
    fn trailers(&mut self, trailers: &hyper::HeaderMap) {
        if let Some(code) = &mut self.grpc
            && let Some(found) = grpc_status(trailers)
        {
            *code = Some(found);
        }
    }

    /// Records the response, its body having ended.
    fn ended(self) {
        let outcome = match self.grpc {
            // A call that ended without a status is, to its client, UNKNOWN.
            Some(code) if self.status == 200 => {
                let code = code.unwrap_or(2);
                if self
                    .proxy
                    .config
                    .grpc
                    .failure_codes
                    .iter()
                    .any(|failure| failure.0 == code)
                {
                    Outcome::GrpcFailure(code)
                } else {
                    Outcome::Status(self.status)
                }
            }
            _ => Outcome::Status(self.status),
        };
        self.record(outcome);
    }

    pub(super) fn record(self, outcome: Outcome) {
        self.proxy
            .recorder
            .record(self.side, outcome, self.started.elapsed());
    }
}

/// The `grpc-status` in `headers`, if there is a valid one.
fn grpc_status(headers: &hyper::HeaderMap) -> Option<u8> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u8>().ok())
}

/// The upstream's response body on its way to the client; records the
/// request when the body ends (a reset mid-body counts as a reset) and holds
/// the side's in-flight slot until then.
pub(super) struct RecordedBody<B: Body = UpstreamBody> {
    pub(super) inner: B,
    pub(super) recording: Option<Recording>,
    /// Production's answer to a request copied to the canary, captured
    /// for the comparison.
    pub(super) capture: Option<Capture>,
    pub(super) _in_flight: InFlight,
}

impl<B> Body for RecordedBody<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(recording)) =
                    (frame.trailers_ref(), &mut self.recording)
                {
                    recording.trailers(trailers);
                }
                if let (Some(data), Some(capture)) = (frame.data_ref(), &mut self.capture) {
                    capture.data(data);
                }
            }
            Poll::Ready(None) => {
                if let Some(recording) = self.recording.take() {
                    recording.ended();
                }
                if let Some(capture) = self.capture.take() {
                    capture.ended();
                }
            }
            Poll::Ready(Some(Err(err))) => {
                if let Some(recording) = self.recording.take() {
                    let kind = match classify(&**err).kind {
                        TransportFailure::Other => TransportFailure::Reset,
                        kind => kind,
                    };
                    recording.record(Outcome::Transport(kind));
                }
            }
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

impl<B: Body> Drop for RecordedBody<B> {
    fn drop(&mut self) {
        // A body hyper never polled to its end (empty, or a HEAD's) is whole
        // all the same; one cut short leaves its copy unpaired.
        if let Some(capture) = self.capture.take()
            && self.inner.is_end_stream()
        {
            capture.ended();
        }
        // The client went away before the body ended (or hyper never polled an
        // empty body to its end): the upstream answered, so its status counts.
        // A gRPC call the client cancelled (a stream it stopped watching) has
        // no status yet, which is not the server's failure.
        if let Some(recording) = self.recording.take() {
            if recording.grpc == Some(None) {
                let status = recording.status;
                recording.record(Outcome::Status(status));
            } else {
                recording.ended();
            }
        }
    }
}
