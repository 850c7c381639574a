//! The L0 runner: Hyperflux under a doubling pressure ladder `λ = 2^k`, one point per block with
//! the flux statistics of the block's last epoch. A block runs `block_epochs` epochs, or ends
//! earlier once the density changes by less than `block_tolerance` percent over one epoch (the
//! equilibrium criterion); the epochs it ran and its last change are recorded with the point.

use super::session::{density_of, epoch, law_optim, Setup};
use super::{flux_stats, rms_flux_stats, LawConfig, LawSample};
use crate::network::Network;
use crate::step::StepSettings;
use crate::trainer::Observer;
use crate::EngineError;
use tch::Tensor;

/// The L0 pressure ladder; returns (epochs run, early-stop reason).
pub(super) fn l0_ladder(
    cfg: &LawConfig,
    s: &mut Setup,
    obs: &mut dyn Observer,
    emit: &mut dyn FnMut(LawSample),
) -> Result<(usize, Option<String>), EngineError> {
    let mut opt = law_optim(cfg, s)?;
    let n = s.net.prunable() as f64;
    // An upper bound when blocks may end early (progress shows it as the total).
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
        // With a tolerance any epoch may be the block's last, so each one is measured afresh.
        let early = cfg.block_tolerance > 0.0;
        let mut before = density_of(s.net.as_ref());
        let mut change = f64::NAN;
        let mut ran = 0;
        for b in 1..=cfg.block_epochs {
            e += 1;
            ran = b;
            let measure = early || b == cfg.block_epochs;
            if early {
                tch::no_grad(|| {
                    for t in flux.iter().chain(&prev).chain(&sq) {
                        let _ = t.shallow_clone().zero_();
                    }
                });
            }
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
            let now = last.as_ref().map_or(before, |(r, _)| r.density);
            change = relative_change(before, now);
            before = now;
            if early && change < cfg.block_tolerance {
                break;
            }
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
            ("BlockEpochs".to_string(), ran as f64),
            ("LastChange".to_string(), change),
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

/// The change from density `before` to `now` over one epoch, in percent of `before` (0 when
/// both are 0).
pub(super) fn relative_change(before: f64, now: f64) -> f64 {
    if before <= 0.0 {
        return if now <= 0.0 { 0.0 } else { f64::INFINITY };
    }
    100.0 * (before - now).abs() / before
}

#[cfg(test)]
mod tests {
    use super::relative_change;

    #[test]
    fn relative_change_is_percent_of_the_earlier_density() {
        assert!((relative_change(10.0, 9.9) - 1.0).abs() < 1e-9);
        assert!((relative_change(2.0, 2.04) - 2.0).abs() < 1e-9);
        assert_eq!(relative_change(0.0, 0.0), 0.0);
        assert!(relative_change(0.0, 1.0).is_infinite());
    }
}
