//! Shadow validation, the pure part: whether the canary's answer to a
//! mirrored request matches production's answer to the same request, in
//! words when it does not; the pair's latencies as the statistical judge
//! compares them; and the mismatch rate as the safety checks read it.

use canary_shared::{CustomMetric, MismatchKind};
use serde_json::Value;

use crate::domain::judge::Comparison;

/// The metric a safety check reads for the mismatched share of compared
/// shadow requests.
pub const MISMATCH_RATE_METRIC: &str = "shadow_mismatch_rate";

/// How bodies are compared.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum BodyRule {
    /// Not at all: status class and latency only.
    #[default]
    Ignore,
    /// Byte for byte.
    Exact,
    /// As JSON values, with the fields at these pointers left out on both
    /// sides (timestamps, ids); a production body that is not JSON is
    /// compared byte for byte.
    Json {
        /// The fields left out.
        ignored: Vec<JsonPointer>,
    },
}

/// A JSON pointer (RFC 6901), parsed into its reference tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPointer {
    text: String,
    tokens: Vec<String>,
}

impl JsonPointer {
    /// `/data/created_at` or `/items/0/id`; the empty pointer (the whole
    /// document) is refused, since ignoring it would compare nothing.
    pub fn parse(text: &str) -> Result<JsonPointer, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a JSON pointer: it starts with `/`, such as \"/meta/request_id\""
            ));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            let mut token = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                match (c, c == '~') {
                    (_, true) => match chars.next() {
                        Some('0') => token.push('~'),
                        Some('1') => token.push('/'),
                        _ => {
                            return Err(format!(
                                "{text:?} is not a JSON pointer: `~` is written `~0` and `/` inside a name `~1`"
                            ));
                        }
                    },
                    (c, false) => token.push(c),
                }
            }
            tokens.push(token);
        }
        Ok(JsonPointer {
            text: text.to_owned(),
            tokens,
        })
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Removes the value it points at from `value`, if there is one.
    fn remove_from(&self, value: &mut Value) {
        let Some((last, parents)) = self.tokens.split_last() else {
            return;
        };
        let mut current = value;
        for token in parents {
            current = match current {
                Value::Object(map) => match map.get_mut(token) {
                    Some(next) => next,
                    None => return,
                },
                Value::Array(items) => {
                    match token.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                        Some(next) => next,
                        None => return,
                    }
                }
                _ => return,
            };
        }
        match current {
            Value::Object(map) => {
                map.remove(last);
            }
            // An array keeps its length: the element becomes null, so the
            // elements after it are still compared with their counterparts.
            Value::Array(items) => {
                if let Some(item) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    *item = Value::Null;
                }
            }
            _ => {}
        }
    }
}

/// One side's answer to a mirrored request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer<'a> {
    /// Its status.
    pub status: u16,
    /// Its body, when it was kept whole (`None`: over the size compared).
    pub body: Option<&'a [u8]>,
}

/// How the canary's answer compares with production's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// Alike under the rule.
    Same,
    /// Different.
    Differs {
        /// How.
        kind: MismatchKind,
        /// Where or why, in words (bodies shortened).
        detail: String,
    },
}

/// The longest stretch of a body quoted in a mismatch's detail.
const QUOTED: usize = 60;

/// Compares the canary's answer (or why it gave none) with production's.
pub fn compare(
    production: Answer<'_>,
    canary: Result<Answer<'_>, String>,
    rule: &BodyRule,
) -> Match {
    let canary = match canary {
        Ok(canary) => canary,
        Err(why) => {
            return Match::Differs {
                kind: MismatchKind::Failed,
                detail: why,
            };
        }
    };
    if production.status / 100 != canary.status / 100 {
        return Match::Differs {
            kind: MismatchKind::Status,
            detail: format!(
                "production answered {}, the canary {}",
                production.status, canary.status
            ),
        };
    }
    let (Some(expected), Some(got)) = (production.body, canary.body) else {
        return Match::Same;
    };
    let differs = |detail: String| Match::Differs {
        kind: MismatchKind::Body,
        detail,
    };
    match rule {
        BodyRule::Ignore => Match::Same,
        BodyRule::Exact => match exact_difference(expected, got) {
            None => Match::Same,
            Some(detail) => differs(detail),
        },
        BodyRule::Json { ignored } => {
            let Ok(mut expected_value) = serde_json::from_slice::<Value>(expected) else {
                return match exact_difference(expected, got) {
                    None => Match::Same,
                    Some(detail) => differs(detail),
                };
            };
            let mut got_value = match serde_json::from_slice::<Value>(got) {
                Ok(value) => value,
                Err(err) => {
                    return differs(format!(
                        "the canary's body is not JSON ({err}): {}",
                        quote(got, 0)
                    ));
                }
            };
            for pointer in ignored {
                pointer.remove_from(&mut expected_value);
                pointer.remove_from(&mut got_value);
            }
            match json_difference(&expected_value, &got_value, &mut String::new()) {
                None => Match::Same,
                Some(detail) => differs(detail),
            }
        }
    }
}

/// Where two bodies part, with a little of each from there.
fn exact_difference(expected: &[u8], got: &[u8]) -> Option<String> {
    if expected == got {
        return None;
    }
    let at = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let from = at.saturating_sub(QUOTED / 3);
    Some(format!(
        "bodies differ at byte {at} ({} and {} bytes): production {}, canary {}",
        expected.len(),
        got.len(),
        quote(expected, from),
        quote(got, from)
    ))
}

/// Up to [`QUOTED`] bytes from `from`, as text a person can read (control
/// characters and invalid UTF-8 escaped), marked where cut.
fn quote(bytes: &[u8], from: usize) -> String {
    let end = bytes.len().min(from + QUOTED);
    let slice = bytes.get(from..end).unwrap_or_default();
    let mut text = String::with_capacity(slice.len() + 8);
    if from > 0 {
        text.push('…');
    }
    for chunk in slice.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                text.extend(c.escape_default());
            } else {
                text.push(c);
            }
        }
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    if end < bytes.len() {
        text.push('…');
    }
    format!("\"{text}\"")
}

/// The first place two JSON values differ, as `at /path: production …, canary …`.
fn json_difference(expected: &Value, got: &Value, path: &mut String) -> Option<String> {
    let here = |path: &str| {
        if path.is_empty() {
            "/".to_owned()
        } else {
            path.to_owned()
        }
    };
    match (expected, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                let found = match b.get(key) {
                    Some(other) => json_difference(value, other, path),
                    None => Some(format!("at {path}: missing from the canary's answer")),
                };
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            b.keys().find(|key| !a.contains_key(*key)).map(|key| {
                let key = key.replace('~', "~0").replace('/', "~1");
                format!("at {path}/{key}: only in the canary's answer")
            })
        }
        (Value::Array(a), Value::Array(b)) => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                let len = path.len();
                path.push_str(&format!("/{index}"));
                let found = json_difference(x, y, path);
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
            (a.len() != b.len()).then(|| {
                format!(
                    "at {}: {} items in production's answer, {} in the canary's",
                    here(path),
                    a.len(),
                    b.len()
                )
            })
        }
        // 1 and 1.0 are the same number to a JSON reader.
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (a, b) if a == b => None,
        (a, b) => Some(format!(
            "at {}: production {}, canary {}",
            here(path),
            short_json(a),
            short_json(b)
        )),
    }
}

fn short_json(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= QUOTED {
        return text;
    }
    let cut: String = text.chars().take(QUOTED).collect();
    format!("{cut}…")
}

/// A mirrored request's two latencies (to the response head) as one
/// observation of the statistical judge: the canary slower (1), faster (0)
/// or alike (½). The same request on both sides: a true pair, so none of
/// the difference between requests gets into the comparison.
pub fn paired(canary_ms: f64, production_ms: f64) -> Comparison {
    let slower = if canary_ms > production_ms {
        1.0
    } else if canary_ms < production_ms {
        0.0
    } else {
        0.5
    };
    Comparison { slower, count: 1 }
}

/// The mismatch rate as a check reads it: compared requests and mismatches
/// over `window_secs`, judged from `min_requests` compared requests on.
pub fn mismatch_metric(
    compared: u64,
    mismatches: u64,
    window_secs: u32,
    min_requests: u64,
) -> CustomMetric {
    let (value, reason) = if compared < min_requests.max(1) {
        (
            None,
            Some(format!(
                "{compared} shadow requests compared in the last {window_secs} s, {} needed to judge",
                min_requests.max(1)
            )),
        )
    } else {
        (Some(mismatches as f64 / compared as f64), None)
    };
    CustomMetric {
        name: MISMATCH_RATE_METRIC.to_owned(),
        value,
        reason,
        at: None,
        points: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
