//! The canary's traffic share: a validated newtype, so an out-of-range share
//! cannot exist anywhere in the program.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Basis points in 100 %: the share's resolution is 0.01 %.
const FULL: u16 = 10_000;

/// A share of traffic between 0 % and 100 % with a resolution of 0.01 %.
///
/// Stored as basis points (`0..=10_000`). On the wire it is a JSON number of
/// percent with at most two decimals (`25`, `12.5`, `0.01`); anything else is
/// refused while deserializing.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "f64", into = "f64")]
pub struct CanaryShare(u16);

/// Why a number is not a valid share.
#[derive(Clone, Debug, PartialEq)]
pub enum ShareError {
    /// NaN or infinite.
    NotANumber,
    /// Below 0 % or above 100 %.
    OutOfRange(f64),
    /// Finer than 0.01 %.
    TooPrecise(f64),
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShareError::NotANumber => write!(f, "a share must be a finite number of percent"),
            ShareError::OutOfRange(value) => {
                write!(f, "a share must be between 0 and 100 percent, got {value}")
            }
            ShareError::TooPrecise(value) => write!(
                f,
                "a share has at most two decimals (0.01 percent steps), got {value}"
            ),
        }
    }
}

impl std::error::Error for ShareError {}

impl CanaryShare {
    /// No traffic.
    pub const ZERO: CanaryShare = CanaryShare(0);
    /// All traffic.
    pub const FULL: CanaryShare = CanaryShare(FULL);

    /// A share from basis points (1/100 of a percent).
    pub fn from_basis_points(basis_points: u16) -> Result<CanaryShare, ShareError> {
        if basis_points > FULL {
            return Err(ShareError::OutOfRange(f64::from(basis_points) / 100.0));
        }
        Ok(CanaryShare(basis_points))
    }

    /// A share from a number of percent with at most two decimals.
    pub fn from_percent(percent: f64) -> Result<CanaryShare, ShareError> {
        if !percent.is_finite() {
            return Err(ShareError::NotANumber);
        }
        if !(0.0..=100.0).contains(&percent) {
            return Err(ShareError::OutOfRange(percent));
        }
        let scaled = percent * 100.0;
        let rounded = scaled.round();
        // Decimal fractions such as 12.34 are not exact in binary; allow the
        // representation error but nothing that is a real third decimal.
        if (scaled - rounded).abs() > 1e-6 {
            return Err(ShareError::TooPrecise(percent));
        }
        // In range by the check above, so the cast cannot truncate.
        Ok(CanaryShare(rounded as u16))
    }

    /// The share in basis points, `0..=10_000`.
    pub fn basis_points(self) -> u16 {
        self.0
    }

    /// The share in percent.
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// The rest of the traffic: `100 % - self`.
    pub fn complement(self) -> CanaryShare {
        CanaryShare(FULL - self.0)
    }

    /// The share as a fraction in `0.0..=1.0`.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / f64::from(FULL)
    }
}

impl TryFrom<f64> for CanaryShare {
    type Error = ShareError;

    fn try_from(percent: f64) -> Result<Self, Self::Error> {
        CanaryShare::from_percent(percent)
    }
}

impl From<CanaryShare> for f64 {
    fn from(share: CanaryShare) -> f64 {
        share.percent()
    }
}

/// Shows `25 %`, `12.5 %` or `0.01 %`: no trailing zeros.
impl fmt::Display for CanaryShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        let hundredths = self.0 % 100;
        match (hundredths, hundredths % 10) {
            (0, _) => write!(f, "{whole} %"),
            (_, 0) => write!(f, "{whole}.{} %", hundredths / 10),
            _ => write!(f, "{whole}.{hundredths:02} %"),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::share::{CanaryShare, ShareError};

    #[test]
    fn accepts_whole_and_two_decimal_percentages() {
        assert_eq!(CanaryShare::from_percent(0.0).unwrap().basis_points(), 0);
        assert_eq!(CanaryShare::from_percent(5.0).unwrap().basis_points(), 500);
        assert_eq!(
            CanaryShare::from_percent(12.34).unwrap().basis_points(),
            1234
        );
        assert_eq!(CanaryShare::from_percent(0.01).unwrap().basis_points(), 1);
        assert_eq!(CanaryShare::from_percent(100.0).unwrap(), CanaryShare::FULL);
    }

    #[test]
    fn refuses_what_is_not_a_share() {
        assert_eq!(
            CanaryShare::from_percent(-1.0),
            Err(ShareError::OutOfRange(-1.0))
        );
        assert_eq!(
            CanaryShare::from_percent(101.0),
            Err(ShareError::OutOfRange(101.0))
        );
        assert_eq!(
            CanaryShare::from_percent(50.555),
            Err(ShareError::TooPrecise(50.555))
        );
        assert_eq!(
            CanaryShare::from_percent(f64::NAN),
            Err(ShareError::NotANumber)
        );
        assert!(CanaryShare::from_basis_points(10_001).is_err());
    }

    #[test]
    fn json_refuses_out_of_range_and_wrong_types() {
        assert!(serde_json::from_str::<CanaryShare>("101").is_err());
        assert!(serde_json::from_str::<CanaryShare>("-0.5").is_err());
        assert!(serde_json::from_str::<CanaryShare>("50.555").is_err());
        assert!(serde_json::from_str::<CanaryShare>("\"abc\"").is_err());
        assert!(serde_json::from_str::<CanaryShare>("null").is_err());
        assert_eq!(
            serde_json::from_str::<CanaryShare>("25")
                .unwrap()
                .basis_points(),
            2500
        );
    }

    #[test]
    fn displays_without_trailing_zeros() {
        let shown = |bp| CanaryShare::from_basis_points(bp).unwrap().to_string();
        assert_eq!(shown(2500), "25 %");
        assert_eq!(shown(1250), "12.5 %");
        assert_eq!(shown(1), "0.01 %");
        assert_eq!(shown(10_000), "100 %");
    }

    proptest! {
        #[test]
        fn every_share_round_trips_through_json(bp in 0u16..=10_000) {
            let share = CanaryShare::from_basis_points(bp).unwrap();
            let json = serde_json::to_string(&share).unwrap();
            prop_assert_eq!(serde_json::from_str::<CanaryShare>(&json).unwrap(), share);
            prop_assert_eq!(share.basis_points() + share.complement().basis_points(), 10_000);
        }

        #[test]
        fn no_number_outside_the_range_is_accepted(percent in prop::num::f64::ANY) {
            if let Ok(share) = CanaryShare::from_percent(percent) {
                prop_assert!(share.basis_points() <= 10_000);
                prop_assert!((0.0..=100.0).contains(&percent));
            }
        }
    }
}
