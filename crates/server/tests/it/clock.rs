//! The wall clock only says when things happened: a jump of an hour
//! forwards or backwards during a rollout ends no wait early and stretches
//! none (waits are measured on a monotonic clock), while the audit trail
//! keeps the wall time the clock gives.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use canary_server::adapters::clock::SystemClock;
use canary_server::config::{ConfigDuration, OnLongNoData};
use canary_server::ports::Clock;
use canary_shared::{Phase, UnixMillis};

use crate::support::{TestApp, http_get};

const HOUR_MS: i64 = 3_600_000;

/// The system's wall time moved by an offset that a test changes at will,
/// as an operator's `date -s` or a bad NTP step would.
#[derive(Debug, Default)]
struct JumpingClock {
    offset_ms: AtomicI64,
}

impl JumpingClock {
    fn jump(&self, by_ms: i64) {
        self.offset_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for JumpingClock {
    fn now(&self) -> UnixMillis {
        let system = i64::try_from(SystemClock.now().0).unwrap();
        UnixMillis(u64::try_from(system + self.offset_ms.load(Ordering::SeqCst)).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_jump_of_the_wall_clock_either_way_moves_no_wait() {
    // The wait under test: a canary with no traffic is rolled back after
    // 3 s without data. A wait on the wall clock would end at once after
    // the jump forwards, and last an hour longer after the jump backwards.
    const NO_DATA_TIMEOUT: Duration = Duration::from_secs(3);
    for jump_ms in [HOUR_MS, -HOUR_MS] {
        let clock = Arc::new(JumpingClock::default());
        let app = TestApp::start_with_clock(
            |config| {
                config.canary.analysis.no_data_timeout = ConfigDuration(NO_DATA_TIMEOUT);
                config.canary.analysis.on_long_no_data = OnLongNoData::Rollback;
                TestApp::pass_health_checks_blindly(config);
            },
            Arc::clone(&clock) as Arc<dyn Clock>,
        )
        .await;
        app.start_canary_at(5.0).await;
        let waiting_since = tokio::time::Instant::now();
        let before_jump = clock.now();
        clock.jump(jump_ms);

        // wait_for_phase gives up after 15 s: an hour-long wait fails here.
        let state = app.wait_for_phase(Phase::RolledBack).await;
        let waited = waiting_since.elapsed();
        assert!(
            waited >= NO_DATA_TIMEOUT - Duration::from_millis(500),
            "a jump of {jump_ms} ms ended the {NO_DATA_TIMEOUT:?} wait after {waited:?}"
        );
        assert!(state.summary.contains("data"), "{}", state.summary);

        // The trail says when, by the (jumped) wall clock.
        let (_, _, body) = http_get(
            &app.url("/admin/canary/audit?action=rolled_back"),
            "application/json",
        )
        .await;
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let at = page["events"][0]["at"]
            .as_i64()
            .expect("a rolled_back entry");
        let expected = i64::try_from(before_jump.0).unwrap() + jump_ms;
        assert!(
            (at - expected).abs() < 60_000,
            "rolled back at {at}, the jumped clock said about {expected}"
        );
    }
}
