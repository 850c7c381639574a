//! Run configuration: explicit serde structs, validated once at the edge (CLI or TOML), written
//! next to every run's outputs as `config.toml`.

// Range checks are written `!(x >= lo)` on purpose: NaN must fail them.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub use crate::baselines::PruneMethod;
use crate::preprocess::Normalize;
use crate::pressure::{ScheduleError, Trajectory};
use crate::stages::StagePlan;
use crate::update::OptimKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A configuration error: one line naming the setting and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Scheduler settings refused.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// Any other invalid setting.
    #[error("invalid setting {key} = {value}: {hint}")]
    Invalid {
        /// The setting's name.
        key: &'static str,
        /// Its value as given.
        value: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// Unreadable or malformed TOML file.
    #[error("config file {path}: {msg}")]
    File {
        /// Path of the file.
        path: String,
        /// Parser or I/O message.
        msg: String,
    },
}

fn invalid(key: &'static str, value: impl ToString, hint: &'static str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        hint,
    }
}

/// What every run needs: model, data, seed, batching, device.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CommonConfig {
    /// Model name (see `hyperflux models`).
    pub model: String,
    /// Dataset: mnist, fashion-mnist, cifar10, cifar100, or `npy:DIR` (a directory of
    /// `train_x.npy`, `train_y.npy`, `test_x.npy`, `test_y.npy`).
    pub dataset: String,
    /// Directory of the dataset files (default: the dataset's standard place; for `npy:DIR`,
    /// DIR).
    pub data_dir: Option<PathBuf>,
    /// Input normalisation `(x·scale − mean) / std` per channel (none: the dataset's default —
    /// the published constants of the built-in datasets, mean 0 and std 1 for npy data).
    pub normalize: Option<Normalize>,
    /// Seed of initialisation, masks and data order.
    pub seed: u64,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Device: cpu, cuda or auto.
    pub device: String,
    /// CPU threads for libtorch (0: all cores).
    pub threads: usize,
    /// Use only the first N training examples (0: all); for quick experiments and tests.
    pub train_limit: usize,
    /// Use only the first N test examples (0: all).
    pub test_limit: usize,
    /// Validation split: the last N training examples (after `train_limit`) are held out of
    /// training and evaluated every epoch; schedules and choices look at them, the test set
    /// is only reported. `None`: the default, [`CommonConfig::DEFAULT_VAL_SPLIT`] examples or a
    /// tenth of the training set, whichever is smaller; `Some(0)`: no validation split.
    pub val_split: Option<usize>,
    /// Label smoothing of the cross-entropy (0.1).
    pub label_smoothing: f64,
    /// Output directory of the run.
    pub out_dir: PathBuf,
    /// Data augmentation (random crop with padding 4 and flip) for image datasets that use it.
    pub augment: bool,
}

impl Default for CommonConfig {
    fn default() -> Self {
        Self {
            model: "lenet300".into(),
            dataset: "mnist".into(),
            data_dir: None,
            normalize: None,
            seed: 0,
            batch_size: 128,
            device: "cpu".into(),
            threads: 0,
            train_limit: 0,
            test_limit: 0,
            val_split: None,
            label_smoothing: 0.1,
            out_dir: PathBuf::from("runs/run"),
            augment: false,
        }
    }
}

impl CommonConfig {
    /// Default size of the validation split: the last 5,000 training images (MNIST's
    /// 55,000 / 5,000 convention; also used for CIFAR's 45,000 / 5,000).
    pub const DEFAULT_VAL_SPLIT: usize = 5000;

    /// How many of `train_len` training examples the validation split takes (see
    /// [`CommonConfig::val_split`]); an explicit split must leave training examples.
    pub fn val_count(&self, train_len: usize) -> Result<usize, ConfigError> {
        match self.val_split {
            None => Ok(Self::DEFAULT_VAL_SPLIT.min(train_len / 10)),
            Some(n) if n < train_len => Ok(n),
            Some(n) => Err(ConfigError::Invalid {
                key: "val_split",
                value: format!("{n} (of {train_len} training examples)"),
                hint: "hold out fewer examples than the training set has, or 0 for no validation split",
            }),
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.batch_size == 0 {
            return Err(invalid(
                "batch_size",
                0,
                "use a positive batch size, e.g. 128",
            ));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(invalid(
                "label_smoothing",
                self.label_smoothing,
                "use a value in [0, 1), e.g. 0.1",
            ));
        }
        if !matches!(self.device.as_str(), "cpu" | "cuda" | "auto") {
            return Err(invalid("device", &self.device, "use cpu, cuda or auto"));
        }
        if let Some(n) = &self.normalize {
            if n.validate().is_err() {
                return Err(invalid(
                    "normalize",
                    format!("{{ mean = {:?}, std = {:?} }}", n.mean, n.std),
                    "give as many means as standard deviations (1, or one per channel), all finite, every std > 0",
                ));
            }
        }
        Ok(())
    }
}

/// The weight optimizer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// "adam" or "sgd".
    pub kind: String,
    /// Learning rate (lr0).
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            kind: "adam".into(),
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 0.0,
        }
    }
}

impl OptimConfig {
    /// The optimizer kind, validated.
    pub fn kind(&self) -> Result<OptimKind, ConfigError> {
        match self.kind.as_str() {
            "adam" => Ok(OptimKind::adam()),
            "sgd" => Ok(OptimKind::Sgd {
                momentum: self.momentum,
            }),
            other => Err(invalid("optimizer.kind", other, "use adam or sgd")),
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kind()?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid(
                "optimizer.lr",
                self.lr,
                "use a positive learning rate",
            ));
        }
        if !(self.weight_decay >= 0.0) {
            return Err(invalid(
                "optimizer.weight_decay",
                self.weight_decay,
                "use a non-negative weight decay",
            ));
        }
        Ok(())
    }
}

/// Dense training (`hyperflux train`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Model, data, seed.
    pub common: CommonConfig,
    /// Start from this checkpoint's or ONNX model's weights (fine-tuning) instead of a fresh
    /// initialisation; an ONNX file also gives the architecture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<PathBuf>,
    /// Weight optimizer.
    pub optimizer: OptimConfig,
    /// Epochs of dense training.
    pub epochs: usize,
    /// The learning rate follows a cosine from `optimizer.lr` to `optimizer.lr / lr_divisor`.
    pub lr_divisor: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            common: CommonConfig {
                out_dir: PathBuf::from("runs/dense"),
                ..CommonConfig::default()
            },
            from: None,
            optimizer: OptimConfig::default(),
            epochs: 20,
            lr_divisor: 30.0,
        }
    }
}

impl TrainConfig {
    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.common.validate()?;
        self.optimizer.validate()?;
        if self.epochs == 0 {
            return Err(invalid("epochs", 0, "train for at least one epoch"));
        }
        if !(self.lr_divisor >= 1.0) {
            return Err(invalid("lr_divisor", self.lr_divisor, "use a value >= 1"));
        }
        Ok(())
    }
}

/// What pressure does during regrowth.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RegrowthPressure {
    /// The controller keeps running with the target density as its set point, so regrowth
    /// re-arranges which weights survive but the density stays on target (this project's default).
    Hold,
    /// λ = 0 as in the authors' code: density rises 1.1–3× during regrowth.
    Zero,
}

/// Hyperflux pruning (`hyperflux prune`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PruneConfig {
    /// Model, data, seed.
    pub common: CommonConfig,
    /// Dense checkpoint to start from (none: from scratch).
    pub from: Option<PathBuf>,
    /// How weights are removed: Hyperflux (the default) or a magnitude baseline (`gmp`,
    /// `oneshot`) with the same epochs and optimizer; the baselines need `target_sparsity`.
    pub method: PruneMethod,
    /// Target sparsity in percent (pruned), e.g. 98. Exclusive with `pressure`.
    pub target_sparsity: Option<f64>,
    /// Fixed pressure λ (no scheduler). Exclusive with `target_sparsity`.
    pub pressure: Option<f64>,
    /// Pruning epochs P.
    pub pruning_epochs: usize,
    /// Regrowth epochs after P.
    pub regrowth_epochs: usize,
    /// Weight optimizer (lr = lr0 of the pruning stage).
    pub optimizer: OptimConfig,
    /// Pruning-stage weight LR ends at lr0 / this.
    pub lr_divisor: f64,
    /// Weight LR at the start of regrowth.
    pub regrowth_lr_start: f64,
    /// Weight LR at the end of regrowth.
    pub regrowth_lr_end: f64,
    /// Mask learning rate (Adam).
    pub mask_lr: f64,
    /// Regrowth mask-LR multiplier.
    pub mask_lr_scaler: f64,
    /// Per-regrowth-epoch mask-LR decay.
    pub mask_lr_decay: f64,
    /// Regrowth epoch from which the mask LR is 0.
    pub mask_lr_cutoff: usize,
    /// Straight-through scale s.
    pub ste_scale: f64,
    /// Masks start uniform in [mask_init_low, mask_init_high].
    pub mask_init_low: f64,
    /// Upper end of the mask initialisation.
    pub mask_init_high: f64,
    /// Controller step Δ (0.3 LeNet, 0.2 CIFAR).
    pub controller_step: f64,
    /// Aggressivity of the target trajectory (6).
    pub aggressivity: f64,
    /// Pressure during regrowth.
    pub regrowth_pressure: RegrowthPressure,
    /// Relative tolerance of the final density (0.05 = ±5%); the run reports whether it landed.
    pub density_tolerance: f64,
    /// Scheduled runs: in the last this-many regrowth epochs the masks are shifted once so that
    /// exactly the target fraction of weights is present (rank by mask value), then frozen while
    /// the weights fine-tune. 0 disables it.
    pub final_freeze_epochs: usize,
}

impl Default for PruneConfig {
    fn default() -> Self {
        Self {
            common: CommonConfig {
                out_dir: PathBuf::from("runs/prune"),
                ..CommonConfig::default()
            },
            from: None,
            method: PruneMethod::Hyperflux,
            target_sparsity: Some(98.0),
            pressure: None,
            pruning_epochs: 30,
            regrowth_epochs: 15,
            optimizer: OptimConfig::default(),
            lr_divisor: 30.0,
            regrowth_lr_start: 1e-3,
            regrowth_lr_end: 1e-4,
            mask_lr: 1e-3,
            mask_lr_scaler: 1.0,
            mask_lr_decay: 0.75,
            mask_lr_cutoff: 50,
            ste_scale: 0.25,
            mask_init_low: 0.2,
            mask_init_high: 0.5,
            controller_step: 0.3,
            aggressivity: 6.0,
            regrowth_pressure: RegrowthPressure::Hold,
            density_tolerance: 0.05,
            final_freeze_epochs: 2,
        }
    }
}

impl PruneConfig {
    /// Checks every setting; a target sparsity outside (0, 100) is refused here.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.common.validate()?;
        self.optimizer.validate()?;
        match (self.target_sparsity, self.pressure) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "pressure",
                    self.pressure.unwrap_or_default(),
                    "give either --target-sparsity or --pressure, not both",
                ))
            }
            (None, None) => {
                return Err(invalid(
                    "target_sparsity",
                    "none",
                    "give --target-sparsity S (percent pruned) or --pressure λ",
                ))
            }
            (Some(s), None) if self.method.trains_masks() => {
                Trajectory::with_aggressivity(s, self.pruning_epochs, self.aggressivity)?;
            }
            (Some(s), None) => {
                // A magnitude baseline has no pressure trajectory to be reachable.
                if !(s > 0.0 && s < 100.0) {
                    return Err(ScheduleError::TargetOutOfRange(s).into());
                }
                if self.pruning_epochs == 0 {
                    return Err(ScheduleError::NoEpochs(0).into());
                }
            }
            (None, Some(_)) if !self.method.trains_masks() => {
                return Err(invalid(
                    "pressure",
                    self.pressure.unwrap_or_default(),
                    "--method gmp and oneshot prune by magnitude to a --target-sparsity, not under a pressure",
                ))
            }
            (None, Some(l)) => {
                if !(l.is_finite() && l >= 0.0) {
                    return Err(invalid(
                        "pressure",
                        l,
                        "use a non-negative pressure, e.g. 1",
                    ));
                }
                if self.pruning_epochs == 0 {
                    return Err(ScheduleError::NoEpochs(0).into());
                }
            }
        }
        if !(self.mask_lr >= 0.0 && self.mask_lr.is_finite()) {
            return Err(invalid(
                "mask_lr",
                self.mask_lr,
                "use a non-negative learning rate",
            ));
        }
        if !(self.mask_init_low <= self.mask_init_high) {
            return Err(invalid(
                "mask_init_low",
                self.mask_init_low,
                "must not exceed mask_init_high",
            ));
        }
        if !(self.ste_scale > 0.0) {
            return Err(invalid(
                "ste_scale",
                self.ste_scale,
                "use a positive scale, e.g. 0.25",
            ));
        }
        if !(self.controller_step > 0.0) {
            return Err(invalid(
                "controller_step",
                self.controller_step,
                "use a positive step, e.g. 0.3",
            ));
        }
        if !(self.density_tolerance > 0.0) {
            return Err(invalid(
                "density_tolerance",
                self.density_tolerance,
                "use a positive relative tolerance, e.g. 0.05",
            ));
        }
        Ok(())
    }

    /// The learning-rate plan of this run.
    pub fn stage_plan(&self) -> StagePlan {
        StagePlan {
            pruning_epochs: self.pruning_epochs,
            regrowth_epochs: self.regrowth_epochs,
            weight_lr: self.optimizer.lr,
            weight_lr_divisor: self.lr_divisor,
            regrowth_lr_start: self.regrowth_lr_start,
            regrowth_lr_end: self.regrowth_lr_end,
            mask_lr: self.mask_lr,
            mask_lr_scaler: self.mask_lr_scaler,
            mask_lr_decay: self.mask_lr_decay,
            mask_lr_cutoff: self.mask_lr_cutoff,
        }
    }
}

/// Reads a TOML config file into `T`, naming the file in every error.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.display().to_string(),
        msg: e.message().to_string(),
    })
}

/// Parses a config from TOML text (e.g. the config stored in a checkpoint).
pub fn from_toml_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::File {
        path: "(stored config)".into(),
        msg: e.message().to_string(),
    })
}

/// Serialises a config as TOML (for `config.toml` beside a run's outputs).
pub fn to_toml<T: Serialize>(cfg: &T) -> String {
    toml::to_string_pretty(cfg).unwrap_or_else(|e| format!("# could not serialise config: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitude_baselines_need_a_reachable_free_target_not_a_pressure() {
        let mut c = PruneConfig {
            method: PruneMethod::Gmp,
            target_sparsity: Some(99.5),
            pruning_epochs: 3,
            ..PruneConfig::default()
        };
        // no pressure trajectory: any sparsity in (0, 100) in any number of epochs
        c.validate().unwrap();
        c.target_sparsity = Some(100.0);
        assert!(c.validate().unwrap_err().to_string().contains("(0, 100)"));
        c.target_sparsity = None;
        c.pressure = Some(1.0);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--target-sparsity"));
        // Hyperflux keeps its reachability check
        c.method = PruneMethod::Hyperflux;
        c.pressure = None;
        c.target_sparsity = Some(99.5);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cannot be reached"));
        // the method is stored and read back; configs without it are Hyperflux
        c.method = PruneMethod::Oneshot;
        let text = to_toml(&c);
        assert!(text.contains("method = \"oneshot\""), "{text}");
        let back: PruneConfig = from_toml_str(&text).unwrap();
        assert_eq!(back.method, PruneMethod::Oneshot);
        let old: PruneConfig = from_toml_str(&text.replace("method = \"oneshot\"\n", "")).unwrap();
        assert_eq!(old.method, PruneMethod::Hyperflux);
    }

    #[test]
    fn validation_split_defaults_to_5000_or_a_tenth_and_must_leave_training_data() {
        let mut c = CommonConfig::default();
        assert_eq!(c.val_count(60_000).unwrap(), 5000);
        assert_eq!(c.val_count(50_000).unwrap(), 5000);
        assert_eq!(c.val_count(512).unwrap(), 51);
        assert_eq!(c.val_count(9).unwrap(), 0);
        c.val_split = Some(0);
        assert_eq!(c.val_count(60_000).unwrap(), 0);
        c.val_split = Some(100);
        assert_eq!(c.val_count(101).unwrap(), 100);
        let e = c.val_count(100).unwrap_err().to_string();
        assert!(e.contains("val_split") && e.contains("100 (of 100"), "{e}");
        // configs written before the key existed read as the default
        let text = to_toml(&CommonConfig::default());
        assert!(!text.contains("val_split"));
        let back: CommonConfig = from_toml_str(&text).unwrap();
        assert_eq!(back.val_split, None);
    }

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml() {
        let p = PruneConfig::default();
        p.validate().unwrap();
        let back: PruneConfig = toml::from_str(&to_toml(&p)).unwrap();
        assert_eq!(back, p);
        let t = TrainConfig::default();
        t.validate().unwrap();
        let back: TrainConfig = toml::from_str(&to_toml(&t)).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn defaults_are_the_spec_values() {
        // ../shared/spec/hyperflux.md §1–3: STE scale 0.25, masks U[0.2, 0.5], mask LR 1e-3
        // (Adam), controller step Δ = 0.3 for LeNet, aggressivity 6, pruning-stage weight LR
        // cosine to lr0/30, regrowth weight LR 1e-3 → 1e-4, mask-LR scaler 1, decay 0.75, 0
        // from regrowth epoch 50.
        let p = PruneConfig::default();
        assert_eq!(p.ste_scale, 0.25);
        assert_eq!((p.mask_init_low, p.mask_init_high), (0.2, 0.5));
        assert_eq!(p.mask_lr, 1e-3);
        assert_eq!(p.controller_step, 0.3);
        assert_eq!(p.aggressivity, 6.0);
        assert_eq!(p.lr_divisor, 30.0);
        assert_eq!((p.regrowth_lr_start, p.regrowth_lr_end), (1e-3, 1e-4));
        assert_eq!(
            (p.mask_lr_scaler, p.mask_lr_decay, p.mask_lr_cutoff),
            (1.0, 0.75, 50)
        );
        assert_eq!(p.density_tolerance, 0.05);
        assert_eq!(p.optimizer.lr, 1e-3);
        assert_eq!(p.optimizer.weight_decay, 0.0);
    }

    #[test]
    fn target_sparsity_outside_range_is_refused() {
        for s in [0.0, 100.0, 150.0] {
            let p = PruneConfig {
                target_sparsity: Some(s),
                ..PruneConfig::default()
            };
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains("outside (0, 100)"), "{e}");
        }
    }

    #[test]
    fn pressure_and_target_are_exclusive() {
        let p = PruneConfig {
            pressure: Some(1.0),
            ..PruneConfig::default()
        };
        assert!(p.validate().unwrap_err().to_string().contains("not both"));
        let p = PruneConfig {
            target_sparsity: None,
            ..PruneConfig::default()
        };
        assert!(p.validate().is_err());
        let p = PruneConfig {
            target_sparsity: None,
            pressure: Some(0.25),
            ..PruneConfig::default()
        };
        p.validate().unwrap();
    }

    #[test]
    fn toml_partial_file_uses_defaults_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "target_sparsity = 95.0\n[common]\nseed = 7\n").unwrap();
        let p: PruneConfig = read_toml(&f).unwrap();
        assert_eq!(p.target_sparsity, Some(95.0));
        assert_eq!(p.common.seed, 7);
        assert_eq!(p.pruning_epochs, PruneConfig::default().pruning_epochs);
        std::fs::write(&f, "target_sparsty = 95.0\n").unwrap();
        let e = read_toml::<PruneConfig>(&f).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("target_sparsty"), "{e}");
    }

    #[test]
    fn normalize_round_trips_and_is_validated() {
        let mut t = TrainConfig::default();
        t.common.normalize = Some("0.5,0.25".parse().unwrap());
        t.validate().unwrap();
        let text = to_toml(&t);
        assert!(text.contains("[common.normalize]"), "{text}");
        let back: TrainConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, t);
        // Older configs have no normalize: the dataset's default.
        let old: TrainConfig = toml::from_str("[common]\nseed = 1\n").unwrap();
        assert_eq!(old.common.normalize, None);
        let bad: TrainConfig =
            toml::from_str("[common.normalize]\nmean = [0.5]\nstd = [0.0]\n").unwrap();
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("normalize") && e.contains("std > 0"), "{e}");
        let bad: TrainConfig =
            toml::from_str("[common.normalize]\nmean = [0.5, 1]\nstd = [1.0]\n").unwrap();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let mut t = TrainConfig::default();
        t.common.batch_size = 0;
        assert!(t.validate().unwrap_err().to_string().contains("batch_size"));
        let mut t = TrainConfig::default();
        t.optimizer.kind = "rmsprop".into();
        assert!(t
            .validate()
            .unwrap_err()
            .to_string()
            .contains("adam or sgd"));
    }
}
