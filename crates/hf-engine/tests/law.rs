//! The law measurements on tiny synthetic data: pruning counts and thresholds, monotone densities,
//! the doubling pressure ladder with its flux statistics, the one-shot control, convergence runs,
//! reproducibility and settings validation.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hf_core::config::{CommonConfig, TrainConfig};
use hf_engine::init::Init;
use hf_engine::law::{self, ConvergeConfig, Family, LawConfig, LawSample, TaylorScore};
use hf_engine::mlp::Mlp;
use hf_engine::network::{to_vec_f32, Network};
use hf_engine::trainer::{self, Quiet};
use tch::Device;

/// Synthetic MNIST-format data (512 train / 256 test) and a dense checkpoint trained on it for
/// two epochs, made once per test binary.
struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    dense: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        hf_data::synth::write_idx_dataset(&data, 512, 256, false, 7).unwrap();
        let cfg = TrainConfig {
            common: common(&data, &dir.path().join("dense")),
            epochs: 2,
            ..TrainConfig::default()
        };
        let o = trainer::train_dense(&cfg, None, &mut Quiet).unwrap();
        assert!(o.test_accuracy > 50.0, "dense accuracy {}", o.test_accuracy);
        Fixture {
            dense: o.checkpoint,
            data,
            _dir: dir,
        }
    })
}

fn common(data: &Path, out: &Path) -> CommonConfig {
    CommonConfig {
        data_dir: Some(data.to_path_buf()),
        out_dir: out.to_path_buf(),
        threads: 1,
        seed: 3,
        batch_size: 128,
        ..CommonConfig::default()
    }
}

fn law_cfg(family: Family) -> LawConfig {
    let f = fixture();
    LawConfig {
        common: common(&f.data, &f.data.join("unused")),
        from: Some(f.dense.clone()),
        family: Some(family),
        ..LawConfig::default()
    }
}

fn measure(cfg: &LawConfig) -> (law::LawOutcome, Vec<LawSample>) {
    let mut seen = Vec::new();
    let o = law::measure(cfg, &mut Quiet, &mut |s| seen.push(s.clone())).unwrap();
    (o, seen)
}

fn extra(s: &LawSample, name: &str) -> f64 {
    s.extras
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", s.extras))
        .1
}

const LENET_N: usize = 784 * 300 + 300 * 100 + 100 * 10;

/// Present weights after `k` steps that each remove `round(rate · present)`.
fn expected_present(n: usize, rate: f64, k: usize) -> usize {
    (0..k).fold(n, |p, _| p - ((rate * p as f64).round() as usize).max(1))
}

#[test]
fn prune_lowest_removes_the_fraction_and_reports_the_largest_removed_score() {
    // Some masks start negative: those weights are absent and must stay so.
    let init = Init::new(11, (-0.2, 0.5));
    let net = Mlp::new("t", [1, 6, 6], &[30, 20], 5, init, Device::Cpu);
    for step in 0..4 {
        let w: Vec<Vec<f32>> = net.masked().iter().map(|m| to_vec_f32(&m.w)).collect();
        let before: Vec<Vec<f32>> = net.masked().iter().map(|m| to_vec_f32(&m.m)).collect();
        let present: usize = before.iter().flatten().filter(|m| **m >= 0.0).count();
        let scores = law::magnitude_scores(&net);
        let ps = law::prune_lowest(&net, &scores, 0.15).unwrap();
        let want = (0.15 * present as f64).round() as usize;
        assert_eq!(ps.removed, want, "step {step}");
        assert_eq!(ps.present_before, present);
        assert_eq!(ps.present_after, present - want);
        let after: Vec<Vec<f32>> = net.masked().iter().map(|m| to_vec_f32(&m.m)).collect();
        let (mut removed_max, mut kept_min, mut n_removed, mut n_kept) = (0f32, f32::MAX, 0, 0);
        for l in 0..w.len() {
            for i in 0..w[l].len() {
                let (b, a) = (before[l][i] >= 0.0, after[l][i] >= 0.0);
                assert!(b || !a, "an absent weight came back");
                if b && !a {
                    removed_max = removed_max.max(w[l][i].abs());
                    n_removed += 1;
                } else if a {
                    kept_min = kept_min.min(w[l][i].abs());
                    n_kept += 1;
                }
            }
        }
        assert_eq!(n_removed, want);
        assert_eq!(n_kept, present - want);
        assert_eq!(
            ps.threshold, removed_max as f64,
            "threshold = largest removed |w|"
        );
        assert!(
            kept_min >= removed_max,
            "a kept weight is smaller than a removed one"
        );
    }
    // Wrong number of score tensors is an error, not a panic.
    assert!(law::prune_lowest(&net, &law::magnitude_scores(&net)[..1], 0.1).is_err());
}

#[test]
fn magnitude_imp_records_thresholds_densities_and_accuracies() {
    let mut cfg = law_cfg(Family::Magnitude);
    cfg.rate = 0.2;
    cfg.steps = 4;
    cfg.finetune_epochs = 1;
    let (o, seen) = measure(&cfg);
    assert_eq!(o.samples, seen, "on_point sees every sample, in order");
    assert_eq!(o.prunable, LENET_N);
    assert_eq!(o.samples.len(), 4);
    assert_eq!(o.epochs, 4);
    assert!(o.stopped_early.is_none());
    for (k, s) in o.samples.iter().enumerate() {
        let want = 100.0 * expected_present(LENET_N, 0.2, k + 1) as f64 / LENET_N as f64;
        assert!(
            (s.remaining - want).abs() < 1e-9,
            "{} vs {want}",
            s.remaining
        );
        assert_eq!(extra(s, "Step"), (k + 1) as f64);
        assert_eq!(s.epoch, Some((k + 1) as f64));
        assert!(s.saliency > 0.0 && s.saliency.is_finite());
        let names: Vec<&str> = s.extras.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["Step", "Removed", "AccuracyPruned", "AccuracyFinetuned"]
        );
    }
    for w in o.samples.windows(2) {
        assert!(
            w[1].remaining < w[0].remaining,
            "densities strictly decrease"
        );
        // Accuracy is taken before each step: the previous step's fine-tuned accuracy.
        assert_eq!(w[1].accuracy, extra(&w[0], "AccuracyFinetuned"));
    }
    assert_eq!(o.samples[0].accuracy, o.dense_accuracy);
}

#[test]
fn taylor_prunes_the_same_schedule_with_positive_scores() {
    for mode in [TaylorScore::AbsOfMean, TaylorScore::MeanOfAbs] {
        let mut cfg = law_cfg(Family::Taylor);
        cfg.rate = 0.3;
        cfg.steps = 3;
        cfg.finetune_epochs = 0;
        cfg.taylor_batches = 2;
        cfg.taylor_score = mode;
        let (o, _) = measure(&cfg);
        assert_eq!(o.samples.len(), 3);
        assert_eq!(o.epochs, 0);
        for (k, s) in o.samples.iter().enumerate() {
            let want = 100.0 * expected_present(LENET_N, 0.3, k + 1) as f64 / LENET_N as f64;
            assert!((s.remaining - want).abs() < 1e-9, "{mode:?}");
            assert!(s.saliency >= 0.0 && s.saliency.is_finite());
            // Without fine-tuning nothing changes between steps but the masks: the pruned and
            // fine-tuned accuracies coincide.
            assert_eq!(extra(s, "AccuracyPruned"), extra(s, "AccuracyFinetuned"));
        }
        for w in o.samples.windows(2) {
            assert!(w[1].remaining < w[0].remaining, "{mode:?}");
        }
    }
}

#[test]
fn l0_ladder_doubles_the_pressure_and_measures_survivor_flux() {
    let mut cfg = law_cfg(Family::L0);
    cfg.start_exponent = -1;
    cfg.blocks = 4;
    cfg.block_epochs = 1;
    cfg.mask_lr = 0.05;
    let (o, _) = measure(&cfg);
    assert_eq!(o.samples.len(), 4);
    assert_eq!(o.epochs, 4);
    let lambdas: Vec<f64> = o.samples.iter().map(|s| s.saliency).collect();
    assert_eq!(lambdas, [0.5, 1.0, 2.0, 4.0]);
    for (j, s) in o.samples.iter().enumerate() {
        assert_eq!(s.epoch, Some((j + 1) as f64));
        assert_eq!(extra(s, "Pressure"), s.saliency);
        assert_eq!(extra(s, "Exponent"), (j as f64) - 1.0);
        let eq = extra(s, "EquilibriumFlux");
        assert!((eq - s.saliency / (0.25 * LENET_N as f64)).abs() < 1e-15);
        let (min, q, med) = (
            extra(s, "MinFlux"),
            extra(s, "QuantileFlux"),
            extra(s, "MedianFlux"),
        );
        assert!(min <= q && q <= med, "{min} {q} {med}");
        assert!(min.is_finite() && med.is_finite());
        let (rmin, rq, rmed) = (
            extra(s, "MinRmsFlux"),
            extra(s, "QuantileRmsFlux"),
            extra(s, "MedianRmsFlux"),
        );
        // Zero for weights that never get a gradient (e.g. into a dead unit).
        assert!(
            0.0 <= rmin && rmin <= rq && rq <= rmed && rmed > 0.0,
            "{rmin} {rq} {rmed}"
        );
        let below = extra(s, "BelowEquilibrium");
        assert!((0.0..=100.0).contains(&below));
        assert!(s.remaining > 0.0 && s.remaining <= 100.0);
    }
    // A strong mask learning rate and rising pressure prune: density falls below 100%.
    assert!(o.samples[3].remaining < 100.0);
    assert!(o.samples[3].remaining <= o.samples[0].remaining);
}

#[test]
fn l0_blocks_end_early_once_the_density_settles() {
    let mut cfg = law_cfg(Family::L0);
    cfg.start_exponent = -1;
    cfg.blocks = 2;
    cfg.block_epochs = 3;
    cfg.mask_lr = 0.05;
    // Without a tolerance every block runs its epochs.
    let (o, _) = measure(&cfg);
    assert_eq!(o.epochs, 6);
    for s in &o.samples {
        assert_eq!(extra(s, "BlockEpochs"), 3.0);
        assert!(extra(s, "LastChange") >= 0.0);
    }
    // A tolerance no change can reach ends every block after its first epoch, and the flux
    // of that epoch is what the point records.
    cfg.block_tolerance = 1e9;
    let (o, _) = measure(&cfg);
    assert_eq!(o.epochs, 2);
    assert_eq!(o.samples.len(), 2);
    for (j, s) in o.samples.iter().enumerate() {
        assert_eq!(extra(s, "BlockEpochs"), 1.0);
        assert_eq!(s.epoch, Some((j + 1) as f64));
        assert!(extra(s, "MinFlux").is_finite());
        assert!(extra(s, "MedianRmsFlux") > 0.0);
    }
}

#[test]
fn flux_stats_use_survivors_only() {
    let net = Mlp::new(
        "t",
        [1, 2, 2],
        &[3],
        2,
        Init::new(2, (0.2, 0.5)),
        Device::Cpu,
    );
    // Prune half by magnitude, then give every pruned weight a huge negative flux: the
    // statistics must not see it.
    law::prune_lowest(&net, &law::magnitude_scores(&net), 0.5).unwrap();
    let flux: Vec<tch::Tensor> = net
        .masked()
        .iter()
        .map(|m| {
            let present = m.m.ge(0.0).to_kind(tch::Kind::Float);
            // survivors: 2·w² summed over 2 steps → mean w²; pruned: −1000
            &m.w * &m.w * 2.0 * &present - (1.0 - &present) * 1000.0
        })
        .collect();
    let fs = law::flux_stats(&net, &flux, 2, 0.0, 1e-12).unwrap();
    let survivors: Vec<f32> = net
        .masked()
        .iter()
        .flat_map(|m| {
            let w = to_vec_f32(&m.w);
            let k = to_vec_f32(&m.m);
            w.into_iter()
                .zip(k)
                .filter(|(_, k)| *k >= 0.0)
                .map(|(w, _)| w * w)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(fs.survivors, survivors.len());
    let min = survivors.iter().cloned().fold(f32::MAX, f32::min) as f64;
    assert!((fs.min - min).abs() < 1e-6, "{} vs {min}", fs.min);
    assert_eq!(fs.quantile, fs.min);
    assert!(fs.min > 0.0);
    assert!(law::flux_stats(&net, &flux, 0, 0.1, 0.0).is_none());
    // RMS over 2 steps of a flux sum of squares 2·w⁴ on survivors is w².
    let sq: Vec<tch::Tensor> = flux.iter().map(|f| f * f / 2.0).collect();
    let r = law::rms_flux_stats(&net, &sq, 2, 0.0).unwrap();
    assert_eq!(r.survivors, survivors.len());
    assert!((r.min - min).abs() < 1e-6, "{} vs {min}", r.min);
    assert!(law::rms_flux_stats(&net, &sq, 0, 0.0).is_none());
}

#[test]
fn one_shot_control_follows_the_dense_magnitude_distribution() {
    let mut cfg = law_cfg(Family::Oneshot);
    cfg.rate = 0.25;
    cfg.steps = 6;
    let (o, _) = measure(&cfg);
    assert_eq!(o.samples.len(), 6);
    assert_eq!(o.epochs, 0);
    for (k, s) in o.samples.iter().enumerate() {
        let keep = (LENET_N as f64 * 0.75f64.powi(k as i32 + 1)).round();
        assert!((s.remaining - 100.0 * keep / LENET_N as f64).abs() < 1e-9);
        assert_eq!(s.epoch, None);
    }
    for w in o.samples.windows(2) {
        assert!(w[1].saliency >= w[0].saliency);
        assert!(w[1].remaining < w[0].remaining);
    }
    // The first one-shot step removes the same weights as the first IMP step of the same rate
    // (both by magnitude of the dense net), so their thresholds agree.
    let mut imp = law_cfg(Family::Magnitude);
    imp.rate = 0.25;
    imp.steps = 1;
    imp.finetune_epochs = 0;
    let (i, _) = measure(&imp);
    assert_eq!(i.samples[0].saliency, o.samples[0].saliency);
    assert_eq!(i.samples[0].remaining, o.samples[0].remaining);
    assert_eq!(
        extra(&i.samples[0], "AccuracyPruned"),
        o.samples[0].accuracy
    );
}

#[test]
fn min_density_stops_early_and_runs_are_reproducible() {
    let mut cfg = law_cfg(Family::Magnitude);
    cfg.rate = 0.5;
    cfg.steps = 10;
    cfg.finetune_epochs = 1;
    cfg.min_density = 20.0;
    let (a, _) = measure(&cfg);
    assert_eq!(a.samples.len(), 3, "50% → 25% → 12.5% <= 20%");
    assert!(a.stopped_early.as_deref().unwrap().contains("min-density"));
    let (b, _) = measure(&cfg);
    assert_eq!(a.samples, b.samples, "same seed, same trajectory");
}

#[test]
fn converge_records_density_over_time_for_each_pressure() {
    let f = fixture();
    let cfg = ConvergeConfig {
        common: common(&f.data, &f.data.join("unused")),
        from: Some(f.dense.clone()),
        pressures: vec![0.01, 64.0],
        epochs: 2,
        mask_lr: 0.05,
        record_every: 2,
        ..ConvergeConfig::default()
    };
    let mut seen = 0;
    let traces = law::converge(&cfg, &mut Quiet, &mut |_| seen += 1).unwrap();
    assert_eq!(seen, 2);
    assert_eq!(traces.len(), 2);
    // 512 examples / 128 = 4 steps per epoch: samples at steps 0, 2, 4, 6, 8.
    for t in &traces {
        let steps: Vec<usize> = t.samples.iter().map(|s| s.step).collect();
        assert_eq!(steps, [0, 2, 4, 6, 8]);
        let epochs: Vec<f64> = t.samples.iter().map(|s| s.epoch).collect();
        assert_eq!(epochs, [0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(t.samples[0].density, 100.0);
        assert_eq!(t.samples.last().unwrap().density, t.final_density);
        assert_eq!(t.epochs.len(), 2);
        assert_eq!(t.epochs[1].1, t.final_density);
    }
    assert_eq!(traces[0].pressure, 0.01);
    assert!(
        traces[1].final_density < traces[0].final_density,
        "6400× the pressure prunes more: {} vs {}",
        traces[1].final_density,
        traces[0].final_density
    );
}

#[test]
fn settings_are_validated() {
    let mut cfg = LawConfig::default();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("family"), "{e}");
    cfg.family = Some(Family::Magnitude);
    cfg.rate = 1.0;
    assert!(cfg.validate().unwrap_err().to_string().contains("rate"));
    cfg.rate = 0.1;
    assert_eq!(cfg.validate().unwrap(), Family::Magnitude);
    cfg.family = Some(Family::L0);
    cfg.block_epochs = 0;
    assert!(cfg.validate().is_err());
    cfg.block_epochs = 2;
    cfg.block_tolerance = -1.0;
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("block_tolerance"));
    cfg.block_tolerance = 1.0;
    cfg.start_exponent = 29;
    cfg.blocks = 3;
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("start_exponent"));
    let c = ConvergeConfig {
        pressures: vec![1.0, -2.0],
        ..ConvergeConfig::default()
    };
    assert!(c.validate().unwrap_err().to_string().contains("pressures"));
    // Without a checkpoint a measurement is refused with a hint, not a panic.
    let mut m = LawConfig {
        family: Some(Family::Oneshot),
        ..LawConfig::default()
    };
    m.from = None;
    let e = law::measure(&m, &mut Quiet, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("--from"), "{e}");
    assert_eq!("imp".parse::<Family>().unwrap(), Family::Magnitude);
    assert!("bogus".parse::<Family>().is_err());
}

/// The per-family tables: help texts with the defaults of `LawConfig::default()`, file names,
/// and the L0 laws derived from measured flux.
#[test]
fn family_tables() {
    assert_eq!(
        law::FamilySetting::Blocks.help(),
        "l0: number of pressure blocks (points) [default: 13]"
    );
    assert_eq!(
        law::FamilySetting::TaylorScore.help(),
        "taylor: abs-of-mean (|w·ḡ|, ḡ the mean gradient over the batches) or mean-of-abs \
         (per-batch |w·g| averaged) [default: abs-of-mean]"
    );
    for s in law::FamilySetting::ALL {
        assert!(!s.families().is_empty() && s.help().ends_with(']'), "{s:?}");
    }
    let h = Family::choices_help();
    assert!(
        h.starts_with("Pruning family: l0 (Hyperflux pressure ladder), "),
        "{h}"
    );
    assert!(
        h.contains(", taylor (") && h.contains(" or oneshot ("),
        "{h}"
    );
    for f in Family::ALL {
        assert_eq!(f.name().parse::<Family>().unwrap(), f);
        assert_eq!(f.csv_file(), format!("{}.csv", f.name()));
    }
    assert_eq!(Family::L0.plot_stem(), "l0_law");
    assert!(Family::Magnitude.flux_laws().is_empty());
    let files: Vec<&str> = Family::L0.flux_laws().iter().map(|l| l.file).collect();
    assert_eq!(files, ["l0_flux.csv", "l0_rms_flux.csv"]);
    let point = |flux: f64| LawSample {
        epoch: Some(3.0),
        saliency: 0.5,
        remaining: 40.0,
        accuracy: 90.0,
        extras: vec![
            ("Pressure".to_string(), 0.5),
            ("QuantileFlux".to_string(), flux),
        ],
    };
    let derived = Family::L0.flux_laws()[0].points(&[point(0.25), point(0.0)]);
    assert_eq!(derived.len(), 1, "rows without a positive flux are dropped");
    assert_eq!(derived[0].saliency, 0.25);
    assert_eq!(
        derived[0].extras,
        [
            ("Pressure".to_string(), 0.5),
            ("QuantileFlux".to_string(), 0.25)
        ]
    );
}
