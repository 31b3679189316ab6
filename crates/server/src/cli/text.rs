//! The CLI's words for people: the `status` report, one line per audit
//! entry, what of a summary is worth a new line in `watch`, its progress
//! bar, and which phases end a `watch --until-done` with which exit code.
//! Pure, so it is tested without a server.

use canary_shared::words::thousands;
use canary_shared::{AuditEvent, CanaryState, CheckStatus, Phase, ShadowReport, StepStatus};

use crate::cli::Exit;

/// The `status` report for people, with the shadow step's findings when
/// the rollout has one (`shadow`, from `GET /admin/canary/validation`).
pub fn status_text(state: &CanaryState, shadow: Option<&ShadowReport>) -> String {
    let mut lines = vec![state.summary.clone()];
    for service in [&state.production, &state.canary] {
        let latency = service
            .p95_latency_ms
            .map_or("—".to_owned(), |ms| format!("{ms:.0} ms"));
        let errors = service
            .error_rate
            .map_or("—".to_owned(), |rate| format!("{:.1} %", rate * 100.0));
        lines.push(format!(
            "  {:<10} {:<10} {:<9} {:>7}  p95 {latency:>8}  errors {errors:>7}  {} requests in the last minute",
            service.side.as_str(),
            service.version.as_deref().unwrap_or("—"),
            service.health.label(),
            service.traffic_percent.to_string(),
            service.request_count,
        ));
    }
    let router = &state.router;
    if !router.kind.is_empty() && router.kind != "builtin" {
        let standing = match (&router.detail, router.confirmed) {
            (_, true) => "confirmed on every instance".to_owned(),
            (Some(detail), false) => format!("not confirmed: {detail}"),
            (None, false) => "not confirmed yet".to_owned(),
        };
        lines.push(format!(
            "  router     {:<10} {} to the canary, {standing}",
            router.kind, router.effective_percent
        ));
        if let Some(note) = &router.measurement {
            lines.push(format!("  router log {note}"));
        }
    }
    for service in [&state.production, &state.canary] {
        for metric in &service.custom_metrics {
            let value = match (metric.readable_value(), &metric.reason) {
                (Some(value), _) => value,
                (None, Some(reason)) => format!("no value: {reason}"),
                (None, None) => "no value".to_owned(),
            };
            lines.push(format!(
                "  {:<10} {:<28} {value}",
                service.side.as_str(),
                metric.name
            ));
        }
    }
    for step in &state.steps {
        let Some(name) = &step.name else { continue };
        let status = match step.status {
            StepStatus::Pending => "pending",
            StepStatus::InProgress => "running",
            StepStatus::Complete => "passed",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
        };
        lines.push(format!(
            "  test  {name:<24} {status:<8} {}",
            step.detail.as_deref().unwrap_or("")
        ));
    }
    if let Some(shadow) = shadow {
        lines.extend(shadow_lines(state, shadow));
    }
    for check in &state.safety_checks {
        let status = match check.status {
            CheckStatus::Safe => "SAFE",
            CheckStatus::Watch => "WATCH",
            CheckStatus::Breach => "BREACH",
            CheckStatus::NoData => "NO_DATA",
            CheckStatus::NoSource => "NO_SOURCE",
            CheckStatus::Inactive => "NOT_NOW",
        };
        lines.push(format!(
            "  check {:<24} {status:<8} {}",
            check.name,
            check.reason.as_deref().unwrap_or("")
        ));
    }
    for judged in &state.judge {
        lines.push(format!("  judge {}", judged.words));
    }
    let allowed: Vec<String> = state
        .allowed_actions
        .iter()
        .map(|action| {
            serde_json::to_value(action)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    lines.push(format!("  may now: {}", allowed.join(", ")));
    lines.join("\n")
}

/// The shadow step's line (and its newest mismatch), for `status`.
fn shadow_lines(state: &CanaryState, shadow: &ShadowReport) -> Vec<String> {
    let Some(step) = state
        .steps
        .iter()
        .find(|step| matches!(step.kind, canary_shared::StepKind::Shadow { .. }))
    else {
        return Vec::new();
    };
    let status = match step.status {
        StepStatus::Pending => "pending",
        StepStatus::InProgress => "copying",
        StepStatus::Complete => "passed",
        StepStatus::Failed => "FAILED",
        StepStatus::Skipped => "skipped",
    };
    let rate = shadow
        .mismatch_rate
        .map_or("—".to_owned(), |rate| format!("{:.1} %", rate * 100.0));
    let counts = shadow.mismatches;
    let mut lines = vec![format!(
        "  shadow {:<23} {status:<8} {} compared, {} mismatched ({rate} in the last minute; status {}, body {}, no answer {}), {} dropped",
        shadow.share.to_string(),
        thousands(shadow.compared),
        thousands(counts.total()),
        counts.status,
        counts.body,
        counts.failed,
        thousands(shadow.dropped),
    )];
    if let Some(example) = shadow.examples.first() {
        lines.push(format!(
            "    newest mismatch: {} {}: {}",
            example.method, example.path, example.detail
        ));
    }
    lines
}

/// One audit entry on one line.
pub fn audit_line(event: &AuditEvent) -> String {
    let seconds = event.at.0 / 1000;
    let clock = format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60
    );
    let shares = if event.from_percent == event.to_percent {
        event.to_percent.to_string()
    } else {
        format!("{} → {}", event.from_percent, event.to_percent)
    };
    format!(
        "#{:<5} {clock}Z  {:<12} {:<22} {:<14} {}",
        event.seq,
        event.actor,
        event.action,
        shares,
        event.reason.as_deref().unwrap_or("")
    )
}

/// A status line without what changes every second: the countdown, and the
/// figures in parentheses (the statistical judge's evidence).
pub fn lasting_part(summary: &str) -> String {
    let summary = summary
        .split_once(", auto-progression in ")
        .map_or(summary, |(lasting, _)| lasting);
    let mut lasting = String::with_capacity(summary.len());
    let mut depth = 0usize;
    for character in summary.chars() {
        match character {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => lasting.push(character),
            _ => {}
        }
    }
    lasting.replace(" ,", ",").trim_end().to_owned()
}

/// How a finished rollout ends the process, if it has finished.
pub fn finished(phase: Phase) -> Option<Exit> {
    match phase {
        Phase::Promoted => Some(Exit::Done),
        Phase::RolledBack => Some(Exit::RolledBack),
        Phase::Failed => Some(Exit::Failed),
        _ => None,
    }
}

/// A text progress bar for the auto-progression wait: `[######----] 60 %`.
pub fn progress_bar(state: &CanaryState) -> Option<String> {
    let auto = &state.auto_progression;
    if state.phase != Phase::Progressing || !auto.enabled || auto.wait_ms == 0 {
        return None;
    }
    let done = (auto.green_for_ms.min(auto.wait_ms) * 20 / auto.wait_ms) as usize;
    Some(format!(
        "[{}{}] {} % of the green wait",
        "#".repeat(done),
        "-".repeat(20 - done),
        auto.green_for_ms.min(auto.wait_ms) * 100 / auto.wait_ms
    ))
}

#[cfg(test)]
mod tests {
    use canary_shared::{CanaryState, Phase};

    use super::{finished, lasting_part, progress_bar, status_text};
    use crate::cli::Exit;

    fn state() -> CanaryState {
        serde_json::from_str(include_str!(
            "../../../shared/src/snapshots/canary_state.json"
        ))
        .unwrap()
    }

    #[test]
    fn status_lists_each_test_run_with_how_it_ended() {
        let text = status_text(&state(), None);
        assert!(
            text.lines().any(|line| line.trim_end()
                == "  test  smoke                    passed   exit 0: 42 passed"),
            "{text}"
        );
    }

    #[test]
    fn status_tells_what_the_shadow_step_found() {
        let shadow: canary_shared::ShadowReport = serde_json::from_str(include_str!(
            "../../../shared/src/snapshots/shadow_report.json"
        ))
        .unwrap();
        let text = status_text(&state(), Some(&shadow));
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|line| line.starts_with("  shadow"))
            .expect(&text);
        assert_eq!(
            lines[at],
            "  shadow 5 %                     passed   1,200 compared, 33 mismatched (2.8 % in the last minute; status 2, body 30, no answer 1), 3 dropped"
        );
        assert_eq!(
            lines[at + 1],
            "    newest mismatch: GET /api/orders/7?expand=items: at /total: production 42, canary 41"
        );
    }

    #[test]
    fn status_says_whether_an_external_router_has_the_split() {
        let text = status_text(&state(), None);
        assert!(
            text.lines().any(|line| line
                == "  router     haproxy    25 % to the canary, not confirmed: 127.0.0.1:9999: cannot reach the stats socket"),
            "{text}"
        );
        let mut builtin = state();
        builtin.router.kind = "builtin".to_owned();
        assert!(
            !status_text(&builtin, None).contains("router"),
            "nothing to say for the built-in proxy"
        );
    }

    #[test]
    fn the_countdown_is_not_a_change_worth_a_line() {
        assert_eq!(
            lasting_part("Canary at 25 %, step 4 of 7, auto-progression in 23 h 11 min"),
            "Canary at 25 %, step 4 of 7"
        );
        assert_eq!(
            lasting_part("Paused with the canary at 25 %"),
            "Paused with the canary at 25 %"
        );
        // The judge's evidence changes every second; its finding does not.
        assert_eq!(
            lasting_part(
                "Canary at 5 %, step 3 of 7, holding: waiting for the statistical judge: latency: not decided yet (slower in 48.5 % of 1,058 comparisons; evidence of worse 0.1 of 200 needed, of within 12 of 100)"
            ),
            "Canary at 5 %, step 3 of 7, holding: waiting for the statistical judge: latency: not decided yet"
        );
    }

    #[test]
    fn the_progress_bar_fills_with_green_time() {
        let mut state = state();
        state.phase = Phase::Progressing;
        state.auto_progression.enabled = true;
        state.auto_progression.wait_ms = 30_000;
        state.auto_progression.green_for_ms = 15_000;
        assert_eq!(
            progress_bar(&state).as_deref(),
            Some("[##########----------] 50 % of the green wait")
        );
        state.auto_progression.enabled = false;
        assert_eq!(progress_bar(&state), None, "nothing to wait for");
    }

    #[test]
    fn only_ended_rollouts_end_a_watch_with_their_own_code() {
        assert_eq!(finished(Phase::Promoted), Some(Exit::Done));
        assert_eq!(finished(Phase::RolledBack), Some(Exit::RolledBack));
        assert_eq!(finished(Phase::Failed), Some(Exit::Failed));
        assert_eq!(finished(Phase::RollingBack), None);
        assert_eq!(finished(Phase::Idle), None);
    }
}
