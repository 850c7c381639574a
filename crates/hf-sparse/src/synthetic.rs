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
                input: None,
            },
            LayerTensors {
                weight,
                bias: Some(bias),
                mask,
            },
        ));
    }
    synthetic_model(
        architecture.to_string(),
        input_shape,
        widths.last().copied().unwrap_or(0),
        seed,
        ("sparsity_percent", sp.to_string()),
        layers,
    )
}

/// Random kept weights and masks for one layer of `n` weights with `fan_in` inputs per output,
/// keeping exactly `round(n · density)`, Kaiming-uniform for the kept fan-in.
fn pruned(rng: &mut ChaCha8Rng, n: usize, fan_in: usize, density: f64) -> (Vec<f32>, Vec<f32>) {
    let kept = (((n as f64) * density).round() as usize).min(n);
    let bound = (6.0 / ((fan_in as f64 * density).max(1.0))).sqrt() as f32;
    let mut weight = vec![0.0f32; n];
    let mut mask: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..-0.01)).collect();
    for idx in rand::seq::index::sample(rng, n, kept) {
        weight[idx] = rng.gen_range(-bound..bound);
        mask[idx] = rng.gen_range(0.01f32..1.0);
    }
    (weight, mask)
}

/// A small randomly pruned residual convolutional network in the CIFAR ResNet layout, for tests
/// and benchmarks: input `3 x image_size x image_size`, `base_channels` = C, 10 classes.
///
/// | layer | type | shape |
/// | --- | --- | --- |
/// | `conv1` | conv2d 3→C, 3x3, stride 1, pad 1, BN folded, ReLU | C x S x S |
/// | `b1_conv1` | conv2d C→C, 3x3, pad 1, BN folded, ReLU | C x S x S |
/// | `b1_conv2` | conv2d C→C, 3x3, pad 1, BN folded | C x S x S |
/// | `b1_add` | add(`b1_conv2`, `conv1`), ReLU (identity shortcut) | C x S x S |
/// | `b2_conv1` | conv2d C→2C, 3x3, stride 2, pad 1, BN folded, ReLU | 2C x S' x S' |
/// | `b2_conv2` | conv2d 2C→2C, 3x3, pad 1, BN folded | 2C x S' x S' |
/// | `b2_proj` | conv2d C→2C, 1x1, stride 2 on `b1_add`, BN folded (projection shortcut) | 2C x S' x S' |
/// | `b2_add` | add(`b2_conv2`, `b2_proj`), ReLU | 2C x S' x S' |
/// | `pool1` | avg_pool2d 2x2, stride 2 | 2C x S'/2 x S'/2 |
/// | `pool2` | max_pool2d 3x3, stride 1, pad 1 | same |
/// | `gap` | global_avg_pool | 2C |
/// | `flat` | flatten | 2C |
/// | `fc` | linear 2C→10 | 10 |
///
/// with `S' = ⌊(S − 1)/2⌋ + 1`. Every conv2d and the linear layer keep exactly
/// `round(N · density)` of their N weights (density = 1 − sparsity_percent/100, clamped as in
/// [`lenet300`]), Kaiming-uniform for the kept fan-in; each convolution is followed by a random
/// inference-mode BatchNorm that is folded into its weight and bias with
/// [`fold_batch_norm`](crate::fold_batch_norm), as an exporter does. `base_channels` and
/// `image_size` are raised to at least 1 and 3 (the pools need `S' >= 2`). Deterministic for
/// a given seed. `conv_net(16, 32, ..)` has ResNet-20's first-stage layer shapes
/// (16 channels at 32x32) and ≈ 8.8 M dense multiply-adds per image.
pub fn conv_net(
    base_channels: usize,
    image_size: usize,
    sparsity_percent: f64,
    seed: u64,
) -> ExportModel {
    let sp = if sparsity_percent.is_nan() {
        0.0
    } else {
        sparsity_percent.clamp(0.0, 100.0)
    };
    let density = 1.0 - sp / 100.0;
    let c = base_channels.max(1);
    let s = image_size.max(3);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut layers = Vec::new();
    let conv = |rng: &mut ChaCha8Rng,
                name: &str,
                cin: usize,
                cout: usize,
                k: usize,
                stride: usize,
                relu: bool,
                input: Option<&str>| {
        let act = if relu {
            Activation::Relu
        } else {
            Activation::None
        };
        bn_conv(rng, density, name, (cin, cout, 1), k, stride, 1, act, input)
    };
    layers.push(conv(&mut rng, "conv1", 3, c, 3, 1, true, None));
    layers.push(conv(&mut rng, "b1_conv1", c, c, 3, 1, true, None));
    layers.push(conv(&mut rng, "b1_conv2", c, c, 3, 1, false, None));
    let add = |name: &str, a: &str, b: &str| {
        (
            LayerSpec::Add {
                name: name.to_string(),
                inputs: [a.to_string(), b.to_string()],
                activation: Activation::Relu,
            },
            LayerTensors::default(),
        )
    };
    layers.push(add("b1_add", "b1_conv2", "conv1"));
    layers.push(conv(&mut rng, "b2_conv1", c, 2 * c, 3, 2, true, None));
    layers.push(conv(&mut rng, "b2_conv2", 2 * c, 2 * c, 3, 1, false, None));
    layers.push(conv(
        &mut rng,
        "b2_proj",
        c,
        2 * c,
        1,
        2,
        false,
        Some("b1_add"),
    ));
    layers.push(add("b2_add", "b2_conv2", "b2_proj"));
    let plain = |spec: LayerSpec| (spec, LayerTensors::default());
    layers.push(plain(LayerSpec::AvgPool2d {
        name: "pool1".into(),
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        input: None,
    }));
    layers.push(plain(LayerSpec::MaxPool2d {
        name: "pool2".into(),
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        input: None,
    }));
    layers.push(plain(LayerSpec::GlobalAvgPool {
        name: "gap".into(),
        input: None,
    }));
    layers.push(plain(LayerSpec::Flatten {
        name: "flat".into(),
        input: None,
    }));
    layers.push(classifier(&mut rng, "fc", 2 * c, density));
    synthetic_model(
        format!("conv_net_c{c}_s{s}"),
        vec![3, s, s],
        10,
        seed,
        ("sparsity_percent", sp.to_string()),
        layers,
    )
}

/// The synthetic conv nets' last layer: a randomly pruned linear layer `inp → 10` with small
/// random biases, no activation.
fn classifier(
    rng: &mut ChaCha8Rng,
    name: &str,
    inp: usize,
    density: f64,
) -> (LayerSpec, LayerTensors) {
    let (weight, mask) = pruned(rng, 10 * inp, inp, density);
    let bias: Vec<f32> = (0..10).map(|_| rng.gen_range(-0.05f32..0.05)).collect();
    (
        LayerSpec::Linear {
            name: name.to_string(),
            in_features: inp,
            out_features: 10,
            bias: true,
            activation: Activation::None,
            input: None,
        },
        LayerTensors {
            weight,
            bias: Some(bias),
            mask,
        },
    )
}

/// A synthetic network's export: metadata naming the generator, the seed and one setting
/// (`extra`), densities computed from the masks.
fn synthetic_model(
    architecture: impl Into<String>,
    input_shape: Vec<usize>,
    classes: usize,
    seed: u64,
    extra: (&str, String),
    layers: Vec<(LayerSpec, LayerTensors)>,
) -> ExportModel {
    let mut meta_extra = BTreeMap::new();
    meta_extra.insert("generator".to_string(), "hf-sparse synthetic".to_string());
    meta_extra.insert("seed".to_string(), seed.to_string());
    meta_extra.insert(extra.0.to_string(), extra.1);
    let mut model = ExportModel {
        meta: ExportMeta {
            architecture: architecture.into(),
            dataset: "synthetic".to_string(),
            input_shape,
            classes,
            accuracy: None,
            density_per_layer: Vec::new(),
            total_density: 1.0,
            preprocessing: None,
            extra: meta_extra,
        },
        layers,
    };
    model.recompute_densities();
    model
}

/// One convolution of the synthetic conv nets: random pruned weights for its fan-in, a random
/// inference-mode BatchNorm folded in, padding `dilation·(k/2)`.
#[allow(clippy::too_many_arguments)]
fn bn_conv(
    rng: &mut ChaCha8Rng,
    density: f64,
    name: &str,
    (cin, cout, groups): (usize, usize, usize),
    k: usize,
    stride: usize,
    dilation: usize,
    activation: Activation,
    input: Option<&str>,
) -> (LayerSpec, LayerTensors) {
    let fan_in = cin / groups * k * k;
    let (weight, mask) = pruned(rng, cout * fan_in, fan_in, density);
    let mut t = LayerTensors {
        weight,
        bias: None,
        mask,
    };
    let gamma: Vec<f32> = (0..cout).map(|_| rng.gen_range(0.5f32..1.5)).collect();
    let beta: Vec<f32> = (0..cout).map(|_| rng.gen_range(-0.1f32..0.1)).collect();
    let mean: Vec<f32> = (0..cout).map(|_| rng.gen_range(-0.1f32..0.1)).collect();
    let var: Vec<f32> = (0..cout).map(|_| rng.gen_range(0.5f32..1.5)).collect();
    // cannot fail: one entry per channel, positive variances
    let _ = crate::spec::fold_batch_norm(&mut t, &gamma, &beta, &mean, &var, 1e-5);
    let pad = dilation * (k / 2);
    (
        LayerSpec::Conv2d {
            name: name.to_string(),
            in_channels: cin,
            out_channels: cout,
            kernel: [k, k],
            stride: [stride, stride],
            padding: [pad, pad],
            dilation: [dilation, dilation],
            groups,
            bias: true,
            activation,
            input: input.map(str::to_string),
        },
        t,
    )
}

/// A small randomly pruned MobileNet-style network (depthwise-separable blocks, ReLU6, an
/// inverted-residual sum, a dilated and a grouped convolution), for tests of those layer
/// kinds: input `3 x image_size x image_size`, `base_channels` = C, 10 classes.
///
/// | layer | type | shape |
/// | --- | --- | --- |
/// | `conv1` | conv2d 3→C, 3x3, stride 2, pad 1, BN folded, ReLU6 | C x S' x S' |
/// | `dw1` | depthwise conv2d C→C (groups C), 3x3, pad 1, ReLU6 | C x S' x S' |
/// | `pw1` | conv2d C→C, 1x1 (linear bottleneck) | C x S' x S' |
/// | `add1` | add(`pw1`, `conv1`), no activation | C x S' x S' |
/// | `expand` | conv2d C→2C, 1x1, ReLU6 | 2C x S' x S' |
/// | `dw2` | depthwise 2C→2C, 3x3, dilation 2, pad 2, ReLU6 | 2C x S' x S' |
/// | `gconv` | conv2d 2C→2C, groups 2, 3x3, pad 1, ReLU | 2C x S' x S' |
/// | `dw3` | depthwise with channel multiplier 2: 2C→4C (groups 2C), 3x3, stride 2, pad 1, ReLU6 | 4C x S'' x S'' |
/// | `gap`, `flat` | global_avg_pool, flatten | 4C |
/// | `fc` | linear 4C→10 | 10 |
///
/// with `S' = ⌊(S − 1)/2⌋ + 1`, `S'' = ⌊(S' − 1)/2⌋ + 1`. Pruned and initialised as
/// [`conv_net`]; `base_channels` and `image_size` are raised to at least 1 and 3.
/// Deterministic for a given seed.
pub fn mobile_net(
    base_channels: usize,
    image_size: usize,
    sparsity_percent: f64,
    seed: u64,
) -> ExportModel {
    let sp = if sparsity_percent.is_nan() {
        0.0
    } else {
        sparsity_percent.clamp(0.0, 100.0)
    };
    let d = 1.0 - sp / 100.0;
    let c = base_channels.max(1);
    let s = image_size.max(3);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let r = &mut rng;
    let (relu6, none) = (Activation::Relu6, Activation::None);
    let mut layers = vec![
        bn_conv(r, d, "conv1", (3, c, 1), 3, 2, 1, relu6, None),
        bn_conv(r, d, "dw1", (c, c, c), 3, 1, 1, relu6, None),
        bn_conv(r, d, "pw1", (c, c, 1), 1, 1, 1, none, None),
        (
            LayerSpec::Add {
                name: "add1".into(),
                inputs: ["pw1".into(), "conv1".into()],
                activation: none,
            },
            LayerTensors::default(),
        ),
        bn_conv(r, d, "expand", (c, 2 * c, 1), 1, 1, 1, relu6, None),
        bn_conv(r, d, "dw2", (2 * c, 2 * c, 2 * c), 3, 1, 2, relu6, None),
        bn_conv(
            r,
            d,
            "gconv",
            (2 * c, 2 * c, 2),
            3,
            1,
            1,
            Activation::Relu,
            None,
        ),
        bn_conv(r, d, "dw3", (2 * c, 4 * c, 2 * c), 3, 2, 1, relu6, None),
        (
            LayerSpec::GlobalAvgPool {
                name: "gap".into(),
                input: None,
            },
            LayerTensors::default(),
        ),
        (
            LayerSpec::Flatten {
                name: "flat".into(),
                input: None,
            },
            LayerTensors::default(),
        ),
    ];
    layers.push(classifier(r, "fc", 4 * c, d));
    synthetic_model(
        format!("mobile_net_c{c}_s{s}"),
        vec![3, s, s],
        10,
        seed,
        ("sparsity_percent", sp.to_string()),
        layers,
    )
}

/// The per-layer densities (fraction kept, convs in order, then the classifier) that Hyperflux
/// reached pruning `vgg-narrow` to 95% on Fashion-MNIST (`results/conv/prune95/records.csv`,
/// last epoch): it keeps the early convs nearly dense and prunes the late ones hardest.
pub const VGG_NARROW_95_DENSITIES: [f64; 7] =
    [0.9097, 0.4657, 0.2273, 0.1048, 0.02958, 0.006368, 0.5281];

/// A randomly pruned `vgg-narrow` as the training engine exports it: input `1 x 28 x 28`,
/// convs 3x3 pad 1 with BatchNorm folded and ReLU, `[16, M, 32, M, 64, 64, M, 128, 128]`
/// (`M` a 2x2 max-pool, stride 2), global average pool, flatten, linear 128→10; layers named
/// `features.{i}.conv`, `pool{i}`, `gap`, `flat`, `classifier`. `densities` gives the fraction
/// kept per conv (six) and for the classifier (seventh), each clamped to [0, 1] —
/// [`VGG_NARROW_95_DENSITIES`] reproduces the layer profile of a real 95% run, which is what
/// sets the speed. Deterministic for a given seed.
pub fn vgg_narrow(densities: &[f64; 7], seed: u64) -> ExportModel {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let d = |i: usize| {
        if densities[i].is_nan() {
            1.0
        } else {
            densities[i].clamp(0.0, 1.0)
        }
    };
    let plain = |spec: LayerSpec| (spec, LayerTensors::default());
    let mut layers = Vec::new();
    let mut cin = 1;
    let mut conv_i = 0;
    let mut pools = 0;
    for entry in [16, 0, 32, 0, 64, 64, 0, 128, 128] {
        if entry == 0 {
            pools += 1;
            layers.push(plain(LayerSpec::MaxPool2d {
                name: format!("pool{pools}"),
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
                input: None,
            }));
            continue;
        }
        let cout = entry;
        layers.push(bn_conv(
            &mut rng,
            d(conv_i),
            &format!("features.{conv_i}.conv"),
            (cin, cout, 1),
            3,
            1,
            1,
            Activation::Relu,
            None,
        ));
        cin = cout;
        conv_i += 1;
    }
    layers.push(plain(LayerSpec::GlobalAvgPool {
        name: "gap".into(),
        input: None,
    }));
    layers.push(plain(LayerSpec::Flatten {
        name: "flat".into(),
        input: None,
    }));
    layers.push(classifier(&mut rng, "classifier", cin, d(6)));
    synthetic_model(
        "vgg-narrow".to_string(),
        vec![1, 28, 28],
        10,
        seed,
        (
            "layer_densities",
            densities
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
        layers,
    )
}
