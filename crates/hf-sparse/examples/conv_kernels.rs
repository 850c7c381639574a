//! One-layer timings behind `SparseConv::Auto`'s lowering rule: random 3x3 convolutions (pad 1,
//! ReLU) of ResNet-20 and `vgg-narrow` shapes at 2, 5, 10 and 30% density, batch 1, 8 and 32,
//! on the calling thread (run with `RAYON_NUM_THREADS=1`), with the plane kernel (shifted for
//! stride 1, direct for stride 2), CSR × im2col and the lowered matrix. Best per-call time of
//! 30 samples, in µs: the least disturbed by other processes on a shared machine.
//!
//! `RAYON_NUM_THREADS=1 cargo run --release -p hf-sparse --example conv_kernels`

use hf_sparse::bench::InferBench;
use hf_sparse::{
    Activation, ExportMeta, ExportModel, Format, LayerSpec, LayerTensors, Model, SparseConv,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// Best per-call time (µs) over 30 samples of about 0.2 ms each.
fn best(model: &Model, batch: usize) -> f64 {
    let b = InferBench::new(model, batch, 1);
    let probe = Instant::now();
    b.run(Format::Sparse, batch);
    let reps = (200_000 / probe.elapsed().as_nanos().max(1)).clamp(1, 10_000) as u32;
    (0..30)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                b.run(Format::Sparse, batch);
            }
            t.elapsed() / reps
        })
        .min()
        .unwrap_or_default()
        .as_secs_f64()
        * 1e6
}

/// A one-layer network: `cin → cout` 3x3 conv, pad 1, on `side x side` inputs.
fn layer(
    rng: &mut ChaCha8Rng,
    cin: usize,
    cout: usize,
    side: usize,
    stride: usize,
    density: f64,
) -> ExportModel {
    let n = cout * cin * 9;
    let mut weight = vec![0f32; n];
    let mut mask = vec![-1f32; n];
    for (w, m) in weight.iter_mut().zip(&mut mask) {
        if rng.gen_bool(density) {
            *w = rng.gen_range(-0.1f32..0.1);
            *m = 1.0;
        }
    }
    let spec = LayerSpec::Conv2d {
        name: "conv".into(),
        in_channels: cin,
        out_channels: cout,
        kernel: [3, 3],
        stride: [stride, stride],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
        bias: true,
        activation: Activation::Relu,
        input: None,
    };
    let out = (side - 1) / stride + 1;
    let mut m = ExportModel {
        meta: ExportMeta {
            architecture: "conv_layer".into(),
            dataset: "synthetic".into(),
            input_shape: vec![cin, side, side],
            classes: cout * out * out,
            accuracy: None,
            density_per_layer: vec![],
            total_density: 1.0,
            preprocessing: None,
            extra: Default::default(),
        },
        layers: vec![(
            spec,
            LayerTensors {
                weight,
                bias: Some(vec![0.01; cout]),
                mask,
            },
        )],
    };
    m.recompute_densities();
    m
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    println!("layer | density | per batch 1, 8, 32: plane kernel / im2col / lowered (µs)");
    for (cin, cout, side, stride) in [
        (16, 16, 32, 1),
        (16, 32, 32, 2),
        (32, 32, 16, 1),
        (32, 64, 16, 2),
        (64, 64, 8, 1),
        (16, 16, 14, 1),
        (64, 64, 7, 1),
        (128, 128, 4, 1),
    ] {
        for density in [0.02, 0.05, 0.1, 0.3] {
            let base = Model::from_export(&layer(&mut rng, cin, cout, side, stride, density))?;
            let plane = if stride == 1 {
                SparseConv::Shifted
            } else {
                SparseConv::Direct
            };
            let mut line = format!("{cin}->{cout} {side}x{side} stride {stride} | {density:.2} |");
            for batch in [1usize, 8, 32] {
                let t: Vec<f64> = [plane, SparseConv::Im2col, SparseConv::Lowered]
                    .into_iter()
                    .map(|algo| best(&base.clone().with_sparse_conv(algo), batch))
                    .collect();
                line += &format!(" b{batch} {:.1} / {:.1} / {:.1}", t[0], t[1], t[2]);
            }
            println!("{line}");
        }
    }
    Ok(())
}
