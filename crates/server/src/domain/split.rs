//! Choosing a side for a request: a pure function of the canary share and a
//! client's bucket, with the randomness passed in.
//!
//! Every client has a *bucket* in `0..10_000` (one per basis point of share).
//! A client goes to the canary when its bucket is below the canary share, so:
//! - at a share of `s` basis points, a uniformly random bucket lands on the
//!   canary with probability exactly `s / 10_000`;
//! - raising the share keeps every canary client on the canary and moves only
//!   the clients whose buckets the new share newly covers;
//! - lowering it moves exactly the excess (buckets at or above the new share)
//!   back to production.
//!
//! The bucket comes from a cookie, from a hash of a header (sticky), or from a
//! fresh random draw.

use canary_shared::{CanaryShare, Side};

/// One basis point per bucket.
pub const BUCKETS: u16 = 10_000;

/// A client's place on the 0–100 % line, in basis points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket(u16);

impl Bucket {
    /// A bucket from a value in `0..10_000`; larger values are refused.
    pub fn new(value: u16) -> Option<Bucket> {
        (value < BUCKETS).then_some(Bucket(value))
    }

    /// A bucket from a uniform random draw in `0..u32::MAX`.
    pub fn from_draw(draw: u32) -> Bucket {
        // Multiply-shift maps the draw onto 0..10_000 without modulo bias worth
        // speaking of (at most one part in 400,000).
        Bucket(((u64::from(draw) * u64::from(BUCKETS)) >> 32) as u16)
    }

    /// A stable bucket for a sticky key such as a user id: FNV-1a, then
    /// MurmurHash3's 64-bit finaliser so similar keys (`user-1`, `user-2`)
    /// spread evenly. Fixed constants, so the same key maps to the same
    /// bucket on every server and every release.
    pub fn from_key(key: &[u8]) -> Bucket {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in key {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
        hash ^= hash >> 33;
        hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        hash ^= hash >> 33;
        Bucket::from_draw((hash >> 32) as u32)
    }

    /// The value, `0..10_000`.
    pub fn value(self) -> u16 {
        self.0
    }
}

/// A tester's explicit choice of side, from the override header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Override {
    /// `always`: the canary, whatever the share.
    Canary,
    /// `never`: production, whatever the share.
    Production,
}

impl Override {
    /// Reads the override header's value; anything else is ignored.
    pub fn parse(value: &[u8]) -> Option<Override> {
        if value.eq_ignore_ascii_case(b"always") || value.eq_ignore_ascii_case(b"canary") {
            Some(Override::Canary)
        } else if value.eq_ignore_ascii_case(b"never") || value.eq_ignore_ascii_case(b"production")
        {
            Some(Override::Production)
        } else {
            None
        }
    }
}

/// The side for a request.
///
/// An override wins over the share, except that nothing reaches a canary
/// whose share is 0 %: that is where an emergency stop, a rollback and an
/// idle server put it, and "the canary gets no traffic" must hold for
/// every request, a tester's included.
pub fn choose(share: CanaryShare, bucket: Bucket, forced: Option<Override>) -> Side {
    if share == CanaryShare::ZERO {
        return Side::Production;
    }
    match forced {
        Some(Override::Canary) => Side::Canary,
        Some(Override::Production) => Side::Production,
        None if bucket.0 < share.basis_points() => Side::Canary,
        None => Side::Production,
    }
}

#[cfg(test)]
mod tests {
    use canary_shared::{CanaryShare, Side};
    use proptest::prelude::*;

    use crate::domain::split::{Bucket, Override, choose};

    fn share(percent: f64) -> CanaryShare {
        CanaryShare::from_percent(percent).unwrap()
    }

    #[test]
    fn the_extremes_send_everything_one_way() {
        for value in [0, 1, 5_000, 9_999] {
            let bucket = Bucket::new(value).unwrap();
            assert_eq!(choose(CanaryShare::ZERO, bucket, None), Side::Production);
            assert_eq!(choose(CanaryShare::FULL, bucket, None), Side::Canary);
        }
    }

    #[test]
    fn the_share_is_exact_over_all_buckets() {
        for percent in [0.01, 5.0, 25.0, 50.0, 99.99] {
            let on_canary = (0..10_000)
                .filter(|&value| {
                    choose(share(percent), Bucket::new(value).unwrap(), None) == Side::Canary
                })
                .count();
            assert_eq!(on_canary as f64, percent * 100.0, "{percent} %");
        }
    }

    #[test]
    fn the_override_wins_over_the_share_but_never_reaches_a_canary_at_zero() {
        let bucket = Bucket::new(9_999).unwrap();
        assert_eq!(
            choose(share(0.01), bucket, Override::parse(b"always")),
            Side::Canary
        );
        assert_eq!(
            choose(CanaryShare::ZERO, bucket, Override::parse(b"always")),
            Side::Production,
            "0 % means no request reaches the canary, forced or not"
        );
        assert_eq!(
            choose(CanaryShare::FULL, bucket, Override::parse(b"NEVER")),
            Side::Production
        );
        assert_eq!(Override::parse(b"maybe"), None);
    }

    const PINNED_USER_42: u16 = 6389;

    #[test]
    fn buckets_are_in_range_and_keys_are_stable() {
        assert_eq!(Bucket::from_draw(0).value(), 0);
        assert_eq!(Bucket::from_draw(u32::MAX).value(), 9_999);
        assert_eq!(Bucket::new(10_000), None);
        assert_eq!(Bucket::from_key(b"user-42"), Bucket::from_key(b"user-42"));
        // Pinned so a change of hash (which would move every sticky user) is deliberate.
        assert_eq!(Bucket::from_key(b"user-42").value(), PINNED_USER_42);
        let mut tenths = [0u32; 10];
        for n in 0..10_000 {
            tenths[usize::from(Bucket::from_key(format!("user-{n}").as_bytes()).value() / 1000)] +=
                1;
        }
        // 1,000 expected per tenth; 3.29 standard deviations is about ±99.
        assert!(
            tenths.iter().all(|&count| (900..=1100).contains(&count)),
            "uneven spread: {tenths:?}"
        );
    }

    proptest! {
        #[test]
        fn raising_the_share_never_moves_a_canary_client_back(value in 0u16..10_000, low in 0u16..=10_000, high in 0u16..=10_000) {
            let (low, high) = (low.min(high), low.max(high));
            let bucket = Bucket::new(value).unwrap();
            let before = choose(CanaryShare::from_basis_points(low).unwrap(), bucket, None);
            let after = choose(CanaryShare::from_basis_points(high).unwrap(), bucket, None);
            prop_assert!(!(before == Side::Canary && after == Side::Production));
        }

        #[test]
        fn lowering_the_share_never_moves_a_production_client_to_the_canary(value in 0u16..10_000, low in 0u16..=10_000, high in 0u16..=10_000) {
            let (low, high) = (low.min(high), low.max(high));
            let bucket = Bucket::new(value).unwrap();
            let before = choose(CanaryShare::from_basis_points(high).unwrap(), bucket, None);
            let after = choose(CanaryShare::from_basis_points(low).unwrap(), bucket, None);
            prop_assert!(!(before == Side::Production && after == Side::Canary));
        }
    }
}
