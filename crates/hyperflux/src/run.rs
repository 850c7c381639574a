//! Command dispatch; the configs of `train` and `prune` (defaults ← TOML file ← flags, resolved
//! by `flags.rs`); running and reporting them and the small commands.

use crate::cli::*;
use crate::flags::{self, set, RunFlags, TrainerFlags};
use crate::progress::Progress;
use crate::report;
use anyhow::{bail, Context, Result};
use hf_core::config::{CommonConfig, PruneConfig, RegrowthPressure, TrainConfig};
use hf_core::preprocess::Normalize;
use hf_core::pressure::Trajectory;
use hf_engine::checkpoint::Checkpoint;
use hf_engine::masked::DensityReport;
use hf_engine::trainer::{self, Outcome};

/// Runs a parsed command line.
pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Train(a) => train(&a),
        Cmd::Prune(a) => prune(&a),
        Cmd::Schedule(a) => schedule(&a),
        Cmd::Eval(a) => eval(&a),
        Cmd::Bench(a) => crate::bench::run(&a),
        Cmd::Models(a) => models(&a),
        Cmd::Law(a) => crate::law_cmd::law(&a),
        Cmd::Fit(a) => crate::law_cmd::fit(&a),
        Cmd::Converge(a) => crate::law_cmd::converge(&a),
        Cmd::Frontier(a) => crate::frontier_cmd::frontier(&a),
        Cmd::Export(a) => crate::export_cmd::export(&a),
        Cmd::Infer(a) => crate::export_cmd::infer(&a),
        Cmd::BenchInfer(a) => crate::export_cmd::bench_infer(&a),
    }
}

/// Sets `cfg_from` from `--from` and, unless `--model` was given, the model from the file's
/// architecture (train, prune).
fn start_from(
    cfg_from: &mut Option<std::path::PathBuf>,
    model: &mut String,
    from: Option<&std::path::Path>,
    run: &RunFlags,
) -> Result<()> {
    if let Some(f) = from {
        *cfg_from = Some(f.to_path_buf());
        if run.model.is_none() {
            *model = model_of(f)?;
        }
    }
    Ok(())
}

/// The dense-training config of `hyperflux train`.
pub fn train_config(a: &TrainArgs) -> Result<TrainConfig> {
    let mut cfg: TrainConfig = flags::read_config(a.run.config.as_deref())?;
    a.run.apply(&mut cfg.common, &mut cfg.optimizer)?;
    a.trainer.apply(&mut cfg.common, &mut cfg.optimizer);
    set(&mut cfg.epochs, &a.epochs);
    start_from(
        &mut cfg.from,
        &mut cfg.common.model,
        a.from.as_deref(),
        &a.run,
    )?;
    cfg.validate()?;
    Ok(cfg)
}

/// The pruning config of `hyperflux prune`.
pub fn prune_config(a: &PruneArgs) -> Result<PruneConfig> {
    let mut cfg: PruneConfig = flags::read_config(a.run.config.as_deref())?;
    a.run.apply(&mut cfg.common, &mut cfg.optimizer)?;
    a.trainer.apply(&mut cfg.common, &mut cfg.optimizer);
    start_from(
        &mut cfg.from,
        &mut cfg.common.model,
        a.from.as_deref(),
        &a.run,
    )?;
    if let Some(m) = &a.method {
        cfg.method = m
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--method {m}: {e}"))?;
    }
    if let Some(p) = a.pressure {
        cfg.pressure = Some(p);
        cfg.target_sparsity = None;
    }
    if let Some(s) = a.target_sparsity {
        cfg.target_sparsity = Some(s);
        cfg.pressure = None;
    }
    set(&mut cfg.pruning_epochs, &a.pruning_epochs);
    set(&mut cfg.regrowth_epochs, &a.regrowth_epochs);
    a.mask.apply(&mut cfg.mask_lr, &mut cfg.ste_scale);
    set(&mut cfg.mask_lr_decay, &a.mask_lr_decay);
    set(&mut cfg.controller_step, &a.controller_step);
    set(&mut cfg.regrowth_lr_start, &a.regrowth_lr);
    set(&mut cfg.regrowth_lr_end, &a.regrowth_lr_end);
    if let Some(r) = &a.regrowth_pressure {
        cfg.regrowth_pressure = match r.as_str() {
            "hold" => RegrowthPressure::Hold,
            "zero" => RegrowthPressure::Zero,
            other => bail!("--regrowth-pressure {other}: use hold or zero"),
        };
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The architecture a starting file holds (`arch` of a checkpoint, `onnx:<name>` of an ONNX
/// model), so `--from` alone picks the model.
fn model_of(path: &std::path::Path) -> Result<String> {
    let ck = Checkpoint::load(path)?;
    Ok(ck.meta_str("arch")?.to_string())
}

fn load_resume(a: &TrainerFlags) -> Result<Option<Checkpoint>> {
    a.resume.as_ref().map(|p| load_checkpoint(p)).transpose()
}

/// Loads a checkpoint, with a note on stderr when it has no checksum to verify.
pub fn load_checkpoint(p: &std::path::Path) -> Result<Checkpoint> {
    Ok(Checkpoint::load_noted(p, |n| eprintln!("note: {n}"))?)
}

fn summarise(what: &str, o: &Outcome, dir: &std::path::Path) -> Result<()> {
    let plots = report::plot_run(dir, &o.records, what).context("drawing the run's plots")?;
    let done = o.records.last().map(|r| r.epoch).unwrap_or(0);
    if done < o.total_epochs {
        println!(
            "stopped after epoch {done} of {}: continue with --resume {}",
            o.total_epochs,
            o.checkpoint.display()
        );
    }
    let val = o
        .val_accuracy
        .map(|v| format!("validation accuracy {v:.2}%, "))
        .unwrap_or_default();
    println!(
        "{what}: {val}test accuracy {:.2}%, density {:.3}% ({:.1}s)",
        o.test_accuracy, o.density, o.seconds
    );
    if let Some(s) = &o.snap {
        println!("{}", s.describe());
    }
    // A stopped run is not yet judged against its target.
    if let Some(t) = o.target_density.filter(|_| done >= o.total_epochs) {
        let rel = (o.density - t) / t;
        let tol = 100.0 * o.density_tolerance;
        println!(
            "target density {t:.3}%: final density is {:+.1}% relative to it ({})",
            100.0 * rel,
            if rel.abs() <= o.density_tolerance {
                format!("within ±{tol}%")
            } else {
                format!("OUTSIDE ±{tol}%")
            }
        );
    }
    println!("checkpoint: {}", o.checkpoint.display());
    println!("records:    {}", o.records_csv.display());
    for p in plots {
        println!("plot:       {}", p.display());
    }
    Ok(())
}

fn train(a: &TrainArgs) -> Result<()> {
    let resume = load_resume(&a.trainer)?;
    let cfg = if resume.is_some() {
        TrainConfig::default()
    } else {
        train_config(a)?
    };
    let mut obs = Progress::new(a.run.quiet, a.trainer.stop_after);
    let o = trainer::train_dense(&cfg, resume.as_ref(), &mut obs)?;
    let dir = o
        .checkpoint
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    summarise("dense training", &o, &dir)
}

fn prune(a: &PruneArgs) -> Result<()> {
    let resume = load_resume(&a.trainer)?;
    let cfg = if resume.is_some() {
        PruneConfig::default()
    } else {
        prune_config(a)?
    };
    if let Some(from) = cfg.from.as_ref().filter(|_| resume.is_none()) {
        note_data_mismatch(from, &cfg.common);
    }
    let mut obs = Progress::new(a.run.quiet, a.trainer.stop_after);
    let o = trainer::prune(&cfg, resume.as_ref(), &mut obs)?;
    let dir = o
        .checkpoint
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let what = match o.method.unwrap_or_default() {
        hf_core::config::PruneMethod::Hyperflux => "hyperflux pruning".to_string(),
        m => format!("{m} pruning"),
    };
    summarise(&what, &o, &dir)
}

/// Warns when pruning starts from a dense checkpoint trained on other data or with another
/// normalisation (the pruning run uses its own `--dataset` / `--normalize`).
fn note_data_mismatch(from: &std::path::Path, c: &CommonConfig) {
    let Ok(d) = Checkpoint::load(from).and_then(|ck| trainer::checkpoint_data(&ck)) else {
        return; // the run itself reports an unreadable checkpoint
    };
    let show = |n: &Option<Normalize>| n.as_ref().map_or("default".into(), |n| n.to_string());
    let spec = |s: &str| s.parse::<hf_data::DatasetSpec>().ok();
    let same_data = match (spec(&d.dataset), spec(&c.dataset)) {
        (Some(x), Some(y)) => x == y,
        _ => d.dataset == c.dataset,
    };
    if !same_data || d.normalize != c.normalize {
        eprintln!(
            "note: {} was trained on {} (normalize {}) but this run uses {} (normalize {}); pass --dataset and --normalize to match",
            from.display(),
            d.dataset,
            show(&d.normalize),
            c.dataset,
            show(&c.normalize)
        );
    }
}

fn schedule(a: &ScheduleArgs) -> Result<()> {
    let t = Trajectory::with_aggressivity(a.target_sparsity, a.epochs, a.aggressivity)?;
    let pts = t.points();
    if a.json {
        let v = serde_json::json!({
            "target_sparsity": a.target_sparsity,
            "target_density": t.target_density,
            "epochs": t.epochs,
            "aggressivity": t.aggressivity,
            "r0": t.r0,
            "expected_density": pts,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "target sparsity {}% (density {:.4}%), P = {}, aggressivity {}: r0 = {:.9}",
        a.target_sparsity, t.target_density, t.epochs, t.aggressivity, t.r0
    );
    println!("{:>6} {:>10} {:>12}", "epoch", "r(e)", "E(t) %");
    for (e, d) in pts.iter().enumerate() {
        let r = if e == 0 { f64::NAN } else { t.factor(e) };
        println!("{e:>6} {r:>10.6} {d:>12.4}");
    }
    Ok(())
}

fn eval(a: &EvalArgs) -> Result<()> {
    let ck = load_checkpoint(&a.checkpoint)?;
    let dev = hf_engine::device::resolve(&a.device)?;
    hf_engine::device::set_threads(0);
    let net = trainer::load_network(&ck, dev)?;
    let mut common = match (&a.dataset, ck.meta.contains_key("dataset")) {
        (_, true) => trainer::checkpoint_data(&ck)?,
        (Some(_), false) => CommonConfig::default(),
        (None, false) => bail!(
            "{} does not say which dataset it was trained on: pass --dataset (mnist, fashion-mnist, cifar10, cifar100, npy:DIR)",
            a.checkpoint.display()
        ),
    };
    if let Some(d) = &a.dataset {
        common.dataset = d.clone();
    }
    common.data_dir = a.data_dir.clone();
    let test = trainer::load_test(&common, Some(net.classes() as usize))?;
    if !net.accepts_input(trainer::input_shape(&test)) {
        bail!(
            "{} ({}) expects inputs of shape {:?} but {} holds {:?}: evaluate it on the data it was trained on",
            a.checkpoint.display(),
            net.arch(),
            net.input_shape(),
            test.source,
            trainer::input_shape(&test)
        );
    }
    let (acc, loss) = trainer::test_accuracy(net.as_ref(), &test, dev, 0.1);
    if let Some(p) = &a.logits {
        write_logits(net.as_ref(), &test, dev, p)?;
    }
    let d = DensityReport::of(net.masked());
    if a.json {
        let layers: Vec<_> = d
            .layers
            .iter()
            .map(|(n, p, t)| serde_json::json!({"layer": n, "present": p, "total": t, "density": 100.0 * *p as f64 / *t as f64}))
            .collect();
        let v = serde_json::json!({
            "checkpoint": a.checkpoint, "arch": net.arch(), "dataset": common.dataset,
            "test_accuracy": acc, "test_loss": loss, "density": d.density(),
            "present": d.present(), "total": d.total(), "layers": layers,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} on {}: test accuracy {acc:.2}% (loss {loss:.4})",
        net.arch(),
        common.dataset
    );
    println!(
        "{:<10} {:>10} {:>10} {:>9}",
        "layer", "present", "total", "density"
    );
    for (n, p, t) in &d.layers {
        println!(
            "{n:<10} {p:>10} {t:>10} {:>8.3}%",
            100.0 * *p as f64 / *t as f64
        );
    }
    println!(
        "{:<10} {:>10} {:>10} {:>8.3}%",
        "total",
        d.present(),
        d.total(),
        d.density()
    );
    Ok(())
}

/// Writes the engine's logits for every test image as CSV (the runtime's `infer --logits`
/// writes the same layout, so the two can be compared).
fn write_logits(
    net: &dyn hf_engine::network::Network,
    test: &hf_data::Dataset,
    dev: tch::Device,
    path: &std::path::Path,
) -> Result<()> {
    let shape = trainer::input_shape(test);
    let cfg = hf_data::BatchConfig::eval(1000);
    let mut rows: Vec<Vec<f32>> = Vec::with_capacity(test.len());
    for b in hf_data::batches(test, &cfg, 0, 0) {
        let (x, _) = trainer::to_tensors(&b, shape, dev);
        let logits = net.forward(&x).to_device(tch::Device::Cpu).contiguous();
        let k = logits.size()[1] as usize;
        let flat = hf_engine::network::to_vec_f32(&logits);
        rows.extend(flat.chunks(k).map(|c| c.to_vec()));
    }
    hf_core::fsutil::atomic_write(path, |w| {
        for r in &rows {
            let s: Vec<String> = r.iter().map(|v| v.to_string()).collect();
            writeln!(w, "{}", s.join(","))?;
        }
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

fn models(a: &ModelsArgs) -> Result<()> {
    println!("{:<12} {:<14} {:>12}", "model", "input", "prunable");
    for m in hf_engine::models::MODELS {
        let init = hf_engine::init::Init::new(0, (0.2, 0.5));
        let net = (m.build)(m.input, a.classes, init, tch::Device::Cpu)?;
        println!(
            "{:<12} {:<14} {:>12}",
            m.name,
            format!("{:?}", m.input),
            net.prunable()
        );
    }
    Ok(())
}
