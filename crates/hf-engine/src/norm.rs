//! Batch normalisation over the channels of B×C×H×W activations, with a trained scale and shift
//! (spec §1 Decision: both are trained) and running statistics for evaluation.
//!
//! In training mode the layer normalises with the batch's statistics and updates the running
//! mean and (unbiased) variance with momentum 0.1, as `torch.nn.BatchNorm2d` does; in evaluation
//! mode it normalises with the running statistics. The scale and shift are free parameters of the
//! network (in [`crate::network::Network::params`], never pruned); the running statistics are
//! buffers saved in checkpoints.

use crate::network::Param;
use tch::{Device, Kind, Tensor};

/// PyTorch's default running-statistics momentum.
pub const MOMENTUM: f64 = 0.1;
/// PyTorch's default epsilon.
pub const EPS: f64 = 1e-5;

/// A BatchNorm layer over `channels` channels.
#[derive(Debug)]
pub struct BatchNorm2d {
    /// Layer name; the tensors are `{name}.weight`, `{name}.bias`, `{name}.running_mean`,
    /// `{name}.running_var`.
    pub name: String,
    /// Scale γ (shallow clone of the network's free parameter).
    pub weight: Tensor,
    /// Shift β (shallow clone of the network's free parameter).
    pub bias: Tensor,
    /// Running mean (buffer).
    pub running_mean: Tensor,
    /// Running variance (buffer).
    pub running_var: Tensor,
    /// The ε added to the variance ([`EPS`] for the built-in models; imported networks keep
    /// their own).
    pub eps: f64,
}

impl BatchNorm2d {
    /// A fresh layer (γ = 1, β = 0, running mean 0, running variance 1) and its two free
    /// parameters, to be appended to the network's parameters.
    pub fn new(name: &str, channels: i64, device: Device) -> (Self, [Param; 2]) {
        let opts = (Kind::Float, device);
        let weight = Tensor::ones([channels], opts).set_requires_grad(true);
        let bias = Tensor::zeros([channels], opts).set_requires_grad(true);
        let layer = Self {
            name: name.to_string(),
            weight: weight.shallow_clone(),
            bias: bias.shallow_clone(),
            running_mean: Tensor::zeros([channels], opts),
            running_var: Tensor::ones([channels], opts),
            eps: EPS,
        };
        let params = [
            Param {
                name: format!("{name}.weight"),
                t: weight,
            },
            Param {
                name: format!("{name}.bias"),
                t: bias,
            },
        ];
        (layer, params)
    }

    /// Normalises `x`: batch statistics (and a running-statistics update) when `train`, the
    /// running statistics otherwise.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            MOMENTUM,
            self.eps,
            true,
        )
    }

    /// The running statistics under their checkpoint names (shallow clones: restoring a
    /// checkpoint writes into the layer).
    pub fn buffers(&self) -> [(String, Tensor); 2] {
        [
            (
                format!("{}.running_mean", self.name),
                self.running_mean.shallow_clone(),
            ),
            (
                format!("{}.running_var", self.name),
                self.running_var.shallow_clone(),
            ),
        ]
    }
}
