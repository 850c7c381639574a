//! Prints file sizes and sparse-vs-dense timings for synthetic LeNet-300-100 at 95/98/99%
//! sparsity.
//!
//! `cargo run -p hf-sparse --release --example report [runs] [out_dir]` — with `out_dir`, the
//! exported files are kept there for inspection.

use hf_sparse::{bench, load, synthetic, write_export, Format};

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
    println!(
        "rayon threads: {}, dense fp32 weights: {weights_bytes} bytes",
        rayon::current_num_threads()
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
            "\n== LeNet-300-100 at {sp}% sparsity: nnz {nnz}; dense file {dense_bytes} B, sparse file {sparse_bytes} B = {:.2}% of the fp32 weights, {:.2}% of the dense file",
            100.0 * sparse_bytes as f64 / weights_bytes as f64,
            100.0 * sparse_bytes as f64 / dense_bytes as f64
        );
        let rows = bench::bench_model(&model, &[1, 64, 256], runs);
        print!("{}", bench::format_rows(&rows));
    }
    Ok(())
}
