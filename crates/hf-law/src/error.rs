//! The one error type of this crate. Every message is a single line that names the file (and
//! data row) involved and says what to do about it.

use std::io;
use std::path::PathBuf;

/// Why reading, fitting, writing or plotting pruning-law data failed.
///
/// Rows are reported both ways: `data row N` counts data records from 1 (the header is not a
/// data row) and `line M` is the physical line in the file (the header is line 1).
#[derive(thiserror::Error, Debug)]
pub enum LawError {
    /// The input file could not be read.
    #[error("cannot read {}: {source}; check the path", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}; check that the output directory is writable", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The CSV itself is malformed (e.g. a row with a different number of fields).
    #[error("{}: line {line}: malformed CSV ({msg}); every row needs as many fields as the header", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// Physical line number (header = line 1).
        line: u64,
        /// What the CSV parser said.
        msg: String,
    },
    /// A required column is absent.
    #[error("{}: missing column {column:?} (header is: {header}); law files need Saliency and Remaining columns", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The header that was found.
        header: String,
    },
    /// A known column occurs twice, so it is unclear which one to use.
    #[error("{}: column {column:?} appears more than once in the header; remove or rename the duplicate", path.display())]
    DuplicateColumn {
        /// The file.
        path: PathBuf,
        /// The duplicated column.
        column: String,
    },
    /// A cell of a known column is empty, not a number, or not finite.
    #[error("{}: data row {row} (line {line}): column {column} has non-numeric value {value:?}; fix or delete that row", path.display())]
    NotNumeric {
        /// The file.
        path: PathBuf,
        /// 1-based data row.
        row: usize,
        /// Physical line.
        line: u64,
        /// Column name.
        column: String,
        /// The offending cell.
        value: String,
    },
    /// Saliency or Remaining is `<= 0`, which has no logarithm.
    #[error("{}: data row {row} (line {line}): {column} = {value} is not positive and cannot be fitted in log-log space; delete the row or ask to skip non-positive points (skip_nonpositive)", path.display())]
    NonPositive {
        /// The file.
        path: PathBuf,
        /// 1-based data row.
        row: usize,
        /// Physical line.
        line: u64,
        /// Column name (Saliency or Remaining).
        column: String,
        /// The value.
        value: f64,
    },
    /// The file has too few usable points to fit anything.
    #[error("{}: only {n} usable data points{dropped_note}; at least {need} are needed", path.display())]
    TooFewPoints {
        /// The file.
        path: PathBuf,
        /// Usable points found.
        n: usize,
        /// Points needed.
        need: usize,
        /// Mentions skipped rows, if any (starts with a space or is empty).
        dropped_note: String,
    },
    /// A fit had too few points in its domain.
    #[error("{what}: only {n} usable points, at least {need} are needed; {hint}")]
    FitTooFew {
        /// Which fit.
        what: String,
        /// Points available.
        n: usize,
        /// Points needed.
        need: usize,
        /// What to do.
        hint: String,
    },
    /// A fit is not determined by the data (e.g. all saliencies equal).
    #[error("{what}: {msg}")]
    Degenerate {
        /// Which fit.
        what: String,
        /// Why it is degenerate and what to do.
        msg: String,
    },
    /// A region specification could not be used.
    #[error("invalid region {input:?}: {msg}; expected LO:HI with 0 <= LO < HI, e.g. 0.5:50")]
    BadRegion {
        /// What was given.
        input: String,
        /// What is wrong with it.
        msg: String,
    },
    /// `run_fit` was given no files.
    #[error("no input files; pass at least one law CSV file or a directory containing .csv files")]
    NoFiles,
    /// A directory given to `run_fit` holds no CSV files.
    #[error("{}: directory contains no .csv files; pass law CSV files or a directory that has some", path.display())]
    EmptyDir {
        /// The directory.
        path: PathBuf,
    },
    /// Drawing the plot failed (the message names the file).
    #[error(transparent)]
    Plot(#[from] hf_plot::PlotError),
}
