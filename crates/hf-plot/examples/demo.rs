//! Draws a demonstration chart: `cargo run -p hf-plot --example demo -- /tmp/hf-plot-demo`.

use std::path::PathBuf;

use hf_plot::{draw, draw_panels, Chart, Series, Style};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stem = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "hf-plot-demo".into()),
    );
    let g: Vec<f64> = (0..40).map(|i| 1e-4 * 1.25f64.powi(i)).collect();
    let measured: Vec<(f64, f64)> = g
        .iter()
        .map(|&x| (x, (1.5e-3 * x.powf(-1.53)).min(100.0)))
        .collect();
    let chart = Chart {
        title: "Neural pruning law (demo)".into(),
        x_label: "saliency γ".into(),
        y_label: "density s (%)".into(),
        log_x: true,
        log_y: true,
        series: vec![
            Series::new("measured", measured.clone(), Style::Points),
            Series::new(
                "power: s = 1.50e-3·γ^-1.530, R²=0.991",
                measured
                    .iter()
                    .map(|&(x, _)| (x, 1.5e-3 * x.powf(-1.53)))
                    .collect(),
                Style::Line,
            ),
            Series::new(
                "shifted",
                measured.iter().map(|&(x, y)| (x, y * 0.5)).collect(),
                Style::Dashed,
            ),
            Series::new(
                "line+points",
                measured
                    .iter()
                    .step_by(4)
                    .map(|&(x, y)| (x, y * 0.2))
                    .collect(),
                Style::LinePoints,
            ),
        ],
        shaded_x: vec![],
        shaded_y: vec![(50.0, f64::INFINITY), (0.0, 0.5)],
    };
    let [png, svg] = draw(&chart, &stem)?;
    println!("{}\n{}", png.display(), svg.display());
    let lin = Chart {
        title: "Linear axes".into(),
        log_x: false,
        log_y: false,
        shaded_x: vec![(0.01, 0.02)],
        shaded_y: vec![],
        ..chart.clone()
    };
    let mut panels_stem = stem.into_os_string();
    panels_stem.push("-panels");
    let [png, svg] = draw_panels(&[chart, lin], &PathBuf::from(panels_stem))?;
    println!("{}\n{}", png.display(), svg.display());
    Ok(())
}
