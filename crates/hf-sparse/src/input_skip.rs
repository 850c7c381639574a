//! The first linear layer skips the input's background. Images are mostly background (about
//! 80% of MNIST pixels are 0), and after the model's preprocessing every background value is
//! one known constant `v` per input. With `b' = b + W·v` computed once,
//! `W·x + b = b' + Σ_{j: x_j ≠ v_j} W[:, j]·(x_j − v_j)`, so only the columns of the inputs
//! that differ from the background are read: the layer keeps its weights column by column
//! (CSC) and adds the active columns. Exact up to float rounding; used for single examples
//! when the active columns hold few enough of the weights ([`InputSkip::pays`]) — on a
//! trained network they often do not: its kept first-layer weights sit where the ink is. Batches keep the batched
//! kernel: over a batch of 64 MNIST images it was 3x faster than this path per example.

use crate::formats::Csr;
use crate::spec::{Activation, ExportMeta};

/// The first linear layer by columns, with the background folded into its bias.
#[derive(Clone, Debug)]
pub(crate) struct InputSkip {
    /// What each input is when its raw value is 0 (the model's preprocessing of 0; 0 without
    /// one).
    background: Vec<f32>,
    /// Column `j`'s weights are `vals[col_ptr[j]..col_ptr[j + 1]]` in rows `rows[..]`.
    col_ptr: Vec<u32>,
    rows: Vec<u32>,
    vals: Vec<f32>,
    /// `b + W·background`.
    bias0: Vec<f32>,
}

/// Largest share of the weights the column path may read and still be taken: a weight read by
/// columns (a scattered add) costs about twice one read by the batch-1 row kernel (measured on
/// LeNet-300-100 at 98%: no faster at ≈ half the weights, faster at a fifth).
pub(crate) const MAX_SHARE: f64 = 0.35;

impl InputSkip {
    /// The column form of `csr` (the first layer, reading the network input) for the inputs
    /// that `meta`'s preprocessing produces.
    pub(crate) fn for_input(meta: &ExportMeta, csr: &Csr, bias: Option<&[f32]>) -> InputSkip {
        let len = csr.cols;
        let mut background = vec![0.0f32; len];
        if let Some(p) = &meta.preprocessing {
            // exactly what the preprocessing makes of a raw 0, so `x_j == v_j` tests equal
            p.apply(&mut background, len, meta.input_channels());
        }
        InputSkip::new(csr, bias, background)
    }

    /// The column form of `csr` for inputs whose background is `background`.
    fn new(csr: &Csr, bias: Option<&[f32]>, background: Vec<f32>) -> InputSkip {
        let len = csr.cols;
        let mut counts = vec![0u32; len + 1];
        for &c in &csr.col_idx {
            counts[c as usize + 1] += 1;
        }
        for j in 0..len {
            counts[j + 1] += counts[j];
        }
        let col_ptr = counts.clone();
        let mut next = counts;
        let mut rows = vec![0u32; csr.nnz()];
        let mut vals = vec![0.0f32; csr.nnz()];
        let mut bias0: Vec<f64> = (0..csr.rows)
            .map(|r| bias.map_or(0.0, |b| b[r] as f64))
            .collect();
        for (r, b0) in bias0.iter_mut().enumerate() {
            for k in csr.row_ptr[r]..csr.row_ptr[r + 1] {
                let j = csr.col_idx[k] as usize;
                let at = next[j] as usize;
                rows[at] = r as u32;
                vals[at] = csr.values[k];
                next[j] += 1;
                *b0 += csr.values[k] as f64 * background[j] as f64;
            }
        }
        InputSkip {
            background,
            col_ptr,
            rows,
            vals,
            bias0: bias0.into_iter().map(|v| v as f32).collect(),
        }
    }

    /// Whether the column path pays for `x`: the weights in the columns of the inputs that
    /// differ from the background are at most [`MAX_SHARE`] of the layer's. Counted in blocks
    /// of 64 inputs (branch-free, vectorised within a block), stopping at the first block that
    /// takes the count past the bound — on a trained network the count usually passes it half
    /// way down the image, so the rest is not read.
    pub(crate) fn pays(&self, x: &[f32]) -> bool {
        let budget = (MAX_SHARE * self.vals.len() as f64) as u32;
        let n = x.len().min(self.background.len());
        let mut read = 0u32;
        for s in (0..n).step_by(64) {
            let e = (s + 64).min(n);
            read += self.active_weights(x, s, e);
            if read > budget {
                return false;
            }
        }
        true
    }

    /// The share of the layer's weights in the columns of the inputs of `x` that differ from the
    /// background (a branch-free, vectorised pass): what the column path would read.
    #[cfg(test)]
    pub(crate) fn active_share(&self, x: &[f32]) -> f64 {
        let n = x.len().min(self.background.len());
        self.active_weights(x, 0, n) as f64 / self.vals.len().max(1) as f64
    }

    /// Weights in the columns `s..e` whose input in `x` differs from the background (a
    /// branch-free, vectorised count).
    fn active_weights(&self, x: &[f32], s: usize, e: usize) -> u32 {
        x[s..e]
            .iter()
            .zip(&self.background[s..e])
            .zip(self.col_ptr[s..=e].windows(2))
            .map(|((x, v), w)| u32::from(x != v) * (w[1] - w[0]))
            .sum()
    }

    /// `y = act(b' + Σ_{j: x_j ≠ v_j} W[:, j]·(x_j − v_j))` for one example; `y` has one value
    /// per row. Background runs (rows of an image's margin) make the test well predicted.
    pub(crate) fn forward(&self, x: &[f32], act: Activation, y: &mut [f32]) {
        y.copy_from_slice(&self.bias0);
        for (j, (&xj, &vj)) in x.iter().zip(&self.background).enumerate() {
            if xj == vj {
                continue;
            }
            let d = xj - vj;
            let (k0, k1) = (self.col_ptr[j] as usize, self.col_ptr[j + 1] as usize);
            for (&r, &w) in self.rows[k0..k1].iter().zip(&self.vals[k0..k1]) {
                y[r as usize] += w * d;
            }
        }
        act.apply_all(y);
    }
}
