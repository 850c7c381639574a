//! What every law runner works on: the network loaded from a dense checkpoint with its data
//! ([`Setup`]), its density and test accuracy, and one training epoch reported as an
//! [`EpochRecord`].

use crate::checkpoint::Checkpoint;
use crate::init::Init;
use crate::masked::DensityReport;
use crate::network::{self, Network};
use crate::step::{self, HyperfluxOptim, StepSettings};
use crate::trainer::{self, EpochRunner, EpochStats, Observer, RunData};
use crate::EngineError;
use hf_core::config::CommonConfig;
use hf_core::records::EpochRecord;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Tensor};

/// A network loaded from the dense checkpoint with its data, ready to measure.
pub(super) struct Setup {
    pub(super) net: Box<dyn Network>,
    pub(super) data: RunData,
    pub(super) dev: Device,
}

/// Loads the data and the dense checkpoint `from` into a fresh `common.model` whose masks are
/// initialised in `mask_init` from `common.seed` (the checkpoint's masks are ignored).
pub(super) fn setup(
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
        Init::new(common.seed, mask_init),
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

/// The optimizer the L0 ladder and the IMP/Taylor fine-tuning train with: the law's weight
/// optimizer and straight-through scale over `s`'s network.
pub(super) fn law_optim(cfg: &super::LawConfig, s: &Setup) -> Result<HyperfluxOptim, EngineError> {
    Ok(HyperfluxOptim::new(
        s.net.as_ref(),
        cfg.optimizer.kind()?,
        cfg.optimizer.weight_decay,
        cfg.ste_scale,
    ))
}

pub(super) fn density_of(net: &dyn Network) -> f64 {
    DensityReport::of(net.masked()).density()
}

pub(super) fn accuracy_of(s: &Setup, common: &CommonConfig) -> f64 {
    trainer::test_accuracy(s.net.as_ref(), &s.data.test, s.dev, common.label_smoothing).0
}

/// A per-step callback of [`EpochRunner::run`].
pub(super) type StepHook<'a> = Option<&'a mut dyn FnMut(usize, &dyn Network)>;

/// Runs one epoch with `settings`, evaluates, reports an [`EpochRecord`] to `obs`; returns the
/// record and the epoch statistics.
#[allow(clippy::too_many_arguments)]
pub(super) fn epoch(
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
