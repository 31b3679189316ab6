//! `validation:`: what checks the canary after its health check and before
//! it gets any traffic: the team's test runs, in order, then shadow
//! traffic (production's requests copied to the canary, its answers
//! compared with production's).

use canary_shared::CanaryShare;
use serde::{Deserialize, Serialize};

use crate::config::{ByteSize, ConfigDuration, HeaderName, HookCommand};
use crate::domain::shadow::{BodyRule, JsonPointer};

/// At most this many test runs: each is a step in the console's stepper.
pub const MAX_TEST_RUNS: usize = 16;

/// `validation:`
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// The team's test commands (a smoke or contract suite), run one after
    /// another against the canary; a failed one fails the rollout before any
    /// traffic.
    pub test_runs: TestRuns,
    /// Production's requests copied to the canary, which answers nobody.
    pub shadow: Option<ShadowConfig>,
}

/// `validation.shadow:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// The share of production's requests copied, in percent (above 0, at most 100).
    pub share: MirrorShare,
    /// How long the checks must stay green on shadow traffic.
    #[serde(default = "default_shadow_duration")]
    pub duration: ConfigDuration,
    /// The methods copied; others never reach the canary. GET and HEAD by
    /// default: a copied POST runs its side effects twice.
    #[serde(default = "default_methods")]
    pub methods: Vec<MirrorMethod>,
    /// A request with a larger body is not copied.
    #[serde(default = "default_max_request_body")]
    pub max_request_body: ByteSize,
    /// Copied requests waiting or in flight at most; beyond, a request is
    /// not copied (counted as dropped), so a slow canary never holds a client.
    #[serde(default = "default_queue")]
    pub queue: QueueSize,
    /// How the bodies are compared.
    #[serde(default)]
    pub compare_body: CompareBody,
    /// With `compare_body: json`: JSON pointers of fields left out of the
    /// comparison on both sides (timestamps, ids).
    #[serde(default)]
    pub ignore_fields: Vec<IgnoredField>,
    /// Bodies larger than this are compared by status only.
    #[serde(default = "default_max_compared_body")]
    pub max_compared_body: ByteSize,
    /// Request headers never kept in a mismatch's example, besides
    /// `Authorization`, `Cookie` and `Proxy-Authorization`.
    #[serde(default)]
    pub redact_headers: Vec<HeaderName>,
}

impl ShadowConfig {
    /// The body comparison as the core runs it.
    pub fn body_rule(&self) -> BodyRule {
        match self.compare_body {
            CompareBody::None => BodyRule::Ignore,
            CompareBody::Exact => BodyRule::Exact,
            CompareBody::Json => BodyRule::Json {
                ignored: self
                    .ignore_fields
                    .iter()
                    .map(|field| field.0.clone())
                    .collect(),
            },
        }
    }
}

fn default_shadow_duration() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(120))
}

fn default_methods() -> Vec<MirrorMethod> {
    vec![
        MirrorMethod("GET".to_owned()),
        MirrorMethod("HEAD".to_owned()),
    ]
}

fn default_max_request_body() -> ByteSize {
    ByteSize(64 * 1024)
}

fn default_max_compared_body() -> ByteSize {
    ByteSize(1024 * 1024)
}

fn default_queue() -> QueueSize {
    QueueSize(256)
}

/// `validation.shadow.share`: a percentage above 0, at most 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "f64")]
pub struct MirrorShare(pub CanaryShare);

impl TryFrom<f64> for MirrorShare {
    type Error = String;

    fn try_from(percent: f64) -> Result<Self, Self::Error> {
        let share =
            CanaryShare::from_percent(percent).map_err(|err| format!("share {percent}: {err}"))?;
        if share == CanaryShare::ZERO {
            return Err(
                "share 0 copies nothing: give the percentage of production's requests to copy (5 is usual), or leave validation.shadow out"
                    .to_owned(),
            );
        }
        Ok(MirrorShare(share))
    }
}

serialize_as!(MirrorShare, |value| value.0.percent());

/// An HTTP method, upper case as on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MirrorMethod(pub String);

impl TryFrom<String> for MirrorMethod {
    type Error = String;

    fn try_from(method: String) -> Result<Self, Self::Error> {
        if method == "CONNECT" {
            return Err("CONNECT opens a tunnel and cannot be copied".to_owned());
        }
        if method.is_empty()
            || hyper::Method::from_bytes(method.as_bytes()).is_err()
            || method.bytes().any(|byte| byte.is_ascii_lowercase())
        {
            return Err(format!(
                "{method:?} is not an HTTP method as sent: write it in capitals, such as GET"
            ));
        }
        Ok(MirrorMethod(method))
    }
}

serialize_as!(MirrorMethod, |value| &value.0);

/// `validation.shadow.queue`: 1 to 10,000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
pub struct QueueSize(pub u32);

impl TryFrom<u32> for QueueSize {
    type Error = String;

    fn try_from(size: u32) -> Result<Self, Self::Error> {
        if (1..=10_000).contains(&size) {
            Ok(QueueSize(size))
        } else {
            Err(format!("queue {size}: from 1 to 10000 copied requests"))
        }
    }
}

serialize_as!(QueueSize, |value| value.0);

/// `validation.shadow.compare_body`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareBody {
    /// Status class and latency only.
    #[default]
    None,
    /// Byte for byte.
    Exact,
    /// As JSON, without `ignore_fields`.
    Json,
}

/// A JSON pointer in `validation.shadow.ignore_fields`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IgnoredField(pub JsonPointer);

impl TryFrom<String> for IgnoredField {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        JsonPointer::parse(&text).map(IgnoredField)
    }
}

serialize_as!(IgnoredField, |value| value.0.as_str());

/// `validation.test_runs:` at most [`MAX_TEST_RUNS`], each name once.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(try_from = "Vec<TestRunConfig>")]
pub struct TestRuns(pub Vec<TestRunConfig>);

impl TryFrom<Vec<TestRunConfig>> for TestRuns {
    type Error = String;

    fn try_from(runs: Vec<TestRunConfig>) -> Result<Self, Self::Error> {
        if runs.len() > MAX_TEST_RUNS {
            return Err(format!(
                "{} test runs; at most {MAX_TEST_RUNS} (each is a step of the rollout)",
                runs.len()
            ));
        }
        for (index, run) in runs.iter().enumerate() {
            if runs[..index].iter().any(|earlier| earlier.name == run.name) {
                return Err(format!(
                    "two test runs are named {:?}; each needs a name of its own",
                    run.name.0
                ));
            }
        }
        Ok(TestRuns(runs))
    }
}

serialize_as!(TestRuns, |value| &value.0);

/// One test run: a name for the stepper and the audit trail, a program with
/// its arguments (templated like the hooks', with `{canary_url}` the
/// upstream the canary runs on) and a time limit.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestRunConfig {
    /// What it is called in the stepper and the audit trail.
    pub name: TestRunName,
    /// The program and its arguments (no shell).
    pub command: HookCommand,
    /// How long it may run before it is killed and counts as failed.
    #[serde(default = "default_test_timeout")]
    pub timeout: ConfigDuration,
}

fn default_test_timeout() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(600))
}

/// A test run's name: 1–64 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TestRunName(pub String);

impl TryFrom<String> for TestRunName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        if name.trim().is_empty() {
            Err("a test run needs a name, such as \"smoke\"".to_owned())
        } else if name.chars().count() > 64 {
            Err("a test run's name is at most 64 characters".to_owned())
        } else if name.chars().any(char::is_control) {
            Err("a test run's name has no control characters".to_owned())
        } else {
            Ok(TestRunName(name))
        }
    }
}

serialize_as!(TestRunName, |value| &value.0);
