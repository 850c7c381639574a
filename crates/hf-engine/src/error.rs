//! Engine errors: one line naming the problem and what to do.

/// Errors of the training engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A libtorch call failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A checkpoint could not be read or does not fit.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// File path.
        path: String,
        /// What is wrong and what to do.
        msg: String,
    },
    /// Unknown model name or a model that does not fit the data.
    #[error("{0}")]
    Model(String),
    /// The loss became NaN or infinite, or exploded while staying finite.
    #[error("the loss diverged ({what} at epoch {epoch}, step {step}): {hint}")]
    Diverged {
        /// What was seen.
        what: String,
        /// Epoch.
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// Which setting to lower.
        hint: String,
    },
    /// Device not available.
    #[error("{0}")]
    Device(String),
    /// I/O.
    #[error("{0}")]
    Io(String),
    /// Dataset problem.
    #[error(transparent)]
    Data(#[from] hf_data::DataError),
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] hf_core::config::ConfigError),
}
