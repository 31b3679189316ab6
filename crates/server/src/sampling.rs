//! Random draws for synthetic traffic: the demo's services, the judge's
//! simulation benchmark and its tests.

/// A standard normal draw from two uniform draws in `[0, 1)` (Box–Muller).
/// Latencies are log-normal: `median * (sigma * standard_normal(..)).exp()`.
pub fn standard_normal(mut uniform: impl FnMut() -> f64) -> f64 {
    // ln(0) is -inf: the smallest positive value stands in for a zero draw.
    let radius = (-2.0 * uniform().max(f64::MIN_POSITIVE).ln()).sqrt();
    radius * (2.0 * std::f64::consts::PI * uniform()).cos()
}

#[cfg(test)]
mod tests {
    use super::standard_normal;

    #[test]
    fn draws_have_the_mean_and_spread_of_a_standard_normal() {
        let mut rng = fastrand::Rng::with_seed(1);
        let draws: Vec<f64> = (0..100_000)
            .map(|_| standard_normal(|| rng.f64()))
            .collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let variance = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((variance - 1.0).abs() < 0.02, "variance {variance}");
        let within_one = draws.iter().filter(|x| x.abs() < 1.0).count() as f64 / draws.len() as f64;
        assert!(
            (within_one - 0.6827).abs() < 0.01,
            "{within_one} within one sd"
        );
    }
}
