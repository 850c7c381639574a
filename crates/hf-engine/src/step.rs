//! The Hyperflux step: data gradients from the network, the straight-through estimator, the
//! global pressure `λ·mean(m)`, and both optimizers (weights + free parameters; masks).

use crate::network::{Grads, Network};
use crate::optim::{self, OptGroup};
use crate::EngineError;
use hf_core::update::{MaskStep, OptimKind};
use tch::{Kind, Tensor};

/// Learning rates and pressure of one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSettings {
    /// Weight (and free-parameter) learning rate.
    pub weight_lr: f64,
    /// Mask learning rate.
    pub mask_lr: f64,
    /// Pressure λ.
    pub pressure: f64,
    /// Whether masks are trained (false: dense training).
    pub train_masks: bool,
}

/// Both optimizers of a Hyperflux run.
#[derive(Debug)]
pub struct HyperfluxOptim {
    /// Weight optimizer over masked weights (first) then free parameters.
    pub weights: OptGroup,
    /// Mask optimizer (Adam, no weight decay).
    pub masks: OptGroup,
    /// Straight-through scale s.
    pub ste_scale: f64,
}

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Data loss of the batch.
    pub loss: f64,
    /// Correct predictions of the batch.
    pub correct: i64,
}

impl HyperfluxOptim {
    /// Fresh optimizers for `net`.
    pub fn new(net: &dyn Network, kind: OptimKind, weight_decay: f64, ste_scale: f64) -> Self {
        let mut like: Vec<&Tensor> = net.masked().iter().map(|m| &m.w).collect();
        like.extend(net.params().iter().map(|p| &p.t));
        let masks: Vec<&Tensor> = net.masked().iter().map(|m| &m.m).collect();
        Self {
            weights: OptGroup::new(kind, weight_decay, &like),
            masks: OptGroup::new(OptimKind::adam(), 0.0, &masks),
            ste_scale,
        }
    }

    /// One full step on a batch: gradients, STE, pressure, both optimizers. `flux`, when given,
    /// accumulates `−w·∂L/∂ŵ` per masked tensor.
    pub fn step(
        &mut self,
        net: &mut dyn Network,
        x: &Tensor,
        y: &Tensor,
        smoothing: f64,
        s: &StepSettings,
        flux: Option<&[Tensor]>,
    ) -> StepStats {
        let grads = net.data_grads(x, y, smoothing);
        self.apply(net, &grads, s, flux);
        StepStats {
            loss: grads.loss,
            correct: grads.correct,
        }
    }

    /// Applies precomputed data gradients.
    pub fn apply(
        &mut self,
        net: &mut dyn Network,
        grads: &Grads,
        s: &StepSettings,
        flux: Option<&[Tensor]>,
    ) {
        self.weights.step += 1;
        if s.train_masks {
            self.masks.step += 1;
        }
        let n_masked = net.masked().len();
        let wh = self.weights.hyper(s.weight_lr);
        let mh = self.masks.hyper(s.mask_lr);
        let ms = MaskStep {
            ste_scale: self.ste_scale,
            pressure_grad: s.pressure / net.prunable() as f64,
            train_masks: s.train_masks,
        };
        for (i, mw) in net.masked().iter().enumerate() {
            optim::masked_step(
                &mw.w,
                &mw.m,
                &grads.masked[i],
                &self.weights.states[i],
                &self.masks.states[i],
                &wh,
                &mh,
                &ms,
                flux.map(|f| &f[i]),
            );
        }
        for (j, p) in net.params().iter().enumerate() {
            optim::step_param(
                &p.t,
                &grads.params[j],
                &self.weights.states[n_masked + j],
                &wh,
            );
        }
    }
}

/// Mean of all mask parameters over the network (the pressure loss is `λ·mean(m)`).
pub fn mask_mean(net: &dyn Network) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for m in net.masked() {
        sum += m.m.sum(Kind::Double).double_value(&[]);
        n += m.numel();
    }
    sum / n.max(1) as f64
}

/// Which setting to lower when a step with settings `s` diverged.
pub fn divergence_hint(s: &StepSettings) -> String {
    if s.train_masks && s.pressure > 0.0 {
        format!(
            "lower the learning rate --lr (the weight LR was {:e} in this epoch), or the mask LR --mask-lr ({:e}) or the pressure (λ = {:e})",
            s.weight_lr, s.mask_lr, s.pressure
        )
    } else if s.train_masks {
        format!(
            "lower the learning rate --lr (the weight LR was {:e} in this epoch) or the mask LR --mask-lr ({:e})",
            s.weight_lr, s.mask_lr
        )
    } else {
        format!(
            "lower the learning rate --lr (the weight LR was {:e} in this epoch)",
            s.weight_lr
        )
    }
}

/// Fails with [`EngineError::Diverged`] if a loss is not finite.
pub fn check_finite(
    loss: f64,
    epoch: usize,
    step: usize,
    s: &StepSettings,
) -> Result<(), EngineError> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(EngineError::Diverged {
            what: format!("data loss {loss}"),
            epoch,
            step,
            hint: divergence_hint(s),
        })
    }
}

/// Watches the loss of a run for divergence that stays finite: a loss above
/// [`DivergenceWatch::FACTOR`] times its reference for [`DivergenceWatch::STEPS`] steps in a row
/// (e.g. Adam at `--lr 1e6` reaches 4e22 and trains on at 10% accuracy). The reference is the
/// first step's loss, but at least ln(classes) (what a network that knows nothing scores), so a
/// run starting from a well-trained network may still go through untrained-level losses
/// (pruning pressure) without being stopped.
#[derive(Debug, Clone, Default)]
pub struct DivergenceWatch {
    reference: Option<f64>,
    over: usize,
}

impl DivergenceWatch {
    /// How far above the reference the loss must be.
    pub const FACTOR: f64 = 10.0;
    /// For how many consecutive steps.
    pub const STEPS: usize = 10;

    /// Feeds one step's loss; fails when the run has diverged.
    pub fn observe(
        &mut self,
        loss: f64,
        classes: usize,
        epoch: usize,
        step: usize,
        s: &StepSettings,
    ) -> Result<(), EngineError> {
        check_finite(loss, epoch, step, s)?;
        let reference = *self
            .reference
            .get_or_insert(loss.max((classes.max(2) as f64).ln()));
        if loss > Self::FACTOR * reference {
            self.over += 1;
        } else {
            self.over = 0;
        }
        if self.over >= Self::STEPS {
            return Err(EngineError::Diverged {
                what: format!(
                    "data loss {loss:.4e}, above {}× its starting value {reference:.4} for {} steps in a row",
                    Self::FACTOR,
                    Self::STEPS
                ),
                epoch,
                step,
                hint: divergence_hint(s),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> StepSettings {
        StepSettings {
            weight_lr: 1e6,
            mask_lr: 0.0,
            pressure: 0.0,
            train_masks: false,
        }
    }

    #[test]
    fn a_finite_exploding_loss_is_divergence_a_noisy_one_is_not() {
        let s = settings();
        // Starts at ln(10), explodes to 1e22 and stays there.
        let mut w = DivergenceWatch::default();
        let mut losses = vec![2.3, 2.5, 40.0, 1e3];
        losses.extend([1e22; 20]);
        let step = losses
            .iter()
            .enumerate()
            .find_map(|(i, &l)| w.observe(l, 10, 1, i + 1, &s).err().map(|e| (i + 1, e)));
        let (at, e) = step.expect("divergence not detected");
        // Over the threshold from step 3 (loss 40 > 10 × 2.3): stopped after STEPS such steps.
        assert_eq!(at, 2 + DivergenceWatch::STEPS);
        let msg = e.to_string();
        assert!(
            msg.contains("diverged") && msg.contains("--lr") && msg.contains("1e6"),
            "{msg}"
        );
        // Spikes above the threshold that come back are not divergence, and a run starting
        // from a trained network (loss 0.05) may go through untrained-level losses.
        let mut w = DivergenceWatch::default();
        for i in 0..200 {
            let l = if i % 9 == 8 {
                500.0
            } else {
                0.05 + (i % 5) as f64
            };
            w.observe(l, 10, 1, i + 1, &s).unwrap();
        }
        // Non-finite at once.
        let mut w = DivergenceWatch::default();
        let e = w.observe(f64::NAN, 10, 2, 7, &s).unwrap_err().to_string();
        assert!(e.contains("NaN at epoch 2, step 7"), "{e}");
    }

    #[test]
    fn the_hint_names_the_settings_in_play() {
        let mut s = settings();
        assert!(!divergence_hint(&s).contains("mask"));
        s.train_masks = true;
        s.mask_lr = 1e-3;
        assert!(divergence_hint(&s).contains("--mask-lr"));
        s.pressure = 4.0;
        assert!(divergence_hint(&s).contains("pressure (λ = 4e0)"));
    }
}
