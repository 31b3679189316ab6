//! hyper's client towards an upstream that is not plain HTTP/1.1: HTTP/2
//! in clear text (h2c, prior knowledge), HTTP/2 over TLS (h2, by ALPN), or
//! HTTP/1.1 over TLS. Certificates are verified against the system's roots
//! or the upstream's `ca_file`. The proxy keeps one client per proxy thread
//! (its pool: one multiplexed connection per upstream for HTTP/2), the
//! health probe one of its own; plain HTTP/1.1 upstreams keep the proxy's
//! own faster client (`proxy/upstream.rs`).

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::config::{UpstreamConfig, UpstreamProtocol};

/// A client for one upstream, sending bodies of type `B`.
pub type UpstreamClient<B> = Client<ToUpstream<HttpsConnector<HttpConnector>>, B>;

/// A connector that always reaches the configured upstream, whatever
/// authority the request's URI names. HTTP/2 carries the host in
/// `:authority`, taken from the URI, and hyper's client connects to the
/// URI's authority; with `host_header: preserve` the URI names the
/// client's host, and this keeps the connection (and TLS's server name and
/// verification) on the upstream's. hyper keeps one pool per authority,
/// so each host clients use gets its own connection to the upstream.
#[derive(Clone, Debug)]
pub struct ToUpstream<C> {
    inner: C,
    destination: hyper::Uri,
}

impl<C: tower::Service<hyper::Uri>> tower::Service<hyper::Uri> for ToUpstream<C> {
    type Response = C::Response;
    type Error = C::Error;
    type Future = C::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, _named: hyper::Uri) -> Self::Future {
        self.inner.call(self.destination.clone())
    }
}

/// Whether `upstream` is reached through hyper's client rather than the
/// proxy's own HTTP/1.1 one.
pub fn needs_client(upstream: &UpstreamConfig) -> bool {
    upstream.url.is_https() || upstream.protocol != UpstreamProtocol::Http1
}

/// The TLS settings for `upstream`: its `ca_file`, or the system's roots.
/// Built once; every client of the upstream shares them.
pub fn tls_config(upstream: &UpstreamConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    verified_by(
        upstream.ca_file.as_deref(),
        upstream.url.is_https(),
        "the upstream",
    )
}

/// TLS that trusts the CA in `ca_file`, or else the system's roots (which
/// must hold some when `needs_roots`: an https peer is to be verified);
/// `peer` names what is verified in the error.
pub fn verified_by(
    ca_file: Option<&std::path::Path>,
    needs_roots: bool,
    peer: &str,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect())
                .map_err(|err| format!("{}: {err}", path.display()))?;
            if certificates.is_empty() {
                return Err(format!(
                    "{}: no PEM certificate in the file",
                    path.display()
                ));
            }
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|err| format!("{}: {err}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for certificate in found.certs {
                // A certificate the store holds but rustls cannot use is skipped, as browsers do.
                let _ = roots.add(certificate);
            }
            if roots.is_empty() && needs_roots {
                return Err(format!(
                    "the system has no CA certificates to verify {peer} with; install them (ca-certificates) or set ca_file"
                ));
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| err.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client for `upstream` with `tls`, connecting within `connect_timeout`.
pub fn client<B>(
    upstream: &UpstreamConfig,
    tls: &rustls::ClientConfig,
    connect_timeout: Duration,
) -> UpstreamClient<B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http();
    let connector = match upstream.protocol {
        UpstreamProtocol::Http1 => builder.enable_http1().wrap_connector(http),
        UpstreamProtocol::H2c | UpstreamProtocol::H2 => builder.enable_http2().wrap_connector(http),
    };
    let connector = ToUpstream {
        inner: connector,
        destination: upstream.url.uri().clone(),
    };
    let mut client = Client::builder(hyper_util::rt::TokioExecutor::new());
    client.pool_idle_timeout(Duration::from_secs(90));
    if upstream.protocol != UpstreamProtocol::Http1 {
        client.http2_only(true);
    }
    client.build(connector)
}
