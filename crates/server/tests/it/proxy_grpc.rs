//! gRPC through the proxy as gRPC users make it: tonic's client and
//! tonic's server on either side (no hand-made frames), unary and
//! bidirectional streaming calls over h2c, and a tonic server's error
//! answers (trailers-only responses, `grpc-status` in the headers) counted
//! as the canary's failures until it is rolled back.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use canary_shared::Phase;
use futures_util::StreamExt;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::proxy_upstream_h2::grpc_app;

/// Messages as raw bytes: tonic does the gRPC framing, compression flags,
/// trailers and status; the tests need no protobuf schema.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

const SAY: &str = "/echo.Echo/Say";
const CHAT: &str = "/echo.Echo/Chat";

/// A tonic gRPC server on loopback (h2c) named `name`: `Say` answers
/// "`name`: <message>", or `failure` when given; `Chat` answers every
/// message as it arrives, so a reply reaches the caller before the caller
/// has finished sending.
async fn tonic_server(name: &'static str, failure: Option<Code>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| async move {
                        let mut grpc = tonic::server::Grpc::new(RawCodec);
                        let response = match request.uri().path() {
                            SAY => {
                                let say = tower::service_fn(
                                    move |request: tonic::Request<Bytes>| async move {
                                        if let Some(code) = failure {
                                            return Err(Status::new(code, "the canary is broken"));
                                        }
                                        let mut reply = format!("{name}: ").into_bytes();
                                        reply.extend_from_slice(request.get_ref());
                                        Ok(tonic::Response::new(Bytes::from(reply)))
                                    },
                                );
                                grpc.unary(say, request).await
                            }
                            CHAT => {
                                let chat = tower::service_fn(
                                    move |request: tonic::Request<tonic::Streaming<Bytes>>| async move {
                                        let replies = request.into_inner().map(move |message| {
                                            message.map(|message| {
                                                let mut reply = format!("{name}: ").into_bytes();
                                                reply.extend_from_slice(&message);
                                                Bytes::from(reply)
                                            })
                                        });
                                        Ok::<_, Status>(tonic::Response::new(replies))
                                    },
                                );
                                grpc.streaming(chat, request).await
                            }
                            _ => Status::unimplemented("no such method").into_http(),
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    },
                );
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    address
}

/// tonic's client over h2c to the proxy.
async fn client(proxy: SocketAddr) -> tonic::client::Grpc<Channel> {
    let channel = Endpoint::from_shared(format!("http://{proxy}"))
        .unwrap()
        .connect()
        .await
        .expect("tonic connects to the proxy");
    tonic::client::Grpc::new(channel)
}

async fn say(
    client: &mut tonic::client::Grpc<Channel>,
    message: &'static str,
) -> Result<String, Status> {
    client.ready().await.unwrap();
    let response = client
        .unary(
            tonic::Request::new(Bytes::from_static(message.as_bytes())),
            SAY.parse().unwrap(),
            RawCodec,
        )
        .await?;
    Ok(String::from_utf8(response.into_inner().to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_client_calls_a_tonic_server_through_the_proxy_unary_and_streaming_both_ways() {
    let production = tonic_server("production", None).await;
    let canary = tonic_server("canary", None).await;
    let app = grpc_app(production, canary, |_| {}).await;
    app.start_canary_at(50.0).await;
    let mut client = client(app.proxy_addr).await;

    // Unary calls reach both sides and come back whole.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let reply = say(&mut client, "hello").await.expect("an OK call");
        assert!(
            reply == "production: hello" || reply == "canary: hello",
            "{reply}"
        );
        seen.insert(reply);
    }
    assert_eq!(seen.len(), 2, "both sides answered at 50 %: {seen:?}");

    // Bidirectional streaming: each reply arrives before the next message
    // is sent, so neither direction is buffered by the proxy until its end.
    let (send, receive) = tokio::sync::mpsc::channel::<Bytes>(1);
    let outgoing = futures_util::stream::unfold(receive, |mut receive| async move {
        receive.recv().await.map(|message| (message, receive))
    });
    client.ready().await.unwrap();
    send.send(Bytes::from_static(b"one")).await.unwrap();
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.streaming(
            tonic::Request::new(outgoing),
            CHAT.parse().unwrap(),
            RawCodec,
        ),
    )
    .await
    .expect("the call's headers arrive while the caller is still sending")
    .expect("an OK call");
    let mut replies = response.into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), replies.message())
        .await
        .expect("the first reply passes through before the call ends")
        .unwrap()
        .unwrap();
    let side = if first.starts_with(b"canary") {
        "canary"
    } else {
        "production"
    };
    assert_eq!(first, format!("{side}: one").as_bytes());
    send.send(Bytes::from_static(b"two")).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), replies.message())
        .await
        .expect("the second reply passes through")
        .unwrap()
        .unwrap();
    assert_eq!(
        second,
        format!("{side}: two").as_bytes(),
        "one call, one side"
    );
    drop(send);
    assert_eq!(
        replies.message().await.expect("the call ends with OK"),
        None
    );

    // Every call was counted as a success on the side that answered it.
    let snapshot = app
        .metrics_where(|metrics| {
            metrics.canary.last_1m.requests + metrics.production.last_1m.requests >= 41
        })
        .await;
    assert_eq!(snapshot.canary.last_1m.error_rate, Some(0.0));
    assert_eq!(snapshot.production.last_1m.error_rate, Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_canary_answering_unavailable_fails_its_calls_and_is_rolled_back() {
    let production = tonic_server("production", None).await;
    let canary = tonic_server("canary", Some(Code::Unavailable)).await;
    let app = grpc_app(production, canary, |_| {}).await;
    app.start_canary_at(50.0).await;
    let mut client = client(app.proxy_addr).await;

    let mut unavailable = 0;
    for _ in 0..600 {
        if app.controller.state.borrow().phase == Phase::RolledBack {
            break;
        }
        match say(&mut client, "hello").await {
            Ok(reply) => assert_eq!(reply, "production: hello"),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert_eq!(status.message(), "the canary is broken");
                unavailable += 1;
            }
        }
    }
    assert!(unavailable > 0, "the caller saw the canary's UNAVAILABLE");
    app.wait_for_phase(Phase::RolledBack).await;

    // After the rollback every call reaches production.
    for _ in 0..20 {
        assert_eq!(
            say(&mut client, "again").await.unwrap(),
            "production: again"
        );
    }
    let snapshot = app
        .metrics_where(|metrics| metrics.canary.last_1m.requests > 0)
        .await;
    assert!(
        snapshot.canary.last_1m.error_rate.unwrap_or(0.0) > 0.9,
        "tonic's trailers-only UNAVAILABLE counts as a failure: {:?}",
        snapshot.canary.last_1m
    );
    let canary = &snapshot.canary.last_1m;
    assert_eq!(
        (canary.grpc_failures, canary.errors_5xx),
        (canary.requests, 0),
        "every canary call is a gRPC failure, none a 5xx: {canary:?}"
    );
    assert_eq!(snapshot.production.last_1m.error_rate, Some(0.0));
}
