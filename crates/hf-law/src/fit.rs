//! Least-squares fits of the Neural Pruning Law in log–log space.
//!
//! With density `s` (percent remaining) and saliency `γ`:
//! - power law `ln s = ln c − α ln γ`, fitted on region-2 points (`lo < s <= hi`);
//! - variable exponent `ln s = ln c − a0 ln γ − a1 (ln γ)²`, fitted on all points with `γ, s > 0`.
//!
//! Both are ordinary least squares on `x = ln γ`, `y = ln s`, computed on centred (and, for the
//! quadratic, scaled) `x` for numerical stability and converted back. R² is in log space.

use serde::Serialize;

use crate::{LawError, LawPoint};

/// `s = c · γ^(−α)`, fitted by OLS of `ln s` on `ln γ`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerFit {
    /// Prefactor `c` (density at γ = 1).
    pub c: f64,
    /// Exponent α (positive when density falls as saliency rises).
    pub alpha: f64,
    /// Coefficient of determination in log space (1 if the data are exactly on the line).
    pub r2: f64,
    /// Points used.
    pub n: usize,
}

impl PowerFit {
    /// The fitted density at saliency `g`.
    pub fn eval(&self, g: f64) -> f64 {
        self.c * g.powf(-self.alpha)
    }
}

/// `ln s = ln c − a0 ln γ − a1 (ln γ)²`, fitted by OLS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VarExpFit {
    /// Prefactor `c`.
    pub c: f64,
    /// Linear exponent term a0 (α0 in the paper).
    pub a0: f64,
    /// Quadratic exponent term a1 (α1 in the paper).
    pub a1: f64,
    /// Coefficient of determination in log space.
    pub r2: f64,
    /// Points used.
    pub n: usize,
}

impl VarExpFit {
    /// The fitted density at saliency `g`.
    pub fn eval(&self, g: f64) -> f64 {
        let x = g.ln();
        (self.c.ln() - self.a0 * x - self.a1 * x * x).exp()
    }
}

/// The default region 2 of the law: `0.5 < s <= 50` (density in percent).
pub const DEFAULT_REGION2: (f64, f64) = (0.5, 50.0);

/// Minimum points for any fit.
pub const MIN_FIT_POINTS: usize = 3;

/// Checks a region `(lo, hi)`: `0 <= lo < hi`, no NaN (`hi` may be `+inf`).
pub fn check_region(region: (f64, f64)) -> Result<(f64, f64), LawError> {
    let (lo, hi) = region;
    let bad = |msg: &str| LawError::BadRegion {
        input: format!("{lo}:{hi}"),
        msg: msg.to_string(),
    };
    if lo.is_nan() || hi.is_nan() {
        return Err(bad("bounds must be numbers"));
    }
    if !lo.is_finite() || lo < 0.0 {
        return Err(bad("LO must be a finite number >= 0"));
    }
    if hi <= lo {
        return Err(bad("HI must be greater than LO"));
    }
    Ok((lo, hi))
}

/// Parses a region `"LO:HI"` (density percent), e.g. `"0.5:50"`.
pub fn parse_region(s: &str) -> Result<(f64, f64), LawError> {
    let bad = |msg: String| LawError::BadRegion {
        input: s.to_string(),
        msg,
    };
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| bad("no ':' between the bounds".to_string()))?;
    let num = |t: &str, which: &str| -> Result<f64, LawError> {
        let t = t.trim();
        if t.is_empty() {
            return Err(bad(format!("{which} is empty")));
        }
        t.parse::<f64>()
            .ok()
            .filter(|v| !v.is_nan())
            .ok_or_else(|| bad(format!("{which} {t:?} is not a number")))
    };
    let region = (num(a, "LO")?, num(b, "HI")?);
    check_region(region).map_err(|e| match e {
        LawError::BadRegion { msg, .. } => bad(msg),
        other => other,
    })
}

fn log_pairs(xy: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    xy.filter(|&(x, y)| x.is_finite() && y.is_finite() && x > 0.0 && y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect()
}

fn r_squared(ys: &[f64], pred: impl Iterator<Item = f64>) -> f64 {
    let n = ys.len() as f64;
    let my = ys.iter().sum::<f64>() / n;
    let sst: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    let sse: f64 = ys.iter().zip(pred).map(|(y, p)| (y - p).powi(2)).sum();
    if sst > 0.0 {
        1.0 - sse / sst
    } else if sse <= 1e-24 * n {
        1.0
    } else {
        0.0
    }
}

/// Number of distinct x values, treating values within `1e-9` relative of each other as equal.
fn distinct(xs: &[f64]) -> usize {
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mut n = 0;
    let mut last: Option<f64> = None;
    for x in v {
        match last {
            Some(l) if (x - l).abs() <= 1e-9 * l.abs().max(x.abs()).max(1.0) => {}
            _ => {
                n += 1;
                last = Some(x);
            }
        }
    }
    n
}

/// OLS of `y` on `x` in log space; `what` names the fit in errors.
fn fit_line(lxy: &[(f64, f64)], what: &str, hint: &str) -> Result<PowerFit, LawError> {
    let n = lxy.len();
    if n < MIN_FIT_POINTS {
        return Err(LawError::FitTooFew {
            what: what.to_string(),
            n,
            need: MIN_FIT_POINTS,
            hint: hint.to_string(),
        });
    }
    let xs: Vec<f64> = lxy.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = lxy.iter().map(|p| p.1).collect();
    if distinct(&xs) < 2 {
        return Err(LawError::Degenerate {
            what: what.to_string(),
            msg: "all points have the same saliency, so no slope can be fitted; measure at more than one saliency".to_string(),
        });
    }
    let nf = n as f64;
    let mx = xs.iter().sum::<f64>() / nf;
    let my = ys.iter().sum::<f64>() / nf;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let r2 = r_squared(&ys, xs.iter().map(|x| intercept + slope * x));
    let c = intercept.exp();
    if !(c.is_finite() && slope.is_finite() && r2.is_finite()) {
        return Err(LawError::Degenerate {
            what: what.to_string(),
            msg: "the fit overflowed (values too extreme); check the data's units".to_string(),
        });
    }
    Ok(PowerFit {
        c,
        alpha: -slope,
        r2,
        n,
    })
}

/// Generic power-law fit `y = c · x^(−α)` by OLS of `ln y` on `ln x`, over all pairs with
/// finite `x, y > 0` (others are ignored). Used for the law and e.g. for final density against
/// pressure. Needs at least 3 such pairs with at least 2 distinct `x`.
pub fn fit_loglog(xy: &[(f64, f64)]) -> Result<PowerFit, LawError> {
    let lxy = log_pairs(xy.iter().copied());
    fit_line(
        &lxy,
        "log-log fit",
        "supply more points with x > 0 and y > 0",
    )
}

/// Power-law fit `s = c · γ^(−α)` on the region-2 points `lo < remaining <= hi`.
pub fn fit_power_law(points: &[LawPoint], region2: (f64, f64)) -> Result<PowerFit, LawError> {
    let (lo, hi) = check_region(region2)?;
    let what = format!("power-law fit on region 2 ({lo} < s <= {hi})");
    let lxy = log_pairs(
        points
            .iter()
            .filter(|p| p.remaining > lo && p.remaining <= hi)
            .map(|p| (p.saliency, p.remaining)),
    );
    fit_line(
        &lxy,
        &what,
        "measure more points with density in that range or widen the region",
    )
}

/// Variable-exponent fit `ln s = ln c − a0 ln γ − a1 (ln γ)²` on all points with finite
/// `γ, s > 0`. Needs at least 3 such points with at least 3 distinct saliencies.
pub fn fit_variable_exponent(points: &[LawPoint]) -> Result<VarExpFit, LawError> {
    let what = "variable-exponent fit";
    let lxy = log_pairs(points.iter().map(|p| (p.saliency, p.remaining)));
    let n = lxy.len();
    if n < MIN_FIT_POINTS {
        return Err(LawError::FitTooFew {
            what: what.to_string(),
            n,
            need: MIN_FIT_POINTS,
            hint: "supply more points with saliency > 0 and density > 0".to_string(),
        });
    }
    let xs: Vec<f64> = lxy.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = lxy.iter().map(|p| p.1).collect();
    if distinct(&xs) < 3 {
        return Err(LawError::Degenerate {
            what: what.to_string(),
            msg: "fewer than 3 distinct saliencies, so a quadratic is not determined; measure at more saliencies".to_string(),
        });
    }
    let nf = n as f64;
    let mx = xs.iter().sum::<f64>() / nf;
    let sd = (xs.iter().map(|x| (x - mx).powi(2)).sum::<f64>() / nf).sqrt();
    // Standardised abscissa v = (x − mean) / sd: the normal equations are well conditioned.
    let vs: Vec<f64> = xs.iter().map(|x| (x - mx) / sd).collect();
    let mut a = [[0.0f64; 4]; 3];
    for (&v, &y) in vs.iter().zip(&ys) {
        let basis = [1.0, v, v * v];
        for i in 0..3 {
            for j in 0..3 {
                a[i][j] += basis[i] * basis[j];
            }
            a[i][3] += basis[i] * y;
        }
    }
    let q = solve3(a).ok_or_else(|| LawError::Degenerate {
        what: what.to_string(),
        msg: "the quadratic normal equations are singular; measure at more distinct saliencies"
            .to_string(),
    })?;
    let r2 = r_squared(&ys, vs.iter().map(|v| q[0] + q[1] * v + q[2] * v * v));
    // y = q0 + q1 v + q2 v², v = (x − m)/sd  ⇒  y = b0 + b1 x + b2 x².
    let (p1, p2) = (q[1] / sd, q[2] / (sd * sd));
    let b2 = p2;
    let b1 = p1 - 2.0 * p2 * mx;
    let b0 = q[0] - p1 * mx + p2 * mx * mx;
    let fit = VarExpFit {
        c: b0.exp(),
        a0: -b1,
        a1: -b2,
        r2,
        n,
    };
    if [fit.c, fit.a0, fit.a1, fit.r2]
        .iter()
        .all(|v| v.is_finite())
    {
        Ok(fit)
    } else {
        Err(LawError::Degenerate {
            what: what.to_string(),
            msg: "the fit overflowed (values too extreme); check the data's units".to_string(),
        })
    }
}

/// Solves a 3×3 augmented system by Gaussian elimination with partial pivoting.
fn solve3(mut a: [[f64; 4]; 3]) -> Option<[f64; 3]> {
    let scale = a
        .iter()
        .flat_map(|r| r[..3].iter())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 || !scale.is_finite() {
        return None;
    }
    for col in 0..3 {
        let piv = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, piv);
        let pivot = a[col];
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot[col];
                for (x, p) in row[col..].iter_mut().zip(&pivot[col..]) {
                    *x -= f * p;
                }
            }
        }
    }
    Some([a[0][3] / a[0][0], a[1][3] / a[1][1], a[2][3] / a[2][2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve3_solves_and_rejects_singular() {
        let a = [
            [2.0, 1.0, 0.0, 3.0],
            [1.0, 3.0, 1.0, 5.0],
            [0.0, 1.0, 4.0, 5.0],
        ];
        let x = solve3(a).unwrap();
        for (got, want) in x.iter().zip([1.0, 1.0, 1.0]) {
            assert!((got - want).abs() < 1e-12);
        }
        let s = [
            [1.0, 2.0, 3.0, 1.0],
            [2.0, 4.0, 6.0, 2.0],
            [0.0, 1.0, 1.0, 1.0],
        ];
        assert!(solve3(s).is_none());
    }

    #[test]
    fn distinct_counts_with_tolerance() {
        assert_eq!(distinct(&[1.0, 1.0 + 1e-13, 2.0, 2.0, 3.0]), 3);
        assert_eq!(distinct(&[]), 0);
    }

    #[test]
    fn r_squared_of_constant_data() {
        assert_eq!(r_squared(&[2.0, 2.0], [2.0, 2.0].into_iter()), 1.0);
        assert_eq!(r_squared(&[2.0, 2.0], [1.0, 3.0].into_iter()), 0.0);
    }
}
