//! The Prometheus text exposition format (version 0.0.4): parsing what a
//! service's `/metrics` says, and writing canary's own `/metrics`.
//!
//! Our own, because none of the crates we tried parses it correctly:
//! `prometheus-parse` 0.2 splits labels on every `,` and `=` (a value such
//! as `path="/a,b"` breaks) and keeps escapes as they are; `nom-openmetrics`
//! 0.2 rejects sample timestamps, does not recognise `# TYPE … histogram`,
//! and keeps `\n` escaped; `openmetrics-parser` is LGPL-3.0, which our
//! Apache-2.0 binary cannot carry lightly. The format is line-based and
//! small, the parser below is strict (a malformed line fails the whole
//! scrape, as it does in Prometheus), and the tests round-trip it through the
//! writer.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a `# TYPE` line says a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// Only goes up (resets to 0 on restart).
    Counter,
    /// Any value.
    Gauge,
    /// Cumulative `_bucket{le=…}` counts with `_sum` and `_count`.
    Histogram,
    /// Client-side `{quantile=…}` values with `_sum` and `_count`.
    Summary,
    /// No (or an unknown) type.
    Untyped,
}

impl MetricType {
    fn parse(word: &str) -> MetricType {
        match word {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            _ => MetricType::Untyped,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        }
    }
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name (`http_requests_total`, `latency_seconds_bucket`).
    pub name: String,
    /// Its labels, unescaped, in the order written.
    pub labels: Vec<(String, String)>,
    /// Its value (`NaN` and the infinities included).
    pub value: f64,
    /// The optional timestamp, in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A parsed exposition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    /// `# TYPE` lines, by metric name.
    pub types: BTreeMap<String, MetricType>,
    /// `# HELP` lines, unescaped, by metric name.
    pub help: BTreeMap<String, String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The type of metric `name`: its `# TYPE` line, or, without one, what its
    /// samples look like (`_bucket` samples make a histogram).
    pub fn type_of(&self, name: &str) -> MetricType {
        if let Some(kind) = self.types.get(name) {
            return *kind;
        }
        let bucket = format!("{name}_bucket");
        if self.samples.iter().any(|sample| sample.name == bucket) {
            MetricType::Histogram
        } else if self
            .samples
            .iter()
            .any(|sample| sample.name == name && sample.label("quantile").is_some())
        {
            MetricType::Summary
        } else {
            MetricType::Untyped
        }
    }
}

/// Why a text is not a valid exposition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, with the text at fault.
    pub message: String,
}

/// Parses a text exposition; any malformed line fails the whole text.
pub fn parse(text: &str) -> Result<Exposition, ParseError> {
    let mut exposition = Exposition::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_matches([' ', '\t', '\r']);
        let fail = |message: String| ParseError {
            line: index + 1,
            message,
        };
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start_matches([' ', '\t']);
            let mut words = comment.splitn(3, [' ', '\t']);
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    check_metric_name(name).map_err(fail)?;
                    exposition
                        .types
                        .insert(name.to_owned(), MetricType::parse(kind.trim()));
                }
                (Some("HELP"), Some(name), rest) => {
                    check_metric_name(name).map_err(fail)?;
                    exposition
                        .help
                        .insert(name.to_owned(), unescape_help(rest.unwrap_or("")));
                }
                // Any other comment is a comment.
                _ => {}
            }
            continue;
        }
        let sample = parse_sample(line).map_err(fail)?;
        exposition.samples.push(sample);
    }
    Ok(exposition)
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if valid {
        Ok(())
    } else {
        Err(format!("{name:?} is not a metric name"))
    }
}

fn unescape_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return Err(format!("expected a metric name at {:?}", preview(line)));
    }
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.trim_start_matches([' ', '\t']).strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| format!("{name} has no value"))
        .and_then(parse_value)?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| format!("{text:?} is not a timestamp in milliseconds"))?,
        ),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the value of {name}"));
    }
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return Err(format!("expected a space after {name}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Parses `name="value",…}` and returns what follows the closing brace.
fn parse_labels<'a>(
    mut text: &'a str,
    labels: &mut Vec<(String, String)>,
) -> Result<&'a str, String> {
    loop {
        text = text.trim_start_matches([' ', '\t']);
        if let Some(after) = text.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or("unterminated labels")?;
        let name = &text[..name_end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!("expected a label name at {:?}", preview(text)));
        }
        text = text[name_end..].trim_start_matches([' ', '\t']);
        text = text
            .strip_prefix('=')
            .ok_or_else(|| format!("expected `=` after label {name}"))?
            .trim_start_matches([' ', '\t']);
        text = text
            .strip_prefix('"')
            .ok_or_else(|| format!("expected `\"` to open the value of label {name}"))?;
        let mut value = String::new();
        let mut chars = text.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated value of label {name}")),
                Some((at, '"')) => break at,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => {
                        return Err(format!("unknown escape `\\{other}` in label {name}"));
                    }
                    None => return Err(format!("unterminated value of label {name}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        text = text[end + 1..].trim_start_matches([' ', '\t']);
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err(format!("expected `,` or `}}` at {:?}", preview(text)));
        }
    }
}

fn preview(text: &str) -> &str {
    let end = text.char_indices().nth(20).map_or(text.len(), |(at, _)| at);
    &text[..end]
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text.to_ascii_lowercase().as_str() {
        "nan" => Ok(f64::NAN),
        "+inf" | "inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("{text:?} is not a number")),
    }
}

/// Writes expositions: `# HELP` and `# TYPE` once per metric, then samples.
#[derive(Debug, Default)]
pub struct Writer {
    text: String,
}

impl Writer {
    /// An empty exposition.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Starts metric `name`: its help text and type.
    pub fn metric(&mut self, name: &str, kind: MetricType, help: &str) -> &mut Writer {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Writer {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let escaped = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{label}=\"{escaped}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
        self
    }

    /// The text.
    pub fn finish(self) -> String {
        self.text
    }
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests;
