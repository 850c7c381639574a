//! Sparse vs dense inference on LeNet-300-100-shaped synthetic networks at 95/98/99% sparsity,
//! batch 1 (latency) and batch 64 (throughput), and on the synthetic residual conv net
//! (`synthetic::conv_net(16, 32, ..)`, ResNet-20 first-stage shapes) at 90/95/98%, batch 1
//! and 32.
//!
//! `cargo bench -p hf-sparse --bench infer`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hf_sparse::{bench::InferBench, synthetic, Format, Model};
use std::time::Duration;

fn infer(c: &mut Criterion) {
    for sp in [95.0, 98.0, 99.0] {
        let model = Model::from_export(&synthetic::lenet300(sp, 7)).expect("valid synthetic net");
        let b = InferBench::new(&model, 64, 1);
        let mut group = c.benchmark_group(format!("lenet300_{sp}pct"));
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(30);
        for batch in [1usize, 64] {
            group.throughput(Throughput::Elements(batch as u64));
            for path in [Format::Sparse, Format::Dense] {
                group.bench_with_input(
                    BenchmarkId::new(path.to_string(), format!("batch{batch}")),
                    &batch,
                    |bench, &batch| bench.iter(|| b.run(path, batch)),
                );
            }
        }
        group.finish();
    }
}

fn infer_conv(c: &mut Criterion) {
    for sp in [90.0, 95.0, 98.0] {
        let model = Model::from_export(&synthetic::conv_net(16, 32, sp, 7))
            .expect("valid synthetic conv net");
        let b = InferBench::new(&model, 32, 1);
        let mut group = c.benchmark_group(format!("conv_net16x32_{sp}pct"));
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3))
            .sample_size(20);
        for batch in [1usize, 32] {
            group.throughput(Throughput::Elements(batch as u64));
            for path in [Format::Sparse, Format::Dense] {
                group.bench_with_input(
                    BenchmarkId::new(path.to_string(), format!("batch{batch}")),
                    &batch,
                    |bench, &batch| bench.iter(|| b.run(path, batch)),
                );
            }
        }
        group.finish();
    }
}

criterion_group!(benches, infer, infer_conv);
criterion_main!(benches);
