//! The project's charts: line / point charts with optional log axes and shaded bands, written as
//! PNG and SVG in pure Rust.
//!
//! Text is rendered with an embedded DejaVu Sans font (see `assets/DejaVuSans-LICENSE.txt`), so
//! charts look the same on every machine and need no system fonts. Every output file is written
//! atomically through [`hf_fsutil`]: an error never leaves a half-written chart behind.
//!
//! Bad data never panics: non-finite values are skipped, and so are non-positive values on a log
//! axis; empty charts, single points and constant values get a padded, non-degenerate range.
//!
//! Modules: the chart model (`chart`), errors (`error`), writing the PNG + SVG pair (`draw`),
//! painting onto a drawing area (`paint`), data to plot space (`plot_space`), axis ticks
//! (`ticks`), series colours (`palette`), the legend (`legend`) and the embedded font (`font`).

mod chart;
mod draw;
mod error;
mod font;
mod legend;
mod paint;
mod palette;
mod plot_space;
mod ticks;

pub use chart::{Chart, Series, Style};
pub use draw::{draw, draw_panels, CHART_SIZE, PANEL_HEIGHT};
pub use error::PlotError;
pub use ticks::format_sig;
