//! The pressure scheduler: a target-density trajectory E(t) and a feedback controller that
//! sets the pressure λ for the next epoch so the measured density follows it (spec §2).

use serde::{Deserialize, Serialize};

/// Why a trajectory cannot be built.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    /// Target sparsity outside the open interval (0, 100).
    #[error("target sparsity {0}% is outside (0, 100): give the percentage of weights to prune, e.g. --target-sparsity 98")]
    TargetOutOfRange(f64),
    /// Zero pruning epochs.
    #[error("the number of pruning epochs must be at least 1 (got {0})")]
    NoEpochs(usize),
    /// Aggressivity must be positive.
    #[error("aggressivity must be a positive finite number (got {0})")]
    BadAggressivity(f64),
    /// No starting factor r0 in [0, 0.999] makes E(P) reach the target: too few epochs for a
    /// high sparsity (even r0 = 0 keeps too much), or too many for a tiny one.
    #[error("{}", unreachable_message(*target_sparsity, *epochs, *aggressivity, *fewest_epochs, *most_epochs, *aggressivity_that_reaches))]
    Unreachable {
        /// The target sparsity (percent).
        target_sparsity: f64,
        /// The pruning epochs P asked for.
        epochs: usize,
        /// The aggressivity asked for.
        aggressivity: f64,
        /// The smallest P that reaches the target at this aggressivity (too few epochs).
        fewest_epochs: Option<usize>,
        /// The largest P that can stay above the target (too many epochs for a tiny sparsity).
        most_epochs: Option<usize>,
        /// An aggressivity that reaches the target in P epochs, where one exists.
        aggressivity_that_reaches: Option<f64>,
    },
}

fn unreachable_message(
    target_sparsity: f64,
    epochs: usize,
    aggressivity: f64,
    fewest: Option<usize>,
    most: Option<usize>,
    agg: Option<f64>,
) -> String {
    let mut m = format!(
        "target sparsity {target_sparsity}% cannot be reached in {epochs} pruning epochs with aggressivity {aggressivity}"
    );
    match (fewest, most) {
        (Some(p), _) => {
            let lowest = 100.0 - expected(0.0, epochs, epochs, aggressivity);
            m.push_str(&format!(
                " (the most this plan can prune is {lowest:.2}%): use at least {p} pruning epochs"
            ));
            if let Some(a) = agg {
                m.push_str(&format!(", or aggressivity {a:.3} or more"));
            }
        }
        (None, Some(0)) => m.push_str(&format!(
            " (every pruning epoch prunes at least {:.1}% of the weights): ask for a higher target sparsity",
            100.0 * (1.0 - R_MAX)
        )),
        (None, Some(p)) => m.push_str(&format!(
            " (each epoch keeps at most {}% of the weights, so it prunes more than asked): use at most {p} pruning epochs",
            100.0 * R_MAX
        )),
        (None, None) => {}
    }
    m
}

/// The planned density trajectory: per-epoch factor `r(e) = r0 + (0.999 − r0)·σ(k(e − P/2))`
/// with `k = aggressivity / P`, and `E(t) = 100·Π_{e=1..t} r(e)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Trajectory {
    /// Number of pruning epochs P.
    pub epochs: usize,
    /// Target density R* in percent (100 − target sparsity).
    pub target_density: f64,
    /// Aggressivity (6 in the paper): the steepness of the logistic.
    pub aggressivity: f64,
    /// The starting per-epoch factor found by bisection.
    pub r0: f64,
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Upper end of the per-epoch factor.
const R_MAX: f64 = 0.999;

fn factor(r0: f64, e: usize, epochs: usize, aggressivity: f64) -> f64 {
    let p = epochs as f64;
    let k = aggressivity / p;
    r0 + (R_MAX - r0) * logistic(k * (e as f64 - p / 2.0))
}

fn expected(r0: f64, t: usize, epochs: usize, aggressivity: f64) -> f64 {
    (1..=t).fold(100.0, |acc, e| acc * factor(r0, e, epochs, aggressivity))
}

impl Trajectory {
    /// Builds the trajectory reaching `target_sparsity` percent after `epochs` pruning epochs,
    /// with the paper's aggressivity 6.
    pub fn new(target_sparsity: f64, epochs: usize) -> Result<Self, ScheduleError> {
        Self::with_aggressivity(target_sparsity, epochs, 6.0)
    }

    /// Like [`Trajectory::new`] with an explicit aggressivity.
    pub fn with_aggressivity(
        target_sparsity: f64,
        epochs: usize,
        aggressivity: f64,
    ) -> Result<Self, ScheduleError> {
        if !(target_sparsity > 0.0 && target_sparsity < 100.0) {
            return Err(ScheduleError::TargetOutOfRange(target_sparsity));
        }
        if epochs == 0 {
            return Err(ScheduleError::NoEpochs(epochs));
        }
        if !(aggressivity.is_finite() && aggressivity > 0.0) {
            return Err(ScheduleError::BadAggressivity(aggressivity));
        }
        let target = 100.0 - target_sparsity;
        // E(P) grows with r0 from E(P; r0 = 0) to E(P; r0 = 0.999) = 100·0.999^P; a target
        // outside that range has no root, and bisection would return an end point whose plan
        // silently misses the target.
        let unreachable = |fewest, most, agg| ScheduleError::Unreachable {
            target_sparsity,
            epochs,
            aggressivity,
            fewest_epochs: fewest,
            most_epochs: most,
            aggressivity_that_reaches: agg,
        };
        if expected(0.0, epochs, epochs, aggressivity) > target + 1e-9 {
            return Err(unreachable(
                fewest_epochs(target, epochs, aggressivity),
                None,
                aggressivity_reaching(target, epochs, aggressivity),
            ));
        }
        if expected(R_MAX, epochs, epochs, aggressivity) < target - 1e-9 {
            let most = (1..epochs)
                .rev()
                .find(|&p| expected(R_MAX, p, p, aggressivity) >= target)
                .unwrap_or(0);
            return Err(unreachable(None, Some(most), None));
        }
        // E(P) grows with r0: bisect on [0, 0.999].
        let (mut lo, mut hi) = (0.0_f64, R_MAX);
        let mut r0 = 0.5 * (lo + hi);
        for _ in 0..100 {
            r0 = 0.5 * (lo + hi);
            let e = expected(r0, epochs, epochs, aggressivity);
            if (e - target).abs() < 1e-6 {
                break;
            }
            if e < target {
                lo = r0;
            } else {
                hi = r0;
            }
        }
        Ok(Self {
            epochs,
            target_density: target,
            aggressivity,
            r0,
        })
    }

    /// Per-epoch factor r(e).
    pub fn factor(&self, e: usize) -> f64 {
        factor(self.r0, e, self.epochs, self.aggressivity)
    }

    /// Expected density (percent) after epoch `t`; `E(0) = 100`. Past P it stays at E(P).
    pub fn expected(&self, t: usize) -> f64 {
        expected(self.r0, t.min(self.epochs), self.epochs, self.aggressivity)
    }

    /// The whole trajectory E(0..=P).
    pub fn points(&self) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.epochs + 1);
        let mut acc = 100.0;
        out.push(acc);
        for e in 1..=self.epochs {
            acc *= self.factor(e);
            out.push(acc);
        }
        out
    }
}

/// The smallest P > `epochs` whose fastest plan (r0 = 0) reaches `target` density.
fn fewest_epochs(target: f64, epochs: usize, aggressivity: f64) -> Option<usize> {
    (epochs + 1..=epochs.saturating_mul(64).max(1024))
        .find(|&p| expected(0.0, p, p, aggressivity) <= target)
}

/// The smallest aggressivity (to 3 decimals, up to 1000) whose fastest plan reaches `target` in
/// `epochs` epochs, if there is one above the one asked for.
fn aggressivity_reaching(target: f64, epochs: usize, aggressivity: f64) -> Option<f64> {
    let reaches = |a: f64| expected(0.0, epochs, epochs, a) <= target;
    let mut hi = aggressivity;
    while !reaches(hi) {
        hi *= 2.0;
        if hi > 1000.0 {
            return None;
        }
    }
    let mut lo = aggressivity;
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if reaches(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // Round up so the printed value does reach it.
    Some((hi * 1000.0).ceil() / 1000.0)
}

/// The feedback controller with inertia (spec §2): after each pruning epoch it compares the
/// measured density with E(e) and moves `g`; the pressure for the next epoch is `g^1.5`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Controller {
    /// Step size Δ (0.3 LeNet, 0.2 CIFAR, 0.15 ImageNet).
    pub step: f64,
    /// Controller value; λ = g^1.5.
    pub g: f64,
    /// Inertia of consecutive increases.
    pub up: f64,
    /// Inertia of consecutive decreases.
    pub down: f64,
}

impl Controller {
    /// A fresh controller (g = 0, so the first epoch trains with λ = 0).
    pub fn new(step: f64) -> Self {
        Self {
            step,
            g: 0.0,
            up: 0.0,
            down: 0.0,
        }
    }

    /// The pressure λ for the next epoch.
    pub fn pressure(&self) -> f64 {
        self.g.max(0.0).powf(1.5)
    }

    /// Feeds the density measured after an epoch and the density the plan expected then.
    pub fn update(&mut self, density: f64, expected: f64) {
        let d = self.step;
        if density > expected {
            self.g += d + self.up;
            self.up += d / 4.0;
            self.down = 0.0;
        } else {
            self.g -= d + self.down;
            self.down += d / 4.0;
            self.up = 0.0;
            self.g = self.g.max(0.0);
        }
    }
}

/// Trajectory plus controller: the scheduler a pruning run steps once per pruning epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PressureScheduler {
    /// The planned trajectory.
    pub trajectory: Trajectory,
    /// The controller state.
    pub controller: Controller,
}

impl PressureScheduler {
    /// A scheduler for `target_sparsity` over `epochs` pruning epochs with controller step Δ.
    pub fn new(target_sparsity: f64, epochs: usize, step: f64) -> Result<Self, ScheduleError> {
        Ok(Self {
            trajectory: Trajectory::new(target_sparsity, epochs)?,
            controller: Controller::new(step),
        })
    }

    /// Steps after pruning epoch `epoch` (1-based) with the density measured after it. No update
    /// once `epoch >= P`. Returns λ for the next epoch.
    pub fn after_epoch(&mut self, epoch: usize, density: f64) -> f64 {
        if epoch < self.trajectory.epochs {
            self.controller
                .update(density, self.trajectory.expected(epoch));
        }
        self.controller.pressure()
    }

    /// The current pressure.
    pub fn pressure(&self) -> f64 {
        self.controller.pressure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn spec_vectors_p100() {
        let t = Trajectory::new(90.0, 100).unwrap();
        assert!(close(t.r0, 0.955272620, 1e-8), "r0 = {}", t.r0);
        assert!(close(t.expected(25), 35.8946, 5e-5));
        assert!(close(t.expected(50), 16.7090, 5e-5));
        assert!(close(t.expected(75), 11.4321, 5e-5));
        assert!(close(t.expected(100), 10.0, 1e-5));

        let t = Trajectory::new(95.0, 100).unwrap();
        assert!(close(t.r0, 0.941790421, 1e-8), "r0 = {}", t.r0);
        assert!(close(t.expected(50), 9.6492, 5e-5));

        let t = Trajectory::new(98.0, 100).unwrap();
        assert!(close(t.r0, 0.924170165, 1e-8), "r0 = {}", t.r0);
        assert!(close(t.expected(1), 92.7927, 5e-5));
        assert!(close(t.expected(25), 17.1916, 5e-5));
        assert!(close(t.expected(50), 4.6635, 5e-5));
        assert!(close(t.expected(75), 2.4713, 5e-5));
        assert!(close(t.expected(90), 2.116, 5e-4));

        let t = Trajectory::new(99.0, 100).unwrap();
        assert!(close(t.r0, 0.910992728, 1e-8), "r0 = {}", t.r0);
        assert!(close(t.expected(50), 2.6879, 5e-5));

        let t = Trajectory::new(99.5, 100).unwrap();
        assert!(close(t.r0, 0.897944921, 1e-8), "r0 = {}", t.r0);
        assert!(close(t.expected(50), 1.5479, 5e-5));
    }

    #[test]
    fn spec_vectors_p80() {
        let t = Trajectory::new(96.5, 80).unwrap();
        assert!(close(t.r0, 0.918679800, 1e-8), "r0 = {}", t.r0);
        assert!(close(t.expected(40), 7.1972, 5e-5));
        let t = Trajectory::new(90.0, 80).unwrap();
        assert!(close(t.r0, 0.943942252, 1e-8), "r0 = {}", t.r0);
    }

    #[test]
    fn trajectory_points_match_expected_and_decrease() {
        let t = Trajectory::new(98.0, 30).unwrap();
        let pts = t.points();
        assert_eq!(pts.len(), 31);
        assert_eq!(pts[0], 100.0);
        for (i, p) in pts.iter().enumerate() {
            assert!(close(*p, t.expected(i), 1e-9));
        }
        assert!(pts.windows(2).all(|w| w[1] < w[0]));
        assert!(close(pts[30], 2.0, 1e-5));
        assert_eq!(t.expected(40), t.expected(30));
    }

    #[test]
    fn bad_targets_are_refused() {
        for s in [0.0, 100.0, 150.0, -1.0, f64::NAN] {
            assert!(matches!(
                Trajectory::new(s, 100),
                Err(ScheduleError::TargetOutOfRange(_))
            ));
        }
        assert_eq!(Trajectory::new(90.0, 0), Err(ScheduleError::NoEpochs(0)));
        let msg = Trajectory::new(150.0, 10).unwrap_err().to_string();
        assert!(msg.contains("150") && msg.contains("(0, 100)"), "{msg}");
    }

    #[test]
    fn unreachable_plans_are_refused_with_the_fewest_epochs_that_reach_them() {
        // 98% in 4 epochs: even r0 = 0 plans 7.08% (not 2%).
        let e = Trajectory::new(98.0, 4).unwrap_err();
        let ScheduleError::Unreachable {
            fewest_epochs,
            aggressivity_that_reaches,
            ..
        } = e.clone()
        else {
            panic!("{e:?}")
        };
        let p = fewest_epochs.unwrap();
        assert!(Trajectory::new(98.0, p).is_ok());
        assert!(Trajectory::new(98.0, p - 1).is_err());
        let msg = e.to_string();
        assert!(
            msg.contains("98% cannot be reached in 4 pruning epochs")
                && msg.contains(&format!("at least {p} pruning epochs"))
                && msg.contains("92.9"),
            "{msg}"
        );
        // The aggressivity it names does reach the target in 4 epochs.
        let a = aggressivity_that_reaches.unwrap();
        let t = Trajectory::with_aggressivity(98.0, 4, a).unwrap();
        assert!(close(*t.points().last().unwrap(), 2.0, 1e-5));
        assert!(msg.contains(&format!("aggressivity {a:.3}")), "{msg}");
        // 90% in 2 epochs (plans 47.5%): no aggressivity helps, only more epochs.
        let e = Trajectory::new(90.0, 2).unwrap_err();
        assert!(
            matches!(
                e,
                ScheduleError::Unreachable {
                    fewest_epochs: Some(_),
                    aggressivity_that_reaches: None,
                    ..
                }
            ),
            "{e:?}"
        );
        // A tiny sparsity over many epochs prunes too much even at r0 = 0.999.
        let e = Trajectory::new(0.05, 100).unwrap_err();
        assert!(e.to_string().contains("higher target sparsity"), "{e}");
        let e = Trajectory::new(1.0, 100).unwrap_err();
        assert!(
            e.to_string().contains("use at most 10 pruning epochs"),
            "{e}"
        );
        assert!(Trajectory::new(1.0, 10).is_ok());
        // Every plan that is accepted lands on its target.
        for (s, p) in [(90.0, 3), (98.0, 5), (99.0, 7), (50.0, 1), (0.05, 1)] {
            if let Ok(t) = Trajectory::new(s, p) {
                let last = *t.points().last().unwrap();
                assert!(close(last, 100.0 - s, 1e-5), "{s}% in {p}: {last}");
            }
        }
    }

    #[test]
    fn controller_spec_sequence() {
        let mut c = Controller::new(0.2);
        assert_eq!(c.pressure(), 0.0);
        let want_g = [0.2, 0.45, 0.75, 1.1, 1.5];
        let want_l = [0.0894, 0.3019, 0.6495, 1.1537, 1.8371];
        for (g, l) in want_g.iter().zip(want_l) {
            c.update(50.0, 10.0);
            assert!(close(c.g, *g, 1e-12), "g = {}", c.g);
            assert!(close(c.pressure(), l, 5e-5), "λ = {}", c.pressure());
        }
    }

    #[test]
    fn controller_decreases_with_inertia_and_floors_at_zero() {
        let mut c = Controller::new(0.2);
        for _ in 0..5 {
            c.update(50.0, 10.0);
        }
        // g = 1.5, up = 0.25. One decrease: g = 1.5 - 0.2 = 1.3, down = 0.05, up = 0.
        c.update(5.0, 10.0);
        assert!(close(c.g, 1.3, 1e-12));
        assert_eq!(c.up, 0.0);
        c.update(5.0, 10.0);
        assert!(close(c.g, 1.05, 1e-12));
        for _ in 0..10 {
            c.update(5.0, 10.0);
        }
        assert_eq!(c.g, 0.0);
        assert_eq!(c.pressure(), 0.0);
        // A new increase resets the decrease inertia.
        c.update(50.0, 10.0);
        assert!(close(c.g, 0.2, 1e-12));
        assert_eq!(c.down, 0.0);
    }

    #[test]
    fn scheduler_stops_updating_at_p() {
        let mut s = PressureScheduler::new(90.0, 4, 0.3).unwrap();
        let l1 = s.after_epoch(1, 100.0);
        assert!(l1 > 0.0);
        let l2 = s.after_epoch(2, 100.0);
        assert!(l2 > l1);
        let l3 = s.after_epoch(3, 100.0);
        assert!(l3 > l2);
        assert_eq!(s.after_epoch(4, 100.0), l3);
        assert_eq!(s.after_epoch(5, 100.0), l3);
    }
}
