//! Runs one configuration in a loop and prints the best per-call time (for profilers and
//! quick A/B checks): `probe SPARSITY BATCH sparse|dense ITERS [PAR_MIN_WORK] [lenet|conv|vgg]`
//! (`conv` = `synthetic::conv_net(16, 32, ..)`; `vgg` = `synthetic::vgg_narrow` with the layer
//! densities of the 95% run, SPARSITY ignored).

use hf_sparse::{bench::InferBench, synthetic, Format, Model};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let sp: f64 = args.get(1).map_or(Ok(98.0), |s| s.parse())?;
    let batch: usize = args.get(2).map_or(Ok(1), |s| s.parse())?;
    let path = match args.get(3).map(String::as_str) {
        Some("dense") => Format::Dense,
        _ => Format::Sparse,
    };
    let iters: usize = args.get(4).map_or(Ok(100_000), |s| s.parse())?;
    let par: usize = args
        .get(5)
        .map_or(Ok(hf_sparse::PAR_MIN_WORK), |s| s.parse())?;
    let net = match args.get(6).map(String::as_str) {
        Some("conv") => synthetic::conv_net(16, 32, sp, 7),
        Some("vgg") => synthetic::vgg_narrow(&synthetic::VGG_NARROW_95_DENSITIES, 7),
        _ => synthetic::lenet300(sp, 7),
    };
    let model = Model::from_export(&net)?.with_par_min_work(par);
    let b = InferBench::new(&model, batch, 1);
    // minimum over samples: robust against other processes on a shared machine
    let per_sample = (iters / 200).max(1);
    let mut best = std::time::Duration::MAX;
    for _ in 0..200 {
        let t = Instant::now();
        for _ in 0..per_sample {
            b.run(path, batch);
        }
        best = best.min(t.elapsed() / per_sample as u32);
    }
    println!("{sp}% batch {batch} {path}: min {best:?} per call");
    Ok(())
}
