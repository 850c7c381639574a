//! The in-memory description of an exported network: layer specs, metadata and tensors.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One layer of an exported network.
///
/// An enum (not a struct) so that convolution and other layer kinds can be added later without
/// changing the file format's `layers` list: each entry carries a `"type"` tag, e.g.
/// `{"type":"linear","name":"fc1","in_features":784,"out_features":300,"bias":true,"activation":"relu"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    /// A fully connected layer `y = act(W x + b)` with `W` of shape `out_features x in_features`.
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
    },
}

impl LayerSpec {
    /// The layer's unique name.
    pub fn name(&self) -> &str {
        match self {
            LayerSpec::Linear { name, .. } => name,
        }
    }

    /// Width of the layer's input (flattened).
    pub fn in_features(&self) -> usize {
        match self {
            LayerSpec::Linear { in_features, .. } => *in_features,
        }
    }

    /// Width of the layer's output (flattened).
    pub fn out_features(&self) -> usize {
        match self {
            LayerSpec::Linear { out_features, .. } => *out_features,
        }
    }

    /// Whether the layer has a bias.
    pub fn has_bias(&self) -> bool {
        match self {
            LayerSpec::Linear { bias, .. } => *bias,
        }
    }

    /// The activation that follows the layer.
    pub fn activation(&self) -> Activation {
        match self {
            LayerSpec::Linear { activation, .. } => *activation,
        }
    }

    /// Number of prunable weights (`out_features * in_features`), `None` on overflow.
    pub fn weight_count(&self) -> Option<usize> {
        self.out_features().checked_mul(self.in_features())
    }
}

/// Activation applied after a layer's bias. Serialised as `"none"` / `"relu"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Identity (e.g. the logits layer).
    None,
    /// `max(x, 0)`.
    Relu,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
        }
    }
}

/// Descriptive metadata stored in every exported file (the safetensors `__metadata__` map).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportMeta {
    /// Architecture name, e.g. `"lenet300"`.
    pub architecture: String,
    /// Dataset the network was trained on, e.g. `"mnist"`.
    pub dataset: String,
    /// Shape of one input example without the batch dimension, e.g. `[1, 28, 28]`; its product
    /// must equal the first layer's `in_features`.
    pub input_shape: Vec<usize>,
    /// Number of output classes; must equal the last layer's `out_features`.
    pub classes: usize,
    /// Test accuracy in `[0, 1]` if known.
    pub accuracy: Option<f64>,
    /// Fraction of prunable weights kept, per layer, in layer order. May be left empty when
    /// exporting: the exporter then fills it (and `total_density`) from the masks. When given,
    /// it must match the masks (within 1e-4); see [`ExportModel::recompute_densities`].
    pub density_per_layer: Vec<(String, f64)>,
    /// Fraction of all prunable weights kept.
    pub total_density: f64,
    /// Free-form extra entries (e.g. seed, git commit). Keys must not collide with the reserved
    /// keys listed in FORMAT.md.
    pub extra: BTreeMap<String, String>,
}

/// The tensors of one layer, as the trainer holds them.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTensors {
    /// Effective weights, `out x in` row-major, zeros where pruned. (The exporter multiplies by
    /// the mask's Heaviside again, so raw weights are accepted too.)
    pub weight: Vec<f32>,
    /// Bias of length `out`, present iff the spec says `bias: true`.
    pub bias: Option<Vec<f32>>,
    /// The raw mask parameters, `out x in`; a weight is present where `m >= 0`.
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
