//! Push alerts as the console shows them: each kind of event in words, one
//! line per device, and the card's body as escaped markup (its buttons and
//! boxes carry `data-act`, `data-id` and `data-event`, read by one handler:
//! far less WASM than a tree of views).

use canary_shared::UnixMillis;
use canary_shared::audit::NotifyEvent;
use canary_shared::push::PushDevice;
use canary_shared::words::duration;

use crate::view_model::escape;

/// The events a device can be told about, most urgent first, with their words.
pub const PUSH_EVENTS: [(NotifyEvent, &str); 5] = [
    (NotifyEvent::Breach, "Safety breaches"),
    (NotifyEvent::RolledBack, "Rollbacks"),
    (NotifyEvent::Promoted, "Promotions"),
    (NotifyEvent::StepChanged, "Step changes"),
    (NotifyEvent::Started, "Starts"),
];

/// `Chrome on Android · breaches, rollbacks · last alert 3 min ago`, with
/// the owner when it is not `me`, and the push service's refusal if the
/// last alert was refused.
pub fn device_line(device: &PushDevice, me: &str, now: UnixMillis) -> String {
    let mut parts = vec![device.label.clone()];
    if device.user != me {
        parts.push(device.user.clone());
    }
    let events: Vec<String> = PUSH_EVENTS
        .iter()
        .filter(|(event, _)| device.events.contains(event))
        .map(|(_, words)| words.to_lowercase())
        .collect();
    parts.push(events.join(", "));
    parts.push(match (&device.last_error, device.last_delivered_at) {
        (Some(error), _) => format!("last alert failed: {error}"),
        (None, Some(at)) => format!("last alert {} ago", duration(now.0.saturating_sub(at.0))),
        (None, None) => "no alert yet".to_owned(),
    });
    parts.join(" · ")
}

/// What the card shows.
#[derive(Clone, Debug, PartialEq)]
pub struct PushPanel<'a> {
    /// Why this browser cannot get push alerts here, if it cannot.
    pub unsupported: Option<&'a str>,
    /// The server's answer, once read.
    pub devices: Option<&'a [PushDevice]>,
    /// Whether the server sends push alerts at all.
    pub enabled: bool,
    /// This browser's device, when subscribed.
    pub mine: Option<u64>,
    /// The events ticked for this device.
    pub chosen: &'a [NotifyEvent],
    /// A request is under way: every control waits.
    pub busy: bool,
    /// Who is signed in.
    pub me: &'a str,
    /// Now, for "last alert 3 min ago".
    pub now: UnixMillis,
}

/// The card's body as markup.
pub fn push_markup(panel: &PushPanel<'_>) -> String {
    let mut html = String::new();
    let disabled = if panel.busy { " disabled" } else { "" };
    // Nothing to press before the server's key is known.
    let Some(devices) = panel.devices else {
        return "<p class=\"card__note\">Loading…</p>".to_owned();
    };
    if !panel.enabled {
        html.push_str("<p class=\"notice\">Push alerts are off on this server (push.enabled).</p>");
    } else if let Some(why) = panel.unsupported {
        html.push_str(&format!(
            "<p class=\"notice\" data-testid=\"push-unsupported\">{}</p>",
            escape(why)
        ));
    } else {
        let subscribed = panel.mine.is_some();
        html.push_str(&format!(
            "<fieldset class=\"push__events\"{disabled}><legend>{}</legend>",
            if subscribed {
                "This device gets alerts for"
            } else {
                "Alert this device about"
            }
        ));
        for (event, words) in PUSH_EVENTS {
            let checked = if panel.chosen.contains(&event) {
                " checked"
            } else {
                ""
            };
            html.push_str(&format!(
                "<label class=\"push__event\"><input type=\"checkbox\" data-event=\"{}\"{checked}> {words}</label>",
                event.as_str()
            ));
        }
        let save_disabled = if panel.busy || panel.chosen.is_empty() {
            " disabled"
        } else {
            ""
        };
        html.push_str(&format!(
            "</fieldset><div class=\"push__actions\"><button type=\"button\" class=\"button button--primary\" data-act=\"save\" data-testid=\"push-save\"{save_disabled}>{}</button>",
            if subscribed { "Save" } else { "Alert this device" }
        ));
        if let Some(id) = panel.mine {
            html.push_str(&format!(
                "<button type=\"button\" class=\"button\" data-act=\"test\" data-id=\"{id}\" data-testid=\"push-test\"{disabled}>Send a test alert</button>"
            ));
        }
        html.push_str("</div>");
    }
    html.push_str("<h3 class=\"push__heading\">Devices that get alerts</h3>");
    if devices.is_empty() {
        html.push_str("<p class=\"card__note\">None yet.</p>");
    }
    html.push_str("<ul class=\"push__devices\">");
    for device in devices {
        let this = if panel.mine == Some(device.id) {
            " (this device)"
        } else {
            ""
        };
        html.push_str(&format!(
            "<li class=\"push__device\" data-testid=\"push-device\"><span>{}{this}</span><button type=\"button\" class=\"button button--quiet\" data-act=\"remove\" data-id=\"{}\"{disabled}>Remove</button></li>",
            escape(&device_line(device, panel.me, panel.now)),
            device.id
        ));
    }
    html.push_str("</ul>");
    html
}

#[cfg(test)]
mod tests {
    use canary_shared::UnixMillis;
    use canary_shared::audit::NotifyEvent;
    use canary_shared::push::PushDevice;

    use super::{PushPanel, device_line, push_markup};

    fn device(user: &str) -> PushDevice {
        PushDevice {
            id: 1,
            user: user.to_owned(),
            label: "Chrome on Android".to_owned(),
            service: "fcm.googleapis.com".to_owned(),
            events: vec![NotifyEvent::RolledBack, NotifyEvent::Breach],
            created_at: UnixMillis(0),
            last_delivered_at: Some(UnixMillis(1_000)),
            last_error: None,
        }
    }

    #[test]
    fn a_device_says_what_it_gets_and_how_the_last_alert_went() {
        assert_eq!(
            device_line(&device("ada"), "ada", UnixMillis(181_000)),
            "Chrome on Android · safety breaches, rollbacks · last alert 3 min ago"
        );
        let mut refused = device("bob");
        refused.last_error = Some("the push service answered 403".to_owned());
        assert_eq!(
            device_line(&refused, "ada", UnixMillis(181_000)),
            "Chrome on Android · bob · safety breaches, rollbacks · last alert failed: the push service answered 403"
        );
    }

    #[test]
    fn the_card_offers_a_subscription_then_a_test_and_escapes_what_the_server_sent() {
        let mut evil = device("<b>eve</b>");
        evil.id = 9;
        let devices = [device("ada"), evil];
        let chosen = [NotifyEvent::Breach];
        let mut panel = PushPanel {
            devices: Some(&devices),
            enabled: true,
            chosen: &chosen,
            me: "ada",
            now: UnixMillis(181_000),
            unsupported: None,
            mine: None,
            busy: false,
        };
        let fresh = push_markup(&panel);
        assert!(fresh.contains("Alert this device</button>"), "{fresh}");
        assert!(fresh.contains("data-event=\"breach\" checked"), "{fresh}");
        assert!(fresh.contains("data-event=\"rolled_back\">"), "{fresh}");
        assert!(
            !fresh.contains("data-act=\"test\""),
            "no test before a subscription"
        );
        assert!(
            fresh.contains("&lt;b&gt;eve&lt;/b&gt;") && !fresh.contains("<b>"),
            "{fresh}"
        );
        panel.mine = Some(1);
        let subscribed = push_markup(&panel);
        assert!(subscribed.contains("Save</button>"), "{subscribed}");
        assert!(
            subscribed.contains("data-act=\"test\" data-id=\"1\""),
            "{subscribed}"
        );
        assert!(
            subscribed.contains("rollbacks · last alert 3 min ago (this device)"),
            "{subscribed}"
        );
        panel.chosen = &[];
        assert!(
            push_markup(&panel).contains("data-act=\"save\" data-testid=\"push-save\" disabled")
        );
        assert!(
            !push_markup(&PushPanel {
                devices: None,
                ..panel.clone()
            })
            .contains("data-act"),
            "nothing to press before the server's key is read"
        );
        panel.unsupported = Some("Push alerts need HTTPS");
        let unsupported = push_markup(&panel);
        assert!(
            unsupported.contains("Push alerts need HTTPS")
                && !unsupported.contains("data-act=\"save\"")
        );
    }
}
