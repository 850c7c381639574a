//! The in-memory dataset and the top-level loader.

use std::path::Path;

use hf_interchange::preprocess::{Normalize, Preprocessing};

use crate::{cifar, idx, DataError, DatasetKind, DatasetSpec, Split};

/// The raw values of a whole split, in the type the files hold.
///
/// Normalisation to the network's `f32` inputs happens per batch: `(x·scale − mean) / std` per
/// channel, where `scale` is 1/255 for bytes and 1 for floats (see [`Dataset::preprocessing`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Pixels {
    /// Bytes 0..255: the built-in datasets and uint8 `.npy` files.
    U8(Vec<u8>),
    /// Float values: float32 (or float64, converted) `.npy` files.
    F32(Vec<f32>),
}

impl Pixels {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Pixels::U8(v) => v.len(),
            Pixels::F32(v) => v.len(),
        }
    }

    /// True if there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The factor applied to raw values before mean and std: 1/255 for bytes, 1 for floats.
    pub fn scale(&self) -> f64 {
        match self {
            Pixels::U8(_) => Preprocessing::PIXEL_SCALE,
            Pixels::F32(_) => 1.0,
        }
    }

    /// numpy's name of the storage type: `"uint8"` or `"float32"`.
    pub fn dtype(&self) -> &'static str {
        match self {
            Pixels::U8(_) => "uint8",
            Pixels::F32(_) => "float32",
        }
    }

    /// The bytes, if the values are bytes.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match self {
            Pixels::U8(v) => Some(v),
            Pixels::F32(_) => None,
        }
    }

    /// The floats, if the values are floats.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            Pixels::F32(v) => Some(v),
            Pixels::U8(_) => None,
        }
    }

    /// Values `start..end` as an [`Image`].
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn slice(&self, start: usize, end: usize) -> Image<'_> {
        match self {
            Pixels::U8(v) => Image::U8(&v[start..end]),
            Pixels::F32(v) => Image::F32(&v[start..end]),
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            Pixels::U8(v) => v.truncate(n),
            Pixels::F32(v) => v.truncate(n),
        }
    }

    /// Splits off the values from `at` on (like `Vec::split_off`).
    fn split_off(&mut self, at: usize) -> Pixels {
        match self {
            Pixels::U8(v) => Pixels::U8(v.split_off(at)),
            Pixels::F32(v) => Pixels::F32(v.split_off(at)),
        }
    }
}

impl From<Vec<u8>> for Pixels {
    fn from(v: Vec<u8>) -> Self {
        Pixels::U8(v)
    }
}

impl From<Vec<f32>> for Pixels {
    fn from(v: Vec<f32>) -> Self {
        Pixels::F32(v)
    }
}

impl PartialEq<Vec<u8>> for Pixels {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_u8() == Some(other.as_slice())
    }
}

/// The raw values of one example (CHW order), borrowed from a [`Dataset`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Image<'a> {
    /// Bytes 0..255.
    U8(&'a [u8]),
    /// Float values.
    F32(&'a [f32]),
}

impl Image<'_> {
    /// Number of values (`C*H*W`).
    pub fn len(&self) -> usize {
        match self {
            Image::U8(v) => v.len(),
            Image::F32(v) => v.len(),
        }
    }

    /// True if the image has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Raw value `j` as `f32` (bytes are not scaled).
    ///
    /// # Panics
    /// If `j >= len()`.
    pub fn get(&self, j: usize) -> f32 {
        match self {
            Image::U8(v) => f32::from(v[j]),
            Image::F32(v) => v[j],
        }
    }

    /// The bytes, if the values are bytes.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match self {
            Image::U8(v) => Some(v),
            Image::F32(_) => None,
        }
    }

    /// Writes the raw values as `f32` (bytes are not scaled) into `out` (`len()` values).
    ///
    /// # Panics
    /// If `out.len() != len()`.
    pub fn write_f32(&self, out: &mut [f32]) {
        assert_eq!(out.len(), self.len(), "output buffer has the wrong length");
        match self {
            Image::U8(v) => {
                for (o, &x) in out.iter_mut().zip(*v) {
                    *o = f32::from(x);
                }
            }
            Image::F32(v) => out.copy_from_slice(v),
        }
    }
}

/// A raw value type the normaliser reads.
pub(crate) trait Pixel: Copy {
    fn value(self) -> f32;
}

impl Pixel for u8 {
    #[inline(always)]
    fn value(self) -> f32 {
        f32::from(self)
    }
}

impl Pixel for f32 {
    #[inline(always)]
    fn value(self) -> f32 {
        self
    }
}

/// A whole split of a dataset in memory, as raw values.
///
/// Images are stored back to back, each in CHW order, as bytes (the 60000 MNIST training images
/// take 47 MB, the 50000 CIFAR images 154 MB) or as floats. Normalisation to `f32` happens per
/// batch (see [`crate::batches`]) using `mean` / `std` (see [`Dataset::preprocessing`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Which dataset this is.
    pub source: DatasetSpec,
    /// `len() * C*H*W` raw values, CHW order per image.
    pub images: Pixels,
    /// One label per image, `< classes`.
    pub labels: Vec<u32>,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Number of classes.
    pub classes: usize,
    /// Per-channel mean, on the scale of the values after [`Pixels::scale`] (0..1 for bytes).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, on the same scale as `mean`.
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
        Ok(builtin(kind, images, labels))
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

    /// The raw CHW values of example `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn image(&self, i: usize) -> Image<'_> {
        let il = self.image_len();
        self.images.slice(i * il, (i + 1) * il)
    }

    /// The label of example `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn label(&self, i: usize) -> u32 {
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

    /// Splits off the last `n` examples as a second dataset (same source, shape and
    /// normalisation): the validation split of a training set. `n` is clamped to `len()`.
    pub fn split_tail(mut self, n: usize) -> (Dataset, Dataset) {
        let len = self.len();
        let keep = len - n.min(len);
        self.images.truncate(len * self.image_len());
        self.labels.truncate(len);
        let tail_images = self.images.split_off(keep * self.image_len());
        let tail_labels = self.labels.split_off(keep);
        let tail = Dataset {
            source: self.source.clone(),
            images: tail_images,
            labels: tail_labels,
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes,
            mean: self.mean.clone(),
            std: self.std.clone(),
        };
        (self, tail)
    }

    /// The map from this dataset's raw values to network inputs: scale 1/255 (bytes) or 1
    /// (floats), then this dataset's `mean` / `std`. Checkpoints and exports record it.
    pub fn preprocessing(&self) -> Preprocessing {
        Preprocessing::from_f32(self.images.scale(), &self.mean, &self.std)
    }

    /// Replaces the normalisation constants with `n` (one pair for all channels, or one per
    /// channel), checked against this dataset's channels.
    pub fn with_normalize(mut self, n: &Normalize) -> Result<Self, DataError> {
        let (mean, std) = n
            .per_channel(self.channels)
            .map_err(|reason| DataError::Normalize {
                dataset: self.source.to_string(),
                reason,
            })?;
        self.mean = mean;
        self.std = std;
        Ok(self)
    }

    /// Writes image `i`, normalised per channel as `(x·scale - mean)/std`, into `out`
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
        norm.image(self.image(i), out, self.height * self.width);
    }
}

/// A dataset of built-in `kind` from already validated values.
pub(crate) fn builtin(kind: DatasetKind, images: Vec<u8>, labels: Vec<u8>) -> Dataset {
    let (channels, height, width) = kind.shape();
    Dataset {
        source: DatasetSpec::Builtin(kind),
        images: Pixels::U8(images),
        labels: labels.into_iter().map(u32::from).collect(),
        channels,
        height,
        width,
        classes: kind.classes(),
        mean: kind.mean().to_vec(),
        std: kind.std().to_vec(),
    }
}

/// Per-channel affine map `x -> x*scale + offset` equivalent to `(x·s - mean)/std` (see
/// [`Preprocessing::affine`]), precomputed once per iterator.
#[derive(Clone, Debug)]
pub(crate) struct Normalizer {
    affine: Vec<(f32, f32)>,
}

impl Normalizer {
    pub(crate) fn new(ds: &Dataset) -> Self {
        Normalizer {
            affine: ds.preprocessing().affine(ds.channels),
        }
    }

    /// Normalised value of a raw 0 (what zero padding becomes).
    #[inline]
    pub(crate) fn zero(&self, c: usize) -> f32 {
        self.affine[c].1
    }

    /// Normalises `src` into `dst` (same length) for channel `c`.
    #[inline]
    pub(crate) fn apply<P: Pixel>(&self, c: usize, src: &[P], dst: &mut [f32]) {
        let (s, o) = self.affine[c];
        for (d, &v) in dst.iter_mut().zip(src) {
            *d = v.value() * s + o;
        }
    }

    /// Normalises a whole CHW image of planes of `hw` values.
    pub(crate) fn image(&self, src: Image<'_>, dst: &mut [f32], hw: usize) {
        fn planes<P: Pixel>(n: &Normalizer, src: &[P], dst: &mut [f32], hw: usize) {
            for (c, (d, s)) in dst
                .chunks_exact_mut(hw)
                .zip(src.chunks_exact(hw))
                .enumerate()
            {
                n.apply(c, s, d);
            }
        }
        match src {
            Image::U8(s) => planes(self, s, dst, hw),
            Image::F32(s) => planes(self, s, dst, hw),
        }
    }
}

/// Loads one split of `kind` from `dir`, validating the files.
///
/// MNIST / Fashion-MNIST: the four standard IDX names, each raw or gzipped (`name` is tried
/// before `name.gz`; gzip is recognised by its magic bytes). CIFAR-10: `data_batch_1.bin` ..
/// `data_batch_5.bin` / `test_batch.bin`; CIFAR-100: `train.bin` / `test.bin` (fine labels).
/// For any dataset, including `npy:DIR`, see [`DatasetSpec::load`].
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
    Ok(builtin(kind, images, labels))
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
            let raw = ds.image(1).get(j);
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
