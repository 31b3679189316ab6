//! TLS: for the admin listener, the certificate and key from `server.tls`
//! and a serving loop for the admin router over rustls; for the proxy, the
//! ones from `proxy.tls`, with ALPN and a certificate that reloads.
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
    #[error("{field}: {path}: {message}")]
    File {
        /// `server.tls` or `proxy.tls`.
        field: &'static str,
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the pair (for example, the key does not match).
    #[error("{field}: the certificate and key cannot be used together: {message}")]
    Pair {
        /// `server.tls` or `proxy.tls`.
        field: &'static str,
        /// rustls's words.
        message: String,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain and key of `tls`, checked against each other.
fn certified_key(
    tls: &TlsConfig,
    field: &'static str,
) -> Result<Arc<rustls::sign::CertifiedKey>, TlsError> {
    let file_error = |path: &Path, message: String| TlsError::File {
        field,
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
    let pair = |message: String| TlsError::Pair { field, message };
    let key = rustls::sign::CertifiedKey::from_der(certificates, key, &provider())
        .map_err(|err| pair(err.to_string()))?;
    Ok(Arc::new(key))
}

/// The rustls configuration for the admin listener's `server.tls`
/// (HTTP/1.1), and its certificate, which SIGHUP reloads.
pub fn server_config(
    tls: &TlsConfig,
) -> Result<(Arc<rustls::ServerConfig>, Arc<ReloadableCert>), TlsError> {
    reloadable_config(tls, "server.tls", &[b"http/1.1"])
}

/// The rustls configuration for the proxy's `proxy.tls` (ALPN offers `h2`
/// and `http/1.1`), and its certificate, which SIGHUP reloads.
pub fn proxy_config(
    tls: &TlsConfig,
) -> Result<(Arc<rustls::ServerConfig>, Arc<ReloadableCert>), TlsError> {
    reloadable_config(tls, "proxy.tls", &[b"h2", b"http/1.1"])
}

/// A listener's certificate, which a reload swaps for the files' current
/// contents: handshakes from then on use the new one, connections already
/// open keep theirs.
#[derive(Debug)]
pub struct ReloadableCert {
    /// The config field the files come from, for errors and the log.
    pub field: &'static str,
    settings: TlsConfig,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
}

impl ReloadableCert {
    /// Reads the files again; on an error the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = certified_key(&self.settings, self.field)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        Ok(())
    }
}

impl rustls::server::ResolvesServerCert for ReloadableCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

fn reloadable_config(
    tls: &TlsConfig,
    field: &'static str,
    alpn: &[&[u8]],
) -> Result<(Arc<rustls::ServerConfig>, Arc<ReloadableCert>), TlsError> {
    let reloadable = Arc::new(ReloadableCert {
        field,
        current: std::sync::RwLock::new(certified_key(tls, field)?),
        settings: tls.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Pair {
            field,
            message: err.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&reloadable) as Arc<dyn rustls::server::ResolvesServerCert>);
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok((Arc::new(config), reloadable))
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
