//! Neural Pruning Law measurements: read and write law CSVs, fit the power law and the
//! variable-exponent law, and plot both over the data (spec §4).
//!
//! The law relates the saliency threshold γ that surviving weights withstand to the density `s`
//! (percent of prunable weights remaining): `ln s = ln c − α ln γ` in region 2 (by default
//! `0.5 < s <= 50`), and `ln s = ln c − a0 ln γ − a1 (ln γ)²` over all points.
//!
//! [`run_fit`] is the one-call entry point used by the command line: it reads every file, fits
//! both laws per file, optionally plots them, and returns a [`FitReport`] that renders as a
//! text table or JSON.
//!
//! Each file's fits come with [`LawTest`]: a bootstrap interval of α, a held-out test that can
//! reject the constant exponent, and α as region 2's bounds move (see `hypothesis.rs`).
//!
//! Saliency `0` rows (e.g. the authors' `L0r50c10ContinuousSched.csv`, whose first row is the
//! scheduler before any pressure) cannot be placed on a log axis: by default they are an error
//! naming the row; with [`FitOptions::skip_nonpositive`] they are dropped and listed in the
//! file's notes.

mod csvio;
mod error;
mod fit;
mod hypothesis;
mod plot;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;

pub use csvio::{
    read_law_csv, read_law_csv_with, write_law_csv, DroppedRow, LawCsv, LawPoint, ReadOptions,
    MIN_POINTS,
};
pub use error::LawError;
pub use fit::{
    check_region, fit_loglog, fit_power_law, fit_variable_exponent, parse_region, PowerFit,
    VarExpFit, DEFAULT_REGION2, MIN_FIT_POINTS,
};
pub use hypothesis::{bootstrap_alpha, holdout, test_law, Holdout, LawTest};
pub use plot::{law_charts, plot_fits};

/// What [`run_fit`] should do.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Law CSV files; a directory stands for its `*.csv` files in name order.
    pub files: Vec<PathBuf>,
    /// Region 2 `(lo, hi)` for the power-law fit: `lo < s <= hi` (density percent).
    pub region2: (f64, f64),
    /// If set, write the plot to `stem.png` and `stem.svg`.
    pub plot_stem: Option<PathBuf>,
    /// Drop points with Saliency or Remaining `<= 0` (noted per file) instead of failing.
    pub skip_nonpositive: bool,
    /// Bootstrap resamples for the interval of α (0: no interval).
    pub bootstrap: usize,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            files: Vec::new(),
            region2: DEFAULT_REGION2,
            plot_stem: None,
            skip_nonpositive: false,
            bootstrap: 1000,
        }
    }
}

/// The fits of one file. A fit that could not be made is `None`, with the reason in `notes`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFit {
    /// The file read.
    pub file: PathBuf,
    /// Short name for tables and legends: the file stem (with its parent directory when two
    /// files share a stem).
    pub label: String,
    /// Power-law fit on region 2.
    pub power: Option<PowerFit>,
    /// Variable-exponent fit on all points.
    pub varexp: Option<VarExpFit>,
    /// The points read (after dropping non-positive rows, if asked to).
    pub points: Vec<LawPoint>,
    /// Dropped rows, ignored columns, fits that failed and why.
    pub notes: Vec<String>,
    /// The law as a hypothesis: interval of α, held-out test, sensitivity to region 2.
    pub test: LawTest,
}

/// Result of [`run_fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitReport {
    /// One entry per input file, in input order.
    pub fits: Vec<FileFit>,
    /// Plot files written (`[png, svg]`), empty if no plot was asked for.
    pub plots: Vec<PathBuf>,
    /// The region 2 used for the power-law fits.
    pub region2: (f64, f64),
}

/// Expands directories into their `*.csv` files (sorted by name).
fn expand_files(files: &[PathBuf]) -> Result<Vec<PathBuf>, LawError> {
    let mut out = Vec::new();
    for f in files {
        if f.is_dir() {
            let rd = fs::read_dir(f).map_err(|source| LawError::Read {
                path: f.clone(),
                source,
            })?;
            let mut found: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
                })
                .collect();
            if found.is_empty() {
                return Err(LawError::EmptyDir { path: f.clone() });
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(f.clone());
        }
    }
    if out.is_empty() {
        return Err(LawError::NoFiles);
    }
    Ok(out)
}

fn stem_of(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Labels from file stems, qualified by as many parent directories as it takes to tell apart
/// files whose stems collide (`seed1/magnitude/magnitude` beside `law/magnitude/magnitude`).
fn labels(files: &[PathBuf]) -> Vec<String> {
    // The label of `f` with `k` parent directories in front of its stem.
    let with_parents = |f: &Path, k: usize| -> String {
        let mut parts = vec![stem_of(f)];
        let mut p = f.parent();
        for _ in 0..k {
            match p.and_then(|d| d.file_name().map(|n| (d, n))) {
                Some((d, n)) => {
                    parts.push(n.to_string_lossy().into_owned());
                    p = d.parent();
                }
                None => break,
            }
        }
        parts.reverse();
        parts.join("/")
    };
    let depth = |f: &Path| f.components().count();
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut k = 0;
            loop {
                let mine = with_parents(f, k);
                let clashes: Vec<&PathBuf> = files
                    .iter()
                    .enumerate()
                    .filter(|(j, g)| *j != i && with_parents(g, k) == mine)
                    .map(|(_, g)| g)
                    .collect();
                // The same file named twice keeps one directory, like any stem collision.
                let only_itself = clashes.iter().all(|g| *g == f);
                if clashes.is_empty() || (only_itself && k >= 1) || k >= depth(f) {
                    break mine;
                }
                k += 1;
            }
        })
        .collect()
}

/// Reads every file, fits the power law on region 2 and the variable-exponent law on all
/// points, and writes the plot if asked.
///
/// Fails on the first file that cannot be read (message names file and row); a file whose data
/// do not support a fit still gets an entry, with that fit `None` and the reason in its notes.
pub fn run_fit(opts: &FitOptions) -> Result<FitReport, LawError> {
    let region2 = check_region(opts.region2)?;
    let files = expand_files(&opts.files)?;
    let read_opts = ReadOptions {
        skip_nonpositive: opts.skip_nonpositive,
    };
    let mut fits = Vec::with_capacity(files.len());
    for (file, label) in files.iter().zip(labels(&files)) {
        let data = read_law_csv_with(file, &read_opts)?;
        let mut notes: Vec<String> = data.dropped.iter().map(|d| d.to_string()).collect();
        if !data.ignored_columns.is_empty() {
            notes.push(format!(
                "ignored non-numeric columns: {}",
                data.ignored_columns.join(", ")
            ));
        }
        let power = fit_power_law(&data.points, region2)
            .map_err(|e| notes.push(format!("no power-law fit: {e}")))
            .ok();
        let varexp = fit_variable_exponent(&data.points)
            .map_err(|e| notes.push(format!("no variable-exponent fit: {e}")))
            .ok();
        let test = test_law(&data.points, region2, opts.bootstrap);
        fits.push(FileFit {
            file: file.clone(),
            label,
            power,
            varexp,
            points: data.points,
            notes,
            test,
        });
    }
    let plots = match &opts.plot_stem {
        Some(stem) => plot_fits(&fits, region2, stem)?,
        None => Vec::new(),
    };
    Ok(FitReport {
        fits,
        plots,
        region2,
    })
}

/// `v` with 4 significant digits (scientific outside `[0.01, 1e5)`).
fn num4(v: f64) -> String {
    hf_plot::format_sig(v, 4)
}

impl FitReport {
    /// A fixed-width text table: one row per file with both fits, then notes and plot paths.
    pub fn to_table(&self) -> String {
        let (lo, hi) = self.region2;
        let w = self
            .fits
            .iter()
            .map(|f| f.label.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!(
            "{:<w$} | power law on region 2 ({lo} < s <= {hi}) | variable exponent on all points\n",
            "",
        );
        out.push_str(&format!(
            "{:<w$} | {:>4} {:>10} {:>7} {:>7} | {:>4} {:>10} {:>7} {:>8} {:>7}\n",
            "file", "n", "c", "alpha", "R²", "n", "c", "a0", "a1", "R²"
        ));
        out.push_str(&format!("{}\n", "-".repeat(w + 78)));
        for f in &self.fits {
            let p = match &f.power {
                Some(p) => format!(
                    "{:>4} {:>10} {:>7} {:>7.4}",
                    p.n,
                    num4(p.c),
                    num4(p.alpha),
                    p.r2
                ),
                None => format!("{:>4} {:>10} {:>7} {:>7}", "-", "-", "-", "-"),
            };
            let v = match &f.varexp {
                Some(v) => format!(
                    "{:>4} {:>10} {:>7} {:>8} {:>7.4}",
                    v.n,
                    num4(v.c),
                    num4(v.a0),
                    num4(v.a1),
                    v.r2
                ),
                None => format!("{:>4} {:>10} {:>7} {:>8} {:>7}", "-", "-", "-", "-", "-"),
            };
            out.push_str(&format!("{:<w$} | {p} | {v}\n", f.label));
        }
        for f in &self.fits {
            let t = &f.test;
            let ci = match t.alpha_ci95 {
                Some((lo, hi)) => format!(
                    "alpha 95% [{}, {}] (block bootstrap, {} resamples, block {})",
                    num4(lo),
                    num4(hi),
                    t.bootstrap,
                    t.block
                ),
                None => "alpha 95% -".to_string(),
            };
            let ho = match &t.holdout {
                Some(h) => format!(
                    "held-out ln-density RMSE (fit denser {} / predict sparser {}): power {} vs variable exponent {}{}",
                    h.n_fit,
                    h.n_test,
                    num4(h.power),
                    h.varexp.map(num4).unwrap_or_else(|| "-".into()),
                    match h.power_law_holds() {
                        Some(true) => " (constant exponent holds)",
                        Some(false) => " (REJECTED: the exponent drifts)",
                        None => "",
                    }
                ),
                None => "held-out test: too few region-2 points".to_string(),
            };
            let alphas: Vec<f64> = t.alpha_by_region.iter().filter_map(|(_, a)| *a).collect();
            let range = if alphas.is_empty() {
                "-".to_string()
            } else {
                let lo = alphas.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = alphas.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                format!("{}..{}", num4(lo), num4(hi))
            };
            out.push_str(&format!(
                "test: {}: {ci}; {ho}; alpha over region bounds x/2..x2: {range}\n",
                f.label
            ));
        }
        for f in &self.fits {
            for n in &f.notes {
                out.push_str(&format!("note: {}: {n}\n", f.label));
            }
        }
        for p in &self.plots {
            out.push_str(&format!("plot: {}\n", p.display()));
        }
        out
    }

    /// Machine-readable form: region, per-file fits (without the raw points) and plot paths.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "region2": [self.region2.0, self.region2.1],
            "fits": self.fits.iter().map(|f| json!({
                "file": f.file.display().to_string(),
                "label": f.label,
                "n_points": f.points.len(),
                "power": f.power,
                "varexp": f.varexp,
                "alpha_ci95": f.test.alpha_ci95.map(|(lo, hi)| [lo, hi]),
                "bootstrap": f.test.bootstrap,
                "bootstrap_block": f.test.block,
                "holdout_rmse": f.test.holdout.map(|h| json!({
                    "power": h.power,
                    "varexp": h.varexp,
                    "n_fit": h.n_fit,
                    "n_test": h.n_test,
                    "power_law_holds": h.power_law_holds(),
                })),
                "alpha_by_region": f.test.alpha_by_region.iter().map(|((lo, hi), a)| json!({
                    "region2": [lo, hi], "alpha": a,
                })).collect::<Vec<_>>(),
                "notes": f.notes,
            })).collect::<Vec<_>>(),
            "plots": self.plots.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        })
    }
}
