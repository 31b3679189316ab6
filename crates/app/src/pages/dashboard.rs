//! The control dashboard at `/admin/canary`.

use canary_shared::Side;
use leptos::prelude::*;

use crate::components::actions_card::ActionsCard;
use crate::components::app_header::AppHeader;
use crate::components::audit_card::AuditCard;
use crate::components::demo_card::DemoCard;
use crate::components::help_card::HelpCard;
use crate::components::metrics_card::MetricsCard;
use crate::components::push_card::PushCard;
use crate::components::router_card::RouterCard;
use crate::components::safety_card::SafetyCard;
use crate::components::service_card::ServiceCard;
use crate::components::settings_card::SettingsCard;
use crate::components::status_line::StatusLine;
use crate::components::steps_card::StepsCard;
use crate::components::validation_card::ValidationCard;
use crate::stream::LiveData;

/// Header, status line, the Production / Canary / Actions cards, the live
/// charts, and the rollout's steps and safety checks.
#[component]
pub fn Dashboard() -> impl IntoView {
    let live = expect_context::<LiveData>();
    let stale = move || live.connection.get().is_stale();
    view! {
        <AppHeader connection=live.connection />
        <main class="dashboard" class:dashboard--stale=stale aria-busy=move || stale().to_string()>
            <StatusLine state=live.state connection=live.connection />
            <section class="cards" aria-label="Services and actions">
                <ServiceCard side=Side::Production state=live.state />
                <ServiceCard side=Side::Canary state=live.state />
                <ActionsCard state=live.state />
                // After the actions: on a desktop the services and the
                // actions share the first row; the router spans the next.
                <RouterCard state=live.state />
            </section>
            <DemoCard />
            <MetricsCard metrics=live.metrics />
            <section class="cards cards--wide">
                <StepsCard state=live.state />
                <SafetyCard state=live.state audit=live.audit />
            </section>
            <ValidationCard state=live.state metrics=live.metrics />
            <AuditCard audit=live.audit />
            <PushCard />
            <SettingsCard />
            <HelpCard />
        </main>
    }
}
