//! Pure-Rust core of hyperflux: everything about a Hyperflux run that is not tensor math.
//!
//! - [`baselines`]: the magnitude-pruning baselines (GMP, one-shot) and their schedules.
//! - [`policy`]: the epoch policy of a run in one place: stage, learning rates, pressure, freeze and
//!   snap, magnitude prunes; stepped with the measured density.
//! - [`pressure`]: the target-density trajectory and the feedback controller that turns it into λ.
//! - [`fsutil`]: atomic file writes (temporary file, then rename), so no output is ever half-written;
//!   stale temporaries of killed runs and the output-folder lock. It is the crate `hf-fsutil`,
//!   re-exported here.
//! - [`checksum`]: the SHA-256 of a safetensors file's tensor data, written into every file
//!   hyperflux writes and verified on load.
//! - [`preprocess`]: how raw data values become network inputs (`--normalize`, and the
//!   preprocessing recorded in checkpoints and exports).

pub mod baselines;
pub mod config;
pub mod masked_csr;
pub mod policy;
pub mod pressure;
pub mod records;
pub mod stages;
pub mod update;

/// Atomic file output, from its own crate `hf-fsutil`; re-exported so `hf_core::fsutil::…`
/// paths keep working.
pub use hf_fsutil as fsutil;

/// Tensor-data checksums and input preprocessing live in `hf-interchange` (the data readers
/// and the sparse runtime use them without this crate); re-exported under their old paths.
pub use hf_interchange::{checksum, preprocess};
