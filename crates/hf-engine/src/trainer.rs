//! The per-epoch controller of a run: batches → Hyperflux step → density and test accuracy →
//! pressure scheduler and stages → records and checkpoints. Dense training is the same loop with
//! masks frozen and λ = 0.

use crate::checkpoint::{self, Checkpoint};
use crate::device;
use crate::init::Init;
use crate::masked::{self, DensityReport};
use crate::network::{self, Network};
use crate::step::{self, HyperfluxOptim, StepSettings};
use crate::EngineError;
use hf_core::config::{CommonConfig, PruneConfig, TrainConfig};
use hf_core::policy::{EpochPolicy, PolicyState};
use hf_core::preprocess::Preprocessing;
use hf_core::records::{EpochRecord, RecordLog};
use hf_data::{Augment, BatchConfig, Dataset, DatasetKind, DatasetSpec, LoadOptions, Split};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Tensor};

/// Receives progress of a run (the CLI draws progress bars with it).
pub trait Observer {
    /// An epoch of `steps` steps starts.
    fn epoch_start(&mut self, _epoch: usize, _total: usize, _steps: usize) {}
    /// A step finished with this batch loss.
    fn step(&mut self, _loss: f64) {}
    /// An epoch finished.
    fn epoch_end(&mut self, _rec: &EpochRecord) {}
    /// Asked after each epoch's checkpoint is saved: `true` ends the run there (it can be
    /// continued with `--resume`).
    fn stop_after(&mut self, _epoch: usize) -> bool {
        false
    }
    /// Something the user should know that is not an error (a stale lock taken over, stale
    /// temporary files removed, an unverified input file, a snap that did the pruning).
    fn note(&mut self, _msg: &str) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// The state a resumed run needs, stored as JSON in the checkpoint metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunState {
    /// "dense" or "prune".
    pub kind: String,
    /// Completed epochs.
    pub epoch: usize,
    /// Planned epochs.
    pub total_epochs: usize,
    /// The epoch policy's evolving part: λ for the next epoch, the pressure scheduler, the
    /// regrowth controller. Flattened, so the stored JSON keeps its `lambda`, `scheduler` and
    /// `hold` keys.
    #[serde(flatten)]
    pub policy: PolicyState,
    /// Weight-optimizer steps.
    pub weights_step: u64,
    /// Mask-optimizer steps.
    pub masks_step: u64,
    /// Records so far.
    pub records: Vec<EpochRecord>,
    /// The network's kernel state (see `Network::kernel_state`), for an exact resume.
    #[serde(default)]
    pub kernel_state: Vec<f64>,
}

impl RunState {
    /// The state of a run that has not started, under `policy`.
    fn fresh(kind: &str, policy: &EpochPolicy) -> Self {
        RunState {
            kind: kind.into(),
            epoch: 0,
            total_epochs: policy.total_epochs(),
            policy: policy.state.clone(),
            weights_step: 0,
            masks_step: 0,
            records: vec![],
            kernel_state: vec![],
        }
    }
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// All epoch records.
    pub records: Vec<EpochRecord>,
    /// Final validation accuracy (percent), when the run has a validation split.
    pub val_accuracy: Option<f64>,
    /// Final test accuracy (percent).
    pub test_accuracy: f64,
    /// Final density (percent).
    pub density: f64,
    /// Final checkpoint.
    pub checkpoint: PathBuf,
    /// Records CSV.
    pub records_csv: PathBuf,
    /// Target density, when pruning to a target.
    pub target_density: Option<f64>,
    /// Seconds of the whole run.
    pub seconds: f64,
    /// Planned epochs of the run (more than `records.len()` when it was stopped early).
    pub total_epochs: usize,
    /// Relative tolerance of the final density around the target (`density_tolerance`).
    pub density_tolerance: f64,
    /// The final snap, if one happened in this run.
    pub snap: Option<Snap>,
    /// The pruning method of a pruning run (`None` for dense training).
    pub method: Option<hf_core::config::PruneMethod>,
    /// The output folder's lock, held until the outcome is dropped (so the caller's own
    /// outputs, e.g. plots, are written under it too).
    pub lock: Option<Arc<hf_core::fsutil::DirLock>>,
}

/// The final snap of a scheduled run: masks moved once onto the target density.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snap {
    /// The epoch it happened at the start of.
    pub epoch: usize,
    /// Density (percent) just before.
    pub from: f64,
    /// Density (percent) just after.
    pub to: f64,
}

impl Snap {
    /// A snap farther than this (relative to the target) from the density the controller had
    /// reached means the controller did not do the pruning: the snap did.
    pub const FAR: f64 = 0.25;

    /// Whether the snap had to move the density far (see [`Snap::FAR`]).
    pub fn is_far(&self) -> bool {
        (self.from - self.to).abs() > Self::FAR * self.to
    }

    /// The one-line account of the snap for the run's output.
    pub fn describe(&self) -> String {
        let mut m = format!(
            "final snap at the start of epoch {}: density {:.3}% -> {:.3}%",
            self.epoch, self.from, self.to
        );
        if self.is_far() {
            m.push_str(&format!(
                " — the pressure controller did not do this pruning, the snap did (it was {:.1}× the target): give more pruning epochs (--pruning-epochs), more data, or a larger --mask-lr",
                self.from / self.to
            ));
        }
        m
    }
}

/// Training and test sets of a run.
pub struct RunData {
    /// The dataset, with the directory actually read for `npy:DIR` data (what checkpoints
    /// record).
    pub spec: DatasetSpec,
    /// Training set (without the validation split).
    pub train: Arc<Dataset>,
    /// Validation split: the last examples of the training data, held out of training.
    pub val: Option<Dataset>,
    /// Test set.
    pub test: Dataset,
}

/// The dataset a config names.
pub fn dataset_spec(c: &CommonConfig) -> Result<DatasetSpec, EngineError> {
    c.dataset.parse().map_err(EngineError::Model)
}

fn load_options(c: &CommonConfig, classes: Option<usize>) -> LoadOptions {
    LoadOptions {
        data_dir: c.data_dir.clone(),
        normalize: c.normalize.clone(),
        classes,
    }
}

/// Loads the data a config names (with its normalisation and the limits applied).
pub fn load_data(c: &CommonConfig) -> Result<RunData, EngineError> {
    let (mut train, mut test) = dataset_spec(c)?.load_splits(&load_options(c, None))?;
    if c.train_limit > 0 {
        train = train.take(c.train_limit);
    }
    if c.test_limit > 0 {
        test = test.take(c.test_limit);
    }
    let n_val = c.val_count(train.len())?;
    let (train, val) = if n_val > 0 {
        let (t, v) = train.split_tail(n_val);
        (t, Some(v))
    } else {
        (train, None)
    };
    Ok(RunData {
        spec: train.source.clone(),
        train: Arc::new(train),
        val,
        test,
    })
}

/// Loads only the test split a config names (evaluation, export), for a model with `classes`
/// outputs (npy labels must be below it).
pub fn load_test(c: &CommonConfig, classes: Option<usize>) -> Result<Dataset, EngineError> {
    let test = dataset_spec(c)?.load(Split::Test, &load_options(c, classes))?;
    Ok(if c.test_limit > 0 {
        test.take(c.test_limit)
    } else {
        test
    })
}

/// The data settings a checkpoint was trained with: its dataset (metadata `dataset`) and the
/// normalisation of its stored config; the rest of [`CommonConfig`] at its defaults.
pub fn checkpoint_data(ck: &Checkpoint) -> Result<CommonConfig, EngineError> {
    /// Any stored run config: only `common` is read.
    #[derive(Deserialize, Default)]
    struct Stored {
        #[serde(default)]
        common: CommonConfig,
    }
    let stored: Stored = match ck.meta.get("config") {
        Some(text) => hf_core::config::from_toml_str(text)?,
        None => Stored::default(),
    };
    Ok(CommonConfig {
        dataset: ck.meta_str("dataset")?.to_string(),
        normalize: stored.common.normalize,
        ..CommonConfig::default()
    })
}

/// The input preprocessing a checkpoint records (metadata `preprocessing`); for checkpoints
/// written before it was recorded, the built-in dataset's constants (those runs had no
/// `--normalize`). `None` if neither is known.
pub fn checkpoint_preprocessing(ck: &Checkpoint) -> Result<Option<Preprocessing>, EngineError> {
    if ck.meta.contains_key("preprocessing") {
        return ck.meta_json("preprocessing").map(Some);
    }
    let spec: Option<DatasetSpec> = ck.meta.get("dataset").and_then(|d| d.parse().ok());
    Ok(spec
        .and_then(|s| s.kind())
        .map(|k| Preprocessing::from_f32(Preprocessing::PIXEL_SCALE, k.mean(), k.std())))
}

/// Input shape (C, H, W) of a dataset.
pub fn input_shape(ds: &Dataset) -> [i64; 3] {
    [ds.channels as i64, ds.height as i64, ds.width as i64]
}

/// Batch tensors on a device.
pub fn to_tensors(b: &hf_data::Batch, shape: [i64; 3], device: Device) -> (Tensor, Tensor) {
    let x = Tensor::from_slice(&b.x)
        .view([b.n as i64, shape[0], shape[1], shape[2]])
        .to_device(device);
    let y = Tensor::from_slice(&b.y).to_device(device);
    (x, y)
}

/// Test accuracy (percent) and loss of `net` on `test`.
pub fn test_accuracy(
    net: &dyn Network,
    test: &Dataset,
    device: Device,
    smoothing: f64,
) -> (f64, f64) {
    let shape = input_shape(test);
    let cfg = BatchConfig::eval(1000);
    let it = hf_data::batches(test, &cfg, 0, 0).map(|b| to_tensors(&b, shape, device));
    network::evaluate(net, it, smoothing)
}

/// Validation accuracy (when the run has a validation split) and test accuracy (percent)
/// of `net`.
pub fn val_and_test_accuracy(
    net: &dyn Network,
    data: &RunData,
    device: Device,
    smoothing: f64,
) -> (Option<f64>, f64) {
    let val = data
        .val
        .as_ref()
        .map(|v| test_accuracy(net, v, device, smoothing).0);
    (val, test_accuracy(net, &data.test, device, smoothing).0)
}

/// Runs training epochs over a run's data: batches (prefetched on a background thread) →
/// Hyperflux step, with NaN checks. Dense training, pruning and the law measurements share it.
pub struct EpochRunner<'a> {
    /// Model, data and seed settings.
    pub common: &'a CommonConfig,
    /// The data.
    pub data: &'a RunData,
    /// Device of the network.
    pub device: Device,
    /// Batching and augmentation.
    pub batch: BatchConfig,
    watch: std::cell::RefCell<step::DivergenceWatch>,
}

/// Called after every training step with the 1-based step index and the network.
pub type StepHook<'h> = &'h mut dyn FnMut(usize, &dyn Network);

/// Means over one training epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// Mean data loss.
    pub loss: f64,
    /// Running training accuracy (percent).
    pub train_accuracy: f64,
    /// Steps taken.
    pub steps: usize,
}

impl<'a> EpochRunner<'a> {
    /// A runner with the batching `common` asks for.
    pub fn new(common: &'a CommonConfig, data: &'a RunData, device: Device) -> Self {
        Self {
            common,
            data,
            device,
            batch: batch_config(common, data),
            watch: Default::default(),
        }
    }

    /// Steps per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.batch.batches_per_epoch(self.data.train.len())
    }

    /// One epoch of Hyperflux steps with settings `s`. `flux`, when given, accumulates
    /// `−w·∂L/∂ŵ` per masked tensor over the epoch; `hook` is called after every step with the
    /// 1-based step index (e.g. to record density every N batches).
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        net: &mut dyn Network,
        opt: &mut HyperfluxOptim,
        epoch: usize,
        total: usize,
        s: &StepSettings,
        obs: &mut dyn Observer,
        flux: Option<&[Tensor]>,
        mut hook: Option<StepHook<'_>>,
    ) -> Result<EpochStats, EngineError> {
        let shape = input_shape(&self.data.train);
        let steps = self.steps_per_epoch();
        obs.epoch_start(epoch, total, steps);
        let it = hf_data::prefetch(
            hf_data::batches_owned(
                self.data.train.clone(),
                &self.batch,
                self.common.seed,
                epoch as u64,
            ),
            4,
        );
        let (mut loss_sum, mut correct, mut seen, mut taken) = (0.0, 0i64, 0usize, 0usize);
        for (i, b) in it.enumerate() {
            let (x, y) = to_tensors(&b, shape, self.device);
            let st = opt.step(net, &x, &y, self.common.label_smoothing, s, flux);
            self.watch
                .borrow_mut()
                .observe(st.loss, self.data.train.classes, epoch, i + 1, s)?;
            loss_sum += st.loss * b.n as f64;
            correct += st.correct;
            seen += b.n;
            taken += 1;
            obs.step(st.loss);
            if let Some(h) = hook.as_mut() {
                h(i + 1, &*net);
            }
        }
        let finite = |t: &Tensor| t.isfinite().all().int64_value(&[]) != 0;
        let bad = net
            .masked()
            .iter()
            .find(|mw| !finite(&mw.w) || !finite(&mw.m))
            .map(|mw| mw.name.clone())
            .or_else(|| {
                net.params()
                    .iter()
                    .find(|p| !finite(&p.t))
                    .map(|p| p.name.clone())
            });
        if let Some(name) = bad {
            return Err(EngineError::Diverged {
                what: format!("non-finite values in {name}"),
                epoch,
                step: taken,
                hint: step::divergence_hint(s),
            });
        }
        Ok(EpochStats {
            loss: loss_sum / seen.max(1) as f64,
            train_accuracy: 100.0 * correct as f64 / seen.max(1) as f64,
            steps: taken,
        })
    }
}

fn model_meta(net: &dyn Network, data: &RunData) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("arch".into(), net.arch().to_string());
    m.insert("dataset".into(), data.spec.to_string());
    m.insert(
        "preprocessing".into(),
        serde_json::to_string(&data.train.preprocessing()).unwrap_or_default(),
    );
    m.insert(
        "input_shape".into(),
        serde_json::to_string(&net.input_shape()).unwrap_or_default(),
    );
    m.insert("classes".into(), net.classes().to_string());
    if let Some(g) = net.graph_json() {
        m.insert("graph".into(), g);
    }
    m
}

/// Builds the network a checkpoint describes (same architecture and shapes) and restores it.
/// Metadata that contradicts itself (a dataset whose images or classes differ from the stored
/// input shape or class count) is refused.
pub fn load_network(ck: &Checkpoint, device: Device) -> Result<Box<dyn Network>, EngineError> {
    let arch = ck.meta_str("arch")?;
    let shape: [i64; 3] = ck.meta_json("input_shape")?;
    let classes: i64 = ck.meta_json("classes")?;
    if let Some(kind) = ck
        .meta
        .get("dataset")
        .and_then(|d| d.parse::<DatasetKind>().ok())
    {
        let (c, h, w) = kind.shape();
        let want = [c as i64, h as i64, w as i64];
        // An imported graph with a flat input takes images of the same size.
        let flat_ok = ck.meta.contains_key("graph")
            && shape[1] == 1
            && shape[2] == 1
            && shape[0] == want.iter().product::<i64>();
        if (want != shape && !flat_ok) || kind.classes() as i64 != classes {
            return Err(EngineError::Checkpoint {
                path: ck.path.display().to_string(),
                msg: format!(
                    "metadata contradicts itself: dataset {} has inputs {want:?} and {} classes, but input_shape is {shape:?} and classes {classes} — the file was edited or is corrupt; use another checkpoint",
                    kind.name(),
                    kind.classes()
                ),
            });
        }
    }
    // Every tensor, masks included, is restored next: the initial values do not matter.
    let init = Init::new(0, (0.2, 0.5));
    let net = network::build_for(arch, Some(ck), shape, classes, init, device)?;
    ck.restore_net(net.as_ref(), true)?;
    Ok(net)
}

/// Sets threads, resolves the device and loads the data. Nothing of a run draws from
/// libtorch's global generator: initial values come from the seed through [`Init`], batches
/// and augmentation from it through `hf_data`.
pub fn prepare(common: &CommonConfig) -> Result<(Device, RunData), EngineError> {
    device::set_threads(common.threads);
    let dev = device::resolve(&common.device)?;
    let data = load_data(common)?;
    Ok((dev, data))
}

/// Fails with a clear message when a model does not fit the data's shape or classes.
pub fn check_fits(net: &dyn Network, data: &RunData) -> Result<(), EngineError> {
    let shape = input_shape(&data.train);
    if !net.accepts_input(shape) || net.classes() < data.train.classes as i64 {
        return Err(EngineError::Model(format!(
            "model {} expects input {:?} and {} classes, but {} has {:?} and {}: pick a matching --model or --dataset",
            net.arch(),
            net.input_shape(),
            net.classes(),
            data.spec,
            shape,
            data.train.classes
        )));
    }
    Ok(())
}

fn write_config(out: &Path, toml_text: &str) -> Result<(), EngineError> {
    hf_core::fsutil::atomic_write_bytes(&out.join("config.toml"), toml_text.as_bytes()).map_err(
        |e| {
            EngineError::Io(format!(
                "cannot write {}: {e}",
                out.join("config.toml").display()
            ))
        },
    )
}

/// Restores a checkpoint's network, optimizer states and step counts, and returns its run state.
fn resume_into(
    ck: &Checkpoint,
    kind: &str,
    net: &dyn Network,
    opt: &mut HyperfluxOptim,
) -> Result<RunState, EngineError> {
    let state = resume_state(ck, kind)?;
    ck.restore_net(net, true)?;
    ck.restore_optim(opt)?;
    net.set_kernel_state(&state.kernel_state);
    opt.weights.step = state.weights_step;
    opt.masks.step = state.masks_step;
    Ok(state)
}

fn resume_state(ck: &Checkpoint, kind: &str) -> Result<RunState, EngineError> {
    let st: RunState = ck.meta_json("state")?;
    if st.kind != kind {
        return Err(EngineError::Checkpoint {
            path: ck.path.display().to_string(),
            msg: format!(
                "is a {} checkpoint; resume it with `hyperflux {}`",
                st.kind,
                if st.kind == "dense" { "train" } else { "prune" }
            ),
        });
    }
    Ok(st)
}

fn batch_config(common: &CommonConfig, data: &RunData) -> BatchConfig {
    let cifar = matches!(
        data.spec.kind(),
        Some(DatasetKind::Cifar10 | DatasetKind::Cifar100)
    );
    // Examples without spatial extent (N×D npy data) are not cropped.
    let flat = data.train.height == 1 && data.train.width == 1;
    let aug = if common.augment && cifar {
        Some(Augment::CIFAR)
    } else if common.augment && !flat {
        Some(Augment {
            pad: 2,
            flip: false,
        })
    } else {
        None
    };
    BatchConfig::train(common.batch_size, aug)
}

/// Dense training (`hyperflux train`). With `resume`, continues that checkpoint's run.
pub fn train_dense(
    cfg: &TrainConfig,
    resume: Option<&Checkpoint>,
    obs: &mut dyn Observer,
) -> Result<Outcome, EngineError> {
    let mut cfg: TrainConfig = match resume {
        Some(ck) => hf_core::config::from_toml_str(ck.meta_str("config")?)?,
        None => cfg.clone(),
    };
    cfg.validate()?;
    let started = Instant::now();
    let (dev, data) = prepare(&cfg.common)?;
    // The config written records the split actually used, so a resume holds out the same.
    cfg.common.val_split = Some(data.val.as_ref().map_or(0, Dataset::len));
    let from_ck = match (resume, &cfg.from) {
        (None, Some(p)) => Some(Checkpoint::load_noted(p, |n| obs.note(n))?),
        _ => None,
    };
    let mut net = network::build_for(
        &cfg.common.model,
        resume.or(from_ck.as_ref()),
        input_shape(&data.train),
        data.train.classes as i64,
        Init::new(cfg.common.seed, (0.2, 0.5)),
        dev,
    )?;
    check_fits(net.as_ref(), &data)?;
    let mut opt = HyperfluxOptim::new(
        net.as_ref(),
        cfg.optimizer.kind()?,
        cfg.optimizer.weight_decay,
        0.25,
    );
    let mut policy = EpochPolicy::dense(&cfg);
    let mut state = RunState::fresh("dense", &policy);
    if let Some(ck) = resume {
        state = resume_into(ck, "dense", net.as_ref(), &mut opt)?;
    } else if let Some(ck) = &from_ck {
        // Fine-tuning: the starting weights, every weight present.
        ck.restore_net(net.as_ref(), false)?;
    }
    let out = cfg.common.out_dir.clone();
    let lock = take_output(&out, obs)?;
    let config_text = hf_core::config::to_toml(&cfg);
    write_config(&out, &config_text)?;
    let lp = EpochRunner::new(&cfg.common, &data, dev);
    let mut log = start_records(&out, &state)?;
    let ck_path = out.join("checkpoint.safetensors");
    let files = RunFiles {
        out: &out,
        checkpoint: &ck_path,
        config: &config_text,
        data: &data,
    };
    let mut run = Run {
        net: net.as_mut(),
        opt: &mut opt,
        state: &mut state,
        log: &mut log,
        files: &files,
        common: &cfg.common,
        dev,
    };
    run.epochs(&mut policy, &lp, obs)?;
    let mut o = finish(
        net.as_ref(),
        &data,
        dev,
        &cfg.common,
        log,
        ck_path,
        None,
        started,
        policy.total_epochs(),
    )?;
    o.lock = Some(Arc::new(lock));
    Ok(o)
}

/// What one epoch loop works on.
struct Run<'r, 'a> {
    net: &'r mut dyn Network,
    opt: &'r mut HyperfluxOptim,
    state: &'r mut RunState,
    log: &'r mut RecordLog,
    files: &'r RunFiles<'a>,
    common: &'r CommonConfig,
    dev: Device,
}

impl Run<'_, '_> {
    /// The one epoch loop of every run, dense training and pruning alike: the policy says what
    /// each epoch does (hf_core::policy); the loop applies the snap or magnitude prune it asks
    /// for, trains, measures, steps the policy with the measured density, records and
    /// checkpoints. Returns the final snap when this run made one.
    fn epochs(
        &mut self,
        policy: &mut EpochPolicy,
        lp: &EpochRunner<'_>,
        obs: &mut dyn Observer,
    ) -> Result<Option<Snap>, EngineError> {
        // A resumed run continues with the policy state its checkpoint holds.
        policy.state = self.state.policy.clone();
        let total = policy.total_epochs();
        let mut snap = None;
        for epoch in self.state.epoch + 1..=total {
            let t0 = Instant::now();
            let plan = policy.plan(epoch);
            let mut snapped_from = None;
            if let Some(t) = plan.snap_to {
                let from = DensityReport::of(self.net.masked()).density();
                masked::snap_to_density(self.net.masked(), t);
                snapped_from = Some(from);
                snap = Some(Snap {
                    epoch,
                    from,
                    to: DensityReport::of(self.net.masked()).density(),
                });
            }
            if let Some(d) = plan.magnitude_prune_to {
                masked::magnitude_prune_to_density(self.net.masked(), d)?;
            }
            let s = StepSettings {
                weight_lr: plan.weight_lr,
                mask_lr: plan.mask_lr,
                pressure: plan.pressure,
                train_masks: plan.train_masks,
            };
            let es = lp.run(&mut *self.net, self.opt, epoch, total, &s, obs, None, None)?;
            let dens = DensityReport::of(self.net.masked());
            let (val, acc) = val_and_test_accuracy(
                &*self.net,
                self.files.data,
                self.dev,
                self.common.label_smoothing,
            );
            let expected = policy.after_epoch(epoch, dens.density());
            self.state.policy = policy.state.clone();
            let pressure_loss = if plan.pressure == 0.0 {
                0.0
            } else {
                plan.pressure * step::mask_mean(&*self.net)
            };
            let rec = EpochRecord {
                epoch,
                stage: plan.stage.name().into(),
                lambda: plan.pressure,
                expected_density: expected,
                density: dens.density(),
                layer_density: dens.per_layer(),
                data_loss: es.loss,
                pressure_loss,
                train_accuracy: es.train_accuracy,
                val_accuracy: val,
                test_accuracy: acc,
                weight_lr: plan.weight_lr,
                mask_lr: plan.mask_lr,
                seconds: t0.elapsed().as_secs_f64(),
                snapped_from,
            };
            if close_epoch(
                rec, obs, self.log, self.state, self.opt, &*self.net, self.files,
            )? {
                break;
            }
        }
        Ok(snap)
    }
}

/// Takes the output folder of a run: its lock (refused while another live run holds it; a
/// stale lock of a killed run is taken over), then removes the temporary files killed runs
/// left in it. Both are told to `obs`.
fn take_output(
    out: &Path,
    obs: &mut dyn Observer,
) -> Result<hf_core::fsutil::DirLock, EngineError> {
    let lock =
        hf_core::fsutil::DirLock::acquire(out).map_err(|e| EngineError::Io(e.to_string()))?;
    if let Some(pid) = lock.took_over {
        obs.note(&format!(
            "{} was locked by a run that no longer exists (pid {pid}); taken over",
            out.display()
        ));
    }
    let removed = hf_core::fsutil::remove_stale_temps(out).map_err(|e| {
        EngineError::Io(format!(
            "cannot remove stale temporary files in {}: {e}",
            out.display()
        ))
    })?;
    if !removed.is_empty() {
        obs.note(&format!(
            "removed {} temporary file(s) a killed run left in {}",
            removed.len(),
            out.display()
        ));
    }
    Ok(lock)
}

/// The record files of a run, rewritten at once from the records the run starts with (none,
/// or the resumed checkpoint's): records of epochs after the checkpoint (a run killed between
/// writing them and its checkpoint) or of an earlier run in the same folder are dropped.
fn start_records(out: &Path, state: &RunState) -> Result<RecordLog, EngineError> {
    let log = RecordLog::new(out, "records", state.records.clone());
    log.write()
        .map_err(|e| EngineError::Io(format!("cannot write records in {}: {e}", out.display())))?;
    Ok(log)
}

/// Where a run writes, and what its checkpoints record.
struct RunFiles<'a> {
    out: &'a Path,
    checkpoint: &'a Path,
    config: &'a str,
    data: &'a RunData,
}

/// Ends an epoch of any run: reports the record, updates the run state, saves the checkpoint,
/// then rewrites the record files (in that order, so the records are never ahead of the
/// checkpoint; a resume rewrites them from the checkpoint). Returns whether the observer asks
/// to stop here.
fn close_epoch(
    rec: EpochRecord,
    obs: &mut dyn Observer,
    log: &mut RecordLog,
    state: &mut RunState,
    opt: &HyperfluxOptim,
    net: &dyn Network,
    files: &RunFiles<'_>,
) -> Result<bool, EngineError> {
    let epoch = rec.epoch;
    obs.epoch_end(&rec);
    log.records.push(rec);
    state.epoch = epoch;
    state.weights_step = opt.weights.step;
    state.masks_step = opt.masks.step;
    state.records = log.records.clone();
    state.kernel_state = net.kernel_state();
    save_checkpoint(files.checkpoint, net, opt, files.data, state, files.config)?;
    log.write().map_err(|e| {
        EngineError::Io(format!(
            "cannot write records in {}: {e}",
            files.out.display()
        ))
    })?;
    Ok(obs.stop_after(epoch))
}

fn save_checkpoint(
    path: &Path,
    net: &dyn Network,
    opt: &HyperfluxOptim,
    data: &RunData,
    state: &RunState,
    config_text: &str,
) -> Result<(), EngineError> {
    let mut meta = model_meta(net, data);
    meta.insert(
        "state".into(),
        serde_json::to_string(state).unwrap_or_default(),
    );
    meta.insert("config".into(), config_text.to_string());
    if let Some(r) = state.records.last() {
        meta.insert("test_accuracy".into(), r.test_accuracy.to_string());
        meta.insert("density".into(), r.density.to_string());
    }
    checkpoint::save(path, net, Some(opt), meta)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    net: &dyn Network,
    data: &RunData,
    dev: Device,
    common: &CommonConfig,
    log: RecordLog,
    ck_path: PathBuf,
    target_density: Option<f64>,
    started: Instant,
    total_epochs: usize,
) -> Result<Outcome, EngineError> {
    let (val, acc) = val_and_test_accuracy(net, data, dev, common.label_smoothing);
    let density = DensityReport::of(net.masked()).density();
    Ok(Outcome {
        records_csv: log.paths().0.to_path_buf(),
        records: log.records,
        val_accuracy: val,
        test_accuracy: acc,
        density,
        checkpoint: ck_path,
        target_density,
        seconds: started.elapsed().as_secs_f64(),
        total_epochs,
        density_tolerance: 0.05,
        snap: None,
        method: None,
        lock: None,
    })
}

/// Hyperflux pruning (`hyperflux prune`): from a dense checkpoint (`cfg.from`) or from scratch,
/// to a target sparsity with the scheduler, or under a fixed pressure. With `resume`, continues
/// that checkpoint's run with its own saved config.
pub fn prune(
    cfg: &PruneConfig,
    resume: Option<&Checkpoint>,
    obs: &mut dyn Observer,
) -> Result<Outcome, EngineError> {
    let mut cfg: PruneConfig = match resume {
        Some(ck) => hf_core::config::from_toml_str(ck.meta_str("config")?)?,
        None => cfg.clone(),
    };
    cfg.validate()?;
    let started = Instant::now();
    let (dev, data) = prepare(&cfg.common)?;
    // The config written records the split actually used, so a resume holds out the same.
    cfg.common.val_split = Some(data.val.as_ref().map_or(0, Dataset::len));
    let from_ck = match (resume, &cfg.from) {
        (None, Some(p)) => Some(Checkpoint::load_noted(p, |n| obs.note(n))?),
        _ => None,
    };
    let mut net = network::build_for(
        &cfg.common.model,
        resume.or(from_ck.as_ref()),
        input_shape(&data.train),
        data.train.classes as i64,
        Init::new(cfg.common.seed, (cfg.mask_init_low, cfg.mask_init_high)),
        dev,
    )?;
    check_fits(net.as_ref(), &data)?;
    let mut opt = HyperfluxOptim::new(
        net.as_ref(),
        cfg.optimizer.kind()?,
        cfg.optimizer.weight_decay,
        cfg.ste_scale,
    );
    let method = cfg.method;
    let mut policy = EpochPolicy::prune(&cfg).map_err(hf_core::config::ConfigError::from)?;
    let target_density = policy.target_density();
    let mut state = RunState::fresh("prune", &policy);
    if let Some(ck) = resume {
        state = resume_into(ck, "prune", net.as_ref(), &mut opt)?;
    } else if let (Some(from), Some(dense)) = (&cfg.from, &from_ck) {
        let arch = dense.meta_str("arch")?;
        if arch != net.arch() {
            return Err(EngineError::Model(format!(
                "{} holds a {arch} but --model is {}: pass the matching --model",
                from.display(),
                net.arch()
            )));
        }
        // Weights and biases from the dense net; masks stay freshly initialised.
        dense.restore_net(net.as_ref(), false)?;
    }
    let out = cfg.common.out_dir.clone();
    let lock = take_output(&out, obs)?;
    let config_text = hf_core::config::to_toml(&cfg);
    write_config(&out, &config_text)?;
    let lp = EpochRunner::new(&cfg.common, &data, dev);
    let mut log = start_records(&out, &state)?;
    let ck_path = out.join("checkpoint.safetensors");
    let files = RunFiles {
        out: &out,
        checkpoint: &ck_path,
        config: &config_text,
        data: &data,
    };
    let mut run = Run {
        net: net.as_mut(),
        opt: &mut opt,
        state: &mut state,
        log: &mut log,
        files: &files,
        common: &cfg.common,
        dev,
    };
    let snap = run.epochs(&mut policy, &lp, obs)?;
    // A resumed run reports the snap it made before the interruption.
    // (Masks are frozen after the snap, so the density its epoch ends with is the snap's.)
    let snap = snap.or_else(|| {
        let r = log.records.iter().find(|r| r.snapped_from.is_some())?;
        Some(Snap {
            epoch: r.epoch,
            from: r.snapped_from?,
            to: r.density,
        })
    });
    let mut o = finish(
        net.as_ref(),
        &data,
        dev,
        &cfg.common,
        log,
        ck_path,
        target_density,
        started,
        policy.total_epochs(),
    )?;
    o.density_tolerance = cfg.density_tolerance;
    o.snap = snap;
    o.method = Some(method);
    o.lock = Some(Arc::new(lock));
    Ok(o)
}
