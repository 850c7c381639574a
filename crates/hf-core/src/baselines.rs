//! The magnitude-pruning baselines `prune --method gmp|oneshot` run in the same engine, with the
//! same epochs, optimizer and learning-rate schedule as Hyperflux, so a frontier compares
//! methods at equal budget and equal (exact) density.
//!
//! - [`PruneMethod::Gmp`]: gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to
//!   prune"), global over all prunable weights, with their cubic schedule
//!   `s(t) = s_f · (1 − (1 − t/P)^3)` applied at the start of each pruning epoch `t = 1..P`
//!   (one pruning step per epoch: about 430 steps apart on MNIST, inside the 100–1000 steps
//!   the paper uses); the remaining epochs fine-tune at the final masks.
//! - [`PruneMethod::Oneshot`]: one global magnitude prune to the target before the first epoch,
//!   then every epoch fine-tunes.
//!
//! Masks are not trained by either baseline (no pressure, mask learning rate 0); pruned
//! weights never return.

use serde::{Deserialize, Serialize};

/// How `prune` removes weights.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PruneMethod {
    /// Hyperflux: trained masks under the scheduled pressure (the default).
    #[default]
    Hyperflux,
    /// Gradual magnitude pruning with the cubic schedule.
    Gmp,
    /// One-shot magnitude pruning, then fine-tuning.
    Oneshot,
}

impl PruneMethod {
    /// All methods, in the order frontiers list them.
    pub const ALL: [PruneMethod; 3] = [
        PruneMethod::Hyperflux,
        PruneMethod::Gmp,
        PruneMethod::Oneshot,
    ];

    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            PruneMethod::Hyperflux => "hyperflux",
            PruneMethod::Gmp => "gmp",
            PruneMethod::Oneshot => "oneshot",
        }
    }

    /// Whether masks are trained (Hyperflux) or set by weight magnitude (the baselines).
    pub fn trains_masks(self) -> bool {
        self == PruneMethod::Hyperflux
    }

    /// The density (percent) a magnitude baseline prunes to at the start of `epoch` (1-based),
    /// or `None` when it does not prune then (and always for Hyperflux). `target_sparsity` in
    /// percent, `pruning_epochs` P ≥ 1.
    pub fn density_before_epoch(
        self,
        target_sparsity: f64,
        pruning_epochs: usize,
        epoch: usize,
    ) -> Option<f64> {
        match self {
            PruneMethod::Hyperflux => None,
            PruneMethod::Oneshot => (epoch == 1).then_some(100.0 - target_sparsity),
            PruneMethod::Gmp => {
                if epoch == 0 || epoch > pruning_epochs.max(1) {
                    return None;
                }
                let t = epoch as f64 / pruning_epochs.max(1) as f64;
                let s = target_sparsity * (1.0 - (1.0 - t).powi(3));
                Some(100.0 - s)
            }
        }
    }
}

impl std::str::FromStr for PruneMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PruneMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown pruning method {s:?}: use hyperflux, gmp or oneshot"))
    }
}

impl std::fmt::Display for PruneMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmp_follows_the_cubic_schedule_and_ends_on_the_target() {
        let m = PruneMethod::Gmp;
        let p = 10;
        let d: Vec<f64> = (1..=p)
            .map(|e| m.density_before_epoch(98.0, p, e).unwrap())
            .collect();
        // s(1) = 98·(1 − 0.9³) = 26.558
        assert!(
            (d[0] - (100.0 - 98.0 * (1.0 - 0.729))).abs() < 1e-9,
            "{d:?}"
        );
        assert!((d[p - 1] - 2.0).abs() < 1e-12);
        // monotone, fastest early
        for w in d.windows(2) {
            assert!(w[1] < w[0]);
        }
        assert!(d[0] - d[1] > d[p - 2] - d[p - 1]);
        assert_eq!(m.density_before_epoch(98.0, p, p + 1), None);
        assert_eq!(m.density_before_epoch(98.0, p, 0), None);
    }

    #[test]
    fn oneshot_prunes_once_and_hyperflux_never() {
        assert_eq!(
            PruneMethod::Oneshot.density_before_epoch(99.0, 30, 1),
            Some(1.0)
        );
        assert_eq!(PruneMethod::Oneshot.density_before_epoch(99.0, 30, 2), None);
        for e in 0..40 {
            assert_eq!(
                PruneMethod::Hyperflux.density_before_epoch(99.0, 30, e),
                None
            );
        }
        assert!(PruneMethod::Hyperflux.trains_masks());
        assert!(!PruneMethod::Gmp.trains_masks() && !PruneMethod::Oneshot.trains_masks());
    }

    #[test]
    fn names_round_trip_and_unknown_is_one_line() {
        for m in PruneMethod::ALL {
            assert_eq!(m.name().parse::<PruneMethod>().unwrap(), m);
        }
        let e = "imp".parse::<PruneMethod>().unwrap_err();
        assert!(e.contains("hyperflux, gmp or oneshot") && !e.contains('\n'));
    }
}
