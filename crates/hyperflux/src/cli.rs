//! Command-line arguments: the commands and their own flags. The flags runs share are defined
//! once in `flags.rs`. Every flag of a run overrides the same setting of an optional `--config`
//! TOML file; the resolved config is written next to the run's outputs as `config.toml`.

use crate::flags::{MaskFlags, RunFlags, TrainerFlags};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Prune neural networks with Hyperflux and measure the Neural Pruning Law.
#[derive(Parser, Debug)]
#[command(name = "hyperflux", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Dense training of a model on a dataset; writes a checkpoint.
    Train(TrainArgs),
    /// Hyperflux pruning to a target sparsity (scheduler) or under a fixed pressure.
    Prune(PruneArgs),
    /// Print the planned density trajectory E(t) and r0 of a target sparsity.
    Schedule(ScheduleArgs),
    /// Test accuracy and per-layer density of a checkpoint.
    Eval(EvalArgs),
    /// Training steps per second of the Hyperflux step (LeNet-300-100, batch 128).
    Bench(BenchArgs),
    /// List the models with their number of prunable weights.
    Models(ModelsArgs),
    /// Measure the Neural Pruning Law of one pruning family from a dense checkpoint.
    Law(crate::law_cmd::LawArgs),
    /// Fit the Neural Pruning Law (power law on region 2, variable exponent on all points).
    Fit(crate::law_cmd::FitArgs),
    /// Fixed-pressure Hyperflux for several λ: density over time and final density vs λ.
    Converge(crate::law_cmd::ConvergeArgs),
    /// The sparsity–accuracy frontier: `prune` runs of several methods × sparsities × seeds
    /// (resumable), a CSV row per run, mean ± sd per point, and a plot
    Frontier(crate::frontier_cmd::FrontierArgs),
    /// Export a checkpoint (or convert an export) as a dense or compact sparse safetensors file,
    /// or as standard ONNX.
    Export(crate::export_cmd::ExportArgs),
    /// Run an exported model with the pure-Rust runtime: test accuracy or single predictions.
    Infer(crate::export_cmd::InferArgs),
    /// Latency and throughput of the sparse runtime vs its dense path vs libtorch dense vs ONNX
    /// Runtime.
    BenchInfer(crate::export_cmd::BenchInferArgs),
}

/// `hyperflux train`.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub trainer: TrainerFlags,
    /// Start from the weights of this checkpoint or ONNX model (`model.onnx`: its architecture
    /// too) instead of a fresh initialisation.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Epochs of dense training.
    #[arg(long)]
    pub epochs: Option<usize>,
}

/// `hyperflux prune`.
#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub trainer: TrainerFlags,
    /// Dense checkpoint or ONNX model (`model.onnx`, opset >= 13) to start from (default: from
    /// scratch). An ONNX model brings its architecture: --model is not needed.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Pruning method: hyperflux (trained masks under the scheduled pressure), gmp (gradual
    /// magnitude pruning, cubic schedule over the pruning epochs) or oneshot (magnitude prune
    /// before the first epoch, then fine-tune); same epochs, optimizer and LR schedule
    /// [default: hyperflux].
    #[arg(long, value_parser = ["hyperflux", "gmp", "oneshot"])]
    pub method: Option<String>,
    /// Target sparsity in percent of weights pruned, in (0, 100), e.g. 98.
    #[arg(long, conflicts_with = "pressure")]
    pub target_sparsity: Option<f64>,
    /// Fixed pressure λ instead of the scheduler.
    #[arg(long)]
    pub pressure: Option<f64>,
    /// Pruning epochs P.
    #[arg(long)]
    pub pruning_epochs: Option<usize>,
    /// Regrowth / fine-tune epochs after P.
    #[arg(long)]
    pub regrowth_epochs: Option<usize>,
    #[command(flatten)]
    pub mask: MaskFlags,
    /// Regrowth mask-LR decay per epoch.
    #[arg(long)]
    pub mask_lr_decay: Option<f64>,
    /// Controller step Δ (0.3 LeNet, 0.2 CIFAR).
    #[arg(long)]
    pub controller_step: Option<f64>,
    /// Pressure during regrowth: hold (stay on target) or zero (the authors' λ = 0).
    #[arg(long)]
    pub regrowth_pressure: Option<String>,
    /// Weight LR at the start of regrowth.
    #[arg(long)]
    pub regrowth_lr: Option<f64>,
    /// Weight LR at the end of regrowth.
    #[arg(long)]
    pub regrowth_lr_end: Option<f64>,
}

/// `hyperflux schedule`.
#[derive(Args, Debug, Clone)]
pub struct ScheduleArgs {
    /// Target sparsity in percent pruned, in (0, 100).
    #[arg(long)]
    pub target_sparsity: f64,
    /// Pruning epochs P.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Aggressivity of the logistic (6 in the paper).
    #[arg(long, default_value_t = 6.0)]
    pub aggressivity: f64,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `hyperflux eval`.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// Checkpoint or ONNX model (`model.onnx`) to evaluate.
    pub checkpoint: PathBuf,
    /// Dataset (default: the one the checkpoint was trained on; required for an ONNX model
    /// that does not name one): mnist, fashion-mnist, cifar10, cifar100 or npy:DIR.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Dataset directory (default: the checkpoint's dataset — a built-in one at its standard
    /// place, or the DIR of npy:DIR). Its normalisation is the checkpoint's.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Device: cpu, cuda or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the logits of every test image to this CSV file (one row per image).
    #[arg(long)]
    pub logits: Option<PathBuf>,
}

/// `hyperflux bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Densities (percent) at which to measure; masks are set randomly to each.
    #[arg(long, value_delimiter = ',', default_value = "100,10,2")]
    pub densities: Vec<f64>,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Timed steps per run.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Untimed warm-up steps before the runs.
    #[arg(long, default_value_t = 1000)]
    pub warmup: usize,
    /// Use dense GEMMs for every product (turn off the sparse forward/input-gradient kernels),
    /// to see what they bring.
    #[arg(long)]
    pub dense_products: bool,
    /// libtorch CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Device: cpu, cuda or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `hyperflux models`.
#[derive(Args, Debug, Clone)]
pub struct ModelsArgs {
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub classes: i64,
}
