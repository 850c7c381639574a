//! Checks the sparse runtime's batch-1 path on a real test set and times its first-layer
//! background skip: every MNIST test image through `forward(x, 1)` must give the same top-1 as
//! the batched sparse path and the dense path; then the minimum per-call time over the first
//! 100 images with the skip available (the file's recorded preprocessing) and without it (the
//! same weights with no preprocessing recorded, so nothing matches the background), and dense.
//!
//! `cargo run --release -p hyperflux --example batch1_check -- MODEL.sparse.safetensors`
//! (MNIST from `data/mnist`; the file must record its input preprocessing).
use hf_data::{DatasetSpec, LoadOptions, Pixels, Split};
use std::time::{Duration, Instant};

fn best(m: &hf_sparse::Model, x: &[f32], len: usize, k: usize) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..200 {
        let t = Instant::now();
        for i in 0..k {
            let _ = std::hint::black_box(m.forward(&x[i * len..(i + 1) * len], 1));
        }
        best = best.min(t.elapsed() / k as u32);
    }
    best
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: batch1_check MODEL.sparse.safetensors")?;
    let m = hf_sparse::load(std::path::Path::new(&path))?;
    let pre = m
        .meta()
        .preprocessing
        .clone()
        .ok_or("the file records no input preprocessing: export it again with hyperflux")?;
    let spec: DatasetSpec = "mnist".parse()?;
    let opts = LoadOptions {
        data_dir: None,
        normalize: None,
        classes: Some(m.classes()),
    };
    let test = spec.load(Split::Test, &opts)?;
    let len = m.input_len();
    let mut x: Vec<f32> = match &test.images {
        Pixels::U8(v) => v.iter().map(|&b| f32::from(b)).collect(),
        Pixels::F32(v) => v.clone(),
    };
    pre.apply(&mut x, len, m.meta().input_channels());
    let n = test.len();
    let batched = m.predict(&x, n)?;
    let dense = m.to_dense().predict(&x, n)?;
    let (mut same, mut same_dense, mut correct) = (0, 0, 0);
    for i in 0..n {
        let p = m.predict(&x[i * len..(i + 1) * len], 1)?[0];
        same += usize::from(p == batched[i]);
        same_dense += usize::from(p == dense[i]);
        correct += usize::from(p == test.labels[i] as usize);
    }
    println!(
        "batch 1 vs batched sparse: {same}/{n} same top-1; vs dense path: {same_dense}/{n}; accuracy {:.2}%",
        100.0 * correct as f64 / n as f64
    );
    let mut e = m.to_export();
    e.meta.preprocessing = None;
    let no_skip = hf_sparse::Model::from_export(&e)?;
    let k = n.min(100);
    println!(
        "min per call over the first {k} images: skip available {:?}, no skip {:?}, dense {:?}",
        best(&m, &x, len, k),
        best(&no_skip, &x, len, k),
        best(&m.to_dense(), &x, len, k)
    );
    Ok(())
}
