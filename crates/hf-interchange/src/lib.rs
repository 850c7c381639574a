//! What every file hyperflux writes (checkpoints, exports, ONNX metadata) records, in a crate
//! of its own so the data readers and the sparse runtime need nothing of the training core:
//!
//! - [`checksum`]: the SHA-256 of a safetensors file's tensor data, written into every file
//!   hyperflux writes and verified on load.
//! - [`preprocess`]: how raw data values become network inputs (`--normalize`, and the
//!   preprocessing recorded in checkpoints and exports).

pub mod checksum;
pub mod preprocess;
