//! Fixed-pressure convergence runs ([`converge`], `hyperflux converge`): Hyperflux at a constant
//! λ for each pressure, with the density recorded every few batches.

use super::session::{density_of, epoch, setup};
use super::ConvergeConfig;
use crate::network::Network;
use crate::step::{HyperfluxOptim, StepSettings};
use crate::trainer::{EpochRunner, Observer};
use crate::EngineError;
use hf_core::stages::cosine;
use serde::Serialize;
use std::time::Instant;

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
    /// The weight learning rate at the start of the cosine.
    pub lr: f64,
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

/// Runs fixed-pressure Hyperflux for each learning rate and pressure (each run from the same initial state: the
/// same seed, and the same dense weights when `cfg.from` is set). `on_trace` sees each finished run.
pub fn converge(
    cfg: &ConvergeConfig,
    obs: &mut dyn Observer,
    on_trace: &mut dyn FnMut(&ConvergeTrace),
) -> Result<Vec<ConvergeTrace>, EngineError> {
    cfg.validate()?;
    let mut traces = Vec::new();
    let runs: Vec<(f64, f64)> = cfg
        .learning_rates()
        .into_iter()
        .flat_map(|lr| cfg.pressures.iter().map(move |&l| (lr, l)))
        .collect();
    for (lr, lambda) in runs {
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
                weight_lr: cosine(lr, lr / cfg.lr_divisor, e - 1, cfg.epochs),
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
            lr,
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
