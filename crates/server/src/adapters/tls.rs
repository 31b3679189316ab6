//! HTTPS for the admin listener: the certificate and key from
//! `server.tls`, and a serving loop for the admin router over rustls.
//!
//! rustls with the `ring` provider: no system OpenSSL, and it builds from
//! crates.io alone on a machine without internet.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::TlsConfig;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file cannot be read or holds nothing usable.
    #[error("server.tls: {path}: {message}")]
    File {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the pair (for example, the key does not match).
    #[error("server.tls: the certificate and key cannot be used together: {0}")]
    Pair(String),
}

/// The rustls configuration for `tls`: HTTP/1.1 only, like the proxy.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let file_error = |path: &Path, message: String| TlsError::File {
        path: path.to_owned(),
        message,
    };
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .map_err(|err| file_error(&tls.cert_file, err.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|err| file_error(&tls.cert_file, err.to_string()))?;
    if certificates.is_empty() {
        return Err(file_error(
            &tls.cert_file,
            "no PEM certificate in the file".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|err| file_error(&tls.key_file, format!("no usable PEM private key: {err}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| TlsError::Pair(err.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certificates, key)
    .map_err(|err| TlsError::Pair(err.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then
/// lets open connections finish for up to ten seconds.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.as_mut() => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next() => continue,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut stopping = stopping_rx.clone();
        connections.spawn(async move {
            // A client that never finishes its handshake is dropped.
            let handshake =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(%err, %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    router.clone().oneshot(request.map(axum::body::Body::new))
                },
            );
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = crate::adapters::serving::stopped(&mut stopping) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%err, %peer, "admin connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    crate::adapters::serving::drain(&mut connections, "admin").await;
    Ok(())
}
