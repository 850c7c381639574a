//! Statistics of per-weight quantities over the surviving weights: the flux `φ = −w·∂L/∂ŵ`
//! averaged over an epoch ([`flux_stats`]) and its per-weight root mean square
//! ([`rms_flux_stats`]), as minimum, a low quantile and the median.

use crate::network::{self, Network};
use serde::Serialize;
use tch::Tensor;

/// Statistics of the per-weight flux over the surviving weights (averaged per step over an epoch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FluxStats {
    /// Surviving weights.
    pub survivors: usize,
    /// Smallest flux among survivors.
    pub min: f64,
    /// The requested low quantile among survivors.
    pub quantile: f64,
    /// Median among survivors.
    pub median: f64,
    /// Percentage of survivors whose flux is below the equilibrium `λ/(s·N)`.
    pub below_equilibrium: f64,
}

/// Low quantiles of a per-weight quantity over the surviving weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SurvivorQuantiles {
    /// Surviving weights.
    pub survivors: usize,
    /// Smallest value among survivors.
    pub min: f64,
    /// The requested low quantile among survivors.
    pub quantile: f64,
    /// Median among survivors.
    pub median: f64,
}

/// The values `f(t / divisor)` of the present weights (`m >= 0`), sorted ascending.
fn survivor_values(
    net: &dyn Network,
    per_weight: &[Tensor],
    divisor: f64,
    f: fn(f64) -> f64,
) -> Vec<f64> {
    let mut v: Vec<f64> = Vec::new();
    for (mw, t) in net.masked().iter().zip(per_weight) {
        let m = network::to_vec_f32(&mw.m);
        let t = network::to_vec_f32(t);
        v.extend(
            m.iter()
                .zip(&t)
                .filter(|(m, _)| **m >= 0.0)
                .map(|(_, t)| f(*t as f64 / divisor)),
        );
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Minimum, `q`-quantile (lower nearest rank) and median of sorted, non-empty `v`.
fn quantiles(v: &[f64], q: f64) -> SurvivorQuantiles {
    let at = |q: f64| v[((q * (v.len() - 1) as f64).floor() as usize).min(v.len() - 1)];
    SurvivorQuantiles {
        survivors: v.len(),
        min: v[0],
        quantile: at(q),
        median: at(0.5),
    }
}

/// Flux statistics of the weights present now: `flux_sum` holds `Σ −w·∂L/∂ŵ` over `steps` steps
/// per masked tensor. `None` when no weight survives or no step was taken.
pub fn flux_stats(
    net: &dyn Network,
    flux_sum: &[Tensor],
    steps: usize,
    quantile: f64,
    equilibrium: f64,
) -> Option<FluxStats> {
    if steps == 0 {
        return None;
    }
    let v = survivor_values(net, flux_sum, steps as f64, |x| x);
    if v.is_empty() {
        return None;
    }
    let q = quantiles(&v, quantile);
    let below = v.iter().filter(|f| **f < equilibrium).count();
    Some(FluxStats {
        survivors: q.survivors,
        min: q.min,
        quantile: q.quantile,
        median: q.median,
        below_equilibrium: 100.0 * below as f64 / v.len() as f64,
    })
}

/// Quantiles of the per-weight root-mean-square flux `sqrt(Σφ² / steps)` over the weights present
/// now (`sq_sum` holds `Σφ²` per masked tensor): how strongly each survivor's flux fluctuates,
/// whatever its mean. `None` when no weight survives or no step was taken.
pub fn rms_flux_stats(
    net: &dyn Network,
    sq_sum: &[Tensor],
    steps: usize,
    quantile: f64,
) -> Option<SurvivorQuantiles> {
    if steps == 0 {
        return None;
    }
    let v = survivor_values(net, sq_sum, steps as f64, f64::sqrt);
    (!v.is_empty()).then(|| quantiles(&v, quantile))
}
