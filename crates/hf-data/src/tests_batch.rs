//! Tests of batching, augmentation and prefetching.

use std::collections::HashSet;
use std::sync::Arc;

use crate::batch::augment_image;
use crate::dataset::Normalizer;
use crate::{
    batches, batches_owned, prefetch, prefetch_scoped, synth, Augment, Batch, BatchConfig, Dataset,
    DatasetKind,
};

/// MNIST-shaped dataset whose image `i` has every pixel equal to `i` (so examples can be
/// identified from a normalised batch), labels `i % 10`.
fn indexed(n: usize) -> Dataset {
    assert!(n <= 256);
    let mut images = Vec::new();
    for i in 0..n {
        images.extend_from_slice(&[i as u8; 784]);
    }
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Dataset::from_raw(DatasetKind::Mnist, images, labels).unwrap()
}

/// Recovers the raw value from a normalised MNIST value.
fn raw_of(v: f32) -> usize {
    ((v * 0.3081 + 0.1307) * 255.0).round() as usize
}

fn ids(b: &Batch) -> Vec<usize> {
    b.x.chunks(784).map(|img| raw_of(img[0])).collect()
}

fn shuffled(bs: usize, augment: Option<Augment>) -> BatchConfig {
    BatchConfig {
        batch_size: bs,
        shuffle: true,
        augment,
        drop_last: false,
    }
}

#[test]
fn same_seed_and_epoch_give_identical_batches() {
    let ds = synth::dataset(DatasetKind::Cifar10, 70, 1);
    let cfg = shuffled(16, Some(Augment::CIFAR));
    let a: Vec<Batch> = batches(&ds, &cfg, 7, 3).collect();
    let b: Vec<Batch> = batches(&ds, &cfg, 7, 3).collect();
    assert_eq!(a.len(), 5);
    assert!(a.iter().zip(&b).all(|(x, y)| {
        x.y == y.y
            && x.x
                .iter()
                .zip(&y.x)
                .all(|(p, q)| p.to_bits() == q.to_bits())
    }));
    let c: Vec<Batch> = batches(&ds, &cfg, 7, 4).collect();
    assert_ne!(a[0].y, c[0].y, "epochs must differ");
    let d: Vec<Batch> = batches(&ds, &cfg, 8, 3).collect();
    assert_ne!(a[0].y, d[0].y, "seeds must differ");
}

#[test]
fn every_example_once_per_epoch() {
    let ds = indexed(103);
    let cfg = shuffled(10, None);
    let mut orders = Vec::new();
    for epoch in 0..3 {
        let it = batches(&ds, &cfg, 5, epoch);
        assert_eq!(it.len(), 11);
        let bs: Vec<Batch> = it.collect();
        assert_eq!(
            bs.iter().map(|b| b.n).collect::<Vec<_>>(),
            [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3]
        );
        let mut seen = Vec::new();
        for b in &bs {
            assert_eq!(b.x.len(), b.n * 784);
            assert_eq!(b.y.len(), b.n);
            let id = ids(b);
            for (i, &y) in id.iter().zip(&b.y) {
                assert_eq!(*i as i64 % 10, y, "label travels with its image");
            }
            seen.extend(id);
        }
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..103).collect::<Vec<_>>());
        assert_ne!(seen, (0..103).collect::<Vec<_>>(), "shuffled");
        orders.push(seen);
    }
    assert_ne!(orders[0], orders[1]);
    assert_ne!(orders[1], orders[2]);
}

#[test]
fn drop_last_and_unshuffled_order() {
    let ds = indexed(103);
    let cfg = BatchConfig {
        batch_size: 10,
        shuffle: true,
        augment: None,
        drop_last: true,
    };
    assert_eq!(cfg.batches_per_epoch(103), 10);
    let bs: Vec<Batch> = batches(&ds, &cfg, 0, 0).collect();
    assert_eq!(bs.len(), 10);
    assert!(bs.iter().all(|b| b.n == 10));
    let distinct: HashSet<usize> = bs.iter().flat_map(ids).collect();
    assert_eq!(distinct.len(), 100);

    let eval = BatchConfig::eval(32);
    assert_eq!(eval.batches_per_epoch(103), 4);
    let order: Vec<usize> = batches(&ds, &eval, 0, 0).flat_map(|b| ids(&b)).collect();
    assert_eq!(order, (0..103).collect::<Vec<_>>());

    let none = BatchConfig::eval(0);
    assert_eq!(batches(&ds, &none, 0, 0).count(), 0);
    assert_eq!(batches(&indexed(0), &eval, 0, 0).count(), 0);
}

#[test]
fn unaugmented_batches_match_normalized_bit_for_bit() {
    let ds = synth::dataset(DatasetKind::Cifar100, 9, 4);
    let b = batches(&ds, &BatchConfig::eval(9), 0, 0).next().unwrap();
    let mut one = vec![0f32; ds.image_len()];
    for i in 0..9 {
        ds.normalized(i, &mut one);
        let got = &b.x[i * 3072..(i + 1) * 3072];
        assert!(got
            .iter()
            .zip(&one)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert_eq!(b.y[i], ds.labels[i] as i64);
    }
    // Identity augmentation is the same as none.
    let cfg = BatchConfig {
        augment: Some(Augment {
            pad: 0,
            flip: false,
        }),
        ..BatchConfig::eval(9)
    };
    assert_eq!(batches(&ds, &cfg, 0, 0).next().unwrap(), b);
}

#[test]
fn normalisation_constants_are_applied_per_channel() {
    // One CIFAR image: R plane 255, G plane 0, B plane 51.
    let mut img = vec![255u8; 1024];
    img.extend_from_slice(&[0; 1024]);
    img.extend_from_slice(&[51; 1024]);
    let ds = Dataset::from_raw(DatasetKind::Cifar10, img, vec![3]).unwrap();
    let b = batches(&ds, &BatchConfig::eval(1), 0, 0).next().unwrap();
    let want = [
        (1.0 - 0.4914) / 0.247,
        (0.0 - 0.4822) / 0.243,
        (0.2 - 0.4465) / 0.261,
    ];
    for (c, w) in want.iter().enumerate() {
        for &v in &b.x[c * 1024..(c + 1) * 1024] {
            assert!((v - w).abs() < 1e-5, "channel {c}: {v} vs {w}");
        }
    }
    assert_eq!(b.y, [3]);
}

/// Straightforward reference: pad with raw zeros, crop at (pad+dy, pad+dx), flip, normalise.
fn reference(ds: &Dataset, i: usize, pad: usize, dy: isize, dx: isize, flip: bool) -> Vec<f32> {
    let (c, h, w) = (ds.channels, ds.height, ds.width);
    let (ph, pw) = (h + 2 * pad, w + 2 * pad);
    let mut padded = vec![0f32; c * ph * pw];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                padded[ch * ph * pw + (y + pad) * pw + x + pad] =
                    ds.image(i).get(ch * h * w + y * w + x);
            }
        }
    }
    let mut out = vec![0f32; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x };
                let py = (y as isize + pad as isize + dy) as usize;
                let px = (sx as isize + pad as isize + dx) as usize;
                let raw = padded[ch * ph * pw + py * pw + px];
                out[ch * h * w + y * w + x] = (raw / 255.0 - ds.mean[ch]) / ds.std[ch];
            }
        }
    }
    out
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[test]
fn crop_shifts_pixels_and_fills_zero() {
    // Ramp image: pixel (y, x) = 8*y + x on a 1x28x28 grid (distinct per position).
    let img: Vec<u8> = (0..784).map(|p| ((p / 28) * 8 + p % 28) as u8).collect();
    let ds = Dataset::from_raw(DatasetKind::Mnist, img, vec![0]).unwrap();
    let norm = Normalizer::new(&ds);
    let zero = (0.0 - 0.1307) / 0.3081;
    let mut out = vec![0f32; 784];
    for (dy, dx, flip) in [
        (0, 0, false),
        (2, -3, false),
        (-4, 4, true),
        (1, 0, true),
        (-28, 0, false),
    ] {
        augment_image(&norm, ds.image(0), &mut out, (1, 28, 28), dy, dx, flip);
        assert!(
            close(&out, &reference(&ds, 0, 28, dy, dx, flip)),
            "({dy},{dx},{flip})"
        );
    }
    // Known offset: dy = 2, dx = -3 -> out(y, x) = in(y+2, x-3); first 3 columns and the last
    // 2 rows are padding.
    augment_image(&norm, ds.image(0), &mut out, (1, 28, 28), 2, -3, false);
    let norm_of = |raw: usize| (raw as f32 / 255.0 - 0.1307) / 0.3081;
    assert!((out[5 * 28 + 10] - norm_of(7 * 8 + 7)).abs() < 1e-5);
    assert!((out[5 * 28 + 2] - zero).abs() < 1e-6);
    assert!((out[26 * 28 + 10] - zero).abs() < 1e-6);
    // Flip mirrors each row of the un-flipped result.
    let mut flipped = vec![0f32; 784];
    augment_image(&norm, ds.image(0), &mut flipped, (1, 28, 28), 2, -3, true);
    for y in 0..28 {
        for x in 0..28 {
            assert_eq!(flipped[y * 28 + x], out[y * 28 + 27 - x]);
        }
    }
    // A shift by the full width blanks the image.
    augment_image(&norm, ds.image(0), &mut out, (1, 28, 28), 0, 28, false);
    assert!(out.iter().all(|&v| (v - zero).abs() < 1e-6));
}

#[test]
fn augmented_batches_are_valid_crops_and_flips() {
    let ds = synth::dataset(DatasetKind::Cifar10, 60, 3);
    let pad = 2;
    let cfg = BatchConfig {
        batch_size: 60,
        shuffle: false,
        augment: Some(Augment { pad, flip: true }),
        drop_last: false,
    };
    let b = batches(&ds, &cfg, 1, 0).next().unwrap();
    let mut offsets = HashSet::new();
    let mut flips = 0;
    for i in 0..60 {
        let got = &b.x[i * 3072..(i + 1) * 3072];
        let mut hits = Vec::new();
        for dy in -(pad as isize)..=pad as isize {
            for dx in -(pad as isize)..=pad as isize {
                for flip in [false, true] {
                    if close(got, &reference(&ds, i, pad, dy, dx, flip)) {
                        hits.push((dy, dx, flip));
                    }
                }
            }
        }
        assert!(
            !hits.is_empty(),
            "example {i} is not a padded crop/flip of its source"
        );
        offsets.insert((hits[0].0, hits[0].1));
        flips += usize::from(hits[0].2);
    }
    // The draws really vary (60 examples over 25 offsets and 2 flips).
    assert!(offsets.len() > 5, "offsets {offsets:?}");
    assert!((5..=55).contains(&flips), "flips {flips}");
    // Deterministic for (seed, epoch); a different epoch augments differently.
    assert_eq!(batches(&ds, &cfg, 1, 0).next().unwrap(), b);
    assert_ne!(batches(&ds, &cfg, 1, 1).next().unwrap().x, b.x);
}

#[test]
fn resumed_epoch_matches_uninterrupted_run() {
    // Every pixel of image i is i, so the centre pixel (never padding with a shift of at most
    // 2) identifies the example even after augmentation.
    let ds = indexed(50);
    let cfg = shuffled(
        8,
        Some(Augment {
            pad: 2,
            flip: false,
        }),
    );
    let centre_ids = |b: &Batch| -> Vec<usize> {
        b.x.chunks(784)
            .map(|img| raw_of(img[14 * 28 + 14]))
            .collect()
    };
    // "Uninterrupted": one long-lived batch buffer carried through epochs 0, 1, 2, the way a
    // run reuses it. "Resumed": epoch 2 alone, from a fresh process state — the trainer's own
    // path (an owned iterator on a shared dataset, through the prefetch thread).
    let mut buf = Batch::default();
    let mut full: Vec<Vec<Batch>> = Vec::new();
    for e in 0..3 {
        let mut it = batches(&ds, &cfg, 99, e);
        let mut epoch = Vec::new();
        while it.next_into(&mut buf) {
            epoch.push(buf.clone());
        }
        full.push(epoch);
    }
    let resumed: Vec<Batch> =
        prefetch(batches_owned(Arc::new(ds.clone()), &cfg, 99, 2), 3).collect();
    assert_eq!(full[2], resumed);
    // Not a comparison of two identical things: each epoch has its own order and crops, and
    // each visits every example exactly once.
    assert_ne!(full[1], full[2]);
    assert_ne!(
        full[1].iter().flat_map(centre_ids).collect::<Vec<_>>(),
        full[2].iter().flat_map(centre_ids).collect::<Vec<_>>()
    );
    for epoch in &full {
        let mut seen: Vec<usize> = epoch.iter().flat_map(centre_ids).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        for b in epoch {
            let want: Vec<i64> = centre_ids(b).iter().map(|&i| (i % 10) as i64).collect();
            assert_eq!(b.y, want, "labels travel with their images");
        }
    }
}

#[test]
fn prefetch_yields_the_same_sequence() {
    let ds = synth::dataset(DatasetKind::Cifar10, 45, 8);
    let cfg = shuffled(8, Some(Augment::CIFAR));
    let plain: Vec<Batch> = batches(&ds, &cfg, 3, 1).collect();
    assert_eq!(plain.len(), 6);

    let arc = Arc::new(ds.clone());
    for depth in [0, 1, 4] {
        let it = prefetch(batches_owned(arc.clone(), &cfg, 3, 1), depth);
        assert_eq!(it.size_hint(), (6, Some(6)));
        assert_eq!(it.collect::<Vec<_>>(), plain, "depth {depth}");
    }
    let scoped: Vec<Batch> =
        std::thread::scope(|s| prefetch_scoped(s, batches(&ds, &cfg, 3, 1), 2).collect());
    assert_eq!(scoped, plain);
    let owned: Vec<Batch> = batches_owned(arc, &cfg, 3, 1).collect();
    assert_eq!(owned, plain);
}

#[test]
fn prefetch_stops_early_and_propagates_panics() {
    let ds = Arc::new(synth::dataset(DatasetKind::Mnist, 100, 0));
    // Dropping after two batches must not hang (the producer is blocked on a full queue).
    let mut it = prefetch(batches_owned(ds, &BatchConfig::eval(4), 0, 0), 1);
    assert!(it.next().is_some() && it.next().is_some());
    drop(it);

    let failing = (0..5).inspect(|&i| {
        if i == 3 {
            panic!("producer failed");
        }
    });
    let got = std::panic::catch_unwind(|| {
        let mut seen = Vec::new();
        for v in prefetch(failing, 1) {
            seen.push(v);
        }
        seen
    });
    assert!(
        got.is_err(),
        "a producer panic must not look like the end of the epoch"
    );
}

/// Manual timing of batch assembly (prints, asserts nothing about time):
/// `cargo test -p hf-data --release -- --ignored --nocapture batch_timing`.
#[test]
#[ignore]
fn batch_timing() {
    for (kind, augment) in [
        (DatasetKind::Mnist, None),
        (
            DatasetKind::Mnist,
            Some(Augment {
                pad: 2,
                flip: false,
            }),
        ),
        (DatasetKind::Cifar10, None),
        (DatasetKind::Cifar10, Some(Augment::CIFAR)),
    ] {
        let ds = synth::dataset(kind, 10_000, 0);
        let cfg = shuffled(128, augment);
        let t = std::time::Instant::now();
        let mut n = 0;
        let mut buf = Batch::default();
        let mut it = batches(&ds, &cfg, 0, 0);
        while it.next_into(&mut buf) {
            n += 1;
        }
        let reuse = t.elapsed() / n;
        let t = std::time::Instant::now();
        let m = batches(&ds, &cfg, 0, 1).count() as u32;
        println!(
            "{kind} {augment:?}: {reuse:?} per batch of 128 (reused buffer), {:?} (fresh)",
            t.elapsed() / m
        );
    }
}
