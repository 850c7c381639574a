//! The tensor-training engine of hyperflux, on tch (libtorch).
//!
//! Data flows one way: a batch goes through a [`network::Network`] built from
//! [`masked::MaskedWeight`]s, the loss ([`loss`]) gives `∂L/∂ŵ` per masked tensor, and
//! [`step::HyperfluxStep`] turns that into the straight-through weight and mask updates of both
//! optimizers ([`optim`]). [`checkpoint`] saves and restores all of it. Initial values come
//! from a seeded Rust generator ([`init`]), never from libtorch's global one.

pub mod checkpoint;
pub mod conv;
pub mod device;
pub mod error;
pub mod init;
pub mod law;
pub mod loss;
pub mod masked;
pub mod mlp;
pub mod models;
pub mod network;
pub mod norm;
pub mod optim;
pub mod step;
pub mod trainer;

pub use error::EngineError;
