//! Randomly pruned networks of real shapes, for benchmarks and tests without training.

use crate::spec::{Activation, ExportMeta, ExportModel, LayerSpec, LayerTensors};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// LeNet-300-100 (784→300→100→10, ReLU, biases; 266,200 prunable weights) with exactly
/// `round(N · density)` weights kept in each layer (N = that layer's weight count,
/// density = 1 − sparsity_percent/100), chosen uniformly at random.
///
/// Kept weights are Kaiming-uniform for the *kept* fan-in (bound √(6 / (in·density))), so
/// activations keep a sensible scale at any sparsity; biases are small. Masks are positive where
/// kept and negative where pruned; weights are zero where pruned. `sparsity_percent` is clamped
/// to [0, 100] (NaN counts as 0). Deterministic for a given seed.
pub fn lenet300(sparsity_percent: f64, seed: u64) -> ExportModel {
    mlp(
        "lenet300",
        &[784, 300, 100, 10],
        vec![1, 28, 28],
        sparsity_percent,
        seed,
    )
}

/// A randomly pruned multilayer perceptron with the given layer widths (`widths[0]` inputs,
/// ReLU between layers, no activation on the last), layers named `fc1`, `fc2`, …, pruned per
/// layer as in [`lenet300`]. `input_shape` must multiply to `widths[0]` for the result to
/// export (the exporter checks). Fewer than two widths give a network with no layers.
pub fn mlp(
    architecture: &str,
    widths: &[usize],
    input_shape: Vec<usize>,
    sparsity_percent: f64,
    seed: u64,
) -> ExportModel {
    let sp = if sparsity_percent.is_nan() {
        0.0
    } else {
        sparsity_percent.clamp(0.0, 100.0)
    };
    let density = 1.0 - sp / 100.0;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_layers = widths.len().saturating_sub(1);
    let mut layers = Vec::with_capacity(n_layers);
    for (i, w) in widths.windows(2).enumerate() {
        let (inp, out) = (w[0], w[1]);
        let n = inp * out;
        let kept = ((n as f64) * density).round() as usize;
        let kept = kept.min(n);
        let bound = (6.0 / ((inp as f64 * density).max(1.0))).sqrt() as f32;
        let mut weight = vec![0.0f32; n];
        let mut mask: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..-0.01)).collect();
        for idx in rand::seq::index::sample(&mut rng, n, kept) {
            weight[idx] = rng.gen_range(-bound..bound);
            mask[idx] = rng.gen_range(0.01f32..1.0);
        }
        let bias: Vec<f32> = (0..out).map(|_| rng.gen_range(-0.05f32..0.05)).collect();
        let last = i + 1 == n_layers;
        layers.push((
            LayerSpec::Linear {
                name: format!("fc{}", i + 1),
                in_features: inp,
                out_features: out,
                bias: true,
                activation: if last {
                    Activation::None
                } else {
                    Activation::Relu
                },
            },
            LayerTensors {
                weight,
                bias: Some(bias),
                mask,
            },
        ));
    }
    let mut extra = BTreeMap::new();
    extra.insert("generator".to_string(), "hf-sparse synthetic".to_string());
    extra.insert("seed".to_string(), seed.to_string());
    extra.insert("sparsity_percent".to_string(), sp.to_string());
    let mut model = ExportModel {
        meta: ExportMeta {
            architecture: architecture.to_string(),
            dataset: "synthetic".to_string(),
            input_shape,
            classes: widths.last().copied().unwrap_or(0),
            accuracy: None,
            density_per_layer: Vec::new(),
            total_density: 1.0,
            extra,
        },
        layers,
    };
    model.recompute_densities();
    model
}
