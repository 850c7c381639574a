//! Writing figures: [`draw`] and [`draw_panels`] render charts into a PNG + SVG pair, each file
//! written atomically, and never leave a half-written or mismatched pair behind.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use plotters::prelude::{BitMapBackend, IntoDrawingArea, SVGBackend};

use crate::chart::Chart;
use crate::error::PlotError;
use crate::font::ensure_font;
use crate::paint::paint_all;

/// Size in pixels of a single chart written by [`draw`].
pub const CHART_SIZE: (u32, u32) = (1000, 700);

/// Height in pixels of each panel written by [`draw_panels`] (width is [`CHART_SIZE`]`.0`).
pub const PANEL_HEIGHT: u32 = 520;

/// Draws one chart into `stem.png` (1000×700) and `stem.svg`, atomically; returns `[png, svg]`.
///
/// `stem` is the output path without extension (a trailing `.png` / `.svg` is replaced). The
/// parent directory is created if needed. If the second file cannot be written the first one is
/// removed again, so a failed call never leaves a mismatched or partial pair.
pub fn draw(chart: &Chart, stem: &Path) -> Result<[PathBuf; 2], PlotError> {
    write_figure(std::slice::from_ref(chart), stem, CHART_SIZE)
}

/// Draws several charts stacked vertically (each [`PANEL_HEIGHT`] pixels high) into one figure,
/// `stem.png` and `stem.svg`, with the same guarantees as [`draw`].
pub fn draw_panels(charts: &[Chart], stem: &Path) -> Result<[PathBuf; 2], PlotError> {
    if charts.is_empty() {
        return Err(PlotError::NoCharts {
            path: stem.to_path_buf(),
        });
    }
    let height = PANEL_HEIGHT.saturating_mul(charts.len() as u32);
    write_figure(charts, stem, (CHART_SIZE.0, height))
}

/// `stem` + `.ext`, replacing an existing `.png` / `.svg` extension.
fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let base = match stem.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("png") || e.eq_ignore_ascii_case("svg") => {
            stem.with_extension("")
        }
        _ => stem.to_path_buf(),
    };
    let mut s: OsString = base.into_os_string();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Error inside the PNG writer closure: either I/O or a rendering complaint.
enum FillError {
    Io(io::Error),
    Render(String),
}

impl From<io::Error> for FillError {
    fn from(e: io::Error) -> Self {
        FillError::Io(e)
    }
}

fn write_figure(
    charts: &[Chart],
    stem: &Path,
    size: (u32, u32),
) -> Result<[PathBuf; 2], PlotError> {
    let png = with_ext(stem, "png");
    let svg = with_ext(stem, "svg");
    ensure_font().map_err(|msg| PlotError::Font {
        path: png.clone(),
        msg,
    })?;

    // SVG is rendered into memory first, so layout problems surface before any file is touched.
    let mut svg_text = String::new();
    {
        let root = SVGBackend::with_string(&mut svg_text, size).into_drawing_area();
        paint_all(&root, charts).map_err(|msg| PlotError::Render {
            path: svg.clone(),
            msg,
        })?;
    }

    hf_fsutil::atomic_write_via_path(&png, |tmp: &Path| -> Result<(), FillError> {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        paint_all(&root, charts).map_err(FillError::Render)?;
        Ok(())
    })
    .map_err(|e| match e {
        FillError::Io(source) => PlotError::Io {
            path: png.clone(),
            source,
        },
        FillError::Render(msg) => PlotError::Render {
            path: png.clone(),
            msg,
        },
    })?;

    if let Err(source) = hf_fsutil::atomic_write_bytes(&svg, svg_text.as_bytes()) {
        // Keep the pair consistent: no PNG without its SVG.
        let _ = fs::remove_file(&png);
        return Err(PlotError::Io { path: svg, source });
    }
    Ok([png, svg])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bars_are_drawn_and_widen_the_range() {
        use crate::chart::{Series, Style};
        let dir = tempfile::tempdir().unwrap();
        let plain = Series::new("m", vec![(1.0, 10.0), (2.0, 12.0)], Style::LinePoints);
        let chart = |s: Series| Chart {
            series: vec![s],
            ..Chart::default()
        };
        let [_, a] = draw(&chart(plain.clone()), &dir.path().join("a")).unwrap();
        let [png, b] = draw(
            &chart(plain.with_y_err(vec![5.0, 5.0])),
            &dir.path().join("b"),
        )
        .unwrap();
        assert!(png.exists());
        let (a, b) = (
            std::fs::read_to_string(a).unwrap(),
            std::fs::read_to_string(b).unwrap(),
        );
        // two more paths (the bars), and a y axis reaching below 10 − 5
        // The series line is the 2-px polyline; its bars are 1-px polylines of its colour.
        let stroke = |l: &str| l.split("stroke=\"").nth(1).map(|r| r[..7].to_string());
        let bars = |svg: &str| {
            let line = svg
                .lines()
                .find(|l| l.contains("<polyline") && l.contains("stroke-width=\"2\""))
                .and_then(stroke)
                .unwrap();
            svg.lines()
                .filter(|l| l.contains("<polyline") && l.contains("stroke-width=\"1\""))
                .filter(|l| stroke(l).as_deref() == Some(line.as_str()))
                .count()
        };
        assert_eq!((bars(&a), bars(&b)), (0, 2));
    }

    #[test]
    fn stem_extension_handling() {
        assert_eq!(with_ext(Path::new("a/b"), "png"), PathBuf::from("a/b.png"));
        assert_eq!(
            with_ext(Path::new("a/b.v2"), "svg"),
            PathBuf::from("a/b.v2.svg")
        );
        assert_eq!(
            with_ext(Path::new("a/b.png"), "svg"),
            PathBuf::from("a/b.svg")
        );
    }
}
