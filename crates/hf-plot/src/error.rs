//! [`PlotError`]: why a chart could not be written.

use std::io;
use std::path::PathBuf;

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
    /// [`draw_panels`](crate::draw_panels) was given no charts.
    #[error("no charts to draw into {}; pass at least one chart", path.display())]
    NoCharts {
        /// The requested output stem.
        path: PathBuf,
    },
}
