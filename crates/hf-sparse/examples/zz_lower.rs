use hf_sparse::bench::InferBench;
use hf_sparse::*;
use std::time::{Duration, Instant};
fn best(b: &InferBench, batch: usize) -> Duration {
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
        .unwrap()
}
fn main() {
    let mut seed = 1u64;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f64) / (1u64 << 31) as f64
    };
    for (cin, cout, side, stride) in [
        (16usize, 16usize, 32usize, 1usize),
        (16, 32, 32, 2),
        (32, 32, 16, 1),
        (32, 64, 16, 2),
        (64, 64, 8, 1),
        (16, 16, 14, 1),
        (64, 64, 7, 1),
        (128, 128, 4, 1),
    ] {
        for density in [0.02, 0.05, 0.1, 0.3] {
            let n = cout * cin * 9;
            let mut w = vec![0f32; n];
            let mut m = vec![-1f32; n];
            for i in 0..n {
                if rnd() < density {
                    w[i] = (rnd() as f32 - 0.5) * 0.2;
                    m[i] = 1.0;
                }
            }
            let spec = LayerSpec::Conv2d {
                name: "c".into(),
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
            let t = LayerTensors {
                weight: w,
                bias: Some(vec![0.01; cout]),
                mask: m,
            };
            let so = (side + 2 - 3) / stride + 1;
            let mut em = ExportModel {
                meta: ExportMeta {
                    architecture: "x".into(),
                    dataset: "s".into(),
                    input_shape: vec![cin, side, side],
                    classes: cout * so * so,
                    accuracy: None,
                    density_per_layer: vec![],
                    total_density: 1.0,
                    preprocessing: None,
                    extra: Default::default(),
                },
                layers: vec![(spec, t)],
            };
            em.recompute_densities();
            let base = Model::from_export(&em).unwrap();
            let mut line =
                format!("{cin}->{cout} {side}x{side} s{stride} out {so}x{so} d{density}:");
            for batch in [1usize, 8, 32] {
                let ma = base.clone().with_sparse_conv(if stride == 1 {
                    SparseConv::Shifted
                } else {
                    SparseConv::Direct
                });
                let mi = base.clone().with_sparse_conv(SparseConv::Im2col);
                let ml = base.clone().with_sparse_conv(SparseConv::Lowered);
                let ta = best(&InferBench::new(&ma, batch, 1), batch);
                let ti = best(&InferBench::new(&mi, batch, 1), batch);
                let tl = best(&InferBench::new(&ml, batch, 1), batch);
                line += &format!(
                    "  b{batch} plane {:.1} im2col {:.1} low {:.1}",
                    ta.as_secs_f64() * 1e6,
                    ti.as_secs_f64() * 1e6,
                    tl.as_secs_f64() * 1e6
                );
            }
            println!("{line}");
        }
    }
}
