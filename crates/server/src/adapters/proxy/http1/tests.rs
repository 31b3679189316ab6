//! The upstream framing rules, byte by byte: heads, body delimiting, chunked decoding.

use bytes::BytesMut;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};
use proptest::prelude::*;

use super::{
    ChunkError, ChunkedDecoder, Decoded, Framing, HeadError, MAX_HEAD_BYTES, encode_request_head,
    parse_response_head,
};

fn head(text: &str, method: &Method) -> Result<Option<(super::ResponseHead, usize)>, HeadError> {
    parse_response_head(text.as_bytes(), method)
}

fn framing_of(text: &str) -> Framing {
    head(text, &Method::GET).unwrap().unwrap().0.framing
}

#[test]
fn the_request_head_is_written_as_http_1_1_with_every_header() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("backend:9000"));
    headers.append("x-tag", HeaderValue::from_static("a"));
    headers.append("x-tag", HeaderValue::from_static("b"));
    let mut out = Vec::new();
    encode_request_head(&mut out, &Method::GET, "/items?id=7", &headers);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET /items?id=7 HTTP/1.1\r\nhost: backend:9000\r\nx-tag: a\r\nx-tag: b\r\n\r\n"
    );
}

#[test]
fn a_head_is_parsed_once_complete_and_says_where_the_body_starts() {
    let text = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-upstream: production\r\n\r\nhello";
    assert!(head(&text[..20], &Method::GET).unwrap().is_none());
    let (parsed, used) = head(text, &Method::GET).unwrap().unwrap();
    assert_eq!(parsed.status, StatusCode::OK);
    assert_eq!(parsed.headers["x-upstream"], "production");
    assert_eq!(parsed.framing, Framing::Length(5));
    assert!(parsed.keep_alive);
    assert_eq!(&text[used..], "hello");
}

#[test]
fn the_body_is_delimited_as_rfc_9112_says() {
    assert_eq!(
        framing_of("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
        Framing::Chunked
    );
    // Transfer-Encoding wins over Content-Length.
    assert_eq!(
        framing_of(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 3\r\n\r\n"
        ),
        Framing::Chunked
    );
    assert_eq!(
        framing_of("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n"),
        Framing::UntilClose
    );
    assert_eq!(framing_of("HTTP/1.1 200 OK\r\n\r\n"), Framing::UntilClose);
    assert_eq!(
        framing_of("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        Framing::Empty
    );
    assert_eq!(
        framing_of("HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\n\r\n"),
        Framing::Length(7)
    );
    assert_eq!(
        framing_of("HTTP/1.1 204 No Content\r\n\r\n"),
        Framing::Empty
    );
    assert_eq!(
        framing_of("HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n"),
        Framing::Empty
    );
    assert_eq!(
        framing_of("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
        Framing::Empty
    );
    // A response to HEAD has no body whatever its headers say.
    let (parsed, _) = head(
        "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
        &Method::HEAD,
    )
    .unwrap()
    .unwrap();
    assert_eq!(parsed.framing, Framing::Empty);
}

#[test]
fn conflicting_or_unreadable_lengths_are_refused() {
    for bad in ["5, 6", "-1", "abc", "", "0x10", "99999999999999999999999"] {
        let text = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n");
        assert_eq!(
            head(&text, &Method::GET).unwrap_err(),
            HeadError::BadLength,
            "{bad:?}"
        );
    }
    let twice = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n";
    assert_eq!(head(twice, &Method::GET).unwrap_err(), HeadError::BadLength);
}

#[test]
fn the_connection_is_reused_only_when_both_ends_agree() {
    let keep = |text: &str| head(text, &Method::GET).unwrap().unwrap().0.keep_alive;
    assert!(keep("HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n"));
    assert!(!keep(
        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n"
    ));
    assert!(!keep(
        "HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\ncontent-length: 1\r\n\r\n"
    ));
    assert!(!keep("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n"));
    assert!(keep(
        "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n"
    ));
    // A body that runs to the close leaves nothing to reuse.
    assert!(!keep("HTTP/1.1 200 OK\r\n\r\n"));
}

#[test]
fn garbage_and_oversized_heads_are_refused() {
    assert!(matches!(
        head("SSH-2.0-OpenSSH\r\n\r\n", &Method::GET),
        Err(HeadError::Malformed(_))
    ));
    // A head that is still not complete at the limit.
    let huge = format!(
        "HTTP/1.1 200 OK\r\nx-filler: {}",
        "a".repeat(MAX_HEAD_BYTES)
    );
    assert_eq!(head(&huge, &Method::GET).unwrap_err(), HeadError::TooLarge);
    // More fields than the first, small attempt holds: still fine.
    let thirty: String = (0..30).map(|n| format!("x-{n}: v\r\n")).collect();
    let (parsed, _) = head(&format!("HTTP/1.1 200 OK\r\n{thirty}\r\n"), &Method::GET)
        .unwrap()
        .unwrap();
    assert_eq!(parsed.headers.len(), 30);
    let many: String = (0..200).map(|n| format!("x-{n}: v\r\n")).collect();
    let crowded = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    assert!(matches!(
        head(&crowded, &Method::GET),
        Err(HeadError::Malformed(_))
    ));
}

/// Decodes everything in `input` fed in pieces of `piece` bytes.
fn decode_in_pieces(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool), ChunkError> {
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for part in input.chunks(piece.max(1)) {
        buf.extend_from_slice(part);
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::NeedMore => break,
                Decoded::Done => return Ok((body, buf.is_empty())),
            }
        }
    }
    Ok((body, false))
}

#[test]
fn a_chunked_body_decodes_with_extensions_and_trailers() {
    let input = b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nx-checksum: 1\r\n\r\n";
    assert_eq!(
        decode_in_pieces(input, 1000).unwrap(),
        (b"hello, world".to_vec(), true)
    );
    // Upper-case hex and a trailing space before the CRLF.
    assert_eq!(
        decode_in_pieces(b"A \r\n0123456789\r\n0\r\n\r\n", 3).unwrap(),
        (b"0123456789".to_vec(), true)
    );
}

#[test]
fn a_truncated_chunked_body_is_not_complete() {
    let (body, complete) = decode_in_pieces(b"5\r\nhello\r\n", 4).unwrap();
    assert_eq!(body, b"hello");
    assert!(!complete);
}

#[test]
fn malformed_chunked_bodies_are_errors() {
    for bad in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"11111111111111111\r\n",
    ] {
        assert!(decode_in_pieces(bad, 1000).is_err(), "{bad:?}");
    }
    let endless_line = vec![b'1'; 5000];
    assert!(decode_in_pieces(&endless_line, 1000).is_err());
}

fn chunked(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks.iter().filter(|chunk| !chunk.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

proptest! {
    /// Whatever the chunk sizes and however the bytes arrive, the decoded
    /// body is exactly what was encoded, and the decoder stops at its end.
    #[test]
    fn chunked_decoding_round_trips(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
        piece in 1usize..64,
    ) {
        let expected: Vec<u8> = chunks.concat();
        let (body, complete) = decode_in_pieces(&chunked(&chunks), piece).unwrap();
        prop_assert_eq!(body, expected);
        prop_assert!(complete);
    }
}
