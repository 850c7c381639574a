//! Helpers shared by the engine's integration tests: inputs and labels from a seeded Rust
//! generator (no process-global state, so the tests run in parallel).
#![allow(dead_code)]

use hf_engine::init::Init;
use rand_chacha::rand_core::RngCore;
use tch::{Device, Tensor};

/// Standard-normal CPU inputs of shape `shape`: the same for the same seed.
pub fn randn(seed: u64, shape: &[i64]) -> Tensor {
    Init::new(seed, (0.0, 0.0)).normal("input", shape, 0.0, 1.0, Device::Cpu)
}

/// `n` labels in `0..classes` (int64, CPU): the same for the same seed.
pub fn randint(seed: u64, classes: i64, n: i64) -> Tensor {
    let mut rng = Init::new(seed, (0.0, 0.0)).stream("labels");
    let v: Vec<i64> = (0..n)
        .map(|_| (rng.next_u64() % classes as u64) as i64)
        .collect();
    Tensor::from_slice(&v)
}
