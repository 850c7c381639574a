//! Log–log plots of law data with both fitted curves, via `hf-plot`.
//!
//! Saliency γ is on x and density s on y, as in the paper, so regions 1 (`s > hi`) and 3
//! (`s <= lo`) are horizontal grey bands.

use std::path::{Path, PathBuf};

use hf_plot::{Chart, Series, Style};

use crate::{FileFit, LawError, PowerFit, VarExpFit};

const X_LABEL: &str = "saliency threshold γ";
const Y_LABEL: &str = "density s (% remaining)";

/// Three significant digits, keeping trailing zeros: `1.50e-3`, `3.07`, `15.8`.
fn sig3(v: f64) -> String {
    if v != 0.0 && v.is_finite() && (0.01..1000.0).contains(&v.abs()) {
        let mag = v.abs().log10().floor() as i32;
        format!("{:.*}", (2 - mag).max(0) as usize, v)
    } else {
        format!("{v:.2e}")
    }
}

/// Legend text of a power-law fit, e.g. `s = 1.50e-3·γ^-1.533, R²=0.991`.
pub(crate) fn power_equation(p: &PowerFit) -> String {
    format!("s = {}·γ^{:.3}, R²={:.3}", sig3(p.c), -p.alpha, p.r2)
}

/// Legend text of a variable-exponent fit, e.g. `s = 2.19e-5·γ^-(3.271 + 0.1717·ln γ), R²=0.994`.
pub(crate) fn varexp_equation(v: &VarExpFit) -> String {
    let sign = if v.a1 < 0.0 { '−' } else { '+' };
    format!(
        "s = {}·γ^-({:.3} {sign} {}·ln γ), R²={:.3}",
        sig3(v.c),
        v.a0,
        hf_plot::format_sig(v.a1.abs(), 4),
        v.r2
    )
}

/// `n` geometrically spaced values from `a` to `b` (both > 0).
fn geomspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if !(a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()) || n < 2 {
        return Vec::new();
    }
    let (la, lb) = (a.ln(), b.ln());
    (0..n)
        .map(|i| (la + (lb - la) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

fn saliency_range(points: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for g in points.filter(|g| g.is_finite() && *g > 0.0) {
        lo = lo.min(g);
        hi = hi.max(g);
    }
    (lo <= hi).then_some((lo, hi))
}

fn bands(region2: (f64, f64)) -> Vec<(f64, f64)> {
    vec![(region2.1, f64::INFINITY), (0.0, region2.0)]
}

/// The chart of one file: its points, the power law over the region-2 saliency range and the
/// variable-exponent law over the whole range, regions 1 and 3 shaded.
fn file_chart(f: &FileFit, region2: (f64, f64)) -> Chart {
    let (lo, hi) = region2;
    let mut series = vec![Series::new(
        format!("{} data ({} points)", f.label, f.points.len()),
        f.points.iter().map(|p| (p.saliency, p.remaining)).collect(),
        Style::Points,
    )];
    if let Some(p) = &f.power {
        let r2pts = f
            .points
            .iter()
            .filter(|q| q.remaining > lo && q.remaining <= hi)
            .map(|q| q.saliency);
        if let Some((a, b)) = saliency_range(r2pts) {
            series.push(Series::new(
                format!("{} power: {}", f.label, power_equation(p)),
                geomspace(a, b, 60)
                    .into_iter()
                    .map(|g| (g, p.eval(g)))
                    .collect(),
                Style::Line,
            ));
        }
    }
    if let Some(v) = &f.varexp {
        if let Some((a, b)) = saliency_range(f.points.iter().map(|q| q.saliency)) {
            series.push(Series::new(
                format!("{} var-exp: {}", f.label, varexp_equation(v)),
                geomspace(a, b, 120)
                    .into_iter()
                    .map(|g| (g, v.eval(g)))
                    .collect(),
                Style::Dashed,
            ));
        }
    }
    Chart {
        title: format!("Neural pruning law: {} (grey: regions 1 and 3)", f.label),
        x_label: X_LABEL.to_string(),
        y_label: Y_LABEL.to_string(),
        log_x: true,
        log_y: true,
        series,
        shaded_x: Vec::new(),
        shaded_y: bands(region2),
    }
}

/// The charts for a set of fits: one per file, preceded by an overview of every file's points
/// when there is more than one file.
pub fn law_charts(fits: &[FileFit], region2: (f64, f64)) -> Vec<Chart> {
    let mut charts = Vec::with_capacity(fits.len() + 1);
    if fits.len() > 1 {
        charts.push(Chart {
            title: "Neural pruning law: all files (grey: regions 1 and 3)".to_string(),
            x_label: X_LABEL.to_string(),
            y_label: Y_LABEL.to_string(),
            log_x: true,
            log_y: true,
            series: fits
                .iter()
                .map(|f| {
                    Series::new(
                        f.label.clone(),
                        f.points.iter().map(|p| (p.saliency, p.remaining)).collect(),
                        Style::LinePoints,
                    )
                })
                .collect(),
            shaded_x: Vec::new(),
            shaded_y: bands(region2),
        });
    }
    charts.extend(fits.iter().map(|f| file_chart(f, region2)));
    charts
}

/// The residuals `ln s − ln(c·γ^−α)` of each file's region-2 points from its power-law fit,
/// against γ: a law that holds leaves them scattered around 0, a curving one leaves an arch.
/// `None` when no file has a power-law fit.
pub fn residual_chart(fits: &[FileFit], region2: (f64, f64)) -> Option<Chart> {
    let (lo, hi) = region2;
    let series: Vec<Series> = fits
        .iter()
        .filter_map(|f| {
            let p = f.power.as_ref()?;
            let pts: Vec<(f64, f64)> = f
                .points
                .iter()
                .filter(|q| q.remaining > lo && q.remaining <= hi && q.saliency > 0.0)
                .map(|q| (q.saliency, q.remaining.ln() - p.eval(q.saliency).ln()))
                .collect();
            Some(Series::new(
                format!("{} (α = {:.3})", f.label, p.alpha),
                pts,
                Style::LinePoints,
            ))
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    Some(Chart {
        title: format!(
            "Residuals of the power-law fit over region 2 ({lo} < s ≤ {hi}): ln s − ln(c·γ^−α)"
        ),
        x_label: X_LABEL.to_string(),
        y_label: "residual of ln s".to_string(),
        log_x: true,
        log_y: false,
        series,
        shaded_x: Vec::new(),
        shaded_y: Vec::new(),
    })
}

/// Writes the law plot for `fits` to `stem.png` / `stem.svg` (one chart for one file, stacked
/// panels otherwise), and the residuals of the power-law fits to `stem_residuals.png` / `.svg`
/// when there are any; returns the paths written.
pub fn plot_fits(
    fits: &[FileFit],
    region2: (f64, f64),
    stem: &Path,
) -> Result<Vec<PathBuf>, LawError> {
    let charts = law_charts(fits, region2);
    let mut paths = if charts.len() == 1 {
        hf_plot::draw(&charts[0], stem)?
    } else {
        hf_plot::draw_panels(&charts, stem)?
    }
    .to_vec();
    if let Some(r) = residual_chart(fits, region2) {
        let mut name = stem.file_name().unwrap_or_default().to_os_string();
        name.push("_residuals");
        paths.extend(hf_plot::draw(&r, &stem.with_file_name(name))?);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equations_read_like_the_paper() {
        let p = PowerFit {
            c: 1.503e-3,
            alpha: 1.533,
            r2: 0.9905,
            n: 44,
        };
        assert_eq!(power_equation(&p), "s = 1.50e-3·γ^-1.533, R²=0.991");
        let v = VarExpFit {
            c: 3.145,
            a0: 0.608,
            a1: 0.0194,
            r2: 0.9975,
            n: 16,
        };
        assert_eq!(
            varexp_equation(&v),
            "s = 3.15·γ^-(0.608 + 0.0194·ln γ), R²=0.998"
        );
        let neg = VarExpFit { a1: -0.5, ..v };
        assert!(varexp_equation(&neg).contains("− 0.5·ln γ"));
        assert_eq!(sig3(15.79), "15.8");
        assert_eq!(sig3(0.0123), "0.0123");
        assert_eq!(sig3(2.186e-5), "2.19e-5");
    }

    #[test]
    fn residuals_are_zero_on_an_exact_law_and_arch_on_a_curved_one() {
        use crate::LawPoint;
        let pts = |curve: f64| -> Vec<LawPoint> {
            (0..12)
                .map(|i| {
                    let g = 10f64.powf(-3.0 + 0.25 * i as f64);
                    let ln_s = (0.5f64).ln() - 0.8 * g.ln() + curve * g.ln().powi(2);
                    LawPoint {
                        epoch: None,
                        saliency: g,
                        remaining: ln_s.exp(),
                        accuracy: None,
                        extras: Vec::new(),
                    }
                })
                .collect()
        };
        let fit = |points: Vec<LawPoint>| FileFit {
            file: PathBuf::from("x.csv"),
            label: "x".into(),
            power: crate::fit_power_law(&points, (0.0, 1e9)).ok(),
            varexp: None,
            test: crate::hypothesis::test_law(&points, (0.0, 1e9), 0),
            points,
            notes: Vec::new(),
        };
        let exact = residual_chart(&[fit(pts(0.0))], (0.0, 1e9)).unwrap();
        assert_eq!(exact.series[0].points.len(), 12);
        assert!(exact.series[0].points.iter().all(|(_, r)| r.abs() < 1e-9));
        let curved = residual_chart(&[fit(pts(0.05))], (0.0, 1e9)).unwrap();
        let r: Vec<f64> = curved.series[0].points.iter().map(|p| p.1).collect();
        // A positive curvature leaves both ends above the line and the middle below it.
        assert!(r[0] > 0.0 && r[11] > 0.0 && r[6] < 0.0, "{r:?}");
        let none = FileFit {
            power: None,
            ..fit(pts(0.0))
        };
        assert!(residual_chart(&[none], (0.0, 1e9)).is_none());
    }

    #[test]
    fn geomspace_endpoints() {
        let g = geomspace(1e-3, 10.0, 5);
        assert_eq!(g.len(), 5);
        assert!((g[0] - 1e-3).abs() < 1e-15 && (g[4] - 10.0).abs() < 1e-12);
        assert!((g[2] - 0.1).abs() < 1e-12);
        assert!(geomspace(0.0, 1.0, 5).is_empty());
    }
}
