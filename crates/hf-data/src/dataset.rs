//! The in-memory dataset and the top-level loader.

use std::path::Path;

use crate::{cifar, idx, DataError, DatasetKind, Split};

/// A whole split of a dataset in memory, as raw bytes.
///
/// Images are stored back to back, each in CHW order with values 0..255, so the 60000 MNIST
/// training images take 47 MB and the 50000 CIFAR images 154 MB. Normalisation to `f32`
/// happens per batch (see [`crate::batches`]) using `mean` / `std`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Which dataset this is.
    pub kind: DatasetKind,
    /// `len() * C*H*W` raw pixels, CHW order per image.
    pub images: Vec<u8>,
    /// One label per image, `< classes`.
    pub labels: Vec<u8>,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Number of classes.
    pub classes: usize,
    /// Per-channel mean on the 0..1 scale.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation on the 0..1 scale.
    pub std: Vec<f32>,
}

impl Dataset {
    /// Builds a dataset of `kind` from raw CHW images and labels, checking that the sizes
    /// agree and that every label is below `kind.classes()`. Shape and normalisation
    /// constants come from `kind`.
    pub fn from_raw(
        kind: DatasetKind,
        images: Vec<u8>,
        labels: Vec<u8>,
    ) -> Result<Self, DataError> {
        let (channels, height, width) = kind.shape();
        let image_len = channels * height * width;
        if images.len() != labels.len() * image_len {
            return Err(DataError::Invalid {
                dataset: kind.title(),
                reason: format!(
                    "{} image bytes for {} labels, expected {} ({} per image)",
                    images.len(),
                    labels.len(),
                    labels.len() * image_len,
                    image_len
                ),
            });
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= kind.classes())
        {
            return Err(DataError::Invalid {
                dataset: kind.title(),
                reason: format!("label {l} of example {i} is not < {}", kind.classes()),
            });
        }
        Ok(Dataset {
            kind,
            images,
            labels,
            channels,
            height,
            width,
            classes: kind.classes(),
            mean: kind.mean().to_vec(),
            std: kind.std().to_vec(),
        })
    }

    /// Number of examples (limited by both `labels` and whole images in `images`).
    pub fn len(&self) -> usize {
        match self.images.len().checked_div(self.image_len()) {
            Some(whole_images) => self.labels.len().min(whole_images),
            None => 0,
        }
    }

    /// True if there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per image, `C*H*W`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The raw CHW pixels of example `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let il = self.image_len();
        &self.images[i * il..(i + 1) * il]
    }

    /// The label of example `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// Keeps only the first `n` examples (all of them if `n >= len()`); for quick runs and
    /// tests.
    pub fn take(mut self, n: usize) -> Dataset {
        let n = n.min(self.len());
        self.images.truncate(n * self.image_len());
        self.labels.truncate(n);
        self
    }

    /// Writes image `i`, normalised per channel as `(x/255 - mean)/std`, into `out`
    /// (CHW, `image_len()` values). Uses exactly the arithmetic of [`crate::batches`], so the
    /// results are bit-identical to an un-augmented batch.
    ///
    /// # Panics
    /// If `i >= len()` or `out.len() != image_len()`.
    pub fn normalized(&self, i: usize, out: &mut [f32]) {
        assert_eq!(
            out.len(),
            self.image_len(),
            "output buffer has the wrong length"
        );
        let norm = Normalizer::new(self);
        let hw = self.height * self.width;
        for (c, (dst, src)) in out
            .chunks_exact_mut(hw)
            .zip(self.image(i).chunks_exact(hw))
            .enumerate()
        {
            norm.apply(c, src, dst);
        }
    }
}

/// Per-channel affine map `x -> x*scale + offset` equivalent to `(x/255 - mean)/std`,
/// precomputed once per iterator.
#[derive(Clone, Debug)]
pub(crate) struct Normalizer {
    scale: Vec<f32>,
    offset: Vec<f32>,
}

impl Normalizer {
    pub(crate) fn new(ds: &Dataset) -> Self {
        let mut scale = Vec::with_capacity(ds.channels);
        let mut offset = Vec::with_capacity(ds.channels);
        for c in 0..ds.channels {
            let mean = ds.mean.get(c).copied().unwrap_or(0.0);
            let std = ds.std.get(c).copied().filter(|s| s.is_finite() && *s > 0.0);
            let std = std.unwrap_or(1.0);
            scale.push(1.0 / (255.0 * std));
            offset.push(-mean / std);
        }
        Normalizer { scale, offset }
    }

    /// Normalised value of a raw 0 (what zero padding becomes).
    #[inline]
    pub(crate) fn zero(&self, c: usize) -> f32 {
        self.offset[c]
    }

    /// Normalises `src` into `dst` (same length) for channel `c`.
    #[inline]
    pub(crate) fn apply(&self, c: usize, src: &[u8], dst: &mut [f32]) {
        let (s, o) = (self.scale[c], self.offset[c]);
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = f32::from(v) * s + o;
        }
    }
}

/// Loads one split of `kind` from `dir`, validating the files.
///
/// MNIST / Fashion-MNIST: the four standard IDX names, each raw or gzipped (`name` is tried
/// before `name.gz`; gzip is recognised by its magic bytes). CIFAR-10: `data_batch_1.bin` ..
/// `data_batch_5.bin` / `test_batch.bin`; CIFAR-100: `train.bin` / `test.bin` (fine labels).
/// A split with no examples is an error ([`DataError::Empty`]).
pub fn load(kind: DatasetKind, dir: &Path, split: Split) -> Result<Dataset, DataError> {
    let (images, labels) = match kind {
        DatasetKind::Mnist | DatasetKind::FashionMnist => idx::load(kind, dir, split)?,
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => cifar::load(kind, dir, split)?,
    };
    if labels.is_empty() {
        return Err(DataError::Empty {
            dataset: kind.title(),
            split,
            dir: dir.to_path_buf(),
        });
    }
    let (channels, height, width) = kind.shape();
    Ok(Dataset {
        kind,
        images,
        labels,
        channels,
        height,
        width,
        classes: kind.classes(),
        mean: kind.mean().to_vec(),
        std: kind.std().to_vec(),
    })
}

/// The "not found" hint for each dataset.
pub(crate) fn missing_hint(kind: DatasetKind) -> String {
    match kind {
        DatasetKind::Mnist => "run scripts/setup.sh, or pass --data-dir DIR".into(),
        DatasetKind::FashionMnist => {
            "install it with `apt-get install dataset-fashion-mnist`, or pass --data-dir DIR"
                .into()
        }
        DatasetKind::Cifar10 => "download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz and unpack it into data/, or pass --data-dir DIR".into(),
        DatasetKind::Cifar100 => "download https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz and unpack it into data/, or pass --data-dir DIR".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        let images: Vec<u8> = (0..3 * 784).map(|i| (i % 256) as u8).collect();
        Dataset::from_raw(DatasetKind::Mnist, images, vec![3, 1, 4]).unwrap()
    }

    #[test]
    fn normalisation_matches_formula() {
        let ds = tiny();
        let mut out = vec![0.0; 784];
        ds.normalized(1, &mut out);
        for (j, &v) in out.iter().enumerate() {
            let raw = ds.image(1)[j] as f32;
            let want = (raw / 255.0 - 0.1307) / 0.3081;
            assert!((v - want).abs() < 1e-5, "pixel {j}: {v} vs {want}");
        }
        // Raw 0 and 255 map to the ends of the normalised range.
        let n = Normalizer::new(&ds);
        assert!((n.zero(0) + 0.1307 / 0.3081).abs() < 1e-6);
    }

    #[test]
    fn take_and_len() {
        let ds = tiny();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.image_len(), 784);
        let t = ds.clone().take(2);
        assert_eq!(t.len(), 2);
        assert_eq!(t.labels, vec![3, 1]);
        assert_eq!(t.images.len(), 2 * 784);
        assert_eq!(t.image(1), ds.image(1));
        assert_eq!(ds.clone().take(10).len(), 3);
        assert!(ds.take(0).is_empty());
    }

    #[test]
    fn from_raw_validates() {
        let e = Dataset::from_raw(DatasetKind::Mnist, vec![0; 785], vec![1]).unwrap_err();
        assert!(e.to_string().contains("785"), "{e}");
        let e = Dataset::from_raw(DatasetKind::Mnist, vec![0; 784], vec![10]).unwrap_err();
        assert!(e.to_string().contains("label 10"), "{e}");
        assert!(Dataset::from_raw(DatasetKind::Cifar100, vec![0; 3072], vec![99]).is_ok());
    }
}
