//! Batch-1 latency of LeNet-300-100 at 98% on an image-like input (a 13x13 block of ink in a
//! 28x28 background, as MNIST digits are) against a uniform random input with no background:
//! the first layer skips the background only in the first case. Minimum over samples, so
//! other processes on a shared machine matter less. `cargo run --release -p hf-sparse
//! --example skip_probe`
use hf_sparse::{synthetic, Model, Preprocessing};
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn best(model: &Model, x: &[f32]) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..300 {
        let t = Instant::now();
        for _ in 0..200 {
            let _ = black_box(model.forward(black_box(x), 1));
        }
        best = best.min(t.elapsed() / 200);
    }
    best
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pre = Preprocessing::from_f32(1.0 / 255.0, &[0.1307], &[0.3081]);
    let mut net = synthetic::lenet300(98.0, 7);
    net.meta.preprocessing = Some(pre.clone());
    let sparse = Model::from_export(&net)?;
    let dense = sparse.to_dense();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut image = vec![0.0f32; 784];
    for y in 8..21 {
        for x in 8..21 {
            if rng.gen_bool(0.9) {
                image[y * 28 + x] = rng.gen_range(1.0f32..255.0);
            }
        }
    }
    let active = image.iter().filter(|v| **v != 0.0).count();
    pre.apply(&mut image, 784, 1);
    let random: Vec<f32> = (0..784).map(|_| rng.gen_range(-0.4f32..2.8)).collect();
    println!("image-like input ({active} of 784 pixels inked):");
    println!(
        "  sparse {:?}  dense {:?}",
        best(&sparse, &image),
        best(&dense, &image)
    );
    println!("random input (no background):");
    println!(
        "  sparse {:?}  dense {:?}",
        best(&sparse, &random),
        best(&dense, &random)
    );
    Ok(())
}
