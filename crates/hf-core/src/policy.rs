//! The epoch policy of a run, in one place: given the epoch, what the trainer does in it
//! ([`EpochPlan`]: stage, weight and mask learning rates, pressure λ, whether masks train, a snap
//! or a magnitude prune before it), and, given the density measured after it, the pressure of the
//! next epoch and the density the plan expected. In the spirit of candle-nn's
//! `LRScheduler::step`: plain numbers in, plain numbers out, no tensors, so every stage
//! combination is tested without libtorch.
//!
//! - Dense training: cosine weight LR from lr0 to lr0 / divisor, no masks, no pressure.
//! - Hyperflux to a target (spec §2, §3): pruning epochs 1..=P follow the trajectory E(t) through
//!   the feedback controller; regrowth epochs either hold the target with the controller
//!   (`hold`) or run at λ = 0 (`zero`, the authors' code); the last `final_freeze_epochs`
//!   regrowth epochs freeze the masks after snapping them exactly onto the target.
//! - Hyperflux under a fixed pressure: λ for the pruning epochs, 0 in regrowth, no snap.
//! - Magnitude baselines (`gmp`, `oneshot`, see [`crate::baselines`]): no pressure, masks not
//!   trained, a global magnitude prune before the epochs their schedule names.

use crate::baselines::PruneMethod;
use crate::config::{PruneConfig, RegrowthPressure, TrainConfig};
use crate::pressure::{Controller, PressureScheduler, ScheduleError, Trajectory};
use crate::stages::{cosine, Stage, StagePlan};
use serde::{Deserialize, Serialize};

/// What the trainer does in one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPlan {
    /// The stage the epoch belongs to.
    pub stage: Stage,
    /// Weight (and free-parameter) learning rate.
    pub weight_lr: f64,
    /// Mask learning rate (0 when masks do not train).
    pub mask_lr: f64,
    /// Pressure λ of the epoch.
    pub pressure: f64,
    /// Whether the masks train.
    pub train_masks: bool,
    /// Before the epoch, shift the masks so exactly this density (percent) is present (the final
    /// freeze of a run with a target).
    pub snap_to: Option<f64>,
    /// Before the epoch, prune globally by weight magnitude down to this density (percent).
    pub magnitude_prune_to: Option<f64>,
}

/// The evolving part of a policy, stored in checkpoints so a resumed run continues exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PolicyState {
    /// Pressure for the next epoch.
    pub lambda: f64,
    /// The pressure scheduler (Hyperflux to a target).
    pub scheduler: Option<PressureScheduler>,
    /// The controller holding the target during regrowth.
    pub hold: Option<Controller>,
}

/// Which kind of run the policy steers.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Dense {
        epochs: usize,
        lr: f64,
        lr_end: f64,
    },
    Prune {
        method: PruneMethod,
        plan: StagePlan,
        target_sparsity: Option<f64>,
        regrowth_pressure: RegrowthPressure,
        freeze_epochs: usize,
    },
}

/// The epoch policy of one run (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochPolicy {
    kind: Kind,
    /// The state that changes from epoch to epoch.
    pub state: PolicyState,
}

impl EpochPolicy {
    /// The policy of dense training.
    pub fn dense(cfg: &TrainConfig) -> Self {
        EpochPolicy {
            kind: Kind::Dense {
                epochs: cfg.epochs,
                lr: cfg.optimizer.lr,
                lr_end: cfg.optimizer.lr / cfg.lr_divisor,
            },
            state: PolicyState::default(),
        }
    }

    /// The policy of a pruning run (validated config).
    pub fn prune(cfg: &PruneConfig) -> Result<Self, ScheduleError> {
        let scheduler = match cfg.target_sparsity {
            Some(s) if cfg.method.trains_masks() => Some(PressureScheduler {
                trajectory: Trajectory::with_aggressivity(s, cfg.pruning_epochs, cfg.aggressivity)?,
                controller: Controller::new(cfg.controller_step),
            }),
            _ => None,
        };
        let lambda = match (&scheduler, cfg.method.trains_masks()) {
            (None, true) => cfg.pressure.unwrap_or(0.0),
            _ => 0.0,
        };
        Ok(EpochPolicy {
            kind: Kind::Prune {
                method: cfg.method,
                plan: cfg.stage_plan(),
                target_sparsity: cfg.target_sparsity,
                regrowth_pressure: cfg.regrowth_pressure,
                // The last `final_freeze_epochs` regrowth epochs, or every regrowth epoch when
                // there are fewer, so any run with a regrowth epoch snaps.
                freeze_epochs: cfg.final_freeze_epochs.min(cfg.regrowth_epochs),
            },
            state: PolicyState {
                lambda,
                scheduler,
                hold: None,
            },
        })
    }

    /// Planned number of epochs.
    pub fn total_epochs(&self) -> usize {
        match &self.kind {
            Kind::Dense { epochs, .. } => *epochs,
            Kind::Prune { plan, .. } => plan.total_epochs(),
        }
    }

    /// The density the run must end on (percent), when it has a target.
    pub fn target_density(&self) -> Option<f64> {
        match &self.kind {
            Kind::Dense { .. } => None,
            Kind::Prune {
                target_sparsity, ..
            } => target_sparsity.map(|s| 100.0 - s),
        }
    }

    /// Whether 1-based `epoch` is a frozen epoch (masks fixed after the final snap).
    fn frozen(&self, epoch: usize) -> bool {
        match &self.kind {
            Kind::Prune {
                method,
                plan,
                target_sparsity,
                freeze_epochs,
                ..
            } => {
                method.trains_masks()
                    && target_sparsity.is_some()
                    && plan.stage(epoch) == Stage::Regrowth
                    && *freeze_epochs > 0
                    && epoch + freeze_epochs > plan.total_epochs()
            }
            Kind::Dense { .. } => false,
        }
    }

    /// What to do in 1-based `epoch`.
    pub fn plan(&self, epoch: usize) -> EpochPlan {
        match &self.kind {
            Kind::Dense { epochs, lr, lr_end } => EpochPlan {
                stage: Stage::Dense,
                weight_lr: cosine(*lr, *lr_end, epoch - 1, *epochs),
                mask_lr: 0.0,
                pressure: 0.0,
                train_masks: false,
                snap_to: None,
                magnitude_prune_to: None,
            },
            Kind::Prune {
                method,
                plan,
                target_sparsity,
                freeze_epochs,
                ..
            } => {
                let frozen = self.frozen(epoch);
                let first_frozen = frozen && epoch + freeze_epochs == plan.total_epochs() + 1;
                let train_masks = method.trains_masks() && !frozen;
                EpochPlan {
                    stage: plan.stage(epoch),
                    weight_lr: plan.weight_lr(epoch),
                    mask_lr: if train_masks {
                        plan.mask_lr(epoch)
                    } else {
                        0.0
                    },
                    pressure: if method.trains_masks() {
                        self.state.lambda
                    } else {
                        0.0
                    },
                    train_masks,
                    snap_to: self.target_density().filter(|_| first_frozen),
                    magnitude_prune_to: target_sparsity
                        .and_then(|s| method.density_before_epoch(s, plan.pruning_epochs, epoch)),
                }
            }
        }
    }

    /// Steps the policy after 1-based `epoch` with the density measured after it (percent):
    /// sets the pressure of the next epoch and returns the density the plan expected after this
    /// one (none without a plan).
    pub fn after_epoch(&mut self, epoch: usize, density: f64) -> Option<f64> {
        let Kind::Prune {
            method,
            plan,
            target_sparsity,
            regrowth_pressure,
            ..
        } = &self.kind
        else {
            return None;
        };
        let stage = plan.stage(epoch);
        let st = &mut self.state;
        let expected = match (&mut st.scheduler, stage) {
            (Some(sch), Stage::Pruning) => {
                let e = sch.trajectory.expected(epoch);
                st.lambda = sch.after_epoch(epoch, density);
                if epoch == plan.pruning_epochs {
                    st.hold = Some(sch.controller);
                }
                Some(e)
            }
            (Some(sch), _) => {
                let target = sch.trajectory.target_density;
                match regrowth_pressure {
                    RegrowthPressure::Hold => {
                        let c = st.hold.get_or_insert(sch.controller);
                        c.update(density, target);
                        st.lambda = c.pressure();
                    }
                    RegrowthPressure::Zero => st.lambda = 0.0,
                }
                Some(target)
            }
            (None, Stage::Pruning) => target_sparsity.and_then(|s| {
                // A baseline's planned density: where its schedule has pruned to by now.
                (1..=epoch)
                    .rev()
                    .find_map(|e| method.density_before_epoch(s, plan.pruning_epochs, e))
            }),
            (None, _) => {
                st.lambda = 0.0;
                target_sparsity
                    .filter(|_| !method.trains_masks())
                    .map(|s| 100.0 - s)
            }
        };
        // λ = 0 from the first regrowth epoch on without a scheduler, and with the authors'
        // regrowth (`zero`): the pruning controller's last λ must not leak into epoch P + 1.
        if epoch == plan.pruning_epochs
            && (st.scheduler.is_none() || *regrowth_pressure == RegrowthPressure::Zero)
        {
            st.lambda = 0.0;
        }
        expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prune_cfg(
        method: PruneMethod,
        target: Option<f64>,
        pressure: Option<f64>,
        p: usize,
        r: usize,
    ) -> PruneConfig {
        PruneConfig {
            method,
            target_sparsity: target,
            pressure,
            pruning_epochs: p,
            regrowth_epochs: r,
            ..PruneConfig::default()
        }
    }

    /// Runs a policy over all its epochs with a density model `d(epoch, λ)`; returns the plans
    /// and the expected densities.
    fn walk(
        pol: &mut EpochPolicy,
        density: impl Fn(usize, f64) -> f64,
    ) -> (Vec<EpochPlan>, Vec<Option<f64>>) {
        let (mut plans, mut exp) = (vec![], vec![]);
        for e in 1..=pol.total_epochs() {
            let p = pol.plan(e);
            exp.push(pol.after_epoch(e, density(e, p.pressure)));
            plans.push(p);
        }
        (plans, exp)
    }

    #[test]
    fn dense_is_a_cosine_lr_without_masks_or_pressure() {
        let cfg = TrainConfig {
            epochs: 4,
            ..TrainConfig::default()
        };
        let mut pol = EpochPolicy::dense(&cfg);
        assert_eq!(pol.total_epochs(), 4);
        let (plans, exp) = walk(&mut pol, |_, _| 100.0);
        assert!(plans.iter().all(|p| p.stage == Stage::Dense
            && !p.train_masks
            && p.pressure == 0.0
            && p.mask_lr == 0.0
            && p.snap_to.is_none()
            && p.magnitude_prune_to.is_none()));
        assert_eq!(plans[0].weight_lr, cfg.optimizer.lr);
        assert!(plans[3].weight_lr < plans[0].weight_lr);
        assert!(exp.iter().all(Option::is_none));
    }

    #[test]
    fn scheduled_hold_prunes_holds_and_snaps_once_at_the_freeze() {
        let cfg = prune_cfg(PruneMethod::Hyperflux, Some(90.0), None, 6, 3);
        let mut pol = EpochPolicy::prune(&cfg).unwrap();
        assert_eq!(pol.target_density(), Some(10.0));
        // a network that stays dense: the controller must keep raising λ
        let (plans, exp) = walk(&mut pol, |_, _| 100.0);
        assert_eq!(plans[0].pressure, 0.0, "the first epoch has λ = 0");
        assert!(plans[1].pressure > 0.0 && plans[5].pressure > plans[1].pressure);
        assert!(plans[..6]
            .iter()
            .all(|p| p.stage == Stage::Pruning && p.train_masks));
        // expected follows E(t), then the target in regrowth
        let traj = Trajectory::with_aggressivity(90.0, 6, cfg.aggressivity).unwrap();
        for e in 1..=6 {
            assert_eq!(exp[e - 1], Some(traj.expected(e)));
        }
        assert_eq!(&exp[6..], &[Some(10.0); 3]);
        // hold: λ keeps coming in regrowth; freeze = min(2, 3) last epochs, snap on the first
        assert!(plans[6].pressure > 0.0 && plans[6].train_masks);
        assert_eq!(plans[6].snap_to, None);
        assert_eq!(plans[7].snap_to, Some(10.0));
        assert!(!plans[7].train_masks && plans[7].mask_lr == 0.0);
        assert!(!plans[8].train_masks && plans[8].snap_to.is_none());
        assert!(plans.iter().all(|p| p.magnitude_prune_to.is_none()));
    }

    #[test]
    fn scheduled_zero_drops_the_pressure_in_regrowth() {
        let mut cfg = prune_cfg(PruneMethod::Hyperflux, Some(90.0), None, 6, 3);
        cfg.regrowth_pressure = RegrowthPressure::Zero;
        let mut pol = EpochPolicy::prune(&cfg).unwrap();
        let (plans, exp) = walk(&mut pol, |_, _| 100.0);
        assert!(plans[5].pressure > 0.0);
        assert!(plans[6..].iter().all(|p| p.pressure == 0.0));
        assert_eq!(exp[8], Some(10.0));
        assert_eq!(plans[7].snap_to, Some(10.0));
    }

    #[test]
    fn one_regrowth_epoch_still_snaps_and_none_never_does() {
        let cfg = prune_cfg(PruneMethod::Hyperflux, Some(90.0), None, 6, 1);
        let pol = EpochPolicy::prune(&cfg).unwrap();
        assert_eq!(pol.plan(7).snap_to, Some(10.0));
        let cfg = prune_cfg(PruneMethod::Hyperflux, Some(90.0), None, 6, 0);
        let pol = EpochPolicy::prune(&cfg).unwrap();
        assert!((1..=6).all(|e| pol.plan(e).snap_to.is_none()));
        let mut cfg = prune_cfg(PruneMethod::Hyperflux, Some(90.0), None, 6, 3);
        cfg.final_freeze_epochs = 0;
        let pol = EpochPolicy::prune(&cfg).unwrap();
        assert!((1..=9).all(|e| pol.plan(e).snap_to.is_none() && pol.plan(e).train_masks));
    }

    #[test]
    fn fixed_pressure_applies_lambda_while_pruning_then_zero() {
        let cfg = prune_cfg(PruneMethod::Hyperflux, None, Some(0.7), 3, 2);
        let mut pol = EpochPolicy::prune(&cfg).unwrap();
        assert_eq!(pol.target_density(), None);
        let (plans, exp) = walk(&mut pol, |_, _| 50.0);
        assert!(plans[..3]
            .iter()
            .all(|p| p.pressure == 0.7 && p.train_masks));
        assert!(plans[3..]
            .iter()
            .all(|p| p.pressure == 0.0 && p.train_masks));
        assert!(plans.iter().all(|p| p.snap_to.is_none()));
        assert!(exp.iter().all(Option::is_none));
    }

    #[test]
    fn the_controller_reacts_to_the_measured_density() {
        let cfg = prune_cfg(PruneMethod::Hyperflux, Some(90.0), None, 6, 0);
        let (mut hi, mut lo) = (
            EpochPolicy::prune(&cfg).unwrap(),
            EpochPolicy::prune(&cfg).unwrap(),
        );
        hi.after_epoch(1, 100.0);
        lo.after_epoch(1, 1.0);
        assert!(hi.plan(2).pressure > lo.plan(2).pressure);
        assert_eq!(lo.plan(2).pressure, 0.0);
    }

    #[test]
    fn baselines_prune_by_magnitude_without_pressure_or_mask_training() {
        let gmp = prune_cfg(PruneMethod::Gmp, Some(90.0), None, 4, 2);
        let mut pol = EpochPolicy::prune(&gmp).unwrap();
        let (plans, exp) = walk(&mut pol, |_, _| 100.0);
        assert!(plans.iter().all(|p| p.pressure == 0.0
            && !p.train_masks
            && p.mask_lr == 0.0
            && p.snap_to.is_none()));
        let prunes: Vec<Option<f64>> = plans.iter().map(|p| p.magnitude_prune_to).collect();
        assert!(prunes[..4].iter().all(Option::is_some) && prunes[4..].iter().all(Option::is_none));
        assert_eq!(prunes[3], Some(10.0));
        assert_eq!(exp[..4], prunes[..4]);
        assert_eq!(&exp[4..], &[Some(10.0); 2]);

        let one = prune_cfg(PruneMethod::Oneshot, Some(95.0), None, 3, 1);
        let mut pol = EpochPolicy::prune(&one).unwrap();
        let (plans, exp) = walk(&mut pol, |_, _| 5.0);
        assert_eq!(plans[0].magnitude_prune_to, Some(5.0));
        assert!(plans[1..].iter().all(|p| p.magnitude_prune_to.is_none()));
        assert!(exp.iter().all(|e| *e == Some(5.0)), "{exp:?}");
        assert!(plans.iter().all(|p| p.pressure == 0.0 && !p.train_masks));
    }

    #[test]
    fn state_round_trips_for_resume() {
        let cfg = prune_cfg(PruneMethod::Hyperflux, Some(90.0), None, 6, 3);
        let mut a = EpochPolicy::prune(&cfg).unwrap();
        for e in 1..=4 {
            a.after_epoch(e, 100.0 - 10.0 * e as f64);
        }
        let json = serde_json::to_string(&a.state).unwrap();
        let mut b = EpochPolicy::prune(&cfg).unwrap();
        b.state = serde_json::from_str(&json).unwrap();
        for e in 5..=9 {
            assert_eq!(a.plan(e), b.plan(e));
            assert_eq!(a.after_epoch(e, 12.0), b.after_epoch(e, 12.0));
        }
    }
}
