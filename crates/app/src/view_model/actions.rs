//! The operator's controls: whether each may be used now and why not, and
//! the share a slider or a typed number stands for.

use canary_shared::{ActionKind, CanaryShare, CanaryState, Role};

/// A button's state: enabled, or disabled with the server's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionView {
    /// Whether the control may be used.
    pub enabled: bool,
    /// Why not, when it may not.
    pub reason: Option<String>,
}

/// How the control for `action` looks, from the signed-in role and what the
/// server allows now.
pub fn action_view(state: Option<&CanaryState>, action: ActionKind, role: Role) -> ActionView {
    if !role.allows(Role::Operator) {
        return ActionView {
            enabled: false,
            reason: Some(format!(
                "signed in as a {role}: you can watch; operators and admins act"
            )),
        };
    }
    match state {
        None => ActionView {
            enabled: false,
            reason: Some("waiting for the server".to_owned()),
        },
        Some(state) if state.allows(action) => ActionView {
            enabled: true,
            reason: None,
        },
        Some(state) => ActionView {
            enabled: false,
            reason: Some(
                state
                    .blocked_reason(action)
                    .unwrap_or("not possible now")
                    .to_owned(),
            ),
        },
    }
}

/// A share from a slider or a typed number: clamped to 0–100 % and rounded
/// to the 0.01 % resolution, so whatever the control holds is a valid share.
pub fn clamp_share(percent: f64) -> CanaryShare {
    let percent = if percent.is_finite() {
        percent.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let basis_points = (percent * 100.0).round() as u16;
    CanaryShare::from_basis_points(basis_points).unwrap_or(CanaryShare::ZERO)
}

/// The confirmation that states a move of the share.
pub fn share_move_question(from: CanaryShare, to: CanaryShare) -> String {
    format!("Move canary from {from} to {to}?")
}
