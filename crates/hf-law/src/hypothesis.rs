//! The law as a hypothesis that data can reject, not only a curve with a high R².
//!
//! - **Interval for α**: a moving-block bootstrap over the region-2 points in saliency order
//!   (block length ⌈√n⌉). Points along one pruning trajectory have strongly autocorrelated
//!   residuals, so plain OLS standard errors, or resampling single points, would understate the
//!   uncertainty. Neighbours are resampled together instead. Percentile interval, fixed seed.
//! - **Held-out test**: fit on the upper half of region 2 (the denser points) and predict the
//!   lower half. The error is reported as RMSE of ln density. A constant exponent (the power
//!   law) is compared against a curving one (the variable exponent: a quadratic in log–log space)
//!   fitted on the same points. If the quadratic predicts the held-out points better, the data
//!   say the exponent drifts, and a single α does not describe them.
//! - **Sensitivity to the region**: α when region 2's bounds are halved or doubled.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::fit::{fit_loglog, fit_variable_exponent, MIN_FIT_POINTS};
use crate::LawPoint;

/// Held-out prediction errors (RMSE of ln density) of the two laws.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Holdout {
    /// Points fitted (the denser half of region 2).
    pub n_fit: usize,
    /// Points predicted (the sparser half).
    pub n_test: usize,
    /// The power law (constant exponent).
    pub power: f64,
    /// The variable exponent (quadratic in log–log), when it could be fitted.
    pub varexp: Option<f64>,
}

impl Holdout {
    /// Whether the constant exponent predicts the held-out points at least as well as the
    /// curving one (`None` when the quadratic could not be fitted).
    pub fn power_law_holds(&self) -> Option<bool> {
        self.varexp.map(|v| self.power <= v)
    }
}

/// The tests of one set of law points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LawTest {
    /// 95% interval of α (moving-block bootstrap), when enough resamples could be fitted.
    pub alpha_ci95: Option<(f64, f64)>,
    /// Bootstrap resamples drawn.
    pub bootstrap: usize,
    /// Block length of the bootstrap.
    pub block: usize,
    /// Held-out prediction errors, when region 2 has enough points (≥ 6).
    pub holdout: Option<Holdout>,
    /// α for region bounds (lo, hi) around the given ones; `None` where no fit was possible.
    pub alpha_by_region: Vec<((f64, f64), Option<f64>)>,
}

/// Region-2 points as `(γ, s)` with both positive, in increasing saliency.
fn region_points(points: &[LawPoint], (lo, hi): (f64, f64)) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.remaining > lo && p.remaining <= hi)
        .filter(|p| p.saliency > 0.0 && p.remaining > 0.0)
        .filter(|p| p.saliency.is_finite() && p.remaining.is_finite())
        .map(|p| (p.saliency, p.remaining))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// The `q`-quantile (0..1) of sorted values, linear interpolation.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos.fract());
    if i + 1 < sorted.len() {
        sorted[i] * (1.0 - f) + sorted[i + 1] * f
    } else {
        sorted[i]
    }
}

/// 95% moving-block-bootstrap interval of α over `xy` (in saliency order), with the block
/// length used. `None` when fewer than 3 points, or fewer than half the resamples could be
/// fitted.
pub fn bootstrap_alpha(
    xy: &[(f64, f64)],
    resamples: usize,
    seed: u64,
) -> (Option<(f64, f64)>, usize) {
    let n = xy.len();
    let block = ((n as f64).sqrt().ceil() as usize).clamp(1, n.max(1));
    if n < MIN_FIT_POINTS || resamples == 0 {
        return (None, block);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut alphas = Vec::with_capacity(resamples);
    let mut sample = Vec::with_capacity(n + block);
    for _ in 0..resamples {
        sample.clear();
        while sample.len() < n {
            let start = rng.gen_range(0..=n - block);
            sample.extend_from_slice(&xy[start..start + block]);
        }
        sample.truncate(n);
        if let Ok(f) = fit_loglog(&sample) {
            alphas.push(f.alpha);
        }
    }
    if alphas.len() * 2 < resamples {
        return (None, block);
    }
    alphas.sort_by(f64::total_cmp);
    (
        Some((quantile(&alphas, 0.025), quantile(&alphas, 0.975))),
        block,
    )
}

/// Fit on the denser half of `xy`, predict the sparser half (needs ≥ 6 points).
pub fn holdout(xy: &[(f64, f64)]) -> Option<Holdout> {
    if xy.len() < 2 * MIN_FIT_POINTS {
        return None;
    }
    let mut by_density = xy.to_vec();
    by_density.sort_by(|a, b| b.1.total_cmp(&a.1));
    let n_fit = by_density.len().div_ceil(2);
    let (fit, test) = by_density.split_at(n_fit);
    let rmse = |pred: &dyn Fn(f64) -> f64| {
        let se: f64 = test
            .iter()
            .map(|&(g, s)| (pred(g).ln() - s.ln()).powi(2))
            .sum();
        (se / test.len() as f64).sqrt()
    };
    let power = fit_loglog(fit).ok()?;
    let pts: Vec<LawPoint> = fit
        .iter()
        .map(|&(g, s)| LawPoint {
            epoch: None,
            saliency: g,
            remaining: s,
            accuracy: None,
            extras: vec![],
        })
        .collect();
    let varexp = fit_variable_exponent(&pts).ok();
    Some(Holdout {
        n_fit,
        n_test: test.len(),
        power: rmse(&|g| power.eval(g)),
        varexp: varexp.map(|v| rmse(&|g| v.eval(g))),
    })
}

/// All tests of `points` with region 2 `region2`; `resamples` bootstrap draws (0: no interval).
pub fn test_law(points: &[LawPoint], region2: (f64, f64), resamples: usize) -> LawTest {
    let xy = region_points(points, region2);
    let (alpha_ci95, block) = bootstrap_alpha(&xy, resamples, 0x1a3_5eed);
    let (lo, hi) = region2;
    let los: Vec<f64> = if lo > 0.0 {
        vec![lo / 2.0, lo, lo * 2.0]
    } else {
        vec![lo]
    };
    let his: Vec<f64> = if hi.is_finite() {
        vec![hi / 2.0, hi, (hi * 2.0).min(100.0)]
    } else {
        vec![hi]
    };
    let mut alpha_by_region = Vec::new();
    for &l in &los {
        for &h in &his {
            if l < h {
                let a = fit_loglog(&region_points(points, (l, h)))
                    .ok()
                    .map(|f| f.alpha);
                alpha_by_region.push(((l, h), a));
            }
        }
    }
    LawTest {
        alpha_ci95,
        bootstrap: resamples,
        block,
        holdout: holdout(&xy),
        alpha_by_region,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(xy: &[(f64, f64)]) -> Vec<LawPoint> {
        xy.iter()
            .map(|&(g, s)| LawPoint {
                epoch: None,
                saliency: g,
                remaining: s,
                accuracy: None,
                extras: vec![],
            })
            .collect()
    }

    /// s = 10·γ^(−α) with multiplicative noise of relative size `noise`.
    fn power(alpha: f64, noise: f64, n: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let g = 0.01 * 1.15f64.powi(i as i32);
                let wiggle = 1.0 + noise * ((i * 7919 % 13) as f64 / 6.0 - 1.0);
                (g, 10.0 * g.powf(-alpha) * wiggle)
            })
            .filter(|&(_, s)| s > 0.5 && s <= 50.0)
            .collect()
    }

    #[test]
    fn interval_covers_the_true_exponent_and_shrinks_with_less_noise() {
        let noisy = test_law(&pts(&power(1.4, 0.2, 60)), (0.5, 50.0), 500);
        let (lo, hi) = noisy.alpha_ci95.unwrap();
        assert!(lo < 1.4 && 1.4 < hi, "[{lo}, {hi}]");
        let clean = test_law(&pts(&power(1.4, 0.02, 60)), (0.5, 50.0), 500);
        let (clo, chi) = clean.alpha_ci95.unwrap();
        assert!(chi - clo < hi - lo, "[{clo}, {chi}] vs [{lo}, {hi}]");
        // deterministic
        assert_eq!(
            clean,
            test_law(&pts(&power(1.4, 0.02, 60)), (0.5, 50.0), 500)
        );
        assert!(clean.block >= 3);
    }

    #[test]
    fn held_out_test_accepts_a_power_law_and_rejects_a_curving_one() {
        let straight = test_law(&pts(&power(1.2, 0.01, 60)), (0.5, 50.0), 0);
        let h = straight.holdout.unwrap();
        assert!(h.power < 0.05, "{h:?}");
        assert!(straight.alpha_ci95.is_none(), "no bootstrap asked");
        // an exponent that grows with saliency: ln s = 2 − ln γ − 0.25 (ln γ)²
        let curved: Vec<(f64, f64)> = (0..60)
            .map(|i| {
                let g = 0.05 * 1.1f64.powi(i);
                let x: f64 = g.ln();
                (g, (2.0 - x - 0.25 * x * x).exp())
            })
            .filter(|&(_, s)| s > 0.5 && s <= 50.0)
            .collect();
        let h = test_law(&pts(&curved), (0.5, 50.0), 0).holdout.unwrap();
        assert_eq!(h.power_law_holds(), Some(false), "{h:?}");
        assert!(h.varexp.unwrap() < h.power / 10.0, "{h:?}");
    }

    #[test]
    fn region_sensitivity_and_too_few_points() {
        let t = test_law(&pts(&power(1.0, 0.05, 60)), (0.5, 50.0), 100);
        assert_eq!(t.alpha_by_region.len(), 9);
        for (_, a) in &t.alpha_by_region {
            assert!((a.unwrap() - 1.0).abs() < 0.2);
        }
        let few = test_law(&pts(&[(1.0, 10.0), (2.0, 5.0)]), (0.5, 50.0), 100);
        assert!(few.alpha_ci95.is_none() && few.holdout.is_none());
    }
}
