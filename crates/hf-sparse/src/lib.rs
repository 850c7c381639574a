//! Compact files and a fast pure-Rust runtime for pruned networks.
//!
//! A network pruned by hyperflux keeps each weight `w` with a mask `m`: the effective weight is
//! `w` where `m >= 0`, else 0. At 98% sparsity most multiply-adds are with zeros, but a dense
//! framework still does them all, which is why pruning "never makes inference faster". This
//! crate
//!
//! * writes a pruned network as safetensors, either dense (`hyperflux-dense-v1`, conventional
//!   `{name}.weight/.bias/.mask` tensors) or as compressed sparse rows with the narrowest index
//!   types (`hyperflux-sparse-v1`) — see `FORMAT.md` — with [`write_export`];
//! * loads either file with full validation ([`load`]) into a [`Model`] that runs with sparse
//!   kernels (CSR × vector at batch 1, CSR × batch otherwise, bias and ReLU fused), or with the
//!   runtime's own dense kernels ([`Model::to_dense`]) as an honest baseline;
//! * counts the work ([`Model::flops`]) and measures it ([`mod@bench`]).
//!
//! ```no_run
//! # fn main() -> Result<(), hf_sparse::SparseError> {
//! use hf_sparse::{load, synthetic, write_export, Format};
//! let net = synthetic::lenet300(98.0, 1);
//! let bytes = write_export("lenet.sparse.safetensors".as_ref(), &net, Format::Sparse)?;
//! let model = load("lenet.sparse.safetensors".as_ref())?;
//! let logits = model.forward(&vec![0.5; 784], 1)?;
//! # let _ = (bytes, logits); Ok(()) }
//! ```

#![warn(missing_docs)]

#[cfg(target_arch = "x86_64")]
mod avx2;
pub mod bench;
mod conv;
mod dispatch;
mod error;
mod formats;
mod graph;
mod input_skip;
mod io;
mod kernels;
mod lowered;
mod model;
mod spec;
pub mod synthetic;
mod validate;

#[cfg(test)]
mod tests_conv;
#[cfg(test)]
mod tests_kernels;

pub use conv::{SparseConv, AUTO_IM2COL_DENSITY};
pub use dispatch::{BATCH_SPLIT_SHARE, PAR_MIN_WORK};
pub use error::SparseError;
pub use hf_interchange::checksum::Integrity;
pub use io::{
    col_idx_dtype, load, load_bytes, load_bytes_checked, load_checked, row_ptr_dtype, write_export,
};
pub use lowered::{
    LOWERED_MAX_PLANE, LOWERED_MAX_PLANE_SMALL_BATCH, LOWERED_MAX_PLANE_SPARSE, LOWERED_MIN_BATCH,
    LOWERED_SPARSE_DENSITY,
};
pub use model::{LayerFlops, Model, DENSE_PER_EXAMPLE_MAX_BATCH, PER_EXAMPLE_MAX_BATCH};
pub use spec::{
    fold_batch_norm, Activation, ExportMeta, ExportModel, Format, LayerSpec, LayerTensors,
};
pub use validate::{MAX_LAYER_WEIGHTS, MAX_TENSOR_VALUES, RESERVED_KEYS};

/// How raw inputs become network inputs, recorded in every export (`input_scale`,
/// `input_mean`, `input_std`; see FORMAT.md). The same type as `hf_interchange::preprocess`'s, which the
/// data loader (`hf_data::Dataset::preprocessing`) produces.
pub use hf_interchange::preprocess::Preprocessing;

/// Re-exported so callers can compare index dtypes without depending on safetensors directly.
pub use safetensors::Dtype;
