//! Connection upgrades (WebSocket) passed through once both ends switched
//! protocols: on our own HTTP/1.1 client's connection, or on hyper's client
//! (an https upstream).

use http_body_util::{BodyExt, Empty};
use hyper::header::{self, HeaderValue};
use hyper::{Response, Version};
use hyper_util::rt::TokioIo;

use crate::adapters::proxy::ProxyBody;
use crate::adapters::proxy::headers::strip_hop_by_hop;
use crate::adapters::proxy::via_own::Sent;

/// Passes an upgraded connection to a plain HTTP/1.1 upstream (our own
/// client's connection) through in both directions.
pub(super) fn splice_own(
    sent: Sent,
    client_upgrade: hyper::upgrade::OnUpgrade,
) -> Response<ProxyBody> {
    let Sent {
        head, connection, ..
    } = sent;
    tokio::spawn(async move {
        let Some((mut upstream, early)) = connection.into_tunnel() else {
            return;
        };
        match client_upgrade.await {
            Ok(client) => {
                let mut client = TokioIo::new(client);
                // What the upstream sent right behind its 101 goes first.
                if !early.is_empty()
                    && tokio::io::AsyncWriteExt::write_all(&mut client, &early)
                        .await
                        .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(err) => tracing::debug!(%err, "upgrade failed"),
        }
    });
    let mut headers = head.headers;
    headers.remove(header::TRANSFER_ENCODING);
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = head.status;
    *response.headers_mut() = headers;
    response
}

/// Passes an upgraded connection (WebSocket over TLS) through in both
/// directions; the client gets the upstream's 101 with its `Upgrade`.
pub(super) fn splice_via_client(
    mut response: Response<hyper::body::Incoming>,
    client_upgrade: hyper::upgrade::OnUpgrade,
) -> Response<ProxyBody> {
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok((client, upstream)) => {
                let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(err) => tracing::debug!(%err, "upgrade failed"),
        }
    });
    let (mut head, _) = response.into_parts();
    let protocol = head.headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut head.headers);
    if let Some(protocol) = protocol {
        head.headers.insert(header::UPGRADE, protocol);
        head.headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    head.version = Version::HTTP_11;
    Response::from_parts(
        head,
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    )
}
