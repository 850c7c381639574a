//! Tests of the file readers, on files written by `synth` (no real data needed).

use std::fs;
use std::path::{Path, PathBuf};

use crate::synth;
use crate::{load, DataError, DatasetKind, Split};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Labels as the dataset stores them.
fn u32s(labels: &[u8]) -> Vec<u32> {
    labels.iter().map(|&l| u32::from(l)).collect()
}

fn assert_one_line(e: &DataError) -> String {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    msg
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes valid raw IDX files for the training split and returns their paths.
fn write_train_idx(dir: &Path, n: usize) -> (PathBuf, PathBuf) {
    let (images, labels) = synth::generate(DatasetKind::Mnist, n, 1);
    let ip = dir.join("train-images-idx3-ubyte");
    let lp = dir.join("train-labels-idx1-ubyte");
    synth::write_idx_images(&ip, &images, n, 28, 28, false).unwrap();
    synth::write_idx_labels(&lp, &labels, false).unwrap();
    (ip, lp)
}

#[test]
fn idx_round_trip_raw_and_gz() {
    for gz in [false, true] {
        let dir = tmp();
        synth::write_idx_dataset(dir.path(), 37, 11, gz, 42).unwrap();
        let suffix = if gz { ".gz" } else { "" };
        let name = format!("train-images-idx3-ubyte{suffix}");
        assert!(dir.path().join(&name).exists());
        let raw_name = dir.path().join("train-images-idx3-ubyte");
        assert_eq!(raw_name.exists(), !gz);

        let train = load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap();
        let (images, labels) = synth::generate(DatasetKind::Mnist, 37, 42);
        assert_eq!(train.len(), 37);
        assert_eq!(train.images, images);
        assert_eq!(train.labels, u32s(&labels));
        assert_eq!(
            (train.channels, train.height, train.width, train.classes),
            (1, 28, 28, 10)
        );
        assert_eq!(train.mean, vec![0.1307]);

        let test = load(DatasetKind::FashionMnist, dir.path(), Split::Test).unwrap();
        assert_eq!(test.len(), 11);
        assert_eq!(test.source, DatasetKind::FashionMnist.into());
        assert_eq!(test.std, vec![0.3530]);
        assert_ne!(
            test.images.as_u8().unwrap()[..784],
            train.images.as_u8().unwrap()[..784],
            "test split must differ"
        );
    }
}

#[test]
fn gzip_is_detected_by_magic_not_name() {
    let dir = tmp();
    let (images, labels) = synth::generate(DatasetKind::Mnist, 5, 3);
    // Gzipped content under the plain name, raw content under the .gz name.
    let img = synth::encode_idx_images(&images, 5, 28, 28).unwrap();
    fs::write(dir.path().join("train-images-idx3-ubyte"), gzip(&img)).unwrap();
    let lbl = synth::encode_idx_labels(&labels).unwrap();
    fs::write(dir.path().join("train-labels-idx1-ubyte.gz"), &lbl).unwrap();
    let ds = load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap();
    assert_eq!(ds.images, images);
    assert_eq!(ds.labels, u32s(&labels));
}

#[test]
fn plain_name_is_preferred_over_gz() {
    let dir = tmp();
    write_train_idx(dir.path(), 4);
    fs::write(dir.path().join("train-images-idx3-ubyte.gz"), b"garbage").unwrap();
    assert_eq!(
        load(DatasetKind::Mnist, dir.path(), Split::Train)
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn missing_file_names_the_file_and_the_fix() {
    let dir = tmp();
    let e = load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap_err();
    assert!(matches!(e, DataError::NotFound { .. }), "{e:?}");
    let msg = assert_one_line(&e);
    let want = dir.path().join("train-images-idx3-ubyte");
    assert!(
        msg.starts_with(&format!(
            "MNIST file {} not found (also tried .gz): ",
            want.display()
        )),
        "{msg}"
    );
    assert!(
        msg.contains("scripts/setup.sh") && msg.contains("--data-dir"),
        "{msg}"
    );

    // Images present, labels missing: the label file is named.
    let (images, _) = synth::generate(DatasetKind::Mnist, 2, 0);
    synth::write_idx_images(
        &dir.path().join("t10k-images-idx3-ubyte.gz"),
        &images,
        2,
        28,
        28,
        true,
    )
    .unwrap();
    let msg = load(DatasetKind::FashionMnist, dir.path(), Split::Test)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("t10k-labels-idx1-ubyte not found"), "{msg}");
    assert!(
        msg.contains("Fashion-MNIST") && msg.contains("dataset-fashion-mnist"),
        "{msg}"
    );
}

#[test]
fn corrupt_magic_is_reported() {
    let dir = tmp();
    let (ip, lp) = write_train_idx(dir.path(), 3);
    let mut bytes = fs::read(&ip).unwrap();
    bytes[3] = 0x04;
    fs::write(&ip, &bytes).unwrap();
    let e = load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap_err();
    let msg = assert_one_line(&e);
    assert_eq!(
        msg,
        format!(
            "{}: not an IDX image file (magic 0x00000804, expected 0x00000803); the file is corrupt — re-download it",
            ip.display()
        )
    );

    // Swapped files: a label file where the images should be, and vice versa.
    let img = fs::read(&lp).unwrap();
    fs::write(&ip, img).unwrap();
    let msg = load(DatasetKind::Mnist, dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("magic 0x00000801, expected 0x00000803"),
        "{msg}"
    );
}

#[test]
fn truncated_files_report_expected_and_actual_sizes() {
    let dir = tmp();
    let (ip, lp) = write_train_idx(dir.path(), 3);
    let bytes = fs::read(&ip).unwrap();
    assert_eq!(bytes.len(), 16 + 3 * 784);
    fs::write(&ip, &bytes[..bytes.len() - 100]).unwrap();
    let e = load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::WrongSize {
                expected: 2368,
                actual: 2268,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = assert_one_line(&e);
    assert!(msg.starts_with(&ip.display().to_string()), "{msg}");
    assert!(
        msg.contains("2368") && msg.contains("2268") && msg.contains("3 images"),
        "{msg}"
    );

    // Trailing garbage is rejected as well.
    let mut long = bytes.clone();
    long.push(0);
    fs::write(&ip, &long).unwrap();
    assert!(matches!(
        load(DatasetKind::Mnist, dir.path(), Split::Train),
        Err(DataError::WrongSize {
            expected: 2368,
            actual: 2369,
            ..
        })
    ));

    // Shorter than a header.
    fs::write(&ip, &bytes).unwrap();
    fs::write(&lp, [0, 0, 8]).unwrap();
    let e = load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap_err();
    assert!(matches!(e, DataError::WrongSize { actual: 3, .. }), "{e:?}");
    assert!(e.to_string().contains("train-labels-idx1-ubyte"), "{e}");

    // Labels header claims more labels than present.
    let mut lbl = synth::encode_idx_labels(&[1, 2, 3]).unwrap();
    lbl.pop();
    fs::write(&lp, lbl).unwrap();
    let msg = load(DatasetKind::Mnist, dir.path(), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("expected 11 bytes") && msg.contains("found 10"),
        "{msg}"
    );
}

#[test]
fn truncated_gzip_names_the_file() {
    let dir = tmp();
    synth::write_idx_dataset(dir.path(), 20, 2, true, 5).unwrap();
    let p = dir.path().join("train-images-idx3-ubyte.gz");
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap_err();
    assert!(matches!(e, DataError::Decompress { .. }), "{e:?}");
    let msg = assert_one_line(&e);
    assert!(
        msg.starts_with(&format!("{}: gzip decompression failed", p.display())),
        "{msg}"
    );
}

#[test]
fn wrong_image_size_is_reported() {
    let dir = tmp();
    synth::write_idx_images(
        &dir.path().join("train-images-idx3-ubyte"),
        &[0; 2 * 32 * 32],
        2,
        32,
        32,
        false,
    )
    .unwrap();
    synth::write_idx_labels(&dir.path().join("train-labels-idx1-ubyte"), &[0, 1], false).unwrap();
    let e = load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::BadShape {
                height: 32,
                width: 32,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("32x32, expected 28x28"), "{e}");
}

#[test]
fn label_and_image_counts_must_match() {
    let dir = tmp();
    let (ip, lp) = write_train_idx(dir.path(), 4);
    synth::write_idx_labels(&lp, &[1, 2, 3], false).unwrap();
    let e = load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::CountMismatch {
                images: 4,
                labels: 3,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = assert_one_line(&e);
    assert!(msg.contains(&ip.display().to_string()) && msg.contains(&lp.display().to_string()));
    assert!(
        msg.contains("3 labels") && msg.contains("4 images"),
        "{msg}"
    );
}

#[test]
fn label_out_of_range_is_reported() {
    let dir = tmp();
    let (_, lp) = write_train_idx(dir.path(), 4);
    synth::write_idx_labels(&lp, &[1, 2, 9, 10], false).unwrap();
    let e = load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                index: 3,
                label: 10,
                classes: 10,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = assert_one_line(&e);
    assert!(msg.starts_with(&lp.display().to_string()), "{msg}");
    assert!(msg.contains("example 3 has label 10"), "{msg}");
}

#[test]
fn cifar10_round_trip_over_five_files() {
    let dir = tmp();
    synth::write_cifar_dataset(dir.path(), DatasetKind::Cifar10, 13, 4, 9).unwrap();
    let sizes: Vec<u64> = (1..=5)
        .map(|i| {
            fs::metadata(dir.path().join(format!("data_batch_{i}.bin")))
                .unwrap()
                .len()
                / 3073
        })
        .collect();
    assert_eq!(sizes, [3, 3, 3, 2, 2]);
    let train = load(DatasetKind::Cifar10, dir.path(), Split::Train).unwrap();
    let (images, labels) = synth::generate(DatasetKind::Cifar10, 13, 9);
    assert_eq!(train.images, images);
    assert_eq!(train.labels, u32s(&labels));
    assert_eq!(
        (train.channels, train.height, train.width, train.classes),
        (3, 32, 32, 10)
    );
    assert_eq!(train.mean, vec![0.4914, 0.4822, 0.4465]);
    let test = load(DatasetKind::Cifar10, dir.path(), Split::Test).unwrap();
    assert_eq!(test.len(), 4);
}

#[test]
fn cifar_record_layout_is_label_then_planes() {
    let dir = tmp();
    // One hand-made record: label 7, R plane = 1, G plane = 2, B plane = 3.
    let mut rec = vec![7u8];
    for v in [1u8, 2, 3] {
        rec.extend_from_slice(&[v; 1024]);
    }
    fs::write(dir.path().join("test_batch.bin"), &rec).unwrap();
    let ds = load(DatasetKind::Cifar10, dir.path(), Split::Test).unwrap();
    assert_eq!(ds.labels, [7]);
    assert_eq!(ds.image(0).get(0), 1.0);
    assert_eq!(ds.image(0).get(1024), 2.0);
    assert_eq!(ds.image(0).get(3071), 3.0);
    // CIFAR-100 records carry coarse then fine label; the fine one is used.
    let mut rec100 = vec![3u8, 17];
    rec100.extend_from_slice(&rec[1..]);
    fs::write(dir.path().join("test.bin"), &rec100).unwrap();
    let ds = load(DatasetKind::Cifar100, dir.path(), Split::Test).unwrap();
    assert_eq!(ds.labels, [17]);
    assert_eq!(ds.images.len(), 3072);
}

#[test]
fn cifar100_round_trip_uses_fine_labels() {
    let dir = tmp();
    synth::write_cifar_dataset(dir.path(), DatasetKind::Cifar100, 50, 7, 2).unwrap();
    let train = load(DatasetKind::Cifar100, dir.path(), Split::Train).unwrap();
    let (images, labels) = synth::generate(DatasetKind::Cifar100, 50, 2);
    assert_eq!(train.labels, u32s(&labels));
    assert_eq!(train.images, images);
    assert_eq!(train.classes, 100);
    assert!(
        train.labels.iter().any(|&l| l >= 20),
        "fine labels expected"
    );
    assert_eq!(
        load(DatasetKind::Cifar100, dir.path(), Split::Test)
            .unwrap()
            .len(),
        7
    );
}

#[test]
fn cifar_wrong_sizes_are_reported() {
    let dir = tmp();
    synth::write_cifar_dataset(dir.path(), DatasetKind::Cifar10, 10, 2, 1).unwrap();
    let p = dir.path().join("data_batch_4.bin");
    let bytes = fs::read(&p).unwrap();
    fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
    let e = load(DatasetKind::Cifar10, dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(e, DataError::RecordSize { record: 3073, .. }),
        "{e:?}"
    );
    let msg = assert_one_line(&e);
    assert!(msg.starts_with(&p.display().to_string()), "{msg}");
    assert!(
        msg.contains("not a multiple of the 3073-byte CIFAR-10 record"),
        "{msg}"
    );

    // A CIFAR-10 file (3073-byte records) where CIFAR-100 (3074) is expected.
    fs::write(dir.path().join("test.bin"), vec![0u8; 3 * 3073]).unwrap();
    let e = load(DatasetKind::Cifar100, dir.path(), Split::Test).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::RecordSize {
                record: 3074,
                len: 9219,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn cifar_labels_out_of_range_name_file_and_record() {
    let dir = tmp();
    let (images, mut labels) = synth::generate(DatasetKind::Cifar10, 3, 0);
    labels[1] = 10;
    let mut bytes = Vec::new();
    for (img, l) in images.chunks(3072).zip(&labels) {
        bytes.push(*l);
        bytes.extend_from_slice(img);
    }
    let p = dir.path().join("test_batch.bin");
    fs::write(&p, &bytes).unwrap();
    let e = load(DatasetKind::Cifar10, dir.path(), Split::Test).unwrap_err();
    let msg = assert_one_line(&e);
    assert!(msg.starts_with(&p.display().to_string()), "{msg}");
    assert!(
        msg.contains("record 1 has label 10, expected < 10"),
        "{msg}"
    );

    // CIFAR-100: fine label 100 is out of range, 99 is fine.
    let mut rec = vec![19u8, 99];
    rec.extend_from_slice(&images[..3072]);
    rec.extend_from_slice(&[0, 100]);
    rec.extend_from_slice(&images[..3072]);
    fs::write(dir.path().join("train.bin"), &rec).unwrap();
    let e = load(DatasetKind::Cifar100, dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::LabelOutOfRange {
                index: 1,
                label: 100,
                classes: 100,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn cifar_missing_batch_is_named() {
    let dir = tmp();
    synth::write_cifar_dataset(dir.path(), DatasetKind::Cifar10, 10, 2, 1).unwrap();
    let p = dir.path().join("data_batch_3.bin");
    fs::remove_file(&p).unwrap();
    let e = load(DatasetKind::Cifar10, dir.path(), Split::Train).unwrap_err();
    let msg = assert_one_line(&e);
    assert!(
        msg.starts_with(&format!("CIFAR-10 file {} not found: ", p.display())),
        "{msg}"
    );
    assert!(msg.contains("cifar-10-binary.tar.gz"), "{msg}");
}

/// Nearest-centroid accuracy of `test` given `train`, on features `f`.
fn centroid_accuracy(kind: DatasetKind, f: impl Fn(&[u8]) -> Vec<f32>) -> f32 {
    let train = synth::dataset(kind, 600, 11);
    let test = synth::dataset(kind, 200, 12);
    let dim = f(train.image(0).as_u8().unwrap()).len();
    let mut sums = vec![vec![0f32; dim]; kind.classes()];
    let mut counts = vec![0f32; kind.classes()];
    for i in 0..train.len() {
        let l = train.label(i) as usize;
        for (s, v) in sums[l].iter_mut().zip(f(train.image(i).as_u8().unwrap())) {
            *s += v;
        }
        counts[l] += 1.0;
    }
    let mut correct = 0;
    for i in 0..test.len() {
        let x = f(test.image(i).as_u8().unwrap());
        let best = (0..kind.classes())
            .filter(|&c| counts[c] > 0.0)
            .min_by(|&a, &b| {
                let d = |c: usize| -> f32 {
                    sums[c]
                        .iter()
                        .zip(&x)
                        .map(|(s, v)| (s / counts[c] - v).powi(2))
                        .sum()
                };
                d(a).total_cmp(&d(b))
            })
            .unwrap();
        correct += usize::from(best == test.label(i) as usize);
    }
    correct as f32 / test.len() as f32
}

#[test]
fn synthetic_classes_are_learnable() {
    let raw = |img: &[u8]| img.iter().map(|&v| v as f32).collect::<Vec<_>>();
    let acc = centroid_accuracy(DatasetKind::Mnist, raw);
    assert!(acc > 0.95, "MNIST-like accuracy {acc}");
    // Channel means: position-invariant features that a colour-coded class shows in.
    let means = |img: &[u8]| {
        img.chunks(1024)
            .map(|p| p.iter().map(|&v| v as f32).sum::<f32>() / 1024.0)
            .collect::<Vec<_>>()
    };
    let acc = centroid_accuracy(DatasetKind::Cifar10, means);
    assert!(acc > 0.9, "CIFAR-10-like accuracy {acc}");
}

/// Manual check against the real data sets (not part of the normal test run):
/// `cargo test -p hf-data -- --ignored --nocapture real_data`.
#[test]
#[ignore]
fn real_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (kind, dir) in [
        (
            DatasetKind::Mnist,
            root.join(DatasetKind::Mnist.default_dir()),
        ),
        (
            DatasetKind::FashionMnist,
            DatasetKind::FashionMnist.default_dir(),
        ),
    ] {
        for split in [Split::Train, Split::Test] {
            let t = std::time::Instant::now();
            match load(kind, &dir, split) {
                Ok(ds) => {
                    let mut hist = vec![0usize; ds.classes];
                    for &l in &ds.labels {
                        hist[l as usize] += 1;
                    }
                    let px = ds.images.as_u8().unwrap();
                    let mean = px.iter().map(|&v| v as f64).sum::<f64>() / px.len() as f64 / 255.0;
                    println!(
                        "{kind} {split}: {} images, first labels {:?}, per-class {:?}, pixel mean {:.4}, loaded in {:?}",
                        ds.len(),
                        &ds.labels[..10],
                        hist,
                        mean,
                        t.elapsed()
                    );
                }
                Err(e) => println!("{kind} {split}: {e}"),
            }
        }
    }
}

#[test]
fn empty_splits_are_refused() {
    // Valid IDX files that hold zero images (the header says 0).
    let dir = tmp();
    synth::write_idx_dataset(dir.path(), 5, 0, false, 1).unwrap();
    assert_eq!(
        load(DatasetKind::Mnist, dir.path(), Split::Train)
            .unwrap()
            .len(),
        5
    );
    let e = load(DatasetKind::Mnist, dir.path(), Split::Test).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
    let msg = assert_one_line(&e);
    assert!(
        msg.contains("MNIST test set")
            && msg.contains(&dir.path().display().to_string())
            && msg.contains("no examples"),
        "{msg}"
    );
    // CIFAR: empty batch files.
    let dir = tmp();
    synth::write_cifar_dataset(dir.path(), DatasetKind::Cifar10, 5, 0, 1).unwrap();
    assert_eq!(
        fs::metadata(dir.path().join("test_batch.bin"))
            .unwrap()
            .len(),
        0
    );
    let e = load(DatasetKind::Cifar10, dir.path(), Split::Test).unwrap_err();
    assert!(matches!(e, DataError::Empty { .. }), "{e:?}");
}

/// Bounded fuzzing of the IDX and CIFAR readers: random byte flips (header and data),
/// truncations, extensions and gzip damage of valid files. Loading never panics; what loads
/// is consistent (whole images, one label each, every label a valid class); a file whose
/// length no longer matches its header is always refused.
#[test]
fn fuzzed_data_files_never_panic_and_what_loads_is_consistent() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let check = |kind: DatasetKind, dir: &Path, split: Split| -> bool {
        match load(kind, dir, split) {
            Ok(ds) => {
                assert!(!ds.is_empty());
                assert_eq!(ds.images.len(), ds.labels.len() * ds.image_len());
                assert!(ds.labels.iter().all(|&l| (l as usize) < ds.classes));
                true
            }
            Err(e) => {
                assert_one_line(&e);
                false
            }
        }
    };
    // IDX, raw and gzipped: mutate one of the four files per case.
    for gz in [false, true] {
        let good = tmp();
        synth::write_idx_dataset(good.path(), 12, 4, gz, 3).unwrap();
        let names: Vec<String> = fs::read_dir(good.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        for case in 0..160 {
            let dir = tmp();
            for n in &names {
                fs::copy(good.path().join(n), dir.path().join(n)).unwrap();
            }
            let name = &names[rng.gen_range(0..names.len())];
            let p = dir.path().join(name);
            let mut b = fs::read(&p).unwrap();
            let len = b.len();
            let resized = match case % 5 {
                0 => {
                    // header bytes (magic, counts, sizes)
                    let k = rng.gen_range(0..16.min(len));
                    b[k] = rng.gen();
                    false
                }
                1 | 2 => {
                    for _ in 0..rng.gen_range(1..6) {
                        let k = rng.gen_range(0..len);
                        b[k] = rng.gen();
                    }
                    false
                }
                3 => {
                    b.truncate(rng.gen_range(0..len));
                    true
                }
                _ => {
                    b.extend((0..rng.gen_range(1..40)).map(|_| rng.gen::<u8>()));
                    true
                }
            };
            fs::write(&p, &b).unwrap();
            let split = if name.starts_with("train") {
                Split::Train
            } else {
                Split::Test
            };
            let loaded = check(DatasetKind::Mnist, dir.path(), split);
            if resized && !gz {
                assert!(
                    !loaded,
                    "{name} resized from {len} to {} bytes loaded",
                    b.len()
                );
            }
            check(DatasetKind::FashionMnist, dir.path(), split);
        }
    }
    // CIFAR-10 and CIFAR-100.
    for kind in [DatasetKind::Cifar10, DatasetKind::Cifar100] {
        let good = tmp();
        synth::write_cifar_dataset(good.path(), kind, 10, 3, 5).unwrap();
        let test_name = crate::cifar::file_names(kind, Split::Test)[0].clone();
        let record = crate::cifar::label_bytes(kind) + crate::cifar::PIXELS;
        for case in 0..80 {
            let dir = tmp();
            for e in fs::read_dir(good.path()).unwrap() {
                let e = e.unwrap();
                fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
            }
            let p = dir.path().join(&test_name);
            let mut b = fs::read(&p).unwrap();
            let len = b.len();
            match case % 4 {
                0 | 1 => {
                    for _ in 0..rng.gen_range(1..6) {
                        // label bytes are at the start of each record
                        let k = if rng.gen() {
                            rng.gen_range(0..3) * record + rng.gen_range(0..2)
                        } else {
                            rng.gen_range(0..len)
                        };
                        b[k] = rng.gen();
                    }
                }
                2 => b.truncate(rng.gen_range(0..len)),
                _ => b.extend((0..rng.gen_range(1..40)).map(|_| rng.gen::<u8>())),
            }
            fs::write(&p, &b).unwrap();
            let loaded = check(kind, dir.path(), Split::Test);
            if !b.len().is_multiple_of(record) || b.is_empty() {
                assert!(!loaded, "CIFAR file of {} bytes loaded", b.len());
            }
            check(kind, dir.path(), Split::Train);
        }
    }
}

#[test]
fn split_tail_keeps_order_and_everything_but_the_examples() {
    let ds = synth::dataset(DatasetKind::Mnist, 10, 5);
    let (head, tail) = ds.clone().split_tail(3);
    assert_eq!((head.len(), tail.len()), (7, 3));
    for i in 0..7 {
        assert_eq!(head.image(i), ds.image(i));
        assert_eq!(head.label(i), ds.label(i));
    }
    for i in 0..3 {
        assert_eq!(tail.image(i), ds.image(7 + i));
        assert_eq!(tail.label(i), ds.label(7 + i));
    }
    assert_eq!(
        (tail.classes, &tail.mean, &tail.std),
        (ds.classes, &ds.mean, &ds.std)
    );
    // clamped: all of it, or none of it
    let (h, t) = ds.clone().split_tail(99);
    assert_eq!((h.len(), t.len()), (0, 10));
    let (h, t) = ds.split_tail(0);
    assert_eq!((h.len(), t.len()), (10, 0));
}
