//! Pruning mechanics shared by the iterative families and the one-shot control: the scores
//! (magnitude [`magnitude_scores`], first-order Taylor [`taylor_scores`]), global removal of the
//! lowest-scoring present weights ([`prune_lowest`]) and writing masks back into a network.

use super::TaylorScore;
use crate::masked;
use crate::network::Network;
use crate::trainer::{self, RunData};
use crate::EngineError;
use hf_core::config::CommonConfig;
use hf_data::BatchConfig;
use tch::{Device, Tensor};

pub use crate::masked::PruneStep;

/// Removes the `round(fraction · present)` present weights with the lowest scores (globally over
/// all masked tensors; at least one when any is present) by setting their masks to −1. Ties are
/// broken by position, so the count is exact. `scores` holds one tensor per masked tensor.
pub fn prune_lowest(
    net: &dyn Network,
    scores: &[Tensor],
    fraction: f64,
) -> Result<PruneStep, EngineError> {
    masked::prune_lowest_count(net.masked(), scores, |present| {
        if present == 0 || fraction <= 0.0 {
            0
        } else {
            ((fraction * present as f64).round() as usize).clamp(1, present)
        }
    })
}

/// Magnitude scores `|w|`, one tensor per masked tensor.
pub fn magnitude_scores(net: &dyn Network) -> Vec<Tensor> {
    masked::magnitude_scores(net.masked())
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
