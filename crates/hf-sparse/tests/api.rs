//! FLOP counts, the synthetic generator, input checks, exporter validation, bench helpers.

mod common;

use common::*;
use hf_sparse::{bench, synthetic, write_export, Format, LayerFlops, Model, SparseError};
use std::time::Duration;

#[test]
fn flops_are_exact_on_a_hand_built_net() {
    let m = Model::from_export(&tiny()).unwrap();
    let want = vec![
        LayerFlops {
            name: "fc1".into(),
            dense_macs: 12,
            sparse_macs: 5,
            nnz: 5,
            total: 12,
        },
        LayerFlops {
            name: "fc2".into(),
            dense_macs: 6,
            sparse_macs: 3,
            nnz: 3,
            total: 6,
        },
    ];
    assert_eq!(m.flops(), want);
    assert_eq!(
        m.to_dense().flops(),
        want,
        "counts do not depend on the path"
    );
    assert!((want[0].density() - 5.0 / 12.0).abs() < 1e-12);
}

#[test]
fn synthetic_lenet_has_exact_nnz() {
    for (sp, nnz) in [
        (95.0, [11760, 1500, 50]),
        (98.0, [4704, 600, 20]),
        (99.0, [2352, 300, 10]),
    ] {
        let net = synthetic::lenet300(sp, 1);
        let kept: Vec<usize> = net.layers.iter().map(|(_, t)| t.kept()).collect();
        assert_eq!(kept, nnz, "{sp}%");
        // effective weights are zero exactly where pruned
        for (_, t) in &net.layers {
            for (w, m) in t.weight.iter().zip(&t.mask) {
                assert!(*m >= 0.0 || *w == 0.0);
            }
        }
        let m = Model::from_export(&net).unwrap();
        let f = m.flops();
        assert_eq!(f.iter().map(|l| l.nnz).collect::<Vec<_>>(), nnz);
        assert_eq!(f.iter().map(|l| l.dense_macs).sum::<u64>(), 266_200);
        assert_eq!(net.meta.input_shape, vec![1, 28, 28]);
        assert_eq!(net.meta.classes, 10);
        let total: usize = nnz.iter().sum();
        assert!((net.meta.total_density - total as f64 / 266_200.0).abs() < 1e-12);
        assert_eq!(
            net.meta.density_per_layer[0],
            ("fc1".to_string(), nnz[0] as f64 / 235_200.0)
        );
    }
    assert_eq!(
        synthetic::lenet300(98.0, 5),
        synthetic::lenet300(98.0, 5),
        "deterministic"
    );
    assert_ne!(
        synthetic::lenet300(98.0, 5),
        synthetic::lenet300(98.0, 6),
        "seeded"
    );
    let all = synthetic::lenet300(0.0, 1);
    assert!(all.layers.iter().all(|(_, t)| t.kept() == t.mask.len()));
    // out-of-range sparsity is clamped, not a panic
    assert!(synthetic::lenet300(150.0, 1)
        .layers
        .iter()
        .all(|(_, t)| t.kept() == 0));
    assert!(synthetic::lenet300(f64::NAN, 1)
        .layers
        .iter()
        .all(|(_, t)| t.kept() == t.mask.len()));
}

#[test]
fn fully_pruned_network_outputs_the_bias_chain() {
    let net = synthetic::lenet300(100.0, 2);
    let x = input(784, 1);
    let want = reference(&net, &x, 1);
    let m = Model::from_export(&net).unwrap();
    for model in [m.to_sparse(), m.to_dense()] {
        assert_logits_close(&model.forward(&x, 1).unwrap(), &want, "fully pruned");
        assert_logits_close(
            &model.forward(&[x.clone(), x.clone()].concat(), 2).unwrap(),
            &[want.clone(), want.clone()].concat(),
            "fully pruned batch",
        );
    }
    assert_eq!(m.flops().iter().map(|f| f.sparse_macs).sum::<u64>(), 0);
}

#[test]
fn forward_checks_its_input() {
    let m = Model::from_export(&synthetic::lenet300(98.0, 1)).unwrap();
    let err = m.forward(&[0.0; 100], 2).unwrap_err();
    assert!(matches!(err, SparseError::Input(_)));
    assert_eq!(
        err.to_string(),
        "bad input: got 100 input values, expected batch 2 x 784 = 1568"
    );
    assert!(m.predict(&[0.0; 785], 1).is_err());
    assert_eq!(m.forward(&[], 0).unwrap(), Vec::<f32>::new());
    assert!(
        m.forward(&[], usize::MAX).is_err(),
        "overflowing batch is an error, not a panic"
    );
    assert_eq!((m.input_len(), m.classes()), (784, 10));
}

#[test]
fn predict_is_the_argmax_of_forward() {
    let m = Model::from_export(&synthetic::lenet300(95.0, 4)).unwrap();
    let x = input(784 * 16, 2);
    let logits = m.forward(&x, 16).unwrap();
    let p = m.predict(&x, 16).unwrap();
    for (row, pred) in logits.chunks(10).zip(&p) {
        let max = row.iter().cloned().fold(f32::MIN, f32::max);
        assert_eq!(row[*pred], max);
    }
}

#[test]
fn exporter_refuses_inconsistent_models() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.safetensors");
    let check = |edit: &dyn Fn(&mut hf_sparse::ExportModel), want: &str| {
        let mut net = tiny();
        edit(&mut net);
        for format in [Format::Dense, Format::Sparse] {
            let err = write_export(&path, &net, format).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, SparseError::InvalidModel { .. }), "{msg}");
            assert!(
                msg.contains("out.safetensors") && msg.contains(want),
                "'{msg}' should mention '{want}'"
            );
            assert!(!path.exists());
        }
        let err = Model::from_export(&net).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    };
    check(
        &|n| {
            n.layers[0].1.weight.pop();
        },
        "layer fc1 weight has 11 values, expected 3 x 4 = 12",
    );
    check(
        &|n| {
            n.layers[1].1.mask.push(1.0);
        },
        "layer fc2 mask has 7 values, expected 6",
    );
    check(
        &|n| n.layers[0].1.weight[0] = f32::NAN,
        "layer fc1 weight[0] = NaN is not finite",
    );
    check(
        &|n| n.layers[0].1.mask[1] = f32::NAN,
        "layer fc1 mask[1] = NaN is not finite",
    );
    check(
        &|n| n.layers[1].1.bias = Some(vec![0.0; 2]),
        "has a bias tensor but its spec says bias: false",
    );
    check(
        &|n| n.layers[0].1.bias = None,
        "spec says bias: true but no bias tensor was given",
    );
    check(
        &|n| n.layers[0].1.bias = Some(vec![0.0; 2]),
        "layer fc1 bias has 2 values, expected 3",
    );
    check(
        &|n| n.meta.classes = 3,
        "layer chain mismatch: classes is 3",
    );
    check(
        &|n| n.meta.input_shape = vec![5],
        "layer chain mismatch: input_shape [5]",
    );
    check(
        &|n| {
            n.meta.extra.insert("format".into(), "x".into());
        },
        "extra metadata key 'format' is reserved",
    );
    check(
        &|n| n.meta.accuracy = Some(f64::NAN),
        "accuracy NaN is outside [0, 1]",
    );
    check(
        &|n| n.meta.accuracy = Some(98.1),
        "accuracy 98.1 is outside [0, 1]",
    );
    check(
        &|n| n.layers[0].1.mask[2] = 1.0,
        "density_per_layer says layer fc1 keeps",
    );
    check(&|n| n.layers.clear(), "the network has no layers");
    // pruned weights may be non-finite garbage: they are never exported
    let mut net = tiny();
    net.layers[0].1.weight[4] = f32::NAN;
    write_export(&path, &net, Format::Dense).unwrap();
}

#[test]
fn median_time_calls_warmup_plus_runs() {
    let mut calls = 0;
    let _ = bench::median_time(|| calls += 1, 3, 7);
    assert_eq!(calls, 10);
    let mut calls = 0;
    let _ = bench::median_time(|| calls += 1, 0, 0);
    assert_eq!(calls, 1, "at least one timed run");
}

/// Interleaved measurement on fake samplers (each reports a scripted time per call): the
/// repeat count follows the probe, every round samples each sampler once after one warming
/// call, and the statistic picks the fastest or the middle sample per call.
#[test]
fn measure_interleaved_samples_in_turn_and_applies_the_stat() {
    use bench::Stat;
    // sampler A: 100 µs per call, except its 2nd timed sample at 40 µs and 4th at 400 µs
    // (a disturbed call); B: 2 µs per call throughout
    let log = std::cell::RefCell::new(Vec::new());
    let run = |stat: Stat| {
        let mut a_timed = 0;
        let mut a = |n: u32| {
            log.borrow_mut().push(('a', n));
            // the timed samples repeat 3 calls, the probes and warming calls 1
            let per = if n > 1 {
                a_timed += 1;
                match a_timed {
                    2 => 40,
                    4 => 400,
                    _ => 100,
                }
            } else {
                100
            };
            Duration::from_micros(per * n as u64)
        };
        let mut b = |n: u32| {
            log.borrow_mut().push(('b', n));
            Duration::from_micros(2 * n as u64)
        };
        bench::measure_interleaved(&mut [&mut a, &mut b], 5, stat)
    };
    let median = run(Stat::Median);
    let calls = log.take();
    // 5 probe calls each, then 5 rounds of (warming call, timed sample) for a, then b
    let probes: Vec<_> = calls.iter().take(10).collect();
    assert!(probes.iter().all(|&&(_, n)| n == 1), "{probes:?}");
    let rounds = &calls[10..];
    assert_eq!(rounds.len(), 5 * 4);
    for r in rounds.chunks(4) {
        assert_eq!(
            (r[0].0, r[0].1, r[1].0, r[2].0, r[2].1, r[3].0),
            ('a', 1, 'a', 'b', 1, 'b')
        );
        assert_eq!(r[1].1, 3, "300 µs samples of a 100 µs call: 3 calls");
        assert_eq!(r[3].1, 150, "300 µs samples of a 2 µs call: 150 calls");
    }
    assert_eq!(
        median,
        vec![Duration::from_micros(100), Duration::from_micros(2)]
    );
    let best = run(Stat::Min);
    assert_eq!(best[0], Duration::from_micros(40), "the fastest sample");
    assert_eq!(best[1], Duration::from_micros(2));
}

#[test]
fn bench_model_reports_both_paths() {
    let m = Model::from_export(&synthetic::lenet300(98.0, 1)).unwrap();
    let rows = bench::bench_model(&m, &[1, 4], 3);
    assert_eq!(rows.iter().map(|r| r.batch).collect::<Vec<_>>(), vec![1, 4]);
    for r in &rows {
        assert_eq!((r.sparse_macs, r.dense_macs), (5324, 266_200));
        assert!(r.sparse_throughput > 0.0 && r.dense_throughput > 0.0);
        assert!(r.sparse_time > Duration::ZERO && r.dense_time > Duration::ZERO);
    }
    let table = bench::format_rows(&rows);
    assert_eq!(table.lines().count(), 3);
    let b = bench::InferBench::new(&m, 4, 1);
    assert_eq!(b.input(4).len(), 4 * 784);
    assert_eq!(b.model(Format::Dense).path(), Format::Dense);
}

#[test]
fn models_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model>();
    assert_send_sync::<hf_sparse::ExportModel>();
    assert_send_sync::<SparseError>();
    let m = Model::from_export(&synthetic::lenet300(98.0, 1)).unwrap();
    let x = input(784, 1);
    let want = m.forward(&x, 1).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(m.forward(&x, 1).unwrap(), want));
        }
    });
}

#[test]
fn format_parses_from_flags_and_tags() {
    assert_eq!("dense".parse::<Format>(), Ok(Format::Dense));
    assert_eq!("hyperflux-sparse-v1".parse::<Format>(), Ok(Format::Sparse));
    assert!("csr"
        .parse::<Format>()
        .unwrap_err()
        .contains("unknown format 'csr'"));
    assert_eq!(Format::Sparse.to_string(), "sparse");
    assert_eq!(Format::Dense.tag(), "hyperflux-dense-v1");
}

/// `settle` waits for a thread of the process that is still busy (as a runtime's spinning
/// worker is after its call), and returns once it is idle.
#[cfg(target_os = "linux")]
#[test]
fn settle_waits_for_a_busy_thread() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let spinner = {
        let (done, started) = (done.clone(), started.clone());
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            started.store(true, Ordering::SeqCst);
            while t.elapsed() < Duration::from_millis(30) {
                std::hint::spin_loop();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    while !started.load(Ordering::SeqCst) {
        std::hint::spin_loop();
    }
    bench::settle();
    assert!(
        done.load(Ordering::SeqCst),
        "settle returned while another thread was still spinning"
    );
    spinner.join().unwrap();
}
