//! Neural Pruning Law measurements (spec §4): the trajectories whose points `(γ, s)` — the
//! saliency threshold the surviving weights withstand and the density — the law relates.
//!
//! Four families start from the same dense checkpoint ([`measure`]):
//! - [`Family::L0`]: Hyperflux under a pressure ladder `λ = 2^k`, k raised by one every
//!   `block_epochs` epochs. A point per block: λ, density and accuracy at the block's end, plus
//!   the flux `φ = −w·∂L/∂ŵ` of the surviving weights averaged over the block's last epoch
//!   (minimum, a low quantile, median; see [`FluxStats`]) and the quantiles of its per-weight
//!   root mean square ([`rms_flux_stats`]).
//! - [`Family::Magnitude`]: global iterative magnitude pruning (IMP), `rate` of the remaining
//!   weights per step, fine-tuning (masks frozen) between steps; saliency = the largest magnitude
//!   removed.
//! - [`Family::Taylor`]: the same schedule with the first-order Taylor score `|w·∂L/∂w|` over a
//!   few training batches.
//! - [`Family::Oneshot`]: the control — prune the dense net directly to each density of the same
//!   geometric schedule by magnitude, no fine-tuning. Its law is a property of the dense weight
//!   distribution alone, which tells whether the iterative families owe theirs to the trajectory.
//!
//! [`converge`] runs fixed-pressure Hyperflux for several λ and records density every few batches.
//!
//! Points are engine-side [`LawSample`]s (the CLI turns them into `hf_law::LawPoint`s).
//!
//! Layout: [`Family`] (`family.rs`) and the settings (`config.rs`); the shared pieces: flux
//! statistics (`stats.rs`), pruning mechanics (`prune.rs`) and the loaded network with its data
//! and epoch loop (`session.rs`); the runners: the L0 ladder (`l0_ladder.rs`), IMP and Taylor
//! (`iterative.rs`), the one-shot control (`one_shot.rs`), dispatched by [`measure`]
//! (`measure.rs`), and the convergence runs (`converge.rs`).

mod config;
mod converge;
mod family;
mod iterative;
mod l0_ladder;
mod measure;
mod one_shot;
mod prune;
mod session;
mod stats;

pub use config::{ConvergeConfig, FamilySetting, LawConfig, TaylorScore};
pub use converge::{converge, ConvergeTrace, DensitySample};
pub use family::{Family, FluxLaw};
pub use measure::{measure, LawOutcome, LawSample};
pub use prune::{magnitude_scores, prune_lowest, taylor_scores, PruneStep};
pub use stats::{flux_stats, rms_flux_stats, FluxStats, SurvivorQuantiles};
