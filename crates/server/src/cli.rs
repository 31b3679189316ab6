//! The CLI for scripts: `canary status`, `start`, `scale`, … talk to a
//! running server's REST API (and `watch` to its WebSocket stream).
//!
//! Output is for people by default and JSON with `--json`. Exit codes let a
//! script branch without parsing anything; see [`Exit`].

mod text;

pub use text::{audit_line, finished, lasting_part, progress_bar, status_text};

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use canary_shared::api::{BASE_PATH, command_paths};
use canary_shared::{ApiErrorBody, AuditPage, CanaryState, Command, Phase, ServerMessage};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How a CLI command ended, as the process's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It did what was asked (`watch --until-done`: the canary was promoted).
    Done = 0,
    /// The server refused: not possible now, a bad value, a stale revision.
    Refused = 1,
    /// The server could not be reached, or failed (5xx).
    Unreachable = 3,
    /// No credentials, or not enough rights: set `CANARY_TOKEN`.
    Unauthorized = 4,
    /// `watch --until-done` / `start --wait`: the rollout ended rolled back.
    RolledBack = 10,
    /// `watch --until-done` / `start --wait`: the rollout failed (deploy or health check).
    Failed = 11,
}

/// Where the server is and who we are.
#[derive(Clone, Debug, clap::Args)]
pub struct Connection {
    /// The server's admin address.
    #[arg(
        long,
        env = "CANARY_SERVER",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    pub server: String,
    /// An API token (from `canary new-token`); needed when the server has logins.
    #[arg(long, env = "CANARY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON for machines instead of lines for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// A PEM file of CA certificates to trust for an https:// server, beside
    /// the system's store (which `SSL_CERT_FILE` and `SSL_CERT_DIR` also
    /// point at): for a certificate from a private CA, or a self-signed one.
    #[arg(long, env = "CANARY_CA_FILE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
}

/// The certificates an https:// server may present: the system's store
/// (with `SSL_CERT_FILE` and `SSL_CERT_DIR`), the well-known public roots
/// when the system has none, and `--ca-file`.
fn tls_config(connection: &Connection) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    // Certificates the system store cannot parse are skipped, as browsers do.
    let native = rustls_native_certs::load_native_certs();
    let (_added, _skipped) = roots.add_parsable_certificates(native.certs);
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = &connection.ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .with_context(|| format!("cannot read the CA file {}", path.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "the CA file {} holds no PEM certificate",
            path.display()
        );
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("a certificate in {} is not usable", path.display()))?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("cannot set up TLS")?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// Says plainly when the cause of `chain` is a certificate the CLI does not trust.
fn unreachable_words(base: &str, chain: &str) -> String {
    if chain.contains("invalid peer certificate") {
        format!(
            "the server's certificate is not trusted: {chain} (pass the CA that signed it with --ca-file or CANARY_CA_FILE, or install it in the system's store)"
        )
    } else {
        format!(
            "cannot reach canary at {base}: {chain} (is it running? set --server or CANARY_SERVER)"
        )
    }
}

/// The CLI's subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Show where the rollout stands.
    Status,
    /// Deploy an image tag as the canary (runs the deploy hook) and start it.
    Start {
        /// The version to deploy.
        #[arg(long)]
        image_tag: String,
        /// The canary's first share, in percent.
        #[arg(long, default_value = "5")]
        percent: f64,
        /// Follow the rollout until it ends, like `watch --until-done`.
        #[arg(long)]
        wait: bool,
    },
    /// Set the canary's share, up or down (0 to 100, two decimals at most).
    Scale {
        /// The new share, in percent.
        percent: f64,
    },
    /// Go on to the next configured step (or promote after the last).
    Continue,
    /// Hold the rollout where it is.
    Pause,
    /// Let a paused rollout go on.
    Resume,
    /// Send the canary 100 % and finish.
    Promote,
    /// Move all traffic back to production and run the rollback hook.
    Rollback {
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Emergency stop: the canary's share is 0 % before this returns.
    Stop {
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Within the undo window after a promotion: all traffic back to the
    /// previous version, which stood by; the promoted one is rolled back.
    UndoPromotion {
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Turn auto-progression on or off for the rollout in progress.
    AutoProgression {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        setting: String,
    },
    /// Show the audit trail, newest first.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only this actor's entries.
        #[arg(long)]
        actor: Option<String>,
        /// Only entries of this action (`auto_rollback`, `scale`, …).
        #[arg(long)]
        action: Option<String>,
    },
    /// Follow the live stream and print every change.
    Watch {
        /// Stop when the rollout ends; the exit code says how (0 promoted,
        /// 10 rolled back, 11 failed).
        #[arg(long)]
        until_done: bool,
    },
}

/// A failed call, with the exit code it leads to.
#[derive(Debug)]
struct CallError {
    exit: Exit,
    message: String,
}

impl CallError {
    fn unreachable(message: impl Into<String>) -> CallError {
        CallError {
            exit: Exit::Unreachable,
            message: message.into(),
        }
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The REST client.
struct Api {
    base: String,
    token: Option<String>,
    client: HttpsClient,
}

impl Api {
    fn new(connection: &Connection) -> anyhow::Result<Api> {
        let base = connection.server.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .with_context(|| format!("--server {base:?} is not a URL"))?;
        anyhow::ensure!(
            matches!(uri.scheme_str(), Some("http" | "https")),
            "--server {base:?} must start with http:// or https://"
        );
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(connection)?)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Api {
            base,
            token: connection.token.clone(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, CallError> {
        let url = format!("{}/admin/canary{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                Full::new(Bytes::from(json.to_string()))
            }
            None => Full::default(),
        };
        let request = request
            .body(body)
            .map_err(|err| CallError::unreachable(format!("cannot build a request: {err}")))?;
        let response = tokio::time::timeout(Duration::from_secs(60), self.client.request(request))
            .await
            .map_err(|_| CallError::unreachable(format!("{url}: no answer within 60 s")))?
            .map_err(|err| {
                CallError::unreachable(unreachable_words(
                    &self.base,
                    &crate::adapters::error_chain(&err),
                ))
            })?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|err| CallError::unreachable(format!("{url}: the answer broke off: {err}")))?
            .to_bytes();
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|err| CallError::unreachable(format!("{url}: unreadable answer: {err}")));
        }
        let message = match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(body) => body.message,
            Err(_) => format!("{status}: {}", String::from_utf8_lossy(&bytes).trim()),
        };
        let exit = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Exit::Unauthorized,
            status if status.is_server_error() => Exit::Unreachable,
            _ => Exit::Refused,
        };
        let message = if exit == Exit::Unauthorized && self.token.is_none() {
            format!("{message} (set CANARY_TOKEN or --token; `canary new-token` makes one)")
        } else {
            message
        };
        Err(CallError { exit, message })
    }
}

/// Runs one CLI command and returns the exit code.
pub fn run(connection: &Connection, command: ClientCommand) -> anyhow::Result<Exit> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let api = Api::new(connection)?;
        let json = connection.json;
        let outcome = execute(&api, connection, command, json).await;
        Ok(match outcome {
            Ok(exit) => exit,
            Err(err) => {
                if json {
                    let body =
                        serde_json::json!({ "error": err.message, "exit_code": err.exit as i32 });
                    print_line(&body.to_string());
                } else {
                    eprintln!("canary: {}", err.message);
                }
                err.exit
            }
        })
    })
}

async fn execute(
    api: &Api,
    connection: &Connection,
    command: ClientCommand,
    json: bool,
) -> Result<Exit, CallError> {
    // A command goes as its REST request: the one mapping the console and
    // the server's router use too.
    let send = |command: Command| async move {
        let (path, body) = command.rest_request();
        let body = body.map(|body| serde_json::to_value(body).expect("command bodies are JSON"));
        let path = path.strip_prefix(BASE_PATH).unwrap_or(&path);
        let state: CanaryState = api.call(Method::POST, path, body).await?;
        Ok::<CanaryState, CallError>(state)
    };
    let state = match command {
        ClientCommand::Status => {
            let state: CanaryState = api.call(Method::GET, "/status", None).await?;
            if json {
                show_state(&state, true);
                return Ok(Exit::Done);
            }
            // The shadow step's findings, when the rollouts have one.
            let has_shadow = state
                .steps
                .iter()
                .any(|step| matches!(step.kind, canary_shared::StepKind::Shadow { .. }));
            let shadow: Option<canary_shared::ShadowReport> = if has_shadow {
                api.call(Method::GET, "/validation", None).await.ok()
            } else {
                None
            };
            print_line(&status_text(&state, shadow.as_ref()));
            return Ok(Exit::Done);
        }
        ClientCommand::Start {
            image_tag,
            percent,
            wait,
        } => {
            // The share goes as typed, for the server to judge with its own words.
            let body = serde_json::json!({ "image_tag": image_tag, "traffic_percent": percent });
            let path = command_paths::START
                .strip_prefix(BASE_PATH)
                .unwrap_or_default();
            let state: CanaryState = api.call(Method::POST, path, Some(body)).await?;
            if json {
                show_state(&state, true);
            } else {
                print_line(&state.summary);
            }
            if wait {
                return watch(
                    connection,
                    json,
                    Until::Ended {
                        after: state.revision,
                    },
                )
                .await;
            }
            return Ok(Exit::Done);
        }
        ClientCommand::Scale { percent } => {
            // As typed too: the server says what is wrong with a share.
            let scale = command_paths::SCALE
                .strip_prefix(BASE_PATH)
                .unwrap_or_default();
            api.call(Method::POST, &format!("{scale}/{percent}"), None)
                .await?
        }
        ClientCommand::Continue => send(Command::Continue).await?,
        ClientCommand::Pause => send(Command::Pause).await?,
        ClientCommand::Resume => send(Command::Resume).await?,
        ClientCommand::Promote => {
            let state = send(Command::Promote).await?;
            // What promotion will not do for you, said where you asked for it.
            let settings: Result<canary_shared::RolloutSettings, _> =
                api.call(Method::GET, "/settings", None).await;
            if let Ok(Some(warning)) = settings.map(|settings| settings.promotion_warning) {
                #[allow(clippy::print_stderr, reason = "a warning beside the command's output")]
                {
                    eprintln!("canary: warning: {warning}");
                }
            }
            state
        }
        ClientCommand::Rollback { reason } => {
            send(Command::Rollback {
                reason: reason.unwrap_or_default(),
            })
            .await?
        }
        ClientCommand::Stop { reason } => {
            send(Command::Stop {
                reason: reason.unwrap_or_default(),
            })
            .await?
        }
        ClientCommand::UndoPromotion { reason } => {
            send(Command::UndoPromotion {
                reason: reason.unwrap_or_default(),
            })
            .await?
        }
        ClientCommand::AutoProgression { setting } => {
            send(Command::SetAutoProgression {
                enabled: setting == "on",
            })
            .await?
        }
        ClientCommand::Audit {
            limit,
            actor,
            action,
        } => {
            let mut path = format!("/audit?limit={limit}");
            for (key, value) in [("actor", actor), ("action", action)] {
                if let Some(value) = value {
                    path.push_str(&format!("&{key}={}", crate::query::encode_value(&value)));
                }
            }
            let page: AuditPage = api.call(Method::GET, &path, None).await?;
            if json {
                print_line(&serde_json::to_string(&page).unwrap_or_default());
            } else if page.events.is_empty() {
                print_line("no audit entries match");
            } else {
                for event in &page.events {
                    print_line(&audit_line(event));
                }
            }
            return Ok(Exit::Done);
        }
        ClientCommand::Watch { until_done } => {
            let until = if until_done {
                Until::Ended { after: 0 }
            } else {
                Until::Stopped
            };
            return watch(connection, json, until).await;
        }
    };
    if json {
        show_state(&state, true);
    } else {
        // After an action, the one line that says where it stands; `status` has the rest.
        print_line(&state.summary);
    }
    Ok(Exit::Done)
}

#[allow(clippy::print_stdout, reason = "the command's output")]
fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`canary watch | head`) ends the output, not the process with a panic.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn show_state(state: &CanaryState, json: bool) {
    if json {
        print_line(&serde_json::to_string(state).unwrap_or_default());
    } else {
        print_line(&status_text(state, None));
    }
}

/// How long `watch` follows the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Until {
    /// Until the server or the user stops it.
    Stopped,
    /// Until the rollout ends. A rollout that had already ended counts only
    /// when its state is newer than revision `after` (the answer to the
    /// `start` that began it: it may fail before the stream is open).
    Ended { after: u64 },
}

/// Follows the WebSocket stream, printing every state change and audit
/// entry; with [`Until::Ended`], returns when the rollout ends.
async fn watch(connection: &Connection, json: bool, until: Until) -> Result<Exit, CallError> {
    let mut stream = open_stream(connection).await?;
    let live = !json && std::io::stdout().is_terminal();
    let mut last_summary = String::new();
    let mut spinner = 0usize;
    let mut seen_in_flight = false;
    while let Some(message) = stream.next().await {
        let message = message.map_err(|err| {
            CallError::unreachable(format!(
                "the stream broke off: {}",
                crate::adapters::error_chain(&err)
            ))
        })?;
        let text = match message {
            tokio_tungstenite::tungstenite::Message::Text(text) => text,
            tokio_tungstenite::tungstenite::Message::Close(frame) => {
                let reason = frame
                    .map(|frame| frame.reason.to_string())
                    .unwrap_or_default();
                return Err(CallError::unreachable(format!(
                    "the server closed the stream {reason}"
                )));
            }
            _ => continue,
        };
        let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
            continue;
        };
        let state = match &message {
            ServerMessage::Snapshot { state, .. } | ServerMessage::State { state } => {
                Some(state.as_ref())
            }
            ServerMessage::Audit { event } => {
                if json {
                    print_line(&text);
                } else {
                    clear_live_line(live);
                    print_line(&audit_line(event));
                }
                None
            }
            ServerMessage::Metrics { .. } | ServerMessage::Reply { .. } => None,
        };
        if let Some(state) = state {
            if json {
                print_line(&serde_json::to_string(state).unwrap_or_default());
            } else if lasting_part(&state.summary) != last_summary {
                // The countdown ticks every second; a line is printed when
                // anything else changes (the live line shows the countdown).
                clear_live_line(live);
                print_line(&state.summary);
                last_summary = lasting_part(&state.summary);
            }
            if live && let Some(bar) = progress_bar(state) {
                spinner = (spinner + 1) % 4;
                let left = state
                    .summary
                    .split_once(", auto-progression in ")
                    .map_or("", |(_, left)| left);
                let mut stdout = std::io::stdout().lock();
                let _ = write!(
                    stdout,
                    "\r\x1b[2K{} {bar}, next step in {left}",
                    ['|', '/', '-', '\\'][spinner]
                );
                let _ = stdout.flush();
            }
            if let Until::Ended { after } = until {
                let in_flight = finished(state.phase).is_none() && state.phase != Phase::Idle;
                seen_in_flight |= in_flight;
                if let Some(exit) = finished(state.phase)
                    && (seen_in_flight || (after > 0 && state.revision > after))
                {
                    clear_live_line(live);
                    return Ok(exit);
                }
                if !seen_in_flight && !in_flight {
                    clear_live_line(live);
                    return Err(CallError {
                        exit: Exit::Refused,
                        message: format!(
                            "no rollout is in progress to wait for ({})",
                            state.summary
                        ),
                    });
                }
            }
        }
    }
    Err(CallError::unreachable("the server ended the stream"))
}

fn clear_live_line(live: bool) {
    if live {
        let mut stdout = std::io::stdout().lock();
        let _ = write!(stdout, "\r\x1b[2K");
        let _ = stdout.flush();
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
type PlainWsStream = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// The stream over plain TCP or TLS.
enum Stream {
    Plain(Box<PlainWsStream>),
    Tls(Box<WsStream>),
}

impl Stream {
    async fn next(
        &mut self,
    ) -> Option<
        Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
    > {
        match self {
            Stream::Plain(stream) => stream.next().await,
            Stream::Tls(stream) => stream.next().await,
        }
    }
}

async fn open_stream(connection: &Connection) -> Result<Stream, CallError> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let base = connection.server.trim_end_matches('/');
    let uri: Uri = base
        .parse()
        .map_err(|_| CallError::unreachable(format!("--server {base:?} is not a URL")))?;
    let tls = uri.scheme_str() == Some("https");
    let host = uri.host().unwrap_or("127.0.0.1").to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    // A path in --server is the console's prefix (`server.path_prefix`).
    let ws_url = format!(
        "{}://{}{}/admin/canary/ws",
        if tls { "wss" } else { "ws" },
        uri.authority().map_or(host.clone(), ToString::to_string),
        uri.path().trim_end_matches('/')
    );
    let mut request = ws_url
        .as_str()
        .into_client_request()
        .map_err(|err| CallError::unreachable(format!("{ws_url}: {err}")))?;
    if let Some(token) = &connection.token
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        request.headers_mut().insert("authorization", value);
    }
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|err| {
            CallError::unreachable(format!(
                "cannot reach canary at {base}: {err} (is it running? set --server or CANARY_SERVER)"
            ))
        })?;
    let refused = |err: tokio_tungstenite::tungstenite::Error| match &err {
        tokio_tungstenite::tungstenite::Error::Http(response)
            if matches!(response.status().as_u16(), 401 | 403) =>
        {
            CallError {
                exit: Exit::Unauthorized,
                message: "the server refused the stream: set CANARY_TOKEN or --token".to_owned(),
            }
        }
        _ => CallError::unreachable(format!("{ws_url}: {}", crate::adapters::error_chain(&err))),
    };
    if tls {
        let config =
            tls_config(connection).map_err(|err| CallError::unreachable(format!("{err:#}")))?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|err| CallError::unreachable(format!("{host}: {err}")))?;
        let tls_stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|err| {
                CallError::unreachable(unreachable_words(base, &crate::adapters::error_chain(&err)))
            })?;
        let (stream, _) = tokio_tungstenite::client_async(request, tls_stream)
            .await
            .map_err(refused)?;
        Ok(Stream::Tls(Box::new(stream)))
    } else {
        let (stream, _) = tokio_tungstenite::client_async(request, tcp)
            .await
            .map_err(refused)?;
        Ok(Stream::Plain(Box::new(stream)))
    }
}
