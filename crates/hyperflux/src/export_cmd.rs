//! `hyperflux export`, `infer` and `bench-infer`: pruned networks as compact files or standard
//! ONNX, run by the pure-Rust runtime of `hf-sparse` (no libtorch), and measured against dense
//! paths (its own, libtorch, ONNX Runtime).

use anyhow::{bail, Context, Result};
use clap::Args;
use hf_data::{DatasetKind, Split};
use hf_engine::checkpoint::Checkpoint;
use hf_engine::masked::DensityReport;
use hf_engine::trainer;
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
    /// checkpoint's dataset at its standard place). Without data the accuracy is left out.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// `hyperflux infer`.
#[derive(Args, Debug, Clone)]
pub struct InferArgs {
    /// Exported model file (dense or sparse).
    pub model: PathBuf,
    /// Evaluate on this dataset's test set (mnist, fashion-mnist, cifar10, cifar100).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Dataset directory (default: the dataset's standard place).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Predict single inputs: a .npy file (uint8 = raw pixels, float32/float64 = already
    /// normalised inputs) or an IDX image file (raw pixels); one prediction per image.
    #[arg(long)]
    pub input: Option<PathBuf>,
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
    /// Benchmark a randomly pruned network of this architecture instead (lenet300).
    #[arg(long)]
    pub synthetic: Option<String>,
    /// Sparsity (percent pruned) of the synthetic network.
    #[arg(long, default_value_t = 98.0)]
    pub sparsity: f64,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub batch: Vec<usize>,
    /// Timed samples per measurement (the median is reported).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
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
            extra,
        },
        layers,
    };
    model.recompute_densities();
    Ok(model)
}

/// The input normalisation of a dataset's images, `(pixel/255 − mean[c]) / std[c]`, as stored
/// in ONNX metadata; `None` for a dataset hyperflux does not know.
fn preprocessing(dataset: &str) -> Option<hf_onnx::write::Preprocessing> {
    let kind: DatasetKind = dataset.parse().ok()?;
    Some(hf_onnx::write::Preprocessing {
        scale: 1.0 / 255.0,
        mean: kind.mean().iter().map(|&v| v as f64).collect(),
        std: kind.std().iter().map(|&v| v as f64).collect(),
    })
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
        "onnx" => {
            hf_onnx::write::write_onnx(out, model, preprocessing(&model.meta.dataset).as_ref())?
        }
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
    let ck = Checkpoint::load(&a.checkpoint)?;
    hf_engine::device::set_threads(0);
    let net = trainer::load_network(&ck, Device::Cpu)?;
    let common = hf_core::config::CommonConfig {
        dataset: ck.meta_str("dataset")?.to_string(),
        data_dir: a.data_dir.clone(),
        ..Default::default()
    };
    let accuracy = match trainer::load_data(&common) {
        Ok(data) => Some(trainer::test_accuracy(net.as_ref(), &data.test, Device::Cpu, 0.1).0),
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
    Ok(())
}

fn dataset_inputs(kind: DatasetKind, dir: &Path) -> Result<(Vec<f32>, Vec<u8>, usize)> {
    let test = hf_data::load(kind, dir, Split::Test)?;
    let len = test.image_len();
    let mut x = vec![0f32; test.len() * len];
    for i in 0..test.len() {
        test.normalized(i, &mut x[i * len..(i + 1) * len]);
    }
    Ok((x, test.labels.clone(), test.len()))
}

/// `hyperflux infer`.
pub fn infer(a: &InferArgs) -> Result<()> {
    let model = hf_sparse::load(&a.model)?;
    let model = if a.dense {
        model.to_dense()
    } else {
        model.to_sparse()
    };
    let meta = model.meta().clone();
    if let Some(input) = &a.input {
        let kind: DatasetKind = meta
            .dataset
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?;
        let (x, n) = read_inputs(input, kind, model.input_len())?;
        let pred = model.predict(&x, n)?;
        let logits = model.forward(&x, n)?;
        for (i, p) in pred.iter().enumerate() {
            let row = &logits[i * model.classes()..(i + 1) * model.classes()];
            let l: Vec<String> = row.iter().map(|v| format!("{v:.4}")).collect();
            println!("{i}: class {p} (logits {})", l.join(" "));
        }
        return Ok(());
    }
    let name = a.dataset.clone().unwrap_or(meta.dataset.clone());
    let kind: DatasetKind = name.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let dir = a.data_dir.clone().unwrap_or_else(|| kind.default_dir());
    let (x, labels, n) = dataset_inputs(kind, &dir)?;
    if x.len() / n.max(1) != model.input_len() {
        bail!(
            "{} expects inputs of {} values but {} images have {}: use the dataset it was trained on ({})",
            a.model.display(),
            model.input_len(),
            kind.name(),
            x.len() / n.max(1),
            meta.dataset
        );
    }
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
        kind.name(),
        n,
        if a.dense { "dense" } else { "sparse" },
        100.0 * correct as f64 / n.max(1) as f64,
        secs
    );
    Ok(())
}

/// Reads single inputs: .npy (u8 raw pixels or f32/f64 normalised values) or IDX images.
fn read_inputs(path: &Path, kind: DatasetKind, len: usize) -> Result<(Vec<f32>, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (mean, std) = (kind.mean().to_vec(), kind.std().to_vec());
    let normalise = |raw: &[u8]| -> Vec<f32> {
        let plane = len / mean.len().max(1);
        raw.iter()
            .enumerate()
            .map(|(i, &p)| {
                let c = (i % len) / plane.max(1);
                (p as f32 / 255.0 - mean[c]) / std[c]
            })
            .collect()
    };
    if bytes.starts_with(b"\x93NUMPY") {
        let (descr, data) = parse_npy(&bytes)
            .with_context(|| format!("{}: not a readable .npy file", path.display()))?;
        let x: Vec<f32> = match descr.as_str() {
            "|u1" | "<u1" => normalise(data),
            "<f4" => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            "<f8" => data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            other => bail!(
                "{}: .npy dtype {other} not supported (use uint8, float32 or float64)",
                path.display()
            ),
        };
        if x.is_empty() || !x.len().is_multiple_of(len) {
            bail!(
                "{}: {} values is not a whole number of inputs of {len}",
                path.display(),
                x.len()
            );
        }
        let n = x.len() / len;
        return Ok((x, n));
    }
    // IDX images, gzipped or not.
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
    if h * w != len || raw.len() != 16 + n * h * w {
        bail!(
            "{}: IDX holds {n} images of {h}x{w}; the model expects {len} values per image",
            path.display()
        );
    }
    Ok((normalise(&raw[16..]), n))
}

fn flate2_read(bytes: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(out)
        .map(|_| ())
}

/// Minimal .npy (v1–v3) parser: returns the dtype descr and the data bytes (C order only).
fn parse_npy(b: &[u8]) -> Result<(String, &[u8])> {
    if b.len() < 10 {
        bail!("too short");
    }
    let (hlen, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 => {
            if b.len() < 12 {
                bail!("too short");
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        v => bail!("unknown .npy version {v}"),
    };
    let header = std::str::from_utf8(b.get(start..start + hlen).context("truncated header")?)?;
    if header.contains("'fortran_order': True") {
        bail!("Fortran-ordered arrays are not supported");
    }
    let descr = header
        .split("'descr':")
        .nth(1)
        .and_then(|r| r.split('\'').nth(1))
        .context("no descr in header")?
        .to_string();
    Ok((descr, &b[start + hlen..]))
}

/// Dense libtorch forward of the same network (effective weights), for comparison.
struct TorchDense {
    layers: Vec<(Tensor, Option<Tensor>, bool)>,
}

impl TorchDense {
    /// The MLP of `model` as libtorch matrices; `None` unless every layer is a linear layer
    /// reading the previous one.
    fn new(model: &Model) -> Option<Self> {
        let specs = model.layer_specs();
        let chain = specs
            .iter()
            .all(|s| matches!(s, hf_sparse::LayerSpec::Linear { input: None, .. }));
        if !chain {
            return None;
        }
        let layers = model
            .dense_weights()
            .into_iter()
            .zip(specs)
            .map(|((_, w, b), spec)| {
                let wt = Tensor::from_slice(&w)
                    .view([spec.out_features() as i64, spec.in_features() as i64]);
                let bt = b.map(|b| Tensor::from_slice(&b));
                (
                    wt.tr().contiguous(),
                    bt,
                    spec.activation() == hf_sparse::Activation::Relu,
                )
            })
            .collect();
        Some(Self { layers })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let mut h = x.shallow_clone();
            for (w, b, relu) in &self.layers {
                h = match b {
                    Some(b) => b.addmm(&h, w),
                    None => h.mm(w),
                };
                if *relu {
                    let _ = h.relu_();
                }
            }
            h
        })
    }
}

/// The libtorch column of `bench-infer`: the MLP rebuilt from the export, or (any other
/// network) the engine's eval-mode forward of the checkpoint the export was made from.
enum TorchRef {
    /// An MLP rebuilt from the export's weights.
    Mlp(TorchDense),
    /// The engine network with its effective weights computed once.
    Engine {
        net: Box<dyn hf_engine::network::Network>,
        eff: Vec<Tensor>,
        shape: [i64; 3],
    },
}

impl TorchRef {
    /// The reference for `model`, or the reason there is none.
    fn new(model: &Model) -> std::result::Result<Self, String> {
        if let Some(t) = TorchDense::new(model) {
            return Ok(TorchRef::Mlp(t));
        }
        let meta = model.meta();
        let source = meta
            .extra
            .get("source")
            .ok_or("the export names no source checkpoint")?;
        let ck = Checkpoint::load(Path::new(source)).map_err(|e| e.to_string())?;
        let net = trainer::load_network(&ck, Device::Cpu).map_err(|e| e.to_string())?;
        let shape = net.input_shape();
        let same_shape = meta.input_shape.len() == 3
            && shape
                .iter()
                .zip(&meta.input_shape)
                .all(|(&a, &b)| a == b as i64);
        if net.arch() != meta.architecture || !same_shape {
            return Err(format!(
                "{source} holds {} {:?}, the export {} {:?}",
                net.arch(),
                shape,
                meta.architecture,
                meta.input_shape
            ));
        }
        let eff = net.masked().iter().map(|m| m.effective()).collect();
        let r = TorchRef::Engine { net, eff, shape };
        // The checkpoint may have been overwritten since the export: compare logits once.
        let n = 2;
        let x: Vec<f32> = (0..n * model.input_len())
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let ours = model.forward(&x, n).map_err(|e| e.to_string())?;
        let theirs = network_out(&r.forward(&r.input(Tensor::from_slice(&x), n)));
        let diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, |m, d| if d.is_nan() || d > m { d } else { m });
        if ours.len() != theirs.len() || diff.is_nan() || diff >= 1e-2 {
            return Err(format!(
                "{source} no longer matches the export (max logit difference {diff})"
            ));
        }
        Ok(r)
    }

    /// A batch of `n` inputs shaped for the reference from `n` rows of flat values.
    fn input(&self, t: Tensor, n: usize) -> Tensor {
        match self {
            TorchRef::Mlp(_) => t.view([n as i64, -1]),
            TorchRef::Engine { shape, .. } => t.view([n as i64, shape[0], shape[1], shape[2]]),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        match self {
            TorchRef::Mlp(t) => t.forward(x),
            TorchRef::Engine { net, eff, .. } => tch::no_grad(|| net.forward_with(x, eff, false)),
        }
    }

    /// What the column measures.
    fn describe(&self) -> String {
        match self {
            TorchRef::Mlp(_) => "libtorch: the same dense weights as matrices".into(),
            TorchRef::Engine { net, .. } => format!(
                "libtorch: the engine's eval-mode forward of the source checkpoint ({}, dense convs with masked weights, BatchNorm unfolded)",
                net.arch()
            ),
        }
    }
}

fn network_out(t: &Tensor) -> Vec<f32> {
    hf_engine::network::to_vec_f32(t)
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
        (Some(p), None) => (hf_sparse::load(p)?, p.display().to_string()),
        (None, Some(arch)) => {
            if arch != "lenet300" {
                bail!("--synthetic {arch}: only lenet300 is available");
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
    let flops = model.flops();
    let (dm, sm): (u64, u64) = flops
        .iter()
        .fold((0, 0), |(d, s), f| (d + f.dense_macs, s + f.sparse_macs));
    println!(
        "{what}: {} threads, median of {} samples per cell",
        thread_counts
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        a.runs
    );
    println!(
        "multiply-adds per example: dense {dm}, sparse {sm} ({:.1}x fewer)",
        dm as f64 / sm.max(1) as f64
    );
    let max_batch = a.batch.iter().copied().max().unwrap_or(1);
    let bench = hf_sparse::bench::InferBench::new(&model, max_batch, 0x5eed);
    let torch = if a.no_libtorch {
        None
    } else {
        match TorchRef::new(&model) {
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
            let r = pool.install(|| bench.row(batch, a.runs));
            let x = bench.input(batch);
            let tt = torch.as_ref().map(|t| {
                let xt = t.input(Tensor::from_slice(x), batch);
                hf_sparse::bench::measure_call(
                    || {
                        let _ = t.forward(&xt);
                    },
                    a.runs,
                )
            });
            let ot = session.as_mut().map(|s| {
                hf_sparse::bench::measure_call(
                    || {
                        let _ = std::hint::black_box(s.forward(x, batch));
                    },
                    a.runs,
                )
            });
            let fmt = |d: Option<Duration>| {
                d.map(|d| format!("{:.2}µs", d.as_secs_f64() * 1e6))
                    .unwrap_or_else(|| "-".into())
            };
            let ratio = |d: Option<Duration>| {
                d.map(|d| {
                    format!(
                        "{:.1}x",
                        d.as_secs_f64() / r.sparse_time.as_secs_f64().max(1e-12)
                    )
                })
                .unwrap_or_else(|| "-".into())
            };
            println!(
                "{:>5} {:>11} {:>11} {:>11} {:>11} {:>8} {:>8} {:>8} {:>12.0}",
                r.batch,
                fmt(Some(r.sparse_time)),
                fmt(Some(r.dense_time)),
                fmt(tt),
                fmt(ot),
                ratio(Some(r.dense_time)),
                ratio(tt),
                ratio(ot),
                r.sparse_throughput
            );
            if r.batch == 1 && first_speedup.is_none() {
                first_speedup = Some(r.speedup);
            }
        }
    }
    if let Some(s) = first_speedup {
        println!("{s:.1}");
    }
    Ok(())
}
