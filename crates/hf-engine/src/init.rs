//! Deterministic initialisation from a Rust random-number generator.
//!
//! A network's initial values (weights, biases, mask parameters) come from an [`Init`]: a seed
//! and the range the masks start in. Every tensor draws from its own ChaCha8 stream: the key is
//! the seed (expanded by `ChaCha8Rng::seed_from_u64`), the stream number (the ChaCha nonce) is
//! the FNV-1a hash of the tensor's checkpoint name (`fc1.weight`, `fc1.mask`, `fc1.bias`,
//! `features.0.conv.weight`, …). So a tensor's values depend only on the seed, its name, its
//! shape and its distribution: not on the other layers or their order (adding a layer shifts no
//! other layer's values), not on the thread that builds the network, and not on libtorch's
//! process-global generator (networks may be built concurrently).
//!
//! Value `i` of a tensor is made from the `i`-th 64-bit word of its stream (a normal pair from
//! two consecutive words), so long tensors are filled in parallel chunks, each starting at its
//! own word position, with the same values whatever the number of threads.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

/// Values filled per parallel chunk (even, so a chunk never splits a normal pair).
const CHUNK: usize = 1 << 16;

/// Where a network's initial values come from: a seed, and the range `[low, high]` mask
/// parameters start uniform in (spec: U[0.2, 0.5]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Init {
    /// The run's seed.
    pub seed: u64,
    /// `(low, high)` of the masks' uniform initialisation.
    pub mask: (f64, f64),
}

impl Init {
    /// Initial values from `seed`, masks uniform in `mask`.
    pub const fn new(seed: u64, mask: (f64, f64)) -> Self {
        Self { seed, mask }
    }

    /// The random stream of the tensor called `name`, at its start.
    pub fn stream(&self, name: &str) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream_id(name));
        rng
    }

    /// A float tensor of shape `shape` on `device`, uniform in `[low, high]`, drawn from the
    /// stream of `name`.
    pub fn uniform(
        &self,
        name: &str,
        shape: &[i64],
        low: f64,
        high: f64,
        device: Device,
    ) -> Tensor {
        draw(&self.stream(name), shape, device, |rng, out| {
            for v in out {
                *v = (low + (high - low) * unit(rng.next_u64())) as f32;
            }
        })
    }

    /// A float tensor of shape `shape` on `device`, normal with mean `mean` and standard
    /// deviation `std` (Box–Muller), drawn from the stream of `name`.
    pub fn normal(&self, name: &str, shape: &[i64], mean: f64, std: f64, device: Device) -> Tensor {
        draw(&self.stream(name), shape, device, |rng, out| {
            let (mean, std) = (mean as f32, std as f32);
            for pair in out.chunks_mut(2) {
                // u1 in (0, 1], so the logarithm is finite.
                let u1 = 1.0 - unit(rng.next_u64());
                let u2 = unit(rng.next_u64());
                let r = (-2.0 * u1.ln()).sqrt() as f32;
                let (s, c) = (std::f32::consts::TAU * u2 as f32).sin_cos();
                pair[0] = mean + std * r * c;
                if let Some(v) = pair.get_mut(1) {
                    *v = mean + std * r * s;
                }
            }
        })
    }

    /// The initial mask parameters of the masked layer `layer` (tensor `{layer}.mask`):
    /// uniform in [`Init::mask`].
    pub fn mask(&self, layer: &str, shape: &[i64], device: Device) -> Tensor {
        let (low, high) = self.mask;
        self.uniform(&format!("{layer}.mask"), shape, low, high, device)
    }
}

/// The ChaCha stream number of a tensor name: its 64-bit FNV-1a hash.
pub fn stream_id(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A 64-bit word as a float in `[0, 1)` (its top 53 bits).
fn unit(word: u64) -> f64 {
    (word >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A float tensor of shape `shape` on `device` whose values `fill` makes from `stream`, chunk
/// by chunk in parallel: the chunk starting at value `i` reads the stream from 64-bit word `i`
/// on.
fn draw(
    stream: &ChaCha8Rng,
    shape: &[i64],
    device: Device,
    fill: impl Fn(&mut ChaCha8Rng, &mut [f32]) + Sync,
) -> Tensor {
    let t = Tensor::empty(shape, (Kind::Float, Device::Cpu));
    // SAFETY: `t` is a fresh contiguous CPU f32 tensor and this is the only view of its data.
    let values = unsafe { crate::optim::slice_mut(&t) };
    values
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(k, out)| {
            let mut rng = stream.clone();
            // Positions count 32-bit words: two per value.
            rng.set_word_pos(2 * (k * CHUNK) as u128);
            fill(&mut rng, out);
        });
    t.to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f32> {
        crate::network::to_vec_f32(t)
    }

    #[test]
    fn same_seed_and_name_give_the_same_values_and_others_differ() {
        let a = Init::new(7, (0.2, 0.5));
        let shape = [3, 5];
        let x = values(&a.uniform("fc1.weight", &shape, -1.0, 1.0, Device::Cpu));
        assert_eq!(
            x,
            values(&a.uniform("fc1.weight", &shape, -1.0, 1.0, Device::Cpu))
        );
        assert_ne!(
            x,
            values(&a.uniform("fc2.weight", &shape, -1.0, 1.0, Device::Cpu))
        );
        let b = Init::new(8, (0.2, 0.5));
        assert_ne!(
            x,
            values(&b.uniform("fc1.weight", &shape, -1.0, 1.0, Device::Cpu))
        );
        // A tensor's mask stream is not its weight stream.
        assert_ne!(
            values(&a.mask("fc1", &shape, Device::Cpu)),
            values(&a.uniform("fc1.weight", &shape, 0.2, 0.5, Device::Cpu))
        );
    }

    #[test]
    fn uniform_stays_in_range_and_covers_it() {
        let init = Init::new(1, (0.2, 0.5));
        let m = init.mask("l", &[200, 100], Device::Cpu);
        assert_eq!(m.size(), [200, 100]);
        assert_eq!(m.kind(), Kind::Float);
        let v = values(&m);
        let (lo, hi) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(lo >= 0.2 && hi <= 0.5, "{lo} {hi}");
        assert!(lo < 0.201 && hi > 0.499, "{lo} {hi}");
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!((mean - 0.35).abs() < 0.002, "mean {mean}");
    }

    #[test]
    fn normal_has_the_requested_moments() {
        let init = Init::new(2, (0.2, 0.5));
        // Odd length over several parallel chunks: the last pair is cut.
        let n = 3 * CHUNK as i64 + 7;
        let v = values(&init.normal("w", &[n], 0.5, 2.0, Device::Cpu));
        assert_eq!(v.len(), n as usize);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.02, "std {}", var.sqrt());
        assert!(v.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn chunks_continue_one_stream() {
        // Values past the first chunk are the stream's next words, as a serial draw reads them.
        let init = Init::new(3, (0.2, 0.5));
        let n = CHUNK + 10;
        let par = values(&init.uniform("t", &[n as i64], 0.0, 1.0, Device::Cpu));
        let mut rng = init.stream("t");
        let serial: Vec<f32> = (0..n).map(|_| unit(rng.next_u64()) as f32).collect();
        assert_eq!(par, serial);
    }

    #[test]
    fn stream_ids_are_fnv1a() {
        assert_eq!(stream_id(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stream_id("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(stream_id("fc1.weight"), stream_id("fc1.mask"));
    }
}
