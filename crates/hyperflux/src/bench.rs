//! `hyperflux bench`: steps per second of the full Hyperflux step (forward, data and pressure
//! losses, backward, both optimizers) on LeNet-300-100 at a given batch size, with masks set
//! randomly to several densities. Median of several runs.

use crate::cli::BenchArgs;
use anyhow::Result;
use hf_core::update::OptimKind;
use hf_engine::network::Network;
use hf_engine::step::{HyperfluxOptim, StepSettings};
use std::time::Instant;
use tch::{Kind, Tensor};

/// Runs the benchmark and prints one line per density, the last being the first density's.
pub fn run(a: &BenchArgs) -> Result<()> {
    if a.runs == 0 || a.steps == 0 {
        anyhow::bail!(
            "--runs {} --steps {}: give at least one run of at least one timed step",
            a.runs,
            a.steps
        );
    }
    if a.batch_size == 0 {
        anyhow::bail!("--batch-size 0: give a positive batch size, e.g. 128");
    }
    hf_engine::device::set_threads(a.threads);
    let dev = hf_engine::device::resolve(&a.device)?;
    println!(
        "Hyperflux step, lenet300, batch {}, device {}, {} threads, {} steps x {} runs (median)",
        a.batch_size,
        match dev {
            tch::Device::Cuda(i) => format!("cuda:{i}"),
            _ => "cpu".to_string(),
        },
        tch::get_num_threads(),
        a.steps,
        a.runs
    );
    let mut first = None;
    for &d in &a.densities {
        if !(d > 0.0 && d <= 100.0) {
            anyhow::bail!("--densities: {d} is not a density in (0, 100]");
        }
        let init = hf_engine::init::Init::new(0, (0.2, 0.5));
        let mut net = hf_engine::mlp::Mlp::new("lenet300", [1, 28, 28], &[300, 100], 10, init, dev);
        // The random masks and the batch below still come from libtorch's generator.
        tch::manual_seed(0);
        if a.dense_products {
            net.set_sparse_below(0.0);
        }
        for mw in net.masked_mut() {
            let keep = Tensor::rand(mw.m.size(), (Kind::Float, dev)).lt(d / 100.0);
            let m = mw.m.where_scalarother(&keep, -0.3);
            mw.m = m;
        }
        let mut opt = HyperfluxOptim::new(&net, OptimKind::adam(), 0.0, 0.25);
        let x = Tensor::randn([a.batch_size as i64, 1, 28, 28], (Kind::Float, dev));
        let y = Tensor::randint(10, [a.batch_size as i64], (Kind::Int64, dev));
        let s = StepSettings {
            weight_lr: 1e-3,
            mask_lr: 1e-3,
            pressure: 0.5,
            train_masks: true,
        };
        // Long warm-up: optimizer state of pruned weights reaches its steady state (flushed
        // moments) only after several hundred steps, as in a real run.
        for _ in 0..a.warmup {
            opt.step(&mut net, &x, &y, 0.1, &s, None);
        }
        let mut rates = Vec::new();
        for _ in 0..a.runs {
            let t = Instant::now();
            for _ in 0..a.steps {
                opt.step(&mut net, &x, &y, 0.1, &s, None);
            }
            rates.push(a.steps as f64 / t.elapsed().as_secs_f64());
        }
        rates.sort_by(|a, b| a.total_cmp(b));
        let med = rates[rates.len() / 2];
        println!(
            "density {d:>6.2}%: {med:>8.1} steps/s (min {:.1}, max {:.1})",
            rates[0],
            rates[rates.len() - 1]
        );
        first.get_or_insert(med);
    }
    if let Some(m) = first {
        println!("{m:.1}");
    }
    Ok(())
}
