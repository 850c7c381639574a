//! The settings of the law experiments, their defaults and their validation: [`LawConfig`] (one
//! measurement, `hyperflux law`, with the Taylor score mode [`TaylorScore`] and the table of
//! which family reads which setting, [`FamilySetting`]) and [`ConvergeConfig`] (fixed-pressure
//! convergence runs, `hyperflux converge`).

use super::Family;
use hf_core::config::{CommonConfig, ConfigError, OptimConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;

/// How the Taylor score accumulates over its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaylorScore {
    /// `|w · ḡ|` with `ḡ` the gradient of the mean loss over the batches (the literal
    /// `|w·∂L/∂w|` of the loss on those examples).
    AbsOfMean,
    /// `mean_b |w · g_b|`: per-batch scores averaged (less cancellation between batches).
    MeanOfAbs,
}

impl FromStr for TaylorScore {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "abs-of-mean" => Ok(TaylorScore::AbsOfMean),
            "mean-of-abs" => Ok(TaylorScore::MeanOfAbs),
            other => Err(format!(
                "unknown Taylor score {other:?}: use abs-of-mean or mean-of-abs"
            )),
        }
    }
}

impl TaylorScore {
    /// The name the settings and flags use (`abs-of-mean`, `mean-of-abs`).
    pub fn name(&self) -> &'static str {
        match self {
            TaylorScore::AbsOfMean => "abs-of-mean",
            TaylorScore::MeanOfAbs => "mean-of-abs",
        }
    }
}

/// A setting of [`LawConfig`] that only some families read: which ones, what it sets, and its
/// default (the CLI's flag help is made from these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilySetting {
    /// [`LawConfig::start_exponent`].
    StartExponent,
    /// [`LawConfig::block_epochs`].
    BlockEpochs,
    /// [`LawConfig::blocks`].
    Blocks,
    /// [`LawConfig::block_tolerance`].
    BlockTolerance,
    /// [`LawConfig::flux_quantile`].
    FluxQuantile,
    /// [`LawConfig::rate`].
    Rate,
    /// [`LawConfig::steps`].
    Steps,
    /// [`LawConfig::finetune_epochs`].
    FinetuneEpochs,
    /// [`LawConfig::min_density`].
    MinDensity,
    /// [`LawConfig::taylor_batches`].
    TaylorBatches,
    /// [`LawConfig::taylor_score`].
    TaylorScore,
}

impl FamilySetting {
    /// Every family-specific setting, in the order the CLI lists them.
    pub const ALL: [FamilySetting; 11] = [
        FamilySetting::StartExponent,
        FamilySetting::BlockEpochs,
        FamilySetting::Blocks,
        FamilySetting::BlockTolerance,
        FamilySetting::FluxQuantile,
        FamilySetting::Rate,
        FamilySetting::Steps,
        FamilySetting::FinetuneEpochs,
        FamilySetting::MinDensity,
        FamilySetting::TaylorBatches,
        FamilySetting::TaylorScore,
    ];

    /// The families that read the setting.
    pub fn families(self) -> &'static [Family] {
        use Family::*;
        match self {
            Self::StartExponent
            | Self::BlockEpochs
            | Self::Blocks
            | Self::BlockTolerance
            | Self::FluxQuantile => &[L0],
            Self::Rate | Self::Steps | Self::MinDensity => &[Magnitude, Taylor, Oneshot],
            Self::FinetuneEpochs => &[Magnitude, Taylor],
            Self::TaylorBatches | Self::TaylorScore => &[Taylor],
        }
    }

    /// What the setting sets.
    pub fn about(self) -> &'static str {
        match self {
            Self::StartExponent => "exponent k of the first pressure λ = 2^k",
            Self::BlockEpochs => "epochs per pressure block (K); λ doubles after each block",
            Self::Blocks => "number of pressure blocks (points)",
            Self::BlockTolerance => {
                "end a block early once the density changes by less than this many percent (of \
                 itself) over one epoch, --block-epochs being the most a block runs; 0: every \
                 block runs --block-epochs epochs"
            }
            Self::FluxQuantile => {
                "quantile of the survivors' flux recorded next to the minimum (QuantileFlux and \
                 QuantileRmsFlux columns)"
            }
            Self::Rate => "fraction of the remaining weights removed per step",
            Self::Steps => "number of pruning steps (points)",
            Self::FinetuneEpochs => "fine-tuning epochs after each step (masks frozen)",
            Self::MinDensity => "stop once the density (percent) is at or below this",
            Self::TaylorBatches => "training batches the score |w·∂L/∂w| is computed over",
            Self::TaylorScore => {
                "abs-of-mean (|w·ḡ|, ḡ the mean gradient over the batches) or mean-of-abs \
                 (per-batch |w·g| averaged)"
            }
        }
    }

    /// The setting's value in `cfg`, written as a flag takes it.
    pub fn value(self, cfg: &LawConfig) -> String {
        match self {
            Self::StartExponent => cfg.start_exponent.to_string(),
            Self::BlockEpochs => cfg.block_epochs.to_string(),
            Self::Blocks => cfg.blocks.to_string(),
            Self::BlockTolerance => cfg.block_tolerance.to_string(),
            Self::FluxQuantile => cfg.flux_quantile.to_string(),
            Self::Rate => cfg.rate.to_string(),
            Self::Steps => cfg.steps.to_string(),
            Self::FinetuneEpochs => cfg.finetune_epochs.to_string(),
            Self::MinDensity => cfg.min_density.to_string(),
            Self::TaylorBatches => cfg.taylor_batches.to_string(),
            Self::TaylorScore => cfg.taylor_score.name().to_string(),
        }
    }

    /// The flag help: `families: what it sets [default: D]`, e.g.
    /// `l0: number of pressure blocks (points) [default: 13]`, D from [`LawConfig::default`].
    pub fn help(self) -> String {
        let families: Vec<&str> = self.families().iter().map(Family::name).collect();
        format!(
            "{}: {} [default: {}]",
            families.join("/"),
            self.about(),
            self.value(&LawConfig::default())
        )
    }
}

/// Settings of one law measurement (`hyperflux law`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LawConfig {
    /// Model, data, seed, threads, output directory.
    pub common: CommonConfig,
    /// The dense checkpoint every family starts from (its masks are ignored: the run starts dense).
    pub from: Option<PathBuf>,
    /// Which family to measure.
    pub family: Option<Family>,
    /// Weight optimizer (constant learning rate) for the L0 ladder and the fine-tuning of IMP/Taylor.
    pub optimizer: OptimConfig,
    /// L0: exponent k of the first block's pressure `λ = 2^k`.
    pub start_exponent: i32,
    /// L0: epochs per pressure block (K).
    pub block_epochs: usize,
    /// L0: number of blocks; the last one runs at `2^(start_exponent + blocks − 1)`.
    pub blocks: usize,
    /// L0: a block ends early once the density changes by less than this percentage of itself
    /// over one epoch (0: never; every block runs `block_epochs`).
    pub block_tolerance: f64,
    /// L0: mask learning rate (Adam).
    pub mask_lr: f64,
    /// L0: straight-through scale s.
    pub ste_scale: f64,
    /// L0: masks start uniform in `[mask_init_low, mask_init_high]`.
    pub mask_init_low: f64,
    /// L0: upper end of the mask initialisation.
    pub mask_init_high: f64,
    /// L0: quantile of the survivors' flux recorded next to the minimum (e.g. 0.01).
    pub flux_quantile: f64,
    /// IMP / Taylor / one-shot: fraction of the remaining weights removed per step.
    pub rate: f64,
    /// IMP / Taylor / one-shot: number of pruning steps.
    pub steps: usize,
    /// IMP / Taylor: fine-tuning epochs after each pruning step (0: none).
    pub finetune_epochs: usize,
    /// IMP / Taylor / one-shot: stop once the density (percent) is at or below this.
    pub min_density: f64,
    /// Taylor: training batches the score is computed over.
    pub taylor_batches: usize,
    /// Taylor: how the score accumulates over the batches.
    pub taylor_score: TaylorScore,
}

impl Default for LawConfig {
    fn default() -> Self {
        Self {
            common: CommonConfig {
                out_dir: PathBuf::from("runs/law"),
                ..CommonConfig::default()
            },
            from: None,
            family: None,
            optimizer: OptimConfig::default(),
            start_exponent: -8,
            block_epochs: 3,
            blocks: 13,
            block_tolerance: 0.0,
            mask_lr: 1e-3,
            ste_scale: 0.25,
            mask_init_low: 0.2,
            mask_init_high: 0.5,
            flux_quantile: 0.01,
            rate: 0.1,
            steps: 55,
            finetune_epochs: 1,
            min_density: 0.1,
            taylor_batches: 10,
            taylor_score: TaylorScore::AbsOfMean,
        }
    }
}

fn invalid(key: &'static str, value: impl ToString, hint: &'static str) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_string(),
        hint,
    }
}

/// Checks the mask settings shared by the L0 ladder and [`converge`].
fn check_mask_settings(mask_lr: f64, ste: f64, lo: f64, hi: f64) -> Result<(), ConfigError> {
    if !(mask_lr.is_finite() && mask_lr > 0.0) {
        return Err(invalid(
            "mask_lr",
            mask_lr,
            "use a positive mask learning rate, e.g. 0.001",
        ));
    }
    if !(ste.is_finite() && ste > 0.0) {
        return Err(invalid(
            "ste_scale",
            ste,
            "use a positive straight-through scale, e.g. 0.25",
        ));
    }
    if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo <= hi) {
        return Err(invalid(
            "mask_init_low",
            format!("{lo} (high {hi})"),
            "masks must start present: use 0 <= low <= high, e.g. 0.2 and 0.5",
        ));
    }
    Ok(())
}

impl LawConfig {
    /// Checks every setting; the family must be set.
    pub fn validate(&self) -> Result<Family, ConfigError> {
        self.common.validate()?;
        self.optimizer.validate()?;
        let family = self.family.ok_or_else(|| {
            invalid(
                "family",
                "(unset)",
                "choose one with --family l0|magnitude|taylor|oneshot",
            )
        })?;
        match family {
            Family::L0 => {
                if self.block_epochs == 0 {
                    return Err(invalid(
                        "block_epochs",
                        0,
                        "use at least one epoch per block",
                    ));
                }
                if self.blocks == 0 {
                    return Err(invalid("blocks", 0, "use at least one block"));
                }
                if !(self.block_tolerance.is_finite() && self.block_tolerance >= 0.0) {
                    return Err(invalid(
                        "block_tolerance",
                        self.block_tolerance,
                        "use a percentage >= 0, e.g. 1 (0 turns early block ends off)",
                    ));
                }
                let last = self.start_exponent as i64 + self.blocks as i64 - 1;
                if !(-60..=30).contains(&(self.start_exponent as i64)) || last > 30 {
                    return Err(invalid(
                        "start_exponent",
                        format!("{} with {} blocks", self.start_exponent, self.blocks),
                        "keep the exponents k of λ = 2^k within [-60, 30]",
                    ));
                }
                check_mask_settings(
                    self.mask_lr,
                    self.ste_scale,
                    self.mask_init_low,
                    self.mask_init_high,
                )?;
                if !(self.flux_quantile >= 0.0 && self.flux_quantile < 1.0) {
                    return Err(invalid(
                        "flux_quantile",
                        self.flux_quantile,
                        "use a quantile in [0, 1), e.g. 0.01",
                    ));
                }
            }
            Family::Magnitude | Family::Taylor | Family::Oneshot => {
                if !(self.rate > 0.0 && self.rate < 1.0) {
                    return Err(invalid(
                        "rate",
                        self.rate,
                        "use a fraction in (0, 1), e.g. 0.1 for 10% per step",
                    ));
                }
                if self.steps == 0 {
                    return Err(invalid("steps", 0, "use at least one pruning step"));
                }
                if !(self.min_density >= 0.0 && self.min_density < 100.0) {
                    return Err(invalid(
                        "min_density",
                        self.min_density,
                        "use a density in percent in [0, 100)",
                    ));
                }
                if family == Family::Taylor && self.taylor_batches == 0 {
                    return Err(invalid(
                        "taylor_batches",
                        0,
                        "score over at least one batch",
                    ));
                }
            }
        }
        Ok(family)
    }
}

/// Settings of a fixed-pressure convergence experiment (`hyperflux converge`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConvergeConfig {
    /// Model, data, seed, threads, output directory.
    pub common: CommonConfig,
    /// Dense checkpoint to start from (none: from scratch, as the authors' runs).
    pub from: Option<PathBuf>,
    /// The pressures λ, one run each.
    pub pressures: Vec<f64>,
    /// Weight learning rates (start of the cosine), one set of runs each (the paper's Figure 5);
    /// empty: the optimizer's `lr` alone.
    pub lrs: Vec<f64>,
    /// Epochs per run.
    pub epochs: usize,
    /// Weight optimizer; its learning rate follows a cosine from `lr` to `lr / lr_divisor`.
    pub optimizer: OptimConfig,
    /// End of the weight-LR cosine, as a divisor of the start.
    pub lr_divisor: f64,
    /// Mask learning rate (Adam).
    pub mask_lr: f64,
    /// Straight-through scale s.
    pub ste_scale: f64,
    /// Masks start uniform in `[mask_init_low, mask_init_high]`.
    pub mask_init_low: f64,
    /// Upper end of the mask initialisation.
    pub mask_init_high: f64,
    /// Record the density every this many batches (and at every epoch's end).
    pub record_every: usize,
}

impl Default for ConvergeConfig {
    fn default() -> Self {
        Self {
            common: CommonConfig {
                out_dir: PathBuf::from("runs/converge"),
                ..CommonConfig::default()
            },
            from: None,
            pressures: vec![0.25, 1.0, 4.0],
            lrs: Vec::new(),
            epochs: 300,
            optimizer: OptimConfig {
                lr: 5e-3,
                ..OptimConfig::default()
            },
            lr_divisor: 30.0,
            mask_lr: 1e-3,
            ste_scale: 0.25,
            mask_init_low: 0.2,
            mask_init_high: 0.5,
            record_every: 50,
        }
    }
}

impl ConvergeConfig {
    /// The weight learning rates to run: `lrs`, or the optimizer's `lr` when it is empty.
    pub fn learning_rates(&self) -> Vec<f64> {
        if self.lrs.is_empty() {
            vec![self.optimizer.lr]
        } else {
            self.lrs.clone()
        }
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.common.validate()?;
        self.optimizer.validate()?;
        if self.pressures.is_empty() {
            return Err(invalid(
                "pressures",
                "[]",
                "give at least one pressure, e.g. --pressures 0.25,1,4",
            ));
        }
        if let Some(p) = self
            .pressures
            .iter()
            .find(|p| !(p.is_finite() && **p > 0.0))
        {
            return Err(invalid(
                "pressures",
                p,
                "every pressure must be a positive number",
            ));
        }
        if let Some(l) = self.lrs.iter().find(|l| !(l.is_finite() && **l > 0.0)) {
            return Err(invalid(
                "lrs",
                l,
                "every learning rate must be a positive number",
            ));
        }
        if self.epochs == 0 {
            return Err(invalid("epochs", 0, "run at least one epoch"));
        }
        if self.lr_divisor.is_nan() || self.lr_divisor < 1.0 {
            return Err(invalid("lr_divisor", self.lr_divisor, "use a value >= 1"));
        }
        if self.record_every == 0 {
            return Err(invalid(
                "record_every",
                0,
                "record at least every N >= 1 batches",
            ));
        }
        check_mask_settings(
            self.mask_lr,
            self.ste_scale,
            self.mask_init_low,
            self.mask_init_high,
        )
    }
}
