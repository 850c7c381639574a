//! Datasets, batches and augmentation for the hyperflux training engine.
//!
//! * [`load`] reads MNIST / Fashion-MNIST (IDX, raw or gzipped) and CIFAR-10 / CIFAR-100
//!   (binary version) into an in-memory [`Dataset`] of raw `u8` pixels, validating every file
//!   and reporting problems as one-line [`DataError`]s that name the file and the fix.
//! * [`DatasetSpec`] names any dataset a run can use — a built-in one or `npy:DIR` (NumPy
//!   `.npy` files of float32 or uint8 inputs and integer labels) — and loads it with
//!   [`DatasetSpec::load_splits`] / [`DatasetSpec::load`] and [`LoadOptions`] (directory,
//!   `--normalize`, the model's number of classes).
//! * [`Dataset::preprocessing`] gives the map from raw values to network inputs
//!   ([`Preprocessing`]) that checkpoints and exports record.
//! * [`batches`] turns a dataset into normalised `f32` [`Batch`]es whose order and
//!   augmentation ([`Augment`]: zero-padded random crop + horizontal flip) depend only on
//!   `(seed, epoch)`, so a resumed run sees exactly the batches of an uninterrupted one.
//! * [`prefetch`] / [`prefetch_scoped`] assemble batches on a background thread so that data
//!   preparation overlaps with training.
//! * [`synth`] writes tiny learnable datasets in the real file formats, for tests.
//!
//! The crate is pure Rust and does not depend on libtorch.

#![warn(missing_docs)]

mod batch;
mod cifar;
mod dataset;
mod error;
mod idx;
mod kind;
mod npy;
mod prefetch;
mod spec;
pub mod synth;

pub use batch::{batches, batches_owned, Augment, Batch, BatchConfig, BatchIter, OwnedBatchIter};
pub use dataset::{load, Dataset, Image, Pixels};
pub use error::DataError;
pub use hf_interchange::preprocess::{Normalize, Preprocessing};
pub use kind::{DatasetKind, Split};
pub use npy::read_npy;
pub use prefetch::{prefetch, prefetch_scoped, Prefetch};
pub use spec::{DatasetSpec, LoadOptions};

#[cfg(test)]
mod tests_batch;
#[cfg(test)]
mod tests_io;
#[cfg(test)]
mod tests_npy;
