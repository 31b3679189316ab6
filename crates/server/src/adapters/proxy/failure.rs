//! What went wrong with a proxied request, and whose fault it was: the
//! client's (a body too large, too slow, or malformed: never counted
//! against a side) or the upstream's (refused, reset, timed out), with the
//! answer the client gets for each.

use std::error::Error as StdError;

use hyper::{Response, StatusCode};

use crate::adapters::proxy::{BoxError, ProxyBody, plain};
use crate::adapters::recorder::{Outcome, TransportFailure};

/// An error reading the client's request body: the client's fault (it sent
/// malformed chunking, went away mid-body, or stalled), never the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("reading the client's request body: {0}")]
pub(super) struct ClientBodyError(#[source] pub(super) BoxError);

/// How a client spoiled its own request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClientFault {
    /// Its body went past the limit while it streamed.
    BodyTooLarge,
    /// Its body stalled past the client idle timeout.
    TooSlow,
    /// Its body was malformed or cut short.
    BadBody,
}

/// A failed upstream exchange, classified.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) kind: TransportFailure,
    /// Set when the client, not the upstream, is at fault.
    pub(super) client_fault: Option<ClientFault>,
}

impl Failure {
    /// What to record for the side.
    pub(super) fn outcome(&self) -> Outcome {
        match self.client_fault {
            Some(_) => Outcome::ClientError,
            None => Outcome::Transport(self.kind),
        }
    }

    pub(super) fn response(&self) -> Response<ProxyBody> {
        match (self.client_fault, self.kind) {
            (Some(ClientFault::BodyTooLarge), _) => {
                plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
            }
            (Some(ClientFault::TooSlow), _) => {
                plain(StatusCode::REQUEST_TIMEOUT, "request body too slow\n")
            }
            (Some(ClientFault::BadBody), _) => plain(
                StatusCode::BAD_REQUEST,
                "malformed or incomplete request body\n",
            ),
            (None, TransportFailure::Timeout) => {
                plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
            }
            (None, _) => plain(StatusCode::BAD_GATEWAY, "upstream unavailable\n"),
        }
    }
}

/// Sorts an exchange's error by its causes: the client's fault when reading
/// its body failed, else a transport failure kind.
pub(super) fn classify(err: &(dyn StdError + 'static)) -> Failure {
    let mut kind = TransportFailure::Other;
    let mut client_fault = None;
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            client_fault = Some(ClientFault::BodyTooLarge);
        }
        if current.is::<ClientBodyError>() {
            client_fault = Some(ClientFault::BadBody);
        }
        if client_fault == Some(ClientFault::BadBody)
            && current
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            client_fault = Some(ClientFault::TooSlow);
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            kind = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => TransportFailure::Refused,
                std::io::ErrorKind::TimedOut => TransportFailure::Timeout,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => TransportFailure::Reset,
                _ => kind,
            };
        }
        if let Some(hyper_err) = current.downcast_ref::<hyper::Error>()
            && (hyper_err.is_incomplete_message()
                || hyper_err.is_closed()
                || hyper_err.is_canceled())
            && kind == TransportFailure::Other
        {
            kind = TransportFailure::Reset;
        }
        cause = current.source();
    }
    Failure { kind, client_fault }
}
