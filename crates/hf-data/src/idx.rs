//! IDX reader for MNIST and Fashion-MNIST (raw or gzipped files).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::dataset::missing_hint;
use crate::{DataError, DatasetKind, Split};

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub(crate) const IMAGE_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub(crate) const LABEL_MAGIC: u32 = 0x0000_0801;

/// Standard file names `(images, labels)` of a split.
pub(crate) fn file_names(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
}

/// Loads `(images, labels)` of one split from `dir`.
pub(crate) fn load(
    kind: DatasetKind,
    dir: &Path,
    split: Split,
) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let (img_name, lbl_name) = file_names(split);
    let (img_path, img_bytes) = read_maybe_gz(kind, &dir.join(img_name))?;
    let (lbl_path, lbl_bytes) = read_maybe_gz(kind, &dir.join(lbl_name))?;
    let (_, h, w) = kind.shape();
    let images = parse_images(kind, &img_path, img_bytes, h as u32, w as u32)?;
    let n_images = images.len() / (h * w);
    let labels = parse_labels(&lbl_path, lbl_bytes)?;
    if labels.len() != n_images {
        return Err(DataError::CountMismatch {
            images_path: img_path,
            images: n_images,
            labels_path: lbl_path,
            labels: labels.len(),
        });
    }
    check_labels(&lbl_path, &labels, kind.classes(), "example")?;
    Ok((images, labels))
}

/// Reads `path`, or `path.gz` if `path` does not exist, and decompresses it if it starts with
/// the gzip magic bytes. Returns the path actually read and its (decompressed) contents.
fn read_maybe_gz(kind: DatasetKind, path: &Path) -> Result<(PathBuf, Vec<u8>), DataError> {
    let mut gz_name = path.as_os_str().to_owned();
    gz_name.push(".gz");
    let gz_path = PathBuf::from(gz_name);
    let mut found = None;
    for candidate in [path, gz_path.as_path()] {
        match fs::read(candidate) {
            Ok(bytes) => {
                found = Some((candidate.to_path_buf(), bytes));
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(DataError::Io {
                    path: candidate.to_path_buf(),
                    source,
                })
            }
        }
    }
    let Some((used, bytes)) = found else {
        return Err(DataError::NotFound {
            dataset: kind.title(),
            path: path.to_path_buf(),
            tried_gz: true,
            hint: missing_hint(kind),
        });
    };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let out = gunzip(&bytes).map_err(|source| DataError::Decompress {
            path: used.clone(),
            source,
        })?;
        Ok((used, out))
    } else {
        Ok((used, bytes))
    }
}

/// Decompresses a (possibly multi-member) gzip stream.
fn gunzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    // The trailer holds the uncompressed size mod 2^32: a good capacity hint, capped so that
    // a corrupt trailer cannot trigger a huge allocation.
    let hint = bytes
        .len()
        .checked_sub(4)
        .and_then(|i| bytes.get(i..))
        .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize)
        .unwrap_or(0)
        .min(256 << 20);
    let mut out = Vec::with_capacity(hint);
    MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn check_header(path: &Path, bytes: &[u8], header: usize) -> Result<(), DataError> {
    if bytes.len() < header {
        return Err(DataError::WrongSize {
            path: path.to_path_buf(),
            expected: header as u64,
            actual: bytes.len() as u64,
            detail: "at least the IDX header".into(),
        });
    }
    Ok(())
}

fn check_magic(
    path: &Path,
    bytes: &[u8],
    expected: u32,
    what: &'static str,
) -> Result<(), DataError> {
    let found = be_u32(bytes, 0);
    if found != expected {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            what,
            found,
            expected,
        });
    }
    Ok(())
}

/// Validates an IDX image file of `h`x`w` images and returns its pixels.
pub(crate) fn parse_images(
    kind: DatasetKind,
    path: &Path,
    mut bytes: Vec<u8>,
    h: u32,
    w: u32,
) -> Result<Vec<u8>, DataError> {
    // Anything shorter than the magic cannot be identified: report it as too short.
    check_header(path, &bytes, 4)?;
    check_magic(path, &bytes, IMAGE_MAGIC, "image")?;
    check_header(path, &bytes, 16)?;
    let (n, rows, cols) = (be_u32(&bytes, 4), be_u32(&bytes, 8), be_u32(&bytes, 12));
    if rows != h || cols != w {
        return Err(DataError::BadShape {
            path: path.to_path_buf(),
            dataset: kind.title(),
            height: rows,
            width: cols,
            expected_height: h,
            expected_width: w,
        });
    }
    let expected = 16 + u64::from(n) * u64::from(rows) * u64::from(cols);
    if bytes.len() as u64 != expected {
        return Err(DataError::WrongSize {
            path: path.to_path_buf(),
            expected,
            actual: bytes.len() as u64,
            detail: format!("header says {n} images of {rows}x{cols}"),
        });
    }
    bytes.drain(..16);
    Ok(bytes)
}

/// Validates an IDX label file and returns its labels (range is checked by the caller).
pub(crate) fn parse_labels(path: &Path, mut bytes: Vec<u8>) -> Result<Vec<u8>, DataError> {
    check_header(path, &bytes, 4)?;
    check_magic(path, &bytes, LABEL_MAGIC, "label")?;
    check_header(path, &bytes, 8)?;
    let n = be_u32(&bytes, 4);
    let expected = 8 + u64::from(n);
    if bytes.len() as u64 != expected {
        return Err(DataError::WrongSize {
            path: path.to_path_buf(),
            expected,
            actual: bytes.len() as u64,
            detail: format!("header says {n} labels"),
        });
    }
    bytes.drain(..8);
    Ok(bytes)
}

/// Checks that every label is `< classes`.
pub(crate) fn check_labels(
    path: &Path,
    labels: &[u8],
    classes: usize,
    record: &'static str,
) -> Result<(), DataError> {
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(index) => Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            record,
            index,
            label: labels[index],
            classes,
        }),
        None => Ok(()),
    }
}
