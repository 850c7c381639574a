//! Convolutional Hyperflux: the straight-through step on masked convs, ∂L/∂ŵ of conv layers
//! against finite differences, BatchNorm train/eval behaviour, the models' prunable-weight counts
//! (spec §5), and short end-to-end runs of a conv net on generated CIFAR-format files.

mod common;

use hf_core::config::{CommonConfig, OptimConfig, PruneConfig, TrainConfig};
use hf_core::update::OptimKind;
use hf_data::{Augment, DatasetKind};
use hf_engine::checkpoint::Checkpoint;
use hf_engine::conv::{Conv2d, ConvSpec, Linear};
use hf_engine::init::Init;
use hf_engine::models::{self, Body, Builder, ConvNet};
use hf_engine::network::{autograd_grads, Network};
use hf_engine::norm::BatchNorm2d;
use hf_engine::step::{HyperfluxOptim, StepSettings};
use hf_engine::{loss, trainer};
use std::collections::HashSet;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// The initial values of the networks whose values these tests do not look at.
const INIT: Init = Init::new(0, (0.2, 0.5));

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// conv(2→3, 3×3, stride 2, pad 1, bias) → tanh → conv(3→2, 1×1) → flatten → linear → 3 classes.
/// Smooth (tanh), so finite differences are accurate.
struct Tiny {
    c1: Conv2d,
    c2: Conv2d,
    fc: Linear,
}

impl Body for Tiny {
    fn forward(&self, x: &Tensor, eff: &[Tensor], _train: bool) -> Tensor {
        let h = self.c1.forward(x, eff).tanh();
        let h = self.c2.forward(&h, eff).tanh().flatten(1, -1);
        self.fc.forward(&h, eff)
    }
    fn buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
}

fn tiny(init: Init) -> ConvNet {
    let mut b = Builder::new(Device::Cpu, init);
    let c1 = b.conv("c1", ConvSpec::same(2, 3, 3).stride(2), true);
    let c2 = b.conv("c2", ConvSpec::same(3, 2, 1), false);
    let fc = b.linear("fc", 2 * 3 * 3, 3);
    b.finish("tiny", [2, 5, 5], 3, Box::new(Tiny { c1, c2, fc }))
}

fn batch(seed: u64, n: i64, shape: [i64; 3], classes: i64) -> (Tensor, Tensor) {
    let x = common::randn(seed, &[n, shape[0], shape[1], shape[2]]);
    let y = common::randint(seed, classes, n);
    (x, y)
}

/// One Hyperflux step with plain SGD at lr 1 on both groups: the mask moves by exactly
/// `s·w·∂L/∂ŵ + λ/N`, the weight by `H(m)·∂L/∂ŵ`, so pruned conv weights keep their value.
#[test]
fn conv_ste_step_moves_masks_by_scaled_w_times_grad_and_freezes_pruned_weights() {
    let mut net = tiny(Init::new(11, (-0.4, 0.5)));
    let conv = &net.masked()[0];
    assert_eq!(conv.w.size(), [3, 2, 3, 3]);
    let pruned = conv.numel() - conv.present();
    assert!(pruned > 5 && conv.present() > 5, "mixed gates expected");
    let (x, y) = batch(11, 6, [2, 5, 5], 3);
    let g = autograd_grads(&net, &x, &y, 0.1);
    let w0: Vec<Tensor> = net.masked().iter().map(|m| m.w.copy()).collect();
    let m0: Vec<Tensor> = net.masked().iter().map(|m| m.m.copy()).collect();
    let p0: Vec<Tensor> = net.params().iter().map(|p| p.t.detach().copy()).collect();
    let sgd = OptimKind::Sgd { momentum: 0.0 };
    let mut opt = HyperfluxOptim::new(&net, sgd, 0.0, 0.25);
    opt.masks.kind = sgd;
    let pressure = 2.0;
    let n = net.prunable() as f64;
    let s = StepSettings {
        weight_lr: 1.0,
        mask_lr: 1.0,
        pressure,
        train_masks: true,
    };
    opt.apply(&mut net, &g, &s, None);
    for (i, mw) in net.masked().iter().enumerate() {
        let gate = m0[i].ge(0.0).to_kind(Kind::Float);
        let mask_step = &m0[i] - &mw.m;
        let want = &w0[i] * &g.masked[i] * 0.25 + pressure / n;
        assert!(max_abs_diff(&mask_step, &want) < 1e-6, "{}", mw.name);
        let weight_step = &w0[i] - &mw.w;
        assert!(
            max_abs_diff(&weight_step, &(&g.masked[i] * &gate)) < 1e-6,
            "{}",
            mw.name
        );
        // Pruned weights: unchanged value, yet a data gradient on ŵ that their mask sees.
        let off = m0[i].lt(0.0);
        let moved = weight_step
            .masked_select(&off)
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(moved, 0.0, "{}", mw.name);
        let seen = g.masked[i].masked_select(&off).abs().sum(Kind::Float);
        assert!(seen.double_value(&[]) > 0.0, "{}", mw.name);
    }
    // The conv bias is a free parameter: plain SGD, never gated.
    assert_eq!(net.params()[0].name, "c1.bias");
    for (j, p) in net.params().iter().enumerate() {
        let step = &p0[j] - p.t.detach();
        assert!(max_abs_diff(&step, &g.params[j]) < 1e-6, "{}", p.name);
    }
}

/// ∂L/∂ŵ of masked convs from autograd equals central finite differences of the loss in ŵ,
/// for present and pruned entries alike.
#[test]
fn conv_effective_weight_gradient_matches_finite_differences() {
    let net = tiny(Init::new(12, (-0.4, 0.5)));
    let (x, y) = batch(12, 4, [2, 5, 5], 3);
    let g = autograd_grads(&net, &x, &y, 0.1);
    let eff: Vec<Tensor> = net.masked().iter().map(|m| m.effective()).collect();
    let loss_at = |e: &[Tensor]| {
        tch::no_grad(|| loss::cross_entropy(&net.forward_with(&x, e, true), &y, 0.1))
            .double_value(&[])
    };
    assert!((loss_at(&eff) - g.loss).abs() < 1e-6);
    let h = 1e-2;
    let mut checked = 0;
    for layer in 0..2 {
        let flat_n = eff[layer].numel() as i64;
        for k in (0..flat_n).step_by(5) {
            let probe = |d: f64| {
                let e: Vec<Tensor> = eff.iter().map(|t| t.copy()).collect();
                let flat = e[layer].view([-1]);
                let v = flat.double_value(&[k]);
                let _ = flat.get(k).fill_(v + d);
                loss_at(&e)
            };
            let fd = (probe(h) - probe(-h)) / (2.0 * h);
            let ag = g.masked[layer].view([-1]).double_value(&[k]);
            assert!(
                (fd - ag).abs() < 2e-3 + 2e-2 * ag.abs(),
                "layer {layer} entry {k}: fd {fd} autograd {ag}"
            );
            checked += 1;
        }
    }
    assert!(checked > 10);
}

/// BatchNorm: batch statistics and a momentum-0.1 running-statistics update in training, the
/// running statistics (unchanged) in evaluation; the scale and shift get gradients.
#[test]
fn batchnorm_train_and_eval_behaviour() {
    let (bn, params) = BatchNorm2d::new("bn", 3, Device::Cpu);
    assert_eq!(params[0].name, "bn.weight");
    assert_eq!(params[1].name, "bn.bias");
    let shift = Tensor::from_slice(&[2.0f32, -1.0, 0.5]).view([1, 3, 1, 1]);
    let x = common::randn(13, &[8, 3, 4, 4]) * 3.0 + &shift;
    let y = bn.forward(&x, true);
    // Normalised per channel with the batch's (biased) statistics.
    let mean = y.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Float);
    let var = y.var_correction([0i64, 2, 3].as_slice(), 0, false);
    assert!(mean.abs().max().double_value(&[]) < 1e-5);
    assert!(max_abs_diff(&var, &var.ones_like()) < 1e-3);
    // Running statistics: 0.9·old + 0.1·batch (unbiased variance).
    let bm = x.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Float);
    let bv = x.var_correction([0i64, 2, 3].as_slice(), 1, false);
    assert!(max_abs_diff(&bn.running_mean, &(&bm * 0.1)) < 1e-5);
    assert!(max_abs_diff(&bn.running_var, &(&bv * 0.1 + 0.9)) < 1e-4);
    // Scale and shift are trained: both get a gradient.
    (y * common::randn(14, &[8, 3, 4, 4]))
        .sum(Kind::Float)
        .backward();
    for p in &params {
        assert!(p.t.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
    // Evaluation: (x − running mean)/√(running var + ε)·γ + β, statistics untouched.
    tch::no_grad(|| {
        let mut w = bn.weight.shallow_clone();
        w.copy_(&Tensor::from_slice(&[1.5f32, 0.5, 2.0]));
        let mut b = bn.bias.shallow_clone();
        b.copy_(&Tensor::from_slice(&[0.1f32, -0.2, 0.3]));
    });
    let (rm, rv) = (bn.running_mean.copy(), bn.running_var.copy());
    let e = tch::no_grad(|| bn.forward(&x, false));
    let v = |t: &Tensor| t.view([1, 3, 1, 1]);
    let want =
        (&x - v(&rm)) / (v(&rv) + 1e-5).sqrt() * v(&bn.weight.detach()) + v(&bn.bias.detach());
    assert!(max_abs_diff(&e, &want) < 1e-5);
    assert!(max_abs_diff(&bn.running_mean, &rm) == 0.0);
    assert!(max_abs_diff(&bn.running_var, &rv) == 0.0);
}

/// In a BN model, evaluation does not depend on the rest of the batch; training does.
#[test]
fn bn_model_eval_is_per_example_train_is_per_batch() {
    let init = Init::new(14, (0.2, 0.5));
    let net = models::build("vgg-narrow", [1, 28, 28], 10, init, Device::Cpu).unwrap();
    assert_eq!(net.buffers().len(), 12);
    let (x, _) = batch(14, 6, [1, 28, 28], 10);
    let eff: Vec<Tensor> = net.masked().iter().map(|m| m.effective()).collect();
    let first = x.narrow(0, 0, 1);
    let alone = net.forward(&first);
    let with_others = net.forward(&x).narrow(0, 0, 1);
    assert!(max_abs_diff(&alone, &with_others) < 1e-4);
    let t_two = tch::no_grad(|| net.forward_with(&x.narrow(0, 0, 2), &eff, true));
    let t_all = tch::no_grad(|| net.forward_with(&x, &eff, true));
    assert!(max_abs_diff(&t_two.narrow(0, 0, 1), &t_all.narrow(0, 0, 1)) > 1e-4);
    // Training forwards moved the running statistics away from their initial values.
    let (_, rm) = &net.buffers()[0];
    assert!(rm.abs().sum(Kind::Float).double_value(&[]) > 0.0);
}

/// Prunable weights N of every model (spec §5), built for real at their CIFAR / Fashion-MNIST
/// shapes, with unique tensor names.
#[test]
fn model_prunable_counts_match_the_spec() {
    let cases: &[(&str, [i64; 3], i64, usize)] = &[
        ("resnet50", [3, 32, 32], 10, 23_467_712),
        ("resnet50", [3, 32, 32], 100, 23_652_032),
        ("vgg19", [3, 32, 32], 10, 20_024_000),
        ("vgg19", [3, 32, 32], 100, 20_070_080),
        ("resnet20", [3, 32, 32], 10, 270_896),
        ("resnet20", [1, 28, 28], 10, 270_608),
        ("vgg-narrow", [1, 28, 28], 10, 282_512),
        ("lenet5", [1, 28, 28], 10, 61_470),
        ("lenet5", [3, 32, 32], 10, 61_770),
        ("lenet300", [1, 28, 28], 10, 266_200),
    ];
    for &(name, shape, classes, n) in cases {
        let net = models::build(name, shape, classes, INIT, Device::Cpu).unwrap();
        assert_eq!(net.prunable(), n, "{name} {shape:?} {classes}");
        assert_eq!(net.arch(), name);
        assert_eq!(net.input_shape(), shape);
        let mut names = HashSet::new();
        for t in hf_engine::checkpoint::named_tensors(net.as_ref(), None) {
            assert!(
                names.insert(t.0.clone()),
                "{name}: duplicate tensor {}",
                t.0
            );
        }
        if name == "resnet50" {
            // 49 convs + 4 projection shortcuts + the classifier, all prunable.
            assert_eq!(net.masked().len(), 54);
            assert!(net
                .masked()
                .iter()
                .any(|m| m.name == "layer1.0.shortcut.conv"));
            assert_eq!(net.masked()[0].w.size(), [64, 3, 3, 3]);
        }
    }
    for m in models::MODELS {
        let net = (m.build)(m.input, 10, INIT, Device::Cpu).unwrap();
        assert_eq!(net.arch(), m.name);
        for alias in m.aliases {
            assert_eq!(models::canonical(alias), Some(m.name));
            assert_eq!(
                models::build(alias, m.input, 10, INIT, Device::Cpu)
                    .unwrap()
                    .arch(),
                m.name
            );
        }
    }
    assert_eq!(models::canonical("vgg21"), None);
}

#[test]
fn unknown_or_too_small_models_give_one_line_errors() {
    let e = models::build("vgg21", [3, 32, 32], 10, INIT, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("vgg21") && e.contains("hyperflux models"), "{e}");
    let e = models::build("vgg19", [3, 8, 8], 10, INIT, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("16x16") && !e.contains('\n'), "{e}");
    let e = models::build("lenet5", [1, 8, 8], 10, INIT, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("lenet5"), "{e}");
}

fn cifar_common(dir: &Path, out: &Path, model: &str, seed: u64) -> CommonConfig {
    CommonConfig {
        model: model.into(),
        dataset: "cifar10".into(),
        data_dir: Some(dir.to_path_buf()),
        seed,
        batch_size: 32,
        threads: 1,
        out_dir: out.to_path_buf(),
        augment: true,
        ..CommonConfig::default()
    }
}

fn sgd() -> OptimConfig {
    OptimConfig {
        kind: "sgd".into(),
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 5e-4,
    }
}

/// The CIFAR recipe's augmentation reaches the engine (crop with padding 4 + flip) and is a
/// pure function of (seed, epoch).
#[test]
fn cifar_training_batches_are_augmented_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    hf_data::synth::write_cifar_dataset(dir.path(), DatasetKind::Cifar10, 64, 16, 3).unwrap();
    let common = cifar_common(dir.path(), dir.path(), "lenet5", 4);
    let data = trainer::load_data(&common).unwrap();
    let runner = trainer::EpochRunner::new(&common, &data, Device::Cpu);
    assert_eq!(runner.batch.augment, Some(Augment::CIFAR));
    let first = |seed: u64, epoch: u64, cfg: &hf_data::BatchConfig| {
        hf_data::batches(&data.train, cfg, seed, epoch)
            .next()
            .unwrap()
    };
    let a = first(4, 1, &runner.batch);
    assert_eq!(a, first(4, 1, &runner.batch));
    assert_ne!(a.x, first(4, 2, &runner.batch).x);
    let plain = hf_data::BatchConfig {
        augment: None,
        ..runner.batch
    };
    let p = first(4, 1, &plain);
    assert_eq!(a.y, p.y, "same order, same labels");
    assert_ne!(a.x, p.x, "augmentation changed the pixels");
}

/// Dense training then Hyperflux pruning of a BN conv net on generated CIFAR-10 files: density
/// falls, the checkpoint round-trips (masks, BN statistics), training is reproducible, and a
/// checkpoint of another input shape is refused with one line.
#[test]
fn conv_net_trains_and_prunes_on_generated_cifar_files() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("cifar");
    std::fs::create_dir_all(&data_dir).unwrap();
    hf_data::synth::write_cifar_dataset(&data_dir, DatasetKind::Cifar10, 256, 128, 7).unwrap();
    let dense = |out: &str, seed: u64| {
        let cfg = TrainConfig {
            common: cifar_common(&data_dir, &dir.path().join(out), "vgg-narrow", seed),
            optimizer: sgd(),
            epochs: 2,
            lr_divisor: 30.0,
            from: None,
        };
        trainer::train_dense(&cfg, None, &mut trainer::Quiet).unwrap()
    };
    let d1 = dense("dense", 1);
    let d2 = dense("dense-again", 1);
    assert_eq!(d1.records.len(), 2);
    assert_eq!(d1.density, 100.0);
    assert_eq!(d1.test_accuracy, d2.test_accuracy);
    assert_eq!(d1.records[1].data_loss, d2.records[1].data_loss);
    let ck1 = Checkpoint::load(&d1.checkpoint).unwrap();
    let ck2 = Checkpoint::load(&d2.checkpoint).unwrap();
    let n1 = trainer::load_network(&ck1, Device::Cpu).unwrap();
    let n2 = trainer::load_network(&ck2, Device::Cpu).unwrap();
    for (a, b) in n1.masked().iter().zip(n2.masked()) {
        assert_eq!(max_abs_diff(&a.w, &b.w), 0.0, "{}", a.name);
    }

    let cfg = PruneConfig {
        common: cifar_common(&data_dir, &dir.path().join("prune"), "vgg-narrow", 1),
        from: Some(d1.checkpoint.clone()),
        target_sparsity: Some(90.0),
        pruning_epochs: 4,
        regrowth_epochs: 1,
        optimizer: sgd(),
        mask_lr: 0.05,
        controller_step: 0.2,
        ..PruneConfig::default()
    };
    let o = trainer::prune(&cfg, None, &mut trainer::Quiet).unwrap();
    assert_eq!(o.records.len(), 5);
    assert!(o.density < 90.0, "density {}", o.density);
    assert!(o.records[3].density < o.records[0].density);
    assert_eq!(o.target_density, Some(10.0));
    // Round trip: the saved net has the same density, accuracy and BN statistics.
    let ck = Checkpoint::load(&o.checkpoint).unwrap();
    let net = trainer::load_network(&ck, Device::Cpu).unwrap();
    let d = hf_engine::masked::DensityReport::of(net.masked()).density();
    assert!((d - o.density).abs() < 1e-9);
    let data = trainer::load_data(&cfg.common).unwrap();
    let (acc, _) = trainer::test_accuracy(net.as_ref(), &data.test, Device::Cpu, 0.1);
    assert_eq!(acc, o.test_accuracy);
    for (name, t) in net.buffers() {
        if name.ends_with("running_var") {
            assert!(
                max_abs_diff(&t, &t.ones_like()) > 0.0,
                "{name} never updated"
            );
        }
    }

    // A 3-channel checkpoint cannot seed a 1-channel (Fashion-MNIST-shaped) run.
    let idx_dir = dir.path().join("idx");
    std::fs::create_dir_all(&idx_dir).unwrap();
    hf_data::synth::write_idx_dataset(&idx_dir, 64, 32, false, 1).unwrap();
    let mut bad = cfg.clone();
    bad.common.dataset = "fashion-mnist".into();
    bad.common.data_dir = Some(idx_dir);
    bad.common.out_dir = dir.path().join("bad");
    let e = trainer::prune(&bad, None, &mut trainer::Quiet)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("shape") && !e.contains('\n'), "{e}");
}
