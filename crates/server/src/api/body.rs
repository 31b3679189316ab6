//! JSON request bodies: the [`Body`] extractor, and the reading it and the
//! handlers that read a body themselves share. A body that does not fit is
//! a 4xx naming the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::api::ApiError;

/// A JSON request body of type `T`; extracted last, after the head's parts.
#[derive(Debug)]
pub(crate) struct Body<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let headers = request.headers().clone();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(ApiError::from)?;
        json_body(&headers, &bytes).map(Body)
    }
}

/// Reads a JSON body, naming the field at fault when it does not fit.
pub(crate) fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(ApiError::UnsupportedMediaType);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    match parsed {
        Ok(value) => Ok(value),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let field = (path != "." && !path.is_empty()).then_some(path);
            let message = match &field {
                Some(field) => format!("{field}: {inner}"),
                None => inner.to_string(),
            };
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::BadJson(message))
            } else {
                Err(ApiError::UnprocessableBody { field, message })
            }
        }
    }
}

/// Like [`json_body`], but an empty body reads as `T::default()`-like `{}`.
pub(crate) fn json_body_or_empty<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    if body.is_empty() {
        return serde_json::from_str("{}").map_err(|err| ApiError::UnprocessableBody {
            field: None,
            message: err.to_string(),
        });
    }
    json_body(headers, body)
}
