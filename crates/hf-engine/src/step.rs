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

/// Fails with [`EngineError::Diverged`] if a loss is not finite.
pub fn check_finite(loss: f64, epoch: usize, step: usize) -> Result<(), EngineError> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(EngineError::Diverged {
            what: format!("data loss {loss}"),
            epoch,
            step,
        })
    }
}
