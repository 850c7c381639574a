//! Pure-Rust core of hyperflux: everything about a Hyperflux run that is not tensor math.
//!
//! - [`pressure`]: the target-density trajectory and the feedback controller that turns it into λ.
//! - [`fsutil`]: atomic file writes (temporary file, then rename), so no output is ever half-written.
//! - [`preprocess`]: how raw data values become network inputs (`--normalize`, and the
//!   preprocessing recorded in checkpoints and exports).

pub mod config;
pub mod fsutil;
pub mod masked_csr;
pub mod preprocess;
pub mod pressure;
pub mod records;
pub mod stages;
pub mod update;
