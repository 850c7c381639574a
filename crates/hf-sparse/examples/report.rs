//! Prints file sizes and sparse-vs-dense timings for synthetic LeNet-300-100 at 95/98/99%
//! sparsity and for the synthetic residual conv net (`synthetic::conv_net(16, 32, ..)`,
//! ResNet-20 first-stage shapes) at 90/95/98%: the median per call (as `bench::bench_model`
//! reports it) and the best sample (the least disturbed by other processes on a shared
//! machine). For the conv net it also times one ResNet-20 stage-1 layer (16→16, 3x3, 32x32)
//! with the sparse conv kernels (direct, CSR × im2col, and auto — the shifted kernel for this
//! stride-1 layer) and the dense one.
//!
//! `cargo run -p hf-sparse --release --example report [runs] [out_dir] [all|mlp|conv]` — with
//! `out_dir`, the exported files are kept there for inspection.

use hf_sparse::bench::{self, InferBench};
use hf_sparse::{
    load, synthetic, write_export, Activation, ExportMeta, ExportModel, Format, LayerSpec, Model,
    SparseConv,
};
use std::time::{Duration, Instant};

/// Best per-call time over `runs` samples of `reps` calls.
fn best(b: &InferBench, path: Format, batch: usize, runs: usize) -> Duration {
    let probe = Instant::now();
    b.run(path, batch);
    let reps = (300_000 / probe.elapsed().as_nanos().max(1)).clamp(1, 10_000) as u32;
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                b.run(path, batch);
            }
            t.elapsed() / reps
        })
        .min()
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(31);
    let tmp = tempfile::tempdir()?;
    let dir_arg = std::env::args().nth(2).map(std::path::PathBuf::from);
    let dir = dir_arg.as_deref().unwrap_or(tmp.path());
    let weights_bytes = 266_200u64 * 4;
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "rayon threads: {}; load average: {}; dense fp32 weights: {weights_bytes} B",
        rayon::current_num_threads(),
        load_avg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let what = std::env::args().nth(3).unwrap_or_else(|| "all".into());
    if what == "all" || what == "conv" {
        conv_report(runs, dir)?;
    }
    if what != "all" && what != "mlp" {
        return Ok(());
    }
    for sp in [95.0, 98.0, 99.0] {
        let net = synthetic::lenet300(sp, 7);
        let dense_path = dir.join(format!("lenet_{sp}.dense.safetensors"));
        let sparse_path = dir.join(format!("lenet_{sp}.sparse.safetensors"));
        let dense_bytes = write_export(&dense_path, &net, Format::Dense)?;
        let sparse_bytes = write_export(&sparse_path, &net, Format::Sparse)?;
        let model = load(&sparse_path)?;
        let nnz: usize = model.flops().iter().map(|f| f.nnz).sum();
        println!(
            "\n== LeNet-300-100 at {sp}% sparsity: nnz {nnz}; dense file {dense_bytes} B; sparse file {sparse_bytes} B = {:.2}% of the fp32 weights, {:.2}% of the dense file",
            100.0 * sparse_bytes as f64 / weights_bytes as f64,
            100.0 * sparse_bytes as f64 / dense_bytes as f64
        );
        let batches = [1usize, 64, 256];
        let rows = bench::bench_model(&model, &batches, runs);
        println!("median per call:");
        print!("{}", bench::format_rows(&rows));
        let b = InferBench::new(&model, 256, 0x5eed);
        println!("best per call:");
        for batch in batches {
            let s = best(&b, Format::Sparse, batch, runs);
            let d = best(&b, Format::Dense, batch, runs);
            println!(
                "{batch:>5} {:>11.2}µs {:>11.2}µs {:>7.1}x {:>13.0} {:>13.0}",
                s.as_secs_f64() * 1e6,
                d.as_secs_f64() * 1e6,
                d.as_secs_f64() / s.as_secs_f64(),
                batch as f64 / s.as_secs_f64(),
                batch as f64 / d.as_secs_f64()
            );
        }
    }
    println!(
        "load average after the conv runs: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}

/// One ResNet-20 stage-1 convolution (16→16 channels, 3x3, stride 1, pad 1, 32x32, ReLU) as a
/// one-layer network, pruned to `sparsity` percent.
fn resnet20_layer(sparsity: f64) -> ExportModel {
    let net = synthetic::conv_net(16, 32, sparsity, 3);
    let (spec, t) = net
        .layers
        .iter()
        .find(|(s, _)| s.name() == "b1_conv1")
        .cloned()
        .expect("conv_net has b1_conv1");
    let spec = match spec {
        LayerSpec::Conv2d {
            name,
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            bias,
            ..
        } => LayerSpec::Conv2d {
            name,
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            dilation: [1, 1],
            groups: 1,
            bias,
            activation: Activation::Relu,
            input: None,
        },
        other => other,
    };
    let mut m = ExportModel {
        meta: ExportMeta {
            architecture: "resnet20_layer".into(),
            dataset: "synthetic".into(),
            input_shape: vec![16, 32, 32],
            classes: 16 * 32 * 32,
            accuracy: None,
            density_per_layer: vec![],
            total_density: 1.0,
            preprocessing: None,
            extra: Default::default(),
        },
        layers: vec![(spec, t)],
    };
    m.recompute_densities();
    m
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn conv_report(runs: usize, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    println!("\n#### one ResNet-20 stage-1 conv layer, 16→16 3x3 at 32x32 (best per call, µs)");
    println!("sparsity batch   direct   im2col     auto    dense  dense/auto");
    for sp in [90.0, 95.0, 98.0] {
        let model = Model::from_export(&resnet20_layer(sp))?;
        for batch in [1usize, 32] {
            let direct = InferBench::new(
                &model.clone().with_sparse_conv(SparseConv::Direct),
                batch,
                1,
            );
            let im2col = InferBench::new(
                &model.clone().with_sparse_conv(SparseConv::Im2col),
                batch,
                1,
            );
            let d = best(&direct, Format::Sparse, batch, runs);
            let i = best(&im2col, Format::Sparse, batch, runs);
            let dense = best(&direct, Format::Dense, batch, runs);
            let auto = best(
                &InferBench::new(&model, batch, 1),
                Format::Sparse,
                batch,
                runs,
            );
            println!(
                "{sp:>7}% {batch:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>10.2}x",
                us(d),
                us(i),
                us(auto),
                us(dense),
                dense.as_secs_f64() / auto.as_secs_f64()
            );
        }
    }
    for sp in [90.0, 95.0, 98.0] {
        let net = synthetic::conv_net(16, 32, sp, 7);
        let dense_path = dir.join(format!("conv_{sp}.dense.safetensors"));
        let sparse_path = dir.join(format!("conv_{sp}.sparse.safetensors"));
        let dense_bytes = write_export(&dense_path, &net, Format::Dense)?;
        let sparse_bytes = write_export(&sparse_path, &net, Format::Sparse)?;
        let model = load(&sparse_path)?;
        let f = model.flops();
        let nnz: usize = f.iter().map(|l| l.nnz).sum();
        let total: usize = f.iter().map(|l| l.total).sum();
        let dm: u64 = f.iter().map(|l| l.dense_macs).sum();
        let sm: u64 = f.iter().map(|l| l.sparse_macs).sum();
        println!(
            "\n== conv_net(16, 32) at {sp}% sparsity: nnz {nnz}/{total}; MACs/image dense {dm}, sparse {sm}; dense file {dense_bytes} B; sparse file {sparse_bytes} B ({:.1}% of dense)",
            100.0 * sparse_bytes as f64 / dense_bytes as f64
        );
        let batches = [1usize, 32];
        let rows = bench::bench_model(&model, &batches, runs);
        println!("median per call:");
        print!("{}", bench::format_rows(&rows));
        let b = InferBench::new(&model, 32, 0x5eed);
        println!("best per call:");
        for batch in batches {
            let s = best(&b, Format::Sparse, batch, runs);
            let d = best(&b, Format::Dense, batch, runs);
            println!(
                "{batch:>5} {:>11.2}µs {:>11.2}µs {:>7.1}x {:>13.0} {:>13.0}",
                us(s),
                us(d),
                d.as_secs_f64() / s.as_secs_f64(),
                batch as f64 / s.as_secs_f64(),
                batch as f64 / d.as_secs_f64()
            );
        }
    }
    println!(
        "load average after the conv runs: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    Ok(())
}
