//! Entry points for the coverage-guided fuzz targets in `fuzz/` (cargo
//! fuzz; `cargo xtask fuzz`): every reader of bytes canary does not
//! control, each with the invariants it must keep whatever the input. A
//! panic is a finding. Not an API: hidden from the docs.

use canary_shared::{ClientMessage, Command, CustomMetricPush, LoginRequest, StartRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::adapters::proxy::fuzzing::upstream_response;

/// The Prometheus text exposition parser (scraped from services).
pub fn exposition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = crate::domain::exposition::parse(text) {
        // Parsing is deterministic: the same text, the same samples.
        let again = crate::domain::exposition::parse(text).expect("parsed once");
        assert_eq!(format!("{parsed:?}"), format!("{again:?}"));
    } else if let Err(err) = crate::domain::exposition::parse(text) {
        assert!(err.line >= 1, "an error names its line: {err}");
    }
}

/// The config loader: any text is a config or an error naming where.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(err) = crate::config::Config::from_yaml(text) {
        assert!(!err.to_string().is_empty());
    }
}

/// The API's JSON bodies and the WebSocket's client messages: whatever
/// parses re-serialises to the same meaning.
pub fn api_json(data: &[u8]) {
    round_trip::<StartRequest>(data);
    round_trip::<Command>(data);
    round_trip::<CustomMetricPush>(data);
    round_trip::<canary_shared::demo::DemoBehaviour>(data);
    round_trip::<LoginRequest>(data);
    round_trip::<ClientMessage>(data);
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let json = serde_json::to_vec(&value).expect("wire types serialize");
        let again: T = serde_json::from_slice(&json).expect("what we write, we read");
        assert_eq!(again, value, "{}", String::from_utf8_lossy(&json));
    }
}

/// An external router's access-log line (syslog over UDP on loopback).
pub fn access_log(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = crate::adapters::router::access_log::parse(text) {
        let _ = crate::adapters::router::access_log::outcome(&request);
    }
}

/// The override header's value (sent by any client of the proxy).
pub fn override_header(data: &[u8]) {
    let _ = crate::domain::split::Override::parse(data);
}

/// The API's query strings (`GET /admin/canary/audit`, `…/metrics/history`):
/// any string is a checked query or a `400` naming what is wrong, and what
/// is accepted stays within the store's and the page's bounds.
pub fn api_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let refused = |err: crate::api::ApiError| {
        let crate::api::ApiError::BadQuery(message) = err else {
            panic!("a query is refused as a bad query: {err:?}");
        };
        assert!(!message.is_empty());
    };
    match crate::api::commands::audit_query(Some(text)) {
        Ok(query) => {
            assert!(
                query
                    .before
                    .is_none_or(|before| i64::try_from(before).is_ok())
            );
            assert!((1..=crate::adapters::store::MAX_AUDIT_PAGE).contains(&query.limit));
        }
        Err(err) => refused(err),
    }
    match crate::api::status::history_query(Some(text)) {
        Ok(query) => {
            assert!(i64::try_from(query.since.0).is_ok());
            assert!((1..=86_400).contains(&query.limit));
        }
        Err(err) => refused(err),
    }
}
