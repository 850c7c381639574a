//! `hyperflux export`, `infer` and `bench-infer`: pruned networks as compact files or standard
//! ONNX, run by the pure-Rust runtime of `hf-sparse` (no libtorch), and measured against dense
//! paths (its own, libtorch, ONNX Runtime).

use anyhow::{bail, Context, Result};
use clap::Args;
use hf_data::{DatasetSpec, LoadOptions, Pixels, Preprocessing, Split};
use hf_engine::checkpoint::Checkpoint;
use hf_engine::masked::DensityReport;
use hf_engine::trainer;
use hf_sparse::bench;
use hf_sparse::{ExportMeta, ExportModel, Format, Model};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tch::{Device, Tensor};

/// `hyperflux export`.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Checkpoint to export (from `train` or `prune`), or an exported dense/sparse file to
    /// convert (no libtorch needed then).
    pub checkpoint: PathBuf,
    /// dense: safetensors with effective weights, biases and masks under conventional names;
    /// sparse: CSR per layer with the narrowest index types (see README "Sparse file format");
    /// onnx: standard ONNX (opset 13), pruned weights as zeros, densities and input
    /// preprocessing in its metadata.
    #[arg(long, default_value = "sparse", value_parser = ["dense", "sparse", "onnx"])]
    pub format: String,
    /// Output file.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Dataset directory, used to measure the accuracy stored in the metadata (default: the
    /// checkpoint's dataset at its standard place, or the DIR of npy:DIR). Without data the
    /// accuracy is left out.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `hyperflux infer`.
#[derive(Args, Debug, Clone)]
pub struct InferArgs {
    /// Exported model file (dense or sparse).
    pub model: PathBuf,
    /// Evaluate on this dataset's test set: mnist, fashion-mnist, cifar10, cifar100 or npy:DIR
    /// (default: the model's). Raw values are preprocessed as the model file records
    /// (input_scale, input_mean, input_std).
    #[arg(long, value_name = "NAME|npy:DIR")]
    pub dataset: Option<String>,
    /// Dataset directory (default: the dataset's standard place; for npy:DIR, DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Predict single inputs: a .npy file (uint8 = raw pixels; float32/float64 = already
    /// normalised inputs, or raw values with --raw) or an IDX image file (raw pixels); one
    /// prediction per input.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// The --input file holds raw values (uint8 pixels or unnormalised floats): apply the
    /// preprocessing the model file records, (x·input_scale − input_mean) / input_std.
    #[arg(long, requires = "input")]
    pub raw: bool,
    /// Use the runtime's dense path instead of the sparse one.
    #[arg(long)]
    pub dense: bool,
    /// Also write the logits of every test image to this CSV file.
    #[arg(long)]
    pub logits: Option<PathBuf>,
}

/// `hyperflux bench-infer`.
#[derive(Args, Debug, Clone)]
pub struct BenchInferArgs {
    /// Exported model file (omit with --synthetic).
    pub model: Option<PathBuf>,
    /// Benchmark a randomly pruned network of this architecture instead: lenet300 (pruned
    /// uniformly to --sparsity) or vgg-narrow (1x28x28, with the per-layer densities Hyperflux
    /// reached at 95% on Fashion-MNIST, results/conv/prune95).
    #[arg(long)]
    pub synthetic: Option<String>,
    /// Sparsity (percent pruned) of the synthetic lenet300.
    #[arg(long, default_value_t = 98.0)]
    pub sparsity: f64,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub batch: Vec<usize>,
    /// Timed samples per measurement; the columns of a row are sampled in turn, so a burst of
    /// load from other processes falls on all of them alike.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// What each cell reports of its samples: median (a typical call) or min (the least
    /// disturbed call: steadier ratios on a shared machine).
    #[arg(long, default_value = "median", value_parser = ["median", "min"])]
    pub stat: String,
    /// Thread counts for the runtime, libtorch and ONNX Runtime (intra-op), one table each
    /// (0: all cores).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub threads: Vec<usize>,
    /// Skip the libtorch column.
    #[arg(long)]
    pub no_libtorch: bool,
    /// Skip the ONNX Runtime column.
    #[arg(long)]
    pub no_onnxruntime: bool,
    /// The sparse path's convolution kernel: auto (per layer, the default), direct, im2col,
    /// shifted (stride-1 layers; others as auto) or lowered (the conv as a sparse linear map;
    /// layers whose map is too large as auto).
    #[arg(long, default_value = "auto", value_parser = ["auto", "direct", "im2col", "shifted", "lowered"])]
    pub conv: String,
    /// Time the test images of this dataset (mnist, fashion-mnist, …, npy:DIR; preprocessed as
    /// the export recorded) instead of uniform random inputs: real images have background the
    /// first layer can skip.
    #[arg(long)]
    pub data: Option<String>,
    /// Directory of --data (default: the dataset's standard place).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// After each table row, where the runtime's time goes: per layer, sparse and dense path
    /// (layer by layer, minimum over --runs calls).
    #[arg(long)]
    pub layers: bool,
}

/// Builds the export of a checkpoint.
pub fn export_model(ck: &Checkpoint, accuracy: Option<f64>) -> Result<ExportModel> {
    let net = trainer::load_network(ck, Device::Cpu)?;
    let layers = net.export_layers().with_context(|| {
        format!(
            "model {} cannot be exported: the sparse runtime has no wiring for it, or a BatchNorm does not fold (non-finite scale / sqrt(running_var + eps))",
            net.arch()
        )
    })?;
    let d = DensityReport::of(net.masked());
    let shape = net.input_shape();
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("source".into(), ck.path.display().to_string());
    let mut model = ExportModel {
        meta: ExportMeta {
            architecture: net.arch().to_string(),
            dataset: ck.meta_str("dataset")?.to_string(),
            input_shape: shape.iter().map(|&v| v as usize).collect(),
            classes: net.classes() as usize,
            // The format stores accuracy as a fraction in [0, 1].
            accuracy: accuracy.map(|a| a / 100.0),
            density_per_layer: d.per_layer(),
            total_density: d.density(),
            preprocessing: trainer::checkpoint_preprocessing(ck)?,
            extra,
        },
        layers,
    };
    model.recompute_densities();
    Ok(model)
}

/// The input preprocessing stored in the ONNX metadata: the one the export records, else
/// (files written before it was recorded) the built-in dataset's constants; `None` when
/// neither is known.
fn preprocessing(meta: &hf_sparse::ExportMeta) -> Option<hf_sparse::Preprocessing> {
    if let Some(p) = &meta.preprocessing {
        return Some(p.clone());
    }
    let kind: hf_data::DatasetKind = meta.dataset.parse().ok()?;
    Some(hf_sparse::Preprocessing::from_f32(
        hf_sparse::Preprocessing::PIXEL_SCALE,
        kind.mean(),
        kind.std(),
    ))
}

/// Whether `path` is a hyperflux export (a safetensors file whose metadata `format` is
/// `hyperflux-…`), judged from its header alone.
fn is_export_file(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut n = [0u8; 8];
    if f.read_exact(&mut n).is_err() {
        return false;
    }
    let n = u64::from_le_bytes(n);
    if n > 100 << 20 {
        return false;
    }
    let mut header = vec![0u8; n as usize];
    if f.read_exact(&mut header).is_err() {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(&header)
        .ok()
        .and_then(|h| h["__metadata__"]["format"].as_str().map(str::to_string))
        .is_some_and(|f| f.starts_with("hyperflux-"))
}

/// Writes `model` in `format` (dense, sparse or onnx) to `out` atomically; returns the bytes
/// written.
fn write_as(format: &str, out: &Path, model: &ExportModel) -> Result<u64> {
    Ok(match format {
        "onnx" => hf_onnx::write::write_onnx(out, model, preprocessing(&model.meta).as_ref())?,
        "dense" => hf_sparse::write_export(out, model, Format::Dense)?,
        "sparse" => hf_sparse::write_export(out, model, Format::Sparse)?,
        other => bail!("--format {other}: use dense, sparse or onnx"),
    })
}

/// `hyperflux export`.
pub fn export(a: &ExportArgs) -> Result<()> {
    if !["dense", "sparse", "onnx"].contains(&a.format.as_str()) {
        bail!("--format {}: use dense, sparse or onnx", a.format);
    }
    if is_export_file(&a.checkpoint) {
        // an export file: convert it without libtorch
        let model = hf_onnx::write::load_export(&a.checkpoint)?;
        let bytes = write_as(&a.format, &a.out, &model)?;
        println!(
            "wrote {} ({} format) from {}: {} bytes; density {:.3}%",
            a.out.display(),
            a.format,
            a.checkpoint.display(),
            bytes,
            100.0 * model.meta.total_density
        );
        return Ok(());
    }
    let ck = crate::run::load_checkpoint(&a.checkpoint)?;
    hf_engine::device::set_threads(0);
    let net = trainer::load_network(&ck, Device::Cpu)?;
    let common = hf_core::config::CommonConfig {
        data_dir: a.data_dir.clone(),
        ..trainer::checkpoint_data(&ck)?
    };
    let accuracy = match trainer::load_test(&common, Some(net.classes() as usize)) {
        Ok(test) if trainer::input_shape(&test) == net.input_shape() => {
            Some(trainer::test_accuracy(net.as_ref(), &test, Device::Cpu, 0.1).0)
        }
        Ok(test) => {
            eprintln!(
                "note: accuracy not measured ({} holds inputs of shape {:?}, the model takes {:?})",
                test.source,
                trainer::input_shape(&test),
                net.input_shape()
            );
            None
        }
        Err(e) => {
            eprintln!("note: accuracy not measured ({e})");
            None
        }
    };
    let model = export_model(&ck, accuracy)?;
    let bytes = write_as(&a.format, &a.out, &model)?;
    let dense_bytes: usize = model
        .layers
        .iter()
        .map(|(_, t)| 4 * (t.weight.len() + t.bias.as_ref().map_or(0, |b| b.len())))
        .sum();
    println!(
        "wrote {} ({} format): {} bytes = {:.2}% of the dense fp32 weights and biases ({} bytes); density {:.3}%{}",
        a.out.display(),
        a.format,
        bytes,
        100.0 * bytes as f64 / dense_bytes as f64,
        dense_bytes,
        100.0 * model.meta.total_density,
        accuracy.map(|x| format!(", test accuracy {x:.2}%")).unwrap_or_default()
    );
    match &model.meta.preprocessing {
        Some(p) => println!("input preprocessing: {p} per channel"),
        None => println!("input preprocessing: unknown (the checkpoint records none)"),
    }
    Ok(())
}

/// The preprocessing to apply to raw inputs of `model`: the recorded one, else (files written
/// before it was recorded) the constants of its built-in dataset.
fn preprocessing_of(model: &Model, file: &Path) -> Result<Preprocessing> {
    let meta = model.meta();
    if let Some(p) = &meta.preprocessing {
        return Ok(p.clone());
    }
    match meta.dataset.parse::<DatasetSpec>().ok().and_then(|s| s.kind()) {
        Some(k) => Ok(Preprocessing::from_f32(
            Preprocessing::PIXEL_SCALE,
            k.mean(),
            k.std(),
        )),
        None => bail!(
            "{} records no input preprocessing (input_scale, input_mean, input_std) and its dataset '{}' is not built in: give inputs already normalised as float32, without --raw",
            file.display(),
            meta.dataset
        ),
    }
}

/// Raw values as floats (bytes unscaled).
fn raw_values(p: &Pixels) -> Vec<f32> {
    match p {
        Pixels::U8(v) => v.iter().map(|&b| f32::from(b)).collect(),
        Pixels::F32(v) => v.clone(),
    }
}

/// `hyperflux infer`.
pub fn infer(a: &InferArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let model = if a.dense {
        model.to_dense()
    } else {
        model.to_sparse()
    };
    let meta = model.meta().clone();
    if let Some(input) = &a.input {
        let (x, n) = read_inputs(input, &model, &a.model, a.raw)?;
        let pred = model.predict(&x, n)?;
        let logits = model.forward(&x, n)?;
        for (i, p) in pred.iter().enumerate() {
            let row = &logits[i * model.classes()..(i + 1) * model.classes()];
            let l: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
            println!("{i}: class {p} (logits {})", l.join(" "));
        }
        return Ok(());
    }
    let (x, test) = test_inputs(&model, &a.model, a.dataset.as_deref(), a.data_dir.clone())?;
    let n = test.len();
    let labels = &test.labels;
    let t = std::time::Instant::now();
    let logits = model.forward(&x, n)?;
    let secs = t.elapsed().as_secs_f64();
    let k = model.classes();
    let correct = (0..n)
        .filter(|&i| {
            let row = &logits[i * k..(i + 1) * k];
            let arg = row
                .iter()
                .enumerate()
                .fold(0, |b, (j, v)| if *v > row[b] { j } else { b });
            arg == labels[i] as usize
        })
        .count();
    if let Some(p) = &a.logits {
        hf_core::fsutil::atomic_write(p, |w| {
            for i in 0..n {
                let row: Vec<String> = logits[i * k..(i + 1) * k]
                    .iter()
                    .map(|v| v.to_string())
                    .collect();
                writeln!(w, "{}", row.join(","))?;
            }
            Ok(())
        })
        .with_context(|| format!("writing {}", p.display()))?;
    }
    println!(
        "{} on {} test ({} images, {} path): accuracy {:.2}% in {:.3}s",
        meta.architecture,
        test.source,
        n,
        if a.dense { "dense" } else { "sparse" },
        100.0 * correct as f64 / n.max(1) as f64,
        secs
    );
    Ok(())
}

/// The test split of `dataset` (default: the one `model` was exported from) as `model`'s
/// inputs: raw values preprocessed as the export recorded (older files: the dataset's own
/// normalisation), with the split itself (labels, source).
fn test_inputs(
    model: &Model,
    file: &Path,
    dataset: Option<&str>,
    data_dir: Option<PathBuf>,
) -> Result<(Vec<f32>, hf_data::Dataset)> {
    let meta = model.meta();
    let (len, channels) = (model.input_len(), meta.input_channels());
    let name = dataset.map(str::to_string).unwrap_or(meta.dataset.clone());
    let spec: DatasetSpec = name.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let opts = LoadOptions {
        data_dir,
        normalize: None,
        classes: Some(model.classes()),
    };
    let test = spec.load(Split::Test, &opts)?;
    if test.image_len() != len {
        bail!(
            "{} expects inputs of {} values but {} images have {}: use the dataset it was trained on ({})",
            file.display(),
            len,
            test.source,
            test.image_len(),
            meta.dataset
        );
    }
    let pre = meta
        .preprocessing
        .clone()
        .unwrap_or_else(|| test.preprocessing());
    let mut x = raw_values(&test.images);
    pre.apply(&mut x, len, channels);
    Ok((x, test))
}

/// Loads an exported model, with a note on stderr when it has no checksum to verify.
fn load_model(p: &Path) -> Result<Model> {
    let (m, integrity) = hf_sparse::load_checked(p)?;
    if let Some(n) = integrity.note(&p.display().to_string()) {
        eprintln!("note: {n}");
    }
    Ok(m)
}

/// Reads single inputs for `model`: .npy (uint8 raw pixels, float32/float64 normalised values
/// or, with `raw`, raw values) or IDX images (raw pixels). Raw values get the model's recorded
/// preprocessing.
fn read_inputs(path: &Path, model: &Model, file: &Path, raw: bool) -> Result<(Vec<f32>, usize)> {
    let (len, channels) = (model.input_len(), model.meta().input_channels());
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (mut x, is_raw) = if bytes.starts_with(b"\x93NUMPY") {
        let (_, values) = hf_data::read_npy(path)?;
        let is_raw = raw || matches!(values, Pixels::U8(_));
        (raw_values(&values), is_raw)
    } else {
        (read_idx(path, bytes, len)?, true)
    };
    if x.is_empty() || !x.len().is_multiple_of(len) {
        bail!(
            "{}: {} values is not a whole number of inputs of {len} (what {} takes)",
            path.display(),
            x.len(),
            file.display()
        );
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        bail!(
            "{}: value {i} (input {}, position {}) is {}: inputs must be finite numbers",
            path.display(),
            i / len,
            i % len,
            x[i]
        );
    }
    if is_raw {
        preprocessing_of(model, file)?.apply(&mut x, len, channels);
    }
    let n = x.len() / len;
    Ok((x, n))
}

/// The raw pixels of an IDX image file (gzipped or not) as floats.
fn read_idx(path: &Path, bytes: Vec<u8>, len: usize) -> Result<Vec<f32>> {
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2_read(&bytes, &mut out)
            .with_context(|| format!("{}: not valid gzip", path.display()))?;
        out
    } else {
        bytes
    };
    if raw.len() < 16 || raw[..4] != [0, 0, 8, 3] {
        bail!(
            "{}: neither a .npy file nor an IDX image file (magic 0x00000803)",
            path.display()
        );
    }
    let dim = |i: usize| {
        u32::from_be_bytes(raw[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
    };
    let (n, h, w) = (dim(0), dim(1), dim(2));
    let expected = 16 + n as u64 * h as u64 * w as u64;
    let actual = raw.len() as u64;
    if actual != expected {
        bail!(
            "{}: IDX file is {}: its header says {n} images of {h}x{w}, which is {expected} bytes, but it has {actual}",
            path.display(),
            if actual < expected {
                "truncated"
            } else {
                "longer than its header says"
            }
        );
    }
    if n == 0 {
        bail!("{}: IDX file holds no images", path.display());
    }
    if h * w != len {
        bail!(
            "{}: IDX holds {n} images of {h}x{w}; the model expects {len} values per image",
            path.display()
        );
    }
    Ok(raw[16..].iter().map(|&b| f32::from(b)).collect())
}

fn flate2_read(bytes: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(out)
        .map(|_| ())
}

/// The ONNX Runtime column: the dense ONNX of `model` run by ONNX Runtime, or why not.
fn onnxruntime_column(
    model: &Model,
) -> std::result::Result<(&'static crate::onnxrt::Ort, Vec<u8>), String> {
    let ort = crate::onnxrt::load()?;
    let bytes =
        hf_onnx::write::to_onnx_bytes(&model.to_export(), None).map_err(|e| e.to_string())?;
    Ok((ort, bytes))
}

/// `hyperflux bench-infer`.
pub fn bench_infer(a: &BenchInferArgs) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let thread_counts: Vec<usize> = a
        .threads
        .iter()
        .map(|&t| if t == 0 { cores } else { t })
        .collect();
    if thread_counts.is_empty() {
        bail!("--threads: give thread counts, e.g. 1,2 (0: all cores)");
    }
    let (model, what) = match (&a.model, &a.synthetic) {
        (Some(p), None) => (load_model(p)?, p.display().to_string()),
        (None, Some(arch)) if arch == "vgg-narrow" => {
            let m =
                hf_sparse::synthetic::vgg_narrow(&hf_sparse::synthetic::VGG_NARROW_95_DENSITIES, 1);
            (
                Model::from_export(&m)?,
                format!(
                    "synthetic vgg-narrow with the layer densities of Hyperflux at 95% ({:.2}% dense)",
                    100.0 * m.meta.total_density
                ),
            )
        }
        (None, Some(arch)) => {
            if arch != "lenet300" {
                bail!("--synthetic {arch}: use lenet300 or vgg-narrow");
            }
            if !(a.sparsity > 0.0 && a.sparsity < 100.0) {
                bail!("--sparsity {} is outside (0, 100)", a.sparsity);
            }
            let m = hf_sparse::synthetic::lenet300(a.sparsity, 1);
            (
                Model::from_export(&m)?,
                format!("synthetic lenet300 at {}% sparsity", a.sparsity),
            )
        }
        (Some(_), Some(_)) => bail!("give a model file or --synthetic, not both"),
        (None, None) => bail!("give a model file, or --synthetic lenet300 --sparsity S"),
    };
    if a.batch.is_empty() || a.batch.contains(&0) {
        bail!("--batch: give positive batch sizes, e.g. 1,64");
    }
    if a.runs == 0 {
        bail!("--runs 0: give at least one timed sample per measurement, e.g. --runs 200");
    }
    let (stat, stat_name) = match a.stat.as_str() {
        "min" => (bench::Stat::Min, "best"),
        _ => (bench::Stat::Median, "median"),
    };
    let flops = model.flops();
    let (dm, sm): (u64, u64) = flops
        .iter()
        .fold((0, 0), |(d, s), f| (d + f.dense_macs, s + f.sparse_macs));
    println!(
        "{what}: {} threads, {} of {} interleaved samples per cell",
        thread_counts
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        stat_name,
        a.runs
    );
    println!(
        "multiply-adds per example: dense {dm}, sparse {sm} ({:.1}x fewer)",
        dm as f64 / sm.max(1) as f64
    );
    let max_batch = a.batch.iter().copied().max().unwrap_or(1);
    let model = model.with_sparse_conv(match a.conv.as_str() {
        "direct" => hf_sparse::SparseConv::Direct,
        "im2col" => hf_sparse::SparseConv::Im2col,
        "shifted" => hf_sparse::SparseConv::Shifted,
        "lowered" => hf_sparse::SparseConv::Lowered,
        _ => hf_sparse::SparseConv::Auto,
    });
    let bench = match &a.data {
        None => hf_sparse::bench::InferBench::new(&model, max_batch, 0x5eed),
        Some(d) => {
            let file = a
                .model
                .clone()
                .unwrap_or_else(|| PathBuf::from("the synthetic model"));
            let (x, test) = test_inputs(&model, &file, Some(d), a.data_dir.clone())?;
            println!(
                "inputs: the first {max_batch} of the {} test images of {}",
                test.len(),
                test.source
            );
            hf_sparse::bench::InferBench::with_input(&model, x, max_batch)
        }
    };
    let torch = if a.no_libtorch {
        None
    } else {
        match crate::torch_ref::TorchRef::new(&model) {
            Ok(t) => {
                println!("{}", t.describe());
                Some(t)
            }
            Err(e) => {
                println!("note: no libtorch column ({e})");
                None
            }
        }
    };
    let ort = if a.no_onnxruntime {
        None
    } else {
        match onnxruntime_column(&model) {
            Ok((ort, bytes)) => {
                // one session to check the logits agree before timing anything
                let x = bench.input(max_batch);
                let check = crate::onnxrt::OrtModel::new(ort, &bytes, &model.meta().input_shape, 1)
                    .and_then(|mut s| s.forward(x, max_batch));
                match check {
                    Ok(y) => {
                        let want = model.forward(x, max_batch)?;
                        let diff = y
                            .iter()
                            .zip(&want)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0f32, |m, d| if d.is_nan() || d > m { d } else { m });
                        println!(
                            "onnxruntime: {} running the dense ONNX of the same weights ({} bytes, all graph optimisations, intra-op threads as the column's); max |logit difference| vs sparse {diff:.1e}",
                            ort.path.display(),
                            bytes.len()
                        );
                        if y.len() != want.len() || diff.is_nan() || diff > 1e-3 {
                            println!(
                                "warning: ONNX Runtime's logits differ from the sparse runtime's"
                            );
                        }
                        Some((ort, bytes))
                    }
                    Err(e) => {
                        println!("onnxruntime: cannot run the model ({e})");
                        None
                    }
                }
            }
            Err(e) => {
                println!("onnxruntime: {e}");
                None
            }
        }
    };
    let mut first_speedup = None;
    for &threads in &thread_counts {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("hf-{threads}t-{i}"))
            .build()
            .context("cannot start the runtime's threads")?;
        tch::set_num_threads(threads as i32);
        let mut session = match &ort {
            Some((o, bytes)) => {
                match crate::onnxrt::OrtModel::new(o, bytes, &model.meta().input_shape, threads) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        println!("onnxruntime ({threads} threads): {e}");
                        None
                    }
                }
            }
            None => None,
        };
        println!("\n{threads} thread{}:", if threads == 1 { "" } else { "s" });
        println!(
            "{:>5} {:>11} {:>11} {:>11} {:>11} {:>8} {:>8} {:>8} {:>12}",
            "batch",
            "sparse",
            "dense(rs)",
            "libtorch",
            "onnxrt",
            "dense/sp",
            "torch/sp",
            "ort/sp",
            "sparse ex/s"
        );
        for &batch in &a.batch {
            let x = bench.input(batch);
            let xt = torch
                .as_ref()
                .map(|t| (t, t.input(Tensor::from_slice(x), batch)));
            // the columns sampled in turn; the runtime's own paths inside its thread pool
            // (entered outside the timed part), libtorch and ONNX Runtime on their own threads
            let mut sparse =
                |n| pool.install(|| bench::time_calls(&mut || bench.run(Format::Sparse, batch), n));
            let mut dense =
                |n| pool.install(|| bench::time_calls(&mut || bench.run(Format::Dense, batch), n));
            let mut torch_call = xt.as_ref().map(|(t, xt)| {
                move |n| {
                    bench::time_calls(
                        &mut || {
                            let _ = t.forward(xt);
                        },
                        n,
                    )
                }
            });
            let mut ort_call = session.as_mut().map(|s| {
                move |n| {
                    bench::time_calls(
                        &mut || {
                            let _ = std::hint::black_box(s.forward(x, batch));
                        },
                        n,
                    )
                }
            });
            let mut calls: Vec<&mut dyn FnMut(u32) -> Duration> = vec![&mut sparse, &mut dense];
            if let Some(f) = torch_call.as_mut() {
                calls.push(f);
            }
            if let Some(f) = ort_call.as_mut() {
                calls.push(f);
            }
            let times = bench::measure_interleaved(&mut calls, a.runs, stat);
            let (sparse_time, dense_time) = (times[0], times[1]);
            let mut rest = times[2..].iter().copied();
            let tt = xt.as_ref().and_then(|_| rest.next());
            let ot = session.as_ref().and_then(|_| rest.next());
            let fmt = |d: Option<Duration>| {
                d.map(|d| format!("{:.2}µs", d.as_secs_f64() * 1e6))
                    .unwrap_or_else(|| "-".into())
            };
            let ratio = |d: Option<Duration>| {
                d.map(|d| {
                    format!(
                        "{:.1}x",
                        d.as_secs_f64() / sparse_time.as_secs_f64().max(1e-12)
                    )
                })
                .unwrap_or_else(|| "-".into())
            };
            println!(
                "{:>5} {:>11} {:>11} {:>11} {:>11} {:>8} {:>8} {:>8} {:>12.0}",
                batch,
                fmt(Some(sparse_time)),
                fmt(Some(dense_time)),
                fmt(tt),
                fmt(ot),
                ratio(Some(dense_time)),
                ratio(tt),
                ratio(ot),
                batch as f64 / sparse_time.as_secs_f64().max(1e-12)
            );
            if batch == 1 && first_speedup.is_none() {
                first_speedup =
                    Some(dense_time.as_secs_f64() / sparse_time.as_secs_f64().max(1e-12));
            }
            if a.layers {
                let (sp, de) = pool.install(|| {
                    (
                        bench.sparse.layer_times(x, batch, a.runs),
                        bench.dense.layer_times(x, batch, a.runs),
                    )
                });
                for ((name, ts), (_, td)) in sp?.iter().zip(de?) {
                    println!(
                        "      {name:<24} sparse {:>10.2}µs  dense(rs) {:>10.2}µs",
                        ts.as_secs_f64() * 1e6,
                        td.as_secs_f64() * 1e6
                    );
                }
            }
        }
    }
    if let Some(s) = first_speedup {
        println!("{s:.1}");
    }
    Ok(())
}
