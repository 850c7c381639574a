//! The IMP and Taylor runners: global iterative pruning of `rate` of the remaining weights per
//! step, scored by magnitude or first-order Taylor, with fine-tuning (masks frozen) between steps.

use super::session::{accuracy_of, density_of, epoch, law_optim, Setup};
use super::{magnitude_scores, prune_lowest, taylor_scores, Family, LawConfig, LawSample};
use crate::step::StepSettings;
use crate::trainer::Observer;
use crate::EngineError;

/// Iterative magnitude or Taylor pruning with fine-tuning; returns (epochs run, early-stop reason).
pub(super) fn iterative(
    cfg: &LawConfig,
    family: Family,
    s: &mut Setup,
    dense_accuracy: f64,
    obs: &mut dyn Observer,
    emit: &mut dyn FnMut(LawSample),
) -> Result<(usize, Option<String>), EngineError> {
    let mut opt = law_optim(cfg, s)?;
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
