//! Whole numbers on the wire as JSON Schema counts them: `4357` and
//! `4357.0` are the same integer. The OpenAPI document types such fields
//! `integer`, so a client (or a generator) that writes `4357.0` is right,
//! and serde's plain `u64` would refuse it.

use serde::Deserializer;
use serde::de::{Error, Visitor};

/// Deserializes a non-negative whole number, written with or without a
/// fraction of zero; for `#[serde(deserialize_with = "…")]`.
pub fn whole_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(WholeU64)
}

struct WholeU64;

impl Visitor<'_> for WholeU64 {
    type Value = u64;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a whole number from 0")
    }

    fn visit_u64<E: Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::custom(format!("must be 0 or more, got {value}")))
    }

    fn visit_f64<E: Error>(self, value: f64) -> Result<u64, E> {
        // 2^64 is the first f64 above u64::MAX; every whole f64 below it fits.
        const TWO_TO_THE_64: f64 = 18_446_744_073_709_551_616.0;
        if value.fract() == 0.0 && (0.0..TWO_TO_THE_64).contains(&value) {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(value as u64)
        } else {
            Err(E::custom(format!(
                "must be a whole number from 0, got {value}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::whole_u64;

    fn parse(json: &str) -> Result<u64, String> {
        whole_u64(&mut serde_json::Deserializer::from_str(json)).map_err(|err| err.to_string())
    }

    #[test]
    fn whole_numbers_pass_with_or_without_a_zero_fraction_and_nothing_else_does() {
        assert_eq!(parse("4357"), Ok(4357));
        assert_eq!(parse("4357.0"), Ok(4357));
        assert_eq!(parse("4.357e3"), Ok(4357));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("18446744073709551615"), Ok(u64::MAX));
        for refused in ["4357.5", "-1", "-1.0", "1e20", "\"12\"", "null", "NaN"] {
            assert!(parse(refused).is_err(), "{refused} was taken");
        }
    }
}
