//! Deterministic mini-batches with optional augmentation.

use std::iter::FusedIterator;
use std::sync::Arc;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::dataset::{Normalizer, Pixel};
use crate::{Dataset, Image};

/// Training-time augmentation, applied to the raw image before normalisation: a random crop
/// with zero padding `pad` (the image is shifted by a uniform offset in `[-pad, pad]` on both
/// axes, uncovered pixels are raw 0, as torchvision's `RandomCrop(size, padding=pad)`), then a
/// horizontal flip with probability 1/2 if `flip`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Augment {
    /// Maximum shift in pixels (0 = no crop).
    pub pad: usize,
    /// Random horizontal flip.
    pub flip: bool,
}

impl Augment {
    /// The standard CIFAR recipe: `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()`.
    pub const CIFAR: Augment = Augment { pad: 4, flip: true };

    /// True if this augmentation leaves every image unchanged.
    pub fn is_identity(&self) -> bool {
        self.pad == 0 && !self.flip
    }
}

/// A mini-batch ready for the model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// `n * C*H*W` normalised values, NCHW order.
    pub x: Vec<f32>,
    /// `n` class labels.
    pub y: Vec<i64>,
    /// Number of examples in the batch (the last one may be smaller unless `drop_last`).
    pub n: usize,
}

/// How an epoch is cut into batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BatchConfig {
    /// Examples per batch. A batch size of 0 yields no batches.
    pub batch_size: usize,
    /// Visit the examples in a random order (seeded by `(seed, epoch)`) instead of in order.
    pub shuffle: bool,
    /// Augmentation to apply, if any (training only, usually).
    pub augment: Option<Augment>,
    /// Drop the final, smaller batch.
    pub drop_last: bool,
}

impl BatchConfig {
    /// Training configuration: shuffled, optional augmentation, last partial batch kept.
    pub fn train(batch_size: usize, augment: Option<Augment>) -> Self {
        BatchConfig {
            batch_size,
            shuffle: true,
            augment,
            drop_last: false,
        }
    }

    /// Evaluation configuration: in order, no augmentation, every example once.
    pub fn eval(batch_size: usize) -> Self {
        BatchConfig {
            batch_size,
            shuffle: false,
            augment: None,
            drop_last: false,
        }
    }

    /// Number of batches an epoch over `n` examples yields.
    pub fn batches_per_epoch(&self, n: usize) -> usize {
        if self.batch_size == 0 {
            0
        } else if self.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }
}

/// The RNG of one epoch: ChaCha8 keyed by `seed` and `epoch` side by side (no collisions
/// between different pairs), plus a domain tag.
fn epoch_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..].copy_from_slice(b"hf-data/batches\0");
    ChaCha8Rng::from_seed(key)
}

/// Uniform integer in `0..n` (`n > 0`), by Lemire's multiply-and-reject method. Implemented
/// here rather than taken from `rand` so that the sequence can never change with a `rand`
/// upgrade: checkpoints resumed later must see the same batches.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// Writes the augmented, normalised image `src` (CHW raw values) into `dst`: output pixel
/// `(y, x)` is source pixel `(y + dy, x' + dx)` where `x' = W-1-x` if `flip` else `x`,
/// or normalised zero when that lies outside the image.
pub(crate) fn augment_image(
    norm: &Normalizer,
    src: Image<'_>,
    dst: &mut [f32],
    shape: (usize, usize, usize),
    dy: isize,
    dx: isize,
    flip: bool,
) {
    match src {
        Image::U8(s) => augment_planes(norm, s, dst, shape, dy, dx, flip),
        Image::F32(s) => augment_planes(norm, s, dst, shape, dy, dx, flip),
    }
}

fn augment_planes<P: Pixel>(
    norm: &Normalizer,
    src: &[P],
    dst: &mut [f32],
    (c, h, w): (usize, usize, usize),
    dy: isize,
    dx: isize,
    flip: bool,
) {
    let (hi, wi) = (h as isize, w as isize);
    // Output columns whose source column x + dx is inside the image.
    let x0 = (-dx).clamp(0, wi) as usize;
    let x1 = (wi - dx).clamp(0, wi) as usize;
    for ch in 0..c {
        let zero = norm.zero(ch);
        let plane_src = &src[ch * h * w..(ch + 1) * h * w];
        let plane_dst = &mut dst[ch * h * w..(ch + 1) * h * w];
        for (y, row) in plane_dst.chunks_exact_mut(w).enumerate() {
            let sy = y as isize + dy;
            if sy < 0 || sy >= hi || x0 >= x1 {
                row.fill(zero);
                continue;
            }
            let sy = sy as usize;
            let sx0 = (x0 as isize + dx) as usize;
            let srow = &plane_src[sy * w + sx0..sy * w + sx0 + (x1 - x0)];
            row[..x0].fill(zero);
            row[x1..].fill(zero);
            norm.apply(ch, srow, &mut row[x0..x1]);
            if flip {
                row.reverse();
            }
        }
    }
}

/// State shared by the borrowed and the owned iterator.
#[derive(Clone, Debug)]
struct Core {
    order: Vec<usize>,
    pos: usize,
    end: usize,
    batch_size: usize,
    augment: Option<Augment>,
    rng: ChaCha8Rng,
    norm: Normalizer,
    shape: (usize, usize, usize),
}

impl Core {
    fn new(ds: &Dataset, cfg: &BatchConfig, seed: u64, epoch: u64) -> Core {
        let n = ds.len();
        let mut rng = epoch_rng(seed, epoch);
        let mut order: Vec<usize> = (0..n).collect();
        if cfg.shuffle {
            // Fisher-Yates.
            for i in (1..n).rev() {
                let j = below(&mut rng, i as u64 + 1) as usize;
                order.swap(i, j);
            }
        }
        let end = if cfg.batch_size == 0 {
            0
        } else if cfg.drop_last {
            n / cfg.batch_size * cfg.batch_size
        } else {
            n
        };
        Core {
            order,
            pos: 0,
            end,
            batch_size: cfg.batch_size,
            augment: cfg.augment.filter(|a| !a.is_identity()),
            rng,
            norm: Normalizer::new(ds),
            shape: (ds.channels, ds.height, ds.width),
        }
    }

    fn remaining(&self) -> usize {
        if self.batch_size == 0 {
            0
        } else {
            (self.end - self.pos).div_ceil(self.batch_size)
        }
    }

    fn fill(&mut self, ds: &Dataset, batch: &mut Batch) -> bool {
        let n = self.batch_size.min(self.end - self.pos);
        if n == 0 {
            return false;
        }
        let (c, h, w) = self.shape;
        let il = c * h * w;
        let hw = h * w;
        batch.n = n;
        batch.x.resize(n * il, 0.0);
        batch.y.clear();
        for (k, &idx) in self.order[self.pos..self.pos + n].iter().enumerate() {
            let src = ds.image(idx);
            let dst = &mut batch.x[k * il..(k + 1) * il];
            batch.y.push(i64::from(ds.labels[idx]));
            match self.augment {
                None => self.norm.image(src, dst, hw),
                Some(a) => {
                    let (dy, dx) = if a.pad > 0 {
                        // Offsets beyond the image only blank it; the cap just keeps the
                        // arithmetic in range for absurd configurations.
                        let pad = a.pad.min(1 << 20) as isize;
                        let span = 2 * pad as u64 + 1;
                        let dy = below(&mut self.rng, span) as isize - pad;
                        let dx = below(&mut self.rng, span) as isize - pad;
                        (dy, dx)
                    } else {
                        (0, 0)
                    };
                    let flip = a.flip && self.rng.next_u32() & 1 == 1;
                    augment_image(&self.norm, src, dst, self.shape, dy, dx, flip);
                }
            }
        }
        self.pos += n;
        true
    }
}

/// Iterator over the batches of one epoch of a borrowed [`Dataset`]; see [`batches`].
#[derive(Clone, Debug)]
pub struct BatchIter<'a> {
    ds: &'a Dataset,
    core: Core,
}

/// Iterates over one epoch of `ds` in batches.
///
/// The order (if `cfg.shuffle`) and the augmentation draws depend only on `(seed, epoch)`
/// (and the dataset size and `cfg`), never on wall-clock or thread timing: the same
/// arguments give bit-identical batches, so a run resumed at epoch `e` trains on exactly the
/// data an uninterrupted run would have seen. Different epochs give different orders.
/// Without `drop_last` every example appears exactly once per epoch.
pub fn batches<'a>(ds: &'a Dataset, cfg: &BatchConfig, seed: u64, epoch: u64) -> BatchIter<'a> {
    BatchIter {
        ds,
        core: Core::new(ds, cfg, seed, epoch),
    }
}

impl BatchIter<'_> {
    /// Like [`Iterator::next`] but reuses `batch`'s buffers; returns false at the end of the
    /// epoch (leaving `batch` untouched).
    pub fn next_into(&mut self, batch: &mut Batch) -> bool {
        self.core.fill(self.ds, batch)
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut b = Batch::default();
        self.core.fill(self.ds, &mut b).then_some(b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let r = self.core.remaining();
        (r, Some(r))
    }
}

impl ExactSizeIterator for BatchIter<'_> {}
impl FusedIterator for BatchIter<'_> {}

/// Like [`BatchIter`] but owning a shared handle on the dataset, so it is `'static` and can be
/// moved to a background thread by [`crate::prefetch`]; see [`batches_owned`].
#[derive(Clone, Debug)]
pub struct OwnedBatchIter {
    ds: Arc<Dataset>,
    core: Core,
}

/// [`batches`] for a dataset behind an [`Arc`]: the same batches, as a `'static` iterator.
pub fn batches_owned(ds: Arc<Dataset>, cfg: &BatchConfig, seed: u64, epoch: u64) -> OwnedBatchIter {
    let core = Core::new(&ds, cfg, seed, epoch);
    OwnedBatchIter { ds, core }
}

impl OwnedBatchIter {
    /// Like [`Iterator::next`] but reuses `batch`'s buffers; returns false at the end.
    pub fn next_into(&mut self, batch: &mut Batch) -> bool {
        self.core.fill(&self.ds, batch)
    }
}

impl Iterator for OwnedBatchIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut b = Batch::default();
        self.core.fill(&self.ds, &mut b).then_some(b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let r = self.core.remaining();
        (r, Some(r))
    }
}

impl ExactSizeIterator for OwnedBatchIter {}
impl FusedIterator for OwnedBatchIter {}
