//! Reader for the binary versions of CIFAR-10 and CIFAR-100.

use std::fs;
use std::io;
use std::path::Path;

use crate::dataset::missing_hint;
use crate::{DataError, DatasetKind, Split};

/// Pixel bytes per CIFAR image (3 planes of 32x32, R then G then B).
pub(crate) const PIXELS: usize = 3 * 32 * 32;

/// Label bytes before the pixels of each record: 1 for CIFAR-10, 2 (coarse, fine) for
/// CIFAR-100.
pub(crate) fn label_bytes(kind: DatasetKind) -> usize {
    match kind {
        DatasetKind::Cifar100 => 2,
        _ => 1,
    }
}

/// File names of a split, in reading order.
pub(crate) fn file_names(kind: DatasetKind, split: Split) -> Vec<String> {
    match (kind, split) {
        (DatasetKind::Cifar100, Split::Train) => vec!["train.bin".into()],
        (DatasetKind::Cifar100, Split::Test) => vec!["test.bin".into()],
        (_, Split::Train) => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        (_, Split::Test) => vec!["test_batch.bin".into()],
    }
}

/// Loads `(images, labels)` of one split from `dir`. Each file may hold any whole number of
/// records (10000 in the real data set).
pub(crate) fn load(
    kind: DatasetKind,
    dir: &Path,
    split: Split,
) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let lb = label_bytes(kind);
    let record = lb + PIXELS;
    let classes = kind.classes();
    let mut files = Vec::new();
    // Check every file's presence and size before reading pixels, so a missing last batch
    // is reported without first reading 120 MB.
    for name in file_names(kind, split) {
        let path = dir.join(name);
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DataError::NotFound {
                    dataset: kind.title(),
                    path,
                    tried_gz: false,
                    hint: missing_hint(kind),
                })
            }
            Err(source) => return Err(DataError::Io { path, source }),
        };
        files.push((path, len));
    }
    let total: u64 = files.iter().map(|(_, len)| len / record as u64).sum();
    let mut images = Vec::with_capacity(total as usize * PIXELS);
    let mut labels = Vec::with_capacity(total as usize);
    for (path, _) in files {
        let bytes = fs::read(&path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        parse_into(
            kind,
            &path,
            &bytes,
            record,
            classes,
            &mut images,
            &mut labels,
        )?;
    }
    Ok((images, labels))
}

fn parse_into(
    kind: DatasetKind,
    path: &Path,
    bytes: &[u8],
    record: usize,
    classes: usize,
    images: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<(), DataError> {
    if !bytes.len().is_multiple_of(record) {
        return Err(DataError::RecordSize {
            path: path.to_path_buf(),
            dataset: kind.title(),
            len: bytes.len() as u64,
            record,
        });
    }
    let lb = record - PIXELS;
    for (index, rec) in bytes.chunks_exact(record).enumerate() {
        // CIFAR-100: byte 0 is the coarse label (20 superclasses), byte 1 the fine label we
        // train on.
        if lb == 2 && rec[0] >= 20 {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                record: "record (coarse label)",
                index,
                label: rec[0],
                classes: 20,
            });
        }
        let label = rec[lb - 1];
        if label as usize >= classes {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                record: "record",
                index,
                label,
                classes,
            });
        }
        labels.push(label);
        images.extend_from_slice(&rec[lb..]);
    }
    Ok(())
}
