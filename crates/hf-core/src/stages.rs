//! The stage machine of a Hyperflux run (spec §3): pruning epochs 1..=P with the pressure
//! scheduler and a cosine weight learning rate, then regrowth/fine-tune epochs with learning-rate
//! resets and a decaying mask learning rate.

use serde::{Deserialize, Serialize};

/// What an epoch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Dense training (no masks updated, λ = 0).
    Dense,
    /// Pruning: pressure from the scheduler (or fixed).
    Pruning,
    /// Regrowth / fine-tune after pruning.
    Regrowth,
}

impl Stage {
    /// Lower-case name used in records.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Dense => "dense",
            Stage::Pruning => "pruning",
            Stage::Regrowth => "regrowth",
        }
    }
}

/// Cosine annealing (PyTorch `CosineAnnealingLR`): step `i` of `total`, from `start` to `end`.
pub fn cosine(start: f64, end: f64, i: usize, total: usize) -> f64 {
    if total == 0 {
        return start;
    }
    let t = (i.min(total)) as f64 / total as f64;
    end + (start - end) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// Learning-rate plan of a pruning run. Epochs are 1-based; pruning is `1..=pruning_epochs`,
/// regrowth the `regrowth_epochs` after it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StagePlan {
    /// P: pruning epochs.
    pub pruning_epochs: usize,
    /// Regrowth epochs after P (the spec's R − P).
    pub regrowth_epochs: usize,
    /// Weight learning rate at the start of pruning (lr0).
    pub weight_lr: f64,
    /// Pruning-stage weight LR ends at `weight_lr / weight_lr_divisor` (30 in the paper).
    pub weight_lr_divisor: f64,
    /// Weight LR at the start of regrowth (1e-3 in the paper).
    pub regrowth_lr_start: f64,
    /// Weight LR at the end of regrowth (1e-4 in the paper).
    pub regrowth_lr_end: f64,
    /// Mask LR (Adam) during pruning (1e-3).
    pub mask_lr: f64,
    /// Regrowth mask LR multiplier (1; 5 for VGG-19/CIFAR-100; 3 ImageNet).
    pub mask_lr_scaler: f64,
    /// Per-regrowth-epoch decay of the mask LR (0.75 CIFAR, 0.55 ImageNet).
    pub mask_lr_decay: f64,
    /// Regrowth epoch index from which the mask LR is 0 (50).
    pub mask_lr_cutoff: usize,
}

impl StagePlan {
    /// Total number of epochs.
    pub fn total_epochs(&self) -> usize {
        self.pruning_epochs + self.regrowth_epochs
    }

    /// Stage of 1-based `epoch`.
    pub fn stage(&self, epoch: usize) -> Stage {
        if epoch <= self.pruning_epochs {
            Stage::Pruning
        } else {
            Stage::Regrowth
        }
    }

    /// Weight learning rate of 1-based `epoch`.
    pub fn weight_lr(&self, epoch: usize) -> f64 {
        match self.stage(epoch) {
            Stage::Pruning | Stage::Dense => cosine(
                self.weight_lr,
                self.weight_lr / self.weight_lr_divisor,
                epoch - 1,
                self.pruning_epochs,
            ),
            Stage::Regrowth => cosine(
                self.regrowth_lr_start,
                self.regrowth_lr_end,
                epoch - self.pruning_epochs - 1,
                self.regrowth_epochs,
            ),
        }
    }

    /// Mask learning rate of 1-based `epoch`: constant while pruning; in regrowth epoch j
    /// (0-based) `mask_lr · scaler · decay^j`, and 0 from j = cutoff on.
    pub fn mask_lr(&self, epoch: usize) -> f64 {
        match self.stage(epoch) {
            Stage::Pruning | Stage::Dense => self.mask_lr,
            Stage::Regrowth => {
                let j = epoch - self.pruning_epochs - 1;
                if j >= self.mask_lr_cutoff {
                    0.0
                } else {
                    self.mask_lr * self.mask_lr_scaler * self.mask_lr_decay.powi(j as i32)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> StagePlan {
        StagePlan {
            pruning_epochs: 10,
            regrowth_epochs: 5,
            weight_lr: 0.1,
            weight_lr_divisor: 30.0,
            regrowth_lr_start: 1e-3,
            regrowth_lr_end: 1e-4,
            mask_lr: 1e-3,
            mask_lr_scaler: 1.0,
            mask_lr_decay: 0.75,
            mask_lr_cutoff: 3,
        }
    }

    #[test]
    fn cosine_endpoints_and_midpoint() {
        assert!((cosine(1.0, 0.0, 0, 10) - 1.0).abs() < 1e-12);
        assert!((cosine(1.0, 0.0, 5, 10) - 0.5).abs() < 1e-12);
        assert!((cosine(1.0, 0.0, 10, 10)).abs() < 1e-12);
        assert_eq!(cosine(0.3, 0.1, 3, 0), 0.3);
    }

    #[test]
    fn stages_and_rates() {
        let p = plan();
        assert_eq!(p.total_epochs(), 15);
        assert_eq!(p.stage(1), Stage::Pruning);
        assert_eq!(p.stage(10), Stage::Pruning);
        assert_eq!(p.stage(11), Stage::Regrowth);
        assert!((p.weight_lr(1) - 0.1).abs() < 1e-12);
        assert!(p.weight_lr(10) < p.weight_lr(2));
        assert!(p.weight_lr(10) > 0.1 / 30.0);
        // Regrowth resets the weight LR and the mask LR.
        assert!((p.weight_lr(11) - 1e-3).abs() < 1e-12);
        assert!((p.mask_lr(11) - 1e-3).abs() < 1e-15);
        assert!((p.mask_lr(12) - 0.75e-3).abs() < 1e-15);
        assert!((p.mask_lr(13) - 0.5625e-3).abs() < 1e-15);
        assert_eq!(p.mask_lr(14), 0.0);
        assert_eq!(p.mask_lr(5), 1e-3);
    }
}
