//! Neural Pruning Law measurements (spec §4): the trajectories whose points `(γ, s)` — the
//! saliency threshold the surviving weights withstand and the density — the law relates.
//!
//! Four families start from the same dense checkpoint ([`measure`]):
//! - [`Family::L0`]: Hyperflux under a pressure ladder `λ = 2^k`, k raised by one every
//!   `block_epochs` epochs. A point per block: λ, density and accuracy at the block's end, plus
//!   the flux `φ = −w·∂L/∂ŵ` of the surviving weights averaged over the block's last epoch
//!   (minimum, a low quantile, median; see [`FluxStats`]) and the quantiles of its per-weight
//!   root mean square ([`rms_flux_stats`]).
//! - [`Family::Magnitude`]: global iterative magnitude pruning (IMP), `rate` of the remaining
//!   weights per step, fine-tuning (masks frozen) between steps; saliency = the largest magnitude
//!   removed.
//! - [`Family::Taylor`]: the same schedule with the first-order Taylor score `|w·∂L/∂w|` over a
//!   few training batches.
//! - [`Family::Oneshot`]: the control — prune the dense net directly to each density of the same
//!   geometric schedule by magnitude, no fine-tuning. Its law is a property of the dense weight
//!   distribution alone, which tells whether the iterative families owe theirs to the trajectory.
//!
//! [`converge`] runs fixed-pressure Hyperflux for several λ and records density every few batches.
//!
//! Points are engine-side [`LawSample`]s (the CLI turns them into `hf_law::LawPoint`s).

use crate::checkpoint::Checkpoint;
use crate::masked::DensityReport;
use crate::network::{self, Network};
use crate::step::{self, HyperfluxOptim, StepSettings};
use crate::trainer::{self, EpochRunner, EpochStats, Observer, RunData};
use crate::EngineError;
use hf_core::config::{CommonConfig, ConfigError, OptimConfig};
use hf_core::records::EpochRecord;
use hf_core::stages::cosine;
use hf_data::BatchConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;
use tch::{Device, Tensor};

/// A pruning family whose law is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Hyperflux (L0) under a pressure ladder `λ = 2^k`.
    L0,
    /// Global iterative magnitude pruning with fine-tuning.
    Magnitude,
    /// Global iterative first-order Taylor pruning with fine-tuning.
    Taylor,
    /// One-shot global magnitude pruning of the dense net to each density (no fine-tuning).
    Oneshot,
}

impl Family {
    /// Every family, in the order the CLI lists them.
    pub const ALL: [Family; 4] = [
        Family::L0,
        Family::Magnitude,
        Family::Taylor,
        Family::Oneshot,
    ];

    /// Lower-case name (file stems, settings files).
    pub fn name(&self) -> &'static str {
        match self {
            Family::L0 => "l0",
            Family::Magnitude => "magnitude",
            Family::Taylor => "taylor",
            Family::Oneshot => "oneshot",
        }
    }

    /// What the Saliency column of this family means.
    pub fn saliency_meaning(&self) -> &'static str {
        match self {
            Family::L0 => "pressure λ of the block",
            Family::Magnitude | Family::Oneshot => "largest magnitude |w| removed",
            Family::Taylor => "largest Taylor score |w·∂L/∂w| removed",
        }
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "l0" | "hyperflux" => Ok(Family::L0),
            "magnitude" | "imp" => Ok(Family::Magnitude),
            "taylor" => Ok(Family::Taylor),
            "oneshot" | "one-shot" => Ok(Family::Oneshot),
            other => Err(format!(
                "unknown family {other:?}: use l0, magnitude, taylor or oneshot"
            )),
        }
    }
}

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

/// One point of a law trajectory (the columns of a law CSV).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LawSample {
    /// Training epochs done when the point was taken (none for the one-shot control).
    pub epoch: Option<f64>,
    /// Saliency threshold γ (see [`Family::saliency_meaning`]).
    pub saliency: f64,
    /// Density after the point's pruning, percent of prunable weights present.
    pub remaining: f64,
    /// Test accuracy in percent. L0: at the block's end; IMP/Taylor: of the network the step
    /// pruned (before the step, as in the spec); one-shot: of the pruned net.
    pub accuracy: f64,
    /// Family-specific columns, in a fixed order per family.
    pub extras: Vec<(String, f64)>,
}

/// What a law measurement produced.
#[derive(Debug, Clone)]
pub struct LawOutcome {
    /// The family measured.
    pub family: Family,
    /// The points, in the order they were taken.
    pub samples: Vec<LawSample>,
    /// Test accuracy of the dense starting point (percent).
    pub dense_accuracy: f64,
    /// Number of prunable weights N.
    pub prunable: usize,
    /// Training epochs run.
    pub epochs: usize,
    /// Why the run ended before its last step, if it did.
    pub stopped_early: Option<String>,
    /// Wall time of the measurement, seconds.
    pub seconds: f64,
}

/// Statistics of the per-weight flux over the surviving weights (averaged per step over an epoch).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FluxStats {
    /// Surviving weights.
    pub survivors: usize,
    /// Smallest flux among survivors.
    pub min: f64,
    /// The requested low quantile among survivors.
    pub quantile: f64,
    /// Median among survivors.
    pub median: f64,
    /// Percentage of survivors whose flux is below the equilibrium `λ/(s·N)`.
    pub below_equilibrium: f64,
}

/// Low quantiles of a per-weight quantity over the surviving weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SurvivorQuantiles {
    /// Surviving weights.
    pub survivors: usize,
    /// Smallest value among survivors.
    pub min: f64,
    /// The requested low quantile among survivors.
    pub quantile: f64,
    /// Median among survivors.
    pub median: f64,
}

/// The values `f(t / divisor)` of the present weights (`m >= 0`), sorted ascending.
fn survivor_values(
    net: &dyn Network,
    per_weight: &[Tensor],
    divisor: f64,
    f: fn(f64) -> f64,
) -> Vec<f64> {
    let mut v: Vec<f64> = Vec::new();
    for (mw, t) in net.masked().iter().zip(per_weight) {
        let m = network::to_vec_f32(&mw.m);
        let t = network::to_vec_f32(t);
        v.extend(
            m.iter()
                .zip(&t)
                .filter(|(m, _)| **m >= 0.0)
                .map(|(_, t)| f(*t as f64 / divisor)),
        );
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Minimum, `q`-quantile (lower nearest rank) and median of sorted, non-empty `v`.
fn quantiles(v: &[f64], q: f64) -> SurvivorQuantiles {
    let at = |q: f64| v[((q * (v.len() - 1) as f64).floor() as usize).min(v.len() - 1)];
    SurvivorQuantiles {
        survivors: v.len(),
        min: v[0],
        quantile: at(q),
        median: at(0.5),
    }
}

/// Flux statistics of the weights present now: `flux_sum` holds `Σ −w·∂L/∂ŵ` over `steps` steps
/// per masked tensor. `None` when no weight survives or no step was taken.
pub fn flux_stats(
    net: &dyn Network,
    flux_sum: &[Tensor],
    steps: usize,
    quantile: f64,
    equilibrium: f64,
) -> Option<FluxStats> {
    if steps == 0 {
        return None;
    }
    let v = survivor_values(net, flux_sum, steps as f64, |x| x);
    if v.is_empty() {
        return None;
    }
    let q = quantiles(&v, quantile);
    let below = v.iter().filter(|f| **f < equilibrium).count();
    Some(FluxStats {
        survivors: q.survivors,
        min: q.min,
        quantile: q.quantile,
        median: q.median,
        below_equilibrium: 100.0 * below as f64 / v.len() as f64,
    })
}

/// Quantiles of the per-weight root-mean-square flux `sqrt(Σφ² / steps)` over the weights present
/// now (`sq_sum` holds `Σφ²` per masked tensor): how strongly each survivor's flux fluctuates,
/// whatever its mean. `None` when no weight survives or no step was taken.
pub fn rms_flux_stats(
    net: &dyn Network,
    sq_sum: &[Tensor],
    steps: usize,
    quantile: f64,
) -> Option<SurvivorQuantiles> {
    if steps == 0 {
        return None;
    }
    let v = survivor_values(net, sq_sum, steps as f64, f64::sqrt);
    (!v.is_empty()).then(|| quantiles(&v, quantile))
}

/// Result of one pruning step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneStep {
    /// The largest score removed (NaN when nothing was removed).
    pub threshold: f64,
    /// Weights removed.
    pub removed: usize,
    /// Present weights before the step.
    pub present_before: usize,
    /// Present weights after the step.
    pub present_after: usize,
}

/// Mask value given to weights a pruning step removes.
const PRUNED_MASK: f32 = -1.0;

/// Removes the `round(fraction · present)` present weights with the lowest scores (globally over
/// all masked tensors; at least one when any is present) by setting their masks to −1. Ties are
/// broken by position, so the count is exact. `scores` holds one tensor per masked tensor.
pub fn prune_lowest(
    net: &dyn Network,
    scores: &[Tensor],
    fraction: f64,
) -> Result<PruneStep, EngineError> {
    let masked = net.masked();
    if scores.len() != masked.len() {
        return Err(EngineError::Model(format!(
            "pruning scores for {} tensors but the model has {} masked tensors",
            scores.len(),
            masked.len()
        )));
    }
    let mut masks: Vec<Vec<f32>> = Vec::with_capacity(masked.len());
    let mut cand: Vec<(f32, u32, u32)> = Vec::new();
    for (l, (mw, s)) in masked.iter().zip(scores).enumerate() {
        if s.size() != mw.m.size() {
            return Err(EngineError::Model(format!(
                "pruning scores of {} have shape {:?}, the weight has {:?}",
                mw.name,
                s.size(),
                mw.m.size()
            )));
        }
        let m = network::to_vec_f32(&mw.m);
        let s = network::to_vec_f32(s);
        cand.extend(
            m.iter()
                .zip(&s)
                .enumerate()
                .filter(|(_, (m, _))| **m >= 0.0)
                .map(|(i, (_, s))| (*s, l as u32, i as u32)),
        );
        masks.push(m);
    }
    let present = cand.len();
    let k = if present == 0 || fraction <= 0.0 {
        0
    } else {
        ((fraction * present as f64).round() as usize).clamp(1, present)
    };
    if k == 0 {
        return Ok(PruneStep {
            threshold: f64::NAN,
            removed: 0,
            present_before: present,
            present_after: present,
        });
    }
    let cmp = |a: &(f32, u32, u32), b: &(f32, u32, u32)| {
        a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    };
    cand.select_nth_unstable_by(k - 1, cmp);
    let threshold = cand[k - 1].0 as f64;
    for &(_, l, i) in &cand[..k] {
        masks[l as usize][i as usize] = PRUNED_MASK;
    }
    write_masks(net, &masks);
    Ok(PruneStep {
        threshold,
        removed: k,
        present_before: present,
        present_after: present - k,
    })
}

/// Copies mask values (one flat vector per masked tensor) into the network.
fn write_masks(net: &dyn Network, masks: &[Vec<f32>]) {
    for (mw, m) in net.masked().iter().zip(masks) {
        let src = Tensor::from_slice(m)
            .view(mw.m.size().as_slice())
            .to_device(mw.m.device());
        tch::no_grad(|| {
            let mut dst = mw.m.shallow_clone();
            dst.copy_(&src);
        });
    }
}

/// Magnitude scores `|w|`, one tensor per masked tensor.
pub fn magnitude_scores(net: &dyn Network) -> Vec<Tensor> {
    tch::no_grad(|| net.masked().iter().map(|mw| mw.w.abs()).collect())
}

/// Seed domain of the Taylor scoring batches (distinct from the training batches' order).
const TAYLOR_SEED: u64 = 0x7A71_0125_C0DE_0001;

/// First-order Taylor scores `|w·∂L/∂w|` over `batches` training batches (drawn with `round`
/// as the shuffle epoch), one tensor per masked tensor. For present weights `∂L/∂w = ∂L/∂ŵ`.
pub fn taylor_scores(
    net: &dyn Network,
    data: &RunData,
    common: &CommonConfig,
    device: Device,
    batches: usize,
    mode: TaylorScore,
    round: u64,
) -> Vec<Tensor> {
    let shape = trainer::input_shape(&data.train);
    let cfg = BatchConfig::train(common.batch_size, None);
    let mut acc: Vec<Tensor> = net.masked().iter().map(|mw| mw.w.zeros_like()).collect();
    let mut n = 0usize;
    for b in hf_data::batches(&data.train, &cfg, common.seed ^ TAYLOR_SEED, round).take(batches) {
        let (x, y) = trainer::to_tensors(&b, shape, device);
        let g = net.data_grads(&x, &y, common.label_smoothing);
        tch::no_grad(|| {
            for ((a, g), mw) in acc.iter_mut().zip(&g.masked).zip(net.masked()) {
                match mode {
                    TaylorScore::AbsOfMean => *a += g,
                    TaylorScore::MeanOfAbs => *a += (&mw.w * g).abs(),
                }
            }
        });
        n += 1;
    }
    let n = n.max(1) as f64;
    tch::no_grad(|| {
        acc.iter()
            .zip(net.masked())
            .map(|(a, mw)| match mode {
                TaylorScore::AbsOfMean => (&mw.w * a / n).abs(),
                TaylorScore::MeanOfAbs => a / n,
            })
            .collect()
    })
}

/// A network loaded from the dense checkpoint with its data, ready to measure.
struct Setup {
    net: Box<dyn Network>,
    data: RunData,
    dev: Device,
}

/// Loads the data and the dense checkpoint `from` into a fresh `common.model` whose masks are
/// initialised in `mask_init` (the checkpoint's masks are ignored).
fn setup(
    common: &CommonConfig,
    from: Option<&PathBuf>,
    mask_init: (f64, f64),
) -> Result<Setup, EngineError> {
    let ck = from.map(|p| Checkpoint::load(p)).transpose()?;
    let (dev, data) = trainer::prepare(common)?;
    let net = network::build_for(
        &common.model,
        ck.as_ref(),
        trainer::input_shape(&data.train),
        data.train.classes as i64,
        mask_init,
        dev,
    )?;
    trainer::check_fits(net.as_ref(), &data)?;
    if let Some(ck) = ck {
        let arch = ck.meta_str("arch")?;
        if arch != net.arch() {
            return Err(EngineError::Model(format!(
                "{} holds a {arch} but the model is {}: pass the matching --model",
                ck.path.display(),
                net.arch()
            )));
        }
        ck.restore_net(net.as_ref(), false)?;
    }
    Ok(Setup { net, data, dev })
}

fn density_of(net: &dyn Network) -> f64 {
    DensityReport::of(net.masked()).density()
}

fn accuracy_of(s: &Setup, common: &CommonConfig) -> f64 {
    trainer::test_accuracy(s.net.as_ref(), &s.data.test, s.dev, common.label_smoothing).0
}

/// A per-step callback of [`EpochRunner::run`].
type StepHook<'a> = Option<&'a mut dyn FnMut(usize, &dyn Network)>;

/// Runs one epoch with `settings`, evaluates, reports an [`EpochRecord`] to `obs`; returns the
/// record and the epoch statistics.
#[allow(clippy::too_many_arguments)]
fn epoch(
    s: &mut Setup,
    opt: &mut HyperfluxOptim,
    common: &CommonConfig,
    stage: &str,
    epoch: usize,
    total: usize,
    settings: &StepSettings,
    obs: &mut dyn Observer,
    flux: Option<&[Tensor]>,
    hook: StepHook<'_>,
) -> Result<(EpochRecord, EpochStats), EngineError> {
    let t0 = Instant::now();
    let runner = EpochRunner::new(common, &s.data, s.dev);
    let es = runner.run(s.net.as_mut(), opt, epoch, total, settings, obs, flux, hook)?;
    let acc = accuracy_of(s, common);
    let dens = DensityReport::of(s.net.masked());
    let rec = EpochRecord {
        epoch,
        stage: stage.to_string(),
        lambda: settings.pressure,
        expected_density: None,
        density: dens.density(),
        layer_density: dens.per_layer(),
        data_loss: es.loss,
        pressure_loss: settings.pressure * step::mask_mean(s.net.as_ref()),
        train_accuracy: es.train_accuracy,
        val_accuracy: None,
        test_accuracy: acc,
        weight_lr: settings.weight_lr,
        mask_lr: if settings.train_masks {
            settings.mask_lr
        } else {
            0.0
        },
        seconds: t0.elapsed().as_secs_f64(),
        snapped_from: None,
    };
    obs.epoch_end(&rec);
    Ok((rec, es))
}

/// Runs one law measurement from the dense checkpoint `cfg.from`. `on_point` sees every point as
/// soon as it is taken (the CLI rewrites its CSV then), `obs` every training epoch.
pub fn measure(
    cfg: &LawConfig,
    obs: &mut dyn Observer,
    on_point: &mut dyn FnMut(&LawSample),
) -> Result<LawOutcome, EngineError> {
    let family = cfg.validate()?;
    let from = cfg.from.as_ref().ok_or_else(|| {
        EngineError::Model(
            "a law measurement starts from a dense checkpoint: pass --from CHECKPOINT \
             (make one with `hyperflux train --epochs 10 --out DIR`)"
                .into(),
        )
    })?;
    let started = Instant::now();
    let mut s = setup(
        &cfg.common,
        Some(from),
        (cfg.mask_init_low, cfg.mask_init_high),
    )?;
    let dense_accuracy = accuracy_of(&s, &cfg.common);
    let prunable = s.net.prunable();
    let mut samples = Vec::new();
    let mut emit = |p: LawSample, samples: &mut Vec<LawSample>| {
        on_point(&p);
        samples.push(p);
    };
    let (epochs, stopped_early) = match family {
        Family::L0 => l0_ladder(cfg, &mut s, obs, &mut |p| emit(p, &mut samples))?,
        Family::Magnitude | Family::Taylor => {
            iterative(cfg, family, &mut s, dense_accuracy, obs, &mut |p| {
                emit(p, &mut samples)
            })?
        }
        Family::Oneshot => {
            let stop = one_shot(cfg, &mut s, &mut |p| emit(p, &mut samples))?;
            (0, stop)
        }
    };
    Ok(LawOutcome {
        family,
        samples,
        dense_accuracy,
        prunable,
        epochs,
        stopped_early,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The L0 pressure ladder; returns (epochs run, early-stop reason).
fn l0_ladder(
    cfg: &LawConfig,
    s: &mut Setup,
    obs: &mut dyn Observer,
    emit: &mut dyn FnMut(LawSample),
) -> Result<(usize, Option<String>), EngineError> {
    let mut opt = HyperfluxOptim::new(
        s.net.as_ref(),
        cfg.optimizer.kind()?,
        cfg.optimizer.weight_decay,
        cfg.ste_scale,
    );
    let n = s.net.prunable() as f64;
    let total = cfg.blocks * cfg.block_epochs;
    let mut e = 0;
    for j in 0..cfg.blocks {
        let k = cfg.start_exponent + j as i32;
        let lambda = 2f64.powi(k);
        let settings = StepSettings {
            weight_lr: cfg.optimizer.lr,
            mask_lr: cfg.mask_lr,
            pressure: lambda,
            train_masks: true,
        };
        let mut last = None;
        let zeros = |s: &Setup| -> Vec<Tensor> {
            s.net.masked().iter().map(|mw| mw.w.zeros_like()).collect()
        };
        // Over the block's last epoch: Σφ (filled by the step), the sum before the current
        // step, and Σφ² (from the difference after each step).
        let (flux, prev, sq) = (zeros(s), zeros(s), zeros(s));
        for b in 1..=cfg.block_epochs {
            e += 1;
            let measure = b == cfg.block_epochs;
            let mut hook = |_: usize, _: &dyn Network| {
                tch::no_grad(|| {
                    for ((f, p), q) in flux.iter().zip(&prev).zip(&sq) {
                        let d = f - p;
                        let _ = q.shallow_clone().addcmul_(&d, &d);
                        p.shallow_clone().copy_(f);
                    }
                })
            };
            last = Some(epoch(
                s,
                &mut opt,
                &cfg.common,
                "pruning",
                e,
                total,
                &settings,
                obs,
                measure.then_some(flux.as_slice()),
                if measure { Some(&mut hook) } else { None },
            )?);
        }
        let (rec, es) = last.expect("block_epochs >= 1");
        let equilibrium = lambda / (cfg.ste_scale * n);
        let fs = flux_stats(
            s.net.as_ref(),
            &flux,
            es.steps,
            cfg.flux_quantile,
            equilibrium,
        );
        if rec.density <= 0.0 {
            return Ok((
                e,
                Some(format!(
                    "every weight was pruned at λ = 2^{k}; later blocks would stay empty"
                )),
            ));
        }
        let mut extras = vec![
            ("Pressure".to_string(), lambda),
            ("Exponent".to_string(), k as f64),
            ("EquilibriumFlux".to_string(), equilibrium),
        ];
        if let Some(fs) = fs {
            extras.extend([
                ("MinFlux".to_string(), fs.min),
                ("QuantileFlux".to_string(), fs.quantile),
                ("MedianFlux".to_string(), fs.median),
                ("BelowEquilibrium".to_string(), fs.below_equilibrium),
            ]);
        }
        if let Some(r) = rms_flux_stats(s.net.as_ref(), &sq, es.steps, cfg.flux_quantile) {
            extras.extend([
                ("MinRmsFlux".to_string(), r.min),
                ("QuantileRmsFlux".to_string(), r.quantile),
                ("MedianRmsFlux".to_string(), r.median),
            ]);
        }
        extras.extend([
            ("TrainLoss".to_string(), rec.data_loss),
            ("TrainAccuracy".to_string(), rec.train_accuracy),
        ]);
        emit(LawSample {
            epoch: Some(e as f64),
            saliency: lambda,
            remaining: rec.density,
            accuracy: rec.test_accuracy,
            extras,
        });
    }
    Ok((e, None))
}

/// Iterative magnitude or Taylor pruning with fine-tuning; returns (epochs run, early-stop reason).
fn iterative(
    cfg: &LawConfig,
    family: Family,
    s: &mut Setup,
    dense_accuracy: f64,
    obs: &mut dyn Observer,
    emit: &mut dyn FnMut(LawSample),
) -> Result<(usize, Option<String>), EngineError> {
    let mut opt = HyperfluxOptim::new(
        s.net.as_ref(),
        cfg.optimizer.kind()?,
        cfg.optimizer.weight_decay,
        cfg.ste_scale,
    );
    let settings = StepSettings {
        weight_lr: cfg.optimizer.lr,
        mask_lr: 0.0,
        pressure: 0.0,
        train_masks: false,
    };
    let total = cfg.steps * cfg.finetune_epochs;
    let mut acc_before = dense_accuracy;
    let mut e = 0;
    for step in 1..=cfg.steps {
        let scores = match family {
            Family::Taylor => taylor_scores(
                s.net.as_ref(),
                &s.data,
                &cfg.common,
                s.dev,
                cfg.taylor_batches,
                cfg.taylor_score,
                step as u64,
            ),
            _ => magnitude_scores(s.net.as_ref()),
        };
        let ps = prune_lowest(s.net.as_ref(), &scores, cfg.rate)?;
        if ps.removed == 0 {
            return Ok((e, Some(format!("no weight left to prune at step {step}"))));
        }
        let density = density_of(s.net.as_ref());
        let acc_pruned = accuracy_of(s, &cfg.common);
        let mut acc_tuned = acc_pruned;
        for _ in 0..cfg.finetune_epochs {
            e += 1;
            let (rec, _) = epoch(
                s,
                &mut opt,
                &cfg.common,
                "finetune",
                e,
                total,
                &settings,
                obs,
                None,
                None,
            )?;
            acc_tuned = rec.test_accuracy;
        }
        emit(LawSample {
            epoch: Some(e as f64),
            saliency: ps.threshold,
            remaining: density,
            accuracy: acc_before,
            extras: vec![
                ("Step".to_string(), step as f64),
                ("Removed".to_string(), ps.removed as f64),
                ("AccuracyPruned".to_string(), acc_pruned),
                ("AccuracyFinetuned".to_string(), acc_tuned),
            ],
        });
        acc_before = acc_tuned;
        if density <= cfg.min_density {
            return Ok((
                e,
                (step < cfg.steps).then(|| {
                    format!(
                        "density {density:.4}% reached --min-density {} after step {step}",
                        cfg.min_density
                    )
                }),
            ));
        }
    }
    Ok((e, None))
}

/// The one-shot magnitude control; returns the early-stop reason.
fn one_shot(
    cfg: &LawConfig,
    s: &mut Setup,
    emit: &mut dyn FnMut(LawSample),
) -> Result<Option<String>, EngineError> {
    let net = s.net.as_ref();
    let n = net.prunable();
    // Every weight with its magnitude, ascending (ties by position).
    let mut order: Vec<(f32, u32, u32)> = Vec::with_capacity(n);
    let mut masks: Vec<Vec<f32>> = Vec::new();
    for (l, mw) in net.masked().iter().enumerate() {
        let w = network::to_vec_f32(&mw.w);
        order.extend(
            w.iter()
                .enumerate()
                .map(|(i, w)| (w.abs(), l as u32, i as u32)),
        );
        masks.push(vec![0.0; w.len()]);
    }
    order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut removed_so_far = 0usize;
    for step in 1..=cfg.steps {
        let keep = ((n as f64) * (1.0 - cfg.rate).powi(step as i32)).round() as usize;
        let remove = n - keep.min(n);
        if remove == 0 || remove <= removed_so_far {
            continue;
        }
        for &(_, l, i) in &order[removed_so_far..remove] {
            masks[l as usize][i as usize] = PRUNED_MASK;
        }
        removed_so_far = remove;
        write_masks(s.net.as_ref(), &masks);
        let density = density_of(s.net.as_ref());
        let acc = accuracy_of(s, &cfg.common);
        emit(LawSample {
            epoch: None,
            saliency: order[remove - 1].0 as f64,
            remaining: density,
            accuracy: acc,
            extras: vec![
                ("Step".to_string(), step as f64),
                ("Removed".to_string(), remove as f64),
            ],
        });
        if density <= cfg.min_density || keep == 0 {
            return Ok((step < cfg.steps).then(|| {
                format!(
                    "density {density:.4}% reached --min-density {} at step {step}",
                    cfg.min_density
                )
            }));
        }
    }
    Ok(None)
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

/// One density sample of a convergence run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DensitySample {
    /// Epochs elapsed, fractional (`epoch − 1 + step / steps_per_epoch`).
    pub epoch: f64,
    /// Global 1-based step.
    pub step: usize,
    /// Density in percent.
    pub density: f64,
}

/// The trajectory of one fixed-pressure run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConvergeTrace {
    /// The pressure λ.
    pub pressure: f64,
    /// Density every `record_every` batches and at the end of every epoch.
    pub samples: Vec<DensitySample>,
    /// Per epoch: (epoch, density, test accuracy).
    pub epochs: Vec<(usize, f64, f64)>,
    /// Density after the last epoch.
    pub final_density: f64,
    /// Test accuracy after the last epoch.
    pub final_accuracy: f64,
    /// Wall time of this run, seconds.
    pub seconds: f64,
}

/// Runs fixed-pressure Hyperflux for each pressure (each run from the same initial state: the
/// same seed, and the same dense weights when `cfg.from` is set). `on_trace` sees each finished run.
pub fn converge(
    cfg: &ConvergeConfig,
    obs: &mut dyn Observer,
    on_trace: &mut dyn FnMut(&ConvergeTrace),
) -> Result<Vec<ConvergeTrace>, EngineError> {
    cfg.validate()?;
    let mut traces = Vec::new();
    for &lambda in &cfg.pressures {
        let started = Instant::now();
        let mut s = setup(
            &cfg.common,
            cfg.from.as_ref(),
            (cfg.mask_init_low, cfg.mask_init_high),
        )?;
        let mut opt = HyperfluxOptim::new(
            s.net.as_ref(),
            cfg.optimizer.kind()?,
            cfg.optimizer.weight_decay,
            cfg.ste_scale,
        );
        let steps = EpochRunner::new(&cfg.common, &s.data, s.dev)
            .steps_per_epoch()
            .max(1);
        let mut samples = vec![DensitySample {
            epoch: 0.0,
            step: 0,
            density: density_of(s.net.as_ref()),
        }];
        let mut epochs = Vec::with_capacity(cfg.epochs);
        let mut last = (0.0, 0.0);
        for e in 1..=cfg.epochs {
            let settings = StepSettings {
                weight_lr: cosine(
                    cfg.optimizer.lr,
                    cfg.optimizer.lr / cfg.lr_divisor,
                    e - 1,
                    cfg.epochs,
                ),
                mask_lr: cfg.mask_lr,
                pressure: lambda,
                train_masks: true,
            };
            let every = cfg.record_every;
            let mut hook = |i: usize, net: &dyn Network| {
                if i.is_multiple_of(every) && i < steps {
                    samples.push(DensitySample {
                        epoch: (e - 1) as f64 + i as f64 / steps as f64,
                        step: (e - 1) * steps + i,
                        density: density_of(net),
                    });
                }
            };
            let (rec, _) = epoch(
                &mut s,
                &mut opt,
                &cfg.common,
                "pruning",
                e,
                cfg.epochs,
                &settings,
                obs,
                None,
                Some(&mut hook),
            )?;
            samples.push(DensitySample {
                epoch: e as f64,
                step: e * steps,
                density: rec.density,
            });
            epochs.push((e, rec.density, rec.test_accuracy));
            last = (rec.density, rec.test_accuracy);
        }
        let trace = ConvergeTrace {
            pressure: lambda,
            samples,
            epochs,
            final_density: last.0,
            final_accuracy: last.1,
            seconds: started.elapsed().as_secs_f64(),
        };
        on_trace(&trace);
        traces.push(trace);
    }
    Ok(traces)
}
