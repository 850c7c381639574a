//! One law measurement ([`measure`]): loads the dense checkpoint, runs the family's runner and
//! collects its points ([`LawSample`]) into a [`LawOutcome`].

use super::iterative::iterative;
use super::l0_ladder::l0_ladder;
use super::one_shot::one_shot;
use super::session::{accuracy_of, setup};
use super::{Family, LawConfig};
use crate::trainer::Observer;
use crate::EngineError;
use serde::Serialize;
use std::time::Instant;

/// One point of a law trajectory (the columns of a law CSV).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LawSample {
    /// Training epochs done when the point was taken (none for the one-shot control).
    pub epoch: Option<f64>,
    /// Saliency threshold γ (see [`Family::saliency_meaning`]).
    pub saliency: f64,
    /// Density after the point's pruning, percent of prunable weights present.
    pub remaining: f64,
    /// Test accuracy in percent. L0: at the block's end; IMP/Taylor: of the network the step
    /// pruned (before the step, as in the spec); one-shot: of the pruned net.
    pub accuracy: f64,
    /// Family-specific columns, in a fixed order per family.
    pub extras: Vec<(String, f64)>,
}

/// What a law measurement produced.
#[derive(Debug, Clone)]
pub struct LawOutcome {
    /// The family measured.
    pub family: Family,
    /// The points, in the order they were taken.
    pub samples: Vec<LawSample>,
    /// Test accuracy of the dense starting point (percent).
    pub dense_accuracy: f64,
    /// Number of prunable weights N.
    pub prunable: usize,
    /// Training epochs run.
    pub epochs: usize,
    /// Why the run ended before its last step, if it did.
    pub stopped_early: Option<String>,
    /// Wall time of the measurement, seconds.
    pub seconds: f64,
}

/// Runs one law measurement from the dense checkpoint `cfg.from`. `on_point` sees every point as
/// soon as it is taken (the CLI rewrites its CSV then), `obs` every training epoch.
pub fn measure(
    cfg: &LawConfig,
    obs: &mut dyn Observer,
    on_point: &mut dyn FnMut(&LawSample),
) -> Result<LawOutcome, EngineError> {
    let family = cfg.validate()?;
    let from = cfg.from.as_ref().ok_or_else(|| {
        EngineError::Model(
            "a law measurement starts from a dense checkpoint: pass --from CHECKPOINT \
             (make one with `hyperflux train --epochs 10 --out DIR`)"
                .into(),
        )
    })?;
    let started = Instant::now();
    let mut s = setup(
        &cfg.common,
        Some(from),
        (cfg.mask_init_low, cfg.mask_init_high),
    )?;
    let dense_accuracy = accuracy_of(&s, &cfg.common);
    let prunable = s.net.prunable();
    let mut samples = Vec::new();
    let mut emit = |p: LawSample, samples: &mut Vec<LawSample>| {
        on_point(&p);
        samples.push(p);
    };
    let (epochs, stopped_early) = match family {
        Family::L0 => l0_ladder(cfg, &mut s, obs, &mut |p| emit(p, &mut samples))?,
        Family::Magnitude | Family::Taylor => {
            iterative(cfg, family, &mut s, dense_accuracy, obs, &mut |p| {
                emit(p, &mut samples)
            })?
        }
        Family::Oneshot => {
            let stop = one_shot(cfg, &mut s, &mut |p| emit(p, &mut samples))?;
            (0, stop)
        }
    };
    Ok(LawOutcome {
        family,
        samples,
        dense_accuracy,
        prunable,
        epochs,
        stopped_early,
        seconds: started.elapsed().as_secs_f64(),
    })
}
