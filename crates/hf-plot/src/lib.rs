//! The project's charts: line / point charts with optional log axes and shaded bands, written as
//! PNG and SVG in pure Rust.
//!
//! Text is rendered with an embedded DejaVu Sans font (see `assets/DejaVuSans-LICENSE.txt`), so
//! charts look the same on every machine and need no system fonts. Every output file is written
//! atomically through [`hf_core::fsutil`]: an error never leaves a half-written chart behind.
//!
//! Bad data never panics: non-finite values are skipped, and so are non-positive values on a log
//! axis; empty charts, single points and constant values get a padded, non-degenerate range.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::element::{Circle, Drawable, PointCollection, Rectangle};
use plotters::prelude::{
    BitMapBackend, ChartBuilder, DashedLineSeries, DrawingArea, DrawingBackend, IntoDrawingArea,
    LineSeries, PathElement, SVGBackend, SeriesLabelPosition,
};
use plotters::style::{
    register_font, Color, FontStyle, HSLColor, IntoFont, RGBColor, ShapeStyle, BLACK, WHITE,
};
use plotters_backend::{BackendCoord, DrawingErrorKind};

/// The embedded font (DejaVu Sans 2.37, Bitstream Vera licence), registered as `sans-serif`.
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Size in pixels of a single chart written by [`draw`].
pub const CHART_SIZE: (u32, u32) = (1000, 700);

/// Height in pixels of each panel written by [`draw_panels`] (width is [`CHART_SIZE`]`.0`).
pub const PANEL_HEIGHT: u32 = 520;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// Solid line through the points in the given order.
    #[default]
    Line,
    /// Dashed line through the points in the given order.
    Dashed,
    /// Filled circle markers, no line.
    Points,
    /// Solid line with small circle markers.
    LinePoints,
}

/// One named data series; `name` is shown in the legend (an empty name is left out of it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// `(x, y)` points in data units; invalid points (non-finite, or `<= 0` on a log axis) are
    /// skipped, and a line is broken where they were.
    pub points: Vec<(f64, f64)>,
    /// How the series is drawn.
    pub style: Style,
    /// Optional vertical error bars: `y_err[i]` is drawn as `points[i].1 ± y_err[i]` (empty:
    /// none; non-finite or non-positive values draw no bar).
    pub y_err: Vec<f64>,
}

impl Series {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, style: Style) -> Self {
        Series {
            name: name.into(),
            points,
            style,
            y_err: Vec::new(),
        }
    }

    /// The same series with vertical error bars `± y_err[i]` at each point.
    pub fn with_y_err(mut self, y_err: Vec<f64>) -> Self {
        self.y_err = y_err;
        self
    }

    /// The error bars as plot-space `(x, y_low, y_high)`, skipping invalid ones.
    fn error_bars(&self, log_x: bool, log_y: bool) -> Vec<(f64, f64, f64)> {
        self.points
            .iter()
            .zip(&self.y_err)
            .filter(|(_, e)| e.is_finite() && **e > 0.0)
            .filter_map(|(&(x, y), &e)| {
                let lo = map_point((x, y - e), log_x, log_y)?;
                let hi = map_point((x, y + e), log_x, log_y)?;
                Some((lo.0, lo.1, hi.1))
            })
            .collect()
    }
}

/// A whole chart: axes, series and shaded bands. Series get distinct colours in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    /// Caption above the plot (omitted when empty).
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// Logarithmic x axis (base 10); x values `<= 0` are skipped.
    pub log_x: bool,
    /// Logarithmic y axis (base 10); y values `<= 0` are skipped.
    pub log_y: bool,
    /// The data.
    pub series: Vec<Series>,
    /// X intervals drawn as light grey vertical bands (e.g. regions of a law). Bounds may be
    /// infinite or `<= 0` on a log axis: bands are clipped to the plotted range.
    pub shaded_x: Vec<(f64, f64)>,
    /// Y intervals drawn as light grey horizontal bands, clipped like [`Chart::shaded_x`].
    pub shaded_y: Vec<(f64, f64)>,
}

/// Why a chart could not be written. Messages are one line and name the file.
#[derive(thiserror::Error, Debug)]
pub enum PlotError {
    /// Creating the directory or writing/renaming the file failed.
    #[error("cannot write chart {}: {source}; check that the output directory is a writable directory", path.display())]
    Io {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The plotting library reported an error while drawing.
    #[error("cannot render chart {}: {msg}", path.display())]
    Render {
        /// The file being rendered.
        path: PathBuf,
        /// What the plotting library said.
        msg: String,
    },
    /// The embedded font could not be loaded (a build problem, not a data problem).
    #[error("cannot render chart {}: embedded font failed to load ({msg}); the hf-plot build is broken", path.display())]
    Font {
        /// The file being rendered.
        path: PathBuf,
        /// What the font loader said.
        msg: String,
    },
    /// [`draw_panels`] was given no charts.
    #[error("no charts to draw into {}; pass at least one chart", path.display())]
    NoCharts {
        /// The requested output stem.
        path: PathBuf,
    },
}

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

/// Registers the embedded font once per process; returns the loader's complaint on failure.
fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, FONT_BYTES)
            .map_err(|_| "DejaVuSans.ttf is not a valid TrueType font".to_string())
    })
    .clone()
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

    hf_core::fsutil::atomic_write_via_path(&png, |tmp: &Path| -> Result<(), FillError> {
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

    if let Err(source) = hf_core::fsutil::atomic_write_bytes(&svg, svg_text.as_bytes()) {
        // Keep the pair consistent: no PNG without its SVG.
        let _ = fs::remove_file(&png);
        return Err(PlotError::Io { path: svg, source });
    }
    Ok([png, svg])
}

/// Paints every chart into its own vertical slot of `root` and flushes the backend.
fn paint_all<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    charts: &[Chart],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((charts.len().max(1), 1));
    for (chart, area) in charts.iter().zip(areas.iter()) {
        paint_chart(area, chart)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Maps a data value to plot space (log10 on log axes); `None` if it cannot be shown.
fn to_plot(v: f64, log: bool) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    if log {
        if v > 0.0 {
            Some(v.log10())
        } else {
            None
        }
    } else {
        Some(v)
    }
}

/// Values beyond this magnitude (in plot space) are skipped: plotting ±1e308 ranges overflows.
const MAX_ABS: f64 = 1e150;

fn map_point(p: (f64, f64), log_x: bool, log_y: bool) -> Option<(f64, f64)> {
    let x = to_plot(p.0, log_x)?;
    let y = to_plot(p.1, log_y)?;
    (x.abs() <= MAX_ABS && y.abs() <= MAX_ABS).then_some((x, y))
}

/// A padded, non-degenerate plot-space range covering `values`.
fn axis_range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        // No data: a unit range (1..10 on a log axis).
        return (0.0, 1.0);
    }
    let span = hi - lo;
    if span <= 0.0 || span < 1e-12 * lo.abs().max(hi.abs()) {
        let pad = if log { 0.5 } else { (lo.abs() * 0.1).max(0.5) };
        return (lo - pad, hi + pad);
    }
    (lo - 0.05 * span, hi + 0.05 * span)
}

/// Clips a data-space interval to the plot-space range `(lo, hi)`; `None` if nothing is left.
fn clip_band(band: (f64, f64), log: bool, (lo, hi): (f64, f64)) -> Option<(f64, f64)> {
    let (a, b) = if band.0 <= band.1 {
        band
    } else {
        (band.1, band.0)
    };
    if a.is_nan() || b.is_nan() {
        return None;
    }
    let map = |v: f64| -> f64 {
        if log {
            if v <= 0.0 {
                f64::NEG_INFINITY
            } else {
                v.log10()
            }
        } else {
            v
        }
    };
    let (a, b) = (map(a).max(lo), map(b).min(hi));
    (a < b).then_some((a, b))
}

/// Distinct colour for series `i`: a ten-colour qualitative palette, then golden-ratio hues.
fn series_color(i: usize) -> HSLColor {
    const PALETTE: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    if i < PALETTE.len() {
        let (r, g, b) = PALETTE[i];
        rgb_to_hsl(r, g, b)
    } else {
        let h = ((i - PALETTE.len()) as f64 * 0.618_033_988_75 + 0.13) % 1.0;
        let l = [0.40, 0.55][i % 2];
        HSLColor(h, 0.7, l)
    }
}

fn rgb_to_hsl(r: u8, g: u8, b: u8) -> HSLColor {
    let (r, g, b) = (r as f64 / 255.0, g as f64 / 255.0, b as f64 / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let l = (max + min) / 2.0;
    if max == min {
        return HSLColor(0.0, 0.0, l);
    }
    let d = max - min;
    let s = if l > 0.5 {
        d / (2.0 - max - min)
    } else {
        d / (max + min)
    };
    let h = if max == r {
        (g - b) / d + if g < b { 6.0 } else { 0.0 }
    } else if max == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    };
    HSLColor(h / 6.0, s, l)
}

/// Tick label for plot-space value `v`.
fn tick_label(v: f64, log: bool, span: f64) -> String {
    if log {
        let e = v.round();
        if (v - e).abs() < 1e-6 {
            let e = e as i32;
            return if (0..=4).contains(&e) {
                format!("{}", 10f64.powi(e))
            } else if (-3..0).contains(&e) {
                format!("{:.*}", (-e) as usize, 10f64.powi(e))
            } else {
                format!("1e{e}")
            };
        }
        let val = 10f64.powf(v);
        if (1e-3..1e5).contains(&val) {
            let mag = val.log10().floor() as i32;
            let s = format!("{:.*}", (1 - mag).max(0) as usize, val);
            return if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            };
        }
        format_sig(val, 2)
    } else {
        if v.abs() < span * 1e-9 {
            return "0".to_string();
        }
        format_sig(v, 4)
    }
}

/// A linear plot-space axis with precomputed tick positions (plotters' own key points are
/// placed for linear data; on log axes we want decades).
struct Axis {
    lo: f64,
    hi: f64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Axis {
    fn new((lo, hi): (f64, f64), bold: Vec<f64>, light: Vec<f64>) -> Self {
        Axis {
            lo,
            hi,
            bold,
            light,
        }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let frac = (v - self.lo) / (self.hi - self.lo);
        let len = (limit.1 - limit.0) as f64;
        if !frac.is_finite() {
            return if frac > 0.0 { limit.1 } else { limit.0 };
        }
        // Clamp far-outside values so the pixel arithmetic cannot overflow.
        let px = (len * frac.clamp(-10.0, 11.0)).round();
        limit.0 + px as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// Tick positions (bold, light) in plot space for the range `(lo, hi)`.
///
/// Log axes get whole decades when at least two fit (thinned to at most ~10, the others
/// becoming light lines), otherwise 1-2-5 or 1..9 multiples of decades; linear axes get
/// 1-2-5 "nice" steps. Never empty for a non-degenerate range.
fn ticks(lo: f64, hi: f64, log: bool) -> (Vec<f64>, Vec<f64>) {
    if lo >= hi || !lo.is_finite() || !hi.is_finite() {
        return (Vec::new(), Vec::new());
    }
    if log {
        let (a, b) = (lo.ceil() as i64, hi.floor() as i64);
        let decades: Vec<f64> = (a..=b).map(|k| k as f64).collect();
        let multiples = |ms: &[f64]| -> Vec<f64> {
            ((lo.floor() as i64)..=(hi.ceil() as i64))
                .flat_map(|k| ms.iter().map(move |m| k as f64 + m.log10()))
                .filter(|v| *v >= lo && *v <= hi)
                .collect()
        };
        if (2..=3).contains(&decades.len()) {
            // Two or three decades: label 1-2-5 multiples too.
            return (
                multiples(&[1.0, 2.0, 5.0]),
                multiples(&[3.0, 4.0, 6.0, 7.0, 8.0, 9.0]),
            );
        }
        if decades.len() >= 2 {
            let step = decades.len().div_ceil(10).max(1) as i64;
            let (bold, rest): (Vec<f64>, Vec<f64>) = decades
                .iter()
                .partition(|&&k| (k as i64).rem_euclid(step) == 0);
            let mut light = rest;
            if step == 1 && decades.len() <= 8 {
                light.extend(multiples(&[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]));
            }
            return (bold, light);
        }
        for ms in [
            &[1.0, 2.0, 5.0][..],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0][..],
        ] {
            let pts = multiples(ms);
            if pts.len() >= 3 {
                return (pts, Vec::new());
            }
        }
    }
    let raw = (hi - lo) / 8.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|st| raw <= *st)
        .unwrap_or(10.0 * mag);
    let grid = |st: f64| -> Vec<f64> {
        let first = (lo / st).ceil() as i64;
        let last = (hi / st).floor() as i64;
        (first..=last).map(|i| i as f64 * st).collect()
    };
    (grid(step), grid(step / 5.0))
}

/// Formats `v` with at most `sig` significant digits, trailing zeros trimmed; scientific for
/// very large or very small magnitudes.
pub fn format_sig(v: f64, sig: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let sig = sig.max(1);
    let mag = v.abs().log10().floor() as i32;
    if !(-2..5).contains(&mag) {
        let s = format!("{:.*e}", sig - 1, v);
        // "1.50e-3" -> trim zeros in the mantissa: "1.5e-3"
        if let Some((m, e)) = s.split_once('e') {
            let m = if m.contains('.') {
                m.trim_end_matches('0').trim_end_matches('.')
            } else {
                m
            };
            return format!("{m}e{e}");
        }
        return s;
    }
    let decimals = (sig as i32 - 1 - mag).max(0) as usize;
    let s = format!("{:.*}", decimals, v);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Where to put the legend: of the corners and edge middles, the spot whose (estimated) legend
/// box covers the fewest data points, lines sampled between their points. `size` is the legend
/// box as a fraction of the plot area (width, height).
fn legend_position(
    segs: &[Vec<Vec<(f64, f64)>>],
    styles: &[Style],
    xr: (f64, f64),
    yr: (f64, f64),
    size: (f64, f64),
) -> SeriesLabelPosition {
    let (fw, fh) = (size.0.min(1.0), size.1.min(1.0));
    let norm = |(x, y): (f64, f64)| ((x - xr.0) / (xr.1 - xr.0), (y - yr.0) / (yr.1 - yr.0));
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for (series, style) in segs.iter().zip(styles) {
        for seg in series {
            pts.extend(seg.iter().map(|&p| norm(p)));
            if *style != Style::Points {
                for w in seg.windows(2) {
                    let (a, b) = (norm(w[0]), norm(w[1]));
                    pts.extend((1..8).map(|k| {
                        let t = k as f64 / 8.0;
                        (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
                    }));
                }
            }
        }
    }
    // (position, u range, v range) with v measured from the bottom; a small margin around.
    let (m, mid_u, mid_v) = (
        0.02,
        (0.5 - fw / 2.0, 0.5 + fw / 2.0),
        (0.5 - fh / 2.0, 0.5 + fh / 2.0),
    );
    let (left, right, top, bottom) = (
        (0.0, fw + m),
        (1.0 - fw - m, 1.0),
        (1.0 - fh - m, 1.0),
        (0.0, fh + m),
    );
    let candidates = [
        (SeriesLabelPosition::UpperRight, right, top),
        (SeriesLabelPosition::UpperLeft, left, top),
        (SeriesLabelPosition::LowerLeft, left, bottom),
        (SeriesLabelPosition::LowerRight, right, bottom),
        (SeriesLabelPosition::UpperMiddle, mid_u, top),
        (SeriesLabelPosition::LowerMiddle, mid_u, bottom),
        (SeriesLabelPosition::MiddleRight, right, mid_v),
        (SeriesLabelPosition::MiddleLeft, left, mid_v),
    ];
    let inside = |(u, v): (f64, f64), ur: (f64, f64), vr: (f64, f64)| {
        u >= ur.0 && u <= ur.1 && v >= vr.0 && v <= vr.1
    };
    let mut best = (usize::MAX, SeriesLabelPosition::UpperRight);
    for (pos, ur, vr) in candidates {
        let n = pts.iter().filter(|&&p| inside(p, ur, vr)).count();
        if n < best.0 {
            best = (n, pos);
        }
    }
    best.1
}

/// Splits a series into runs of consecutive valid plot-space points.
fn segments(s: &Series, log_x: bool, log_y: bool) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur = Vec::new();
    for &p in &s.points {
        match map_point(p, log_x, log_y) {
            Some(q) => cur.push(q),
            None => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn paint_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let (log_x, log_y) = (chart.log_x, chart.log_y);
    let segs: Vec<Vec<Vec<(f64, f64)>>> = chart
        .series
        .iter()
        .map(|s| segments(s, log_x, log_y))
        .collect();
    let bars: Vec<Vec<(f64, f64, f64)>> = chart
        .series
        .iter()
        .map(|s| s.error_bars(log_x, log_y))
        .collect();
    let mut all: Vec<(f64, f64)> = segs.iter().flatten().flatten().copied().collect();
    all.extend(bars.iter().flatten().flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]));
    let xr = axis_range(all.iter().map(|p| p.0), log_x);
    let yr = axis_range(all.iter().map(|p| p.1), log_y);

    let mut builder = ChartBuilder::on(area);
    builder
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(75);
    if !chart.title.is_empty() {
        builder.caption(&chart.title, ("sans-serif", 24).into_font());
    }
    let (xb, xl) = ticks(xr.0, xr.1, log_x);
    let (yb, yl) = ticks(yr.0, yr.1, log_y);
    let mut ctx = builder
        .build_cartesian_2d(Axis::new(xr, xb, xl), Axis::new(yr, yb, yl))
        .map_err(|e| err(&e))?;

    let (xspan, yspan) = (xr.1 - xr.0, yr.1 - yr.0);
    let xfmt = move |v: &f64| tick_label(*v, log_x, xspan);
    let yfmt = move |v: &f64| tick_label(*v, log_y, yspan);
    ctx.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .label_style(("sans-serif", 15).into_font())
        .axis_desc_style(("sans-serif", 17).into_font())
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(|e| err(&e))?;

    // Bands under the data, translucent so overlapping bands read darker.
    let band = ShapeStyle::from(&BLACK.mix(0.09)).filled();
    let mut rects = Vec::new();
    for &b in &chart.shaded_x {
        if let Some((a, c)) = clip_band(b, log_x, xr) {
            rects.push(Rectangle::new([(a, yr.0), (c, yr.1)], band));
        }
    }
    for &b in &chart.shaded_y {
        if let Some((a, c)) = clip_band(b, log_y, yr) {
            rects.push(Rectangle::new([(xr.0, a), (xr.1, c)], band));
        }
    }
    if !rects.is_empty() {
        ctx.draw_series(rects).map_err(|e| err(&e))?;
    }

    let mut any_label = false;
    for (i, (series, segs)) in chart.series.iter().zip(segs.iter()).enumerate() {
        let color = series_color(i);
        let line = color.stroke_width(2);
        let fill = color.filled();
        if !bars[i].is_empty() {
            ctx.draw_series(bars[i].iter().map(|&(x, lo, hi)| {
                PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1))
            }))
            .map_err(|e| err(&e))?;
        }
        let mut first = true;
        // An empty series still gets its legend entry (via one empty draw).
        let empty = [Vec::new()];
        let parts: &[Vec<(f64, f64)>] = if segs.is_empty() { &empty } else { segs };
        for seg in parts {
            let anno = match series.style {
                Style::Line => ctx.draw_series(LineSeries::new(seg.iter().copied(), line)),
                Style::Dashed => {
                    ctx.draw_series(DashedLineSeries::new(seg.iter().copied(), 10, 6, line))
                }
                Style::Points => ctx.draw_series(seg.iter().map(|&p| Circle::new(p, 4, fill))),
                Style::LinePoints => {
                    ctx.draw_series(LineSeries::new(seg.iter().copied(), line).point_size(3))
                }
            }
            .map_err(|e| err(&e))?;
            if first && !series.name.is_empty() {
                any_label = true;
                let style = series.style;
                anno.label(series.name.as_str())
                    .legend(move |at| LegendGlyph {
                        at: [at],
                        style,
                        color,
                    });
            }
            first = false;
        }
    }

    if any_label {
        // Legend box estimate: 15 px text (~8.2 px per character), 19 px rows, glyph + padding.
        let labelled: Vec<&Series> = chart.series.iter().filter(|s| !s.name.is_empty()).collect();
        let chars = labelled
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        let (aw, ah) = area.dim_in_pixel();
        let title_h = if chart.title.is_empty() { 0.0 } else { 40.0 };
        let plot_w = (aw as f64 - 75.0 - 30.0).max(1.0);
        let plot_h = (ah as f64 - 50.0 - 30.0 - title_h).max(1.0);
        let legend_size = (
            (chars as f64 * 8.2 + 60.0) / plot_w,
            (labelled.len() as f64 * 19.0 + 14.0) / plot_h,
        );
        let styles: Vec<Style> = chart.series.iter().map(|s| s.style).collect();
        ctx.configure_series_labels()
            .position(legend_position(&segs, &styles, xr, yr, legend_size))
            .background_style(WHITE.mix(0.88))
            .border_style(RGBColor(120, 120, 120))
            .label_font(("sans-serif", 15).into_font())
            .draw()
            .map_err(|e| err(&e))?;
    }
    Ok(())
}

/// The little picture in front of a legend entry, drawn straight on the backend: a 24-pixel
/// line (solid or dashed) and/or a marker, matching the series style.
struct LegendGlyph {
    at: [(i32, i32); 1],
    style: Style,
    color: HSLColor,
}

impl<'a> PointCollection<'a, (i32, i32)> for &'a LegendGlyph {
    type Point = &'a (i32, i32);
    type IntoIter = &'a [(i32, i32)];
    fn point_iter(self) -> Self::IntoIter {
        &self.at
    }
}

impl<DB: DrawingBackend> Drawable<DB> for LegendGlyph {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut pos: I,
        backend: &mut DB,
        _parent_dim: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = pos.next() else {
            return Ok(());
        };
        let line = self.color.stroke_width(2);
        let pieces: &[(i32, i32)] = match self.style {
            Style::Line | Style::LinePoints => &[(0, 24)],
            Style::Dashed => &[(0, 6), (9, 15), (18, 24)],
            Style::Points => &[],
        };
        for &(a, b) in pieces {
            backend.draw_line((x + a, y), (x + b, y), &line)?;
        }
        let radius = match self.style {
            Style::Points => 4,
            Style::LinePoints => 3,
            _ => 0,
        };
        if radius > 0 {
            backend.draw_circle((x + 12, y), radius, &self.color.filled(), true)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn error_bars_skip_invalid_values_and_respect_log_axes() {
        let s = Series::new("m", vec![(1.0, 10.0), (2.0, 20.0), (3.0, 5.0)], Style::LinePoints)
            .with_y_err(vec![1.0, f64::NAN, 6.0]);
        assert_eq!(s.error_bars(false, false), vec![(1.0, 9.0, 11.0), (3.0, -1.0, 11.0)]);
        // on a log y axis the bar reaching below 0 is dropped
        let b = s.error_bars(false, true);
        assert_eq!(b.len(), 1);
        assert!((b[0].1 - 9f64.log10()).abs() < 1e-12);
        // drawn: the chart's files appear
        let dir = tempfile::tempdir().unwrap();
        let chart = Chart {
            series: vec![s],
            ..Chart::default()
        };
        let [png, svg] = draw(&chart, &dir.path().join("bars")).unwrap();
        assert!(png.exists() && svg.exists());
        assert!(std::fs::read_to_string(svg).unwrap().contains("<polyline"));
    }

    #[test]
    fn ranges_are_padded_and_never_degenerate() {
        assert_eq!(axis_range(std::iter::empty(), false), (0.0, 1.0));
        let (lo, hi) = axis_range([3.0].into_iter(), false);
        assert!(lo < 3.0 && hi > 3.0);
        let (lo, hi) = axis_range([2.0, 2.0, 2.0].into_iter(), true);
        assert!((lo - 1.5).abs() < 1e-12 && (hi - 2.5).abs() < 1e-12);
        let (lo, hi) = axis_range([0.0, 10.0].into_iter(), false);
        assert!((lo + 0.5).abs() < 1e-12 && (hi - 10.5).abs() < 1e-12);
    }

    #[test]
    fn invalid_points_are_skipped_and_split_lines() {
        let s = Series::new(
            "s",
            vec![
                (1.0, 1.0),
                (2.0, 0.0),
                (3.0, 3.0),
                (f64::NAN, 1.0),
                (4.0, 4.0),
            ],
            Style::Line,
        );
        let segs = segments(&s, false, true);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0], vec![(1.0, 0.0)]);
        assert!((segs[1][0].1 - 3f64.log10()).abs() < 1e-12);
        assert_eq!(segments(&s, false, false).len(), 2);
    }

    #[test]
    fn bands_are_clipped_to_the_range() {
        let r = (-1.0, 2.0);
        assert_eq!(
            clip_band((50.0, f64::INFINITY), true, r),
            Some((50f64.log10(), 2.0))
        );
        assert_eq!(clip_band((0.0, 0.5), true, r), Some((-1.0, 0.5f64.log10())));
        assert_eq!(clip_band((1000.0, 1e6), true, r), None);
        assert_eq!(clip_band((-5.0, -1.0), true, r), None);
        assert_eq!(clip_band((f64::NAN, 1.0), false, r), None);
        assert_eq!(clip_band((1.0, 0.0), false, r), Some((0.0, 1.0)));
    }

    #[test]
    fn legend_avoids_the_data() {
        let pos = |pts: Vec<(f64, f64)>, style: Style| {
            legend_position(&[vec![pts]], &[style], (0.0, 1.0), (0.0, 1.0), (0.3, 0.2))
        };
        let at = |p: SeriesLabelPosition| format!("{p:?}");
        assert_eq!(at(pos(vec![], Style::Points)), "UpperRight");
        assert_eq!(at(pos(vec![(0.9, 0.9)], Style::Points)), "UpperLeft");
        let top_row: Vec<(f64, f64)> = (0..=10).map(|i| (i as f64 / 10.0, 0.95)).collect();
        assert_eq!(at(pos(top_row, Style::Points)), "LowerLeft");
        // Lines count along their length, not just at their points.
        let across = vec![(-1.0, 0.9), (2.0, 0.9)];
        assert_eq!(at(pos(across.clone(), Style::Points)), "UpperRight");
        assert_eq!(at(pos(across, Style::Dashed)), "LowerLeft");
        let rising = vec![(0.0, 0.0), (1.0, 1.0)];
        assert_eq!(at(pos(rising, Style::Line)), "UpperLeft");
    }

    #[test]
    fn colours_are_distinct() {
        let cols: Vec<(u8, u8, u8)> = (0..30)
            .map(|i| {
                let c = series_color(i).to_rgba();
                (c.0, c.1, c.2)
            })
            .collect();
        for i in 0..cols.len() {
            for j in 0..i {
                assert_ne!(cols[i], cols[j], "series {i} and {j} share a colour");
            }
        }
        // Palette colours survive the HSL round trip.
        let c = series_color(0).to_rgba();
        assert!((c.0 as i32 - 31).abs() <= 1 && (c.2 as i32 - 180).abs() <= 1);
    }

    #[test]
    fn ticks_prefer_decades_on_log_axes() {
        let (b, l) = ticks(-4.2, 1.3, true);
        assert_eq!(b, vec![-4.0, -3.0, -2.0, -1.0, 0.0, 1.0]);
        assert!(l.contains(&(-3.0 + 2f64.log10())));
        // 25 decades: thinned to every third, the rest light.
        let (b, l) = ticks(-24.5, 0.5, true);
        assert!(b.len() <= 10 && b.len() >= 5 && b.contains(&-3.0), "{b:?}");
        assert!(l.contains(&-1.0));
        // Less than two decades: 1-2-5 multiples.
        let (b, _) = ticks(0.2, 1.9, true);
        let vals: Vec<f64> = b
            .iter()
            .map(|v| (10f64.powf(*v) * 1e6).round() / 1e6)
            .collect();
        assert_eq!(vals, vec![2.0, 5.0, 10.0, 20.0, 50.0]);
        // Two decades: 1-2-5 labels.
        let (b, l) = ticks(-0.7, 1.0, true);
        assert_eq!(b.len(), 6, "{b:?}");
        assert!(l.contains(&4f64.log10()));
        // A sliver of a decade still gets ticks.
        assert!(ticks(0.30, 0.31, true).0.len() >= 2);
        let (b, l) = ticks(-0.05, 1.05, false);
        assert_eq!(b.len(), 6);
        assert!((b[1] - 0.2).abs() < 1e-12 && l.len() > b.len());
        assert!(ticks(1.0, 1.0, false).0.is_empty());
    }

    #[test]
    fn tick_labels_are_readable() {
        assert_eq!(tick_label(-3.0, true, 5.0), "0.001");
        assert_eq!(tick_label(2.0, true, 5.0), "100");
        assert_eq!(tick_label(-12.0, true, 5.0), "1e-12");
        assert_eq!(tick_label(0.5, true, 1.0), "3.2");
        assert_eq!(tick_label(-2.5, true, 1.0), "0.0032");
        assert_eq!(tick_label(-5.5, true, 1.0), "3.2e-6");
        assert_eq!(tick_label(2f64.log10(), true, 1.0), "2");
        assert_eq!(tick_label(-3.0 + 5f64.log10(), true, 1.0), "0.005");
        assert_eq!(tick_label(0.30000000000000004, false, 1.0), "0.3");
        assert_eq!(tick_label(1e-17, false, 1.0), "0");
        assert_eq!(format_sig(1.503e-3, 4), "1.503e-3");
        assert_eq!(format_sig(0.0123456, 3), "0.0123");
        assert_eq!(format_sig(123456.0, 3), "1.23e5");
    }
}
