//! `validation:`: what checks the canary after its health check and before
//! it gets any traffic: the team's test runs, in order.

use serde::{Deserialize, Serialize};

use crate::config::{ConfigDuration, HookCommand};

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
}

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
