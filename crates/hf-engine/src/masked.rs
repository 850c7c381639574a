//! The mask machinery shared by every masked layer: a weight `w`, its mask parameter `m` of the
//! same shape, the gate `H(m) = [m >= 0]` and the effective weight `ŵ = w ⊙ H(m)`.

use crate::init::Init;
use tch::{Kind, Tensor};

/// A prunable weight tensor with its mask parameter.
#[derive(Debug)]
pub struct MaskedWeight {
    /// Name of the layer the weight belongs to (e.g. `fc1`).
    pub name: String,
    /// The weight values (kept when pruned, so a regrown weight comes back with them).
    pub w: Tensor,
    /// The mask parameters; present where `m >= 0`.
    pub m: Tensor,
}

impl MaskedWeight {
    /// Wraps a weight and initialises its mask uniformly in `init.mask` (spec: U[0.2, 0.5]),
    /// from the stream of `{name}.mask`.
    pub fn new(name: &str, w: Tensor, init: Init) -> Self {
        let m = init.mask(name, &w.size(), w.device());
        Self {
            name: name.to_string(),
            w,
            m,
        }
    }

    /// Re-initialises the mask in place uniformly in `init.mask`, from the stream of
    /// `{name}.mask` (a pruning run starting from a dense net).
    pub fn reset_mask(&mut self, init: Init) {
        let fresh = init.mask(&self.name, &self.m.size(), self.m.device());
        tch::no_grad(|| self.m.copy_(&fresh));
    }

    /// The gate `H(m)` as 0/1 floats.
    pub fn gate(&self) -> Tensor {
        self.m.ge(0.0).to_kind(Kind::Float)
    }

    /// The effective weight `w ⊙ H(m)` (no gradient).
    pub fn effective(&self) -> Tensor {
        tch::no_grad(|| &self.w * self.gate())
    }

    /// Number of weights.
    pub fn numel(&self) -> usize {
        self.w.numel()
    }

    /// Number of present weights (`m >= 0`).
    pub fn present(&self) -> usize {
        self.m.ge(0.0).sum(Kind::Int64).int64_value(&[]) as usize
    }

    /// Density of this tensor in percent.
    pub fn density(&self) -> f64 {
        100.0 * self.present() as f64 / self.numel().max(1) as f64
    }
}

/// Shifts every mask of the network by one common amount so that exactly
/// `round(target_percent/100 · N)` weights are present: those with the largest masks (ties at
/// the threshold stay present). Ordering is kept, so this is a uniform pressure impulse that
/// lands the density on the target. Returns the number of present weights afterwards.
pub fn snap_to_density(masked: &[MaskedWeight], target_percent: f64) -> usize {
    let flat: Vec<Tensor> = masked.iter().map(|m| m.m.flatten(0, -1)).collect();
    let all = Tensor::cat(&flat, 0);
    let n = all.numel() as i64;
    let keep = ((target_percent / 100.0) * n as f64)
        .round()
        .clamp(1.0, n as f64) as i64;
    // The keep-th largest value is the (n - keep + 1)-th smallest.
    let (tau, _) = all.kthvalue(n - keep + 1, 0, false);
    let tau = tau.double_value(&[]);
    tch::no_grad(|| {
        for mw in masked {
            let mut m = mw.m.shallow_clone();
            let _ = m.g_sub_scalar_(tau);
        }
    });
    masked.iter().map(|m| m.present()).sum()
}

/// Density accounting over a whole network.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityReport {
    /// (layer, present, total) per masked tensor.
    pub layers: Vec<(String, usize, usize)>,
}

impl DensityReport {
    /// Counts the present weights of every masked tensor.
    pub fn of(masked: &[MaskedWeight]) -> Self {
        Self {
            layers: masked
                .iter()
                .map(|mw| (mw.name.clone(), mw.present(), mw.numel()))
                .collect(),
        }
    }

    /// Total number of prunable weights N.
    pub fn total(&self) -> usize {
        self.layers.iter().map(|l| l.2).sum()
    }

    /// Total present weights.
    pub fn present(&self) -> usize {
        self.layers.iter().map(|l| l.1).sum()
    }

    /// Total density in percent: `100 · #{m >= 0} / N`.
    pub fn density(&self) -> f64 {
        100.0 * self.present() as f64 / self.total().max(1) as f64
    }

    /// Per-layer densities in percent.
    pub fn per_layer(&self) -> Vec<(String, f64)> {
        self.layers
            .iter()
            .map(|(n, p, t)| (n.clone(), 100.0 * *p as f64 / (*t).max(1) as f64))
            .collect()
    }
}

/// Mask value given to weights a pruning step removes.
pub const PRUNED_MASK: f32 = -1.0;

/// Result of one pruning step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneStep {
    /// The largest score removed (NaN when nothing was removed).
    pub threshold: f64,
    /// Weights removed.
    pub removed: usize,
    /// Present weights before the step.
    pub present_before: usize,
    /// Present weights after the step.
    pub present_after: usize,
}

/// Removes the `count(present)` present weights (at most all of them) with the lowest scores,
/// globally over all masked tensors, by setting their masks to [`PRUNED_MASK`]; pruned weights
/// stay pruned. Ties are broken by layer, then position, so the count is exact. `scores` holds
/// one tensor per masked tensor, of its shape. The one removal mechanism of the law families
/// and the magnitude baselines.
pub fn prune_lowest_count(
    masked: &[MaskedWeight],
    scores: &[Tensor],
    count: impl FnOnce(usize) -> usize,
) -> Result<PruneStep, crate::EngineError> {
    if scores.len() != masked.len() {
        return Err(crate::EngineError::Model(format!(
            "pruning scores for {} tensors but the model has {} masked tensors",
            scores.len(),
            masked.len()
        )));
    }
    let mut masks: Vec<Vec<f32>> = Vec::with_capacity(masked.len());
    let mut cand: Vec<(f32, u32, u32)> = Vec::new();
    for (l, (mw, s)) in masked.iter().zip(scores).enumerate() {
        if s.size() != mw.m.size() {
            return Err(crate::EngineError::Model(format!(
                "pruning scores of {} have shape {:?}, the weight has {:?}",
                mw.name,
                s.size(),
                mw.m.size()
            )));
        }
        let m = crate::network::to_vec_f32(&mw.m);
        let s = crate::network::to_vec_f32(s);
        cand.extend(
            m.iter()
                .zip(&s)
                .enumerate()
                .filter(|(_, (m, _))| **m >= 0.0)
                .map(|(i, (_, s))| (*s, l as u32, i as u32)),
        );
        masks.push(m);
    }
    let present = cand.len();
    let k = count(present).min(present);
    if k == 0 {
        return Ok(PruneStep {
            threshold: f64::NAN,
            removed: 0,
            present_before: present,
            present_after: present,
        });
    }
    let cmp = |a: &(f32, u32, u32), b: &(f32, u32, u32)| {
        a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    };
    cand.select_nth_unstable_by(k - 1, cmp);
    let threshold = cand[k - 1].0 as f64;
    for &(_, l, i) in &cand[..k] {
        masks[l as usize][i as usize] = PRUNED_MASK;
    }
    write_masks(masked, &masks);
    Ok(PruneStep {
        threshold,
        removed: k,
        present_before: present,
        present_after: present - k,
    })
}

/// Copies mask values (one flat vector per masked tensor) into the masked tensors.
pub fn write_masks(masked: &[MaskedWeight], masks: &[Vec<f32>]) {
    for (mw, m) in masked.iter().zip(masks) {
        let src = Tensor::from_slice(m)
            .view(mw.m.size().as_slice())
            .to_device(mw.m.device());
        tch::no_grad(|| {
            let mut dst = mw.m.shallow_clone();
            dst.copy_(&src);
        });
    }
}

/// Magnitude scores `|w|`, one tensor per masked tensor.
pub fn magnitude_scores(masked: &[MaskedWeight]) -> Vec<Tensor> {
    tch::no_grad(|| masked.iter().map(|mw| mw.w.abs()).collect())
}

/// Global magnitude pruning to an exact count: keeps the `round(target_percent/100 · N)`
/// present weights of largest `|w|` over all masked tensors and prunes the other present
/// weights; pruned weights stay pruned, ties are broken by position. Never adds weights: a
/// target above the present density changes nothing. Returns the present weights afterwards.
pub fn magnitude_prune_to_density(
    masked: &[MaskedWeight],
    target_percent: f64,
) -> Result<usize, crate::EngineError> {
    let total: usize = masked.iter().map(MaskedWeight::numel).sum();
    let keep = ((target_percent / 100.0) * total as f64)
        .round()
        .clamp(1.0, total as f64) as usize;
    let step = prune_lowest_count(masked, &magnitude_scores(masked), |present| {
        present.saturating_sub(keep)
    })?;
    Ok(step.present_after)
}
