//! The crate's one error type.

/// Everything that can go wrong while exporting, loading or running a network.
///
/// Every message is a single line that names the file (where there is one) and the problem, so
/// it can be shown to a user as is, e.g.
/// `model.sparse.safetensors: layer fc1 col_idx[17] = 900 out of bounds (in_features 784); the
/// file is corrupt — re-export it`.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum SparseError {
    /// The file could not be read or written.
    #[error("{file}: cannot {action}: {source}")]
    Io {
        /// The path as given.
        file: String,
        /// What was being attempted ("read", "write").
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a parseable safetensors file: truncated, or not safetensors at all.
    #[error("{file}: not a readable safetensors file ({detail}); it is truncated or corrupt — re-export it")]
    Unreadable {
        /// The path as given.
        file: String,
        /// What the safetensors parser objected to.
        detail: String,
    },
    /// A parseable file whose content breaks the hyperflux format: missing or unparseable
    /// metadata, a missing tensor, a wrong dtype or shape, out-of-bounds indices, non-finite
    /// values, an inconsistent layer chain.
    #[error("{file}: {detail}; the file is corrupt — re-export it")]
    Corrupt {
        /// The path as given.
        file: String,
        /// The first problem found.
        detail: String,
    },
    /// A well-formed file that this runtime cannot run (a newer format version or a layer type
    /// it does not implement yet).
    #[error("{file}: {detail}")]
    Unsupported {
        /// The path as given.
        file: String,
        /// What is unsupported.
        detail: String,
    },
    /// The in-memory [`ExportModel`](crate::ExportModel) handed to an exporter or to
    /// [`Model::from_export`](crate::Model::from_export) is inconsistent.
    #[error("{file}: cannot export: {detail}")]
    InvalidModel {
        /// The destination path, or `<memory>` when no file is involved.
        file: String,
        /// The first problem found.
        detail: String,
    },
    /// The input handed to [`Model::forward`](crate::Model::forward) does not fit the network.
    #[error("bad input: {0}")]
    Input(String),
}
