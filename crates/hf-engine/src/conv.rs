//! Masked 2-D convolutions and masked linear layers for the convolutional models.
//!
//! A layer here holds no weight itself: its weight is a [`MaskedWeight`] owned by the network
//! (index [`Conv2d::index`] into [`crate::network::Network::masked`]), and the forward pass
//! receives the effective weights `ŵ = w ⊙ H(m)` explicitly. That is what gives a conv layer the
//! same gate, straight-through gradient and pressure accounting as the linear layer: autograd
//! yields `∂L/∂ŵ` for the fresh leaf `ŵ`, and [`crate::step::HyperfluxOptim`] turns it into
//! `∂L/∂m = s·w·∂L/∂ŵ + λ/N` and `∂L/∂w = H(m)·∂L/∂ŵ`, whatever the layer's shape.

use crate::init::Init;
use crate::masked::MaskedWeight;
use tch::{Device, Tensor};

/// Shape of a convolution: `out_c` filters of `in_c × k × k`, with stride and zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub in_c: i64,
    /// Output channels.
    pub out_c: i64,
    /// Square kernel size.
    pub k: i64,
    /// Stride on both axes.
    pub stride: i64,
    /// Zero padding on both axes.
    pub pad: i64,
}

impl ConvSpec {
    /// A `k×k` convolution with stride 1 and "same" padding `k/2`.
    pub fn same(in_c: i64, out_c: i64, k: i64) -> Self {
        Self {
            in_c,
            out_c,
            k,
            stride: 1,
            pad: k / 2,
        }
    }

    /// The same convolution with another stride.
    pub fn stride(self, stride: i64) -> Self {
        Self { stride, ..self }
    }

    /// Number of prunable weights `out_c · in_c · k²`.
    pub fn weights(&self) -> usize {
        (self.out_c * self.in_c * self.k * self.k) as usize
    }

    /// Output side length for an input side `n` (0 when the kernel does not fit).
    pub fn out_size(&self, n: i64) -> i64 {
        let span = n + 2 * self.pad - self.k;
        if span < 0 || self.stride <= 0 {
            0
        } else {
            span / self.stride + 1
        }
    }
}

/// A masked convolution: the index of its weight among the network's masked weights, its
/// geometry, and an optional (never pruned) bias.
#[derive(Debug)]
pub struct Conv2d {
    /// Index of the weight in the network's masked weights (and in `eff`).
    pub index: usize,
    /// Geometry.
    pub spec: ConvSpec,
    /// Bias (a shallow clone of the network's free parameter), if any.
    pub bias: Option<Tensor>,
}

impl Conv2d {
    /// Convolves `x` (B×C×H×W) with the effective weight `eff[self.index]`.
    pub fn forward(&self, x: &Tensor, eff: &[Tensor]) -> Tensor {
        conv2d(x, &eff[self.index], self.bias.as_ref(), &self.spec)
    }
}

/// `x ⋆ w + b` with the stride and padding of `spec` (no dilation, one group).
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, spec: &ConvSpec) -> Tensor {
    x.conv2d(
        w,
        bias,
        [spec.stride, spec.stride],
        [spec.pad, spec.pad],
        [1, 1],
        1,
    )
}

/// A masked fully connected layer `x·ŵᵀ + b` (the classifier of the conv nets).
#[derive(Debug)]
pub struct Linear {
    /// Index of the weight in the network's masked weights (and in `eff`).
    pub index: usize,
    /// Bias (a shallow clone of the network's free parameter).
    pub bias: Tensor,
}

impl Linear {
    /// Applies the layer to `x` (B×in) with the effective weight `eff[self.index]` (out×in).
    pub fn forward(&self, x: &Tensor, eff: &[Tensor]) -> Tensor {
        self.bias.addmm(x, &eff[self.index].tr())
    }
}

/// A fresh masked conv weight `out_c × in_c × k × k`, Kaiming-normal for ReLU networks
/// (`N(0, 2/fan_in)`, fan_in = `in_c·k²`) from the stream of `{name}.weight`, with masks
/// uniform in `init.mask`.
pub fn conv_weight(name: &str, spec: &ConvSpec, init: Init, device: Device) -> MaskedWeight {
    let fan_in = (spec.in_c * spec.k * spec.k) as f64;
    let std = (2.0 / fan_in).sqrt();
    let w = init.normal(
        &format!("{name}.weight"),
        &[spec.out_c, spec.in_c, spec.k, spec.k],
        0.0,
        std,
        device,
    );
    MaskedWeight::new(name, w, init)
}

/// A fresh masked linear weight `out × in` with PyTorch's `nn.Linear` default
/// `U(±1/√in)` from the stream of `{name}.weight`, masks uniform in `init.mask`.
pub fn linear_weight(
    name: &str,
    in_f: i64,
    out_f: i64,
    init: Init,
    device: Device,
) -> MaskedWeight {
    let bound = 1.0 / (in_f as f64).sqrt();
    let w = init.uniform(
        &format!("{name}.weight"),
        &[out_f, in_f],
        -bound,
        bound,
        device,
    );
    MaskedWeight::new(name, w, init)
}

/// The bias of layer `name` (tensor `{name}.bias`): `n` values `U(±1/√fan_in)` (PyTorch's
/// default bias init) from that tensor's stream, requiring grad.
pub fn bias(name: &str, n: i64, fan_in: i64, init: Init, device: Device) -> Tensor {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    init.uniform(&format!("{name}.bias"), &[n], -bound, bound, device)
        .set_requires_grad(true)
}
