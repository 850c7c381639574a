//! The Neural Pruning Law commands (spec §4):
//! - `hyperflux law`: one measurement (L0 ladder, IMP, Taylor or the one-shot control) from a dense
//!   checkpoint, written as a law CSV plus its fits and plot;
//! - `hyperflux fit`: the power law on region 2 and the variable-exponent law on all points of
//!   any law CSVs (ours or the authors'), as a table or JSON, with one log–log plot;
//! - `hyperflux converge`: fixed-pressure Hyperflux for several λ, density over time, and the
//!   fit of final density against λ.
//!
//! Settings resolve as defaults ← `--config` TOML ← flags (the run flags of `flags.rs`, resolved
//! there, plus the shared start of `law` and `converge`, resolved once here), and are written next
//! to the outputs as `config.toml`.

use crate::flags::{self, set, MaskFlags, RunFlags};
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use clap::Args;
use hf_core::config::{self, CommonConfig, OptimConfig};
use hf_core::fsutil::{atomic_write, atomic_write_bytes};
use hf_core::records::{EpochRecord, RecordLog};
use hf_engine::law::{
    self, ConvergeConfig, ConvergeTrace, Family, FamilySetting, LawConfig, LawSample,
};
use hf_engine::trainer::Observer;
use hf_law::{FitOptions, FitReport, LawPoint, PowerFit};
use hf_plot::{Chart, Series, Style};
use serde_json::json;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The flags `law` and `converge` share: the run flags, the dense start and the Hyperflux mask
/// settings.
#[derive(Args, Debug, Clone, Default)]
pub struct LawRunArgs {
    #[command(flatten)]
    pub run: RunFlags,
    /// Dense checkpoint to start from (`hyperflux train` writes one). Its masks are ignored: the
    /// measurement starts dense. Required by `law`; `converge` starts from scratch without it.
    #[arg(long)]
    pub from: Option<PathBuf>,
    #[command(flatten)]
    pub mask: MaskFlags,
}

/// `hyperflux law`.
#[derive(Args, Debug, Clone)]
pub struct LawArgs {
    #[command(flatten)]
    pub shared: LawRunArgs,
    // The help of the family and its settings comes from the engine (`Family`,
    // `FamilySetting`), with the defaults of `LawConfig::default()`.
    #[arg(long, value_parser = parse_family, help = Family::choices_help())]
    pub family: Option<Family>,
    #[arg(long, allow_hyphen_values = true, help = FamilySetting::StartExponent.help())]
    pub start_exponent: Option<i32>,
    #[arg(long, help = FamilySetting::BlockEpochs.help())]
    pub block_epochs: Option<usize>,
    #[arg(long, help = FamilySetting::Blocks.help())]
    pub blocks: Option<usize>,
    #[arg(long, help = FamilySetting::BlockTolerance.help())]
    pub block_tolerance: Option<f64>,
    #[arg(long, help = FamilySetting::FluxQuantile.help())]
    pub flux_quantile: Option<f64>,
    #[arg(long, help = FamilySetting::Rate.help())]
    pub rate: Option<f64>,
    #[arg(long, help = FamilySetting::Steps.help())]
    pub steps: Option<usize>,
    #[arg(long, help = FamilySetting::FinetuneEpochs.help())]
    pub finetune_epochs: Option<usize>,
    #[arg(long, help = FamilySetting::MinDensity.help())]
    pub min_density: Option<f64>,
    #[arg(long, help = FamilySetting::TaylorBatches.help())]
    pub taylor_batches: Option<usize>,
    #[arg(long, value_parser = parse_taylor, help = FamilySetting::TaylorScore.help())]
    pub taylor_score: Option<law::TaylorScore>,
    /// Region 2 of the automatic fit, LO:HI in density percent (LO < s <= HI).
    #[arg(long, default_value = "0.5:50", value_parser = parse_region)]
    pub region2: (f64, f64),
}

/// `hyperflux fit`.
#[derive(Args, Debug, Clone)]
pub struct FitArgs {
    /// Law CSV files (columns Saliency and Remaining; Epoch(s), Accuracy and numeric extras are
    /// kept), or directories standing for their *.csv files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Region 2 of the power-law fit, LO:HI in density percent (LO < s <= HI).
    #[arg(long, default_value = "0.5:50", value_parser = parse_region)]
    pub region2: (f64, f64),
    /// Print the fits as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Plot path without extension; STEM.png and STEM.svg are written (default: law_fit in
    /// --out when given; without --plot or --out no plot is drawn).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Draw no plot.
    #[arg(long, conflicts_with = "plot")]
    pub no_plot: bool,
    /// Also write fit.txt and fit.json into this directory (the plot goes there too).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Drop rows whose Saliency or Remaining is <= 0 (listed as notes) instead of failing.
    #[arg(long)]
    pub skip_nonpositive: bool,
    /// Bootstrap resamples for the 95% interval of α (moving blocks of region-2 points in
    /// saliency order; fixed seed); 0: no interval.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
}

/// `hyperflux converge`.
#[derive(Args, Debug, Clone)]
pub struct ConvergeArgs {
    #[command(flatten)]
    pub shared: LawRunArgs,
    /// Pressures λ, comma-separated; one fixed-pressure run each [default: 0.25,1,4].
    #[arg(long, value_delimiter = ',')]
    pub pressures: Option<Vec<f64>>,
    /// Weight learning rates, comma-separated: every pressure runs once per rate (the paper's
    /// Figure 5: pressure 1, several rates) [default: --lr alone].
    #[arg(long, value_delimiter = ',')]
    pub lrs: Option<Vec<f64>>,
    /// Epochs per run (the authors ran 300) [default: 300].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// The weight LR follows a cosine from --lr to --lr / this [default: 30].
    #[arg(long)]
    pub lr_divisor: Option<f64>,
    /// Record the density every N batches (and at each epoch's end) [default: 50].
    #[arg(long)]
    pub record_every: Option<usize>,
}

fn parse_family(s: &str) -> Result<Family, String> {
    s.parse()
}

fn parse_taylor(s: &str) -> Result<law::TaylorScore, String> {
    s.parse()
}

fn parse_region(s: &str) -> Result<(f64, f64), String> {
    hf_law::parse_region(s).map_err(|e| e.to_string())
}

/// Progress of a measurement: the usual progress display (a bar per epoch on a terminal, one line
/// per epoch on stderr), plus the epoch records rewritten to `records.csv`/`.jsonl` as they come.
struct LawProgress {
    inner: Progress,
    log: RecordLog,
    log_error: Option<String>,
}

impl LawProgress {
    fn new(quiet: bool, out: &Path) -> Self {
        Self {
            inner: Progress::new(quiet, None),
            log: RecordLog::new(out, "records", Vec::new()),
            log_error: None,
        }
    }
}

impl Observer for LawProgress {
    fn epoch_start(&mut self, epoch: usize, total: usize, steps: usize) {
        self.inner.epoch_start(epoch, total, steps);
    }

    fn step(&mut self, loss: f64) {
        self.inner.step(loss);
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        self.inner.epoch_end(r);
        if let Err(e) = self.log.push(r.clone()) {
            self.log_error.get_or_insert_with(|| {
                format!("cannot write {}: {e}", self.log.paths().0.display())
            });
        }
    }
}

/// Takes model and dataset from the checkpoint's metadata unless given as flags.
fn defaults_from_checkpoint(c: &mut CommonConfig, from: Option<&Path>, a: &RunFlags) -> Result<()> {
    let Some(from) = from else {
        return Ok(());
    };
    let ck = crate::run::load_checkpoint(from)?;
    if a.model.is_none() {
        c.model = ck.meta_str("arch")?.to_string();
    }
    if a.dataset.is_none() {
        if !ck.meta.contains_key("dataset") {
            bail!(
                "{} does not say which dataset it was trained on: pass --dataset",
                from.display()
            );
        }
        // The checkpoint's data, normalised as it was trained.
        let d = hf_engine::trainer::checkpoint_data(&ck)?;
        c.dataset = d.dataset;
        c.normalize = d.normalize;
    }
    Ok(())
}

/// The settings of a `law` or `converge` config that [`LawRunArgs`] set.
pub struct SharedSettings<'a> {
    common: &'a mut CommonConfig,
    optimizer: &'a mut OptimConfig,
    from: &'a mut Option<PathBuf>,
    mask_lr: &'a mut f64,
    ste_scale: &'a mut f64,
}

/// A config of `law` or `converge`.
pub trait LawRunConfig: Default + serde::de::DeserializeOwned {
    /// The settings the shared flags set.
    fn shared(&mut self) -> SharedSettings<'_>;
}

impl LawRunConfig for LawConfig {
    fn shared(&mut self) -> SharedSettings<'_> {
        SharedSettings {
            common: &mut self.common,
            optimizer: &mut self.optimizer,
            from: &mut self.from,
            mask_lr: &mut self.mask_lr,
            ste_scale: &mut self.ste_scale,
        }
    }
}

impl LawRunConfig for ConvergeConfig {
    fn shared(&mut self) -> SharedSettings<'_> {
        SharedSettings {
            common: &mut self.common,
            optimizer: &mut self.optimizer,
            from: &mut self.from,
            mask_lr: &mut self.mask_lr,
            ste_scale: &mut self.ste_scale,
        }
    }
}

impl LawRunArgs {
    /// The `--config` file (or the defaults) with the shared flags applied: `--from`, then model
    /// and data from its checkpoint unless given as flags, then the run and mask flags.
    pub fn resolve<T: LawRunConfig>(&self) -> Result<T> {
        let mut cfg: T = flags::read_config(self.run.config.as_deref())?;
        let s = cfg.shared();
        set(s.from, &self.from);
        defaults_from_checkpoint(s.common, s.from.as_deref(), &self.run)?;
        self.run.apply(s.common, s.optimizer)?;
        self.mask.apply(s.mask_lr, s.ste_scale);
        Ok(cfg)
    }
}

/// The resolved settings of `hyperflux law`.
pub fn law_config(a: &LawArgs) -> Result<LawConfig> {
    let mut cfg: LawConfig = a.shared.resolve()?;
    set(&mut cfg.family, &a.family);
    set(&mut cfg.start_exponent, &a.start_exponent);
    set(&mut cfg.block_epochs, &a.block_epochs);
    set(&mut cfg.blocks, &a.blocks);
    set(&mut cfg.block_tolerance, &a.block_tolerance);
    set(&mut cfg.flux_quantile, &a.flux_quantile);
    set(&mut cfg.rate, &a.rate);
    set(&mut cfg.steps, &a.steps);
    set(&mut cfg.finetune_epochs, &a.finetune_epochs);
    set(&mut cfg.min_density, &a.min_density);
    set(&mut cfg.taylor_batches, &a.taylor_batches);
    set(&mut cfg.taylor_score, &a.taylor_score);
    if cfg.from.is_none() {
        bail!(
            "--from CHECKPOINT is required: a law measurement starts from a dense checkpoint \
             (make one with `hyperflux train --epochs 10 --out DIR`)"
        );
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The resolved settings of `hyperflux converge`.
pub fn converge_config(a: &ConvergeArgs) -> Result<ConvergeConfig> {
    let mut cfg: ConvergeConfig = a.shared.resolve()?;
    set(&mut cfg.pressures, &a.pressures);
    set(&mut cfg.lrs, &a.lrs);
    set(&mut cfg.epochs, &a.epochs);
    set(&mut cfg.lr_divisor, &a.lr_divisor);
    set(&mut cfg.record_every, &a.record_every);
    cfg.validate()?;
    Ok(cfg)
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    atomic_write_bytes(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    write_text(path, &(serde_json::to_string_pretty(v)? + "\n"))
}

/// Writes the resolved settings as `config.toml` (like every run) and `config.json`.
fn write_config<T: serde::Serialize>(out: &Path, cfg: &T) -> Result<()> {
    write_text(&out.join("config.toml"), &config::to_toml(cfg))?;
    write_json(&out.join("config.json"), &serde_json::to_value(cfg)?)
}

fn to_point(s: &LawSample) -> LawPoint {
    LawPoint {
        epoch: s.epoch,
        saliency: s.saliency,
        remaining: s.remaining,
        accuracy: Some(s.accuracy),
        extras: s.extras.clone(),
    }
}

/// Holds `out` for this run (refused while another live run writes there) and removes the
/// temporary files killed runs left in it.
fn lock_output(out: &Path) -> Result<hf_core::fsutil::DirLock> {
    let lock = hf_core::fsutil::DirLock::acquire(out)?;
    if let Some(pid) = lock.took_over {
        eprintln!(
            "note: {} was locked by a run that no longer exists (pid {pid}); taken over",
            out.display()
        );
    }
    let removed = hf_core::fsutil::remove_stale_temps(out)
        .with_context(|| format!("cannot remove stale temporary files in {}", out.display()))?;
    if !removed.is_empty() {
        eprintln!(
            "note: removed {} temporary file(s) a killed run left in {}",
            removed.len(),
            out.display()
        );
    }
    Ok(lock)
}

/// `hyperflux law`.
pub fn law(a: &LawArgs) -> Result<()> {
    let cfg = law_config(a)?;
    let family = cfg.validate()?;
    let out = cfg.common.out_dir.clone();
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let _lock = lock_output(&out)?;
    write_config(&out, &cfg)?;
    let csv = out.join(family.csv_file());
    eprintln!(
        "measuring the {} law from {} into {} (Saliency = {})",
        family.name(),
        cfg.from.as_deref().unwrap_or(Path::new("?")).display(),
        csv.display(),
        family.saliency_meaning()
    );
    let mut obs = LawProgress::new(a.shared.run.quiet, &out);
    let mut points: Vec<LawPoint> = Vec::new();
    let mut write_error: Option<anyhow::Error> = None;
    let outcome = {
        let mut on_point = |s: &LawSample| {
            points.push(to_point(s));
            eprintln!(
                "point {:>3}: saliency {:<12.6e} density {:>9.4}% accuracy {:.2}%",
                points.len(),
                s.saliency,
                s.remaining,
                s.accuracy
            );
            if write_error.is_none() {
                if let Err(e) = hf_law::write_law_csv(&csv, &points) {
                    write_error = Some(e.into());
                }
            }
        };
        law::measure(&cfg, &mut obs, &mut on_point)?
    };
    if let Some(e) = write_error {
        return Err(e);
    }
    if let Some(e) = obs.log_error {
        bail!(e);
    }
    hf_law::write_law_csv(&csv, &points)?;
    let mut files = vec![csv.clone()];
    let mut notes = Vec::new();
    if let Some(why) = &outcome.stopped_early {
        notes.push(format!("stopped early: {why}"));
    }
    for fl in family.flux_laws() {
        let fp: Vec<LawPoint> = fl.points(&outcome.samples).iter().map(to_point).collect();
        if fp.len() >= hf_law::MIN_POINTS {
            let f = out.join(fl.file);
            hf_law::write_law_csv(&f, &fp)?;
            files.push(f);
        } else {
            notes.push(format!(
                "{} not written: only {} of {} blocks have a positive {}",
                fl.file,
                fp.len(),
                points.len(),
                fl.column
            ));
        }
    }
    let n_points = points.len();
    let fit = if n_points >= hf_law::MIN_POINTS {
        let report = hf_law::run_fit(&FitOptions {
            files,
            region2: a.region2,
            plot_stem: Some(out.join(family.plot_stem())),
            skip_nonpositive: true,
            ..FitOptions::default()
        })?;
        write_text(&out.join("fit.txt"), &report.to_table())?;
        write_json(&out.join("fit.json"), &report.to_json())?;
        Some(report)
    } else {
        notes.push(format!(
            "no fit: only {n_points} points (at least {} are needed)",
            hf_law::MIN_POINTS
        ));
        None
    };
    let summary = json!({
        "family": family.name(),
        "saliency": family.saliency_meaning(),
        "from": cfg.from,
        "model": cfg.common.model,
        "dataset": cfg.common.dataset,
        "seed": cfg.common.seed,
        "prunable": outcome.prunable,
        "dense_accuracy": outcome.dense_accuracy,
        "points": n_points,
        "epochs": outcome.epochs,
        "seconds": outcome.seconds,
        "stopped_early": outcome.stopped_early,
        "fit": fit.as_ref().map(FitReport::to_json),
        "notes": notes,
    });
    write_json(&out.join("summary.json"), &summary)?;
    println!(
        "{} law: {n_points} points from a dense net at {:.2}% test accuracy (N = {}), {:.1}s",
        family.name(),
        outcome.dense_accuracy,
        outcome.prunable,
        outcome.seconds
    );
    if let Some(r) = &fit {
        print!("{}", r.to_table());
    }
    for n in &notes {
        println!("note: {n}");
    }
    println!("csv:      {}", csv.display());
    if outcome.epochs > 0 {
        println!("records:  {}", out.join("records.csv").display());
    }
    println!("summary:  {}", out.join("summary.json").display());
    Ok(())
}

/// `hyperflux fit`.
pub fn fit(a: &FitArgs) -> Result<()> {
    // Files are written only where an option says: never into the current directory unasked.
    let plot_stem = match (&a.plot, &a.out) {
        _ if a.no_plot => None,
        (Some(p), _) => Some(p.clone()),
        (None, Some(dir)) => Some(dir.join("law_fit")),
        (None, None) => {
            eprintln!("note: no plot drawn; give --plot STEM or --out DIR for one");
            None
        }
    };
    let report = hf_law::run_fit(&FitOptions {
        files: a.files.clone(),
        region2: a.region2,
        plot_stem,
        skip_nonpositive: a.skip_nonpositive,
        bootstrap: a.bootstrap,
    })?;
    if let Some(dir) = &a.out {
        write_text(&dir.join("fit.txt"), &report.to_table())?;
        write_json(&dir.join("fit.json"), &report.to_json())?;
        eprintln!(
            "wrote {} and {}",
            dir.join("fit.txt").display(),
            dir.join("fit.json").display()
        );
    }
    if a.json {
        for p in &report.plots {
            eprintln!("plot: {}", p.display());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// Writes the density samples of every run: `pressure,lr,epoch,step,density`.
fn write_traces(path: &Path, traces: &[ConvergeTrace]) -> Result<()> {
    atomic_write(path, |w: &mut dyn Write| {
        writeln!(w, "pressure,lr,epoch,step,density")?;
        for t in traces {
            for s in &t.samples {
                writeln!(
                    w,
                    "{:?},{:?},{:?},{},{:?}",
                    t.pressure, t.lr, s.epoch, s.step, s.density
                )?;
            }
        }
        Ok::<(), io::Error>(())
    })
    .with_context(|| format!("cannot write {}", path.display()))
}

fn finals_points(traces: &[ConvergeTrace], epochs: usize) -> Vec<LawPoint> {
    traces
        .iter()
        .map(|t| LawPoint {
            epoch: Some(epochs as f64),
            saliency: t.pressure,
            remaining: t.final_density,
            accuracy: Some(t.final_accuracy),
            extras: vec![("LR".to_string(), t.lr), ("Seconds".to_string(), t.seconds)],
        })
        .collect()
}

/// Density-vs-epoch panel and final-density-vs-λ panel.
fn converge_charts(traces: &[ConvergeTrace], fit: Option<&PowerFit>) -> Vec<Chart> {
    let several_lrs = traces.iter().any(|t| t.lr != traces[0].lr);
    let series = traces
        .iter()
        .map(|t| {
            let lr = if several_lrs {
                format!(", lr {}", hf_plot::format_sig(t.lr, 3))
            } else {
                String::new()
            };
            Series::new(
                format!(
                    "λ = {}{lr}: final {}%",
                    hf_plot::format_sig(t.pressure, 4),
                    hf_plot::format_sig(t.final_density, 3)
                ),
                t.samples.iter().map(|s| (s.epoch, s.density)).collect(),
                Style::Line,
            )
        })
        .collect();
    let density = Chart {
        title: "Fixed-pressure Hyperflux: density over training".into(),
        x_label: "epoch".into(),
        y_label: "density (% of prunable weights)".into(),
        log_y: true,
        series,
        ..Chart::default()
    };
    let mut finals = vec![Series::new(
        "final density",
        traces
            .iter()
            .map(|t| (t.pressure, t.final_density))
            .collect(),
        Style::Points,
    )];
    if let Some(f) = fit {
        let (lo, hi) = traces.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), t| {
            (lo.min(t.pressure), hi.max(t.pressure))
        });
        let pts: Vec<(f64, f64)> = (0..=40)
            .map(|i| {
                let g = lo * (hi / lo).powf(i as f64 / 40.0);
                (g, f.eval(g))
            })
            .collect();
        finals.push(Series::new(
            format!(
                "fit: s = {}·λ^-{}, R²={:.3}",
                hf_plot::format_sig(f.c, 3),
                hf_plot::format_sig(f.alpha, 3),
                f.r2
            ),
            pts,
            Style::Dashed,
        ));
    }
    let finals = Chart {
        title: "Final density against pressure".into(),
        x_label: "pressure λ".into(),
        y_label: "final density (%)".into(),
        log_x: true,
        log_y: true,
        series: finals,
        ..Chart::default()
    };
    vec![density, finals]
}

/// `hyperflux converge`.
pub fn converge(a: &ConvergeArgs) -> Result<()> {
    let cfg = converge_config(a)?;
    let out = cfg.common.out_dir.clone();
    std::fs::create_dir_all(&out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let _lock = lock_output(&out)?;
    write_config(&out, &cfg)?;
    let mut obs = LawProgress::new(a.shared.run.quiet, &out);
    let trace_csv = out.join("density_trace.csv");
    let mut done: Vec<ConvergeTrace> = Vec::new();
    let mut write_error: Option<anyhow::Error> = None;
    let traces = {
        let mut on_trace = |t: &ConvergeTrace| {
            eprintln!(
                "λ = {}, lr {}: final density {:.4}%, test accuracy {:.2}% ({:.1}s)",
                t.pressure, t.lr, t.final_density, t.final_accuracy, t.seconds
            );
            done.push(t.clone());
            if write_error.is_none() {
                if let Err(e) = write_traces(&trace_csv, &done) {
                    write_error = Some(e);
                }
            }
        };
        law::converge(&cfg, &mut obs, &mut on_trace)?
    };
    if let Some(e) = write_error {
        return Err(e);
    }
    if let Some(e) = obs.log_error {
        bail!(e);
    }
    write_traces(&trace_csv, &traces)?;
    let finals = finals_points(&traces, cfg.epochs);
    let finals_csv = out.join("finals.csv");
    hf_law::write_law_csv(&finals_csv, &finals)?;
    let xy: Vec<(f64, f64)> = traces
        .iter()
        .map(|t| (t.pressure, t.final_density))
        .collect();
    let several_lrs = traces.iter().any(|t| t.lr != traces[0].lr);
    let (fit, fit_note) = match hf_law::fit_loglog(&xy) {
        _ if several_lrs => (
            None,
            Some("several learning rates: fit finals.csv per LR (column LR)".to_string()),
        ),
        Ok(f) => (Some(f), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let plots = hf_plot::draw_panels(
        &converge_charts(&traces, fit.as_ref()),
        &out.join("converge"),
    )?;
    let runs: Vec<serde_json::Value> = traces
        .iter()
        .map(|t| {
            json!({
                "pressure": t.pressure,
                "lr": t.lr,
                "final_density": t.final_density,
                "final_accuracy": t.final_accuracy,
                "seconds": t.seconds,
            })
        })
        .collect();
    write_json(
        &out.join("summary.json"),
        &json!({
            "model": cfg.common.model,
            "dataset": cfg.common.dataset,
            "from": cfg.from,
            "epochs": cfg.epochs,
            "seed": cfg.common.seed,
            "runs": runs,
            "fit_final_density_vs_pressure": fit,
            "fit_note": fit_note,
        }),
    )?;
    println!(
        "fixed-pressure runs, {} epochs each ({} on {}):",
        cfg.epochs, cfg.common.model, cfg.common.dataset
    );
    println!(
        "{:>10} {:>10} {:>14} {:>14} {:>10}",
        "λ", "lr", "final density", "test accuracy", "seconds"
    );
    for t in &traces {
        println!(
            "{:>10} {:>10} {:>13.4}% {:>13.2}% {:>10.1}",
            hf_plot::format_sig(t.pressure, 4),
            hf_plot::format_sig(t.lr, 3),
            t.final_density,
            t.final_accuracy,
            t.seconds
        );
    }
    match (&fit, &fit_note) {
        (Some(f), _) => println!(
            "final density vs λ: s = {} · λ^-{} (R² = {:.4}, n = {})",
            hf_plot::format_sig(f.c, 4),
            hf_plot::format_sig(f.alpha, 4),
            f.r2,
            f.n
        ),
        (None, Some(n)) => println!("note: no fit of final density vs λ: {n}"),
        _ => {}
    }
    println!("trace:    {}", trace_csv.display());
    println!("finals:   {}", finals_csv.display());
    for p in plots {
        println!("plot:     {}", p.display());
    }
    Ok(())
}
