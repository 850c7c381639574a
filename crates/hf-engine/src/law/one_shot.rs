//! The one-shot control runner: the dense net pruned directly to each density of the geometric
//! schedule by global magnitude, no fine-tuning.

use super::session::{accuracy_of, density_of, Setup};
use super::{LawConfig, LawSample};
use crate::masked::{write_masks, PRUNED_MASK};
use crate::network;
use crate::EngineError;

/// The one-shot magnitude control; returns the early-stop reason.
pub(super) fn one_shot(
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
        write_masks(s.net.masked(), &masks);
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
