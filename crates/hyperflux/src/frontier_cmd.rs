//! `hyperflux frontier`: the sparsity–accuracy frontier of one or more pruning methods over
//! several sparsities and seeds, at equal budget (every run is `hyperflux prune` with the same
//! flags apart from method, target and seed).
//!
//! Each point runs as its own `hyperflux prune` process (so runs are independent and `--jobs`
//! runs several side by side) in `OUT/<method>/s<sparsity>/seed<seed>/`, and leaves
//! `point.json` there when it finished: a finished point is never run again, so an interrupted
//! frontier continues where it stopped. From all points found, the command writes
//! `OUT/frontier.csv` (one row per run), `OUT/summary.csv` (mean ± std over seeds per method and
//! sparsity) and `OUT/frontier.{png,svg}` (test accuracy against density, log axis, one line per
//! method, with the published LeNet-300-100 / MNIST anchors as points when they apply).

use anyhow::{bail, Context, Result};
use clap::Args;
use hf_core::config::{PruneConfig, PruneMethod};
use hf_core::fsutil::atomic_write;
use hf_plot::{Chart, Series, Style};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// `hyperflux frontier`.
#[derive(Args, Debug, Clone)]
pub struct FrontierArgs {
    /// Methods, comma-separated: hyperflux, gmp, oneshot.
    #[arg(long, value_delimiter = ',', default_value = "hyperflux,gmp,oneshot")]
    pub methods: Vec<String>,
    /// Target sparsities (percent pruned), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "90,95,98,99,99.5")]
    pub sparsities: Vec<f64>,
    /// Seeds, comma-separated (each fixes mask initialisation and data order of its runs).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Dense checkpoint every run starts from; `{seed}` in the path is replaced by the run's
    /// seed (one dense network per seed).
    #[arg(long)]
    pub from: Option<String>,
    /// Output directory (one sub-directory per run, plus frontier.csv, summary.csv and the plot).
    #[arg(long, short = 'o', default_value = "runs/frontier")]
    pub out: PathBuf,
    /// Runs side by side (each its own process; give each run `--threads` accordingly).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Only collect the finished points and redraw (run nothing).
    #[arg(long)]
    pub report_only: bool,
    /// Flags passed to every `hyperflux prune` run, after `--` (e.g. `-- --pruning-epochs 30
    /// --regrowth-epochs 15 --threads 1`). Not: --method, --target-sparsity, --seed, --from, -o.
    #[arg(last = true)]
    pub prune_args: Vec<String>,
}

/// One finished run of the frontier (a row of `frontier.csv`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Point {
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Pruning method.
    pub method: String,
    /// Requested sparsity (percent).
    pub target_sparsity: f64,
    /// Seed.
    pub seed: u64,
    /// Final density (percent of prunable weights present).
    pub density: f64,
    /// Final validation accuracy (percent), when the run held out a validation split.
    pub val_accuracy: Option<f64>,
    /// Final test accuracy (percent).
    pub test_accuracy: f64,
    /// Epochs of the run.
    pub epochs: usize,
    /// Wall time of the run's process (seconds).
    pub seconds: f64,
}

/// Flags the frontier sets itself for each run.
const OWN_FLAGS: [&str; 6] = [
    "--method",
    "--target-sparsity",
    "--seed",
    "--from",
    "-o",
    "--out",
];

/// Published LeNet-300-100 / MNIST results: (label, density %, test accuracy %).
pub const LENET300_MNIST_ANCHORS: [(&str, f64, f64); 3] = [
    ("Han et al. 2015", 8.3, 98.41),
    ("DNS (Guo et al. 2016)", 1.8, 98.01),
    ("Sparse VD (Molchanov et al. 2017)", 1.5, 98.08),
];

/// Runs `hyperflux frontier`.
pub fn frontier(a: &FrontierArgs) -> Result<()> {
    let methods: Vec<PruneMethod> = a
        .methods
        .iter()
        .map(|m| {
            m.parse::<PruneMethod>()
                .map_err(|e| anyhow::anyhow!("--methods {m}: {e}"))
        })
        .collect::<Result<_>>()?;
    for &s in &a.sparsities {
        if !(s > 0.0 && s < 100.0) {
            bail!(
                "--sparsities: {s} is outside (0, 100): give percentages pruned, e.g. 90,95,98,99"
            );
        }
    }
    if methods.is_empty() || a.sparsities.is_empty() || a.seeds.is_empty() {
        bail!("--methods, --sparsities and --seeds each need at least one value");
    }
    if a.jobs == 0 {
        bail!("--jobs 0: give at least 1");
    }
    if let Some(f) = a.prune_args.iter().find(|f| {
        OWN_FLAGS
            .iter()
            .any(|o| *f == o || f.starts_with(&format!("{o}=")))
    }) {
        bail!("{f} after --: the frontier sets --method, --target-sparsity, --seed, --from and -o of each run itself; give --methods, --sparsities, --seeds, --from or -o to the frontier");
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create the output directory {}", a.out.display()))?;
    if !a.report_only {
        run_points(a, &methods)?;
    }
    report(&a.out)
}

/// Where the run of one point lives.
pub fn point_dir(out: &Path, method: PruneMethod, sparsity: f64, seed: u64) -> PathBuf {
    out.join(method.name())
        .join(format!("s{sparsity}"))
        .join(format!("seed{seed}"))
}

/// Runs every point not yet finished, `a.jobs` at a time.
fn run_points(a: &FrontierArgs, methods: &[PruneMethod]) -> Result<()> {
    // Seed by seed, so an interrupted frontier has whole seeds of every point done first.
    let mut todo = Vec::new();
    let mut done = 0;
    for &seed in &a.seeds {
        for &m in methods {
            for &s in &a.sparsities {
                let dir = point_dir(&a.out, m, s, seed);
                if dir.join("point.json").exists() {
                    done += 1;
                } else {
                    todo.push((m, s, seed, dir));
                }
            }
        }
    }
    todo.reverse(); // workers pop from the end
    let total = done + todo.len();
    eprintln!(
        "frontier: {total} runs, {done} already finished, {} to run ({} at a time) in {}",
        todo.len(),
        a.jobs,
        a.out.display()
    );
    if todo.is_empty() {
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find the hyperflux executable")?;
    let bar = indicatif::ProgressBar::new(todo.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} runs {elapsed_precise} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let queue = Arc::new(Mutex::new(todo));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    std::thread::scope(|sc| {
        for _ in 0..a.jobs {
            let queue = Arc::clone(&queue);
            let failures = Arc::clone(&failures);
            let bar = bar.clone();
            let exe = exe.clone();
            sc.spawn(move || loop {
                let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                let Some((m, s, seed, dir)) = next else {
                    break;
                };
                match run_point(&exe, a, m, s, seed, &dir) {
                    Ok(p) => bar.suspend(|| {
                        eprintln!(
                            "{:<9} {:>5}% seed {}: density {:.3}%, val {}, test {:.2}% ({:.0}s)",
                            p.method,
                            p.target_sparsity,
                            p.seed,
                            p.density,
                            p.val_accuracy
                                .map(|v| format!("{v:.2}%"))
                                .unwrap_or_else(|| "-".into()),
                            p.test_accuracy,
                            p.seconds
                        )
                    }),
                    Err(e) => {
                        let msg = format!("{m} {s}% seed {seed}: {e:#}");
                        bar.suspend(|| eprintln!("failed: {msg}"));
                        if let Ok(mut f) = failures.lock() {
                            f.push(msg);
                        }
                    }
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    if let Some(first) = failures.first() {
        // What finished is still reported; the failed points run again next time.
        report(&a.out)?;
        bail!(
            "{} of {} frontier runs failed (first: {first}); their logs are log.txt in each run's directory; run the same command again to retry only those",
            failures.len(),
            total - done
        );
    }
    Ok(())
}

/// Runs one point as a `hyperflux prune` process and records its `point.json`.
fn run_point(
    exe: &Path,
    a: &FrontierArgs,
    method: PruneMethod,
    sparsity: f64,
    seed: u64,
    dir: &Path,
) -> Result<Point> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log_path = dir.join("log.txt");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg("prune")
        .args(["--method", method.name()])
        .args(["--target-sparsity", &sparsity.to_string()])
        .args(["--seed", &seed.to_string()])
        .arg("-o")
        .arg(dir)
        .arg("--quiet");
    if let Some(f) = &a.from {
        cmd.arg("--from")
            .arg(f.replace("{seed}", &seed.to_string()));
    }
    cmd.args(&a.prune_args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let t0 = Instant::now();
    let status = cmd.status().context("cannot start hyperflux prune")?;
    let seconds = t0.elapsed().as_secs_f64();
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let err = text
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("the run failed")
            .to_string();
        bail!("{err}");
    }
    let p = read_point(dir, method, sparsity, seed, seconds)?;
    let json = serde_json::to_vec_pretty(&p)?;
    hf_core::fsutil::atomic_write_bytes(&dir.join("point.json"), &json)
        .with_context(|| format!("cannot write {}", dir.join("point.json").display()))?;
    Ok(p)
}

/// The point of a finished run directory (its config and last record).
fn read_point(
    dir: &Path,
    method: PruneMethod,
    sparsity: f64,
    seed: u64,
    seconds: f64,
) -> Result<Point> {
    let cfg: PruneConfig = hf_core::config::read_toml(&dir.join("config.toml"))?;
    let text = std::fs::read_to_string(dir.join("records.jsonl"))
        .with_context(|| format!("no records in {}", dir.display()))?;
    let last: hf_core::records::EpochRecord = text
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .transpose()?
        .with_context(|| format!("no epoch recorded in {}", dir.display()))?;
    Ok(Point {
        model: cfg.common.model,
        dataset: cfg.common.dataset,
        method: method.name().into(),
        target_sparsity: sparsity,
        seed,
        density: last.density,
        val_accuracy: last.val_accuracy,
        test_accuracy: last.test_accuracy,
        epochs: last.epoch,
        seconds,
    })
}

/// Every `point.json` under `out`, ordered by method, sparsity and seed.
pub fn collect_points(out: &Path) -> Result<Vec<Point>> {
    let mut points = Vec::new();
    for m in PruneMethod::ALL {
        let mdir = out.join(m.name());
        let Ok(entries) = std::fs::read_dir(&mdir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(seeds) = std::fs::read_dir(e.path()) else {
                continue;
            };
            for s in seeds.flatten() {
                let f = s.path().join("point.json");
                if let Ok(bytes) = std::fs::read(&f) {
                    let p: Point = serde_json::from_slice(&bytes)
                        .with_context(|| format!("{} is not a frontier point", f.display()))?;
                    points.push(p);
                }
            }
        }
    }
    points.sort_by(|a, b| {
        method_rank(&a.method)
            .cmp(&method_rank(&b.method))
            .then(a.target_sparsity.total_cmp(&b.target_sparsity))
            .then(a.seed.cmp(&b.seed))
    });
    Ok(points)
}

/// Where a method (by name) stands in [`PruneMethod::ALL`], the order tables and plots list
/// methods in; unknown names last.
fn method_rank(name: &str) -> usize {
    PruneMethod::ALL
        .iter()
        .position(|m| m.name() == name)
        .unwrap_or(usize::MAX)
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// One line of `summary.csv`: a method at a sparsity, over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Method.
    pub method: String,
    /// Requested sparsity.
    pub target_sparsity: f64,
    /// Runs (seeds).
    pub runs: usize,
    /// Mean final density.
    pub density: f64,
    /// Validation accuracy mean and std (NaN without a validation split).
    pub val: (f64, f64),
    /// Test accuracy mean and std.
    pub test: (f64, f64),
    /// Mean wall time of a run.
    pub seconds: f64,
}

/// Groups points by method and sparsity.
pub fn summarise(points: &[Point]) -> Vec<Summary> {
    let mut groups: BTreeMap<(usize, u64), Vec<&Point>> = BTreeMap::new();
    for p in points {
        groups
            .entry((method_rank(&p.method), p.target_sparsity.to_bits()))
            .or_default()
            .push(p);
    }
    let mut out: Vec<Summary> = groups
        .into_values()
        .map(|g| {
            let vals: Vec<f64> = g.iter().filter_map(|p| p.val_accuracy).collect();
            Summary {
                method: g[0].method.clone(),
                target_sparsity: g[0].target_sparsity,
                runs: g.len(),
                density: g.iter().map(|p| p.density).sum::<f64>() / g.len() as f64,
                val: if vals.len() == g.len() {
                    mean_std(&vals)
                } else {
                    (f64::NAN, f64::NAN)
                },
                test: mean_std(&g.iter().map(|p| p.test_accuracy).collect::<Vec<_>>()),
                seconds: g.iter().map(|p| p.seconds).sum::<f64>() / g.len() as f64,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        method_rank(&a.method)
            .cmp(&method_rank(&b.method))
            .then(a.target_sparsity.total_cmp(&b.target_sparsity))
    });
    out
}

fn opt(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        String::new()
    }
}

/// Writes frontier.csv, summary.csv and the plot from the points under `out`, and prints the
/// summary.
pub fn report(out: &Path) -> Result<()> {
    let points = collect_points(out)?;
    if points.is_empty() {
        bail!(
            "no finished frontier runs in {}: run `hyperflux frontier` without --report-only first",
            out.display()
        );
    }
    let csv_path = out.join("frontier.csv");
    atomic_write(&csv_path, |w| {
        let mut c = csv::Writer::from_writer(w);
        c.write_record([
            "model",
            "dataset",
            "method",
            "target_sparsity",
            "seed",
            "density",
            "val_accuracy",
            "test_accuracy",
            "epochs",
            "seconds",
        ])?;
        for p in &points {
            c.write_record([
                p.model.clone(),
                p.dataset.clone(),
                p.method.clone(),
                p.target_sparsity.to_string(),
                p.seed.to_string(),
                p.density.to_string(),
                p.val_accuracy.map(|v| v.to_string()).unwrap_or_default(),
                p.test_accuracy.to_string(),
                p.epochs.to_string(),
                format!("{:.1}", p.seconds),
            ])?;
        }
        c.flush()
    })
    .with_context(|| format!("cannot write {}", csv_path.display()))?;
    let summary = summarise(&points);
    let sum_path = out.join("summary.csv");
    atomic_write(&sum_path, |w| {
        let mut c = csv::Writer::from_writer(w);
        c.write_record([
            "method",
            "target_sparsity",
            "runs",
            "density",
            "val_mean",
            "val_std",
            "test_mean",
            "test_std",
            "seconds_mean",
        ])?;
        for s in &summary {
            c.write_record([
                s.method.clone(),
                s.target_sparsity.to_string(),
                s.runs.to_string(),
                s.density.to_string(),
                opt(s.val.0),
                opt(s.val.1),
                s.test.0.to_string(),
                s.test.1.to_string(),
                format!("{:.1}", s.seconds),
            ])?;
        }
        c.flush()
    })
    .with_context(|| format!("cannot write {}", sum_path.display()))?;
    println!(
        "{:<10} {:>9} {:>4} {:>9} {:>15} {:>15} {:>8}",
        "method", "sparsity", "runs", "density", "val (mean±sd)", "test (mean±sd)", "s/run"
    );
    for s in &summary {
        let val = if s.val.0.is_finite() {
            format!("{:.2}±{:.2}%", s.val.0, s.val.1)
        } else {
            "-".into()
        };
        println!(
            "{:<10} {:>8}% {:>4} {:>8.3}% {:>15} {:>15} {:>8.0}",
            s.method,
            s.target_sparsity,
            s.runs,
            s.density,
            val,
            format!("{:.2}±{:.2}%", s.test.0, s.test.1),
            s.seconds
        );
    }
    let plots = plot(out, &points, &summary)?;
    println!("runs:    {}", csv_path.display());
    println!("summary: {}", sum_path.display());
    for p in plots {
        println!("plot:    {}", p.display());
    }
    Ok(())
}

/// Test accuracy (mean ± sd over seeds) against density, one line per method; the published
/// anchors when every point is LeNet-300-100 on MNIST.
fn plot(out: &Path, points: &[Point], summary: &[Summary]) -> Result<Vec<PathBuf>> {
    let mut series = Vec::new();
    let mut methods: Vec<&str> = summary.iter().map(|s| s.method.as_str()).collect();
    methods.dedup();
    for m in &methods {
        let rows: Vec<&Summary> = summary.iter().filter(|s| s.method == *m).collect();
        let seeds = rows.iter().map(|s| s.runs).max().unwrap_or(0);
        series.push(
            Series::new(
                format!("{m} (mean ± sd, {seeds} seeds)"),
                rows.iter().map(|s| (s.density, s.test.0)).collect(),
                Style::LinePoints,
            )
            .with_y_err(rows.iter().map(|s| s.test.1).collect()),
        );
    }
    let lenet_mnist = points
        .iter()
        .all(|p| p.model == "lenet300" && p.dataset == "mnist");
    if lenet_mnist {
        for (name, d, acc) in LENET300_MNIST_ANCHORS {
            series.push(Series::new(
                format!("{name} (published)"),
                vec![(d, acc)],
                Style::Points,
            ));
        }
    }
    let title = match (
        points.first(),
        points.iter().all(|p| p.model == points[0].model),
    ) {
        (Some(p), true) => format!("{} on {}: sparsity–accuracy frontier", p.model, p.dataset),
        _ => "sparsity–accuracy frontier".to_string(),
    };
    let chart = Chart {
        title,
        x_label: "density (% of prunable weights present, log)".into(),
        y_label: "test accuracy (%)".into(),
        log_x: true,
        series,
        ..Chart::default()
    };
    let [png, svg] = hf_plot::draw(&chart, &out.join("frontier"))?;
    Ok(vec![png, svg])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(method: &str, s: f64, seed: u64, acc: f64) -> Point {
        Point {
            model: "lenet300".into(),
            dataset: "mnist".into(),
            method: method.into(),
            target_sparsity: s,
            seed,
            density: 100.0 - s,
            val_accuracy: Some(acc - 0.5),
            test_accuracy: acc,
            epochs: 10,
            seconds: 2.0,
        }
    }

    #[test]
    fn summary_groups_by_method_and_sparsity_in_method_order() {
        let pts = vec![
            pt("gmp", 90.0, 0, 97.0),
            pt("hyperflux", 90.0, 1, 98.0),
            pt("hyperflux", 90.0, 0, 97.0),
            pt("hyperflux", 99.0, 0, 96.0),
        ];
        let s = summarise(&pts);
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].method.as_str(), s[0].target_sparsity),
            ("hyperflux", 90.0)
        );
        assert_eq!(s[0].runs, 2);
        assert!((s[0].test.0 - 97.5).abs() < 1e-12);
        assert!((s[0].test.1 - 0.5f64.sqrt()).abs() < 1e-12);
        assert!((s[0].val.0 - 97.0).abs() < 1e-12);
        assert_eq!(
            (s[1].method.as_str(), s[1].target_sparsity),
            ("hyperflux", 99.0)
        );
        assert_eq!(s[1].test.1, 0.0);
        assert_eq!(s[2].method, "gmp");
    }

    #[test]
    fn mean_std_is_the_sample_deviation() {
        let (m, sd) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        assert!((sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!(mean_std(&[]).0.is_nan());
    }

    #[test]
    fn points_are_collected_in_order_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        for p in [
            pt("oneshot", 95.0, 0, 96.0),
            pt("hyperflux", 95.0, 1, 97.0),
            pt("hyperflux", 95.0, 0, 97.4),
        ] {
            let m: PruneMethod = p.method.parse().unwrap();
            let d = point_dir(dir.path(), m, p.target_sparsity, p.seed);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("point.json"), serde_json::to_vec(&p).unwrap()).unwrap();
        }
        let pts = collect_points(dir.path()).unwrap();
        let keys: Vec<(&str, u64)> = pts.iter().map(|p| (p.method.as_str(), p.seed)).collect();
        assert_eq!(
            keys,
            vec![("hyperflux", 0), ("hyperflux", 1), ("oneshot", 0)]
        );
        report(dir.path()).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("frontier.csv")).unwrap();
        assert!(csv.starts_with(
            "model,dataset,method,target_sparsity,seed,density,val_accuracy,test_accuracy,epochs,seconds\n"
        ));
        assert_eq!(csv.lines().count(), 4);
        let sum = std::fs::read_to_string(dir.path().join("summary.csv")).unwrap();
        assert!(
            sum.lines().nth(1).unwrap().starts_with("hyperflux,95,2,5,"),
            "{sum}"
        );
        assert!(dir.path().join("frontier.png").exists());
        assert!(dir.path().join("frontier.svg").exists());
    }
}
