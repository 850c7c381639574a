//! Errors of the dataset readers.

use std::path::PathBuf;

/// Why a dataset could not be loaded.
///
/// Every message is a single line that names the offending file and says what to do, so the
/// CLI can print it as is.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum DataError {
    /// A required file does not exist (for IDX files, neither `name` nor `name.gz`).
    #[error("{dataset} file {} not found{}: {hint}", path.display(), if *tried_gz { " (also tried .gz)" } else { "" })]
    NotFound {
        /// Dataset title, e.g. "MNIST".
        dataset: &'static str,
        /// The path that was looked for (without `.gz`).
        path: PathBuf,
        /// Whether `path.gz` was tried as well.
        tried_gz: bool,
        /// How to obtain the data.
        hint: String,
    },
    /// The file exists but could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file starts like gzip but does not decompress.
    #[error("{}: gzip decompression failed ({source}); the file is corrupt — re-download it", path.display())]
    Decompress {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An IDX file with the wrong magic number (corrupt, or not the expected kind of file).
    #[error("{}: not an IDX {what} file (magic 0x{found:08x}, expected 0x{expected:08x}); the file is corrupt — re-download it", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// "image" or "label".
        what: &'static str,
        /// Magic number found.
        found: u32,
        /// Magic number expected.
        expected: u32,
    },
    /// An IDX image file whose images are not of the expected size.
    #[error("{}: images are {height}x{width}, expected {expected_height}x{expected_width}; this is not a {dataset} image file — re-download it", path.display())]
    BadShape {
        /// The file.
        path: PathBuf,
        /// Dataset title.
        dataset: &'static str,
        /// Height in the header.
        height: u32,
        /// Width in the header.
        width: u32,
        /// Height expected.
        expected_height: u32,
        /// Width expected.
        expected_width: u32,
    },
    /// The file length disagrees with its header (truncated download, trailing garbage).
    #[error("{}: wrong size, expected {expected} bytes ({detail}) but found {actual}; the file is truncated or corrupt — re-download it", path.display())]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// Bytes expected.
        expected: u64,
        /// Bytes found (after decompression for gzipped files).
        actual: u64,
        /// Where the expectation comes from.
        detail: String,
    },
    /// A CIFAR file whose length is not a whole number of records.
    #[error("{}: size {len} bytes is not a multiple of the {record}-byte {dataset} record; the file is truncated or not a {dataset} binary file — re-download it", path.display())]
    RecordSize {
        /// The file.
        path: PathBuf,
        /// Dataset title.
        dataset: &'static str,
        /// File length.
        len: u64,
        /// Record length.
        record: usize,
    },
    /// Image and label files disagree on the number of examples.
    #[error("{} has {labels} labels but {} has {images} images; the files do not belong together — re-download them", labels_path.display(), images_path.display())]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// Number of images.
        images: usize,
        /// The label file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// A label is not below the number of classes.
    #[error("{}: {record} {index} has label {label}, expected < {classes}; the file is corrupt — re-download it", path.display())]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// "example" (IDX) or "record" (CIFAR).
        record: &'static str,
        /// Zero-based index of the example within the file.
        index: usize,
        /// The offending label.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// A split whose files are valid but hold no examples: nothing to train or evaluate on.
    #[error("{dataset} {split} set in {} holds no examples (its files have 0 records); an empty data set is refused — re-download it, or pass the right --data-dir", dir.display())]
    Empty {
        /// Dataset title.
        dataset: &'static str,
        /// Which split.
        split: crate::Split,
        /// The folder read.
        dir: PathBuf,
    },
    /// In-memory data handed to [`crate::Dataset::from_raw`] is inconsistent.
    #[error("invalid {dataset} data: {reason}")]
    Invalid {
        /// Dataset title.
        dataset: &'static str,
        /// What is wrong.
        reason: String,
    },
}
