//! Presentational components: they take signals and props and render; the
//! pages wire them to live data.

pub mod actions_card;
pub mod app_header;
pub mod audit_card;
pub mod demo_card;
pub mod help_card;
pub mod metrics_card;
pub mod push_card;
pub mod router_card;
pub mod safety_card;
pub mod scale_panel;
pub mod segmented;
pub mod service_card;
pub mod settings_card;
pub mod status_line;
pub mod steps_card;
pub mod validation_card;
