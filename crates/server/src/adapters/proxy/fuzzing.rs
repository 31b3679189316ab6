//! Fuzzing entry points for the proxy's own HTTP/1.1 parsing of what
//! upstreams send (see `crate::fuzzing`).

use bytes::BytesMut;
use hyper::Method;

use super::http1::{ChunkError, ChunkedDecoder, Decoded, Framing, parse_response_head};

/// A response head and, when chunked, its body, from arbitrary bytes: no
/// panic, the head never claims more bytes than it was given, and a
/// chunked body decodes to the same bytes and the same end however the
/// bytes arrive (whole, or in small pieces).
/// A leading `!` makes it the answer to a HEAD request.
pub fn upstream_response(data: &[u8]) {
    let (method, data) = match data.split_first() {
        Some((b'!', rest)) => (Method::HEAD, rest),
        _ => (Method::GET, data),
    };
    if let Ok(Some((head, used))) = parse_response_head(data, &method) {
        assert!(
            used <= data.len(),
            "the head took {used} of {} bytes",
            data.len()
        );
        if method == Method::HEAD {
            assert_eq!(
                head.framing,
                Framing::Empty,
                "an answer to HEAD has no body"
            );
        }
        match head.framing {
            Framing::Chunked => same_however_it_arrives(&data[used..]),
            Framing::Length(length) => {
                let header = head.headers.get(hyper::header::CONTENT_LENGTH);
                let written = header.and_then(|value| value.to_str().ok());
                assert_eq!(
                    written.and_then(|value| value.trim().parse::<u64>().ok()),
                    Some(length),
                    "the length framing is the Content-Length header's"
                );
            }
            Framing::Empty | Framing::UntilClose => {}
        }
    }
    same_however_it_arrives(data);
}

fn same_however_it_arrives(body: &[u8]) {
    let whole = decode(body, body.len().max(1));
    for piece in [1, 2, 7, 64] {
        assert_eq!(
            decode(body, piece),
            whole,
            "chunked decoding in {piece}-byte pieces differs from decoding it whole"
        );
    }
}

/// The body bytes decoded, and how decoding ended: `Ok(true)` complete,
/// `Ok(false)` wanting more.
fn decode(input: &[u8], piece: usize) -> (Vec<u8>, Result<bool, ChunkError>) {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for bytes in input.chunks(piece) {
        buf.extend_from_slice(bytes);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Decoded::Data(data)) => {
                    assert!(!data.is_empty(), "an empty data piece");
                    out.extend_from_slice(&data);
                }
                Ok(Decoded::NeedMore) => break,
                Ok(Decoded::Done) => return (out, Ok(true)),
                Err(err) => return (out, Err(err)),
            }
        }
    }
    assert!(out.len() <= input.len(), "more body out than bytes in");
    (out, Ok(false))
}
