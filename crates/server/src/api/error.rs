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
            ApiError::InvalidField { .. } => StatusCode::BAD_REQUEST,
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
            ApiError::UnprocessableField { .. } => "out_of_range",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::ConsoleNotBuilt(_) => "console_not_built",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error; the server log has the details".to_owned()
            }
            other => other.to_string(),
        };
        let field = match &self {
            ApiError::InvalidField { field, .. } | ApiError::UnprocessableField { field, .. } => {
                Some((*field).to_owned())
            }
            _ => None,
        };
        let body = ApiErrorBody {
            code: self.code().to_owned(),
            message,
            field,
        };
        (self.status(), Json(body)).into_response()
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
