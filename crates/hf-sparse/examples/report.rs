//! Prints file sizes and sparse-vs-dense timings for synthetic LeNet-300-100 at 95/98/99%
//! sparsity: the median per call (as `bench::bench_model` reports it) and the best sample (the
//! least disturbed by other processes on a shared machine).
//!
//! `cargo run -p hf-sparse --release --example report [runs] [out_dir]` — with `out_dir`, the
//! exported files are kept there for inspection.

use hf_sparse::bench::{self, InferBench};
use hf_sparse::{load, synthetic, write_export, Format};
use std::time::{Duration, Instant};

/// Best per-call time over `runs` samples of `reps` calls.
fn best(b: &InferBench, path: Format, batch: usize, runs: usize) -> Duration {
    let probe = Instant::now();
    b.run(path, batch);
    let reps = (300_000 / probe.elapsed().as_nanos().max(1)).clamp(1, 10_000) as u32;
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                b.run(path, batch);
            }
            t.elapsed() / reps
        })
        .min()
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(31);
    let tmp = tempfile::tempdir()?;
    let dir_arg = std::env::args().nth(2).map(std::path::PathBuf::from);
    let dir = dir_arg.as_deref().unwrap_or(tmp.path());
    let weights_bytes = 266_200u64 * 4;
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "rayon threads: {}; load average: {}; dense fp32 weights: {weights_bytes} B",
        rayon::current_num_threads(),
        load_avg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for sp in [95.0, 98.0, 99.0] {
        let net = synthetic::lenet300(sp, 7);
        let dense_path = dir.join(format!("lenet_{sp}.dense.safetensors"));
        let sparse_path = dir.join(format!("lenet_{sp}.sparse.safetensors"));
        let dense_bytes = write_export(&dense_path, &net, Format::Dense)?;
        let sparse_bytes = write_export(&sparse_path, &net, Format::Sparse)?;
        let model = load(&sparse_path)?;
        let nnz: usize = model.flops().iter().map(|f| f.nnz).sum();
        println!(
            "\n== LeNet-300-100 at {sp}% sparsity: nnz {nnz}; dense file {dense_bytes} B; sparse file {sparse_bytes} B = {:.2}% of the fp32 weights, {:.2}% of the dense file",
            100.0 * sparse_bytes as f64 / weights_bytes as f64,
            100.0 * sparse_bytes as f64 / dense_bytes as f64
        );
        let batches = [1usize, 64, 256];
        let rows = bench::bench_model(&model, &batches, runs);
        println!("median per call:");
        print!("{}", bench::format_rows(&rows));
        let b = InferBench::new(&model, 256, 0x5eed);
        println!("best per call:");
        for batch in batches {
            let s = best(&b, Format::Sparse, batch, runs);
            let d = best(&b, Format::Dense, batch, runs);
            println!(
                "{batch:>5} {:>11.2}µs {:>11.2}µs {:>7.1}x {:>13.0} {:>13.0}",
                s.as_secs_f64() * 1e6,
                d.as_secs_f64() * 1e6,
                d.as_secs_f64() / s.as_secs_f64(),
                batch as f64 / s.as_secs_f64(),
                batch as f64 / d.as_secs_f64()
            );
        }
    }
    Ok(())
}
