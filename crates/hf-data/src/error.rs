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
    /// A file that is not a `.npy` file at all (no `\x93NUMPY` magic).
    #[error("{}: not a .npy file (it does not start with the \\x93NUMPY magic); write the array with numpy.save", path.display())]
    NotNpy {
        /// The file.
        path: PathBuf,
    },
    /// A `.npy` file whose header or length is broken (truncated, trailing bytes, bad header).
    #[error("{}: {reason}; the file is truncated or corrupt — write it again with numpy.save", path.display())]
    NpyCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A well-formed `.npy` file holding something that cannot be used (dtype, byte order,
    /// memory order, shape); the reason says what to do.
    #[error("{}: {reason}", path.display())]
    NpyUnsupported {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// An input value that is NaN or infinite.
    #[error("{}: example {example} holds {value} at position {position}; inputs must be finite — clean the data (e.g. numpy.nan_to_num) and save it again", path.display())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Zero-based example index.
        example: usize,
        /// Zero-based position within the example (CHW order).
        position: usize,
        /// The offending value (NaN, inf, or a float64 too large for float32).
        value: String,
    },
    /// A split without examples.
    #[error("{}: holds no examples (shape {shape}); every split needs at least one example", path.display())]
    EmptySplit {
        /// The file.
        path: PathBuf,
        /// Its shape, numpy-style.
        shape: String,
    },
    /// The x and y files of an npy split disagree on the number of examples.
    #[error("{} has {labels} labels but {} has {images} examples; x and y of a split must have the same first dimension", labels_path.display(), images_path.display())]
    NpyCountMismatch {
        /// The inputs file.
        images_path: PathBuf,
        /// Number of examples.
        images: usize,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of labels.
        labels: usize,
    },
    /// A label that is negative, too large, or not below the model's number of classes.
    #[error("{}: label {label} of example {index} {problem}", path.display())]
    BadLabel {
        /// The labels file.
        path: PathBuf,
        /// Zero-based example index.
        index: usize,
        /// The label as found.
        label: String,
        /// What is wrong with it and what to do.
        problem: String,
    },
    /// The training and test inputs differ in example shape or value type.
    #[error("{} holds examples of shape {train} but {} holds {test}; both splits must have the same example shape and dtype", train_path.display(), test_path.display())]
    SplitMismatch {
        /// The training inputs.
        train_path: PathBuf,
        /// Their example shape and dtype.
        train: String,
        /// The test inputs.
        test_path: PathBuf,
        /// Their example shape and dtype.
        test: String,
    },
    /// A `--normalize` setting that does not fit the data.
    #[error("--normalize for {dataset}: {reason}")]
    Normalize {
        /// The dataset (or its inputs file).
        dataset: String,
        /// What is wrong.
        reason: String,
    },
    /// A dataset name that cannot be parsed.
    #[error("{0}")]
    BadName(String),
}
