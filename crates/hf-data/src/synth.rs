//! Tiny synthetic datasets in the real file formats, for tests of this and other crates
//! (tests never download anything).
//!
//! The classes are learnable: IDX (MNIST-like) images show a bright horizontal bar whose row
//! encodes the class; CIFAR-like images show a blob on a dark noisy background whose colour
//! (25 colours) and shape (square, horizontal bar, vertical bar, ring) encode the class, at a
//! random position so that crops and horizontal flips keep the class.
//! Everything is a pure function of the arguments (ChaCha RNG seeded by `seed`).

use std::io::{self, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::idx::{IMAGE_MAGIC, LABEL_MAGIC};
use crate::{cifar, idx, Dataset, DatasetKind, Split};

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Encodes `n` images of `height`x`width` bytes as an IDX image file (magic 0x00000803).
pub fn encode_idx_images(
    images: &[u8],
    n: usize,
    height: usize,
    width: usize,
) -> io::Result<Vec<u8>> {
    if images.len() != n * height * width {
        return Err(invalid(format!(
            "{} image bytes, expected {n}*{height}*{width}",
            images.len()
        )));
    }
    let dim = |v: usize| u32::try_from(v).map_err(|_| invalid(format!("dimension {v} too large")));
    let mut out = Vec::with_capacity(16 + images.len());
    out.extend_from_slice(&IMAGE_MAGIC.to_be_bytes());
    for d in [n, height, width] {
        out.extend_from_slice(&dim(d)?.to_be_bytes());
    }
    out.extend_from_slice(images);
    Ok(out)
}

/// Encodes labels as an IDX label file (magic 0x00000801).
pub fn encode_idx_labels(labels: &[u8]) -> io::Result<Vec<u8>> {
    let n = u32::try_from(labels.len()).map_err(|_| invalid("too many labels".into()))?;
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABEL_MAGIC.to_be_bytes());
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(labels);
    Ok(out)
}

/// Writes `bytes` to `path` atomically, gzip-compressed if `gz` (the name is used as given).
pub fn write_file(path: &Path, bytes: &[u8], gz: bool) -> io::Result<()> {
    hf_fsutil::atomic_write(path, |w| {
        if gz {
            let mut enc = GzEncoder::new(w, Compression::fast());
            enc.write_all(bytes)?;
            enc.finish()?;
            Ok(())
        } else {
            w.write_all(bytes)
        }
    })
}

/// Writes an IDX image file to `path` (gzip-compressed if `gz`; the name is used as given).
pub fn write_idx_images(
    path: &Path,
    images: &[u8],
    n: usize,
    height: usize,
    width: usize,
    gz: bool,
) -> io::Result<()> {
    write_file(path, &encode_idx_images(images, n, height, width)?, gz)
}

/// Writes an IDX label file to `path` (gzip-compressed if `gz`; the name is used as given).
pub fn write_idx_labels(path: &Path, labels: &[u8], gz: bool) -> io::Result<()> {
    write_file(path, &encode_idx_labels(labels)?, gz)
}

/// Generates `n` learnable examples of `kind`: `(images, labels)` in [`Dataset`] layout.
pub fn generate(kind: DatasetKind, n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let il = kind.image_len();
    let mut images = vec![0u8; n * il];
    let mut labels = Vec::with_capacity(n);
    for img in images.chunks_exact_mut(il.max(1)) {
        let label = rng.gen_range(0..kind.classes()) as u8;
        labels.push(label);
        match kind {
            DatasetKind::Mnist | DatasetKind::FashionMnist => bar_image(img, label, &mut rng),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => blob_image(img, label, &mut rng),
        }
    }
    (images, labels)
}

/// 28x28: noise 0..40, bright bar on rows `4+2k, 5+2k`, columns about 4..24.
fn bar_image(img: &mut [u8], class: u8, rng: &mut ChaCha8Rng) {
    for p in img.iter_mut() {
        *p = rng.gen_range(0..40);
    }
    let y0 = 4 + 2 * class as usize;
    let x0 = rng.gen_range(3..6);
    let x1 = rng.gen_range(23..26);
    for y in y0..y0 + 2 {
        for x in x0..x1 {
            img[y * 28 + x] = rng.gen_range(180..=255);
        }
    }
}

/// 3x32x32: dark noise, plus a blob of colour `class % 25` and shape `class / 25`.
fn blob_image(img: &mut [u8], class: u8, rng: &mut ChaCha8Rng) {
    const LEVELS: [u8; 3] = [0, 128, 240];
    let ci = class as usize % 25 + 1; // 1..=25 in base 3: never black
    let color = [LEVELS[ci / 9 % 3], LEVELS[ci / 3 % 3], LEVELS[ci % 3]];
    let shape = class as usize / 25;
    for p in img.iter_mut() {
        *p = rng.gen_range(0..48);
    }
    let (bh, bw) = match shape {
        1 => (6, 20),
        2 => (20, 6),
        _ => (14, 14),
    };
    let top = rng.gen_range(2..=32 - bh - 2);
    let left = rng.gen_range(2..=32 - bw - 2);
    for y in top..top + bh {
        for x in left..left + bw {
            let edge = y < top + 3 || y >= top + bh - 3 || x < left + 3 || x >= left + bw - 3;
            if shape == 3 && !edge {
                continue; // ring: hollow square
            }
            for (c, &level) in color.iter().enumerate() {
                let v = level as i32 + rng.gen_range(-12..=12);
                img[c * 1024 + y * 32 + x] = v.clamp(0, 255) as u8;
            }
        }
    }
}

/// An in-memory learnable dataset of `kind` with `n` examples (no files involved).
pub fn dataset(kind: DatasetKind, n: usize, seed: u64) -> Dataset {
    let (images, labels) = generate(kind, n, seed);
    Dataset::from_raw(kind, images, labels).expect("synthetic data is consistent")
}

/// Seed of the test split, distinct from the training split's.
fn test_seed(seed: u64) -> u64 {
    seed ^ 0x5EED_7E57_0000_0001
}

/// Writes the four MNIST-named IDX files (`train-images-idx3-ubyte`, ...; with `.gz`
/// appended and gzip-compressed when `gz`) into `dir`: `n_train` / `n_test` learnable 28x28
/// images of 10 classes. Loadable as both MNIST and Fashion-MNIST.
pub fn write_idx_dataset(
    dir: &Path,
    n_train: usize,
    n_test: usize,
    gz: bool,
    seed: u64,
) -> io::Result<()> {
    for (split, n, s) in [
        (Split::Train, n_train, seed),
        (Split::Test, n_test, test_seed(seed)),
    ] {
        let (images, labels) = generate(DatasetKind::Mnist, n, s);
        let (img_name, lbl_name) = idx::file_names(split);
        let suffix = if gz { ".gz" } else { "" };
        write_idx_images(
            &dir.join(format!("{img_name}{suffix}")),
            &images,
            n,
            28,
            28,
            gz,
        )?;
        write_idx_labels(&dir.join(format!("{lbl_name}{suffix}")), &labels, gz)?;
    }
    Ok(())
}

/// Encodes an array as a `.npy` file (format 1.0, as `numpy.save` writes it): `descr` is the
/// numpy type string (`"<f4"`, `"|u1"`, `"<i8"`, …), `shape` the array's shape (C order) and
/// `data` its raw little-endian bytes (not checked against the shape, so that tests can write
/// broken files).
pub fn encode_npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims = match shape {
        [one] => format!("{one},"),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    // numpy pads the header with spaces and a final newline to a multiple of 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A float32 array as `.npy` bytes.
pub fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode_npy("<f4", shape, &data)
}

/// A uint8 array as `.npy` bytes.
pub fn npy_u8(shape: &[usize], values: &[u8]) -> Vec<u8> {
    encode_npy("|u1", shape, values)
}

/// An int64 array as `.npy` bytes.
pub fn npy_i64(shape: &[usize], values: &[i64]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    encode_npy("<i8", shape, &data)
}

/// Writes an `npy:DIR` dataset into `dir` (`train_x.npy`, `train_y.npy`, `test_x.npy`,
/// `test_y.npy`): `n_train` / `n_test` learnable MNIST-like `1×28×28` images of 10 classes (the
/// same images as [`write_idx_dataset`]), as uint8 pixels, or as float32 values `x/255` in 0..1
/// when `float`; labels are int64.
pub fn write_npy_dataset(
    dir: &Path,
    n_train: usize,
    n_test: usize,
    float: bool,
    seed: u64,
) -> io::Result<()> {
    for (split, n, s) in [
        (Split::Train, n_train, seed),
        (Split::Test, n_test, test_seed(seed)),
    ] {
        let (images, labels) = generate(DatasetKind::Mnist, n, s);
        let shape = [n, 1, 28, 28];
        let x = if float {
            let v: Vec<f32> = images.iter().map(|&p| f32::from(p) / 255.0).collect();
            npy_f32(&shape, &v)
        } else {
            npy_u8(&shape, &images)
        };
        let y: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
        let name = split.name();
        write_file(&dir.join(format!("{name}_x.npy")), &x, false)?;
        write_file(
            &dir.join(format!("{name}_y.npy")),
            &npy_i64(&[n], &y),
            false,
        )?;
    }
    Ok(())
}

/// Encodes examples as CIFAR binary records: `label + 3072 pixels` for CIFAR-10,
/// `coarse + fine + 3072 pixels` for CIFAR-100 (coarse = fine / 5).
pub fn encode_cifar_records(
    kind: DatasetKind,
    images: &[u8],
    labels: &[u8],
) -> io::Result<Vec<u8>> {
    if !matches!(kind, DatasetKind::Cifar10 | DatasetKind::Cifar100) {
        return Err(invalid(format!("{} is not a CIFAR dataset", kind.title())));
    }
    if images.len() != labels.len() * cifar::PIXELS {
        return Err(invalid(format!(
            "{} image bytes for {} labels",
            images.len(),
            labels.len()
        )));
    }
    let lb = cifar::label_bytes(kind);
    let mut out = Vec::with_capacity(labels.len() * (lb + cifar::PIXELS));
    for (img, &label) in images.chunks_exact(cifar::PIXELS).zip(labels) {
        if lb == 2 {
            out.push(label / 5);
        }
        out.push(label);
        out.extend_from_slice(img);
    }
    Ok(out)
}

/// Writes a CIFAR-10 (`data_batch_1..5.bin`, `test_batch.bin`; the training examples spread
/// over the five files) or CIFAR-100 (`train.bin`, `test.bin`) binary dataset into `dir`, with
/// `n_train` / `n_test` learnable examples.
pub fn write_cifar_dataset(
    dir: &Path,
    kind: DatasetKind,
    n_train: usize,
    n_test: usize,
    seed: u64,
) -> io::Result<()> {
    for (split, n, s) in [
        (Split::Train, n_train, seed),
        (Split::Test, n_test, test_seed(seed)),
    ] {
        let (images, labels) = generate(kind, n, s);
        let names = cifar::file_names(kind, split);
        let files = names.len();
        let mut start = 0;
        for (i, name) in names.iter().enumerate() {
            // Spread n as evenly as possible; earlier files get the remainder.
            let count = n / files + usize::from(i < n % files);
            let (a, b) = (start, start + count);
            start = b;
            let bytes = encode_cifar_records(
                kind,
                &images[a * cifar::PIXELS..b * cifar::PIXELS],
                &labels[a..b],
            )?;
            write_file(&dir.join(name), &bytes, false)?;
        }
    }
    Ok(())
}
