//! The in-memory description of an exported network: layer specs, metadata and tensors.

use hf_interchange::preprocess::Preprocessing;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One layer of an exported network.
///
/// Each entry of the file's `layers` list carries a `"type"` tag, e.g.
/// `{"type":"linear","name":"fc1","in_features":784,"out_features":300,"bias":true,"activation":"relu"}`
/// or
/// `{"type":"conv2d","name":"conv1","in_channels":3,"out_channels":16,"kernel":[3,3],"stride":[1,1],"padding":[1,1],"bias":true,"activation":"relu"}`.
///
/// Layers run in list order over a small DAG: every single-input layer reads the output of the
/// layer named by its `input` field, or the previous layer's output when `input` is absent (the
/// network input, called `"input"`, for the first layer). Activations are per-example tensors
/// of shape `C x H x W` (a flat vector of `n` values is `n x 1 x 1`). BatchNorm has no layer of
/// its own: it is folded into the preceding convolution's weight and bias at export time (see
/// [`fold_batch_norm`](crate::fold_batch_norm)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    /// A fully connected layer `y = act(W x + b)` with `W` of shape `out_features x in_features`;
    /// its input (of any shape) is read flat, in `C, H, W` order; its output is
    /// `out_features x 1 x 1`.
    Linear {
        /// Unique layer name; tensor names are `{name}.weight`, `{name}.values`, ...
        name: String,
        /// Width of the layer's input.
        in_features: usize,
        /// Width of the layer's output.
        out_features: usize,
        /// Whether the layer has a bias vector of length `out_features`.
        bias: bool,
        /// Activation applied after the bias (fused into the kernels).
        activation: Activation,
        /// Name of the tensor the layer reads (`"input"` or an earlier layer's name); absent
        /// = the previous layer's output. Not written when absent, so MLP files stay as they
        /// were before the field existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    /// A 2-D convolution (cross-correlation, as PyTorch's `Conv2d`), with any BatchNorm already
    /// folded into `weight` and `bias`. The weight is
    /// `out_channels x in_channels/groups x kernel[0] x kernel[1]`; output size per axis is
    /// `(size + 2·padding − dilation·(kernel − 1) − 1) / stride + 1` (floor), zero padding.
    /// With `groups = g`, output channel `o` reads only the input channels of its group
    /// `o / (out_channels/g)`; `groups == in_channels == out_channels` is a depthwise
    /// convolution.
    Conv2d {
        /// Unique layer name.
        name: String,
        /// Channels of the input tensor.
        in_channels: usize,
        /// Channels of the output tensor (rows of the flattened weight).
        out_channels: usize,
        /// Kernel size `[height, width]`.
        kernel: [usize; 2],
        /// Stride `[vertical, horizontal]`, each at least 1.
        stride: [usize; 2],
        /// Zero padding `[top/bottom, left/right]`.
        padding: [usize; 2],
        /// Spacing of the kernel taps `[vertical, horizontal]`, each at least 1; defaults to
        /// `[1, 1]` and is not written then (files without it load unchanged).
        #[serde(default = "ones", skip_serializing_if = "is_ones")]
        dilation: [usize; 2],
        /// Channel groups, at least 1, dividing `in_channels` and `out_channels`; defaults to 1
        /// and is not written then.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        groups: usize,
        /// Whether the layer has a bias vector of length `out_channels`.
        bias: bool,
        /// Activation applied after the bias.
        activation: Activation,
        /// Input tensor name (see [`LayerSpec::Linear`]'s `input`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    /// Max pooling per channel (PyTorch `MaxPool2d`, floor mode): padded positions never win.
    MaxPool2d {
        /// Unique layer name.
        name: String,
        /// Window `[height, width]`.
        kernel: [usize; 2],
        /// Stride, each at least 1.
        stride: [usize; 2],
        /// Implicit padding, at most half the window per axis; defaults to `[0, 0]`.
        #[serde(default)]
        padding: [usize; 2],
        /// Input tensor name (see [`LayerSpec::Linear`]'s `input`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    /// Average pooling per channel (PyTorch `AvgPool2d`, floor mode, `count_include_pad =
    /// true`: every window is divided by `kernel[0]·kernel[1]`).
    AvgPool2d {
        /// Unique layer name.
        name: String,
        /// Window `[height, width]`.
        kernel: [usize; 2],
        /// Stride, each at least 1.
        stride: [usize; 2],
        /// Implicit zero padding, at most half the window per axis; defaults to `[0, 0]`.
        #[serde(default)]
        padding: [usize; 2],
        /// Input tensor name (see [`LayerSpec::Linear`]'s `input`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    /// Mean over each channel's plane: `C x H x W` → `C x 1 x 1`.
    GlobalAvgPool {
        /// Unique layer name.
        name: String,
        /// Input tensor name (see [`LayerSpec::Linear`]'s `input`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    /// Reshape `C x H x W` → `C·H·W x 1 x 1` (values unchanged, `C, H, W` order).
    Flatten {
        /// Unique layer name.
        name: String,
        /// Input tensor name (see [`LayerSpec::Linear`]'s `input`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<String>,
    },
    /// Elementwise sum of two tensors of the same shape, then the activation (the end of a
    /// residual block).
    Add {
        /// Unique layer name.
        name: String,
        /// The two tensors summed: `"input"` or names of earlier layers.
        inputs: [String; 2],
        /// Activation applied to the sum.
        activation: Activation,
    },
}

impl LayerSpec {
    /// The layer's unique name.
    pub fn name(&self) -> &str {
        match self {
            LayerSpec::Linear { name, .. }
            | LayerSpec::Conv2d { name, .. }
            | LayerSpec::MaxPool2d { name, .. }
            | LayerSpec::AvgPool2d { name, .. }
            | LayerSpec::GlobalAvgPool { name, .. }
            | LayerSpec::Flatten { name, .. }
            | LayerSpec::Add { name, .. } => name,
        }
    }

    /// The `"type"` tag the layer is serialised with (`"linear"`, `"conv2d"`, ...).
    pub fn type_tag(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool2d { .. } => "max_pool2d",
            LayerSpec::AvgPool2d { .. } => "avg_pool2d",
            LayerSpec::GlobalAvgPool { .. } => "global_avg_pool",
            LayerSpec::Flatten { .. } => "flatten",
            LayerSpec::Add { .. } => "add",
        }
    }

    /// Every `"type"` tag this runtime implements.
    pub const TYPE_TAGS: [&'static str; 7] = [
        "linear",
        "conv2d",
        "max_pool2d",
        "avg_pool2d",
        "global_avg_pool",
        "flatten",
        "add",
    ];

    /// The tensors the layer reads, as written in the spec: `[None]` for a single-input layer
    /// without an `input` field (= the previous layer's output), `[Some(name)]` with one,
    /// two names for [`LayerSpec::Add`].
    pub fn inputs(&self) -> Vec<Option<&str>> {
        match self {
            LayerSpec::Linear { input, .. }
            | LayerSpec::Conv2d { input, .. }
            | LayerSpec::MaxPool2d { input, .. }
            | LayerSpec::AvgPool2d { input, .. }
            | LayerSpec::GlobalAvgPool { input, .. }
            | LayerSpec::Flatten { input, .. } => vec![input.as_deref()],
            LayerSpec::Add { inputs, .. } => inputs.iter().map(|s| Some(s.as_str())).collect(),
        }
    }

    /// Whether the layer has a (prunable) weight: linear and conv2d layers.
    pub fn has_weights(&self) -> bool {
        matches!(self, LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. })
    }

    /// Columns of the layer's weight matrix: `in_features` (linear),
    /// `in_channels/groups·kernel[0]·kernel[1]` (conv2d, the weight flattened per output
    /// channel; saturating), 0 for layers without weights.
    pub fn in_features(&self) -> usize {
        match self {
            LayerSpec::Linear { in_features, .. } => *in_features,
            LayerSpec::Conv2d {
                in_channels,
                kernel,
                groups,
                ..
            } => (in_channels / groups.max(&1))
                .saturating_mul(kernel[0])
                .saturating_mul(kernel[1]),
            _ => 0,
        }
    }

    /// Rows of the layer's weight matrix: `out_features` (linear), `out_channels` (conv2d),
    /// 0 for layers without weights.
    pub fn out_features(&self) -> usize {
        match self {
            LayerSpec::Linear { out_features, .. } => *out_features,
            LayerSpec::Conv2d { out_channels, .. } => *out_channels,
            _ => 0,
        }
    }

    /// Shape of the stored dense weight and mask: `[out, in]` (linear),
    /// `[out, in/groups, kh, kw]` (conv2d), `None` for layers without weights.
    pub fn weight_shape(&self) -> Option<Vec<usize>> {
        match self {
            LayerSpec::Linear {
                in_features,
                out_features,
                ..
            } => Some(vec![*out_features, *in_features]),
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                groups,
                ..
            } => Some(vec![
                *out_channels,
                in_channels / groups.max(&1),
                kernel[0],
                kernel[1],
            ]),
            _ => None,
        }
    }

    /// Whether the layer has a bias (false for layers without weights).
    pub fn has_bias(&self) -> bool {
        match self {
            LayerSpec::Linear { bias, .. } | LayerSpec::Conv2d { bias, .. } => *bias,
            _ => false,
        }
    }

    /// The activation that follows the layer (`None` for pooling, flatten).
    pub fn activation(&self) -> Activation {
        match self {
            LayerSpec::Linear { activation, .. }
            | LayerSpec::Conv2d { activation, .. }
            | LayerSpec::Add { activation, .. } => *activation,
            _ => Activation::None,
        }
    }

    /// Number of prunable weights (`out_features * in_features`, conv2d
    /// `out·in/groups·kh·kw`; 0 for layers without weights), `None` on overflow.
    pub fn weight_count(&self) -> Option<usize> {
        match self {
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                groups,
                ..
            } => out_channels
                .checked_mul(in_channels / groups.max(&1))?
                .checked_mul(kernel[0])?
                .checked_mul(kernel[1]),
            _ => self.out_features().checked_mul(self.in_features()),
        }
    }
}

/// Activation applied after a layer's bias. Serialised as `"none"` / `"relu"` / `"relu6"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Identity (e.g. the logits layer).
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)` (MobileNet's ReLU6; ONNX `Clip(0, 6)`).
    Relu6,
}

impl Activation {
    /// Applies the activation to one value. (ReLU and ReLU6 map NaN to 0, as the AVX2 kernels
    /// do, hence `max(0).min(6)` rather than `clamp`.)
    #[inline(always)]
    #[allow(clippy::manual_clamp)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.max(0.0).min(6.0),
        }
    }

    /// Applies the activation to every value (nothing to do for [`Activation::None`]).
    #[inline]
    #[allow(clippy::manual_clamp)]
    pub fn apply_all(self, y: &mut [f32]) {
        match self {
            Activation::None => {}
            Activation::Relu => y.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Relu6 => y.iter_mut().for_each(|v| *v = v.max(0.0).min(6.0)),
        }
    }
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

fn ones() -> [usize; 2] {
    [1, 1]
}

fn is_ones(v: &[usize; 2]) -> bool {
    *v == [1, 1]
}

/// Descriptive metadata stored in every exported file (the safetensors `__metadata__` map).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportMeta {
    /// Architecture name, e.g. `"lenet300"`.
    pub architecture: String,
    /// Dataset the network was trained on, e.g. `"mnist"`.
    pub dataset: String,
    /// Shape of one input example without the batch dimension, e.g. `[1, 28, 28]`. Three
    /// entries are read as `[C, H, W]`; any other length as a flat vector of `prod` values.
    pub input_shape: Vec<usize>,
    /// Number of output classes; must equal the number of values the last layer outputs.
    pub classes: usize,
    /// Test accuracy in `[0, 1]` if known.
    pub accuracy: Option<f64>,
    /// Fraction of prunable weights kept, per layer with weights, in layer order. May be left empty when
    /// exporting: the exporter then fills it (and `total_density`) from the masks. When given,
    /// it must match the masks (within 1e-4); see [`ExportModel::recompute_densities`].
    pub density_per_layer: Vec<(String, f64)>,
    /// Fraction of all prunable weights kept.
    pub total_density: f64,
    /// How raw inputs (u8 pixels, unnormalised floats) become the network's inputs:
    /// `(raw · scale − mean[c]) / std[c]` per input channel; stored as `input_scale`,
    /// `input_mean`, `input_std`. `None` when unknown (files written before these keys).
    #[serde(default)]
    pub preprocessing: Option<Preprocessing>,
    /// Free-form extra entries (e.g. seed, git commit). Keys must not collide with the reserved
    /// keys listed in FORMAT.md.
    pub extra: BTreeMap<String, String>,
}

impl ExportMeta {
    /// Number of input channels: `C` of a `[C, H, W]` input shape; for any other shape every
    /// one of the `prod(input_shape)` values is its own channel (as `n × 1 × 1`).
    pub fn input_channels(&self) -> usize {
        match self.input_shape[..] {
            [c, _, _] => c,
            _ => self.input_shape.iter().product(),
        }
    }
}

/// The tensors of one layer, as the trainer holds them. Layers without weights (pooling,
/// flatten, add) take `LayerTensors::default()`: empty weight and mask, no bias.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct LayerTensors {
    /// Effective weights, `out x in` row-major (conv2d: `out x in x kh x kw`), zeros where
    /// pruned. (The exporter multiplies by
    /// the mask's Heaviside again, so raw weights are accepted too.)
    pub weight: Vec<f32>,
    /// Bias of length `out`, present iff the spec says `bias: true`.
    pub bias: Option<Vec<f32>>,
    /// The raw mask parameters, same shape as `weight`; a weight is present where `m >= 0`.
    pub mask: Vec<f32>,
}

impl LayerTensors {
    /// Number of present weights (`m >= 0`).
    pub fn kept(&self) -> usize {
        self.mask.iter().filter(|m| **m >= 0.0).count()
    }
}

/// A whole network ready to be exported: metadata plus one `(spec, tensors)` pair per layer in
/// execution order.
///
/// Densities (`density_per_layer`) list only the layers with weights.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportModel {
    /// Descriptive metadata.
    pub meta: ExportMeta,
    /// Layers in execution order.
    pub layers: Vec<(LayerSpec, LayerTensors)>,
}

impl ExportModel {
    /// Sets `meta.density_per_layer` and `meta.total_density` from the masks (`m >= 0` counts
    /// as kept). Call this after changing masks so the exporter's consistency check passes.
    pub fn recompute_densities(&mut self) {
        let (per, total) = densities(&self.layers);
        self.meta.density_per_layer = per;
        self.meta.total_density = total;
    }
}

/// Per-layer and total densities computed from the masks.
pub(crate) fn densities(layers: &[(LayerSpec, LayerTensors)]) -> (Vec<(String, f64)>, f64) {
    let mut kept_all = 0usize;
    let mut total_all = 0usize;
    let per = layers
        .iter()
        .filter(|(spec, _)| spec.has_weights())
        .map(|(spec, t)| {
            let kept = t.kept();
            let total = t.mask.len();
            kept_all += kept;
            total_all += total;
            (spec.name().to_string(), ratio(kept, total))
        })
        .collect();
    (per, ratio(kept_all, total_all))
}

/// `kept / total`, defined as 1 for an empty layer.
pub(crate) fn ratio(kept: usize, total: usize) -> f64 {
    if total == 0 {
        1.0
    } else {
        kept as f64 / total as f64
    }
}

/// Which of the two file layouts to write (see FORMAT.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `hyperflux-dense-v1`: `{name}.weight`, `{name}.bias`, `{name}.mask` as f32, loadable by
    /// any safetensors tool.
    Dense,
    /// `hyperflux-sparse-v1`: CSR per layer with the narrowest index types, no masks; for
    /// inference.
    Sparse,
}

impl Format {
    /// The value of the `format` metadata key for this layout.
    pub fn tag(self) -> &'static str {
        match self {
            Format::Dense => "hyperflux-dense-v1",
            Format::Sparse => "hyperflux-sparse-v1",
        }
    }

    /// Parses a `format` metadata value.
    pub fn from_tag(tag: &str) -> Option<Format> {
        match tag {
            "hyperflux-dense-v1" => Some(Format::Dense),
            "hyperflux-sparse-v1" => Some(Format::Sparse),
            _ => None,
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    /// Parses `dense` / `sparse` (as a CLI flag would say it) or a full `format` tag.
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "dense" => Ok(Format::Dense),
            "sparse" => Ok(Format::Sparse),
            other => Format::from_tag(other)
                .ok_or_else(|| format!("unknown format '{other}' (expected 'dense' or 'sparse')")),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Dense => "dense",
            Format::Sparse => "sparse",
        })
    }
}

/// Folds an inference-mode BatchNorm that follows a convolution (or linear layer) into that
/// layer's weight and bias, so the exported file needs no BatchNorm layer:
/// with `s[o] = gamma[o] / sqrt(var[o] + eps)`, `weight[o, ..] *= s[o]` and
/// `bias[o] = (bias[o] − mean[o])·s[o] + beta[o]` (a missing bias counts as 0 and is created;
/// set the spec's `bias: true`). Masks are unchanged, so the pruning pattern is preserved.
///
/// Fails (and changes nothing) when the per-channel vectors do not all have one entry per
/// output channel, the weight is not a whole number of channel rows, or a scale is not finite.
pub fn fold_batch_norm(
    tensors: &mut LayerTensors,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> Result<(), String> {
    let out = gamma.len();
    if beta.len() != out || mean.len() != out || var.len() != out {
        return Err(format!(
            "batch-norm vectors have lengths {}/{}/{}/{} (gamma/beta/mean/var); they must be equal",
            out,
            beta.len(),
            mean.len(),
            var.len()
        ));
    }
    if out == 0 || !tensors.weight.len().is_multiple_of(out) {
        return Err(format!(
            "weight has {} values, not a whole number of rows for {out} channels",
            tensors.weight.len()
        ));
    }
    if let Some(b) = &tensors.bias {
        if b.len() != out {
            return Err(format!("bias has {} values, expected {out}", b.len()));
        }
    }
    let scale: Vec<f32> = (0..out).map(|o| gamma[o] / (var[o] + eps).sqrt()).collect();
    if let Some(o) = scale.iter().position(|s| !s.is_finite()) {
        return Err(format!(
            "channel {o}: gamma / sqrt(var + eps) = {} is not finite",
            scale[o]
        ));
    }
    let per = tensors.weight.len() / out;
    for (row, s) in tensors.weight.chunks_exact_mut(per).zip(&scale) {
        for w in row {
            *w *= s;
        }
    }
    let old = tensors.bias.take().unwrap_or_else(|| vec![0.0; out]);
    tensors.bias = Some(
        (0..out)
            .map(|o| (old[o] - mean[o]) * scale[o] + beta[o])
            .collect(),
    );
    Ok(())
}
