//! Tests of `npy:DIR` datasets and the `.npy` reader, on generated files.

use std::fs;
use std::path::{Path, PathBuf};

use crate::synth::{self, encode_npy, npy_f32, npy_i64, npy_u8};
use crate::{
    batches, Augment, BatchConfig, DataError, DatasetKind, DatasetSpec, LoadOptions, Normalize,
    Pixels, Preprocessing, Split,
};

fn spec(dir: &Path) -> DatasetSpec {
    DatasetSpec::Npy(dir.to_path_buf())
}

/// A format 1.0 file with the given header dict text and data bytes.
fn with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    v.extend_from_slice(dict.as_bytes());
    v.extend_from_slice(data);
    v
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

/// A valid float dataset of `n` examples of shape `(c, h, w)` per split, labels `i % k`.
fn write_float(dir: &Path, n: usize, shape: &[usize], k: i64) {
    let per: usize = shape.iter().product();
    for split in ["train", "test"] {
        let x: Vec<f32> = (0..n * per).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut full = vec![n];
        full.extend_from_slice(shape);
        put(dir, &format!("{split}_x.npy"), &npy_f32(&full, &x));
        let y: Vec<i64> = (0..n as i64).map(|i| i % k).collect();
        put(dir, &format!("{split}_y.npy"), &npy_i64(&[n], &y));
    }
}

/// The error of loading both splits, checked to be one line that names `file`.
fn load_err(dir: &Path, opts: &LoadOptions, file: &str) -> String {
    let e = spec(dir).load_splits(opts).unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "multi-line message: {msg}");
    assert!(msg.contains(file), "message does not name {file}: {msg}");
    msg
}

#[test]
fn uint8_and_float_datasets_load() {
    for float in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        synth::write_npy_dataset(dir.path(), 30, 12, float, 4).unwrap();
        let (train, test) = spec(dir.path())
            .load_splits(&LoadOptions::default())
            .unwrap();
        let (images, labels) = synth::generate(DatasetKind::Mnist, 30, 4);
        assert_eq!((train.len(), test.len()), (30, 12));
        assert_eq!(
            (train.channels, train.height, train.width, train.classes),
            (1, 28, 28, 10)
        );
        assert_eq!(test.classes, 10);
        let want: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
        assert_eq!(train.labels, want);
        assert_eq!(train.source, spec(dir.path()));
        let p = train.preprocessing();
        if float {
            let want: Vec<f32> = images.iter().map(|&v| f32::from(v) / 255.0).collect();
            assert_eq!(train.images, Pixels::F32(want));
            assert_eq!(p, Preprocessing::identity());
        } else {
            assert_eq!(train.images, images);
            assert_eq!(p.scale, 1.0 / 255.0);
            assert_eq!(
                (p.mean.as_slice(), p.std.as_slice()),
                (&[0.0][..], &[1.0][..])
            );
        }
        // One split alone.
        let t = spec(dir.path())
            .load(Split::Test, &LoadOptions::default())
            .unwrap();
        assert_eq!(t.labels, test.labels);
    }
}

#[test]
fn uint8_npy_with_mnist_constants_gives_the_mnist_batches_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    synth::write_npy_dataset(dir.path(), 40, 10, false, 9).unwrap();
    synth::write_idx_dataset(dir.path(), 40, 10, false, 9).unwrap();
    let opts = LoadOptions {
        normalize: Some("0.1307,0.3081".parse().unwrap()),
        ..LoadOptions::default()
    };
    let (npy, _) = spec(dir.path()).load_splits(&opts).unwrap();
    let mnist = crate::load(DatasetKind::Mnist, dir.path(), Split::Train).unwrap();
    assert_eq!(npy.preprocessing(), mnist.preprocessing());
    let cfg = BatchConfig::train(16, Some(Augment { pad: 2, flip: true }));
    for (a, b) in batches(&npy, &cfg, 3, 1).zip(batches(&mnist, &cfg, 3, 1)) {
        assert_eq!(a.y, b.y);
        assert!(a
            .x
            .iter()
            .zip(&b.x)
            .all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}

#[test]
fn float_values_are_used_as_given_and_normalize_applies() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 5, &[2, 3, 3], 3);
    let (train, _) = spec(dir.path())
        .load_splits(&LoadOptions::default())
        .unwrap();
    assert_eq!(train.classes, 3);
    let b = batches(&train, &BatchConfig::eval(5), 0, 0).next().unwrap();
    assert_eq!(b.x, train.images.as_f32().unwrap());
    let mut one = vec![0f32; 18];
    train.normalized(1, &mut one);
    assert_eq!(one, &b.x[18..36]);
    // Per-channel normalisation: channel 0 (m 1, s 2), channel 1 (m -1, s 4).
    let opts = LoadOptions {
        normalize: Some("1,-1,2,4".parse().unwrap()),
        ..LoadOptions::default()
    };
    let (train, test) = spec(dir.path()).load_splits(&opts).unwrap();
    assert_eq!(test.mean, [1.0, -1.0]);
    let b = batches(&train, &BatchConfig::eval(1), 0, 0).next().unwrap();
    let raw = train.image(0);
    for j in 0..18 {
        let (m, s) = if j < 9 { (1.0, 2.0) } else { (-1.0, 4.0) };
        assert!((b.x[j] - (raw.get(j) - m) / s).abs() < 1e-6);
    }
    assert_eq!(
        train.preprocessing(),
        Preprocessing {
            scale: 1.0,
            mean: vec![1.0, -1.0],
            std: vec![2.0, 4.0]
        }
    );
}

#[test]
fn float_augmentation_matches_the_byte_path() {
    // Float data holding byte values, normalised by 1/255, crops and flips exactly as bytes.
    let dir = tempfile::tempdir().unwrap();
    synth::write_npy_dataset(dir.path(), 20, 4, false, 2).unwrap();
    let (bytes, _) = spec(dir.path())
        .load_splits(&LoadOptions::default())
        .unwrap();
    let mut floats = bytes.clone();
    floats.images = Pixels::F32(
        bytes
            .images
            .as_u8()
            .unwrap()
            .iter()
            .map(|&v| f32::from(v))
            .collect(),
    );
    let floats = floats
        .with_normalize(&"0,255".parse::<Normalize>().unwrap())
        .unwrap();
    let cfg = BatchConfig::train(8, Some(Augment { pad: 3, flip: true }));
    for (a, b) in batches(&floats, &cfg, 1, 2).zip(batches(&bytes, &cfg, 1, 2)) {
        assert_eq!(a.y, b.y);
        assert!(a
            .x
            .iter()
            .zip(&b.x)
            .all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}

#[test]
fn flat_vectors_are_d_by_1_by_1() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 4, &[5], 2);
    let (train, _) = spec(dir.path())
        .load_splits(&LoadOptions::default())
        .unwrap();
    assert_eq!((train.channels, train.height, train.width), (5, 1, 1));
    let opts = LoadOptions {
        normalize: Some("0.5,2".parse().unwrap()),
        ..LoadOptions::default()
    };
    let (train, _) = spec(dir.path()).load_splits(&opts).unwrap();
    assert_eq!(train.mean, [0.5; 5]);
    let opts = LoadOptions {
        normalize: Some("0,0,1,1".parse().unwrap()),
        ..LoadOptions::default()
    };
    let e = spec(dir.path()).load_splits(&opts).unwrap_err().to_string();
    assert!(
        e.contains("--normalize") && e.contains("2 mean/std pairs") && e.contains("5 channels"),
        "{e}"
    );
}

#[test]
fn classes_come_from_both_splits_or_the_model() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 6, &[3], 2);
    put(
        dir.path(),
        "test_y.npy",
        &npy_i64(&[6], &[0, 1, 2, 3, 4, 5]),
    );
    let (train, test) = spec(dir.path())
        .load_splits(&LoadOptions::default())
        .unwrap();
    assert_eq!((train.classes, test.classes), (6, 6));
    let alone = spec(dir.path())
        .load(Split::Train, &LoadOptions::default())
        .unwrap();
    assert_eq!(alone.classes, 2);
    let opts = LoadOptions {
        classes: Some(10),
        ..LoadOptions::default()
    };
    assert_eq!(spec(dir.path()).load_splits(&opts).unwrap().0.classes, 10);
    let opts = LoadOptions {
        classes: Some(4),
        ..LoadOptions::default()
    };
    let msg = load_err(dir.path(), &opts, "test_y.npy");
    assert!(
        msg.contains("label 4 of example 4") && msg.contains("model's 4 classes"),
        "{msg}"
    );
}

#[test]
fn data_dir_overrides_the_spec_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 3, &[2], 2);
    let opts = LoadOptions {
        data_dir: Some(dir.path().to_path_buf()),
        ..LoadOptions::default()
    };
    let (train, _) = DatasetSpec::Npy("does/not/exist".into())
        .load_splits(&opts)
        .unwrap();
    assert_eq!(train.len(), 3);
    assert_eq!(train.source, spec(dir.path()));
}

#[test]
fn other_label_dtypes_and_versions_load() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 3, &[2], 3);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("|u1", vec![0, 1, 2]),
        ("|i1", vec![0, 1, 2]),
        (
            "<i2",
            [0i16, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "<u2",
            [0u16, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "<i4",
            [0i32, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "<u4",
            [0u32, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
        (
            "<u8",
            [0u64, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    ];
    for (descr, data) in cases {
        put(dir.path(), "train_y.npy", &encode_npy(descr, &[3], &data));
        let (train, _) = spec(dir.path())
            .load_splits(&LoadOptions::default())
            .unwrap_or_else(|e| panic!("{descr}: {e}"));
        assert_eq!(train.labels, [0, 1, 2], "{descr}");
    }
    // (N, 1) labels, float64 inputs (converted), format 2.0 and 3.0 headers.
    put(dir.path(), "train_y.npy", &npy_i64(&[3, 1], &[2, 1, 0]));
    let x: Vec<u8> = [1.5f64, 2.0, -3.0, 4.0, 5.0, 6.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    put(dir.path(), "train_x.npy", &encode_npy("<f8", &[3, 2], &x));
    let (train, _) = spec(dir.path())
        .load_splits(&LoadOptions::default())
        .unwrap();
    assert_eq!(train.labels, [2, 1, 0]);
    assert_eq!(
        train.images.as_f32().unwrap(),
        [1.5, 2.0, -3.0, 4.0, 5.0, 6.25]
    );
    for major in [2u8, 3] {
        let v1 = npy_i64(&[3], &[1, 1, 1]);
        let hlen = u16::from_le_bytes([v1[8], v1[9]]) as u32;
        let mut v = b"\x93NUMPY".to_vec();
        v.extend_from_slice(&[major, 0]);
        v.extend_from_slice(&hlen.to_le_bytes());
        v.extend_from_slice(&v1[10..]);
        put(dir.path(), "train_y.npy", &v);
        let (train, _) = spec(dir.path())
            .load_splits(&LoadOptions::default())
            .unwrap();
        assert_eq!(train.labels, [1, 1, 1]);
    }
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 3, &[2], 2);
    fs::remove_file(dir.path().join("test_y.npy")).unwrap();
    let msg = load_err(dir.path(), &LoadOptions::default(), "test_y.npy");
    assert!(
        msg.contains("not found") && msg.contains("npy:DIR"),
        "{msg}"
    );
    let empty = tempfile::tempdir().unwrap();
    let msg = load_err(empty.path(), &LoadOptions::default(), "train_x.npy");
    assert!(
        msg.contains("train_x.npy, train_y.npy, test_x.npy and test_y.npy"),
        "{msg}"
    );
}

#[test]
fn not_a_npy_file() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 3, &[2], 2);
    put(dir.path(), "train_x.npy", b"x,y\n1,2\n");
    let msg = load_err(dir.path(), &LoadOptions::default(), "train_x.npy");
    assert!(
        msg.contains("not a .npy file") && msg.contains("numpy.save"),
        "{msg}"
    );
    put(dir.path(), "train_x.npy", b"");
    let msg = load_err(dir.path(), &LoadOptions::default(), "train_x.npy");
    assert!(msg.contains("not a .npy file"), "{msg}");
}

#[test]
fn truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 4, &[1, 2, 2], 2);
    let good = fs::read(dir.path().join("train_x.npy")).unwrap();
    // Data cut short.
    put(dir.path(), "train_x.npy", &good[..good.len() - 5]);
    let msg = load_err(dir.path(), &LoadOptions::default(), "train_x.npy");
    assert!(
        msg.contains("truncated") && msg.contains("64 data bytes") && msg.contains("59"),
        "{msg}"
    );
    // Header cut short, preamble cut short.
    for cut in [40, 9, 7] {
        put(dir.path(), "train_x.npy", &good[..cut]);
        let msg = load_err(dir.path(), &LoadOptions::default(), "train_x.npy");
        assert!(msg.contains("truncated or corrupt"), "{cut}: {msg}");
    }
    // Trailing bytes.
    let mut long = good.clone();
    long.extend_from_slice(&[0; 8]);
    put(dir.path(), "train_x.npy", &long);
    let msg = load_err(dir.path(), &LoadOptions::default(), "train_x.npy");
    assert!(msg.contains("8 bytes after the data"), "{msg}");
    // A garbled header.
    let mut bad = good.clone();
    bad[10] = b'@';
    put(dir.path(), "train_x.npy", &bad);
    let msg = load_err(dir.path(), &LoadOptions::default(), "train_x.npy");
    assert!(msg.contains("bad .npy header"), "{msg}");
    // Header without a shape.
    put(
        dir.path(),
        "train_x.npy",
        &with_header("{'descr': '<f4', 'a': 1}", &[]),
    );
    let msg = load_err(dir.path(), &LoadOptions::default(), "train_x.npy");
    assert!(msg.contains("no 'fortran_order'"), "{msg}");
}

#[test]
fn unsupported_dtypes_orders_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 2, &[2], 2);
    let check = |name: &str, bytes: Vec<u8>, want: &[&str]| {
        let d = tempfile::tempdir().unwrap();
        write_float(d.path(), 2, &[2], 2);
        put(d.path(), name, &bytes);
        let msg = load_err(d.path(), &LoadOptions::default(), name);
        for w in want {
            assert!(msg.contains(w), "{name}: {msg} lacks {w}");
        }
    };
    check(
        "train_x.npy",
        encode_npy("<i4", &[2, 2], &[0; 16]),
        &["dtype '<i4' (int32)", "float32 or uint8"],
    );
    check(
        "train_x.npy",
        encode_npy("<c8", &[2, 2], &[0; 32]),
        &["dtype '<c8'", "float32"],
    );
    check(
        "test_y.npy",
        encode_npy("<f4", &[2], &[0; 8]),
        &["labels of dtype '<f4' (float32)", "int64"],
    );
    check(
        "train_x.npy",
        encode_npy(">f4", &[2, 2], &[0; 16]),
        &["big-endian", "'>f4'"],
    );
    check(
        "train_x.npy",
        with_header(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
            &[0; 16],
        ),
        &["Fortran", "ascontiguousarray"],
    );
    check(
        "train_x.npy",
        npy_f32(&[2, 28, 28], &vec![0.0; 2 * 784]),
        &["shape (2, 28, 28)", "(2, 1, 28, 28)"],
    );
    check(
        "train_y.npy",
        npy_i64(&[1, 2], &[0, 1]),
        &["labels of shape (1, 2)"],
    );
    let mut v4 = npy_i64(&[2], &[0, 1]);
    v4[6] = 4;
    check("train_y.npy", v4, &["version 4.0"]);
    check(
        "train_x.npy",
        with_header(
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
            &[0; 8],
        ),
        &["structured"],
    );
}

#[test]
fn non_finite_inputs() {
    for (bad, want) in [
        (f32::NAN, "NaN"),
        (f32::INFINITY, "inf"),
        (f32::NEG_INFINITY, "-inf"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_float(dir.path(), 3, &[4], 2);
        let mut x = vec![0.5f32; 12];
        x[9] = bad;
        put(dir.path(), "test_x.npy", &npy_f32(&[3, 4], &x));
        let msg = load_err(dir.path(), &LoadOptions::default(), "test_x.npy");
        assert!(
            msg.contains(&format!("example 2 holds {want} at position 1")),
            "{msg}"
        );
    }
    // float64 too large for float32.
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 1, &[2], 2);
    let x: Vec<u8> = [1.0f64, 1e300]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    put(dir.path(), "train_x.npy", &encode_npy("<f8", &[1, 2], &x));
    let msg = load_err(dir.path(), &LoadOptions::default(), "train_x.npy");
    assert!(msg.contains("holds 1e300 at position 1"), "{msg}");
}

#[test]
fn x_and_y_counts_must_match() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 3, &[2], 2);
    put(dir.path(), "train_y.npy", &npy_i64(&[2], &[0, 1]));
    let msg = load_err(dir.path(), &LoadOptions::default(), "train_y.npy");
    assert!(
        msg.contains("2 labels") && msg.contains("train_x.npy has 3 examples"),
        "{msg}"
    );
}

#[test]
fn empty_split() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 3, &[2], 2);
    put(dir.path(), "test_x.npy", &npy_u8(&[0, 1, 28, 28], &[]));
    let msg = load_err(dir.path(), &LoadOptions::default(), "test_x.npy");
    assert!(
        msg.contains("no examples") && msg.contains("(0, 1, 28, 28)"),
        "{msg}"
    );
    put(dir.path(), "test_x.npy", &npy_f32(&[3, 2], &[0.0; 6]));
    put(dir.path(), "test_y.npy", &npy_i64(&[0], &[]));
    let msg = load_err(dir.path(), &LoadOptions::default(), "test_y.npy");
    assert!(msg.contains("no examples"), "{msg}");
}

#[test]
fn negative_labels() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 3, &[2], 2);
    put(dir.path(), "train_y.npy", &npy_i64(&[3], &[0, -1, 1]));
    let msg = load_err(dir.path(), &LoadOptions::default(), "train_y.npy");
    assert!(msg.contains("label -1 of example 1 is negative"), "{msg}");
    put(dir.path(), "train_y.npy", &npy_i64(&[3], &[0, 1 << 40, 1]));
    let msg = load_err(dir.path(), &LoadOptions::default(), "train_y.npy");
    assert!(msg.contains("too large"), "{msg}");
}

#[test]
fn splits_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 3, &[2, 2, 2], 2);
    put(
        dir.path(),
        "test_x.npy",
        &npy_f32(&[3, 2, 2, 1], &[0.0; 12]),
    );
    let msg = load_err(dir.path(), &LoadOptions::default(), "test_x.npy");
    assert!(
        msg.contains("train_x.npy") && msg.contains("(2, 2, 1)"),
        "{msg}"
    );
    put(dir.path(), "test_x.npy", &npy_u8(&[3, 2, 2, 2], &[0; 24]));
    let msg = load_err(dir.path(), &LoadOptions::default(), "test_x.npy");
    assert!(msg.contains("uint8") && msg.contains("float32"), "{msg}");
}

#[test]
fn normalize_must_fit() {
    let dir = tempfile::tempdir().unwrap();
    write_float(dir.path(), 3, &[3, 2, 2], 2);
    let bad = [
        (
            Normalize {
                mean: vec![0.0; 2],
                std: vec![1.0; 2],
            },
            "2 mean/std pairs",
        ),
        (
            Normalize {
                mean: vec![0.0],
                std: vec![0.0],
            },
            "not > 0",
        ),
        (
            Normalize {
                mean: vec![0.0],
                std: vec![-1.0],
            },
            "not > 0",
        ),
        (
            Normalize {
                mean: vec![0.0, 1.0],
                std: vec![1.0],
            },
            "2 means and 1",
        ),
    ];
    for (n, want) in bad {
        let opts = LoadOptions {
            normalize: Some(n),
            ..LoadOptions::default()
        };
        let msg = load_err(dir.path(), &opts, "--normalize");
        assert!(msg.contains(want), "{msg}");
    }
    let opts = LoadOptions {
        normalize: Some("0,0,0,1,2,3".parse().unwrap()),
        ..LoadOptions::default()
    };
    let (train, _) = spec(dir.path()).load_splits(&opts).unwrap();
    assert_eq!(train.std, [1.0, 2.0, 3.0]);
    // Built-in datasets take --normalize too.
    let m = tempfile::tempdir().unwrap();
    synth::write_idx_dataset(m.path(), 4, 4, false, 1).unwrap();
    let opts = LoadOptions {
        data_dir: Some(m.path().to_path_buf()),
        normalize: Some("0.5,0.5".parse().unwrap()),
        ..LoadOptions::default()
    };
    let (train, test) = DatasetSpec::Builtin(DatasetKind::Mnist)
        .load_splits(&opts)
        .unwrap();
    assert_eq!((train.mean[0], test.std[0]), (0.5, 0.5));
    let opts = LoadOptions {
        normalize: Some("0,0,1,1".parse().unwrap()),
        ..opts
    };
    let e = DatasetSpec::Builtin(DatasetKind::Mnist)
        .load_splits(&opts)
        .unwrap_err();
    assert!(matches!(e, DataError::Normalize { .. }), "{e}");
    assert!(e.to_string().starts_with("--normalize for mnist: "), "{e}");
}

#[test]
fn read_npy_takes_any_shape_of_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let p = put(dir.path(), "one.npy", &npy_u8(&[1, 28, 28], &[7; 784]));
    let (shape, v) = crate::read_npy(&p).unwrap();
    assert_eq!(shape, [1, 28, 28]);
    assert_eq!(v, vec![7u8; 784]);
    let p = put(dir.path(), "s.npy", &npy_f32(&[3], &[1.0, 2.0, 3.0]));
    assert_eq!(
        crate::read_npy(&p).unwrap().1,
        Pixels::F32(vec![1.0, 2.0, 3.0])
    );
    let p = put(
        dir.path(),
        "nan.npy",
        &npy_f32(&[2, 2], &[1.0, 2.0, 3.0, f32::NAN]),
    );
    let e = crate::read_npy(&p).unwrap_err().to_string();
    assert!(
        e.contains("nan.npy: example 1 holds NaN at position 1"),
        "{e}"
    );
    let p = put(dir.path(), "i.npy", &npy_i64(&[2], &[1, 2]));
    let e = crate::read_npy(&p).unwrap_err().to_string();
    assert!(e.contains("dtype '<i8' (int64)"), "{e}");
}
