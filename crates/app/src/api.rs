//! The typed REST client: one function per endpoint, all through one `send` helper.

use canary_shared::api::{BASE_PATH, SETTINGS_PATH};
use canary_shared::auth::{LOGIN_PATH, LOGOUT_PATH, ME_PATH};
use canary_shared::{
    ApiErrorBody, AuditPage, CanaryShare, CanaryState, Command, LoginRequest, Me, RolloutSettings,
    StartRequest,
};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

/// Why a request failed, in words an operator can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The server could not be reached.
    Network(String),
    /// The server refused, with its reason.
    Api(ApiErrorBody),
    /// The answer could not be read.
    Decode(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Network(detail) => write!(f, "The server could not be reached ({detail})."),
            Error::Api(body) => write!(f, "{}", body.message),
            Error::Decode(detail) => write!(f, "The server's answer could not be read ({detail})."),
        }
    }
}

/// `POST /admin/canary/scale/{percent}`: the state with the new share in effect.
pub async fn scale(share: CanaryShare) -> Result<CanaryState, Error> {
    send_command(&Command::Scale { percent: share }).await
}

/// `POST /admin/canary/start`.
pub async fn start(image_tag: &str, traffic_percent: CanaryShare) -> Result<CanaryState, Error> {
    let body = StartRequest {
        image_tag: image_tag.to_owned(),
        traffic_percent,
    };
    send_command(&Command::Start(body)).await
}

/// Sends `command` as its REST request (`Command::rest_request`, the one
/// mapping the server's router and the CLI use too).
async fn send_command(command: &Command) -> Result<CanaryState, Error> {
    let (path, body) = command.rest_request();
    let json = body
        .map(|body| serde_json::to_string(&body))
        .transpose()
        .map_err(|err| Error::Decode(err.to_string()))?;
    send("POST", &path, json).await
}

/// A command without arguments, or with a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Simple {
    /// Next step.
    Continue,
    /// Hold.
    Pause,
    /// Go on.
    Resume,
    /// 100 % and finish.
    Promote,
    /// Back to production, with a reason.
    Rollback(String),
    /// Emergency stop, with a reason.
    Stop(String),
    /// All traffic back to the version the promotion replaced, with a reason.
    UndoPromotion(String),
    /// Auto-progression on or off for this rollout.
    AutoProgression(bool),
}

/// Sends one of the [`Simple`] commands.
pub async fn command(command: Simple) -> Result<CanaryState, Error> {
    let command = match command {
        Simple::Continue => Command::Continue,
        Simple::Pause => Command::Pause,
        Simple::Resume => Command::Resume,
        Simple::Promote => Command::Promote,
        Simple::Rollback(reason) => Command::Rollback { reason },
        Simple::Stop(reason) => Command::Stop { reason },
        Simple::UndoPromotion(reason) => Command::UndoPromotion { reason },
        Simple::AutoProgression(enabled) => Command::SetAutoProgression { enabled },
    };
    send_command(&command).await
}

/// `GET /admin/canary/demo`: the demo services (an empty 204 outside `canary demo`, read as an error here so the panel stays away).
pub async fn demo() -> Result<canary_shared::demo::DemoStatus, Error> {
    send("GET", canary_shared::demo::DEMO_PATH, None).await
}

/// `POST /admin/canary/demo`: how the demo's canary service answers.
pub async fn set_demo(
    behaviour: &canary_shared::demo::DemoBehaviour,
) -> Result<canary_shared::demo::DemoStatus, Error> {
    let json = serde_json::to_string(behaviour).map_err(|err| Error::Decode(err.to_string()))?;
    send("POST", canary_shared::demo::DEMO_PATH, Some(json)).await
}

/// `GET /admin/canary/validation`: the shadow step's report, whole.
pub async fn validation() -> Result<canary_shared::ShadowReport, Error> {
    send("GET", canary_shared::api::VALIDATION_PATH, None).await
}

/// `GET /admin/canary/push`: the key to subscribe with and the devices.
pub async fn push() -> Result<canary_shared::push::PushOverview, Error> {
    send("GET", canary_shared::push::PUSH_PATH, None).await
}

/// `POST /admin/canary/push/devices`: subscribes this device (or changes its events).
pub async fn subscribe_push(json: String) -> Result<canary_shared::push::PushDevice, Error> {
    send("POST", canary_shared::push::PUSH_DEVICES_PATH, Some(json)).await
}

/// `DELETE /admin/canary/push/devices/{id}`, or with `test`, `POST
/// …/{id}/test`: a test alert, answered with what the push service did.
pub async fn push_device(id: u64, test: bool) -> Result<String, Error> {
    let path = format!("{}/{id}", canary_shared::push::PUSH_DEVICES_PATH);
    if test {
        let result: canary_shared::push::PushTestResult =
            send("POST", &format!("{path}/test"), None).await?;
        Ok(if result.delivered {
            format!("Test alert sent: {}.", result.detail)
        } else {
            format!("Not delivered: {}.", result.detail)
        })
    } else {
        // 204: no body to read.
        exchange("DELETE", &path, None).await
    }
}

/// `GET /admin/canary/settings`: the rules rollouts follow.
pub async fn settings() -> Result<RolloutSettings, Error> {
    send("GET", SETTINGS_PATH, None).await
}

/// `GET /admin/canary/me`: who this browser is signed in as (an
/// `unauthorized` error when it is not).
pub async fn me() -> Result<Me, Error> {
    send("GET", ME_PATH, None).await
}

/// `POST /admin/canary/login`: signs in; the server sets the session cookie.
pub async fn login(user: &str, password: &str) -> Result<Me, Error> {
    let body = LoginRequest {
        user: user.to_owned(),
        password: password.to_owned(),
    };
    let json = serde_json::to_string(&body).map_err(|err| Error::Decode(err.to_string()))?;
    send("POST", LOGIN_PATH, Some(json)).await
}

/// `GET /admin/canary/login`: how people may sign in here.
pub async fn login_options() -> Result<canary_shared::auth::LoginOptions, Error> {
    send("GET", LOGIN_PATH, None).await
}

/// `POST /admin/canary/logout`: ends the session.
pub async fn logout() -> Result<(), Error> {
    // 204: no body to read.
    exchange("POST", LOGOUT_PATH, None).await.map(|_| ())
}

impl Error {
    /// Whether the server asks for a sign-in.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Api(body) if body.code == "unauthorized")
    }
}

/// `GET /admin/canary/audit?limit=N`: the newest entries.
pub async fn audit(limit: u32) -> Result<AuditPage, Error> {
    send("GET", &format!("{BASE_PATH}/audit?limit={limit}"), None).await
}

/// The path the console is served under (`server.path_prefix`), read off
/// the page's own address: `/ops` for a console at `/ops/admin/canary/`.
pub fn mount_prefix() -> String {
    let pathname = web_sys::window()
        .and_then(|window| window.location().pathname().ok())
        .unwrap_or_default();
    crate::view_model::mount_prefix(&pathname).to_owned()
}

/// Sends a request (with a JSON body, if given) and reads a JSON answer or the error body.
async fn send<T: serde::de::DeserializeOwned>(
    method: &str,
    path: &str,
    json: Option<String>,
) -> Result<T, Error> {
    let text = exchange(method, path, json).await?;
    serde_json::from_str(&text).map_err(|err| Error::Decode(err.to_string()))
}

/// The exchange behind [`send`], apart from the type read: one copy of its
/// future in the WASM instead of one per answer type (about 5 KB each).
async fn exchange(method: &str, path: &str, json: Option<String>) -> Result<String, Error> {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(json) = json {
        let headers = Headers::new().map_err(|err| Error::Network(format!("{err:?}")))?;
        headers
            .set("content-type", "application/json")
            .map_err(|err| Error::Network(format!("{err:?}")))?;
        init.set_headers(&headers);
        init.set_body(&json.into());
    }
    let request = Request::new_with_str_and_init(&format!("{}{path}", mount_prefix()), &init)
        .map_err(|err| Error::Network(format!("{err:?}")))?;
    let window = web_sys::window().ok_or_else(|| Error::Network("no window".to_owned()))?;
    let response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(|err| {
            Error::Network(
                err.as_string()
                    .unwrap_or_else(|| "request failed".to_owned()),
            )
        })?;
    let response: Response = response
        .dyn_into()
        .map_err(|_| Error::Decode("not a response".to_owned()))?;
    let text = JsFuture::from(
        response
            .text()
            .map_err(|_| Error::Decode("no body".to_owned()))?,
    )
    .await
    .map_err(|_| Error::Decode("unreadable body".to_owned()))?
    .as_string()
    .unwrap_or_default();
    if response.ok() {
        Ok(text)
    } else {
        match serde_json::from_str::<ApiErrorBody>(&text) {
            Ok(body) => Err(Error::Api(body)),
            Err(_) => Err(Error::Api(ApiErrorBody {
                code: "http".to_owned(),
                message: format!("The server answered HTTP {}.", response.status()),
                field: None,
            })),
        }
    }
}
