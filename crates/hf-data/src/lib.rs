//! Datasets, batches and augmentation for the hyperflux training engine.
//!
//! * [`load`] reads MNIST / Fashion-MNIST (IDX, raw or gzipped) and CIFAR-10 / CIFAR-100
//!   (binary version) into an in-memory [`Dataset`] of raw `u8` pixels, validating every file
//!   and reporting problems as one-line [`DataError`]s that name the file and the fix.
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
mod prefetch;
pub mod synth;

pub use batch::{batches, batches_owned, Augment, Batch, BatchConfig, BatchIter, OwnedBatchIter};
pub use dataset::{load, Dataset};
pub use error::DataError;
pub use kind::{DatasetKind, Split};
pub use prefetch::{prefetch, prefetch_scoped, Prefetch};

#[cfg(test)]
mod tests_batch;
#[cfg(test)]
mod tests_io;
