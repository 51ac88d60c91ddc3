//! The statistics behind the dashboard: percentiles, a confidence interval
//! for a rate, and the two-proportion test that compares variants.

use app::wire::RateCi;

/// The `p`-th percentile (0–100) by linear interpolation between closest
/// ranks (the same definition as numpy's default). `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    match sorted.len() {
        0 => None,
        1 => Some(sorted[0]),
        n => {
            let rank = (p.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
            let low = rank.floor() as usize;
            let high = rank.ceil() as usize;
            let weight = rank - low as f64;
            Some(sorted[low] + (sorted[high] - sorted[low]) * weight)
        }
    }
}

/// A rate and its 95% Wilson score interval (good for small counts and rates
/// near 0 or 1, unlike the normal approximation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proportion {
    pub successes: u64,
    pub trials: u64,
    pub rate: f64,
    pub low: f64,
    pub high: f64,
}

const Z95: f64 = 1.959_963_984_540_054;

pub fn wilson(successes: u64, trials: u64) -> Option<Proportion> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let margin = Z95 * ((p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt()) / (1.0 + z2 / n);
    Some(Proportion {
        successes,
        trials,
        rate: p,
        low: (centre - margin).max(0.0),
        high: (centre + margin).min(1.0),
    })
}

/// A rate and its interval as the dashboard's pages get them.
pub fn rate_ci(p: Option<Proportion>) -> Option<RateCi> {
    p.map(|p| RateCi {
        successes: p.successes,
        trials: p.trials,
        rate: p.rate,
        low: p.low,
        high: p.high,
    })
}

/// Two-sided p-value of the pooled two-proportion z-test: is the rate of
/// `a` different from the rate of `b`? `None` when a group is empty or the
/// pooled rate is 0 or 1 (no variance to test).
pub fn two_proportion_p_value(a: (u64, u64), b: (u64, u64)) -> Option<f64> {
    let ((sa, na), (sb, nb)) = (a, b);
    if na == 0 || nb == 0 {
        return None;
    }
    let (na, nb) = (na as f64, nb as f64);
    let pooled = (sa + sb) as f64 / (na + nb);
    let variance = pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb);
    if variance <= 0.0 {
        return None;
    }
    let z = (sa as f64 / na - sb as f64 / nb) / variance.sqrt();
    Some((2.0 * (1.0 - standard_normal_cdf(z.abs()))).clamp(0.0, 1.0))
}

/// Φ(x) through erf (Abramowitz–Stegun 7.1.26, error < 1.5e-7).
pub fn standard_normal_cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

fn erf(x: f64) -> f64 {
    let sign = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.5));
        assert!(close(percentile(&v, 90.0).unwrap(), 9.1, 1e-12));
        assert!(close(percentile(&v, 99.0).unwrap(), 9.91, 1e-12));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(10.0));
        assert_eq!(percentile(&[7.0], 90.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn wilson_interval_matches_reference_values() {
        // 8 of 10: Wilson 95% interval (0.490, 0.943), from R's prop.test(correct = FALSE).
        let p = wilson(8, 10).unwrap();
        assert!(close(p.rate, 0.8, 1e-12));
        assert!(close(p.low, 0.4902, 1e-3), "{}", p.low);
        assert!(close(p.high, 0.9433, 1e-3), "{}", p.high);
        // All successes still leaves room below 1.
        let all = wilson(5, 5).unwrap();
        assert!(all.low < 1.0 && close(all.high, 1.0, 1e-12));
        assert!(wilson(0, 0).is_none());
    }

    #[test]
    fn two_proportion_test_matches_reference_values() {
        // 45/100 vs 60/100: z = -2.1234, p = 0.0337 (R: prop.test(correct = FALSE)).
        let p = two_proportion_p_value((45, 100), (60, 100)).unwrap();
        assert!(close(p, 0.0337, 5e-4), "{p}");
        // Equal rates: p = 1.
        assert!(close(
            two_proportion_p_value((30, 100), (30, 100)).unwrap(),
            1.0,
            1e-6
        ));
        assert!(two_proportion_p_value((0, 10), (0, 10)).is_none());
        assert!(two_proportion_p_value((1, 0), (1, 10)).is_none());
    }

    #[test]
    fn normal_cdf_is_accurate() {
        assert!(close(standard_normal_cdf(0.0), 0.5, 1e-7));
        assert!(close(standard_normal_cdf(1.959_964), 0.975, 1e-6));
        assert!(close(standard_normal_cdf(-1.0), 0.158_655_3, 1e-6));
    }
}
