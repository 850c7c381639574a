//! Pruning mechanics shared by the iterative families and the one-shot control: the scores
//! (magnitude [`magnitude_scores`], first-order Taylor [`taylor_scores`]), global removal of the
//! lowest-scoring present weights ([`prune_lowest`]) and writing masks back into a network.

use super::TaylorScore;
use crate::network::{self, Network};
use crate::trainer::{self, RunData};
use crate::EngineError;
use hf_core::config::CommonConfig;
use hf_data::BatchConfig;
use tch::{Device, Tensor};

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

/// Mask value given to weights a pruning step removes.
pub(super) const PRUNED_MASK: f32 = -1.0;

/// Removes the `round(fraction · present)` present weights with the lowest scores (globally over
/// all masked tensors; at least one when any is present) by setting their masks to −1. Ties are
/// broken by position, so the count is exact. `scores` holds one tensor per masked tensor.
pub fn prune_lowest(
    net: &dyn Network,
    scores: &[Tensor],
    fraction: f64,
) -> Result<PruneStep, EngineError> {
    let masked = net.masked();
    if scores.len() != masked.len() {
        return Err(EngineError::Model(format!(
            "pruning scores for {} tensors but the model has {} masked tensors",
            scores.len(),
            masked.len()
        )));
    }
    let mut masks: Vec<Vec<f32>> = Vec::with_capacity(masked.len());
    let mut cand: Vec<(f32, u32, u32)> = Vec::new();
    for (l, (mw, s)) in masked.iter().zip(scores).enumerate() {
        if s.size() != mw.m.size() {
            return Err(EngineError::Model(format!(
                "pruning scores of {} have shape {:?}, the weight has {:?}",
                mw.name,
                s.size(),
                mw.m.size()
            )));
        }
        let m = network::to_vec_f32(&mw.m);
        let s = network::to_vec_f32(s);
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
    let k = if present == 0 || fraction <= 0.0 {
        0
    } else {
        ((fraction * present as f64).round() as usize).clamp(1, present)
    };
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
    write_masks(net, &masks);
    Ok(PruneStep {
        threshold,
        removed: k,
        present_before: present,
        present_after: present - k,
    })
}

/// Copies mask values (one flat vector per masked tensor) into the network.
pub(super) fn write_masks(net: &dyn Network, masks: &[Vec<f32>]) {
    for (mw, m) in net.masked().iter().zip(masks) {
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
pub fn magnitude_scores(net: &dyn Network) -> Vec<Tensor> {
    tch::no_grad(|| net.masked().iter().map(|mw| mw.w.abs()).collect())
}

/// Seed domain of the Taylor scoring batches (distinct from the training batches' order).
const TAYLOR_SEED: u64 = 0x7A71_0125_C0DE_0001;

/// First-order Taylor scores `|w·∂L/∂w|` over `batches` training batches (drawn with `round`
/// as the shuffle epoch), one tensor per masked tensor. For present weights `∂L/∂w = ∂L/∂ŵ`.
pub fn taylor_scores(
    net: &dyn Network,
    data: &RunData,
    common: &CommonConfig,
    device: Device,
    batches: usize,
    mode: TaylorScore,
    round: u64,
) -> Vec<Tensor> {
    let shape = trainer::input_shape(&data.train);
    let cfg = BatchConfig::train(common.batch_size, None);
    let mut acc: Vec<Tensor> = net.masked().iter().map(|mw| mw.w.zeros_like()).collect();
    let mut n = 0usize;
    for b in hf_data::batches(&data.train, &cfg, common.seed ^ TAYLOR_SEED, round).take(batches) {
        let (x, y) = trainer::to_tensors(&b, shape, device);
        let g = net.data_grads(&x, &y, common.label_smoothing);
        tch::no_grad(|| {
            for ((a, g), mw) in acc.iter_mut().zip(&g.masked).zip(net.masked()) {
                match mode {
                    TaylorScore::AbsOfMean => *a += g,
                    TaylorScore::MeanOfAbs => *a += (&mw.w * g).abs(),
                }
            }
        });
        n += 1;
    }
    let n = n.max(1) as f64;
    tch::no_grad(|| {
        acc.iter()
            .zip(net.masked())
            .map(|(a, mw)| match mode {
                TaylorScore::AbsOfMean => (&mw.w * a / n).abs(),
                TaylorScore::MeanOfAbs => a / n,
            })
            .collect()
    })
}
