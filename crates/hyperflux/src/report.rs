//! Plots of a run: density vs epoch with the planned trajectory, and accuracy vs epoch (PNG + SVG).

use hf_core::records::EpochRecord;
use hf_plot::{Chart, Series, Style};
use std::path::{Path, PathBuf};

/// Draws `<dir>/density.{png,svg}` (density with the plan, log scale) and accuracy panels.
pub fn plot_run(dir: &Path, records: &[EpochRecord], title: &str) -> anyhow::Result<Vec<PathBuf>> {
    let density: Vec<(f64, f64)> = records
        .iter()
        .map(|r| (r.epoch as f64, r.density))
        .collect();
    let plan: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| r.expected_density.map(|e| (r.epoch as f64, e)))
        .collect();
    let mut series = vec![Series::new("measured density", density, Style::LinePoints)];
    if !plan.is_empty() {
        let mut p = vec![(0.0, 100.0)];
        p.extend(plan);
        series.push(Series::new("planned E(t)", p, Style::Dashed));
    }
    let log_y = records.iter().any(|r| r.density < 20.0);
    let dchart = Chart {
        title: format!("{title}: density"),
        x_label: "epoch".into(),
        y_label: "density (% of prunable weights)".into(),
        log_y,
        series,
        ..Chart::default()
    };
    let achart = Chart {
        title: format!("{title}: accuracy"),
        x_label: "epoch".into(),
        y_label: "accuracy (%)".into(),
        series: vec![
            Series::new(
                "test",
                records
                    .iter()
                    .map(|r| (r.epoch as f64, r.test_accuracy))
                    .collect(),
                Style::LinePoints,
            ),
            Series::new(
                "train (running)",
                records
                    .iter()
                    .map(|r| (r.epoch as f64, r.train_accuracy))
                    .collect(),
                Style::Dashed,
            ),
        ],
        ..Chart::default()
    };
    let [png, svg] = hf_plot::draw_panels(&[dchart, achart], &dir.join("density"))?;
    Ok(vec![png, svg])
}
