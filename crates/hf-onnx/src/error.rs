//! Errors of ONNX import and export: one line naming the file or node and what to do.

/// Why an ONNX model could not be read, imported or written.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file cannot be read or is not a decodable ONNX protobuf.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        msg: String,
    },
    /// A node uses an operator, attribute or shape the importer does not support.
    #[error("node {node:?} ({op}): {msg}")]
    Unsupported {
        /// Node name (or a generated one when the node has none).
        node: String,
        /// ONNX operator type.
        op: String,
        /// What is not supported and what is.
        msg: String,
    },
    /// The model is well-formed ONNX but not a network hyperflux can import.
    #[error("{0}")]
    Model(String),
}
