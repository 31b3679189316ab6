//! The metrics ticker: once a second it closes the recorder's second (and
//! the shadow tap's) and tells the controller, first what the statistical
//! judge sees of it, then the snapshot the checks are judged on.

use std::time::Duration;

use canary_shared::UnixMillis;

use crate::events::Event;

/// Closes a second of metrics every second and sends the snapshot to the
/// controller; returns when the controller has gone away.
pub async fn run_ticker(
    recorder: std::sync::Arc<crate::adapters::recorder::Recorder>,
    shadow: Option<std::sync::Arc<crate::adapters::shadow::ShadowTap>>,
    share: crate::adapters::proxy::SharedRouting,
    clock: std::sync::Arc<dyn crate::ports::Clock>,
    events: tokio::sync::mpsc::Sender<Event>,
    custom: std::sync::Arc<crate::adapters::metric_sources::CustomReadings>,
) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let now = clock.now();
        let second_start = UnixMillis(now.0.saturating_sub(1000));
        let second = recorder.tick(second_start);
        let shadow_second = shadow.as_ref().map(|tap| tap.tick(second_start));
        let observed = Event::Observed {
            second,
            shadow: shadow_second,
        };
        if events.send(observed).await.is_err() {
            return;
        }
        let mut snapshot = recorder.snapshot(now, share.share());
        snapshot.production.custom = custom.view(canary_shared::Side::Production, now);
        snapshot.canary.custom = custom.view(canary_shared::Side::Canary, now);
        snapshot.shadow = shadow.as_ref().map(|tap| tap.report(false));
        let event = Event::Measured(std::sync::Arc::new(snapshot));
        if events.send(event).await.is_err() {
            return;
        }
    }
}
