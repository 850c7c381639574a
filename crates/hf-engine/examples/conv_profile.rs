//! Where the time of a conv-net training step goes: batch assembly (augmentation and
//! normalisation, done on the prefetch thread during training), forward + backward
//! (`data_grads`), the Hyperflux update of both optimizers, and evaluation.
//!
//! `cargo run --release -p hf-engine --example conv_profile -- [model] [threads] [batches] [data-dir]`
//! (defaults: vgg-narrow, 1, 50, /usr/share/datasets/fashion-mnist; Fashion-MNIST files, or a
//! generated set of that shape when the directory is missing).

use hf_core::update::OptimKind;
use hf_data::{Augment, BatchConfig, DatasetKind, Split};
use hf_engine::init::Init;
use hf_engine::models;
use hf_engine::step::{HyperfluxOptim, StepSettings};
use hf_engine::trainer::to_tensors;
use std::path::PathBuf;
use std::time::Instant;
use tch::Device;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = args.get(1).cloned().unwrap_or_else(|| "vgg-narrow".into());
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let n_batches: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(50);
    let dir = PathBuf::from(
        args.get(4)
            .cloned()
            .unwrap_or_else(|| "/usr/share/datasets/fashion-mnist".into()),
    );
    hf_engine::device::set_threads(threads);
    let kind = DatasetKind::FashionMnist;
    let ds = hf_data::load(kind, &dir, Split::Train)
        .unwrap_or_else(|_| hf_data::synth::dataset(kind, 128 * n_batches, 1));
    let shape = [ds.channels as i64, ds.height as i64, ds.width as i64];
    let init = Init::new(0, (0.2, 0.5));
    let mut net = match models::build(&model, shape, 10, init, Device::Cpu) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let mut opt = HyperfluxOptim::new(net.as_ref(), OptimKind::Sgd { momentum: 0.9 }, 5e-4, 0.25);
    let cfg = BatchConfig::train(
        128,
        Some(Augment {
            pad: 2,
            flip: false,
        }),
    );
    let s = StepSettings {
        weight_lr: 0.01,
        mask_lr: 1e-3,
        pressure: 1.0,
        train_masks: true,
    };
    // Batch assembly alone.
    let t = Instant::now();
    let batches: Vec<_> = hf_data::batches(&ds, &cfg, 0, 1).take(n_batches).collect();
    let t_data = t.elapsed().as_secs_f64();
    let tensors: Vec<_> = batches
        .iter()
        .map(|b| to_tensors(b, shape, Device::Cpu))
        .collect();
    // Warm-up.
    for (x, y) in tensors.iter().take(3) {
        opt.step(net.as_mut(), x, y, 0.1, &s, None);
    }
    let (mut t_grad, mut t_upd) = (0.0, 0.0);
    for (x, y) in &tensors {
        let t = Instant::now();
        let g = net.data_grads(x, y, 0.1);
        t_grad += t.elapsed().as_secs_f64();
        let t = Instant::now();
        opt.apply(net.as_mut(), &g, &s, None);
        t_upd += t.elapsed().as_secs_f64();
    }
    let t = Instant::now();
    for (x, _) in &tensors {
        let _ = net.forward(x);
    }
    let t_eval = t.elapsed().as_secs_f64();
    let per = |v: f64| 1e3 * v / n_batches as f64;
    println!(
        "{model}, {} prunable, batch 128, {threads} thread(s), {n_batches} batches, ms per batch:",
        net.prunable()
    );
    println!("  batch assembly (crop+normalise) {:>8.2}", per(t_data));
    println!("  forward+backward (data_grads)   {:>8.2}", per(t_grad));
    println!("  Hyperflux update (both optims)  {:>8.2}", per(t_upd));
    println!("  eval forward                    {:>8.2}", per(t_eval));
    let steps = ds.len().div_ceil(128) as f64;
    println!(
        "  => one epoch of {} examples: ~{:.1} s of steps, {:.2} s of batch assembly",
        ds.len(),
        steps * (t_grad + t_upd) / n_batches as f64,
        steps * t_data / n_batches as f64
    );
}
