//! API errors: one enum, one JSON body shape ([`canary_shared::ApiErrorBody`]).

use axum::Json;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use canary_shared::ApiErrorBody;

/// Everything an API handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Nothing lives at this path.
    #[error("no such resource: {path}")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// Something lives at this path, but not for this method.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: Method,
        /// The path asked for.
        path: String,
    },
    /// A value is malformed (not a number, wrong type).
    #[error("{message}")]
    InvalidField {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A value is well-formed but not acceptable (out of range).
    #[error("{message}")]
    UnprocessableField {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The request does not fit the current state.
    #[error("{message}")]
    Conflict {
        /// `not_allowed` or `stale_revision`.
        code: &'static str,
        /// Why, in words.
        message: String,
    },
    /// The body is not JSON, or not `application/json`.
    #[error("send the body as JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    /// The body is not valid JSON.
    #[error("the body is not valid JSON: {0}")]
    BadJson(String),
    /// The body is JSON but a field does not fit.
    #[error("{message}")]
    UnprocessableBody {
        /// The field at fault, as a path.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The query string does not fit.
    #[error("{0}")]
    BadQuery(String),
    /// The body is larger than allowed.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A page of another site tried to act through the operator's browser.
    #[error("refused: the request comes from another site ({0})")]
    CrossSite(String),
    /// No valid credentials came with a request that needs them.
    #[error("{0}")]
    Unauthorized(String),
    /// The credentials are valid but their role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Too many failed logins from this address; try again later.
    #[error("too many failed sign-ins from this address; try again in {retry_after_s} s")]
    TooManyAttempts {
        /// Seconds until the next attempt is taken.
        retry_after_s: u64,
    },
    /// The server cannot take the request now.
    #[error("{0}")]
    Unavailable(String),
    /// The console has not been built, so there is nothing to serve.
    #[error("{0}")]
    ConsoleNotBuilt(String),
    /// A failure of ours; the details go to the log, not to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::InvalidField { .. } | ApiError::BadJson(_) | ApiError::BadQuery(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::CrossSite(_) | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::UnprocessableBody { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnprocessableField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::ConsoleNotBuilt(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::Conflict { code, .. } => code,
            ApiError::CrossSite(_) => "cross_site",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::BadJson(_) => "bad_json",
            ApiError::UnprocessableBody { .. } => "invalid_field",
            ApiError::BadQuery(_) => "bad_query",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnprocessableField { .. } => "out_of_range",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::ConsoleNotBuilt(_) => "console_not_built",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ApiError {
    /// The JSON body this error is answered with (also sent over the WebSocket).
    pub(crate) fn body(&self) -> ApiErrorBody {
        let message = match self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error; the server log has the details".to_owned()
            }
            other => other.to_string(),
        };
        let field = match self {
            ApiError::InvalidField { field, .. } | ApiError::UnprocessableField { field, .. } => {
                Some((*field).to_owned())
            }
            ApiError::UnprocessableBody { field, .. } => field.clone(),
            _ => None,
        };
        ApiErrorBody {
            code: self.code().to_owned(),
            message,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut response = (self.status(), Json(body)).into_response();
        match &self {
            ApiError::Unauthorized(_) => {
                // Bearer, not Basic: a browser must not pop up its own login dialog.
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer realm=\"canary\""),
                );
            }
            ApiError::TooManyAttempts { retry_after_s } => {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(*retry_after_s),
                );
            }
            _ => {}
        }
        response
    }
}

/// The router's fallback: a JSON 404 for any path nobody serves.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound {
        path: uri.path().to_owned(),
    }
}

/// The router's answer to a known path with the wrong method.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method,
        path: uri.path().to_owned(),
    }
}
