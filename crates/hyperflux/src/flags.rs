//! The run flags, each defined once and resolved once (ripgrep's `flags/defs.rs` is the model).
//!
//! - [`RunFlags`]: what every run has (`train`, `prune`, `law`, `converge`): model, data, seed,
//!   device, output, weight optimizer;
//! - [`TrainerFlags`]: what only the trainer's runs have (`train`, `prune`): validation split,
//!   momentum, augmentation, stopping and resuming;
//! - [`MaskFlags`]: the Hyperflux mask settings (`prune`, `law`, `converge`).
//!
//! Commands flatten the structs they need; their own flags stay with them. A run's settings
//! resolve as defaults ← `--config` TOML ([`read_config`]) ← flags (the `apply` methods, built
//! on [`set`]).

use anyhow::Result;
use clap::Args;
use hf_core::config::{self, CommonConfig, OptimConfig};
use hf_core::preprocess::Normalize;
use std::path::{Path, PathBuf};

/// Long help of `--normalize`.
pub const NORMALIZE_HELP: &str =
    "Input normalisation: every value becomes (x·scale − MEAN) / STD, scale being 1/255 for \
uint8 pixel data (MEAN and STD on the 0..1 scale) and 1 for float data.
  MEAN,STD               one pair for every channel, e.g. 0.5,0.25
  M1,..,Mc,S1,..,Sc      c means, then c standard deviations (one per channel), e.g.
                         0.4914,0.4822,0.4465,0.247,0.243,0.261
Every STD must be > 0. Default: the published constants of mnist, fashion-mnist, cifar10, \
cifar100; for npy data mean 0 and std 1 (floats used as given, uint8 as x/255); law and \
converge: the --from checkpoint's when its dataset is used. Stored in the run's config and \
checkpoint; exports record it (input_scale, input_mean, input_std).";

/// The flags of every run (`train`, `prune`, `law`, `converge`). Each overrides the same
/// setting of `--config`.
#[derive(Args, Debug, Clone, Default)]
pub struct RunFlags {
    /// TOML config file (the `config.toml` a previous run wrote is one); flags given on the
    /// command line override its values.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model name, see `hyperflux models` (default: the architecture of --from, else lenet300).
    #[arg(long)]
    pub model: Option<String>,
    /// Dataset: mnist, fashion-mnist, cifar10, cifar100, or npy:DIR — DIR holding train_x.npy,
    /// train_y.npy, test_x.npy, test_y.npy (numpy.save): x float32 or uint8 of shape N×C×H×W or
    /// N×D (read as D×1×1), y integer class labels; classes = max label + 1 (default: mnist;
    /// law and converge: the --from checkpoint's, else mnist).
    #[arg(long, value_name = "NAME|npy:DIR")]
    pub dataset: Option<String>,
    /// Directory with the dataset files (default: the dataset's standard place — data/mnist,
    /// /usr/share/datasets/fashion-mnist, …; for npy:DIR, DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Input normalisation (x·scale − MEAN) / STD: MEAN,STD or M1,..,Mc,S1,..,Sc (see --help)
    /// (default: the dataset's; law and converge: the checkpoint's when its dataset is used).
    #[arg(long, value_name = "MEAN,STD", allow_hyphen_values = true, long_help = NORMALIZE_HELP)]
    pub normalize: Option<String>,
    /// Seed of initialisation, masks and data order (runs are reproducible with it)
    /// [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Mini-batch size [default: 128].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Device: cpu, cuda or auto [default: cpu].
    #[arg(long)]
    pub device: Option<String>,
    /// libtorch CPU threads (0: all cores; 1 avoids oversubscription on a shared machine)
    /// [default: 0].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Use only the first N training examples (quick experiments).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test examples.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Output directory: config.toml, per-epoch records and plots, with the checkpoints of
    /// train and prune, the CSVs and fits of law and converge [default: runs/dense (train),
    /// runs/prune, runs/law or runs/converge].
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Weight optimizer: adam or sgd [default: adam].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Weight learning rate lr0 (train, prune: default 1e-3; law: constant, default 1e-3;
    /// converge: start of a cosine, default 5e-3).
    #[arg(long)]
    pub lr: Option<f64>,
    /// L2 weight decay of the weight optimizer [default: 0].
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Label smoothing of the cross-entropy [default: 0.1].
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// No progress bars (one line per epoch instead, and for law and converge one per point).
    #[arg(long)]
    pub quiet: bool,
}

/// The flags of the trainer's runs (`train`, `prune`).
#[derive(Args, Debug, Clone, Default)]
pub struct TrainerFlags {
    /// Hold out the last N training examples as a validation split, evaluated every epoch
    /// (records: val_accuracy); 0: none [default: 5000, or a tenth of the training set if
    /// smaller].
    #[arg(long)]
    pub val_split: Option<usize>,
    /// SGD momentum.
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Training augmentation (random crop with zero padding, flip on CIFAR).
    #[arg(long)]
    pub augment: Option<bool>,
    /// Continue the run saved in this checkpoint (its stored config is used).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after this epoch (checkpoint saved); continue later with --resume.
    #[arg(long)]
    pub stop_after: Option<usize>,
}

/// The Hyperflux mask settings (`prune`, `law`, `converge`).
#[derive(Args, Debug, Clone, Default)]
pub struct MaskFlags {
    /// Mask learning rate (Adam) of Hyperflux (law: the L0 ladder only) [default: 1e-3].
    #[arg(long)]
    pub mask_lr: Option<f64>,
    /// Straight-through scale s of Hyperflux (law: the L0 ladder only) [default: 0.25].
    #[arg(long)]
    pub ste_scale: Option<f64>,
}

/// Sets `dst` to the flag's value when the flag was given (`V` into `T`, so an `Option<T>`
/// setting takes a `T` flag).
pub fn set<T, V: Clone + Into<T>>(dst: &mut T, flag: &Option<V>) {
    if let Some(v) = flag {
        *dst = v.clone().into();
    }
}

/// The `--config` file's settings, or the command's defaults without one.
pub fn read_config<T: Default + serde::de::DeserializeOwned>(path: Option<&Path>) -> Result<T> {
    Ok(match path {
        Some(p) => config::read_toml(p)?,
        None => T::default(),
    })
}

/// Parses `--normalize` (one line naming the flag and the syntax when it is wrong).
pub fn parse_normalize(s: Option<&str>) -> Result<Option<Normalize>> {
    s.map(|t| {
        t.parse::<Normalize>()
            .map_err(|e| anyhow::anyhow!("--normalize {t}: {e}"))
    })
    .transpose()
}

impl RunFlags {
    /// Applies the given flags onto a run's common settings and weight optimizer.
    pub fn apply(&self, c: &mut CommonConfig, o: &mut OptimConfig) -> Result<()> {
        let normalize = parse_normalize(self.normalize.as_deref())?;
        set(&mut c.model, &self.model);
        set(&mut c.dataset, &self.dataset);
        set(&mut c.data_dir, &self.data_dir);
        set(&mut c.normalize, &normalize);
        set(&mut c.seed, &self.seed);
        set(&mut c.batch_size, &self.batch_size);
        set(&mut c.device, &self.device);
        set(&mut c.threads, &self.threads);
        set(&mut c.train_limit, &self.train_limit);
        set(&mut c.test_limit, &self.test_limit);
        set(&mut c.out_dir, &self.out);
        set(&mut c.label_smoothing, &self.label_smoothing);
        set(&mut o.kind, &self.optimizer);
        set(&mut o.lr, &self.lr);
        set(&mut o.weight_decay, &self.weight_decay);
        Ok(())
    }
}

impl TrainerFlags {
    /// Applies the given flags onto a run's common settings and weight optimizer (`resume` and
    /// `stop_after` steer the run and are no settings).
    pub fn apply(&self, c: &mut CommonConfig, o: &mut OptimConfig) {
        set(&mut c.val_split, &self.val_split);
        set(&mut c.augment, &self.augment);
        set(&mut o.momentum, &self.momentum);
    }
}

impl MaskFlags {
    /// Applies the given flags onto a run's mask learning rate and straight-through scale.
    pub fn apply(&self, mask_lr: &mut f64, ste_scale: &mut f64) {
        set(mask_lr, &self.mask_lr);
        set(ste_scale, &self.ste_scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Cmd};
    use clap::{CommandFactory, Parser};

    /// Every run flag, with a value other than its default.
    const RUN: &[&str] = &[
        "--model",
        "lenet5",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        "/data/fm",
        "--normalize",
        "0.5,0.25",
        "--seed",
        "7",
        "--batch-size",
        "64",
        "--device",
        "auto",
        "--threads",
        "1",
        "--train-limit",
        "100",
        "--test-limit",
        "50",
        "-o",
        "/tmp/hf-flags-test",
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--weight-decay",
        "0.0001",
        "--label-smoothing",
        "0.05",
        "--quiet",
    ];
    const MASK: &[&str] = &["--mask-lr", "0.002", "--ste-scale", "0.5"];

    fn parse(cmd: &str, flags: &[&[&str]]) -> Cmd {
        let mut args = vec!["hyperflux", cmd];
        for f in flags {
            args.extend_from_slice(f);
        }
        Cli::try_parse_from(args)
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
            .cmd
    }

    fn expected() -> (CommonConfig, OptimConfig) {
        let c = CommonConfig {
            model: "lenet5".into(),
            dataset: "fashion-mnist".into(),
            data_dir: Some("/data/fm".into()),
            normalize: parse_normalize(Some("0.5,0.25")).unwrap(),
            seed: 7,
            batch_size: 64,
            device: "auto".into(),
            threads: 1,
            train_limit: 100,
            test_limit: 50,
            out_dir: "/tmp/hf-flags-test".into(),
            label_smoothing: 0.05,
            ..CommonConfig::default()
        };
        let o = OptimConfig {
            kind: "sgd".into(),
            lr: 0.01,
            weight_decay: 0.0001,
            ..OptimConfig::default()
        };
        (c, o)
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn set_takes_a_given_flag_only() {
        let mut n = 1;
        set(&mut n, &None::<i32>);
        assert_eq!(n, 1);
        set(&mut n, &Some(2));
        assert_eq!(n, 2);
        let mut dir: Option<PathBuf> = Some("a".into());
        set(&mut dir, &None::<PathBuf>);
        assert_eq!(dir, Some("a".into()));
        set(&mut dir, &Some(PathBuf::from("b")));
        assert_eq!(dir, Some("b".into()));
    }

    #[test]
    fn every_run_resolves_the_run_flags_alike() {
        let (c, o) = expected();
        let Cmd::Train(a) = parse("train", &[RUN]) else {
            unreachable!()
        };
        assert!(a.run.quiet);
        let t = crate::run::train_config(&a).unwrap();
        assert_eq!((&t.common, &t.optimizer), (&c, &o), "train");
        let Cmd::Prune(a) = parse("prune", &[RUN, MASK]) else {
            unreachable!()
        };
        let p = crate::run::prune_config(&a).unwrap();
        assert_eq!((&p.common, &p.optimizer), (&c, &o), "prune");
        assert_eq!((p.mask_lr, p.ste_scale), (0.002, 0.5));
        // law without --from: the shared part resolves (law_config then asks for --from)
        let Cmd::Law(a) = parse("law", &[RUN, MASK]) else {
            unreachable!()
        };
        let l: hf_engine::law::LawConfig = a.shared.resolve().unwrap();
        assert_eq!((&l.common, &l.optimizer), (&c, &o), "law");
        assert_eq!((l.mask_lr, l.ste_scale), (0.002, 0.5));
        let e = crate::law_cmd::law_config(&a).unwrap_err().to_string();
        assert!(e.contains("--from CHECKPOINT is required"), "{e}");
        let Cmd::Converge(a) = parse("converge", &[RUN, MASK]) else {
            unreachable!()
        };
        let v = crate::law_cmd::converge_config(&a).unwrap();
        assert_eq!((&v.common, &v.optimizer), (&c, &o), "converge");
        assert_eq!((v.mask_lr, v.ste_scale), (0.002, 0.5));
    }

    #[test]
    fn flags_override_the_config_file_and_keep_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "[common]\nseed = 3\nbatch_size = 32\n[optimizer]\nlr = 0.5\n",
        )
        .unwrap();
        let config = ["--config", file.to_str().unwrap(), "--seed", "9"];
        let Cmd::Train(a) = parse("train", &[&config]) else {
            unreachable!()
        };
        let t = crate::run::train_config(&a).unwrap();
        let Cmd::Converge(a) = parse("converge", &[&config]) else {
            unreachable!()
        };
        let v = crate::law_cmd::converge_config(&a).unwrap();
        for (c, o) in [(&t.common, &t.optimizer), (&v.common, &v.optimizer)] {
            assert_eq!((c.seed, c.batch_size, o.lr), (9, 32, 0.5));
        }
    }

    #[test]
    fn trainer_flags_belong_to_train_and_prune() {
        let trainer = [
            "--val-split",
            "0",
            "--momentum",
            "0.8",
            "--augment",
            "true",
            "--stop-after",
            "2",
        ];
        for cmd in ["train", "prune"] {
            let a = match parse(cmd, &[&trainer]) {
                Cmd::Train(a) => a.trainer,
                Cmd::Prune(a) => a.trainer,
                _ => unreachable!(),
            };
            let (mut c, mut o) = (CommonConfig::default(), OptimConfig::default());
            a.apply(&mut c, &mut o);
            assert_eq!((c.val_split, c.augment, o.momentum), (Some(0), true, 0.8));
            assert_eq!(a.stop_after, Some(2));
        }
        for cmd in ["law", "converge"] {
            for flag in [
                "--val-split",
                "--momentum",
                "--augment",
                "--resume",
                "--stop-after",
            ] {
                assert!(
                    Cli::try_parse_from(["hyperflux", cmd, flag, "1"]).is_err(),
                    "{cmd} {flag}"
                );
            }
        }
        assert!(Cli::try_parse_from(["hyperflux", "train", "--mask-lr", "1"]).is_err());
    }
}
