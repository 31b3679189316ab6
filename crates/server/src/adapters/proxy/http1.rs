//! HTTP/1.1 framing for the proxy's upstream side, as pure functions over
//! bytes: the request head to send, the response head received and how its
//! body is delimited (RFC 9112 §6.3), and a chunked-body decoder.
//!
//! Nothing here touches a socket; [`super::upstream`] does the I/O.

use bytes::BytesMut;
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Version};

/// The most a response head may take; a larger one is refused.
pub(super) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header fields a response head may carry.
const MAX_HEADERS: usize = 128;
/// Header fields parsed without allocating.
const FEW_HEADERS: usize = 24;

/// Writes `METHOD target HTTP/1.1`, every header, and the blank line.
///
/// The headers have come from hyper's parser (valid names and values) and
/// from the proxy itself, so they are written as they are.
pub(super) fn encode_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
) {
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    out.reserve(method.as_str().len() + target.len() + fields + 14);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body at all (a response to HEAD, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct ResponseHead {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub(super) keep_alive: bool,
}

/// Why a response head is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum HeadError {
    /// Not HTTP/1.x, or malformed.
    #[error("malformed response head from upstream: {0}")]
    Malformed(String),
    /// Larger than [`MAX_HEAD_BYTES`].
    #[error("response head from upstream larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    /// Conflicting or unreadable `Content-Length`.
    #[error("invalid Content-Length from upstream")]
    BadLength,
}

/// Parses a response head from the front of `buf`.
///
/// `Ok(None)`: not complete yet (read more). `Ok(Some((head, used)))`: the
/// head took the first `used` bytes; the body (if any) follows. The tests'
/// and the fuzzer's way into [`take_response_head`].
pub(super) fn parse_response_head(
    buf: &[u8],
    request_method: &Method,
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut buf = BytesMut::from(buf);
    let given = buf.len();
    let head = take_response_head(&mut buf, request_method)?;
    Ok(head.map(|head| (head, given - buf.len())))
}

/// Takes a complete response head off the front of `buf`, leaving the body
/// (if any) there; `Ok(None)` leaves `buf` as it was, to read more.
///
/// The head's bytes become one shared buffer and every header value a
/// slice of it: no copy and no allocation per value, which a proxy pays on
/// every response. httparse runs twice on a complete head, once to find
/// its end and once over the shared bytes, which costs less than the
/// copies it saves.
pub(super) fn take_response_head(
    buf: &mut BytesMut,
    request_method: &Method,
) -> Result<Option<ResponseHead>, HeadError> {
    let used = with_parsed(buf, |parsed, _| match parsed {
        Ok(httparse::Status::Complete(used)) => Ok(Some(used)),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(err) => Err(HeadError::Malformed(err.to_string())),
    })?;
    let Some(used) = used else {
        return Ok(None);
    };
    let bytes = buf.split_to(used).freeze();
    with_parsed(&bytes, |parsed, response| {
        debug_assert_eq!(parsed, Ok(httparse::Status::Complete(used)));
        head_from(&bytes, response, request_method)
    })
    .map(Some)
}

/// Runs httparse over `bytes` and hands `then` its result and the response:
/// a small array of fields on the stack first, the full allowance only for
/// a head that needs it.
fn with_parsed<T>(
    bytes: &[u8],
    then: impl FnOnce(httparse::Result<usize>, &httparse::Response<'_, '_>) -> T,
) -> T {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let mut response = httparse::Response::new(&mut few);
    let parsed = response.parse(bytes);
    if parsed != Err(httparse::Error::TooManyHeaders) {
        return then(parsed, &response);
    }
    let mut many = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut many);
    let parsed = response.parse(bytes);
    then(parsed, &response)
}

/// The head `response` parsed from `bytes`, its values sliced from them.
fn head_from(
    bytes: &Bytes,
    response: &httparse::Response<'_, '_>,
    request_method: &Method,
) -> Result<ResponseHead, HeadError> {
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| HeadError::Malformed("status code".to_owned()))?;
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for field in response.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| HeadError::Malformed(format!("header name {:?}", field.name)))?;
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(field.value))
            .map_err(|_| HeadError::Malformed(format!("value of {name}")))?;
        headers.append(name, value);
    }
    let framing = framing(status, request_method, &headers)?;
    // After `101` the connection speaks another protocol; it is never reused.
    let keep_alive = framing != Framing::UntilClose
        && status != StatusCode::SWITCHING_PROTOCOLS
        && connection_persists(version, &headers);
    Ok(ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
    })
}

/// RFC 9112 §6.3, in order.
fn framing(status: StatusCode, method: &Method, headers: &HeaderMap) -> Result<Framing, HeadError> {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // Only a final `chunked` delimits the body; any other coding runs to the close.
        let last_coding = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .rfind(|coding| !coding.is_empty());
        return Ok(match last_coding {
            Some(coding) if coding.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => Framing::UntilClose,
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        // `Content-Length: 5, 5` and repeated equal fields are allowed; different ones are not.
        for part in value.to_str().map_err(|_| HeadError::BadLength)?.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(HeadError::BadLength);
            }
            let parsed: u64 = part.parse().map_err(|_| HeadError::BadLength)?;
            if length.is_some_and(|earlier| earlier != parsed) {
                return Err(HeadError::BadLength);
            }
            length = Some(parsed);
        }
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(length) => Framing::Length(length),
        None => Framing::UntilClose,
    })
}

/// HTTP/1.1 persists unless `Connection: close`; HTTP/1.0 only with `keep-alive`.
fn connection_persists(version: Version, headers: &HeaderMap) -> bool {
    let has_token = |wanted: &str| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case(wanted))
    };
    if version == Version::HTTP_10 {
        has_token("keep-alive")
    } else {
        !has_token("close")
    }
}

/// Malformed chunked coding.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body from upstream: {0}")]
pub(super) struct ChunkError(&'static str);

/// What [`ChunkedDecoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The input ends mid-message: read more and call again.
    NeedMore,
    /// The last chunk and the trailers are done; the body is complete.
    Done,
}

/// The longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;

/// Where the decoder is inside a chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(u64),
    /// After a chunk's data, at its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// The body is complete.
    Done,
}

/// Decodes a chunked body incrementally (RFC 9112 §7.1). Trailers are read
/// and dropped: they are hop-by-hop unless the client asked for them, and
/// hyper's server does not send them over HTTP/1.1.
#[derive(Debug)]
pub(super) struct ChunkedDecoder {
    state: ChunkState,
}

impl ChunkedDecoder {
    pub(super) fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size,
        }
    }

    /// Consumes what it can from the front of `buf`, returning body data as
    /// soon as any is there.
    pub(super) fn decode(&mut self, buf: &mut bytes::BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(Decoded::Done),
                ChunkState::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size_text = line
                        .split(|&byte| byte == b';')
                        .next()
                        .unwrap_or_default()
                        .trim_ascii();
                    // Hex digits only: `from_str_radix` would also take a sign (`+5`).
                    if size_text.is_empty()
                        || size_text.len() > 16
                        || !size_text.iter().all(u8::is_ascii_hexdigit)
                    {
                        return Err(ChunkError("chunk size"));
                    }
                    let size = std::str::from_utf8(size_text)
                        .ok()
                        .and_then(|text| u64::from_str_radix(text, 16).ok())
                        .ok_or(ChunkError("chunk size"))?;
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError("missing CRLF after chunk data"));
                    }
                    let _ = buf.split_to(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

/// Takes one CRLF-terminated line off the front of `buf`, without the CRLF.
fn take_line(buf: &mut bytes::BytesMut) -> Result<Option<Bytes>, ChunkError> {
    let Some(end) = buf.windows(2).position(|pair| pair == b"\r\n") else {
        if buf.len() > MAX_LINE {
            return Err(ChunkError("line too long"));
        }
        return Ok(None);
    };
    if end > MAX_LINE {
        return Err(ChunkError("line too long"));
    }
    let line = buf.split_to(end).freeze();
    let _ = buf.split_to(2);
    Ok(Some(line))
}

#[cfg(test)]
mod tests;
